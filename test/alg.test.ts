import t from 'tap'
import { pino } from 'pino'
import { Alg } from '../src/alg.js'
import { buildConfig } from '../src/config.js'
import { buildUdp, parseUdp } from '../src/netfilter/packet.js'
import { ADOPTED, type MapOp } from '../src/media/mappings.js'
import { sdp } from './dialog/harness.js'
import type { TraceEvent } from '../src/trace/ladder.js'

const A = '10.0.1.23'; const A2 = '10.0.1.24'; const B = '203.0.113.9'; const PUB = '203.0.113.1'

function makeAlg (extra: Record<string, unknown> = {}): { alg: Alg, clock: { now: number } } {
  const clock = { now: 1_000_000 }
  const cfg = buildConfig([{ public: PUB, inside: ['10.0.1.0/24'], ...extra }])
  return { alg: new Alg(cfg, pino({ level: 'silent' }), () => clock.now), clock }
}

const crlf = (s: string): string => s.replace(/\n/g, '\r\n')
function withBody (head: string, body: string): string {
  return crlf(head.replace('{len}', String(Buffer.byteLength(crlf(body))))) + crlf(body)
}

const invite = (from: string, fromPort: number, rtp: number, callId: string): string => withBody(`INVITE sip:bob@${B} SIP/2.0
Via: SIP/2.0/UDP ${from}:${fromPort};branch=z9hG4bK-${callId};rport
Max-Forwards: 70
From: <sip:alice@${from}>;tag=a-${callId}
To: <sip:bob@${B}>
Call-ID: ${callId}
CSeq: 1 INVITE
Contact: <sip:alice@${from}:${fromPort}>
Content-Type: application/sdp
Content-Length: {len}

`, sdp(from, rtp, `a=rtcp:${rtp + 1}\n`))

const response = (code: string, method: string, cseq: number, from: string, fromPort: number, callId: string, body = ''): string =>
  withBody(`SIP/2.0 ${code}
Via: SIP/2.0/UDP ${PUB}:${fromPort};branch=z9hG4bK-${callId};rport=${fromPort};received=${PUB}
From: <sip:alice@${from}>;tag=a-${callId}
To: <sip:bob@${B}>;tag=b-${callId}
Call-ID: ${callId}
CSeq: ${cseq} ${method}
Contact: <sip:bob@${B}:5060>
${body === '' ? '' : 'Content-Type: application/sdp\n'}Content-Length: {len}

`, body)

const request = (method: string, cseq: number, from: string, fromPort: number, callId: string): string => crlf(`${method} sip:bob@${B}:5060 SIP/2.0
Via: SIP/2.0/UDP ${from}:${fromPort};branch=z9hG4bK-${method}-${callId}
Max-Forwards: 70
From: <sip:alice@${from}>;tag=a-${callId}
To: <sip:bob@${B}>;tag=b-${callId}
Call-ID: ${callId}
CSeq: ${cseq} ${method}
Content-Length: 0

`)

/** One packet through the ALG: its text as released, the map ops it queued, whether they must precede its verdict. */
function send (alg: Alg, src: string, sport: number, dst: string, dport: number, text: string): { out: string, dropped: boolean, ops: MapOp[], first: boolean } {
  const v = alg.process(buildUdp(src, sport, dst, dport, Buffer.from(text, 'latin1')))
  const first = alg.maps.mustPrecedeVerdict
  const ops = alg.maps.takePending()
  if (v.action === 'drop') return { out: '', dropped: true, ops, first }
  if (v.payload === undefined) return { out: text, dropped: false, ops, first }
  const p = parseUdp(v.payload)
  if (!p.ok) throw new Error('verdict payload is not a valid UDP packet')
  return { out: p.udp.payload.toString('latin1'), dropped: false, ops, first }
}

const opsText = (ops: MapOp[]): string[] => ops.map(o =>
  `${o.op} ${o.map} ${o.key.ip === undefined ? '' : o.key.ip + '.'}${o.key.port}${o.data === undefined ? '' : ' : ' + (o.data.ip === undefined ? '' : o.data.ip + '.') + o.data.port}`)

t.test('outbound call: rewrite, mappings before the verdict, pinhole narrowed by the answer, removed at BYE', async t => {
  const { alg } = makeAlg()
  const inv = send(alg, A, 5060, B, 5060, invite(A, 5060, 4000, 'c1'))
  t.notMatch(inv.out.replace(/^From:.*$/m, ''), /10\.0\.1\./, 'no inside address leaves the gateway (From stays by default)')
  t.match(inv.out, `Via: SIP/2.0/UDP ${PUB}:5060;branch=z9hG4bK-c1;rport`)
  t.match(inv.out, `Contact: <sip:alice@${PUB}:5060>`)
  t.match(inv.out, 'm=audio 20000 RTP/AVP 0 8')
  t.match(inv.out, 'a=rtcp:20001')
  const body = inv.out.slice(inv.out.indexOf('\r\n\r\n') + 4)
  t.match(inv.out, `Content-Length: ${Buffer.byteLength(body)}\r\n`)
  t.same(opsText(inv.ops).sort(), [
    `add any_dnat 20000 : ${A}.4000`,
    `add any_dnat 20001 : ${A}.4001`,
    `add peer_dnat ${B}.5060 : ${A}.5060`,
    `add src_nat ${A}.4000 : 20000`,
    `add src_nat ${A}.4001 : 20001`,
    `add src_nat ${A}.5060 : 5060`
  ])
  const again = send(alg, A, 5060, B, 5060, invite(A, 5060, 4000, 'c1'))
  t.equal(again.out, inv.out, 'a retransmission is rewritten the same way')
  t.same(again.ops, [], 'and changes nothing in the kernel')

  const ok = send(alg, B, 5060, A, 5060, response('200 OK', 'INVITE', 1, A, 5060, 'c1', sdp(B, 6000)))
  t.match(ok.out, `Via: SIP/2.0/UDP ${A}:5060;branch=z9hG4bK-c1`, 'top Via restored for the phone')
  t.same(opsText(ok.ops).sort(), [
    'delete any_dnat 20000', 'delete any_dnat 20001',
    `add peer_dnat ${B}.20000 : ${A}.4000`, `add peer_dnat ${B}.20001 : ${A}.4001`
  ].sort(), 'media now only from the far end')
  t.equal(alg.calls.size, 1)

  send(alg, A, 5060, B, 5060, request('ACK', 1, A, 5060, 'c1'))
  const bye = send(alg, A, 5060, B, 5060, request('BYE', 2, A, 5060, 'c1'))
  t.same(opsText(bye.ops).sort(), [
    `delete peer_dnat ${B}.20000`, `delete peer_dnat ${B}.20001`, `delete peer_dnat ${B}.5060`,
    `delete src_nat ${A}.4000`, `delete src_nat ${A}.4001`,
    // The port served this call only: its signalling mapping stays 32 s more, then goes.
    `delete src_nat ${A}.5060`, `add src_nat ${A}.5060 : 5060`
  ].sort())
  t.equal(alg.calls.size, 0)
  t.equal(alg.ports.inUse, 0, 'media ports returned')
})

t.test('two phones on port 5060 with the same RTP port get different public ports', async t => {
  const { alg } = makeAlg()
  const one = send(alg, A, 5060, B, 5060, invite(A, 5060, 4000, 'x1'))
  const two = send(alg, A2, 5060, B, 5060, invite(A2, 5060, 4000, 'x2'))
  t.match(one.out, `Via: SIP/2.0/UDP ${PUB}:5060;`)
  t.match(two.out, `Via: SIP/2.0/UDP ${PUB}:5061;`)
  t.match(one.out, 'm=audio 20000 ')
  t.match(two.out, 'm=audio 20002 ')
  // The far end answers the second phone at its public port; sipalg maps it back.
  const r = send(alg, B, 5060, A2, 5060, response('180 Ringing', 'INVITE', 1, A2, 5061, 'x2'))
  t.match(r.out, `Via: SIP/2.0/UDP ${A2}:5060;`)
})

t.test('CANCEL then 487 removes the media at once; error finals too', async t => {
  const { alg } = makeAlg()
  send(alg, A, 5060, B, 5060, invite(A, 5060, 4000, 'k1'))
  send(alg, A, 5060, B, 5060, request('CANCEL', 1, A, 5060, 'k1'))
  t.equal(alg.calls.size, 1)
  const fin = send(alg, B, 5060, A, 5060, response('487 Request Terminated', 'INVITE', 1, A, 5060, 'k1'))
  t.equal(alg.calls.size, 0)
  t.ok(opsText(fin.ops).includes('delete any_dnat 20000'))
  send(alg, A, 5060, B, 5060, invite(A, 5060, 4010, 'k2'))
  send(alg, B, 5060, A, 5060, response('486 Busy Here', 'INVITE', 1, A, 5060, 'k2'))
  t.equal(alg.calls.size, 0)
  t.equal(alg.ports.inUse, 0)
})

t.test('an unanswered call and an abandoned call end by timeout', async t => {
  const { alg, clock } = makeAlg({ timeouts: { ring: 30, call: 60 } })
  send(alg, A, 5060, B, 5060, invite(A, 5060, 4000, 't1'))
  clock.now += 31_000
  alg.tick()
  t.equal(alg.calls.size, 0, 'no answer within ring timeout')
  send(alg, A, 5060, B, 5060, invite(A, 5060, 4000, 't2'))
  send(alg, B, 5060, A, 5060, response('200 OK', 'INVITE', 1, A, 5060, 't2', sdp(B, 6000)))
  clock.now += 59_000
  alg.tick()
  t.equal(alg.calls.size, 1, 'established call lives on')
  clock.now += 2_000
  alg.tick()
  t.equal(alg.calls.size, 0, 'no BYE: gone after the call timeout')
  t.ok(alg.maps.takePending().some(o => o.op === 'delete' && o.map === 'peer_dnat'))
})

t.test('registration: DNAT from the registrar for the granted expiry; unregister removes it', async t => {
  const { alg, clock } = makeAlg({ timeouts: { registration_grace: 10 } })
  const reg = (expires: number, cseq: number): string => crlf(`REGISTER sip:${B} SIP/2.0
Via: SIP/2.0/UDP ${A}:5060;branch=z9hG4bK-r${cseq};rport
From: <sip:alice@${B}>;tag=r1
To: <sip:alice@${B}>
Call-ID: reg-1
CSeq: ${cseq} REGISTER
Contact: <sip:alice@${A}:5060>;expires=${expires}
Expires: ${expires}
Content-Length: 0

`)
  const ok = (expires: number, cseq: number): string => crlf(`SIP/2.0 200 OK
Via: SIP/2.0/UDP ${PUB}:5060;branch=z9hG4bK-r${cseq};rport=5060
From: <sip:alice@${B}>;tag=r1
To: <sip:alice@${B}>;tag=srv
Call-ID: reg-1
CSeq: ${cseq} REGISTER
${expires > 0 ? `Contact: <sip:alice@${PUB}:5060>;expires=${expires}\n` : ''}Content-Length: 0

`)
  const out = send(alg, A, 5060, B, 5060, reg(3600, 1))
  t.match(out.out, `Contact: <sip:alice@${PUB}:5060>;expires=3600`)
  const granted = send(alg, B, 5060, A, 5060, ok(120, 1))
  t.equal([...alg.registrations.values()].length, 1)
  const dnat = granted.ops.find(o => o.map === 'peer_dnat')
  t.same(dnat, { op: 'add', map: 'peer_dnat', key: { ip: B, port: 5060 }, data: { ip: A, port: 5060 }, timeoutMs: 130_000 }, 'granted 120 s + 10 s grace')
  clock.now += 5000
  send(alg, A, 5060, B, 5060, reg(0, 2))
  const gone = send(alg, B, 5060, A, 5060, ok(0, 2))
  t.equal([...alg.registrations.values()].length, 0)
  t.ok(gone.ops.some(o => o.op === 'delete' && o.map === 'peer_dnat'), 'unregister removes the DNAT')
})

t.test('not SIP on 5060: passed and counted, or dropped when configured; keepalives untouched', async t => {
  const { alg } = makeAlg()
  const junk = send(alg, A, 5060, B, 5060, 'GET / HTTP/1.1\r\nHost: x\r\n\r\nINVITE sip:x SIP/2.0\r\n')
  t.equal(junk.dropped, false)
  t.same(junk.ops, [], 'never opens a mapping')
  t.equal((alg.counters.snapshot().not_sip ?? 0), 1)
  const ka = send(alg, A, 5060, B, 5060, '\r\n\r\n')
  t.equal(ka.out, '\r\n\r\n')
  t.equal((alg.counters.snapshot().keepalives ?? 0), 1)
  const strict = makeAlg({ malformed: 'drop' }).alg
  t.equal(send(strict, A, 5060, B, 5060, '\x00\x01garbage').dropped, true)
  const transit = send(alg, A, 40000, B, 40000, 'INVITE sip:x SIP/2.0\r\n\r\n')
  t.same(transit.ops, [], 'not on a SIP port: not looked at')
})

t.test('invalid framing: a message whose Content-Length exceeds its body passes untouched, counted as malformed', async t => {
  const { alg } = makeAlg()
  const text = invite(A, 5060, 16000, 'framing-1').replace(/Content-Length: \d+/, 'Content-Length: 9999')
  const r = send(alg, A, 5060, B, 5060, text)
  t.equal(r.out, text, 'not a byte changed: a rewrite would keep the wrong length')
  t.equal(alg.counters.snapshot().malformed, 1)
  t.equal(alg.counters.snapshot().rewritten ?? 0, 0)
})

t.test('inbound call: the phone answers; its media is mapped and limited to the caller', async t => {
  const { alg } = makeAlg()
  const inv = withBody(`INVITE sip:alice@${PUB}:5060 SIP/2.0
Via: SIP/2.0/UDP ${B}:5060;branch=z9hG4bK-in1
From: <sip:bob@${B}>;tag=b1
To: <sip:alice@${PUB}>
Call-ID: in-1
CSeq: 1 INVITE
Contact: <sip:bob@${B}:5060>
Content-Type: application/sdp
Content-Length: {len}

`, sdp(B, 6000))
  // The phone is known: it registered (or sent anything) before.
  send(alg, A, 5060, B, 5060, crlf(`OPTIONS sip:${B} SIP/2.0\nVia: SIP/2.0/UDP ${A}:5060;branch=z9hG4bK-o\nFrom: <sip:a@${A}>;tag=1\nTo: <sip:b@${B}>\nCall-ID: o1\nCSeq: 1 OPTIONS\nContent-Length: 0\n\n`))
  const got = send(alg, B, 5060, A, 5060, inv)
  t.match(got.out, `INVITE sip:alice@${A}:5060 SIP/2.0`, 'Request-URI restored to the phone')
  const answer = withBody(`SIP/2.0 200 OK
Via: SIP/2.0/UDP ${B}:5060;branch=z9hG4bK-in1
From: <sip:bob@${B}>;tag=b1
To: <sip:alice@${PUB}>;tag=a1
Call-ID: in-1
CSeq: 1 INVITE
Contact: <sip:alice@${A}:5060>
Content-Type: application/sdp
Content-Length: {len}

`, sdp(A, 4000))
  const out = send(alg, A, 5060, B, 5060, answer)
  t.notMatch(out.out.replace(/^To:.*$/m, ''), /10\.0\.1\./)
  t.ok(opsText(out.ops).includes(`add peer_dnat ${B}.20000 : ${A}.4000`), 'pinhole limited to the caller from the start')
  t.notOk(out.ops.some(o => o.map === 'any_dnat'), 'never open to anyone')
})

t.test('far SDP naming garbage or an inside host opens no pinhole from it', async t => {
  const { alg } = makeAlg()
  send(alg, A, 5060, B, 5060, invite(A, 5060, 4000, 'g1'))
  for (const bad of ['10.0.1.24', '1hone', '10.0.1:.23', '0.0.0.0']) {
    const r = send(alg, B, 5060, A, 5060, response('183 Session Progress', 'INVITE', 1, A, 5060, 'g1', sdp(bad, 6000)))
    t.notOk(r.ops.some(o => o.map === 'peer_dnat' && o.key.ip === bad), `no pinhole from "${bad}"`)
  }
  t.ok(alg.maps.get('any_dnat', { port: 20000 }), 'still waiting for a usable far address')
})

// A request from the phone inside the dialog, with SDP (re-INVITE / UPDATE offers).
const inDialogOffer = (method: string, cseq: number, callId: string, body: string): string => withBody(`${method} sip:bob@${B}:5060 SIP/2.0
Via: SIP/2.0/UDP ${A}:5060;branch=z9hG4bK-${method}${cseq}-${callId}
Max-Forwards: 70
From: <sip:alice@${A}>;tag=a-${callId}
To: <sip:bob@${B}>;tag=b-${callId}
Call-ID: ${callId}
CSeq: ${cseq} ${method}
Contact: <sip:alice@${A}:5060>
Content-Type: application/sdp
Content-Length: {len}

`, body)

t.test('re-INVITE / UPDATE from the phone moving to a new media port: the old port goes once the far end answers', async t => {
  for (const method of ['INVITE', 'UPDATE']) {
    const { alg } = makeAlg()
    const id = `move-${method}`
    send(alg, A, 5060, B, 5060, invite(A, 5060, 4000, id))
    send(alg, B, 5060, A, 5060, response('200 OK', 'INVITE', 1, A, 5060, id, sdp(B, 6000)))
    send(alg, A, 5060, B, 5060, request('ACK', 1, A, 5060, id))
    const offer = send(alg, A, 5060, B, 5060, inDialogOffer(method, 2, id, sdp(A, 4002, 'a=rtcp-mux\n')))
    t.match(offer.out, 'm=audio 20002 RTP/AVP', `${method}: new private port, new public port`)
    t.ok(opsText(offer.ops).includes(`add peer_dnat ${B}.20002 : ${A}.4002`), `${method}: the new port is open to B at once`)
    const answer = send(alg, B, 5060, A, 5060, response('200 OK', method, 2, A, 5060, id, sdp(B, 6000)))
    t.same(opsText(answer.ops).filter(o => o.startsWith('delete')).sort(), [
      `delete peer_dnat ${B}.20000`, `delete peer_dnat ${B}.20001`, `delete src_nat ${A}.4000`, `delete src_nat ${A}.4001`
    ].sort(), `${method}: the answer retires the old port`)
    t.equal(alg.ports.inUse, 1, `${method}: one public media port left`)
    send(alg, A, 5060, B, 5060, request('BYE', 3, A, 5060, id))
    t.equal(alg.ports.inUse, 0)
    t.same([...alg.maps.all()].filter(e => e.map !== 'src_nat'), [])
  }
})

t.test('abuse limits: refused calls still pass, without a mapping, and are counted', async t => {
  const { alg, clock } = makeAlg({ limits: { max_calls: 3, calls_per_host: 2, calls_per_second: 100, calls_per_second_per_host: 100 } })
  const mapped = (out: string): boolean => out.includes('m=audio 2')
  t.ok(mapped(send(alg, A, 5060, B, 5060, invite(A, 5060, 4000, 'l1')).out))
  t.ok(mapped(send(alg, A, 5060, B, 5060, invite(A, 5060, 4010, 'l2')).out))
  const third = send(alg, A, 5060, B, 5060, invite(A, 5060, 4020, 'l3'))
  t.notOk(mapped(third.out), 'third concurrent call of one host: SDP left alone')
  t.notOk(third.dropped, 'but the INVITE still passes')
  t.notOk(third.ops.some(o => o.map !== 'peer_dnat' && o.key.port === 4020), 'no media mapping for it')
  t.equal((alg.counters.snapshot().refused_calls_per_host ?? 0), 1)
  t.ok(mapped(send(alg, A2, 5060, B, 5060, invite(A2, 5060, 4000, 'l4')).out), 'another host still can')
  t.notOk(mapped(send(alg, A2, 5060, B, 5060, invite(A2, 5060, 4010, 'l5')).out), 'until the gateway-wide maximum')
  t.equal((alg.counters.snapshot().refused_max_calls ?? 0), 1)
  send(alg, A, 5060, B, 5060, request('BYE', 2, A, 5060, 'l1'))
  clock.now += 1000
  t.ok(mapped(send(alg, A, 5060, B, 5060, invite(A, 5060, 4030, 'l6')).out), 'a slot freed by BYE is usable again')

  const rate = makeAlg({ limits: { calls_per_second: 100, calls_per_second_per_host: 2 } })
  const results = [1, 2, 3].map(i => mapped(send(rate.alg, A, 5060, B, 5060, invite(A, 5060, 4000 + i * 10, `r${i}`)).out))
  t.same(results, [true, true, false], 'third new call within one second refused')
  rate.clock.now += 1000
  t.ok(mapped(send(rate.alg, A, 5060, B, 5060, invite(A, 5060, 4100, 'r4')).out), 'next second it is fine')
})

t.test('an inside host naming another inside host opens nothing toward it', async t => {
  const { alg } = makeAlg()
  const body = sdp('10.0.1.24', 4000)
  const msg = invite(A, 5060, 4000, 'o1').replace(/\r\n\r\nv=0[\s\S]*$/, '\r\n\r\n' + crlf(body)).replace(/Content-Length: \d+/, `Content-Length: ${Buffer.byteLength(crlf(body))}`)
  const r = send(alg, A, 5060, B, 5060, msg)
  t.notOk(r.ops.some(o => o.data?.ip === '10.0.1.24' || o.key.ip === '10.0.1.24'), 'no mapping toward 10.0.1.24')
  t.match(r.out, 'c=IN IP4 10.0.1.24', 'that address left as written')
  const trusted = makeAlg({ trusted_inside_proxies: [A] }).alg
  const r2 = send(trusted, A, 5060, B, 5060, msg)
  t.ok(r2.ops.some(o => o.map === 'src_nat' && o.key.ip === '10.0.1.24'), 'unless the sender is a trusted inside proxy')
})

t.test('outside SDP alone never opens a path to an inside host', async t => {
  const { alg } = makeAlg()
  const inv = withBody(`INVITE sip:alice@${PUB}:5060 SIP/2.0
Via: SIP/2.0/UDP ${B}:5060;branch=z9hG4bK-x1
From: <sip:bob@${B}>;tag=b1
To: <sip:alice@${PUB}>
Call-ID: out-1
CSeq: 1 INVITE
Contact: <sip:bob@${B}:5060>
Content-Type: application/sdp
Content-Length: {len}

`, sdp(B, 6000))
  const r = send(alg, B, 5060, A, 5060, inv)
  t.same(r.ops.filter(o => o.op === 'add' && o.map !== 'peer_dnat'), [], 'no media mapping from the far offer')
  t.notOk(r.ops.some(o => o.map === 'peer_dnat' && o.key.port !== 5060), 'no media pinhole either')
})

t.test('forked early dialogs: the fork that did not answer loses its pinhole and its kernel flows', async t => {
  const { alg } = makeAlg()
  const C = '203.0.113.10'
  const id = 'fork-1'
  send(alg, A, 5060, B, 5060, invite(A, 5060, 4000, id))
  const x = send(alg, B, 5060, A, 5060, response('183 Session Progress', 'INVITE', 1, A, 5060, id, sdp(B, 6000)).replace(`tag=b-${id}`, 'tag=x'))
  const y = send(alg, B, 5060, A, 5060, response('183 Session Progress', 'INVITE', 1, A, 5060, id, sdp(C, 7000)).replace(`tag=b-${id}`, 'tag=y'))
  t.ok(opsText(x.ops).includes(`add peer_dnat ${B}.20000 : ${A}.4000`))
  t.ok(opsText(y.ops).includes(`add peer_dnat ${C}.20000 : ${A}.4000`), 'both forks may send early media')
  alg.takeStaleFlows()
  const ok = send(alg, B, 5060, A, 5060, response('200 OK', 'INVITE', 1, A, 5060, id, sdp(B, 6000)).replace(`tag=b-${id}`, 'tag=x'))
  t.same(opsText(ok.ops).filter(o => o.startsWith('delete')).sort(), [`delete peer_dnat ${C}.20000`, `delete peer_dnat ${C}.20001`])
  t.same(alg.takeStaleFlows(), [
    { remote: { ip: C, port: 7000 }, publicPort: 20000 }, { remote: { ip: C, port: 7001 }, publicPort: 20001 }
  ], 'the losing fork\'s media flows are handed to the shell for conntrack deletion')
})

t.test('the far end declines a stream (m=video 0 in its answer): that stream\'s mappings go at once', async t => {
  const { alg } = makeAlg()
  const id = 'declined-1'
  const offer = invite(A, 5060, 4000, id).replace(/Content-Length: \d+/, '')
  const body = sdp(A, 4000, 'a=rtcp:4001\nm=video 4002 RTP/AVP 96\na=rtpmap:96 H264/90000\na=rtcp-mux\n')
  const inv = send(alg, A, 5060, B, 5060, withBody(offer.slice(0, offer.indexOf('\r\n\r\n') + 2).replace(/\r\n/g, '\n') + 'Content-Length: {len}\n\n', body))
  t.match(inv.out, 'm=video 20002 RTP/AVP 96', 'video offered on its own public port')
  t.ok(opsText(inv.ops).includes(`add any_dnat 20002 : ${A}.4002`))
  const answer = sdp(B, 6000, 'm=video 0 RTP/AVP 96\n')
  const ok = send(alg, B, 5060, A, 5060, response('200 OK', 'INVITE', 1, A, 5060, id, answer))
  const ops = opsText(ok.ops)
  t.ok(ops.includes('delete any_dnat 20002'), 'video DNAT removed')
  t.ok(ops.includes(`delete src_nat ${A}.4002`), 'video SNAT removed')
  t.notOk(ops.some(o => o.includes('.20002 :')), 'no pinhole opened for the declined video')
  t.ok(ops.includes(`add peer_dnat ${B}.20000 : ${A}.4000`), 'audio limited to B')
  t.equal(alg.ports.inUse, 1, 'only the audio port stays taken')
})

t.test('restart: a new sipalg takes over a live call from the saved state, and its BYE removes the mappings', async t => {
  const { alg: first } = makeAlg()
  send(first, A, 5060, B, 5060, invite(A, 5060, 4000, 'rs1'))
  send(first, B, 5060, A, 5060, response('200 OK', 'INVITE', 1, A, 5060, 'rs1', sdp(B, 6000)))
  first.maps.takePending()
  const state = JSON.parse(JSON.stringify(first.stateIfChanged()))
  t.equal(first.stateIfChanged(), null, 'nothing new to save')

  // The second sipalg finds the kernel elements (adopted) and the saved state.
  const { alg: second } = makeAlg()
  for (const e of first.maps.all()) second.maps.adopt(e.map, e.key, e.data, 60_000, 60_000, ADOPTED)
  second.ports.claim(20000)
  second.signalling.adopt({ ip: A, port: 5060 }, 5060)
  t.same(second.restore(state), { calls: 1, registrations: 0 })
  second.maps.takePending()
  const bye = send(second, A, 5060, B, 5060, request('BYE', 2, A, 5060, 'rs1'))
  const readded = new Set(opsText(bye.ops.filter(o => o.op === 'add')).map(o => o.replace(/^add (\S+ \S+).*/, '$1')))
  const removed = bye.ops.filter(o => o.op === 'delete' && !readded.has(opsText([o])[0].replace(/^delete /, '')))
  t.same(opsText(removed).sort(), [
    `delete peer_dnat ${B}.20000`, `delete peer_dnat ${B}.20001`, `delete peer_dnat ${B}.5060`,
    `delete src_nat ${A}.4000`, `delete src_nat ${A}.4001`
  ].sort(), 'the BYE removes exactly the adopted call\'s elements')
  t.equal(second.ports.inUse, 0)

  const { alg: third } = makeAlg()
  t.same(third.restore(state), { calls: 0, registrations: 0 }, 'a saved call the kernel no longer has is dropped')
})

t.test('firewall mode: no pinhole from anyone, only from the far end once its SDP is known', async t => {
  const { alg } = makeAlg({ firewall: true })
  const inv = send(alg, A, 5060, B, 5060, invite(A, 5060, 4000, 'fw1'))
  t.match(inv.out, 'm=audio 20000 ')
  t.notOk(inv.ops.some(o => o.map === 'any_dnat'), 'nothing open while the far SDP is unknown')
  t.ok(inv.ops.some(o => o.map === 'src_nat' && o.key.port === 4000), 'the phone\'s own media is mapped out')
  const ok = send(alg, B, 5060, A, 5060, response('200 OK', 'INVITE', 1, A, 5060, 'fw1', sdp(B, 6000)))
  t.ok(ok.ops.some(o => o.op === 'add' && o.map === 'peer_dnat' && o.key.ip === B && o.key.port === 20000))
  t.throws(() => buildConfig([{ public: PUB, media_latching: true }]), /media_latching/)
})

t.test('reload: limits and timeouts change live, for calls in progress too; restart-only keys are named', async t => {
  const { alg, clock } = makeAlg({ timeouts: { call: 600 }, limits: { calls_per_host: 1 } })
  send(alg, A, 5060, B, 5060, invite(A, 5060, 4000, 'h1'))
  send(alg, B, 5060, A, 5060, response('200 OK', 'INVITE', 1, A, 5060, 'h1', sdp(B, 6000)))
  t.notMatch(send(alg, A, 5060, B, 5060, invite(A, 5060, 4010, 'h2')).out, 'm=audio 2', 'second call refused at first')
  const needRestart = alg.reconfigure(buildConfig([{ public: '203.0.113.2', inside: ['10.0.1.0/24'], timeouts: { call: 60 }, limits: { calls_per_host: 5 } }]))
  t.same(needRestart, ['public'], 'a new public address needs a restart')
  t.match(send(alg, A, 5060, B, 5060, invite(A, 5060, 4020, 'h3')).out, 'm=audio 2', 'the raised limit applies at once')
  send(alg, A, 5060, B, 5060, request('ACK', 1, A, 5060, 'h1'))
  clock.now += 61_000
  alg.tick()
  t.notOk(alg.calls.find('h1', { ip: A, port: 5060 }), 'the shorter call timeout applies to the call in progress')
})

t.test('which map changes must reach the kernel before the verdict', async t => {
  const { alg } = makeAlg()
  t.equal(send(alg, A, 5060, B, 5060, invite(A, 5060, 4000, 'u1')).first, true, 'the INVITE advertises new ports')
  t.equal(send(alg, A, 5060, B, 5060, invite(A, 5060, 4000, 'u1')).first, false, 'its retransmission relies on nothing new')
  t.equal(send(alg, B, 5060, A, 5060, response('200 OK', 'INVITE', 1, A, 5060, 'u1', sdp(B, 6000))).first, false, 'narrowing an open pinhole to the far end can follow')
  t.equal(send(alg, A, 5060, B, 5060, request('BYE', 2, A, 5060, 'u1')).first, false, 'removals can follow')

  const fw = makeAlg({ firewall: true }).alg
  send(fw, A, 5060, B, 5060, invite(A, 5060, 4000, 'u2'))
  t.equal(send(fw, B, 5060, A, 5060, response('200 OK', 'INVITE', 1, A, 5060, 'u2', sdp(B, 6000))).first, true, 'in firewall mode the answer opens the only pinhole: before its verdict')
})

t.test('trace events carry the net kernel changes of each message', async t => {
  const { alg } = makeAlg()
  const events: TraceEvent[] = []
  alg.onMessage = e => { events.push(e) }
  send(alg, A, 5060, B, 5060, invite(A, 5060, 4000, 'tr1'))
  send(alg, A, 5060, B, 5060, invite(A, 5060, 4000, 'tr1'))
  send(alg, B, 5060, A, 5060, response('200 OK', 'INVITE', 1, A, 5060, 'tr1', sdp(B, 6000)))
  const text = (ms: Array<{ map: string, key: { ip?: string, port: number } }>): string[] => ms.map(m => `${m.map} ${m.key.ip ?? ''}.${m.key.port}`).sort()
  t.same(text(events[0].added), ['any_dnat .20000', 'any_dnat .20001', `peer_dnat ${B}.5060`, `src_nat ${A}.4000`, `src_nat ${A}.4001`, `src_nat ${A}.5060`])
  t.same(events[0].removed, [])
  t.same([events[1].added, events[1].removed], [[], []], 'a retransmission changes nothing')
  t.same(text(events[2].added), [`peer_dnat ${B}.20000`, `peer_dnat ${B}.20001`])
  t.same(text(events[2].removed), ['any_dnat .20000', 'any_dnat .20001'])
  t.same(events[2].removed[0].data, { ip: A, port: 4000 }, 'a removed element shows what it held')
  alg.onMessage = () => { throw new Error('a broken listener') }
  t.match(send(alg, A, 5060, B, 5060, request('BYE', 2, A, 5060, 'tr1')).out, /^BYE /, 'never costs the message its verdict')
})

t.test('reload: the keys that need a restart follow from the declaration of live keys', async t => {
  const base = { public: PUB, inside: ['10.0.1.0/24'] }
  const { alg } = makeAlg()
  t.same(alg.reconfigure(buildConfig([{ ...base, firewall: true, malformed: 'drop', log_level: 'warn', timeouts: { ring: 5 }, trusted_inside_proxies: [A] }])), [], 'all live')
  t.equal(send(alg, A, 5060, B, 5060, 'junk that is not SIP').dropped, true, 'malformed: drop applies at once')
  t.same(alg.reconfigure(buildConfig([{ ...base, queue: 3, media_ports: '30000-30999', timeouts: { signalling: 10 } }])).sort(),
    ['mediaPorts', 'queue', 'timeouts.signalling'])
  t.equal(alg.status().publicIp, PUB, 'restart-only keys are left as they were')
})

t.test('state saving: on change, not per packet', async t => {
  const { alg } = makeAlg()
  t.equal(alg.stateIfChanged(), null, 'nothing yet')
  const options = crlf(`OPTIONS sip:${B} SIP/2.0\nVia: SIP/2.0/UDP ${A}:5060;branch=z9hG4bK-o\nFrom: <sip:a@${A}>;tag=1\nTo: <sip:b@${B}>\nCall-ID: o1\nCSeq: 1 OPTIONS\nContent-Length: 0\n\n`)
  for (let i = 0; i < 5; i++) send(alg, A, 5060, B, 5060, options)
  send(alg, A, 5060, B, 5060, '\r\n\r\n')
  t.equal(alg.stateIfChanged(), null, 'keepalives and OPTIONS outside a call change nothing a restart needs')
  send(alg, A, 5060, B, 5060, invite(A, 5060, 4000, 's1'))
  t.equal(alg.stateIfChanged()?.calls.length, 1)
  t.equal(alg.stateIfChanged(), null)
})

t.test('adopt: kernel elements of a previous sipalg hold their ports', async t => {
  const { alg } = makeAlg()
  t.equal(alg.adopt([
    { map: 'src_nat', key: { ip: A, port: 4000 }, data: { port: 20000 }, remainingMs: 30_000 },
    { map: 'src_nat', key: { ip: A, port: 5060 }, data: { port: 5062 }, remainingMs: 30_000 },
    { map: 'any_dnat', key: { port: 20000 }, data: { ip: A, port: 4000 }, remainingMs: 30_000 }
  ]), 3)
  t.equal(alg.ports.inUse, 1, 'the media pair is claimed')
  t.same(alg.signalling.lookupPublic(5062), { ip: A, port: 5060 }, 'the signalling port is the phone\'s again')
  t.same(alg.maps.takePending(), [], 'adoption sends nothing')
  const st = alg.status()
  t.same(st.mappings, { src_nat: 2, any_dnat: 1, peer_dnat: 0, latch_dnat: 0 })
})

t.test('status: calls with their media and flows, registrations, mappings, counters', async t => {
  const { alg, clock } = makeAlg()
  send(alg, A, 5060, B, 5060, invite(A, 5060, 4000, 'st1'))
  t.same(alg.status().calls[0].media, [`audio ${A}:4000 → 20000 ⇐ any`])
  send(alg, B, 5060, A, 5060, response('200 OK', 'INVITE', 1, A, 5060, 'st1', sdp(B, 6000)))
  send(alg, A, 5060, B, 5060, crlf(`REGISTER sip:${B} SIP/2.0\nVia: SIP/2.0/UDP ${A}:5060;branch=z9hG4bK-st\nFrom: <sip:alice@${B}>;tag=r\nTo: <sip:alice@${B}>\nCall-ID: st-reg\nCSeq: 1 REGISTER\nContact: <sip:alice@${A}:5060>\nContent-Length: 0\n\n`))
  send(alg, B, 5060, A, 5060, crlf(`SIP/2.0 200 OK\nVia: SIP/2.0/UDP ${PUB}:5060;branch=z9hG4bK-st\nFrom: <sip:alice@${B}>;tag=r\nTo: <sip:alice@${B}>;tag=s\nCall-ID: st-reg\nCSeq: 1 REGISTER\nContact: <sip:alice@${PUB}:5060>;expires=600\nContent-Length: 0\n\n`))
  clock.now += 10_000
  const st = alg.status()
  t.same(st.calls, [{
    callId: 'st1', phone: `${A}:5060`, direction: 'out', state: 'confirmed', ageSeconds: 10,
    media: [`audio ${A}:4000 → 20000 ⇐ ${B}`],
    flows: [{ media: 'audio', publicPort: 20000, far: { ip: B, port: 6000 } }]
  }])
  t.same(st.registrations, [{ phone: `${A}:5060`, publicPort: 5060, registrar: B, aor: `sip:alice@${B}`, expiresInSeconds: 590 }])
  t.same(st.mappings, { src_nat: 3, any_dnat: 0, peer_dnat: 3, latch_dnat: 0 })
  t.equal(st.counters.calls_started, 1)
})

t.test('media latching: the first packet of a new media flow gets its verdict here; garbage is dropped, RTP latches; stale flows go to the shell', async t => {
  const C = '203.0.113.10'
  const rtp = Buffer.alloc(172); rtp[0] = 0x80; rtp[1] = 8
  const { alg } = makeAlg({ media_latching: 'first' })
  send(alg, A, 5060, B, 5060, invite(A, 5060, 4000, 'l1'))
  send(alg, B, 5060, A, 5060, response('200 OK', 'INVITE', 1, A, 5060, 'l1', sdp(B, 6000)))
  const media = (src: string, sport: number, payload: Buffer): string => alg.process(buildUdp(src, sport, A, 4000, payload)).action
  t.equal(media('203.0.113.66', 1234, Buffer.from('probe probe probe')), 'drop', 'garbage: no flow, no latch')
  t.equal(media(C, 27000, rtp), 'accept', 'RTP with a payload type the SDP offered: latched')
  t.ok(alg.maps.takePending().some(o => o.op === 'add' && o.map === 'latch_dnat' && o.key.ip === C && o.key.sport === 27000 && o.key.port === 20000))
  t.equal(media('203.0.113.66', 1235, rtp), 'drop', 'after the latch nobody else')
  const c = alg.counters.snapshot()
  t.equal(c.media_latched, 1)
  t.equal(c.media_latch_refused, 1)
  t.equal(c.media_flows_refused, 1)
  t.match(alg.status().calls[0]?.media[0], /⇐ 203\.0\.113\.10:27000 \(latched\)/)
  t.equal(alg.process(buildUdp(C, 27000, A, 4999, rtp)).action, 'accept', 'not a media port of a call: transit')
  send(alg, A, 5060, B, 5060, request('BYE', 2, A, 5060, 'l1'))
  t.same(alg.takeStaleFlows().filter(f => f.remote.ip === C), [{ remote: { ip: C, port: 27000 }, publicPort: 20000 }], 'the latched flow is cut at the end')
})

t.test('media latching off: a flow admitted before the answer is cut by the answer', async t => {
  const { alg } = makeAlg()
  send(alg, A, 5060, B, 5060, invite(A, 5060, 4000, 'o1'))
  t.equal(alg.process(buildUdp('203.0.113.10', 27000, A, 4000, Buffer.alloc(20))).action, 'accept', 'open to anyone before the answer')
  t.same(alg.takeStaleFlows(), [])
  send(alg, B, 5060, A, 5060, response('200 OK', 'INVITE', 1, A, 5060, 'o1', sdp(B, 6000)))
  t.same(alg.takeStaleFlows(), [{ remote: { ip: '203.0.113.10', port: 27000 }, publicPort: 20000 }])
})

// A trunk or PBX that opens a new source port per call: each port's mapping serves one call and
// must go within a transaction time of its end (src/media/signalling.ts, CALL_LINGER_MS), or the
// public ports run out; a registered phone's port and a port with keepalives keep theirs.
function wholeCall (alg: Alg, port: number, callId: string, rtp: number): MapOp[] {
  send(alg, A, port, B, 5060, invite(A, port, rtp, callId))
  send(alg, B, 5060, A, port, response('200 OK', 'INVITE', 1, A, port, callId, sdp(B, 6000)))
  send(alg, A, port, B, 5060, request('ACK', 1, A, port, callId))
  return endCall(alg, port, callId)
}
function endCall (alg: Alg, port: number, callId: string): MapOp[] {
  const bye = send(alg, A, port, B, 5060, request('BYE', 2, A, port, callId))
  const ok = send(alg, B, 5060, A, port, response('200 OK', 'BYE', 2, A, port, callId))
  return [...bye.ops, ...ok.ops]
}
const signallingMapped = (alg: Alg, port: number): boolean =>
  alg.maps.get('src_nat', { ip: A, port }) !== undefined && alg.signalling.lookupPrivate({ ip: A, port }) !== null

t.test('a port used for one call only: its mapping ends 32 s after the call, the kernel element too', async t => {
  const { alg, clock } = makeAlg()
  const ops = wholeCall(alg, 40001, 'trunk-1', 4000)
  t.same(ops.filter(o => o.map === 'src_nat' && o.key.port === 40001).map(o => `${o.op} ${o.timeoutMs ?? ''}`),
    ['delete ', 'add 32000'], 'the element is replaced with a 32 s timeout after the BYE')
  clock.now += 31_000
  alg.tick()
  t.ok(signallingMapped(alg, 40001), 'a retransmitted BYE 31 s later still finds the mapping')
  clock.now += 2_000
  alg.tick()
  t.notOk(signallingMapped(alg, 40001), 'gone 33 s after the call, not after 300 s')
  t.equal(alg.signalling.size, 0, 'its public port is free again')
  t.same(alg.maps.takePending(), [], 'the kernel expired the element itself: no delete sent')
  // Its conntrack flow lives on (120 s): the next phone given public port 40001 would clash with it.
  t.same(alg.takeStaleFlows().filter(f => f.publicPort === 40001), [{ remote: { ip: B, port: 5060 }, publicPort: 40001, phone: { ip: A, port: 40001 } }],
    'the port\'s flow to the far end is handed on to be forgotten with the mapping')
})

t.test('a call-only port with two calls keeps its mapping until the last one ended', async t => {
  const { alg, clock } = makeAlg()
  send(alg, A, 40002, B, 5060, invite(A, 40002, 4000, 'p-1'))
  send(alg, B, 5060, A, 40002, response('200 OK', 'INVITE', 1, A, 40002, 'p-1', sdp(B, 6000)))
  wholeCall(alg, 40002, 'p-2', 4010)
  clock.now += 60_000
  alg.tick()
  t.ok(signallingMapped(alg, 40002), 'another call still lives on the port')
  endCall(alg, 40002, 'p-1')
  clock.now += 33_000
  alg.tick()
  t.notOk(signallingMapped(alg, 40002), 'gone 33 s after the last call')
})

t.test('a registered phone and a port with keepalives keep their mapping after a call', async t => {
  const { alg, clock } = makeAlg()
  const reg = crlf(`REGISTER sip:${B} SIP/2.0\nVia: SIP/2.0/UDP ${A}:5060;branch=z9hG4bK-lr\nFrom: <sip:alice@${B}>;tag=r\nTo: <sip:alice@${B}>\nCall-ID: linger-reg\nCSeq: 1 REGISTER\nContact: <sip:alice@${A}:5060>\nContent-Length: 0\n\n`)
  send(alg, A, 5060, B, 5060, reg)
  send(alg, B, 5060, A, 5060, crlf(`SIP/2.0 200 OK\nVia: SIP/2.0/UDP ${PUB}:5060;branch=z9hG4bK-lr\nFrom: <sip:alice@${B}>;tag=r\nTo: <sip:alice@${B}>;tag=s\nCall-ID: linger-reg\nCSeq: 1 REGISTER\nContact: <sip:alice@${PUB}:5060>;expires=600\nContent-Length: 0\n\n`))
  const regOps = wholeCall(alg, 5060, 'reg-call', 4000)
  t.notOk(regOps.some(o => o.map === 'src_nat' && o.key.port === 5060), 'the registered port is not touched at the call\'s end')
  send(alg, A, 5062, B, 5060, '\r\n\r\n')
  wholeCall(alg, 5062, 'ka-call', 4010)
  clock.now += 33_000
  alg.tick()
  t.ok(signallingMapped(alg, 5060), 'the registered phone keeps its mapping')
  t.ok(signallingMapped(alg, 5062), 'a port that sent keepalives keeps its mapping')
  clock.now += 200_000
  alg.tick()
  t.ok(signallingMapped(alg, 5062), 'for the idle timeout (300 s), as before')
})

t.test('late offer: the phone\'s flow that may predate its mapping (answer in the ACK) is handed on to be forgotten', async t => {
  const { alg } = makeAlg()
  const inv = crlf(`INVITE sip:bob@${B} SIP/2.0\nVia: SIP/2.0/UDP ${A}:5060;branch=z9hG4bK-late\nMax-Forwards: 70\nFrom: <sip:alice@${A}>;tag=a-late\nTo: <sip:bob@${B}>\nCall-ID: late\nCSeq: 1 INVITE\nContact: <sip:alice@${A}:5060>\nContent-Length: 0\n\n`)
  send(alg, A, 5060, B, 5060, inv)
  send(alg, B, 5060, A, 5060, response('200 OK', 'INVITE', 1, A, 5060, 'late', sdp(B, 6000)))
  t.same(alg.takeStaleFlows(), [], 'nothing mapped yet')
  const ack = send(alg, A, 5060, B, 5060, withBody(`ACK sip:bob@${B}:5060 SIP/2.0\nVia: SIP/2.0/UDP ${A}:5060;branch=z9hG4bK-late-ack\nMax-Forwards: 70\nFrom: <sip:alice@${A}>;tag=a-late\nTo: <sip:bob@${B}>;tag=b-late\nCall-ID: late\nCSeq: 1 ACK\nContent-Type: application/sdp\nContent-Length: {len}\n\n`, sdp(A, 4000, 'a=rtcp:4001\n')))
  t.ok(ack.first, 'the answer\'s mapping is in the kernel before the ACK leaves')
  t.same(alg.takeStaleFlows(), [
    { remote: { ip: B, port: 6000 }, publicPort: 20000, phone: { ip: A, port: 4000 } },
    { remote: { ip: B, port: 6001 }, publicPort: 20001, phone: { ip: A, port: 4001 } }
  ], 'A\'s RTP and RTCP flows to B, by their private tuples')
})
