// The SIP/TCP part of `sipalg run`: the interception (src/netfilter/tproxy.ts), the transparent
// listener and the splice (src/tcp/splice.ts), started after the table exists and taken away on stop.
// sipalg owns the interception: what it added at start it removes at stop (`sipalg rules uninstall`
// removes it too, after a crash). With IPv6 on (an IPv6 inside prefix) each family has its own
// listener and interception: IPv4's exactly as without IPv6, IPv6's beside it (an IPv6-only socket
// on the same port, its chain in `table ip6`), one splice for both.
import type { Server, Socket } from 'node:net'
import type { Logger } from 'pino'
import type { Alg } from '../alg.js'
import { insideOf, type Config } from '../config.js'
import { DEFAULT_TPROXY, divertScript, installInterception, removeInterception, type InterceptionRecord, type TproxySpec } from '../netfilter/tproxy.js'
import { connectUpstream, listenTransparent } from '../netfilter/transparent.js'
import type { Family } from '../netfilter/table.js'
import { TcpSplice, type ConnectionStatus } from './splice.js'
import { shortCode } from '../errors.js'

export interface TcpService {
  connections: () => ConnectionStatus[]
  /** The nft commands of each family's divert chain, IPv4's first (for the ruleset watch to check they are still there). */
  divertScripts: Array<{ family: Family, script: string }>
  /** Puts a family's interception back (after sipalg's table of that family was removed by someone else and re-created). */
  reinstall: (family: Family) => void
  stop: () => void
}

export function tproxySpec (cfg: Config, family: Family = 'ip'): TproxySpec {
  return { family, table: cfg.table, sipPorts: cfg.sipPorts, listenPort: cfg.tcpListenPort, ...DEFAULT_TPROXY }
}

/** One family's listener and the interception that diverts to it. */
interface Intercepting { spec: TproxySpec, server: Server, record: InterceptionRecord }

/**
 * Starts SIP over TCP; `beforeWrite` applies the kernel changes a message about to be written relies on.
 * `algOf`: the daemon's current Alg (a gateway pair's role change replaces it, src/cli/role.ts).
 * `ipv6`: IPv6 is on (src/cli/run.ts), IPv6 connections are diverted too.
 */
export async function startTcp (cfg: Config, algOf: () => Alg, log: Logger, beforeWrite: () => void, ipv6 = false): Promise<TcpService> {
  const l = cfg.tcpLimits
  const splice = new TcpSplice({
    core: { processMessage: (b, leg) => algOf().processMessage(b, leg), publicPort: p => algOf().signalling.allocateAndInstall(p), counters: { inc: (name, by) => { algOf().counters.inc(name, by) } } },
    isInside: insideOf(cfg),
    publicIp: cfg.public as string,
    limits: { connections: l.connections, connectionsPerHost: l.connectionsPerHost, idleMs: l.idle * 1000, connectTimeoutMs: l.connectTimeout, maxHeaderBytes: l.maxHeaderBytes, maxBodyBytes: l.maxBodyBytes },
    nonSip: cfg.tcpNonSip,
    beforeWrite,
    connect: connectUpstream,
    log
  })
  const uninstall = (i: Intercepting): void => {
    try { removeInterception(i.spec, i.record) } catch (e) { log.warn({ code: shortCode('E208_POLICY_ROUTING'), err: (e as Error).message }, 'could not remove the SIP/TCP interception') }
  }
  const families: Family[] = ipv6 ? ['ip', 'ip6'] : ['ip']
  const on: Intercepting[] = []
  try {
    for (const family of families) on.push(await intercept(tproxySpec(cfg, family), s => { splice.accept(s) }, log))
  } catch (e) {
    // IPv6's failed: IPv4's goes again, sipalg does not start half intercepting.
    for (const i of on) { i.server.close(); uninstall(i) }
    throw e
  }
  log.info({ ports: cfg.sipPorts, listen: cfg.tcpListenPort, families }, 'SIP over TCP spliced')
  return {
    connections: () => splice.status(),
    divertScripts: on.map(i => ({ family: i.spec.family, script: divertScript(i.spec) })),
    reinstall: family => {
      const i = on.find(x => x.spec.family === family)
      if (i === undefined) return
      try { installInterception(i.spec) } catch (e) { log.warn({ code: shortCode('E305_HEAL_FAILED'), what: `the SIP/TCP interception (${family})`, err: (e as Error).message }, 'could not put back the SIP/TCP interception') }
    },
    stop: () => {
      // Legs drop (the phones reconnect); media of live calls stays in the kernel.
      for (const i of on) i.server.close()
      splice.closeAll()
      for (const i of on) uninstall(i)
    }
  }
}

/** A family's transparent listener, then the interception that diverts to it (never to a port nobody accepts on). */
async function intercept (spec: TproxySpec, accept: (s: Socket) => void, log: Logger): Promise<Intercepting> {
  const server = await listenTransparent({ port: spec.listenPort, ...(spec.family === 'ip6' ? { ip: '::' } : {}) }, accept)
  server.on('error', e => { log.warn({ code: shortCode('E207_TRANSPARENT_SOCKET'), err: e.message }, 'SIP/TCP listener error') })
  try {
    return { spec, server, record: installInterception(spec) }
  } catch (e) {
    server.close()
    throw e
  }
}
