// The saved state (src/dialog/state.ts): snapshot → JSON → parse → revive, files of an older
// sipalg, documents that are not a state, restoreState.
import t from 'tap'
import { ADOPTED } from '../../src/media/mappings.js'
import { parseState, restoreState, reviveCall, snapshot } from '../../src/dialog/state.js'
import { A, B, Harness, PUB, sdp } from './harness.js'

const crlf = (s: string): string => s.replace(/\n/g, '\r\n')

function liveGateway (): Harness {
  const h = new Harness()
  h.deliver({ start: 'INVITE', cseq: '1 INVITE', body: sdp(A, 4000), phoneSent: true })
  h.deliver({ start: '200 OK', cseq: '1 INVITE', toTag: 'b1', body: sdp(B, 6000), phoneSent: false })
  h.deliver(crlf(`REGISTER sip:sip.example.net SIP/2.0\nVia: SIP/2.0/UDP ${A}:5060;branch=z9hG4bK-r1\nFrom: <sip:1001@sip.example.net>;tag=r1\nTo: <sip:1001@sip.example.net>\nCall-ID: reg-1\nCSeq: 1 REGISTER\nContact: <sip:1001@${A}:5060>\nContent-Length: 0\n\n`), true)
  h.deliver(crlf(`SIP/2.0 200 OK\nVia: SIP/2.0/UDP ${PUB}:5060;branch=z9hG4bK-r1\nFrom: <sip:1001@sip.example.net>;tag=r1\nTo: <sip:1001@sip.example.net>;tag=s\nCall-ID: reg-1\nCSeq: 1 REGISTER\nContact: <sip:1001@${PUB}:5060>;expires=300\nContent-Length: 0\n\n`), false)
  return h
}

t.test('snapshot, JSON, parse, revive: the same call', async t => {
  const h = liveGateway()
  const call = h.call()
  const text = JSON.stringify(snapshot(h.calls.values(), h.registrations.values(), h.clock.now))
  const state = parseState(text)
  if (state === null || call === undefined) throw new Error('no state')
  t.equal(state.savedAt, h.clock.now)
  t.equal(state.registrations.length, 1)
  t.same(reviveCall(state.calls[0]), call)
})

t.test('a state file of an older sipalg (installedPeers, signallingPeers, no refreshedAt) revives', async t => {
  const h = liveGateway()
  const saved = JSON.parse(JSON.stringify(snapshot(h.calls.values(), [], 0))).calls[0]
  const { farSignalling, refreshedAt: _r, ...old } = saved
  old.signallingPeers = farSignalling
  old.streams = old.streams.map(({ allowedFarIps, ...s }: { allowedFarIps: string[] }) => ({ ...s, installedPeers: allowedFarIps }))
  const call = reviveCall(old)
  t.same([...call.farSignalling], [B])
  t.same([...call.streams.values()][0].allowedFarIps, [B])
  t.equal(call.refreshedAt, 0)
})

t.test('parseState: anything but a version 1 state is a fresh start', async t => {
  for (const text of ['', 'null', '{', '{"version":2,"calls":[],"registrations":[]}', '{"version":1,"calls":{}}', '[]']) {
    t.equal(parseState(text), null, JSON.stringify(text))
  }
  t.same(parseState('{"version":1,"savedAt":1,"calls":[],"registrations":[]}'), { version: 1, savedAt: 1, calls: [], registrations: [] })
})

t.test('restoreState: takes over what the kernel still maps', async t => {
  const first = liveGateway()
  const state = parseState(JSON.stringify(snapshot(first.calls.values(), first.registrations.values(), first.clock.now)))
  if (state === null) throw new Error('no state')
  const second = new Harness()
  for (const e of first.maps.all()) second.maps.adopt(e.map, e.key, e.data, 60_000, 60_000, ADOPTED)
  const r = restoreState(state, second.calls, second.registrations)
  t.same(r.calls.map(c => c.callId), ['call-1@10.0.1.23'])
  t.equal(r.registrations, 1)
  const third = new Harness()
  t.same(restoreState(state, third.calls, third.registrations), { calls: [], registrations: 0 }, 'an empty kernel: nothing')
})
