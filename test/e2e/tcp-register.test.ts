// SIP over TCP (issue 11), FORWARD policy DROP: phone A registers over TCP with the registrar B,
// then B calls the registered Contact on a NEW TCP connection: the registration's DNAT brings it to
// the splice, which reaches A from B's own address (a transparent upstream leg). Audio both ways.
import t from 'tap'
import { Lab } from '../lab/lab.js'
import { startSipalg } from '../lab/sipalg.js'
import { count, find, leaked, mPorts, runFlow, sources } from './flows.js'

t.test('registration over TCP, then an inbound call on a new connection', async t => {
  const lab = await Lab.up({ forwardPolicy: 'drop' })
  t.teardown(async () => { await lab.down() })
  const alg = await startSipalg(lab)
  t.teardown(async () => { await alg.stop() })

  const reg = await runFlow(lab, [
    { role: 'b', scenario: 'registrar.xml', keys: { granted: '60' }, transport: 'tcp' },
    { role: 'a', scenario: 'reg-uac.xml', remote: '203.0.113.9:5060', keys: { expires: '120', regseq: '1' }, transport: 'tcp' }
  ])
  t.ok(reg.ok, reg.describe())
  const register = find(reg.peers.b?.received, /^REGISTER /)[0] ?? ''
  t.match(register, /^Via: SIP\/2\.0\/TCP 203\.0\.113\.1:5060/m)
  t.match(register, /^Contact: <sip:alice@203\.0\.113\.1:5060[;>]/m, 'Contact names the public mapping')
  t.same(leaked(register), [])
  t.equal((await alg.status()).registrations.length, 1, 'the registration is tracked')
  t.ok((await alg.elements('peer_dnat')).includes('203.0.113.9 . 5060 : 10.0.1.23 . 5060'), 'DNAT from the registrar')

  // conntrack flushed by runFlow: only the registration's DNAT can bring B's new connection in.
  const r = await runFlow(lab, [
    { role: 'a', scenario: 'uas-wait-bye.xml', transport: 'tcp' },
    { role: 'b', scenario: 'uac-bye.xml', remote: '203.0.113.1:5060', durationMs: 1500, transport: 'tcp' }
  ])
  t.ok(r.ok, r.describe())
  const inv = find(r.peers.a?.received, /^INVITE /)[0] ?? ''
  t.match(inv, /^INVITE sip:service@10\.0\.1\.23:5060 SIP\/2\.0/, 'Request-URI restored to the phone')
  const ok = find(r.peers.b?.received, /^SIP\/2\.0 200 /)[0] ?? ''
  t.same(leaked(ok), [], 'A\'s answer names no private address')
  const pub = mPorts(ok)[0] ?? 0
  t.ok(count(r.rtp.a) > 10, `RTP b→a at A (${count(r.rtp.a)})`)
  t.ok(count(r.rtp.b, { src: `203.0.113.1.${pub}` }) > 10, `RTP a→b from the public port (${JSON.stringify(sources(r.rtp.b))})`)
  // The leg the gateway opened to A is transparent: its source is B itself, not the gateway.
  const ct = await lab.sh('gw', 'conntrack', ['-L', '-p', 'tcp', '--orig-dst', '10.0.1.23'])
  t.match(ct, /src=203\.0\.113\.9 dst=10\.0\.1\.23 sport=\d+ dport=5060/, 'A is reached from B\'s own address')
  const st = await alg.status() as unknown as { counters: Record<string, number> }
  t.ok((st.counters.tcp_connections ?? 0) >= 2, 'both connections were spliced')
  t.comment(`tcp inbound: rtp a→b ${count(r.rtp.b)} b→a ${count(r.rtp.a)}; ${JSON.stringify(Object.fromEntries(Object.entries(st.counters).filter(([k]) => k.startsWith('tcp'))))}`)
})
