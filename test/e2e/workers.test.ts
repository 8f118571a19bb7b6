// workers: 2 (docs/workers.md): two sipalg processes on queues 0 and 1 behind one supervisor. The
// kernel picks a queue by a hash of the two addresses, random per boot; to make every case below
// cross shards whatever the hash, the test pins SIP with B to queue 0 and SIP with C to queue 1
// (rules before sipalg's own). Each inside phone has one owner (src/workers/shard.ts), so for each
// phone one of B and C is read by the other worker and handed over.

import t from 'tap'
import { existsSync, readFileSync } from 'node:fs'
import { Lab, ADDR, type Role } from '../lab/lab.js'
import { runCall } from '../lab/sip.js'
import { CLI, startSipalg } from '../lab/sipalg.js'
import { ownerOfIp } from '../../src/workers/shard.js'
import type { WorkerStatus } from '../../src/status.js'
import { count, find, leaked, mPorts, runFlow } from './flows.js'

const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }

/** Polls `ok` every 100 ms up to `ms`; the last value. */
async function until<T> (ms: number, get: () => Promise<T>, ok: (v: T) => boolean): Promise<T> {
  const end = Date.now() + ms
  let v = await get()
  while (!ok(v) && Date.now() < end) { await sleep(100); v = await get() }
  return v
}

t.test('two workers: cross-shard calls and registrations, a worker killed mid-call, one status', async t => {
  const lab = await Lab.up({ forwardPolicy: 'drop' })
  t.teardown(async () => { await lab.down() })
  const alg = await startSipalg(lab, { args: ['--workers', '2'], ruleArgs: ['--workers', '2'], config: 'inbound_sip_from: any\n' })
  t.teardown(async () => { await alg.stop() })
  for (const [far, q] of [[ADDR.b, 0], [ADDR.c, 1]] as const) {
    for (const side of ['-s', '-d']) {
      await lab.sh('gw', 'iptables', ['-w', '-I', 'SIPALG', '1', '-p', 'udp', side, far, '-m', 'multiport', '--ports', '5060', '-j', 'NFQUEUE', '--queue-num', String(q), '--queue-bypass'])
    }
  }
  const ownerA = ownerOfIp(ADDR.a, 2)
  const workers = async (): Promise<WorkerStatus[]> => ((await alg.status()) as unknown as { workers: WorkerStatus[] }).workers
  // Media mappings only: with inbound_sip_from: any, A's registration keeps its public SIP port in any_dnat.
  const media = async (): Promise<string[]> => (await alg.elements('any_dnat')).filter(e => /^2\d{4} :/.test(e))
  const handoffs = async (): Promise<{ sent: number, failed: number }> => (await workers()).reduce((s, w) =>
    ({ sent: s.sent + (w.handoff?.sent ?? 0), failed: s.failed + (w.handoff?.failed ?? 0) }), { sent: 0, failed: 0 })

  await t.test('the queue rules balance over two queues; status lists both workers', async t => {
    const rules = await lab.sh('gw', 'iptables', ['-w', '-S', 'SIPALG'])
    t.match(rules, /--dport 5060 .*-j NFQUEUE --queue-balance 0:1 --queue-bypass/)
    const ws = await workers()
    t.same(ws.map(w => [w.index, w.queue, w.up, w.restarts]), [[0, 0, true, 0], [1, 1, true, 0]])
    t.ok(ws[0].pid !== null && ws[1].pid !== null && ws[0].pid !== ws[1].pid && ws[0].pid !== alg.child.pid, `two worker processes (${ws.map(w => w.pid).join(', ')})`)
  })

  let publicPort = 0
  await t.test('A registers through B, C (not the registrar) calls A: RTP both ways, BYE from C', async t => {
    const before = await handoffs()
    const reg = await runFlow(lab, [
      { role: 'b', scenario: 'registrar.xml', keys: { granted: '120' } },
      { role: 'a', scenario: 'reg-uac.xml', remote: `${ADDR.b}:5060`, keys: { expires: '120', regseq: '1' } }
    ])
    t.ok(reg.ok, reg.describe())
    const contact = /^Contact: <sip:alice@203\.0\.113\.1:(\d+)>/m.exec(find(reg.peers.b?.received, /^REGISTER /)[0] ?? '')
    t.ok(contact !== null, 'the registrar sees the public Contact')
    publicPort = Number(contact?.[1] ?? 0)
    t.equal(publicPort % 2, ownerA, `A's public SIP port ${publicPort} is one of its owner's (worker ${ownerA})`)
    const call = await runFlow(lab, [
      { role: 'a', scenario: 'uas-wait-bye.xml' },
      { role: 'c', scenario: 'uac-bye.xml', remote: `${ADDR.gwPublic}:${publicPort}`, durationMs: 1500 }
    ])
    t.ok(call.ok, call.describe())
    const inv = find(call.peers.a?.received, /^INVITE /)[0] ?? ''
    t.match(inv, /^INVITE sip:service@10\.0\.1\.23:5060 SIP\/2\.0/, 'Request-URI restored to the phone')
    const ok = find(call.peers.c?.received, /^SIP\/2\.0 200 /)[0] ?? ''
    t.same(leaked(ok), [], 'the answer C gets names no private address')
    const pub = mPorts(ok)[0] ?? 0
    t.ok(count(call.rtp.a) > 10, `RTP C→A arrived at A (${count(call.rtp.a)})`)
    t.ok(count(call.rtp.c, { src: `203.0.113.1.${pub}` }) > 10, `RTP A→C from the public port in the answer (${count(call.rtp.c)})`)
    t.ok(find(call.peers.a?.received, /^BYE /).length > 0, 'C\'s BYE reached A')
    const after = await until(3000, media, e => e.length === 0)
    t.same(after, [], 'no media mapping after C\'s BYE')
    const h = await handoffs()
    t.ok(h.sent > before.sent, `packets were handed between the workers (${h.sent - before.sent})`)
    t.equal(h.failed, 0, 'every handoff answered')
    for (const w of await workers()) t.comment(`worker ${w.index}: handoff ${JSON.stringify(w.handoff)}`)
  })

  await t.test('A calls B, then C (one of them on the other worker\'s queue); B hangs up; sipalg trace sees both', async t => {
    const trace = lab.spawn('gw', 'node', [CLI, 'trace', '--json', '--socket', alg.socket])
    let traced = ''
    trace.stdout?.on('data', (c: Buffer) => { traced += c.toString() })
    await until(5000, async () => traced, s => s.includes('"trace":"started"'))
    for (const [to, byeFrom] of [['b', 'b'], ['c', 'a']] as Array<[Exclude<Role, 'gw'>, 'a' | 'b']>) {
      const r = await runCall(lab, { from: 'a', to, byeFrom, durationMs: 1500 })
      t.ok(r.ok, `call A→${to} (exit A=${String(r.exitA)} ${to}=${String(r.exitB)})`)
      t.same(leaked(r.inviteSeenByB), [], `the INVITE ${to} sees names no private address`)
      t.ok(r.rtpAtA > 20 && r.rtpAtB > 20, `RTP both ways at the phones (at A ${r.rtpAtA}, at ${to} ${r.rtpAtB})`)
      const left = await until(3000, media, e => e.length === 0)
      t.same(left, [], `the BYE from ${byeFrom === 'a' ? 'A' : to} removed the media mappings`)
    }
    t.equal((await alg.status()).calls.length, 0)
    await lab.stop(trace)
    const invites = traced.split('\n').filter(l => l.includes('"method":"INVITE"'))
    t.ok(invites.some(l => l.includes(`"far":"${ADDR.b}:`)) && invites.some(l => l.includes(`"far":"${ADDR.c}:`)), `trace shows the INVITEs to B and to C (${invites.length} INVITE events)`)
  })

  await t.test('A\'s worker killed (SIGKILL) mid-call: restarted, takes the call over, its BYE still rewritten', async t => {
    const call = runCall(lab, { from: 'a', to: 'c', durationMs: 10_000 })
    const st = await until(8000, async () => await alg.status(), s => s.calls.some(c => c.state === 'confirmed'))
    t.ok(st.calls.some(c => c.state === 'confirmed'), 'the call is up')
    // The worker saves a changed state within a second: wait until its file holds the answered call.
    const stateFile = `${alg.dir}/state.json.w${ownerA}`
    for (let i = 0; i < 100 && !(existsSync(stateFile) && readFileSync(stateFile, 'utf8').includes('"confirmed"')); i++) await sleep(100)
    const victim = (await workers())[ownerA].pid
    t.ok(victim !== null, `worker ${ownerA} has a pid`)
    process.kill(victim ?? 0, 'SIGKILL')
    const ws = await until(8000, workers, w => w[ownerA].restarts === 1 && w[ownerA].up && w[ownerA].pid !== victim)
    t.ok(ws[ownerA].up && ws[ownerA].restarts === 1, `worker ${ownerA} restarted (${JSON.stringify(ws[ownerA])})`)
    t.equal(ws[1 - ownerA].restarts, 0, 'the other worker was not touched')
    t.equal((await alg.status()).calls.length, 1, 'the restarted worker took the call over')
    t.match(alg.log(), /"code":"E318"/, 'the restart is logged with its catalogue code')
    const r = await call
    t.ok(r.ok, `the call ends normally (exit A=${String(r.exitA)} C=${String(r.exitB)})`)
    t.ok(r.rtpAtA > 120 && r.rtpAtB > 120, `audio kept flowing both ways through the kill (at A ${r.rtpAtA}, at C ${r.rtpAtB})`)
    const left = await until(3000, media, e => e.length === 0)
    t.same(left, [], 'the BYE removed the media mappings')
    t.same((await alg.elements('peer_dnat')).filter(e => / : 10\.0\.1\.23 \. 1\d{4}$/.test(e)), [], 'no media pinhole toward A left')
    const doc = await alg.status()
    t.equal(doc.calls.length, 0)
    t.equal(doc.counters.worker_restarts, 1, 'the restart is counted')
  })
})
