// Issue 4, flows 4–6: early media with 100rel/PRACK (audio while ringing), late offer (offer in the
// 200, answer in the ACK), CANCEL before the answer (487) and 4xx–6xx finals: mappings removed at once.

import t, { type Test } from 'tap'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Lab } from '../lab/lab.js'
import { SIPP_DIR } from '../lab/sip.js'
import { startSipalg } from '../lab/sipalg.js'
import { count, find, leaked, mPorts, runFlow, sources } from './flows.js'

t.test('call setup variants through sipalg', async t => {
  const lab = await Lab.up({ forwardPolicy: 'drop' })
  t.teardown(async () => { await lab.down() })
  const alg = await startSipalg(lab)
  t.teardown(async () => { await alg.stop() })

  const empty = async (t: Test, what: string): Promise<void> => {
    t.same(await alg.elements('any_dnat'), [], `${what}: no open media mapping`)
    t.same(await alg.elements('peer_dnat'), [], `${what}: no peer mapping`)
    t.equal((await alg.status()).calls.length, 0, `${what}: no call left`)
  }

  await t.test('early media: reliable 183 with SDP, PRACK, audio both ways while ringing, then 200', async t => {
    const r = await runFlow(lab, [
      { role: 'b', scenario: 'uas-prack.xml' },
      { role: 'a', scenario: 'uac-prack.xml', remote: '203.0.113.9:5060', durationMs: 800 }
    ])
    t.ok(r.ok, r.describe())
    const prack = find(r.peers.b?.received, /^PRACK /)[0] ?? ''
    t.match(prack, /^RAck: 1 1 INVITE\r?$/m, 'the PRACK reached B')
    t.same(leaked(prack), [])
    const inv = find(r.peers.b?.received, /^INVITE /)[0] ?? ''
    t.same(leaked(inv), [])
    const pub = mPorts(inv)[0] ?? 0
    // The 200 (INVITE) arrival at A: RTP before it is early media.
    const okAt = r.peers.a?.timed.find(m => /^SIP\/2\.0 200 /.test(m.text) && /^CSeq:\s*1 INVITE/m.test(m.text))?.t ?? 0
    t.ok(okAt > 0, 'A got the 200 OK')
    const earlyAtA = (r.rtp.a ?? []).filter(p => p.t < okAt).length
    const earlyAtB = (r.rtp.b ?? []).filter(p => p.t < okAt).length
    t.ok(earlyAtA > 10, `b→a during ringing (${earlyAtA})`)
    t.ok(earlyAtB > 10, `a→b during ringing (${earlyAtB})`)
    t.ok(count(r.rtp.b, { src: `203.0.113.1.${pub}` }) > 10, `a→b from the public port in the offer (${JSON.stringify(sources(r.rtp.b))})`)
    t.comment(`flow 4 early media: rtp a→b ${count(r.rtp.b)} (ringing ${earlyAtB}) b→a ${count(r.rtp.a)} (ringing ${earlyAtA})`)
    await empty(t, 'after BYE')
  })

  await t.test('late offer: INVITE without SDP, B offers in the 200, A answers in the ACK; audio both ways', async t => {
    const r = await runFlow(lab, [
      { role: 'b', scenario: 'uas-late.xml' },
      { role: 'a', scenario: 'uac-late.xml', remote: '203.0.113.9:5060', durationMs: 1200 }
    ])
    t.ok(r.ok, r.describe())
    const ack = find(r.peers.b?.received, /^ACK /)[0] ?? ''
    t.match(ack, /^c=IN IP4 203\.0\.113\.1\r?$/m, 'the answer in the ACK names the public address')
    t.same(leaked(ack), [])
    const pub = mPorts(ack)[0] ?? 0
    t.ok(count(r.rtp.a) > 10, `b→a (${count(r.rtp.a)})`)
    t.ok(count(r.rtp.b, { src: `203.0.113.1.${pub}` }) > 10, `a→b from the public port in the ACK (${JSON.stringify(sources(r.rtp.b))})`)
    t.comment(`flow 5 late offer: rtp a→b ${count(r.rtp.b)} b→a ${count(r.rtp.a)}`)
    await empty(t, 'after BYE')
  })

  await t.test('CANCEL during early media: 200, 487, ACK; mappings gone at once', async t => {
    const r = await runFlow(lab, [
      { role: 'b', scenario: 'uas-cancel.xml' },
      { role: 'a', scenario: 'uac-cancel.xml', remote: '203.0.113.9:5060' }
    ])
    t.ok(r.ok, r.describe())
    t.ok(find(r.peers.a?.received, /^SIP\/2\.0 487 /).length > 0, 'A got the 487')
    t.ok(count(r.rtp.a) > 5, `early media reached A before the CANCEL (${count(r.rtp.a)})`)
    t.comment(`flow 6 cancel: rtp a→b ${count(r.rtp.b)} b→a ${count(r.rtp.a)}`)
    await empty(t, 'after 487')
    const st = await alg.status()
    t.ok(st.counters.calls_ended >= 3)
  })

  const dir = await mkdtemp(join(tmpdir(), 'sipalg-flows-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  const template = await readFile(join(SIPP_DIR, 'uas-reject.xml'), 'utf8')
  for (const [code, reason] of [['404', 'Not Found'], ['486', 'Busy Here'], ['503', 'Service Unavailable'], ['603', 'Decline']]) {
    await t.test(`${code} after early media: mappings gone at once`, async t => {
      const scenario = join(dir, `uas-reject-${code}.xml`)
      await writeFile(scenario, template.replace('SIP/2.0 486 Busy Here', `SIP/2.0 ${code} ${reason}`))
      const r = await runFlow(lab, [
        { role: 'b', scenario },
        { role: 'a', scenario: 'uac-rejected.xml', remote: '203.0.113.9:5060' }
      ])
      t.ok(r.ok, r.describe())
      t.ok(find(r.peers.a?.received, new RegExp(`^SIP/2\\.0 ${code} `)).length > 0, `A got the ${code}`)
      t.ok(count(r.rtp.a) > 5, `early media reached A (${count(r.rtp.a)})`)
      t.comment(`flow 6 final ${code}: rtp a→b ${count(r.rtp.b)} b→a ${count(r.rtp.a)}`)
      await empty(t, `after ${code}`)
    })
  }

  const st = await alg.status()
  t.equal(st.counters.internal_errors ?? 0, 0)
  t.equal(st.counters.map_ops_failed ?? 0, 0)
})
