import t from 'tap'
import { parseSip } from '../../src/sip/message.js'
import { malformedHosts, receivedHost, sipHost } from '../../src/sip/host.js'

const msg = (text: string): ReturnType<typeof parseSip> => parseSip(Buffer.from(text.replace(/\n/g, '\r\n'), 'latin1'))

t.test('hosts in SIP: IPv6 bracketed, canonical; zone ids and broken literals malformed', async t => {
  t.same(sipHost('[2001:DB8:1::23]'), { kind: 'ipv6', ip: '2001:db8:1::23' })
  t.same(sipHost('10.0.1.23'), { kind: 'ipv4-or-name' })
  t.same(sipHost('pbx.example.com'), { kind: 'ipv4-or-name' })
  for (const bad of ['[fe80::1%eth0]', '[fe80::1%25eth0]', '[2001:db8::1', '[]', '[10.0.1.23]', '2001:db8::1', 'a]']) {
    t.same(sipHost(bad), { kind: 'malformed' }, bad)
  }
  t.same(receivedHost('2001:db8:1::23'), { kind: 'ipv6', ip: '2001:db8:1::23' }, 'received= bare, as RFC 3261 writes it')
  t.same(receivedHost('[2001:db8:1::23]'), { kind: 'ipv6', ip: '2001:db8:1::23' }, 'or bracketed, as many UAs do')
  t.same(receivedHost('2001:db8:1::23%1'), { kind: 'malformed' })
  t.same(receivedHost('203.0.113.1'), { kind: 'ipv4-or-name' })
})

t.test('an IPv6 INVITE parses: Via with rport/received, Contact, Request-URI', async t => {
  const r = msg(`INVITE sip:bob@[2001:db8:2::9]:5060;transport=udp SIP/2.0
Via: SIP/2.0/UDP [2001:db8:1::23]:5062;branch=z9hG4bK-1;rport=5062;received=2001:db8:1::23
From: "Alice" <sip:alice@[2001:db8:1::23]>;tag=1
To: <sip:bob@[2001:db8:2::9]>
Call-ID: v6@[2001:db8:1::23]
CSeq: 1 INVITE
Contact: <sip:alice@[2001:db8:1::23]:5062;ob>;expires=60
Content-Length: 0

`)
  t.ok(r.ok)
  if (!r.ok) return
  const via = r.msg.topVia
  t.equal(via?.host, '[2001:db8:1::23]')
  t.equal(via?.port, 5062)
  t.same(via?.params.find(p => p.name === 'received')?.value, '2001:db8:1::23')
  t.same(via?.params.find(p => p.name === 'rport')?.value, '5062')
  t.equal(r.msg.contacts[0].address?.target?.host, '[2001:db8:1::23]')
  t.equal(r.msg.contacts[0].address?.target?.port, 5062)
  t.equal(malformedHosts(r.msg), 0)
})

t.test('malformed literals are counted, the message still parses', async t => {
  const r = msg(`REGISTER sip:[fe80::1%eth0] SIP/2.0
Via: SIP/2.0/UDP [2001:db8:1::23::1]:5060;branch=z9hG4bK-2;received=[fe80::1%25eth0]
From: <sip:alice@[2001:db8:1::23]>;tag=2
To: <sip:alice@[2001:db8:1::23]>
Call-ID: bad6
CSeq: 1 REGISTER
Contact: <sip:alice@[zz::1]:5060>
Content-Length: 0

`)
  t.ok(r.ok)
  if (r.ok) t.equal(malformedHosts(r.msg), 4, 'Request-URI, Via sent-by, received=, Contact')
})
