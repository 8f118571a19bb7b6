// The HEP3 encoder against the wire format written out by hand (header "HEP3" + total length, then
// chunks of vendor 0 / type / length-with-head / value), and the two legs of a message.

import t from 'tap'
import { CHUNK, encodeHep3, type HepMessage } from '../../src/hep/encode.js'
import { hopLegs } from '../../src/hep/legs.js'
import { hepChunks as chunks } from '../fixtures/hep.js'

const INVITE = Buffer.from('INVITE sip:bob@203.0.113.9 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.1.23:5060;branch=z9hG4bK-1\r\n' +
  'Call-ID: a84b4c76e66710@10.0.1.23\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n', 'latin1')

const msg: HepMessage = {
  src: { ip: '10.0.1.23', port: 5060 },
  dst: { ip: '203.0.113.9', port: 5062 },
  timeUs: 1_764_619_200_123_456,
  captureId: 2001,
  authKey: 'sécret',
  correlationId: 'a84b4c76e66710@10.0.1.23',
  payload: INVITE
}

t.test('HEP3 packet of one SIP datagram, byte for byte', async t => {
  const pkt = encodeHep3(msg)
  t.equal(pkt.subarray(0, 4).toString('latin1'), 'HEP3')
  t.equal(pkt.readUInt16BE(4), pkt.length, 'total length in the header')
  const head = Buffer.from([
    0, 0, 0, 1, 0, 7, 2, // IP family: AF_INET
    0, 0, 0, 2, 0, 7, 17, // IP protocol: UDP
    0, 0, 0, 7, 0, 8, 0x13, 0xc4, // source port 5060
    0, 0, 0, 8, 0, 8, 0x13, 0xc6, // destination port 5062
    0, 0, 0, 9, 0, 10, 0x69, 0x2d, 0xf3, 0xc0, // seconds 1764619200
    0, 0, 0, 10, 0, 10, 0x00, 0x01, 0xe2, 0x40, // microseconds 123456
    0, 0, 0, 11, 0, 7, 1, // protocol type: SIP
    0, 0, 0, 12, 0, 10, 0, 0, 0x07, 0xd1, // capture agent id 2001
    0, 0, 0, 3, 0, 10, 10, 0, 1, 23, // IPv4 source
    0, 0, 0, 4, 0, 10, 203, 0, 113, 9 // IPv4 destination
  ])
  t.same(pkt.subarray(6, 6 + head.length), head, 'fixed chunks in the order position-reading receivers (sngrep) expect')
  const got = chunks(pkt)
  t.same(got.map(([type]) => type), [CHUNK.IP_FAMILY, CHUNK.IP_PROTOCOL, CHUNK.SRC_PORT, CHUNK.DST_PORT, CHUNK.TIME_SEC, CHUNK.TIME_USEC,
    CHUNK.PROTOCOL_TYPE, CHUNK.CAPTURE_ID, CHUNK.IPV4_SRC, CHUNK.IPV4_DST, CHUNK.AUTH_KEY, CHUNK.PAYLOAD, CHUNK.CORRELATION_ID])
  t.same(got[10][1], Buffer.from('sécret', 'utf8'), 'auth key: its bytes, whatever their characters (7 bytes for 6 characters)')
  t.same(got[11][1], INVITE, 'payload: the datagram unchanged')
  t.equal(got[12][1].toString('latin1'), 'a84b4c76e66710@10.0.1.23', 'correlation id: the Call-ID')
})

t.test('optional chunks left out when not configured', async t => {
  const pkt = encodeHep3({ ...msg, authKey: undefined, correlationId: undefined })
  t.same(chunks(pkt).map(([type]) => type).slice(-2), [CHUNK.IPV4_DST, CHUNK.PAYLOAD])
  t.equal(pkt.length, 6 + 7 + 7 + 8 + 8 + 10 + 10 + 7 + 10 + 10 + 10 + 6 + INVITE.length)
})

t.test('what cannot be encoded is refused, never written wrong', async t => {
  t.throws(() => encodeHep3({ ...msg, src: { ip: '2001:db8::1', port: 5060 } }), /two address families/)
  t.throws(() => encodeHep3({ ...msg, src: { ip: 'fe80::1%eth0', port: 5060 }, dst: { ip: '2001:db8:2::9', port: 5060 } }), /not an IPv6 address/)
  t.throws(() => encodeHep3({ ...msg, src: { ip: '10.0.1.256', port: 5060 } }), /not an IPv4 address/)
  t.throws(() => encodeHep3({ ...msg, dst: { ip: '203.0.113.9', port: 70000 } }), RangeError)
  t.throws(() => encodeHep3({ ...msg, captureId: -1 }), RangeError)
  t.throws(() => encodeHep3({ ...msg, payload: Buffer.alloc(65_500) }), /do not fit/)
  t.equal(encodeHep3({ ...msg, captureId: 0xffffffff }).readUInt32BE(6 + 7 + 7 + 8 + 8 + 10 + 10 + 7 + 6), 0xffffffff)
})

t.test('two legs: arrived on one side of the NAT, left on the other', async t => {
  const left = Buffer.from('rewritten')
  const id = { captureId: 7 }
  const phone = { ip: '10.0.1.23', port: 5060 }
  const pub = { ip: '203.0.113.1', port: 5060 }
  const far = { ip: '203.0.113.9', port: 5060 }
  const [oa, ol] = hopLegs({ direction: 'outbound', callId: 'c1', phone, public: pub, far, arrived: INVITE, left }, 1000, id)
  t.match(oa, { src: phone, dst: far, payload: INVITE, timeUs: 1000, correlationId: 'c1', captureId: 7 }, 'outbound arrives from the private phone')
  t.match(ol, { src: pub, dst: far, payload: left, timeUs: 1001 }, 'and leaves from the public address, rewritten, after it')
  const [ia, il] = hopLegs({ direction: 'inbound', callId: 'c1', phone, public: pub, far, arrived: INVITE, left }, 1000, id)
  t.match(ia, { src: far, dst: pub, payload: INVITE }, 'inbound arrives at the public address')
  t.match(il, { src: far, dst: phone, payload: left, timeUs: 1001 }, 'and leaves to the private phone')
})

t.test('an IPv6 datagram: family AF_INET6 and the 16-byte address chunks where IPv4 has its own', async t => {
  const pkt = encodeHep3({ ...msg, src: { ip: '2001:db8:1::23', port: 5060 }, dst: { ip: '2001:DB8:2:0::9', port: 5062 } })
  const got = chunks(pkt)
  t.same(got.map(([type]) => type), [CHUNK.IP_FAMILY, CHUNK.IP_PROTOCOL, CHUNK.SRC_PORT, CHUNK.DST_PORT, CHUNK.TIME_SEC, CHUNK.TIME_USEC,
    CHUNK.PROTOCOL_TYPE, CHUNK.CAPTURE_ID, CHUNK.IPV6_SRC, CHUNK.IPV6_DST, CHUNK.AUTH_KEY, CHUNK.PAYLOAD, CHUNK.CORRELATION_ID])
  t.same(got[0][1], Buffer.from([10]), 'AF_INET6')
  t.same(got[8][1], Buffer.from('20010db8000100000000000000000023', 'hex'), 'source address, 16 bytes')
  t.same(got[9][1], Buffer.from('20010db8000200000000000000000009', 'hex'), 'destination, whatever the case and zeros it was written with')
  t.same(got[11][1], INVITE)
})

t.test('a hop nothing translated (IPv6) is one message, not two identical ones', async t => {
  const phone = { ip: '2001:db8:1::23', port: 5060 }
  const far = { ip: '2001:db8:2::9', port: 5060 }
  const out = hopLegs({ direction: 'outbound', callId: 'c6', phone, public: phone, far, arrived: INVITE, left: INVITE }, 1000, { captureId: 7 })
  t.match(out, [{ src: phone, dst: far, payload: INVITE, timeUs: 1000, correlationId: 'c6' }])
  t.equal(out.length, 1)
  const inbound = hopLegs({ direction: 'inbound', callId: 'c6', phone, public: phone, far, arrived: INVITE, left: INVITE }, 1000, { captureId: 7 })
  t.match(inbound, [{ src: far, dst: phone, payload: INVITE }])
  t.equal(inbound.length, 1)
  t.equal(hopLegs({ direction: 'outbound', phone, public: phone, far, arrived: INVITE, left: Buffer.from(INVITE) }, 1000, { captureId: 7 }).length, 2,
    'bytes that changed are two legs, whatever the addresses')
})
