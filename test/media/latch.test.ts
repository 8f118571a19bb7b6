// What counts as the stream's RTP/RTCP for a latch, and the per-port latch state (src/media/latch.ts).
import t from 'tap'
import { admits, isRtcp, isRtp, offer, openLatch } from '../../src/media/latch.js'

/** An RTP header as phones send it: V=2, no padding/extension, `csrcs` CSRCs, marker off. */
const rtp = (pt: number, csrcs = 0, payload = 160): Buffer => {
  const b = Buffer.alloc(12 + 4 * csrcs + payload)
  b[0] = 0x80 | csrcs
  b[1] = pt
  b.writeUInt16BE(4711, 2); b.writeUInt32BE(160 * 9, 4); b.writeUInt32BE(0x1234abcd, 8)
  return b
}
/** An RTCP receiver report with one report block (8 words after the header word). */
const rtcpRR = (): Buffer => {
  const b = Buffer.alloc(32)
  b[0] = 0x81; b[1] = 201; b.writeUInt16BE(7, 2); b.writeUInt32BE(0x1234abcd, 4)
  return b
}

t.test('isRtp: version 2, a whole header, a payload type the SDP listed', async t => {
  t.ok(isRtp(rtp(0), [0, 8]))
  t.ok(isRtp(rtp(8 | 0x80), [0, 8]), 'the marker bit is not part of the payload type')
  t.ok(isRtp(rtp(96, 2), [96]), 'CSRCs within the packet')
  t.notOk(isRtp(rtp(18), [0, 8]), 'a payload type the SDP did not offer')
  t.notOk(isRtp(rtp(0).subarray(0, 11), [0]), 'shorter than a header')
  t.notOk(isRtp(rtp(96, 15, 0).subarray(0, 40), [96]), 'CSRC count beyond the packet')
  const v1 = rtp(0); v1[0] = 0x40
  t.notOk(isRtp(v1, [0]), 'version 1')
  t.notOk(isRtp(Buffer.from('GET / HTTP/1.1\r\n\r\n'), [0, 8]), 'text')
  t.notOk(isRtp(rtcpRR(), undefined), 'RTCP is not RTP even with no payload type list')
  t.ok(isRtp(rtp(18), undefined), 'no list (an older state file): any RTP payload type')
})

t.test('isRtcp: version 2, an RTCP packet type, a length that fits', async t => {
  t.ok(isRtcp(rtcpRR()))
  t.notOk(isRtcp(rtp(0)), 'RTP')
  const long = rtcpRR(); long.writeUInt16BE(100, 2)
  t.notOk(isRtcp(long), 'length beyond the packet')
  t.notOk(isRtcp(Buffer.alloc(4)), 'too short')
})

t.test('the latch: open until the window ends, locked by the first RTP-shaped packet only', async t => {
  const l = openLatch('203.0.113.9:6000', 10_000)
  t.same(admits(l, 'rtp', 0), { kind: 'any' })
  t.equal(offer(l, 'rtp', { ip: '203.0.113.66', port: 1234 }, Buffer.from('garbage garbage!'), [0], 1), 'refused', 'garbage never latches')
  t.same(admits(l, 'rtp', 1), { kind: 'any' }, 'and the port stays open')
  t.equal(offer(l, 'rtp', { ip: '203.0.113.10', port: 30000 }, rtp(0), [0], 2), 'latched')
  t.same(admits(l, 'rtp', 3), { kind: 'source', source: { ip: '203.0.113.10', port: 30000 } })
  t.equal(offer(l, 'rtp', { ip: '203.0.113.66', port: 1234 }, rtp(0), [0], 4), 'closed', 'one latch per window')
  t.same(admits(l, 'rtcp', 5), { kind: 'any' }, 'RTCP latches on its own')
  t.equal(offer(l, 'rtcp', { ip: '203.0.113.10', port: 30001 }, rtp(0), [0], 5), 'refused', 'RTP is not RTCP')
  t.same(admits(l, 'rtcp', 10_000), { kind: 'sdp' }, 'after the window: the SDP address')
  t.equal(offer(l, 'rtcp', { ip: '203.0.113.10', port: 30001 }, rtcpRR(), [0], 10_000), 'closed', 'too late')
})
