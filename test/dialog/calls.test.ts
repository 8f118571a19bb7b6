// CallTable (src/dialog/calls.ts): media grants, timeouts and refreshes, restart takeover, the
// change flag state saving relies on, firewall mode.
import t from 'tap'
import { ADOPTED } from '../../src/media/mappings.js'
import { reviveCall, snapshot } from '../../src/dialog/state.js'
import { A, B, Harness, PHONE, sdp } from './harness.js'

const req = (rtpPort: number, rtcpPort: number | null, index = 0) => ({ index, media: 'audio', ip: A, rtpPort, rtcpPort, rtcpIp: A })

t.test('grantMedia: the same private endpoint keeps its ports; a changed RTCP layout gets new ones; an empty pool refuses', async t => {
  const h = new Harness()
  const call = h.calls.begin('g1', PHONE, 5060, true)
  t.same(h.calls.grantMedia(call, req(4000, 4001)), { rtpPort: 20000, rtcpPort: 20001 })
  t.same(h.calls.grantMedia(call, req(4000, 4001, 1)), { rtpPort: 20000, rtcpPort: 20001 }, 'same endpoint, same ports')
  t.equal(call.streams.get(`${A}:4000`)?.index, 1, 'its m= index follows the latest SDP')
  t.same(h.calls.grantMedia(call, req(4000, null)), { rtpPort: 20002, rtcpPort: null }, 'rtcp-mux now: a new stream')
  t.equal(h.ports.inUse, 1, 'the old one went')
  for (let p = 4100; h.ports.inUse < 50; p += 2) h.calls.grantMedia(call, req(p, null))
  t.equal(h.calls.grantMedia(call, req(5000, null)), null, 'pool exhausted')
})

t.test('timeouts: ring, call; kernel timeouts renewed a few times per element lifetime', async t => {
  const h = new Harness()
  h.deliver({ start: 'INVITE', cseq: '1 INVITE', callId: 'ring', body: sdp(A, 4000), phoneSent: true })
  h.clock.now += 29_000
  h.calls.tick()
  t.same(h.ended, [])
  h.clock.now += 1_000
  h.calls.tick()
  t.same(h.ended, [['ring', 'no answer']])

  h.deliver({ start: 'INVITE', cseq: '1 INVITE', callId: 'up', body: sdp(A, 4000), phoneSent: true })
  h.deliver({ start: '200 OK', cseq: '1 INVITE', callId: 'up', toTag: 'b1', body: sdp(B, 6000), phoneSent: false })
  h.clock.now += 14_000
  h.calls.tick()
  t.same(h.maps.takePending(), [], 'young elements are not re-sent')
  h.clock.now += 1_000
  h.calls.tick()
  const refresh = h.maps.takePending()
  t.ok(refresh.length > 0 && refresh.every(o => o.op === 'add' || o.was !== undefined), 'a quarter of the element lifetime on: replaced (delete + add)')
  t.notOk(h.maps.mustPrecedeVerdict, 'a refresh of what the kernel holds is never urgent')
  h.clock.now += 600_000
  h.calls.tick()
  t.same(h.ended.at(-1), ['up', 'timeout'])
  t.equal(h.calls.size, 0)
})

t.test('firewall mode: nothing open to anyone; the far SDP opens the only pinhole, before its verdict', async t => {
  const h = new Harness({ farEndOnly: true })
  const inv = h.deliver({ start: 'INVITE', cseq: '1 INVITE', body: sdp(A, 4000), phoneSent: true })
  t.notOk(inv.ops.some(o => o.includes('any_dnat')))
  const ok = h.deliver({ start: '200 OK', cseq: '1 INVITE', toTag: 'b1', body: sdp(B, 6000), phoneSent: false })
  t.ok(ok.ops.includes(`add peer_dnat ${B}.20000 : ${A}.4000`))
  t.equal(ok.first, true)
})

t.test('a far SDP address that is not usable opens nothing', async t => {
  const h = new Harness()
  h.deliver({ start: 'INVITE', cseq: '1 INVITE', body: sdp(A, 4000), phoneSent: true })
  const r = h.deliver({ start: '183 Session Progress', cseq: '1 INVITE', toTag: 'b1', body: sdp('10.0.1.24', 6000), phoneSent: false })
  t.same(r.ops, [])
  t.ok(h.maps.get('any_dnat', { port: 20000 }), 'still open while no usable far address is known')
})

t.test('takeChanged: set by what a restart needs, not by every message', async t => {
  const h = new Harness()
  t.notOk(h.calls.takeChanged())
  h.deliver({ start: 'INVITE', cseq: '1 INVITE', body: sdp(A, 4000), phoneSent: true })
  t.ok(h.calls.takeChanged(), 'a new call')
  h.deliver({ start: 'INVITE', cseq: '1 INVITE', body: sdp(A, 4000), phoneSent: true })
  t.notOk(h.calls.takeChanged(), 'its retransmission')
  h.deliver({ start: '200 OK', cseq: '1 INVITE', toTag: 'b1', body: sdp(B, 6000), phoneSent: false })
  t.ok(h.calls.takeChanged(), 'answered')
  h.clock.now += 30_000
  h.deliver({ start: 'INFO', cseq: '2 INFO', toTag: 'b1', phoneSent: true })
  t.notOk(h.calls.takeChanged(), 'an INFO half a minute on')
  h.clock.now += 60_000
  h.deliver({ start: 'OPTIONS', cseq: '3 OPTIONS', toTag: 'b1', phoneSent: true })
  t.ok(h.calls.takeChanged(), 'a deadline moved by a minute or more')
  h.deliver({ start: 'BYE', cseq: '4 BYE', toTag: 'b1', phoneSent: true })
  t.ok(h.calls.takeChanged(), 'ended')
})

t.test('restore: a saved call the kernel still maps is taken over; others are not', async t => {
  const first = new Harness()
  first.deliver({ start: 'INVITE', cseq: '1 INVITE', body: sdp(A, 4000), phoneSent: true })
  first.deliver({ start: '200 OK', cseq: '1 INVITE', toTag: 'b1', body: sdp(B, 6000), phoneSent: false })
  const saved = JSON.parse(JSON.stringify(snapshot(first.calls.values(), [], first.clock.now)))

  const second = new Harness()
  for (const e of first.maps.all()) second.maps.adopt(e.map, e.key, e.data, 60_000, 60_000, ADOPTED)
  t.ok(second.calls.restore(reviveCall(saved.calls[0])))
  t.equal(second.ports.inUse, 1, 'its port is claimed')
  t.notOk(second.calls.restore(reviveCall(saved.calls[0])), 'not twice')
  second.maps.disownShared(ADOPTED)
  t.same([...(second.maps.get('peer_dnat', { ip: B, port: 5060 })?.owners ?? [])], ['call-1@10.0.1.23|10.0.1.23:5060'], 'far signalling element: the call\'s again')
  second.deliver({ start: 'BYE', cseq: '2 BYE', toTag: 'b1', phoneSent: false })
  t.same(second.ended, [['call-1@10.0.1.23', 'bye from far end']])

  const empty = new Harness()
  t.notOk(empty.calls.restore(reviveCall(saved.calls[0])), 'the kernel no longer has its media')
  const late = new Harness()
  for (const e of first.maps.all()) late.maps.adopt(e.map, e.key, e.data, 60_000, 60_000, ADOPTED)
  late.clock.now += 700_000
  t.notOk(late.calls.restore(reviveCall(saved.calls[0])), 'past its deadline')
})

t.test('farStreams: every early dialog until one answers, then the answering one', async t => {
  const h = new Harness()
  h.deliver({ start: 'INVITE', cseq: '1 INVITE', body: sdp(A, 4000), phoneSent: true })
  h.deliver({ start: '183 Session Progress', cseq: '1 INVITE', toTag: 'x', body: sdp(B, 6000), phoneSent: false })
  h.deliver({ start: '183 Session Progress', cseq: '1 INVITE', toTag: 'y', body: sdp('203.0.113.10', 7000), phoneSent: false })
  const call = h.call()
  if (call === undefined) throw new Error('no call')
  t.equal(h.calls.farStreams(call, 0).length, 2)
  t.same(h.calls.farStreams(call, 1), [], 'no such m= line')
  h.deliver({ start: '200 OK', cseq: '1 INVITE', toTag: 'y', phoneSent: false })
  t.same(h.calls.farStreams(call, 0), [{ ip: '203.0.113.10', rtpPort: 7000, rtcpPort: 7001, payloadTypes: [0, 8] }])
})

t.test('an inbound call: the phone answers; its pinhole is limited to the caller from the start', async t => {
  const h = new Harness()
  const inv = h.deliver({ start: 'INVITE', cseq: '1 INVITE', fromTag: 'b1', body: sdp(B, 6000), phoneSent: false })
  t.same(inv.ops, [`add peer_dnat ${B}.5060 : ${A}.5060`], 'the far offer alone maps nothing toward the phone')
  t.equal(inv.first, true, 'the caller\'s path for its next requests is new')
  t.equal(h.call()?.outgoing, false)
  const ok = h.deliver({ start: '200 OK', cseq: '1 INVITE', fromTag: 'b1', toTag: 'a1', body: sdp(A, 4000), phoneSent: true })
  t.ok(ok.ops.includes(`add peer_dnat ${B}.20000 : ${A}.4000`))
  t.notOk(ok.ops.some(o => o.includes('any_dnat')))
  t.equal(h.call()?.confirmedTag, 'b1', 'the phone answered: the far dialog tag is the From tag')
})
