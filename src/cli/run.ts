// `sipalg run`: the daemon. Reads the queue a batch per wake-up, runs every packet through the
// ALG, sends the map changes a released phone message relies on to the kernel in one netlink
// batch, then all verdicts in one send — so a mapping is always in the kernel before the SIP that
// advertises it leaves — and everything else (removals, narrowing, conntrack cleanup) right after.

import { readFileSync, writeFileSync, rmSync } from 'node:fs'
import { networkInterfaces } from 'node:os'
import type { Logger } from 'pino'
import { Alg, type KernelElement } from '../alg.js'
import { openStore } from '../store/open.js'
import { Roles, succeed } from './role.js'
import { buildConfig, type Config } from '../config.js'
import { loadConfigFile } from './config-file.js'
import { SipalgError, shortCode } from '../errors.js'
import { createLogger, logCoded } from '../log.js'
import { applyOps, type KernelMaps, type MapName, type MapOp } from '../media/mappings.js'
import { createTable, createTable6, table6Script, tableScript, DEFAULT_MARK } from '../netfilter/table.js'
import { RulesetWatch, replayOps } from '../netfilter/watch.js'
import { preflight } from './preflight.js'
import { parsePortRange } from '../validate.js'
import { PacketQueue, fixIpv4Udp } from '../netfilter/queue.js'
import { NftMaps, addrPortKey, addrPortPortKey, addr6PortKey, addr6Addr6PortKey, decodeKey, decodeKey6, portKey, type NftOp } from '../netfilter/nftmaps.js'
import { conntrackCounters, deleteConntrack, deleteConntrack6, type ConntrackTuple } from '../netfilter/conntrack.js'
import type { StaleFlow } from '../alg.js'
import type { StatusDoc } from '../status.js'
import { LatencyHistogram } from '../histogram.js'
import { flagsToConfig } from './args.js'
import { command, parseCommand } from './commands.js'
import { defaultSocketPath, defaultStatePath, serveControl, traceStream } from './control.js'
import { metricsSnapshot, serveMetrics, type MetricsSource } from '../metrics.js'
import { startHep } from '../hep/start.js'
import { startTcp, type TcpService } from '../tcp/daemon.js'
import { resolveWorkers, workerConfig, workerFromEnv, WorkerShard } from '../workers/worker.js'
import { runSupervisor } from '../workers/supervisor.js'
import { startNotifier } from './systemd.js'

export function runConfig (argv: string[]): { cfg: Config, pretty: boolean } {
  const args = parseCommand('run', argv)
  const layers: Array<Record<string, unknown>> = []
  if (typeof args.flags.config === 'string') layers.push(loadConfigFile(args.flags.config))
  layers.push(flagsToConfig(args, command('run')))
  const cfg = buildConfig(layers)
  if (cfg.public === null) cfg.public = detectPublic(cfg.outsideIf)
  return { cfg, pretty: args.flags.pretty === true }
}

/** Public address = primary IPv4 of the outside interface, when that is unambiguous. */
export function detectPublic (outsideIf: string | null): string {
  if (outsideIf === null) throw new SipalgError('E104_NO_PUBLIC_ADDRESS', { iface: '(none given: set --outside-if)' })
  const addr = (networkInterfaces()[outsideIf] ?? []).find(a => a.family === 'IPv4' && !a.internal)
  if (addr === undefined) throw new SipalgError('E104_NO_PUBLIC_ADDRESS', { iface: outsideIf })
  return addr.address
}

const keyOf = (map: MapName, k: { ip?: string, sport?: number, port: number }): Buffer =>
  map === 'any_dnat' ? portKey(k.port) : map === 'latch_dnat' ? addrPortPortKey(k.ip ?? '0.0.0.0', k.sport ?? 0, k.port) : addrPortKey(k.ip ?? '0.0.0.0', k.port)
const dataOf = (map: MapName, d: { ip?: string, port: number }): Buffer =>
  map === 'src_nat' ? portKey(d.port) : addrPortKey(d.ip ?? '0.0.0.0', d.port)

const IPV6_SETS = new Set<MapName>(['pinhole6', 'media6'])

/** An IPv6 set element: the key alone (the mirror's data is only its own). */
const op6 = (o: MapOp): NftOp => ({
  op: o.op,
  map: o.map,
  key: o.map === 'media6' ? addr6PortKey(o.key.ip ?? '::', o.key.port) : addr6Addr6PortKey(o.key.ip ?? '::', o.key.dst ?? '::', o.key.port),
  timeoutMs: o.timeoutMs
})

/**
 * The kernel side of the mirror: IPv4 maps in `table ip <table>`, the IPv6 sets in
 * `table ip6 <table>` (when IPv6 is on). A batch touching both is two transactions, IPv4's first.
 */
export function kernelMaps (nft: NftMaps, nft6?: NftMaps): KernelMaps {
  return {
    apply: (ops: MapOp[]) => {
      const v4 = nft6 === undefined ? ops : ops.filter(o => !IPV6_SETS.has(o.map))
      nft.apply(v4.map((o): NftOp => ({
        op: o.op,
        map: o.map,
        key: keyOf(o.map, o.key),
        data: o.data === undefined ? undefined : dataOf(o.map, o.data),
        timeoutMs: o.timeoutMs
      })))
      if (nft6 !== undefined && v4.length < ops.length) nft6.apply(ops.filter(o => IPV6_SETS.has(o.map)).map(op6))
    }
  }
}

/** The elements in sipalg's tables now. */
function kernelElements (nft: NftMaps, nft6?: NftMaps): KernelElement[] {
  const v4 = (['src_nat', 'any_dnat', 'peer_dnat', 'latch_dnat'] as const).flatMap(map => nft.list(map).flatMap(e =>
    e.data === null ? [] : [{ map, key: decodeKey(e.key), data: decodeKey(e.data), remainingMs: e.expiresMs ?? 60_000 }]))
  if (nft6 === undefined) return v4
  const v6 = (['pinhole6', 'media6'] as const).flatMap(map => nft6.list(map).map(e => {
    const key = decodeKey6(e.key)
    return { map, key, data: { ip: key.dst ?? key.ip, port: key.port }, remainingMs: e.expiresMs ?? 60_000 }
  }))
  return [...v4, ...v6]
}

/** Conntrack tuples of flows to forget: IPv4 far → public port; IPv6 far → the phone itself. Both directions. */
function staleTuples (flows: StaleFlow[], publicIp: string): { v4: ConntrackTuple[], v6: ConntrackTuple[] } {
  const out = { v4: [] as ConntrackTuple[], v6: [] as ConntrackTuple[] }
  for (const f of flows) {
    // The phone's own flow, started before its mapping: found by its original (private) tuple.
    // (IPv4 only.) The far end's flow to the public port, let in beside the phone's early one as a
    // clash (its reply direction never hashed), goes with it below, or the phone's next packets,
    // NATed to that same public port, would clash with it and be dropped. The next packet either
    // way then starts one clean flow through the mapping (test/e2e/flows-setup.test.ts, late offer).
    if (f.phone !== undefined) out.v4.push({ proto: 'udp', src: f.phone.ip, sport: f.phone.port, dst: f.remote.ip, dport: f.remote.port, direction: 'original' })
    for (const direction of ['original', 'reply'] as const) {
      (f.local === undefined ? out.v4 : out.v6).push({ proto: 'udp', src: f.remote.ip, sport: f.remote.port, dst: f.local ?? publicIp, dport: f.publicPort, direction })
    }
  }
  return out
}

/** Takes over the elements a previous sipalg left in the tables (they keep calls alive); a worker only its own phones'. */
function adopt (alg: Alg, nft: NftMaps, log: Logger, nft6?: NftMaps, owns: (e: KernelElement) => boolean = () => true): void {
  const n = alg.adopt(kernelElements(nft, nft6).filter(owns))
  if (n > 0) log.info({ elements: n }, 'adopted kernel mappings left by a previous sipalg; they expire unless a call refreshes them')
}

/**
 * Adds each media flow's packets/bytes from conntrack to a status document. A flow started by the far
 * end has it as the original direction; one the phone started has it as the reply: ask for both.
 */
function withTraffic<T extends { calls: StatusDoc['calls'], publicIp: string }> (doc: T): T {
  const all = doc.calls.flatMap(c => c.flows).filter(f => f.far !== null)
  // IPv6 flows run between the far end and the phone itself (no NAT): asked separately, by family.
  for (const [family, flows] of [[4, all.filter(f => f.phone === undefined)], [6, all.filter(f => f.phone !== undefined)]] as const) {
    for (let i = 0; i < flows.length; i += 64) {
      const chunk = flows.slice(i, i + 64)
      const tuples = chunk.flatMap(f => (['original', 'reply'] as const).map(direction =>
        ({ proto: 'udp' as const, src: f.far?.ip ?? '', sport: f.far?.port ?? 0, dst: f.phone ?? doc.publicIp, dport: f.publicPort, direction })))
      let counts: ReturnType<typeof conntrackCounters>
      try { counts = conntrackCounters(tuples, family) } catch { return doc }
      chunk.forEach((f, j) => {
        const farStarted = counts[j * 2]
        const phoneStarted = counts[j * 2 + 1]
        if (farStarted !== null) { f.in = farStarted.orig; f.out = farStarted.reply } else if (phoneStarted !== null) { f.in = phoneStarted.reply; f.out = phoneStarted.orig }
      })
    }
  }
  return doc
}

/** Per-flow byte counts need conntrack accounting; it is turned on in sipalg's network namespace. */
function enableAccounting (log: Logger): void {
  const path = '/proc/sys/net/netfilter/nf_conntrack_acct'
  try {
    if (readFileSync(path, 'utf8').trim() !== '1') {
      writeFileSync(path, '1\n')
      log.info({ sysctl: 'net.netfilter.nf_conntrack_acct=1' }, 'turned on conntrack accounting for per-call traffic in sipalg status (conntrack_accounting: false to leave it)')
    }
  } catch (e) { log.warn({ code: shortCode('E310_CONNTRACK'), err: (e as Error).message }, 'conntrack accounting unavailable: sipalg status shows no per-call traffic') }
}

export async function runDaemon (argv: string[]): Promise<number> {
  const { cfg: gateway, pretty } = runConfig(argv)
  if (process.getuid?.() !== 0) throw new SipalgError('E200_NOT_ROOT', { what: 'sipalg run' })
  // workers: N > 1 — this process supervises N workers, each this same command as one seat (docs/workers.md).
  const seat = workerFromEnv()
  if (seat === null && resolveWorkers(gateway.workers) > 1) return await runSupervisor(argv, gateway, pretty)
  const seatConfig = (c: Config): Config => seat === null ? c : workerConfig(c, seat.index, seat.count)
  const cfg = seatConfig(gateway)
  const shard = seat === null ? null : new WorkerShard(seat.index, seat.count, gateway)
  const log = createLogger(cfg.logLevel, pretty)
  const publicIp = cfg.public as string
  // Every port and path is checked before the table exists and the queue is bound (src/cli/preflight.ts).
  await preflight({
    queue: cfg.queue,
    metricsPort: cfg.metricsPort,
    tcpListenPort: cfg.tcp && (shard?.runsTcp ?? true) ? cfg.tcpListenPort : null,
    controlSocket: cfg.controlSocket ?? defaultSocketPath(cfg.table, cfg.queue),
    readyFile: cfg.readyFile,
    stateFile: cfg.stateFile ?? defaultStatePath(cfg.table, cfg.queue)
  }, log)
  const tableSpec = { table: cfg.table, publicIp, outsideIf: cfg.outsideIf, mark: DEFAULT_MARK, mediaPorts: parsePortRange(gateway.mediaPorts), tcp: cfg.tcp }
  createTable(tableSpec)
  // IPv6 (README "IPv6"): on when an inside network is IPv6; its firewall sets live in table ip6.
  const ipv6 = cfg.inside.some(n => n.includes(':'))
  if (ipv6) createTable6(tableSpec)
  if (cfg.conntrackAccounting) enableAccounting(log)
  const nft = NftMaps.open(cfg.table)
  const nft6 = ipv6 ? NftMaps.open(cfg.table, 6) : undefined
  const kernel = kernelMaps(nft, nft6)
  const DEFER_MS = 10
  const CLEANUP_MS = 50
  const newAlg = (): Alg => new Alg(cfg, log, Date.now, b => { fixIpv4Udp(b) }, shard?.signallingPort)
  let alg = newAlg()
  const hep = startHep(cfg, () => alg, log)
  // The state file, or the store a gateway pair shares (docs/ha.md); the role says whether this
  // node processes the queue (src/cli/role.ts).
  const store = openStore(cfg.stateStore, cfg.stateFile ?? defaultStatePath(cfg.table, cfg.queue), cfg.table, log)
  const roles = new Roles(store, kernel, {
    takeOver: stored => {
      alg = succeed(alg, newAlg())
      hep?.attach(alg)
      adopt(alg, nft, log, nft6, shard?.ownsElement)
      if (stored === null) return { calls: 0, registrations: 0 }
      const taken = alg.restore(stored.state)
      log.info({ ...taken, savedSecondsAgo: Math.round((Date.now() - stored.state.savedAt) / 1000) }, 'took over the calls and registrations of the previous sipalg')
      return taken
    },
    standDown: () => { commit(false); alg = succeed(alg, newAlg()); hep?.attach(alg) },
    onChange: () => { alg.counters.inc('role_changes') },
    kernelElements: () => kernelElements(nft, nft6).map(({ remainingMs, ...e }) => ({ ...e, expiresAt: Date.now() + remainingMs }))
  }, log)
  await roles.start(cfg.stateStore === null ? null : { iface: cfg.outsideIf ?? '', address: publicIp })
  let lastPersistAt = 0
  const persist = (): void => { lastPersistAt = Date.now(); roles.writeState(alg.stateIfChanged()) }
  // A shared store (HA) gets call changes a few ms after their batch (coalesced): the standby must
  // know a call to take it over. The state file is written at most once a second
  // (src/store/file.ts): a change is snapshotted a few ms after its batch when the last save is a
  // second old (a sipalg killed right after a call began still hands it on), else with the next
  // second — never a snapshot per batch, which would be thrown away and costs loop time.
  const sharedStore = store.kind !== 'file'
  let persistScheduled = false
  const schedulePersist = (): void => {
    if (persistScheduled) return
    persistScheduled = true
    const wait = sharedStore ? DEFER_MS : Math.max(DEFER_MS, lastPersistAt + 1000 - Date.now())
    setTimeout(() => { persistScheduled = false; persist() }, wait)
  }
  const latency = new LatencyHistogram()

  // Set once SIP over TCP is up (below); a re-created table gets its divert chain back.
  let tcp: TcpService | null = null
  const queue = PacketQueue.open({ queue: cfg.queue, maxLen: cfg.queueMaxLen, rcvbufBytes: cfg.queueRcvbufBytes, failOpen: !cfg.failClosed })
  // A firewall reload that removes sipalg's table or queue rules is undone within CHECK_MS (src/netfilter/watch.ts).
  const watch = new RulesetWatch({
    table: cfg.table,
    queue: cfg.queue,
    script: tableScript(tableSpec),
    createTable: () => { createTable(tableSpec); tcp?.reinstall('ip') },
    rules: t => nft.rules(t),
    // Listed over the ip6 socket: `table ip6 <table>` and ip6tables-nft's `ip6 filter`.
    ipv6: nft6 === undefined ? undefined : { script: table6Script(tableSpec), createTable: () => { createTable6(tableSpec); tcp?.reinstall('ip6') }, rules: t => nft6.rules(t) },
    kernel,
    entries: () => alg.maps.all(),
    log,
    onHeal: what => {
      alg.counters.inc('ruleset_healed')
      if (what === 'table') shard?.tableRebuilt()
    }
  })
  if (shard?.watchesRuleset ?? true) watch.start()
  // Worker 0 rebuilt the shared table: this worker's elements went with the old one.
  shard?.onTableRebuilt(() => {
    const ops = replayOps(alg.maps.all(), Date.now())
    const failed = applyOps(kernel, ops)
    if (failed.length > 0) logCoded(log, 'error', 'E305_HEAL_FAILED', { what: `this worker's ${failed.length} of ${ops.length} mappings`, why: failed[0].error.message })
    else log.info({ elements: ops.length }, 'put this worker\'s mappings back into the table worker 0 rebuilt')
  })
  // Map changes go to the kernel before the verdicts only when a released message relies on them
  // (maps.mustPrecedeVerdict: the ports a phone advertises, a path not open yet); everything else
  // — removals at BYE/CANCEL/errors, narrowing a pinhole to the far end, refreshes — follows within
  // CLEANUP_MS after the verdicts, coalesced, so most packets never wait for an nft transaction.
  // Deferred ops ride along with the next batch, in order, so a later add never overtakes an
  // earlier delete of the same key. (Holding them back from pre-verdict batches was tried: under a
  // trunk's load the deferred batch grew large, and one stale op in it sends the whole batch op by
  // op (applyOps), which cost more than riding along.)
  let deferred: MapOp[] = []
  const commit = (beforeVerdict: boolean): void => {
    const first = alg.maps.mustPrecedeVerdict
    const ops = alg.maps.takePending()
    if (beforeVerdict && !first) {
      if (ops.length > 0) deferred = deferred.concat(ops)
      return
    }
    const all = deferred.length === 0 ? ops : deferred.concat(ops)
    deferred = []
    roles.writeOps(all)
    for (const f of applyOps(kernel, all)) {
      alg.counters.inc('map_ops_failed')
      log.error({ code: shortCode('E309_MAP_REFUSED'), map: f.op.map, key: f.op.key, err: f.error.message }, 'kernel refused a mapping change')
    }
  }
  // A media flow the kernel still tracks outlives its map element: forget it so the ended call's
  // far end is cut off and a reused public port starts clean. Runs after the verdicts are sent
  // (never on the packet path), all deletes of a wake-up in one netlink send.
  let cleanupScheduled = false
  const afterVerdicts = (): void => {
    cleanupScheduled = false
    commit(false)
    if (!alg.hasStaleFlows()) return
    const { v4: tuples, v6 } = staleTuples(alg.takeStaleFlows(), publicIp)
    try {
      alg.counters.inc('conntrack_deleted', deleteConntrack(tuples) + deleteConntrack6(v6))
    } catch (e) { log.warn({ code: shortCode('E310_CONNTRACK'), err: (e as Error).message, flows: tuples.length + v6.length }, 'could not delete conntrack entries of ended calls') }
  }
  // Deferred changes wait CLEANUP_MS so that many calls' removals share one nft transaction and
  // one conntrack send instead of costing one each per wake-up: every one of those sends is loop
  // time a packet arriving meanwhile waits for.
  const scheduleCleanup = (): void => {
    if (cleanupScheduled || (deferred.length === 0 && !alg.hasStaleFlows())) return
    cleanupScheduled = true
    setTimeout(afterVerdicts, CLEANUP_MS)
  }
  // A worker answers other workers' handoffs like a batch of its own (one commit before the answers).
  shard?.start(queue, packets => {
    const verdicts = packets.map(p => alg.process(p))
    commit(true)
    scheduleCleanup()
    schedulePersist()
    return verdicts
  })
  queue.onPackets(read => {
    // Packets of phones another worker owns are handed to it; their verdicts follow its answers.
    const batch = shard === null ? read : shard.keepOwn(read)
    if (!roles.processes) {
      for (const p of batch) queue.verdict(p.id, 'accept')
      queue.flush()
      return
    }
    const t0 = process.hrtime.bigint()
    const verdicts = batch.map(p => alg.process(p.payload))
    commit(true)
    for (let i = 0; i < batch.length; i++) {
      const v = verdicts[i]
      if (v.action === 'drop') queue.verdict(batch[i].id, 'drop')
      else queue.verdict(batch[i].id, 'accept', v.payload)
    }
    queue.flush()
    latency.record(Number(process.hrtime.bigint() - t0) / 1000, batch.length)
    scheduleCleanup()
    schedulePersist()
  })

  // SIP over TCP: a spliced message is written once the changes it relies on are in (as a verdict).
  tcp = cfg.tcp && (shard?.runsTcp ?? true) ? await startTcp(cfg, () => alg, log, () => { commit(true); scheduleCleanup() }, ipv6) : null
  for (const d of tcp?.divertScripts ?? []) watch.expectAlso(d.family, d.script)
  const timer = setInterval(() => { alg.tick(); commit(false); scheduleCleanup(); persist() }, 1000)
  const startedAt = Date.now()
  const socketPath = cfg.controlSocket ?? defaultSocketPath(cfg.table, cfg.queue)
  const metricsSource: MetricsSource = {
    counters: () => alg.counters.snapshot(),
    gauges: () => {
      const st = alg.status()
      const q = queue.stats()
      return {
        active_calls: st.calls.length,
        active_calls_ipv6: st.calls.filter(c => c.family === 'ipv6').length,
        registrations: st.registrations.length,
        ...Object.fromEntries(Object.entries(st.mappings).map(([k, v]) => [`mappings_${k}`, v])),
        queue_enobufs: q.enobufs,
        queue_fail_open_bypasses_inferred: q.failOpenBypassesInferred,
        ...(tcp === null ? {} : { tcp_connections_open: tcp.connections().length })
      }
    },
    latency
  }
  const control = serveControl(socketPath, {
    status: () => withTraffic({ ...alg.status(), uptimeSeconds: Math.round((Date.now() - startedAt) / 1000), latencyUs: latency.summary(), queue: queue.stats(), ruleset: watch.status(), ha: roles.status(), tcpConnections: tcp?.connections(), worker: shard?.stats() }),
    // A worker's metrics, summed by the supervisor (src/workers/supervisor.ts).
    metrics: () => metricsSnapshot(metricsSource)
  }, {
    trace: traceStream(publicIp, listener => { alg.onMessage = listener })
  })
  const metrics = cfg.metricsPort === 0 ? null : serveMetrics(cfg.metricsPort, metricsSource)
  log.info({ queue: cfg.queue, ...(shard === null ? {} : { worker: `${shard.index}/${shard.count}` }), public: publicIp, inside: cfg.inside, table: cfg.table, mediaPorts: cfg.mediaPorts }, 'sipalg running')
  if (cfg.readyFile !== null) writeFileSync(cfg.readyFile, `${process.pid}\n`)
  shard?.ready()
  // A worker answers to its supervisor, never to systemd.
  const notifier = shard === null ? startNotifier(log) : null
  notifier?.ready(`processing queue ${cfg.queue}`)

  return await new Promise<number>(resolve => {
    let stopping = false
    const stop = (sig: string): void => {
      if (stopping) return // a worker hears both its supervisor's SIGTERM and the disconnect
      stopping = true
      notifier?.stopping()
      notifier?.close()
      clearInterval(timer)
      watch.stop()
      tcp?.stop()
      shard?.close()
      commit(false)
      persist()
      // Kernel mappings stay: calls in progress keep their audio; the rules fail open.
      queue.close()
      nft.close()
      control.close()
      metrics?.close()
      hep?.sender.close()
      rmSync(socketPath, { force: true })
      if (cfg.readyFile !== null) rmSync(cfg.readyFile, { force: true })
      log.info({ signal: sig, counters: alg.counters.snapshot(), queue: queue.stats(), latencyUs: latency.summary() }, 'sipalg stopped; kernel mappings left to expire')
      void roles.stop().finally(() => { resolve(0) })
    }
    // SIGHUP: re-read the config; what can change live does, for calls in progress too.
    process.on('SIGHUP', () => {
      try {
        const next = seatConfig(runConfig(argv).cfg)
        const needRestart = alg.reconfigure(next)
        log.info({ needRestart }, needRestart.length === 0 ? 'config reloaded' : 'config reloaded; some changes need a restart')
      } catch (e) {
        if (e instanceof SipalgError) log.error({ code: shortCode(e.code), err: e.toString() }, 'config reload failed; keeping the running config')
        else logCoded(log, 'error', 'E306_RELOAD_FAILED', { why: String(e) })
      }
    })
    // A worker whose supervisor is gone (killed) stops too: nobody would restart or report it.
    if (shard !== null) process.once('disconnect', () => stop('supervisor gone'))
    process.once('SIGTERM', () => stop('SIGTERM'))
    process.once('SIGINT', () => stop('SIGINT'))
  })
}
