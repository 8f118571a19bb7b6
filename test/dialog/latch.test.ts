// Media latching in the call table (src/dialog/calls.ts with src/media/latch.ts): the first packet
// of each new flow to an open media port, as the kernel queues it, and the kernel elements that
// follow; and, whatever the mode, flows a narrowed pinhole no longer allows are handed on to be cut.
import t from 'tap'
import { A, B, C, Harness, sdp } from './harness.js'

const D = '203.0.113.66'
const E = '203.0.113.77'
const PHONE_RTP = { ip: A, port: 4000 }
const PHONE_RTCP = { ip: A, port: 4001 }
const rtp = (pt = 0): Buffer => { const b = Buffer.alloc(172); b[0] = 0x80; b[1] = pt; return b }
const rtcp = (): Buffer => { const b = Buffer.alloc(8); b[0] = 0x80; b[1] = 201; b.writeUInt16BE(1, 2); return b }
const garbage = Buffer.from('\x00\x01 not media at all, a probe')

/** An outbound call answered by the far end with its SDP at `farMedia`. */
function answered (h: Harness, farMedia = B): void {
  h.deliver({ start: 'INVITE', cseq: '1 INVITE', body: sdp(A, 4000), phoneSent: true })
  h.deliver({ start: '200 OK', cseq: '1 INVITE', toTag: 'b1', body: sdp(farMedia, 6000), phoneSent: false })
}

t.test('off: a flow admitted while the port was open to anyone is cut when the answer narrows it', async t => {
  const h = new Harness()
  h.deliver({ start: 'INVITE', cseq: '1 INVITE', body: sdp(A, 4000), phoneSent: true })
  t.equal(h.calls.firstPacket(PHONE_RTP, { ip: C, port: 30000 }, rtp()).outcome, 'admitted', 'open to anyone before the answer')
  t.equal(h.calls.firstPacket({ ip: A, port: 9999 }, { ip: C, port: 30000 }, rtp()).outcome, 'unknown', 'not a phone media port')
  const ok = h.deliver({ start: '200 OK', cseq: '1 INVITE', toTag: 'b1', body: sdp(B, 6000), phoneSent: false })
  t.ok(ok.ops.includes(`add peer_dnat ${B}.20000 : ${A}.4000`))
  t.ok(ok.ops.includes('delete any_dnat 20000'))
  t.same(h.flowsCut, [`${C}:30000>20000`], 'the early flow from another host goes')
  t.equal(h.calls.firstPacket(PHONE_RTP, { ip: D, port: 1 }, rtp()).outcome, 'narrowed', 'a late first packet the kernel still let through is refused')
  t.equal(h.calls.firstPacket(PHONE_RTP, { ip: B, port: 6000 }, rtp()).outcome, 'admitted', 'the SDP address still may')
  t.notOk(h.call()?.streams.get(`${A}:4000`)?.latch, 'no latch in off mode')
})

t.test('first: open to anyone after the answer; garbage refused; the first RTP locks the port to its source address and port', async t => {
  const h = new Harness({ latching: 'first', latchMs: 10_000 })
  h.deliver({ start: 'INVITE', cseq: '1 INVITE', body: sdp(A, 4000), phoneSent: true })
  t.equal(h.calls.firstPacket(PHONE_RTP, { ip: E, port: 5000 }, rtp()).outcome, 'admitted', 'early: open to anyone, no latch yet')
  const ok = h.deliver({ start: '200 OK', cseq: '1 INVITE', toTag: 'b1', body: sdp(B, 6000), phoneSent: false })
  t.notOk(ok.ops.some(o => o.includes('peer_dnat 203.0.113.9.2000')), 'no SDP-only pinhole while latching')
  t.ok(h.elements().includes(`any_dnat 20000 : ${A}.4000`), 'still open to anyone')
  t.same(h.flowsCut, [], 'nothing narrowed yet')

  const g = h.calls.firstPacket(PHONE_RTP, { ip: D, port: 1234 }, garbage)
  t.equal(g.outcome, 'refused', 'garbage does not win the latch')
  t.equal(h.calls.firstPacket(PHONE_RTP, { ip: D, port: 1234 }, rtp(18)).outcome, 'refused', 'nor RTP with a payload type the SDP did not list')
  h.maps.takePending()
  t.equal(h.calls.firstPacket(PHONE_RTP, { ip: C, port: 30000 }, rtp(8)).outcome, 'latched')
  const ops = h.maps.takePending().map(o => `${o.op} ${o.map} ${o.key.ip ?? ''}.${o.key.sport ?? ''}.${o.key.port}`)
  t.ok(ops.includes('add latch_dnat 203.0.113.10.30000.20000'), 'locked in the kernel: a map element')
  t.ok(ops.includes('delete any_dnat ..20000'), 'the wide element goes')
  t.notOk(ops.some(o => o.includes('20001')), 'RTCP latches on its own')
  t.same(h.flowsCut, [`${E}:5000>20000`], 'the early flow from elsewhere is cut')
  t.equal(h.calls.firstPacket(PHONE_RTP, { ip: D, port: 1234 }, rtp()).outcome, 'narrowed', 'RTP from a third host after the latch: refused (the kernel had not caught up)')

  h.clock.now += 10_000
  h.calls.tick()
  const rtcpEls = h.elements().filter(e => e.includes('20001 :'))
  t.same(rtcpEls, [`peer_dnat ${C}.20001 : ${A}.4001`, `peer_dnat ${B}.20001 : ${A}.4001`], 'window over: RTCP from the SDP address and the latched RTP source')
  t.equal(h.calls.firstPacket(PHONE_RTCP, { ip: C, port: 30001 }, rtcp()).outcome, 'admitted')
  t.equal(h.calls.firstPacket(PHONE_RTCP, { ip: D, port: 30001 }, rtcp()).outcome, 'narrowed')
})

t.test('first: nothing came within the window: the stream stays locked to the SDP address', async t => {
  const h = new Harness({ latching: 'first', latchMs: 10_000 })
  answered(h)
  h.clock.now += 9_000
  h.calls.tick()
  t.ok(h.elements().includes(`any_dnat 20000 : ${A}.4000`), 'open within the window')
  h.clock.now += 1_000
  h.calls.tick()
  t.same(h.elements().filter(e => e.includes('dnat') && !e.includes('5060')), [`peer_dnat ${B}.20000 : ${A}.4000`, `peer_dnat ${B}.20001 : ${A}.4001`])
  t.equal(h.calls.firstPacket(PHONE_RTP, { ip: C, port: 30000 }, rtp()).outcome, 'narrowed', 'no late latch')
})

t.test('first: a re-INVITE with new far media re-opens the latch of that stream; the old source is cut at the new latch', async t => {
  const h = new Harness({ latching: 'first', latchMs: 10_000 })
  answered(h)
  t.equal(h.calls.firstPacket(PHONE_RTP, { ip: C, port: 30000 }, rtp()).outcome, 'latched')
  h.deliver({ start: 'INVITE', cseq: '1 INVITE', fromTag: 'b1', toTag: 'a1', body: sdp(B, 6000), phoneSent: false })
  t.ok(h.elements().some(e => e.startsWith('latch_dnat')), 'the same far media: the latch holds')
  h.clock.now += 20_000
  h.deliver({ start: 'INVITE', cseq: '2 INVITE', fromTag: 'b1', toTag: 'a1', body: sdp(E, 6200), phoneSent: false })
  h.deliver({ start: '200 OK', cseq: '2 INVITE', fromTag: 'b1', toTag: 'a1', body: sdp(A, 4000), phoneSent: true })
  t.ok(h.elements().includes(`any_dnat 20000 : ${A}.4000`), 'open again')
  t.notOk(h.elements().some(e => e.startsWith('latch_dnat')), 'the old lock is gone')
  t.same(h.flowsCut, [], 'the old flow may go on until the new latch')
  t.equal(h.calls.firstPacket(PHONE_RTP, { ip: D, port: 40000 }, rtp()).outcome, 'latched', 'a new source latches')
  t.ok(h.elements().includes(`latch_dnat ${D}.40000.20000 : ${A}.4000`))
  t.same(h.flowsCut, [`${C}:30000>20000`], 'the old source is cut')
  h.deliver({ start: 'BYE', cseq: '3 BYE', fromTag: 'b1', toTag: 'a1', phoneSent: false })
  t.same(h.elements(), [], 'the call leaves nothing behind')
  t.same(h.flowsCut.slice(1), [`${D}:40000>20000`], 'and its latched flow is cut')
})

t.test('signalling: the far signalling address is admitted as well as the SDP address; no latch', async t => {
  const h = new Harness({ latching: 'signalling', latchMs: 10_000 })
  answered(h, C)
  t.same(h.elements().filter(e => e.includes('20000 :')), [`peer_dnat ${C}.20000 : ${A}.4000`, `peer_dnat ${B}.20000 : ${A}.4000`])
  t.equal(h.calls.firstPacket(PHONE_RTP, { ip: D, port: 1 }, rtp()).outcome, 'narrowed')
})

t.test('firewall mode with first: nothing open before the far media is known, the latch window after', async t => {
  const h = new Harness({ farEndOnly: true, latching: 'first', latchMs: 10_000 })
  const inv = h.deliver({ start: 'INVITE', cseq: '1 INVITE', body: sdp(A, 4000), phoneSent: true })
  t.notOk(inv.ops.some(o => o.includes('any_dnat')))
  h.deliver({ start: '200 OK', cseq: '1 INVITE', toTag: 'b1', body: sdp(B, 6000), phoneSent: false })
  t.ok(h.elements().includes(`any_dnat 20000 : ${A}.4000`))
})
