import t from 'tap'
import { parseSdp, summarizeSdp } from '../../src/sdp/parse.js'

const summary = (text: string): ReturnType<typeof summarizeSdp> => {
  const body = text.replace(/\n/g, '\r\n')
  return summarizeSdp(parseSdp(body, 0, body.length))
}

t.test('c=IN IP6 and a=rtcp ... IN IP6: canonical addresses', async t => {
  const s = summary(`v=0
o=alice 2890844526 2890844526 IN IP6 2001:db8:1::23
s=-
c=IN IP6 2001:DB8:1:0::23
t=0 0
m=audio 16000 RTP/AVP 0 8 101
a=rtcp:16011 IN IP6 2001:db8:1:0:0:0:0:24
m=video 16002 RTP/AVP 96
c=IN IP6 FF1E:03AD::7F2E:172A:1E24/3
a=rtcp-mux
`)
  t.equal(s.sessionIp, '2001:db8:1::23')
  t.equal(s.streams[0].ip, '2001:db8:1::23')
  t.equal(s.streams[0].rtcpPort, 16011)
  t.equal(s.streams[0].rtcpIp, '2001:db8:1::24')
  t.equal(s.streams[1].ip, 'ff1e:3ad::7f2e:172a:1e24', 'multicast number suffix dropped')
  t.equal(s.streams[1].rtcpPort, null)
  t.equal(s.malformedAddresses, undefined)
})

t.test('malformed literals: null address, listed, never thrown', async t => {
  const s = summary(`v=0
o=- 1 1 IN IP6 fe80::1%eth0
s=-
c=IN IP6 fe80::1%eth0
t=0 0
m=audio 16000 RTP/AVP 0
a=rtcp:16001 IN IP6 2001:db8::1::2
m=audio 16002 RTP/AVP 0
c=IN IP4 2001:db8:1::23
m=audio 16004 RTP/AVP 0
c=IN IP6 10.0.1.23
m=audio 16006 RTP/AVP 0
c=IN IP6
`)
  t.equal(s.sessionIp, null)
  t.equal(s.streams[0].ip, null)
  t.equal(s.streams[0].rtcpIp, null)
  t.equal(s.streams[1].ip, null, 'IP4 with a colon')
  t.equal(s.streams[2].ip, null, 'IP6 without one')
  t.equal(s.streams[3].ip, null, 'a c= line without an address falls back to the (malformed) session address')
  t.same(s.malformedAddresses, ['fe80::1%eth0', '2001:db8::1::2', '2001:db8:1::23', '10.0.1.23'])
})

t.test('IPv4 SDP reads exactly as before', async t => {
  const s = summary(`v=0
o=- 1 1 IN IP4 10.0.1.23
s=-
c=IN IP4 10.0.1.23
t=0 0
m=audio 4000 RTP/AVP 0
a=rtcp:4001 IN IP4 10.0.1.23
`)
  t.equal(s.streams[0].ip, '10.0.1.23')
  t.equal(s.streams[0].rtcpIp, '10.0.1.23')
  t.equal(s.malformedAddresses, undefined)
})
