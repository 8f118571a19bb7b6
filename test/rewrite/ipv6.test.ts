// The rewrite policy never rewrites IPv6 (nothing to NAT), even when the IPv6 address is inside.
import t from 'tap'
import { parseSip } from '../../src/sip/message.js'
import { rewriteMessage } from '../../src/rewrite/rewrite.js'
import { insideMatcher, parseCidr, type Cidr } from '../../src/rewrite/cidr.js'
import type { RewriteContext } from '../../src/rewrite/types.js'

const isInside = insideMatcher(['10.0.1.0/24', '2001:db8:1::/64'].map(n => parseCidr(n) as Cidr))
const ctx = (phone: string): RewriteContext => ({
  publicIp: '203.0.113.1',
  isInside,
  phone: { ip: phone, port: 5060 },
  mapSignalling: () => 20000,
  mapMedia: r => ({ rtpPort: 30000, rtcpPort: r.rtcpPort === null ? null : 30001 }),
  lookupSignalling: () => null
})
const crlf = (s: string): string => s.replace(/\n/g, '\r\n')
const inviteWith = (via: string, contact: string, body: string): Buffer => {
  const b = crlf(body)
  return Buffer.from(crlf(`INVITE sip:bob@example.com SIP/2.0
Via: SIP/2.0/UDP ${via};branch=z9hG4bK-r6;rport
From: <sip:alice@example.com>;tag=r6
To: <sip:bob@example.com>
Call-ID: r6
CSeq: 1 INVITE
Contact: <sip:alice@${contact}>
Content-Type: application/sdp
Content-Length: ${Buffer.byteLength(b)}

`) + b, 'latin1')
}

/** The message as sipalg would send it on from `phone` (outbound). */
function rewriteFrom (raw: Buffer, phone: string): ReturnType<typeof rewriteMessage> {
  const p = parseSip(raw)
  if (!p.ok) throw new Error(p.reason)
  return rewriteMessage(p.msg, 'outbound', ctx(phone))
}

t.test('an inside IPv6 phone: nothing rewritten, its SDP still read', async t => {
  const raw = inviteWith('[2001:db8:1::23]:5060', '[2001:db8:1::23]:5060', 'v=0\no=- 1 1 IN IP6 2001:db8:1::23\ns=-\nc=IN IP6 2001:db8:1::23\nt=0 0\nm=audio 16000 RTP/AVP 0\na=rtcp:16001 IN IP6 2001:db8:1::23\n')
  const r = rewriteFrom(raw, '2001:db8:1::23')
  t.equal(r.changed, false)
  t.ok(r.bytes.equals(raw))
  t.same(r.media, [])
  t.equal(r.sdp?.streams[0].ip, '2001:db8:1::23')
})

t.test('an IPv4 phone with IPv6 media lines (ANAT): IPv4 parts rewritten, IPv6 ones as written', async t => {
  const raw = inviteWith('10.0.1.23:5060', '10.0.1.23:5060', `v=0
o=- 1 1 IN IP4 10.0.1.23
s=-
t=0 0
a=group:ANAT 1 2
m=audio 4000 RTP/AVP 0
c=IN IP4 10.0.1.23
a=mid:1
m=audio 4002 RTP/AVP 0
c=IN IP6 2001:db8:1::23
a=mid:2
`)
  const r = rewriteFrom(raw, '10.0.1.23')
  const out = r.bytes.toString('latin1')
  t.match(out, 'c=IN IP4 203.0.113.1')
  t.match(out, 'm=audio 30000 RTP/AVP 0')
  t.match(out, 'm=audio 4002 RTP/AVP 0\r\nc=IN IP6 2001:db8:1::23', 'the IPv6 stream keeps its address and port')
  t.same(r.media.map(m => m.index), [0])
})

t.test('bracketed IPv6 hosts and malformed literals in an IPv4 phone\'s message are left as written', async t => {
  const raw = inviteWith('[fe80::1%eth0]:5060', '[2001:db8:1::23]:5060', 'v=0\no=- 1 1 IN IP4 10.0.1.23\ns=-\nc=IN IP6 fe80::1%eth0\nt=0 0\nm=audio 4000 RTP/AVP 0\n')
  const r = rewriteFrom(raw, '10.0.1.23')
  const out = r.bytes.toString('latin1')
  t.match(out, 'Via: SIP/2.0/UDP [fe80::1%eth0]:5060;')
  t.match(out, 'Contact: <sip:alice@[2001:db8:1::23]:5060>')
  t.match(out, 'c=IN IP6 fe80::1%eth0')
  t.same(r.sdp?.malformedAddresses, ['fe80::1%eth0'])
})
