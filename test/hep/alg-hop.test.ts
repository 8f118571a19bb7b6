// What the ALG reports for HEP (Alg.onSip): each SIP message with the phone's private address, the
// public address and port of its signalling, the far end, and the bytes before and after the rewrite.

import t from 'tap'
import { pino } from 'pino'
import { Alg } from '../../src/alg.js'
import { buildConfig } from '../../src/config.js'
import { buildUdp } from '../../src/netfilter/packet.js'
import type { SipHop } from '../../src/hep/legs.js'

const A = '10.0.1.23'; const B = '203.0.113.9'; const PUB = '203.0.113.1'
const crlf = (s: string): string => s.replace(/\n/g, '\r\n')

const INVITE = crlf(`INVITE sip:bob@${B} SIP/2.0
Via: SIP/2.0/UDP ${A}:5062;branch=z9hG4bK-hop1;rport
Max-Forwards: 70
From: <sip:alice@example.com>;tag=a1
To: <sip:bob@${B}>
Call-ID: hop1@example.com
CSeq: 1 INVITE
Contact: <sip:alice@${A}:5062>
Content-Length: 0

`)

t.test('outbound and inbound hops', async t => {
  const alg = new Alg(buildConfig([{ public: PUB, inside: ['10.0.1.0/24'] }]), pino({ level: 'silent' }))
  const hops: SipHop[] = []
  alg.onSip = h => { hops.push(h) }
  const v = alg.process(buildUdp(A, 5062, B, 5060, Buffer.from(INVITE, 'latin1')))
  t.equal(v.action, 'accept')
  t.equal(hops.length, 1)
  const out = hops[0]
  t.match(out, { direction: 'outbound', callId: 'hop1@example.com', phone: { ip: A, port: 5062 }, far: { ip: B, port: 5060 }, public: { ip: PUB } })
  t.equal(out.arrived.toString('latin1'), INVITE, 'arrived: the bytes the phone sent')
  t.match(out.left.toString('latin1'), `Contact: <sip:alice@${PUB}:${out.public.port}>`, 'left: rewritten, with the public port the kernel maps the phone to')
  t.ok(v.action === 'accept' && v.payload !== undefined && v.payload.subarray(28).equals(out.left), 'left is exactly the payload released')

  const ok = crlf(`SIP/2.0 180 Ringing
Via: SIP/2.0/UDP ${PUB}:${out.public.port};branch=z9hG4bK-hop1;rport=${out.public.port};received=${PUB}
From: <sip:alice@example.com>;tag=a1
To: <sip:bob@${B}>;tag=b1
Call-ID: hop1@example.com
CSeq: 1 INVITE
Content-Length: 0

`)
  // Inbound, seen in FORWARD after the kernel's DNAT: addressed to the phone already.
  alg.process(buildUdp(B, 5060, A, 5062, Buffer.from(ok, 'latin1')))
  t.equal(hops.length, 2)
  t.match(hops[1], { direction: 'inbound', phone: { ip: A, port: 5062 }, far: { ip: B, port: 5060 }, public: { ip: PUB, port: out.public.port } })
  t.equal(hops[1].arrived.toString('latin1'), ok)
  t.match(hops[1].left.toString('latin1'), `Via: SIP/2.0/UDP ${A}:5062;`, 'left: the Via the phone wrote, restored')

  alg.onSip = () => { throw new Error('collector code failing') }
  t.equal(alg.process(buildUdp(A, 5062, B, 5060, Buffer.from(INVITE, 'latin1'))).action, 'accept', 'a failing listener never costs the message')
  t.equal((alg.counters.snapshot().internal_errors ?? 0), 0)
})
