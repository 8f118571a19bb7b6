import t from 'tap'
import { PacketQueue, fixIpv4Udp } from '../../src/netfilter/queue.js'
import { SipalgError } from '../../src/errors.js'
import { Netns, ensureCompiled, nativeBuilt } from './fixtures/netns.js'

t.test('bad queue numbers are refused (E203) before the kernel is touched', async t => {
  for (const queue of [70000, 65536, -1, 1.5, Number.NaN, '3' as unknown as number]) {
    let err: unknown
    try { PacketQueue.open({ queue }) } catch (e) { err = e }
    t.ok(err instanceof SipalgError, `queue ${String(queue)}: SipalgError`)
    t.equal((err as SipalgError).code, 'E203_QUEUE_BIND')
    t.match((err as SipalgError).message, /cannot bind nfqueue .*0\.\.65535/)
  }
})

t.test('fixIpv4Udp recomputes lengths and checksums', { skip: nativeBuilt() ? false : 'native addon not built' }, async t => {
  // 10.0.1.23:5060 -> 203.0.113.9:5060 "hello", checksums verified independently below
  const body = Buffer.from('hello')
  const p = Buffer.alloc(28 + body.length)
  p[0] = 0x45; p[8] = 64; p[9] = 17
  Buffer.from([10, 0, 1, 23, 203, 0, 113, 9]).copy(p, 12)
  p.writeUInt16BE(5060, 20); p.writeUInt16BE(5060, 22)
  body.copy(p, 28)
  t.equal(fixIpv4Udp(p), true)
  t.equal(p.readUInt16BE(2), 33, 'IP total length')
  t.equal(p.readUInt16BE(24), 13, 'UDP length')
  const fold = (a: number): number => { while (a > 0xffff) a = (a & 0xffff) + (a >>> 16); return a }
  const sum = (b: Buffer, s: number, e: number, acc = 0): number => { for (let i = s; i < e; i += 2) acc += (b[i] << 8) | (i + 1 < e ? b[i + 1] : 0); return acc }
  t.equal(fold(sum(p, 0, 20)), 0xffff, 'IP header checksum verifies')
  t.equal(fold(sum(p, 20, 33, sum(p, 12, 20) + 17 + 13)), 0xffff, 'UDP checksum verifies')
  t.equal(fixIpv4Udp(Buffer.from('not a packet at all, not at all')), false)
})

t.test('NFQUEUE in a private namespace', { skip: nativeBuilt() ? false : 'native addon not built (make native)' }, async t => {
  ensureCompiled()
  const ns = new Netns('q')
  t.teardown(() => ns.destroy())
  // queue N for UDP to port 6000+N; port 6100 is queued with --queue-bypass and nothing bound
  const rule = (queue: number, port: number, bypass = false): void =>
    ns.iptables('-A', 'OUTPUT', '-p', 'udp', '--dport', String(port), '-j', 'NFQUEUE', '--queue-num', String(queue), ...(bypass ? ['--queue-bypass'] : []))
  for (const q of [1, 2, 3, 4, 5, 6]) rule(q, 6000 + q)
  rule(100, 6100, true)

  t.test('accept delivers the original payload', async t => {
    const r = await ns.driver('queue-driver.mjs', { mode: 'echo', queue: 1, port: 6001, count: 20, policy: 'accept', settleMs: 800 }).done()
    const s = r.stats as Record<string, number>
    t.equal(r.received, 20)
    t.match(r.sample, [/^pkt-0-/, /^pkt-1-/, /^pkt-2-/])
    t.equal(s.packets, 20)
    t.equal(s.verdictsSent, 20)
    t.equal(s.accepted, 20)
    t.equal(s.sendErrors, 0)
    t.equal((s as any).kernel.copyMode, 2, 'copy-packet mode')
  })

  t.test('drop: nothing arrives', async t => {
    const r = await ns.driver('queue-driver.mjs', { mode: 'echo', queue: 2, port: 6002, count: 10, policy: 'drop', settleMs: 600 }).done()
    const s = r.stats as Record<string, number>
    t.equal(r.received, 0)
    t.equal(s.packets, 10)
    t.equal(s.dropped, 10)
    t.equal(s.verdictsSent, 10)
  })

  t.test('accept with a new payload: the receiver sees the new bytes', async t => {
    const r = await ns.driver('queue-driver.mjs', { mode: 'echo', queue: 3, port: 6003, count: 20, policy: 'rewrite', settleMs: 800 }).done()
    const s = r.stats as Record<string, number>
    t.equal(r.received, 20)
    t.equal(r.allRewritten, true)
    t.match(r.sample, [/^RW:pkt-0-/])
    t.equal(s.replaced, 20)
  })

  t.test('a batch of 2000 packets is all verdicted, in few JS calls', async t => {
    const r = await ns.driver('queue-driver.mjs', { mode: 'echo', queue: 4, port: 6004, count: 2000, size: 500, policy: 'rewrite', nativeCsum: true, settleMs: 1500, burst: 50, pauseMs: 3 }).done()
    const s = r.stats as Record<string, number>
    t.equal(r.received, 2000)
    t.equal(r.allRewritten, true, 'rewritten with fixIpv4Udp checksums')
    t.equal(s.packets, 2000)
    t.equal(s.verdictsSent, 2000)
    t.equal(s.idGaps, 0)
    t.equal(s.enobufs, 0)
    t.ok(s.batches < 2000, `batches ${s.batches} < packets, max batch ${s.maxBatchSeen}`)
    t.ok(s.flushes <= s.batches + 1, `one send() per batch (${s.flushes})`)
  })

  t.test('--queue-bypass with nothing bound: traffic passes', async t => {
    const r = await ns.driver('queue-driver.mjs', { mode: 'send', port: 6100, count: 10, settleMs: 500 }).done()
    t.equal(r.received, 10)
  })

  t.test('a second process binding the same queue gets E202', async t => {
    const a = ns.driver('queue-driver.mjs', { mode: 'hold', queue: 5, seconds: 30 })
    t.teardown(() => a.kill())
    await a.ready()
    const b = await ns.driver('queue-driver.mjs', { mode: 'open', queue: 5 }).done()
    t.equal(b.opened, false)
    t.equal(b.code, 'E202_QUEUE_BUSY')
    t.match(b.message, /nfqueue 5 is already bound by another process/)
    a.kill()
    await a.done(10_000).catch(() => null)
  })

  t.test('verdict on unknown ids is counted, not fatal; close is idempotent; use after close throws', async t => {
    const r = await ns.driver('queue-driver.mjs', { mode: 'lifecycle', queue: 6, port: 6006 }).done()
    const s = r.stats as Record<string, number>
    t.equal(r.received, 3, 'the queue keeps working afterwards')
    t.equal(s.verdictErrors, 2)
    t.equal(s.lastVerdictErrno, 2, 'ENOENT')
    t.match(r.useAfterClose, /closed/)
    t.match(r.flushAfterClose, /closed/)
    t.equal(r.statsAfterClose, true)
  })
})
