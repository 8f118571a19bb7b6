import t from 'tap'
import { SipStreamFramer, declaredLength, FramingError, type FrameUnit } from '../../src/sip/framer.js'
import { fixture } from '../fixtures/helpers.js'

// Real-shaped messages as they come over TCP: the phone's INVITE with SDP, the far end's 200 with SDP,
// the ACK, the Via transport written as TCP.
const tcp = (name: string): Buffer => Buffer.from(fixture(name).toString('latin1').replaceAll('SIP/2.0/UDP', 'SIP/2.0/TCP'), 'latin1')
const INVITE = tcp('polycom-invite.sip')
const OK = tcp('ok200-invite-sdp.sip')
const ACK = tcp('ack.sip')
const COMPACT_LF = tcp('linphone-invite-compact-lf.sip')
const PING = Buffer.from('\r\n\r\n')
const STREAM = Buffer.concat([INVITE, PING, OK, ACK])

function feed (chunks: Buffer[], limits = {}): FrameUnit[] {
  const f = new SipStreamFramer(limits)
  return chunks.flatMap(c => f.push(c))
}

const messages = (units: FrameUnit[]): string[] =>
  units.filter(u => u.kind === 'message').map(u => (u as { bytes: Buffer }).bytes.toString('latin1'))
const keepaliveBytes = (units: FrameUnit[]): string =>
  units.filter(u => u.kind === 'keepalive').map(u => (u as { bytes: Buffer }).bytes.toString('latin1')).join('')

t.test('the fixtures carry a body of exactly their Content-Length', async t => {
  for (const m of [INVITE, OK, ACK]) {
    const end = m.indexOf('\r\n\r\n') + 4
    t.equal(m.length - end, declaredLength(m.toString('latin1', 0, end)))
  }
})

t.test('a pipelined INVITE + ping + 200 + ACK in one chunk: three messages, one keep-alive, no copy', async t => {
  const units = feed([STREAM])
  t.same(units.map(u => u.kind), ['message', 'keepalive', 'message', 'message'])
  t.same(messages(units), [INVITE, OK, ACK].map(b => b.toString('latin1')))
  t.equal(keepaliveBytes(units), '\r\n\r\n')
  const first = units[0] as { bytes: Buffer, headerLength: number, bodyLength: number }
  t.equal(first.bodyLength, 258)
  t.equal(first.headerLength + first.bodyLength, INVITE.length)
  t.equal(first.bytes.buffer, STREAM.buffer, 'a subarray of the chunk pushed')
})

t.test('cut at every byte: the same messages and keep-alive bytes, whatever the split', async t => {
  const want = messages(feed([STREAM]))
  let bad = 0
  for (let cut = 1; cut < STREAM.length; cut++) {
    const units = feed([STREAM.subarray(0, cut), STREAM.subarray(cut)])
    if (JSON.stringify(messages(units)) !== JSON.stringify(want) || keepaliveBytes(units) !== '\r\n\r\n') bad++
  }
  t.equal(bad, 0, `all ${STREAM.length - 1} two-piece cuts`)
  // Three pieces: every cut inside the INVITE combined with every cut inside the 200.
  bad = 0
  for (let a = 1; a < INVITE.length; a += 7) {
    for (let b = INVITE.length + PING.length + 1; b < INVITE.length + PING.length + OK.length; b += 11) {
      const units = feed([STREAM.subarray(0, a), STREAM.subarray(a, b), STREAM.subarray(b)])
      if (JSON.stringify(messages(units)) !== JSON.stringify(want)) bad++
    }
  }
  t.equal(bad, 0, 'three-piece cuts')
})

t.test('one byte at a time: messages come out at their last byte, nothing before', async t => {
  const f = new SipStreamFramer()
  const seenAt: number[] = []
  for (let i = 0; i < STREAM.length; i++) {
    for (const u of f.push(STREAM.subarray(i, i + 1))) if (u.kind === 'message') seenAt.push(i + 1)
  }
  t.same(seenAt, [INVITE.length, INVITE.length + 4 + OK.length, STREAM.length])
  t.equal(f.buffered, 0)
})

t.test('compact l: and bare LF line ends frame too, at every cut', async t => {
  const stream = Buffer.concat([COMPACT_LF, ACK])
  const want = [COMPACT_LF.toString('latin1'), ACK.toString('latin1')]
  t.same(messages(feed([stream])), want)
  let bad = 0
  for (let cut = 1; cut < stream.length; cut++) {
    if (JSON.stringify(messages(feed([stream.subarray(0, cut), stream.subarray(cut)]))) !== JSON.stringify(want)) bad++
  }
  t.equal(bad, 0)
})

t.test('no Content-Length on TCP means an empty body', async t => {
  const opts = Buffer.from('OPTIONS sip:203.0.113.9 SIP/2.0\r\nVia: SIP/2.0/TCP 10.0.1.23:5060;branch=z9hG4bKo1\r\nMax-Forwards: 70\r\nCall-ID: o1@10.0.1.23\r\nCSeq: 1 OPTIONS\r\n\r\n')
  const units = feed([Buffer.concat([opts, opts])])
  t.same(units.map(u => u.kind), ['message', 'message'])
  t.equal((units[0] as { bodyLength: number }).bodyLength, 0)
})

t.test('keep-alives: leading ping, pong between messages, a lone CRLF is passed at once', async t => {
  const f = new SipStreamFramer()
  t.same(f.push(Buffer.from('\r\n\r\n')).map(u => u.kind), ['keepalive'], 'ping before any message')
  t.equal(f.verdict, 'start', 'a ping is no verdict on the stream')
  t.same(f.push(Buffer.from('\r\n')).map(u => u.kind), ['keepalive'], 'pong passed without waiting for more')
  t.same(f.push(ACK).map(u => u.kind), ['message'])
  t.equal(f.verdict, 'sip')
})

t.test('limits: header bytes without an end, a huge declared body', async t => {
  const endless = Buffer.from('REGISTER sip:203.0.113.9 SIP/2.0\r\n' + 'X-Pad: ' + 'a'.repeat(5000) + '\r\n')
  let units = feed([endless, endless.subarray(34), endless.subarray(34)], { maxHeaderBytes: 8192 })
  t.equal(units.length, 1)
  t.equal(units[0].kind, 'error')
  t.equal((units[0] as { error: FramingError }).error.code, 'header-too-long')

  const huge = Buffer.from(INVITE.toString('latin1').replace('Content-Length: 258', 'Content-Length: 10485760'), 'latin1')
  const f = new SipStreamFramer({ maxBodyBytes: 65536 })
  units = f.push(huge)
  t.equal((units[0] as { error: FramingError }).error.code, 'body-too-long', 'refused as soon as the headers are in, not after 10 MB')
  t.same(f.push(ACK), [], 'nothing after an error')
  t.equal(f.buffered, 0, 'nothing kept')

  units = feed([Buffer.concat([ACK, Buffer.from(INVITE.toString('latin1').replace('Content-Length: 258', 'Content-Length: 99999999999999999999'), 'latin1')])])
  t.same(units.map(u => u.kind), ['message', 'error'])
  t.equal((units[1] as { error: FramingError }).error.code, 'bad-content-length')
})

t.test('Content-Length: compact, duplicates, bad values', async t => {
  t.equal(declaredLength('INVITE sip:x SIP/2.0\r\nl: 12\r\n\r\n'), 12)
  t.equal(declaredLength('INVITE sip:x SIP/2.0\r\nContent-Length : 7\r\nContent-Length: 7\r\n\r\n'), 7)
  t.equal(declaredLength('INVITE sip:x SIP/2.0\r\nContent-Length:\r\n 9\r\n\r\n'), 9, 'folded value')
  t.equal((declaredLength('INVITE sip:x SIP/2.0\r\nContent-Length: 7\r\nl: 8\r\n\r\n') as FramingError).code, 'bad-content-length')
  t.equal((declaredLength('INVITE sip:x SIP/2.0\r\nContent-Length: -1\r\n\r\n') as FramingError).code, 'bad-content-length')
  t.equal((declaredLength('INVITE sip:x SIP/2.0\r\nContent-Length: 1e3\r\n\r\n') as FramingError).code, 'bad-content-length')
  t.equal(declaredLength('INVITE sip:x SIP/2.0\r\nX-Content-Length: 5\r\n\r\n'), 0, 'only the header itself counts')
})

t.test('slipstreaming: a stream that does not start as SIP is never parsed', async t => {
  const register = 'REGISTER sip:203.0.113.9 SIP/2.0\r\nVia: SIP/2.0/TCP 10.0.1.23:5060;branch=z9hG4bKs\r\nContact: <sip:a@10.0.1.23:5060>\r\nContent-Length: 0\r\n\r\n'
  const post = Buffer.from(`POST /form HTTP/1.1\r\nHost: 203.0.113.9:5060\r\nContent-Length: ${register.length}\r\n\r\n${register}`)
  for (const cut of [1, 5, 19, 20, 60, post.length - 1]) {
    const f = new SipStreamFramer()
    const units = [...f.push(post.subarray(0, cut)), ...f.push(post.subarray(cut)), ...f.push(Buffer.from(register))]
    t.notOk(units.some(u => u.kind === 'message'), `cut at ${cut}: no message`)
    t.equal(Buffer.concat(units.map(u => (u as { bytes: Buffer }).bytes)).toString(), post.toString() + register, 'every byte passed on, in order')
    t.equal(f.verdict, 'not-sip')
  }
  t.equal(feed([Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00])])[0].kind, 'not-sip', 'a TLS ClientHello: not SIP at its first line')
  t.equal(feed([Buffer.alloc(20000, 0x41)])[0].kind, 'not-sip', 'a first line past the header limit without an end')
})

t.test('garbage after a good message is a framing error, not a new stream verdict', async t => {
  const units = feed([Buffer.concat([ACK, Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')])])
  t.same(units.map(u => u.kind), ['message', 'error'])
  t.equal((units[1] as { error: FramingError }).error.code, 'bad-start-line')
})
