import t from 'tap'
import { parseSdp, summarizeSdp } from '../../src/sdp/parse.js'
import { fixture, parsed } from '../fixtures/helpers.js'

function summaryOf (body: string) {
  return summarizeSdp(parseSdp(body, 0, body.length))
}

t.test('two streams with a=rtcp with and without address', async t => {
  const m = parsed(fixture('yealink-invite-rtcp-video.sip'))
  const s = summarizeSdp(parseSdp(m.text, m.bodyStart, m.raw.length))
  t.equal(s.sessionIp, '10.0.1.23')
  t.equal(s.originIp, '10.0.1.23')
  t.equal(s.ice, false)
  t.same(s.streams.map(x => [x.media, x.ip, x.port, x.proto, x.rtcpPort, x.rtcpIp, x.rtcpMux, x.direction, x.hold]), [
    ['audio', '10.0.1.23', 11800, 'RTP/AVP', 11801, '10.0.1.23', false, 'sendrecv', false],
    ['video', '10.0.1.23', 11802, 'RTP/AVP', 11803, '10.0.1.23', false, 'sendrecv', false]
  ])
})

t.test('declined stream, media-level c=, hold, ICE, rtcp-mux', async t => {
  const declined = summaryOf('v=0\r\no=- 1 1 IN IP4 10.0.1.23\r\nc=IN IP4 10.0.1.23\r\nm=audio 8000 RTP/AVP 0\r\nm=video 0 RTP/AVP 34\r\nc=IN IP4 10.0.1.99\r\n')
  t.equal(declined.streams[1].port, 0)
  t.equal(declined.streams[1].rtcpPort, null)
  t.equal(declined.streams[1].ip, '10.0.1.99')
  t.equal(declined.streams[0].rtcpPort, 8001)
  const hold = summaryOf('v=0\nc=IN IP4 0.0.0.0\nm=audio 2222 RTP/AVP 0\n')
  t.equal(hold.streams[0].hold, true)
  t.equal(hold.streams[0].direction, 'sendrecv')
  const sessionDir = summaryOf('v=0\nc=IN IP4 10.0.0.1\na=sendonly\nm=audio 2222 RTP/AVP 0\nm=audio 2224 RTP/AVP 0\na=inactive\n')
  t.same(sessionDir.streams.map(s => s.direction), ['sendonly', 'inactive'])
  t.same(sessionDir.streams.map(s => s.hold), [true, true])
  const ice = summaryOf('v=0\nc=IN IP4 10.0.0.1\nm=audio 2222 RTP/AVP 0\na=candidate:1 1 UDP 1 10.0.0.1 2222 typ host\n')
  t.equal(ice.ice, true)
  const mux = summaryOf('v=0\nc=IN IP4 10.0.0.1\nm=audio 4000 RTP/AVP 0\na=rtcp-mux\n')
  t.equal(mux.streams[0].rtcpMux, true)
  t.equal(mux.streams[0].rtcpPort, null)
  const multicast = summaryOf('v=0\nc=IN IP4 224.2.1.1/127/3\nm=audio 4000/2 RTP/AVP 0\n')
  t.equal(multicast.sessionIp, '224.2.1.1')
  t.equal(multicast.streams[0].portCount, 2)
})

t.test('token offsets point at the bytes to replace', async t => {
  const body = 'v=0\r\no=x 1 2 IN IP4 10.0.1.23\r\nc=IN IP4 10.0.1.23/64\r\nm=audio 49170 RTP/AVP 0\r\na=rtcp:49171 IN IP4 10.0.1.23\r\n'
  const p = parseSdp(body, 0, body.length)
  t.equal(body.slice(p.origin!.start, p.origin!.end), '10.0.1.23')
  t.equal(body.slice(p.sessionConn!.start, p.sessionConn!.end), '10.0.1.23')
  t.equal(body.slice(p.media[0].portToken.start, p.media[0].portToken.end), '49170')
  t.equal(body.slice(p.media[0].rtcpPort!.start, p.media[0].rtcpPort!.end), '49171')
  t.equal(body.slice(p.media[0].rtcpAddr!.start, p.media[0].rtcpAddr!.end), '10.0.1.23')
  t.equal(p.eol, '\r\n')
  t.equal(p.media[0].sectionEnd, body.length)
})

t.test('absurd SDP never throws', async t => {
  const many = 'v=0\nc=IN IP4 10.0.0.1\n' + Array.from({ length: 1000 }, (_, i) => `m=audio ${i * 2} RTP/AVP 0\n`).join('')
  t.equal(summaryOf(many).streams.length, 1000)
  const weird = [
    'm=audio 70000 RTP/AVP 0', 'm=audio -1 RTP/AVP 0', 'm=audio', 'm=', 'm=audio abc RTP/AVP 0', 'm=audio 4000/0 RTP/AVP 0',
    'm=audio 4000/99999999 x', 'c=', 'c=IN', 'o=', 'a=rtcp:', 'a=rtcp:99999 IN IP4', 'a=', '=', 'x', '\u0000\u00ff', 'a=candidate'
  ]
  for (const line of weird) {
    const s = summaryOf(`v=0\n${line}\nm=audio 5 RTP/AVP 0\n${line}\n`)
    t.ok(Array.isArray(s.streams), `"${line}" tolerated`)
  }
  t.equal(summaryOf('m=audio 70000 RTP/AVP 0\n').streams[0].port, 0, 'out of range port reads as unusable')
  t.same(summaryOf(''), { sessionIp: null, originIp: null, ice: false, streams: [] })
})
