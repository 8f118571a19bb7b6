// Issue 4, flows 1 and 2: an inside phone registers with a registrar on the public side, is called
// from there (the phone is the UAS: its SDP is in the 200 OK), refreshes and unregisters; an INVITE
// from anyone else to the same public port reaches nobody (inbound_sip_from: registrar).

import t from 'tap'
import { Lab } from '../lab/lab.js'
import { captureUdp } from '../lab/sip.js'
import { startSipalg } from '../lab/sipalg.js'
import { count, find, sleep, leaked, mPorts, runFlow, sources } from './flows.js'

const register = (expires: number, granted: number, regseq: number): Parameters<typeof runFlow>[1] => [
  { role: 'b', scenario: 'registrar.xml', keys: { granted: String(granted) } },
  { role: 'a', scenario: 'reg-uac.xml', remote: '203.0.113.9:5060', keys: { expires: String(expires), regseq: String(regseq) } }
]

t.test('registration, inbound call from the registrar, refresh, unregister', async t => {
  const lab = await Lab.up({ forwardPolicy: 'drop' })
  t.teardown(async () => { await lab.down() })
  // ring: 3 s, so the bare control INVITE below (never answered) is gone before the unregister.
  const alg = await startSipalg(lab, { args: ['--log-level', 'debug'], config: 'timeouts: { ring: 3 }\n' })
  t.teardown(async () => { await alg.stop() })

  await t.test('REGISTER: Contact rewritten, expiry from the 200 OK, DNAT from the registrar kept', async t => {
    const r = await runFlow(lab, register(120, 60, 1))
    t.ok(r.ok, r.describe())
    const reg = find(r.peers.b?.received, /^REGISTER /)[0] ?? ''
    t.match(reg, /^Contact: <sip:alice@203\.0\.113\.1:5060>;expires=120\r?$/m, 'Contact names the public mapping')
    t.same(leaked(reg), [], 'no private address reaches the registrar')
    const st = await alg.status()
    t.equal(st.registrations.length, 1)
    const expires = (st.registrations[0] as { expiresInSeconds: number }).expiresInSeconds
    t.ok(expires > 50 && expires <= 60, `granted 60 s from the 200 OK, not the 120 asked (${expires})`)
    t.ok((await alg.elements('peer_dnat')).includes('203.0.113.9 . 5060 : 10.0.1.23 . 5060'), 'DNAT from the registrar')
    t.ok((await alg.elements('src_nat')).includes('10.0.1.23 . 5060 : 5060'), 'signalling mapping kept')
  })

  await t.test('the registrar calls the registered Contact: reaches A, A answers with SDP, audio both ways', async t => {
    // conntrack flushed first: only sipalg's registration DNAT can bring the INVITE in.
    const r = await runFlow(lab, [
      { role: 'a', scenario: 'uas-wait-bye.xml' },
      { role: 'b', scenario: 'uac-bye.xml', remote: '203.0.113.1:5060', durationMs: 1500 }
    ])
    t.ok(r.ok, r.describe())
    const inv = find(r.peers.a?.received, /^INVITE /)[0] ?? ''
    t.match(inv, /^INVITE sip:service@10\.0\.1\.23:5060 SIP\/2\.0/, 'Request-URI restored to the phone')
    const ok = find(r.peers.b?.received, /^SIP\/2\.0 200 /)[0] ?? ''
    t.same(leaked(ok), [], '200 OK (A\'s answer) names no private address')
    t.match(ok, /^c=IN IP4 203\.0\.113\.1\r?$/m)
    const pub = mPorts(ok)[0] ?? 0
    t.ok(count(r.rtp.a) > 10, `RTP b→a arrived at A (${count(r.rtp.a)})`)
    t.ok(count(r.rtp.b, { src: `203.0.113.1.${pub}` }) > 10, `RTP a→b from the public port in the answer (${JSON.stringify(sources(r.rtp.b))})`)
    t.comment(`flow 1/2 inbound call: rtp a→b ${count(r.rtp.b)} b→a ${count(r.rtp.a)}`)
    t.same(await alg.elements('any_dnat'), [], 'no media mapping after BYE')
    t.same(await alg.elements('peer_dnat'), ['203.0.113.9 . 5060 : 10.0.1.23 . 5060'], 'only the registration DNAT stays')
  })

  await t.test('an INVITE from C (not the registrar) to the same public port reaches nobody', async t => {
    await lab.flushConntrack()
    const cap = captureUdp(lab, 'a', 5060, 5060)
    await cap.ready
    const inv = 'INVITE sip:alice@203.0.113.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 203.0.113.10:5060;branch=z9hG4bK-scan\r\n' +
      'From: <sip:scan@203.0.113.10>;tag=s\r\nTo: <sip:alice@203.0.113.1>\r\nCall-ID: scan-1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n'
    await lab.sendUdp('c', '203.0.113.1', 5060, 3, inv, 5060)
    await lab.sendUdp('b', '203.0.113.1', 5060, 1, inv.replace(/203\.0\.113\.10/g, '203.0.113.9').replace('scan-1', 'ctl-1'), 5060)
    await sleep(300)
    const got = await cap.stop()
    t.equal(got.filter(p => p.startsWith('203.0.113.10.')).length, 0, 'nothing from C arrived at A')
    t.ok(got.filter(p => p.startsWith('203.0.113.9.')).length > 0, 'the same INVITE from the registrar does arrive (control)')
  })

  await t.test('re-REGISTER refreshes; expires=0 removes the registration and its DNAT', async t => {
    for (let i = 0; i < 40 && (await alg.status()).calls.length > 0; i++) await sleep(200) // the control INVITE's ring timeout
    const r = await runFlow(lab, register(120, 90, 2))
    t.ok(r.ok, r.describe())
    const st = await alg.status()
    t.equal(st.registrations.length, 1, 'still one registration')
    const expires = (st.registrations[0] as { expiresInSeconds: number }).expiresInSeconds
    t.ok(expires > 80 && expires <= 90, `refreshed to the newly granted 90 s (${expires})`)
    const un = await runFlow(lab, register(0, 0, 3))
    t.ok(un.ok, un.describe())
    t.match(find(un.peers.b?.received, /^REGISTER /)[0] ?? '', /^Contact: <sip:alice@203\.0\.113\.1:5060>;expires=0\r?$/m)
    t.equal((await alg.status()).registrations.length, 0, 'unregistered')
    t.same(await alg.elements('peer_dnat'), [], 'registrar DNAT removed')
    t.same(await alg.elements('any_dnat'), [])
  })

  const st = await alg.status()
  t.equal(st.counters.internal_errors ?? 0, 0)
  t.equal(st.counters.map_ops_failed ?? 0, 0)
  t.equal(st.calls.length, 0)
})
