// workers: N (docs/workers.md): the pure parts — who owns a packet, the port slices, the merged
// status, the config key — and the handoff channel over a real unix socket.

import t from 'tap'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { buildConfig, defaults } from '../src/config.js'
import { insideOf } from '../src/config.js'
import { runConfig } from '../src/cli/run.js'
import { rulesArgs } from '../src/cli/rules.js'
import { elementOwner, mediaSlice, ownerOfIp, ownsSignallingPort, packetOwner } from '../src/workers/shard.js'
import { mergeStatus, type Seat, type WorkerDoc } from '../src/workers/merge.js'
import { HandoffClient, MAX_IN_FLIGHT, decodeVerdict, encodeVerdict, serveHandoff } from '../src/workers/handoff.js'
import { createServer } from 'node:net'
import { ipv6Bytes } from '../src/ip6.js'
import { resolveWorkers, workerConfig, workerFromEnv, workerPaths, WorkerShard } from '../src/workers/worker.js'
import { restartDelayMs, runSupervisor, supervise } from '../src/workers/supervisor.js'
import { askControl, streamControl } from '../src/cli/control.js'
import { createLogger } from '../src/log.js'
import { sumMetrics, renderMetrics, type MetricsSnapshot } from '../src/metrics.js'
import type { QueuedPacket } from '../src/netfilter/queue.js'

/** A 28-byte IPv4/UDP header from src to dst (enough for the owner: the addresses). */
function ipv4 (src: string, dst: string): Buffer {
  const b = Buffer.alloc(28)
  b[0] = 0x45
  b[9] = 17
  src.split('.').forEach((x, i) => { b[12 + i] = Number(x) })
  dst.split('.').forEach((x, i) => { b[16 + i] = Number(x) })
  return b
}

const inside = insideOf(buildConfig([{ inside: ['10.0.1.0/24'] }]))

t.test('the owner of a packet is its inside address\'s, both ways, whatever the far end', async t => {
  for (const phone of ['10.0.1.23', '10.0.1.24', '10.0.1.200']) {
    const owner = ownerOfIp(phone, 2)
    for (const far of ['203.0.113.9', '203.0.113.10', '198.51.100.7']) {
      t.equal(packetOwner(ipv4(phone, far), inside, 2), owner, `${phone} → ${far}`)
      t.equal(packetOwner(ipv4(far, phone), inside, 2), owner, `${far} → ${phone}`)
    }
  }
  t.equal(packetOwner(ipv4('10.0.1.2', '10.0.1.3'), inside, 2), null, 'inside to inside: nobody\'s (passed as transit)')
  t.equal(packetOwner(ipv4('203.0.113.9', '203.0.113.10'), inside, 2), null, 'outside to outside: nobody\'s')
  t.equal(packetOwner(Buffer.from([0x60, 0, 0, 0]), inside, 2), null, 'a truncated IPv6 header')
  t.equal(packetOwner(Buffer.from([0x50, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]), inside, 2), null, 'neither IPv4 nor IPv6')
  t.equal(ownerOfIp('10.0.1.23', 1), 0, 'one worker owns everything')
  // A /24 of phones spreads over the workers (the hash mixes the low bits).
  for (const n of [2, 3, 4]) {
    const per = new Array<number>(n).fill(0)
    for (let i = 1; i < 255; i++) per[ownerOfIp(`10.0.1.${i}`, n)]++
    t.ok(per.every(c => c > 254 / n * 0.6), `${n} workers share a /24: ${per.join(', ')}`)
  }
})

/** A 48-byte IPv6/UDP header from src to dst. */
function ipv6 (src: string, dst: string): Buffer {
  const b = Buffer.alloc(48)
  b[0] = 0x60
  b[6] = 17
  ipv6Bytes(src)?.copy(b, 8)
  ipv6Bytes(dst)?.copy(b, 24)
  return b
}

t.test('an IPv6 phone is owned like an IPv4 one: by its own address, both ways; its pinholes by it too', async t => {
  const dual = insideOf(buildConfig([{ inside: ['10.0.1.0/24', '2001:db8:1::/64'] }]))
  const per = [0, 0]
  for (const phone of ['2001:db8:1::23', '2001:db8:1::24', '2001:db8:1::1:5']) {
    const owner = ownerOfIp(phone, 2)
    per[owner]++
    for (const far of ['2001:db8:2::9', '2001:db8:2::10']) {
      t.equal(packetOwner(ipv6(phone, far), dual, 2), owner, `${phone} → ${far}`)
      t.equal(packetOwner(ipv6(far, phone), dual, 2), owner, `${far} → ${phone}`)
      t.equal(elementOwner({ map: 'pinhole6', key: { ip: far, dst: phone, port: 20000 }, data: { ip: phone, port: 20000 } }, 2), owner, 'its pinhole')
    }
  }
  t.equal(packetOwner(ipv6('2001:db8:2::9', '2001:db8:2::10'), dual, 2), null, 'outside to outside: nobody\'s')
  for (let i = 1; i < 255; i++) per[ownerOfIp(`2001:db8:1::${i.toString(16)}`, 2)]++
  t.ok(per.every(c => c > 257 / 2 * 0.6), `2 workers share a /64's phones: ${per.join(', ')}`)
})

t.test('media slices: whole RTP/RTCP pairs, disjoint, covering the range; too small a range is refused', async t => {
  for (const [range, n] of [[{ lo: 20000, hi: 29999 }, 2], [{ lo: 20001, hi: 20100 }, 3], [{ lo: 20000, hi: 20007 }, 2]] as const) {
    const slices = Array.from({ length: n }, (_, i) => mediaSlice(range, i, n))
    t.ok(slices.every(s => s !== null && s.lo % 2 === 0 && s.hi % 2 === 1 && s.hi - s.lo >= 3), `${range.lo}-${range.hi} / ${n}: even starts, odd ends, two pairs each`)
    for (let i = 1; i < n; i++) t.equal(slices[i]?.lo, (slices[i - 1]?.hi ?? 0) + 1, 'next to each other, no gap, no overlap')
    t.equal(slices[0]?.lo, range.lo + (range.lo % 2), 'from the first even port')
  }
  t.same(mediaSlice({ lo: 20000, hi: 29999 }, 1, 2), { lo: 25000, hi: 29999 })
  t.equal(mediaSlice({ lo: 20000, hi: 20005 }, 0, 2), null, 'three pairs cannot give two to each of two workers')
  t.throws(() => buildConfig([{ workers: 2, media_ports: '20000-20005' }]), { code: 'E103_CONFIG_KEY', message: /media_ports.*fewer than two for each of 2 workers/ })
})

t.test('signalling ports are interleaved: every port has exactly one owner', async t => {
  for (const n of [1, 2, 3]) {
    for (const port of [1024, 5060, 5061, 40000, 65535]) {
      t.equal(Array.from({ length: n }, (_, i) => ownsSignallingPort(port, i, n)).filter(Boolean).length, 1, `port ${port}, ${n} workers`)
    }
  }
  const gw = buildConfig([{ workers: 2, media_ports: '20000-29999' }])
  const w1 = new WorkerShard(1, 2, gw)
  t.equal(w1.signallingPort(5061), true)
  t.equal(w1.signallingPort(5060), false, 'worker 0\'s port')
  t.equal(w1.signallingPort(20001), false, 'never in the media range, not even another worker\'s slice')
})

t.test('restart adoption: a kernel element belongs to the worker of the phone it serves', async t => {
  const phone = '10.0.1.23'
  const o = ownerOfIp(phone, 2)
  t.equal(elementOwner({ map: 'src_nat', key: { ip: phone, port: 5060 }, data: { port: 5060 } }, 2), o)
  t.equal(elementOwner({ map: 'any_dnat', key: { port: 20000 }, data: { ip: phone, port: 16000 } }, 2), o)
  t.equal(elementOwner({ map: 'peer_dnat', key: { ip: '203.0.113.9', port: 20000 }, data: { ip: phone, port: 16000 } }, 2), o)
  t.equal(elementOwner({ map: 'latch_dnat', key: { ip: '203.0.113.9', sport: 7078, port: 20000 }, data: { ip: phone, port: 16000 } }, 2), o)
  const w = new WorkerShard(o, 2, buildConfig([{ workers: 2 }]))
  t.equal(w.ownsElement({ map: 'src_nat', key: { ip: phone, port: 5060 }, data: { port: 5060 }, remainingMs: 1 }), true)
})

t.test('workers config: auto or 1-64, flags and rules; a worker\'s own queue, slice and paths', async t => {
  t.equal(defaults.workers, 1, 'one worker unless asked (docs/workers.md says why)')
  t.equal(buildConfig([{ workers: 'auto' }]).workers, 'auto')
  t.equal(buildConfig([{ workers: '4' }]).workers, 4)
  t.throws(() => buildConfig([{ workers: 0 }]), { code: 'E103_CONFIG_KEY', message: /workers.*not auto or a number/ })
  t.throws(() => buildConfig([{ workers: 'many' }]), { code: 'E103_CONFIG_KEY' })
  t.throws(() => buildConfig([{ workers: 3, queue: 65534 }]), { code: 'E103_CONFIG_KEY', message: /queues 65534-65536/ })
  t.throws(() => runConfig(['--workers', 'x', '--public', '203.0.113.1']), { code: 'E101_BAD_FLAG' })
  t.equal(runConfig(['--workers', 'auto', '--public', '203.0.113.1']).cfg.workers, 'auto')
  t.equal(resolveWorkers('auto', 8), 8)
  t.equal(resolveWorkers(3, 8), 3)
  t.same(rulesArgs(['install', '--workers', '2', '--print']), ['install', '--workers', '2', '--print'])
  t.same(rulesArgs(['install']), ['install'], 'no --workers: the script\'s default, one queue')

  t.equal(workerFromEnv({ SIPALG_WORKER: '1/2' })?.index, 1)
  t.equal(workerFromEnv({ SIPALG_WORKER: '2/2' }), null, 'no seat past the count')
  t.equal(workerFromEnv({}), null)
  const gw = buildConfig([{ workers: 2, queue: 4, control_socket: '/run/x/gw.sock', state_file: '/run/x/gw.json', ready_file: '/run/x/ready', metrics_port: 9260, public: '203.0.113.1' }])
  const w1 = workerConfig(gw, 1, 2)
  t.same([w1.queue, w1.mediaPorts, w1.controlSocket, w1.stateFile, w1.readyFile, w1.metricsPort], [5, '25000-29999', '/run/x/gw.sock.w1', '/run/x/gw.json.w1', null, 0])
  t.equal(workerPaths(gw, 0).handoff, '/run/x/gw.sock.h0')
  t.same([w1.limits.maxCalls, w1.limits.callsPerSecond, w1.limits.callsPerHost], [5000, 1000, 200], 'gateway-wide limits shared out, per-host ones kept')
})

t.test('the supervisor backs off a worker that keeps dying', async t => {
  t.same([0, 1, 2, 3, 10].map(restartDelayMs), [100, 200, 400, 800, 5000])
})

const seat = (index: number, up = true): Seat => ({ index, queue: index, pid: up ? 100 + index : null, up, restarts: index, lastExit: null })
function doc (calls: number, packets: number, p99: number): WorkerDoc {
  return {
    uptimeSeconds: 5,
    publicIp: '203.0.113.1',
    calls: Array.from({ length: calls }, (_, i) => ({ callId: `c${i}`, phone: '10.0.1.23:5060', direction: 'out', state: 'confirmed', ageSeconds: 1, media: [], flows: [] })),
    registrations: [{ phone: '10.0.1.23:5060', publicPort: 5060, registrar: '203.0.113.9', aor: 'sip:a@x', expiresInSeconds: 60 }],
    mappings: { src_nat: 1, any_dnat: calls },
    counters: { queued: packets, rewritten: packets - 1 },
    latencyUs: { packets, p50: 10, p99, mean: 20 },
    queue: { packets, enobufs: 1, kernel: null },
    worker: { index: 0, count: 2, pid: 1, handoff: { sent: 3, failed: 0, served: 2, rttUs: { packets: 3, p50: 35, p99: 50, p999: 50, max: 50, mean: 40 } } }
  }
}

t.test('status merge: the whole gateway, and one line per worker', async t => {
  const m = mergeStatus([seat(0), seat(1)], [doc(2, 100, 50), doc(1, 300, 200)], { uptimeSeconds: 9, publicIp: '203.0.113.1', counters: { worker_restarts: 1 } })
  t.equal(m.calls.length, 3)
  t.equal(m.registrations.length, 2)
  t.same(m.mappings, { src_nat: 2, any_dnat: 3 })
  t.same(m.counters, { queued: 400, rewritten: 398, worker_restarts: 1 })
  t.same(m.latencyUs, { packets: 400, p50: 10, p99: 200, mean: 20 }, 'quantiles: the worst worker\'s')
  t.same(m.queue, { packets: 400, enobufs: 2 })
  t.equal(m.uptimeSeconds, 9)
  t.same(m.workers?.map(w => [w.index, w.pid, w.up, w.calls, w.packets, w.restarts, w.handoff?.sent]), [[0, 100, true, 2, 100, 0, 3], [1, 101, true, 1, 300, 1, 3]])

  const down = mergeStatus([seat(0), seat(1, false)], [doc(2, 100, 50), null], { uptimeSeconds: 9, publicIp: '203.0.113.1', counters: {} })
  t.equal(down.calls.length, 2, 'a worker being restarted adds nothing')
  t.same(down.workers?.[1], { index: 1, queue: 1, pid: null, up: false, restarts: 1, calls: 0, registrations: 0, packets: 0, handoff: null, lastExit: null })
})

t.test('metrics: the workers\' counters, gauges and histogram buckets summed', async t => {
  const snap = (n: number): MetricsSnapshot => ({ counters: { queued: n }, gauges: { active_calls: 1 }, latency: { counts: [n, 0, ...new Array<number>(21).fill(0)], total: n, sumUs: n, maxUs: 1 } })
  const text = renderMetrics(sumMetrics([snap(5), snap(7)], { counters: { worker_restarts: 2 }, gauges: { workers: 2 } }))
  t.match(text, /^sipalg_queued_total 12$/m)
  t.match(text, /^sipalg_worker_restarts_total 2$/m)
  t.match(text, /^sipalg_active_calls 2$/m)
  t.match(text, /^sipalg_workers 2$/m)
  t.match(text, /^sipalg_verdict_latency_microseconds_bucket\{le="1"\} 12$/m)
  t.match(text, /^sipalg_verdict_latency_microseconds_count 12$/m)
})

t.test('handoff: verdict frames round-trip', async t => {
  t.same(decodeVerdict(encodeVerdict(7, { action: 'drop' }).subarray(8)), { action: 'drop' })
  t.same(decodeVerdict(encodeVerdict(7, { action: 'accept' }).subarray(8)), { action: 'accept' })
  t.same(decodeVerdict(encodeVerdict(7, { action: 'accept', payload: Buffer.from('SIP/2.0 200 OK') }).subarray(8)), { action: 'accept', payload: Buffer.from('SIP/2.0 200 OK') })
})

t.test('handoff over a unix socket: the owner decides, the reader gives the kernel its answers; a dead owner fails open', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'sipalg-handoff-test-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  const path = join(dir, 'h1')
  const seen: Buffer[] = []
  const server = serveHandoff(path, packets => packets.map(p => {
    seen.push(Buffer.from(p))
    return p.includes('drop') ? { action: 'drop' as const } : { action: 'accept' as const, payload: Buffer.from(`rewritten ${p.toString()}`) }
  }), () => {})
  await new Promise<void>(resolve => server.once('listening', resolve))
  const verdicts: Array<[number, string, string | undefined]> = []
  let flushes = 0
  const sink = { verdict: (id: number, v: 'accept' | 'drop', payload?: Uint8Array) => { verdicts.push([id, v, payload === undefined ? undefined : Buffer.from(payload).toString()]) }, flush: () => { flushes++; return 0 } }
  const client = new HandoffClient([join(dir, 'h0'), path], sink, 200)
  t.teardown(() => { client.close() })
  // Big enough to arrive in more than one read: the frames are cut where the stream is.
  const big = Buffer.alloc(200_000, 0x61)
  client.send(1, 11, Buffer.from('INVITE one'))
  client.send(1, 12, Buffer.from('please drop'))
  client.send(1, 13, big)
  const deadline = Date.now() + 3000
  while (verdicts.length < 3 && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 10))
  t.same(verdicts.slice(0, 2), [[11, 'accept', 'rewritten INVITE one'], [12, 'drop', undefined]])
  t.equal(verdicts[2]?.[2]?.length, big.length + 'rewritten '.length, 'a large packet arrives whole')
  t.ok(flushes > 0, 'answers are flushed to the kernel')
  t.equal(seen.length, 3)
  const s = client.stats()
  t.same([s.sent, s.failed], [3, 0])

  // Worker 0 has no socket (down): its packet passes as it came, at once.
  client.send(0, 21, Buffer.from('REGISTER'))
  const end2 = Date.now() + 3000
  while (!verdicts.some(v => v[0] === 21) && Date.now() < end2) await new Promise(resolve => setTimeout(resolve, 10))
  t.same(verdicts.find(v => v[0] === 21), [21, 'accept', undefined], 'unreachable owner: accepted unmodified (fail-open)')
  t.equal(client.stats().failed, 1)
  server.close()
})

t.test('keepOwn: a batch is split into own packets and handed-off ones', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'sipalg-keepown-test-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  const gw = buildConfig([{ workers: 2, inside: ['10.0.1.0/24'], control_socket: join(dir, 'c.sock') }])
  // Two phones with different owners.
  let other = 1
  while (ownerOfIp(`10.0.1.${other}`, 2) === ownerOfIp('10.0.1.23', 2)) other++
  const me = ownerOfIp('10.0.1.23', 2)
  const w = new WorkerShard(me, 2, gw)
  const handed: number[] = []
  w.start({ verdict: id => { handed.push(id) }, flush: () => 0 }, packets => packets.map(() => ({ action: 'accept' as const })))
  t.teardown(() => { w.close() })
  const pkt = (id: number, src: string, dst: string): QueuedPacket => ({ id, payload: ipv4(src, dst) } as unknown as QueuedPacket)
  const own = w.keepOwn([pkt(1, '10.0.1.23', '203.0.113.9'), pkt(2, `10.0.1.${other}`, '203.0.113.9'), pkt(3, '203.0.113.9', '10.0.1.23'), pkt(4, '203.0.113.9', '203.0.113.10')])
  t.same(own.map(p => p.id), [1, 3, 4], 'own phone both ways, and transit, stay here')
  const end = Date.now() + 3000
  while (handed.length === 0 && Date.now() < end) await new Promise(resolve => setTimeout(resolve, 10))
  t.same(handed, [2], 'the other phone\'s packet went to its owner (down here: passed as it came)')
  t.same(w.stats().handoff?.sent, 1)
})

const FAKE = join(import.meta.dirname, 'fixtures', 'workers', 'fake-worker.mjs')
const quiet = createLogger('silent', false)
const waitFor = async (what: string, ok: () => boolean | Promise<boolean>): Promise<void> => {
  const end = Date.now() + 10_000
  while (!(await ok())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 20))
  }
}

t.test('the supervisor: starts the workers, restarts one that dies, answers for all, stops them', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'sipalg-supervise-test-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  const base = join(dir, 'gw.sock')
  const ready = join(dir, 'ready')
  const cfg = buildConfig([{ workers: 2, control_socket: base, ready_file: ready, public: '203.0.113.1' }])
  const s = supervise({ cfg, n: 2, log: quiet, module: FAKE, args: [base, 'crash-once', join(dir, 'crashed')], execArgv: [] })
  await waitFor('the ready file', () => existsSync(ready))
  type Doc = { calls: unknown[], counters: Record<string, number>, workers: Array<{ index: number, up: boolean, restarts: number, pid: number | null, lastExit: { code: number | null } | null }> }
  const status = async (): Promise<Doc> => await askControl(base, 'status') as Doc
  await waitFor('worker 1 restarted', async () => { const w = (await status()).workers[1]; return w.restarts === 1 && w.up })
  const doc = await status()
  t.equal(doc.calls.length, 2, 'both workers\' calls')
  t.equal(doc.counters.queued, 21, 'counters summed')
  t.equal(doc.counters.worker_restarts, 1, 'the restart counted')
  t.same(doc.workers.map(w => [w.index, w.up, w.restarts]), [[0, true, 0], [1, true, 1]])
  t.equal(doc.workers[1].lastExit?.code, 3, 'why it went')

  const events: unknown[] = []
  const trace = streamControl(base, 'trace', d => { events.push(d) })
  await waitFor('trace events from both workers', () => events.length >= 3)
  t.same(events.slice(1).map(e => (e as { far: string }).far).sort(), ['w0', 'w1'], 'one started line, then every worker\'s events')
  trace.stop()

  s.stop('test')
  t.equal(await s.done, 0)
  t.notOk(existsSync(ready), 'the ready file is removed')
  t.notOk(existsSync(base), 'the control socket is removed')
})

t.test('the supervisor: a worker whose loop is stuck is killed and restarted (E323); systemd hears READY once, then STOPPING', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'sipalg-supervise-hang-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  const base = join(dir, 'gw.sock')
  const cfg = buildConfig([{ workers: 2, control_socket: base, ready_file: join(dir, 'ready'), public: '203.0.113.1' }])
  const told: string[] = []
  const notifier = { ready: (status: string) => { told.push(`ready ${status}`) }, stopping: () => { told.push('stopping') }, close: () => { told.push('close') } }
  const s = supervise({ cfg, n: 2, log: quiet, module: FAKE, args: [base, 'hang', join(dir, 'hung')], execArgv: [], notifier, hungMs: 600 })
  type Doc = { workers: Array<{ up: boolean, restarts: number, lastExit: { signal: string | null } | null }> }
  const status = async (): Promise<Doc> => await askControl(base, 'status') as Doc
  await waitFor('worker 1 killed and back', async () => { const w = (await status()).workers[1]; return w.restarts === 1 && w.up })
  const w1 = (await status()).workers[1]
  t.equal(w1.lastExit?.signal, 'SIGKILL', 'killed, not waited for')
  t.same((await status()).workers.map(w => w.restarts), [0, 1], 'only the stuck one')
  t.same(told, ['ready 2 workers on queues 0-1'], 'READY once, when both were first up (a restart is not a new start)')
  s.stop('test')
  t.equal(await s.done, 0)
  t.same(told.slice(1), ['stopping', 'close'])
})

t.test('the supervisor: a worker that cannot start stops the gateway with its exit code', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'sipalg-supervise-fail-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  const base = join(dir, 'gw.sock')
  const cfg = buildConfig([{ workers: 2, control_socket: base, ready_file: join(dir, 'ready'), public: '203.0.113.1' }])
  const s = supervise({ cfg, n: 2, log: quiet, module: FAKE, args: [base, 'fail-start'], execArgv: [] })
  t.equal(await s.done, 75, 'worker 1\'s exit code (E202, a busy queue, in real life)')
  t.notOk(existsSync(join(dir, 'ready')), 'never ready')
})

t.test('the supervisor: worker 0 rebuilt the table, so the others put their elements back', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'sipalg-supervise-rebuild-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  const base = join(dir, 'gw.sock')
  const marker = join(dir, 'replayed')
  const cfg = buildConfig([{ workers: 2, control_socket: base, public: '203.0.113.1' }])
  const s = supervise({ cfg, n: 2, log: quiet, module: FAKE, args: [base, 'rebuild', marker], execArgv: [] })
  await waitFor('worker 1 told to replay', () => existsSync(marker))
  t.equal(readFileSync(marker, 'utf8'), 'replayed by w1\n', 'the other worker, not the one that rebuilt')
  s.stop('test')
  t.equal(await s.done, 0)
})

t.test('a worker hears that another rebuilt the table; only worker 0 heals the ruleset', async t => {
  const w0 = new WorkerShard(0, 2, buildConfig([{ workers: 2 }]))
  const w1 = new WorkerShard(1, 2, buildConfig([{ workers: 2 }]))
  t.ok(w0.watchesRuleset)
  t.notOk(w1.watchesRuleset, 'one healer for the shared table and rules')
  let replays = 0
  w1.onTableRebuilt(() => { replays++ })
  process.emit('message', { sipalgReplay: true }, undefined)
  process.emit('message', { sipalgWorkerReady: 0 }, undefined)
  t.equal(replays, 1, 'only the replay message')
})

t.test('the supervisor refuses a state store with workers (E319)', async t => {
  await t.rejects(runSupervisor([], buildConfig([{ workers: 2, state_store: 'redis://127.0.0.1:6379/0', public: '203.0.113.1' }]), false), { code: 'E319_WORKERS_WITH_STATE_STORE' })
})

t.test('handoff: an owner that falls behind holds at most MAX_IN_FLIGHT packets; the rest pass at once', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'sipalg-handoff-slow-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  const path = join(dir, 'h0')
  const silent = createServer(conn => { conn.on('data', () => {}) }) // reads, never answers
  await new Promise<void>(resolve => silent.listen(path, resolve))
  t.teardown(() => { silent.close() })
  const passed: number[] = []
  const client = new HandoffClient([path], { verdict: id => { passed.push(id) }, flush: () => 0 }, 60_000)
  t.teardown(() => { client.close() })
  for (let i = 0; i < MAX_IN_FLIGHT + 5; i++) client.send(0, i, Buffer.from('OPTIONS'))
  t.same(passed, [MAX_IN_FLIGHT, MAX_IN_FLIGHT + 1, MAX_IN_FLIGHT + 2, MAX_IN_FLIGHT + 3, MAX_IN_FLIGHT + 4], 'only the ones past the limit, at once')
  t.equal(client.stats().failed, 5)
})
