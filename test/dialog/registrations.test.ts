// RegistrationTable (src/dialog/registrations.ts): the expiry the registrar grants (read from its
// 200 OK), unregistering, the grace period, unanswered REGISTERs.
import t from 'tap'
import { grantedExpiry } from '../../src/dialog/registrations.js'
import { parsed } from '../fixtures/helpers.js'
import { A, B, Harness, PUB } from './harness.js'

const crlf = (s: string): string => s.replace(/\n/g, '\r\n')
const register = (cseq: number, expires: number, callId = 'reg-1'): string => crlf(`REGISTER sip:sip.example.net SIP/2.0
Via: SIP/2.0/UDP ${A}:5060;branch=z9hG4bK-r${cseq};rport
Max-Forwards: 70
From: <sip:1001@sip.example.net>;tag=r1
To: <sip:1001@sip.example.net>
Call-ID: ${callId}
CSeq: ${cseq} REGISTER
Contact: <sip:1001@${A}:5060>;expires=${expires}
User-Agent: Yealink SIP-T46S 66.86.0.15
Content-Length: 0

`)
const answer = (cseq: number, status: string, contacts: string, extra = '', callId = 'reg-1'): string => crlf(`SIP/2.0 ${status}
Via: SIP/2.0/UDP ${PUB}:5060;branch=z9hG4bK-r${cseq};rport=5060;received=${PUB}
From: <sip:1001@sip.example.net>;tag=r1
To: <sip:1001@sip.example.net>;tag=srv${cseq}
Call-ID: ${callId}
CSeq: ${cseq} REGISTER
${contacts}${extra}Content-Length: 0

`)

t.test('grantedExpiry: our contact\'s expires, else the Expires header, else 3600; null when ours is not listed', async t => {
  const two = parsed(answer(1, '200 OK', `Contact: <sip:1001@198.51.100.7:5060>;expires=900, <sip:1001@${PUB}:5060>;expires=120\n`))
  t.equal(grantedExpiry(two, PUB, 5060), 120, 'two contacts: ours is the second')
  t.equal(grantedExpiry(parsed(answer(1, '200 OK', `Contact: <sip:1001@${PUB}>\n`, 'Expires: 300\n')), PUB, 5060), 300, 'no port means 5060; header fallback')
  t.equal(grantedExpiry(parsed(answer(1, '200 OK', `Contact: <sip:1001@${PUB}:5060>\n`)), PUB, 5060), 3600)
  t.equal(grantedExpiry(parsed(answer(1, '200 OK', `Contact: <sip:1001@${PUB}:5062>;expires=60\n`)), PUB, 5060), null, 'another public port is another phone')
})

t.test('a granted registration maps the registrar to the phone for the expiry plus grace; unregister removes it', async t => {
  const h = new Harness({}, { graceMs: 10_000 })
  t.same(h.deliver(register(1, 3600), true).ops, [])
  const ok = h.deliver(answer(1, '200 OK', `Contact: <sip:1001@198.51.100.7:5060>;expires=900, <sip:1001@${PUB}:5060>;expires=120\n`), false)
  t.same(ok.ops, [`add peer_dnat ${B}.5060 : ${A}.5060`, `add src_nat ${A}.5060 : 5060`])
  t.equal(ok.first, true, 'the registrar\'s path to the phone is new')
  t.equal(h.maps.get('peer_dnat', { ip: B, port: 5060 })?.timeoutMs, 130_000, '120 s granted + 10 s grace')
  t.same(h.registered.map(r => [r.aor, r.registrar, r.publicPort]), [['sip:1001@sip.example.net', B, 5060]])
  t.ok(h.registrations.takeChanged())

  h.clock.now += 5000
  h.deliver(register(2, 0), true)
  const gone = h.deliver(answer(2, '200 OK', ''), false)
  t.ok(gone.ops.includes(`delete peer_dnat ${B}.5060`))
  t.same([...h.registrations.values()], [])
  t.same(h.unregistered, [`${A}:5060 ${B}`])
  t.ok(h.registrations.takeChanged())
  t.same(h.deliver(answer(2, '200 OK', ''), false).ops, [], 'a retransmitted answer finds no transaction')
  t.same(h.unregistered.length, 1)
})

t.test('expires=0 granted, errors, provisionals, unanswered REGISTERs', async t => {
  const h = new Harness()
  h.deliver(register(1, 3600), true)
  h.deliver(answer(1, '100 Trying', ''), false)
  h.deliver(answer(1, '401 Unauthorized', '', 'WWW-Authenticate: Digest realm="sip.example.net", nonce="abc"\n'), false)
  t.same([...h.registrations.values()], [], 'a challenge registers nothing')
  h.deliver(answer(1, '200 OK', `Contact: <sip:1001@${PUB}:5060>;expires=60\n`), false)
  t.same([...h.registrations.values()], [], 'the transaction ended with the 401')
  h.deliver(register(2, 3600), true)
  h.deliver(answer(2, '200 OK', `Contact: <sip:1001@${PUB}:5060>;expires=0\n`), false)
  t.same([...h.registrations.values()], [], 'expires=0: nothing in force')

  h.deliver(register(3, 3600), true)
  h.clock.now += 65_000
  h.registrations.tick()
  h.deliver(answer(3, '200 OK', `Contact: <sip:1001@${PUB}:5060>;expires=60\n`), false)
  t.same([...h.registrations.values()], [], 'an answer after Timer F matches nothing')
  h.deliver(answer(4, '200 OK', `Contact: <sip:1001@${PUB}:5060>;expires=60\n`), false)
  t.same([...h.registrations.values()], [], 'nor one to a REGISTER never seen')
})

t.test('expiry plus grace, then gone; inbound from anyone when configured', async t => {
  const h = new Harness({}, { graceMs: 10_000, inboundFromAny: true })
  h.deliver(register(1, 60), true)
  const ok = h.deliver(answer(1, '200 OK', `Contact: <sip:1001@${PUB}:5060>;expires=60\n`), false)
  t.ok(ok.ops.includes(`add any_dnat 5060 : ${A}.5060`))
  h.clock.now += 69_000
  h.registrations.tick()
  t.equal([...h.registrations.values()].length, 1, 'within the grace period')
  h.clock.now += 1_000
  h.registrations.tick()
  t.equal([...h.registrations.values()].length, 0)
  h.deliver(register(2, 60), true)
  h.deliver(answer(2, '200 OK', `Contact: <sip:1001@${PUB}:5060>;expires=60\n`), false)
  h.deliver(register(3, 0), true)
  t.ok(h.deliver(answer(3, '200 OK', ''), false).ops.includes('delete any_dnat 5060'), 'unregistering closes it again')
})

t.test('restore: only what the kernel still maps, and not past expiry', async t => {
  const h = new Harness()
  h.deliver(register(1, 3600), true)
  h.deliver(answer(1, '200 OK', `Contact: <sip:1001@${PUB}:5060>;expires=120\n`), false)
  const reg = [...h.registrations.values()][0]
  const fresh = new Harness()
  t.notOk(fresh.registrations.restore(reg), 'no DNAT in the kernel')
  fresh.maps.adopt('peer_dnat', { ip: B, port: 5060 }, { ip: A, port: 5060 }, 60_000, 60_000, 'adopted')
  t.ok(fresh.registrations.restore(reg))
  t.notOk(fresh.registrations.restore(reg), 'not twice')
  const late = new Harness()
  late.maps.adopt('peer_dnat', { ip: B, port: 5060 }, { ip: A, port: 5060 }, 60_000, 60_000, 'adopted')
  late.clock.now += 200_000
  t.notOk(late.registrations.restore(reg), 'expired meanwhile')
})

t.test('over TCP the registration is for the Contact\'s listening port, not the connection\'s source port', async t => {
  const h = new Harness()
  // The connection comes from A:5060 (the harness's phone); the Contact names the phone's TCP
  // listener, which the rewrite mapped to public port 5062 before the dialog layer sees it.
  h.maps.set('src_nat', { ip: A, port: 5062 }, { port: 5062 }, 60_000, 'signalling', true)
  h.maps.takePending()
  const tcpRegister = register(1, 600).replace(`<sip:1001@${A}:5060>`, `<sip:1001@${A}:5062;transport=tcp>`).replace('SIP/2.0/UDP', 'SIP/2.0/TCP')
  h.deliver(tcpRegister, true)
  const ok = h.deliver(answer(1, '200 OK', `Contact: <sip:1001@${PUB}:5062;transport=tcp>;expires=600\n`), false)
  t.ok(ok.ops.includes(`add peer_dnat ${B}.5062 : ${A}.5062`), `a new connection from the registrar reaches the listener (${ok.ops.join(', ')})`)
  t.same(h.registered.map(r => [`${r.phone.ip}:${r.phone.port}`, r.publicPort]), [[`${A}:5062`, 5062]])
  // The same REGISTER over UDP (no transport=tcp) stays the source's registration.
  const u = new Harness()
  u.deliver(register(1, 600).replace(`<sip:1001@${A}:5060>`, `<sip:1001@${A}:5062>`), true)
  u.deliver(answer(1, '200 OK', `Contact: <sip:1001@${PUB}:5062>;expires=600\n`), false)
  t.same(u.registered, [], 'UDP: the source port is the phone; a Contact on another port is not ours')
})
