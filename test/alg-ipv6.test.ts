// IPv6 calls through the ALG core: never rewritten (the verdict is a plain accept), pinholes in the
// ip6 firewall sets (pinhole6: far . phone . port, media6: phone . port) before the verdict of the
// message that completes the offer/answer, the IPv4 lifecycle (re-INVITE, BYE, CANCEL, timeouts),
// malformed literals counted, mixed-family SDP passed and counted, IPv4 calls alongside unchanged.
import t from 'tap'
import { pino } from 'pino'
import { Alg } from '../src/alg.js'
import { buildConfig } from '../src/config.js'
import { buildUdp, buildUdp6 } from '../src/netfilter/packet.js'
import { ipv6Bytes } from '../src/ip6.js'
import type { MapOp } from '../src/media/mappings.js'
import { hopLegs, type SipHop } from '../src/hep/legs.js'

const A = '2001:db8:1::23'; const B = '2001:db8:2::9'; const C = '2001:db8:2::10'
const A4 = '10.0.1.23'; const B4 = '203.0.113.9'; const PUB = '203.0.113.1'

function makeAlg (extra: Record<string, unknown> = {}): { alg: Alg, clock: { now: number }, warnings: unknown[] } {
  const clock = { now: 1_000_000 }
  const warnings: unknown[] = []
  const log = pino({ level: 'warn' }, { write: (s: string) => { warnings.push(JSON.parse(s)) } })
  const cfg = buildConfig([{ public: PUB, inside: ['10.0.1.0/24', '2001:db8:1::/64'], firewall: true, ...extra }])
  return { alg: new Alg(cfg, log, () => clock.now), clock, warnings }
}

const crlf = (s: string): string => s.replace(/\n/g, '\r\n')
const withBody = (head: string, body: string): string => crlf(head.replace('{len}', String(Buffer.byteLength(crlf(body))))) + crlf(body)
const h = (ip: string): string => (ip.includes(':') ? `[${ip}]` : ip)
const sdp6 = (ip: string, port: number, type = 'IP6'): string => `v=0
o=- 42 1 IN ${type} ${ip}
s=-
c=IN ${type} ${ip}
t=0 0
m=audio ${port} RTP/AVP 0 8
a=rtcp:${port + 1} IN ${type} ${ip}
a=rtpmap:0 PCMU/8000
`

const invite = (from: string, to: string, body: string, callId: string, cseq = 1, toTag = ''): string => withBody(`INVITE sip:bob@${h(to)} SIP/2.0
Via: SIP/2.0/UDP ${h(from)}:5060;branch=z9hG4bK-${callId}-${cseq};rport
Max-Forwards: 70
From: <sip:alice@${h(from)}>;tag=a-${callId}
To: <sip:bob@${h(to)}>${toTag}
Call-ID: ${callId}
CSeq: ${cseq} INVITE
Contact: <sip:alice@${h(from)}:5060>
Content-Type: application/sdp
Content-Length: {len}

`, body)

const ok200 = (from: string, to: string, callId: string, cseq: number, method: string, body = ''): string => withBody(`SIP/2.0 200 OK
Via: SIP/2.0/UDP ${h(from)}:5060;branch=z9hG4bK-${callId}-${cseq};rport=5060;received=${from}
From: <sip:alice@${h(from)}>;tag=a-${callId}
To: <sip:bob@${h(to)}>;tag=b-${callId}
Call-ID: ${callId}
CSeq: ${cseq} ${method}
Contact: <sip:bob@${h(to)}:5060>
${body === '' ? '' : 'Content-Type: application/sdp\n'}Content-Length: {len}

`, body)

const request = (method: string, from: string, to: string, callId: string, cseq: number): string => crlf(`${method} sip:bob@${h(to)}:5060 SIP/2.0
Via: SIP/2.0/UDP ${h(from)}:5060;branch=z9hG4bK-${method}-${callId}
Max-Forwards: 70
From: <sip:alice@${h(from)}>;tag=a-${callId}
To: <sip:bob@${h(to)}>;tag=b-${callId}
Call-ID: ${callId}
CSeq: ${cseq} ${method}
Content-Length: 0

`)

function send (alg: Alg, src: string, dst: string, text: string): { payload: Buffer | undefined, action: string, ops: string[], first: boolean } {
  const pkt = src.includes(':')
    ? buildUdp6(ipv6Bytes(src) as Buffer, 5060, ipv6Bytes(dst) as Buffer, 5060, Buffer.from(text, 'latin1'))
    : buildUdp(src, 5060, dst, 5060, Buffer.from(text, 'latin1'))
  const v = alg.process(pkt)
  const first = alg.maps.mustPrecedeVerdict
  const ops = alg.maps.takePending().map((o: MapOp) => `${o.op} ${o.map} ${o.key.ip ?? ''}${o.key.dst === undefined ? '' : ' . ' + o.key.dst} . ${o.key.port}`)
  return { payload: v.action === 'accept' ? v.payload : undefined, action: v.action, ops, first }
}

t.test('outbound IPv6 call: accepted unchanged, pinholes from the far SDP address before the answer is released, gone at BYE', async t => {
  const { alg } = makeAlg()
  const inv = send(alg, A, B, invite(A, B, sdp6(A, 16000), 'v6a'))
  t.equal(inv.action, 'accept')
  t.equal(inv.payload, undefined, 'IPv6 is never rewritten: plain accept')
  t.same(inv.ops.sort(), [`add media6 ${A} . 16000`, `add media6 ${A} . 16001`], 'the phone may send from its negotiated ports; nothing open inbound yet')
  t.ok(inv.first, 'before the INVITE is released')
  const ans = send(alg, B, A, ok200(A, B, 'v6a', 1, 'INVITE', sdp6('2001:DB8:2:0::9', 26000)))
  t.equal(ans.payload, undefined)
  t.same(ans.ops.sort(), [`add pinhole6 ${B} . ${A} . 16000`, `add pinhole6 ${B} . ${A} . 16001`], 'only the far end\'s SDP address (canonical form), RTP and RTCP')
  t.ok(ans.first, 'before the answer is released')
  send(alg, A, B, request('ACK', A, B, 'v6a', 1))
  t.equal(alg.ports.inUse, 0, 'no IPv4 public port taken by an IPv6 call')
  const st = alg.status()
  t.equal(st.calls.length, 1)
  t.equal(st.calls[0].phone, `[${A}]:5060`, 'status shows the IPv6 phone, bracketed')
  t.equal(st.calls[0].family, 'ipv6')
  t.same(st.calls[0].flows[0], { media: 'audio', publicPort: 16000, far: { ip: B, port: 26000 }, phone: A }, 'its flow runs to the phone itself')
  t.same(st.mappings, { src_nat: 0, any_dnat: 0, peer_dnat: 0, latch_dnat: 0, pinhole6: 2, media6: 2 })
  const bye = send(alg, A, B, request('BYE', A, B, 'v6a', 2))
  t.same(bye.ops.sort(), [`delete media6 ${A} . 16000`, `delete media6 ${A} . 16001`, `delete pinhole6 ${B} . ${A} . 16000`, `delete pinhole6 ${B} . ${A} . 16001`])
  t.same(alg.takeStaleFlows(), [
    { remote: { ip: B, port: 26000 }, publicPort: 16000, local: A },
    { remote: { ip: B, port: 26001 }, publicPort: 16001, local: A }
  ], 'conntrack flows of the ended call, far → phone')
  t.equal(alg.calls.size, 0)
})

t.test('inbound IPv6 call, re-INVITE moving the far media, then CANCEL of another and a ring timeout', async t => {
  const { alg, clock } = makeAlg()
  const inv = send(alg, B, A, invite(B, A, sdp6(B, 26000), 'v6b'))
  t.same(inv.ops, [], 'the far offer alone opens nothing (the phone has not answered)')
  const ans = send(alg, A, B, ok200(B, A, 'v6b', 1, 'INVITE', sdp6(A, 16100)))
  t.same(ans.ops.sort(), [`add media6 ${A} . 16100`, `add media6 ${A} . 16101`, `add pinhole6 ${B} . ${A} . 16100`, `add pinhole6 ${B} . ${A} . 16101`])
  t.ok(ans.first)
  send(alg, B, A, request('ACK', B, A, 'v6b', 1))
  // The far end moves its media to another address.
  const re = send(alg, B, A, invite(B, A, sdp6(C, 27000), 'v6b', 2, ';tag=a-v6b'))
  t.ok(re.ops.includes(`add pinhole6 ${C} . ${A} . 16100`), 'the new far address is let in (as IPv4: with the offer)')
  t.ok(re.ops.includes(`delete pinhole6 ${B} . ${A} . 16100`), 'the old one is not any more')
  t.ok(re.first, 'before the re-INVITE reaches the phone')
  send(alg, A, B, ok200(B, A, 'v6b', 2, 'INVITE', sdp6(A, 16100)))
  t.same(alg.takeStaleFlows().map(f => f.remote.ip), [], 'the far end moved: nothing of B was admitted to cut (IPv6 ports are never open to anyone)')

  send(alg, A, B, invite(A, B, sdp6(A, 16200), 'v6c'))
  const cancel = send(alg, A, B, request('CANCEL', A, B, 'v6c', 1))
  t.equal(cancel.action, 'accept')
  send(alg, B, A, ok200(A, B, 'v6c', 1, 'CANCEL'))
  clock.now += 181_000
  alg.tick()
  t.equal(alg.calls.size, 1, 'the cancelled call is gone by its ring timeout, the established one stays')
  t.same([...alg.calls.values()].map(c => c.callId), ['v6b'])
  clock.now += 7_200_000
  alg.tick()
  t.equal(alg.calls.size, 0, 'the established call ends by the call timeout')
  t.same([...alg.maps.all()], [], 'with every IPv6 element')
})

t.test('malformed IPv6 literals are counted, never crash, never become pinholes', async t => {
  const { alg } = makeAlg()
  const zone = invite(A, B, sdp6(A, 16000), 'v6z').replace(`Contact: <sip:alice@[${A}]:5060>`, 'Contact: <sip:alice@[fe80::1%eth0]:5060>')
  send(alg, A, B, zone)
  const ans = send(alg, B, A, ok200(A, B, 'v6z', 1, 'INVITE', sdp6('2001:db8:2::9::1', 26000)))
  t.same(ans.ops, [], 'a malformed far address opens nothing')
  t.equal(alg.counters.snapshot().malformed_ipv6_literals, 2, 'the zone id and the double "::"')
  for (const bad of ['[2001:db8::1', '[::ffff:999.1.1.1]', '[gggg::1]', 'a:b', '[]']) {
    send(alg, A, B, invite(A, B, sdp6(A, 16000), 'v6m').replace(`Via: SIP/2.0/UDP [${A}]:5060`, `Via: SIP/2.0/UDP ${bad}:5060`))
  }
  t.equal(alg.counters.snapshot().malformed_ipv6_literals, 5, 'each broken Via host counted (an unclosed bracket makes no Via at all)')
})

t.test('mixed families: an IPv4 NAT call offered IPv6 media passes as written, counted and logged once', async t => {
  const { alg, warnings } = makeAlg()
  send(alg, A4, B4, invite(A4, B4, sdp6(A4, 4000, 'IP4'), 'mix'))
  const ans = send(alg, B4, A4, ok200(PUB, B4, 'mix', 1, 'INVITE', sdp6(B, 26000)))
  t.notOk(ans.ops.some(o => o.includes('peer_dnat') && o.includes(B)), 'no pinhole for the IPv6 media of an IPv4 phone')
  send(alg, B4, A4, ok200(PUB, B4, 'mix', 1, 'INVITE', sdp6(B, 26000)))
  t.equal(alg.counters.snapshot().sdp_other_family, 2)
  t.equal(warnings.filter(w => (w as { code?: string }).code === 'E321').length, 1, 'one E321 warning for the call')
})

t.test('an IPv4 call next to an IPv6 one is rewritten exactly as before', async t => {
  const { alg } = makeAlg()
  send(alg, A, B, invite(A, B, sdp6(A, 16000), 'v6d'))
  const v4 = send(alg, A4, B4, invite(A4, B4, sdp6(A4, 4000, 'IP4'), 'v4d'))
  t.ok(v4.payload !== undefined, 'the IPv4 INVITE is rewritten')
  t.match(v4.payload?.toString('latin1') ?? '', `c=IN IP4 ${PUB}`)
  t.ok(v4.ops.some(o => o.startsWith('add src_nat')), 'IPv4 mappings as before')
  t.notOk(v4.ops.some(o => o.includes('6 ')), 'no IPv6 element for an IPv4 call')
})

t.test('IPv6 packets that are not SIP between inside and outside pass as transit', async t => {
  const { alg } = makeAlg()
  const pkt = buildUdp6(ipv6Bytes(A) as Buffer, 16000, ipv6Bytes(B) as Buffer, 26000, Buffer.alloc(172))
  t.same(alg.process(pkt), { action: 'accept' })
  t.equal(alg.counters.snapshot().passed_transit, 1)
  const { alg: noV6 } = makeAlg({ inside: ['10.0.1.0/24'] })
  send(noV6, A, B, invite(A, B, sdp6(A, 16000), 'off'))
  t.equal(noV6.calls.size, 0, 'without an IPv6 inside network IPv6 SIP is transit')
})

t.test('limits count IPv6 calls like IPv4 ones; an IPv6 phone offered IPv4 media gets no pinhole for it', async t => {
  const { alg, warnings } = makeAlg({ limits: { calls_per_host: 1 } })
  send(alg, A, B, invite(A, B, sdp6(A, 16000), 'l1'))
  const second = send(alg, A, B, invite(A, B, sdp6(A, 16010), 'l2'))
  t.same(second.ops, [], 'the second call of the host is refused its media')
  t.equal(second.action, 'accept', 'its SIP still passes')
  t.equal(alg.counters.snapshot().refused_calls_per_host, 1)
  const ans = send(alg, B, A, ok200(A, B, 'l1', 1, 'INVITE', sdp6('203.0.113.9', 26000, 'IP4')))
  t.same(ans.ops, [], 'IPv4 media offered to an IPv6 phone opens nothing')
  t.equal(alg.counters.snapshot().sdp_other_family, 1)
  t.match(warnings.find(w => (w as { code?: string }).code === 'E321'), { family: 'ipv6', addresses: '203.0.113.9' })
})

t.test('sipalg trace shows IPv6 messages with bracketed endpoints and the pinholes they opened', async t => {
  const { alg } = makeAlg()
  const events: Array<{ phone?: string, far?: string, added?: unknown[] }> = []
  alg.onMessage = e => { events.push(e as unknown as { phone?: string, far?: string, added?: unknown[] }) }
  send(alg, A, B, invite(A, B, sdp6(A, 16000), 'tr'))
  send(alg, B, A, ok200(A, B, 'tr', 1, 'INVITE', sdp6(B, 26000)))
  t.equal(events.length, 2)
  t.match(JSON.stringify(events[0]), `[${A}]:5060`)
  t.match(JSON.stringify(events[1]), 'pinhole6')
})

t.test('HEP: an IPv6 message is reported once, as written, phone and far end by their own addresses', async t => {
  const { alg } = makeAlg()
  const hops: SipHop[] = []
  alg.onSip = hop => { hops.push(hop) }
  const text = invite(A, B, sdp6(A, 16000), 'hep6')
  send(alg, A, B, text)
  t.equal(hops.length, 1)
  t.match(hops[0], { direction: 'outbound', callId: 'hep6', phone: { ip: A, port: 5060 }, public: { ip: A, port: 5060 }, far: { ip: B, port: 5060 } })
  t.equal(hops[0].arrived.toString('latin1'), text)
  t.equal(hops[0].left, hops[0].arrived, 'nothing translated: the same bytes')
  t.equal(hopLegs(hops[0], 1, { captureId: 1 }).length, 1, 'which the exporter sends once')
  send(alg, B, A, ok200(A, B, 'hep6', 1, 'INVITE', sdp6(B, 26000)))
  t.match(hops[1], { direction: 'inbound', phone: { ip: A }, far: { ip: B } })
  alg.onSip = () => { throw new Error('collector code failing') }
  t.equal(send(alg, A, B, request('BYE', A, B, 'hep6', 2)).action, 'accept', 'a failing listener never costs the message')
  t.equal(alg.counters.snapshot().internal_errors ?? 0, 0)
})
