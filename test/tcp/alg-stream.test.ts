// Alg.processMessage: a SIP message from a TCP splice leg takes the same path as a UDP datagram
// (rewrite, tracking, counters, trace), with the transport marked.
import t from 'tap'
import { pino } from 'pino'
import { Alg } from '../../src/alg.js'
import { buildConfig } from '../../src/config.js'
import { buildUdp, parseUdp } from '../../src/netfilter/packet.js'
import { parseSip } from '../../src/sip/message.js'
import { messageLabel, type TraceEvent } from '../../src/trace/ladder.js'
import { sdp } from '../dialog/harness.js'

const A = '10.0.1.23'; const B = '203.0.113.9'; const PUB = '203.0.113.1'

const makeAlg = (): Alg => new Alg(buildConfig([{ public: PUB, inside: ['10.0.1.0/24'] }]), pino({ level: 'silent' }), () => 1_000_000)

const crlf = (s: string): string => s.replace(/\n/g, '\r\n')

function invite (transport: 'TCP' | 'UDP', port: number): Buffer {
  const body = crlf(sdp(A, 16000, ''))
  return Buffer.from(crlf(`INVITE sip:bob@${B};transport=tcp SIP/2.0
Via: SIP/2.0/${transport} ${A}:${port};branch=z9hG4bK-tcp1;rport
Max-Forwards: 70
From: <sip:alice@${B}>;tag=a1
To: <sip:bob@${B}>
Call-ID: tcp-call-1
CSeq: 1 INVITE
Contact: <sip:alice@${A}:${port};transport=tcp>
Content-Type: application/sdp
Content-Length: ${Buffer.byteLength(body)}

`) + body, 'latin1')
}

const phone = { ip: A, port: 5060 }
const far = { ip: B, port: 5060 }

t.test('an outbound INVITE over TCP: Via, Contact, SDP and Content-Length as over UDP, mappings first', async t => {
  const alg = makeAlg()
  const events: TraceEvent[] = []
  alg.onMessage = e => events.push(e)
  const out = alg.processMessage(invite('TCP', 5060), { direction: 'outbound', phone, far, transport: 'tcp' })
  const text = out.toString('latin1')
  t.match(text, `Via: SIP/2.0/TCP ${PUB}:5060;branch=z9hG4bK-tcp1;rport`)
  t.match(text, `Contact: <sip:alice@${PUB}:5060;transport=tcp>`)
  t.match(text, `c=IN IP4 ${PUB}`)
  t.notMatch(text, A, 'no private address left')
  const parsed = parseSip(out)
  t.ok(parsed.ok)
  if (parsed.ok) {
    const f = parsed.msg.framing
    t.ok(f.ok && f.declared === out.length - parsed.msg.bodyStart, 'Content-Length is the rewritten body length')
  }
  t.equal(alg.maps.mustPrecedeVerdict, true, 'the media and signalling elements must reach the kernel before the write')
  t.equal(alg.calls.size, 1, 'the call is tracked')
  t.equal(alg.counters.snapshot().tcp_messages_outbound, 1)
  t.equal(alg.counters.snapshot().rewritten, 1)
  t.equal(events.length, 1)
  t.equal(events[0].transport, 'tcp')
  t.equal(messageLabel(events[0]), 'INVITE /TCP')
  t.equal(events[0].far, `${B}:5060`)
})

t.test('the TCP path and the UDP path write the same bytes for the same message', async t => {
  const tcp = makeAlg().processMessage(invite('UDP', 5060), { direction: 'outbound', phone, far, transport: 'tcp' })
  const v = makeAlg().process(buildUdp(A, 5060, B, 5060, invite('UDP', 5060)))
  t.equal(v.action, 'accept')
  if (v.action !== 'accept' || v.payload === undefined) return t.fail('rewritten')
  const udp = parseUdp(v.payload)
  t.ok(udp.ok)
  if (udp.ok) t.equal(tcp.toString('latin1'), udp.udp.payload.toString('latin1'))
})

t.test('an inbound request to a phone sipalg never mapped passes unchanged; bytes that are not SIP pass as they came', async t => {
  const alg = makeAlg()
  const options = Buffer.from(crlf(`OPTIONS sip:alice@${PUB} SIP/2.0
Via: SIP/2.0/TCP ${B}:5060;branch=z9hG4bK-o1
From: <sip:bob@${B}>;tag=b1
To: <sip:alice@${PUB}>
Call-ID: opt-1
CSeq: 1 OPTIONS
Content-Length: 0

`), 'latin1')
  const out = alg.processMessage(options, { direction: 'inbound', phone, far, transport: 'tcp' })
  t.equal(out, options, 'the same buffer')
  const junk = Buffer.from('INVITE nothing\r\n\r\n')
  t.equal(alg.processMessage(junk, { direction: 'outbound', phone, far, transport: 'tcp' }), junk)
  t.equal(alg.counters.snapshot().tcp_messages_inbound, 1)
  t.equal(alg.counters.snapshot().not_sip, 1)
})
