// The method table (src/dialog/methods.ts): each method's request and response handlers, driven
// by real-shaped SIP through the parser and rewriter (test/dialog/harness.ts).
import t from 'tap'
import { isInitialInvite, SIP_HANDLERS } from '../../src/dialog/methods.js'
import { parsed } from '../fixtures/helpers.js'
import { A, B, C, Harness, sdp, sipText, type Msg } from './harness.js'

const invite = (body?: string): Msg => ({ start: 'INVITE', cseq: '1 INVITE', body, phoneSent: true })
const fromFar = (start: string, cseq: string, body?: string, toTag = 'b1'): Msg => ({ start, cseq, toTag, body, phoneSent: false })
const fromPhone = (start: string, cseq: string, body?: string, toTag = 'b1'): Msg => ({ start, cseq, toTag, body, phoneSent: true })

t.test('the table names every method the dialog layer acts on', async t => {
  t.same(Object.keys(SIP_HANDLERS).sort(), ['ACK', 'BYE', 'CANCEL', 'INFO', 'INVITE', 'MESSAGE', 'OPTIONS', 'PRACK', 'REGISTER', 'UPDATE'])
  t.ok(SIP_HANDLERS.INVITE.request !== undefined && SIP_HANDLERS.INVITE.response !== undefined)
  t.equal(SIP_HANDLERS.BYE.response, undefined, 'a 200 to BYE changes nothing')
})

t.test('initial INVITE: an INVITE without To tag, nothing else', async t => {
  t.ok(isInitialInvite(parsed(sipText(invite(sdp(A, 4000))))))
  t.notOk(isInitialInvite(parsed(sipText({ ...invite(), toTag: 'b1' }))), 're-INVITE')
  t.notOk(isInitialInvite(parsed(sipText({ start: 'OPTIONS', cseq: '1 OPTIONS', phoneSent: true }))))
  t.notOk(isInitialInvite(parsed(sipText(fromFar('200 OK', '1 INVITE')))), 'a response')
})

t.test('INVITE → 180 → 200 → ACK → BYE: ports open, narrow to the far end, go', async t => {
  const h = new Harness()
  const inv = h.deliver(invite(sdp(A, 4000, 'a=rtcp:4001\n')))
  t.same(inv.ops, [`add any_dnat 20000 : ${A}.4000`, `add any_dnat 20001 : ${A}.4001`, `add peer_dnat ${B}.5060 : ${A}.5060`,
    `add src_nat ${A}.4000 : 20000`, `add src_nat ${A}.4001 : 20001`])
  t.equal(inv.first, true, 'the INVITE advertises the ports: before its verdict')
  t.match(inv.out, 'm=audio 20000 RTP/AVP')
  t.same(h.deliver(fromFar('180 Ringing', '1 INVITE')).ops, [], 'a 1xx without SDP changes nothing')
  t.equal(h.call()?.state, 'early')
  const ok = h.deliver(fromFar('200 OK', '1 INVITE', sdp(B, 6000)))
  t.same(ok.ops, ['delete any_dnat 20000', 'delete any_dnat 20001', `add peer_dnat ${B}.20000 : ${A}.4000`, `add peer_dnat ${B}.20001 : ${A}.4001`].sort())
  t.equal(ok.first, false, 'narrowing an open pinhole may follow the verdict')
  t.equal(h.call()?.state, 'confirmed')
  t.equal(h.call()?.confirmedTag, 'b1')
  t.same(h.deliver(fromPhone('ACK', '1 ACK')).ops, [])
  const bye = h.deliver(fromPhone('BYE', '2 BYE'))
  t.same(bye.ops, [`delete peer_dnat ${B}.20000`, `delete peer_dnat ${B}.20001`, `delete peer_dnat ${B}.5060`, `delete src_nat ${A}.4000`, `delete src_nat ${A}.4001`].sort())
  t.same(h.ended, [['call-1@10.0.1.23', 'bye from phone']])
  t.equal(h.ports.inUse, 0)
  t.same(h.deliver(fromFar('200 OK', '2 BYE')).ops, [], 'the 200 to the BYE finds no call')
})

t.test('BYE from the far end', async t => {
  const h = new Harness()
  h.deliver(invite(sdp(A, 4000)))
  h.deliver(fromFar('200 OK', '1 INVITE', sdp(B, 6000)))
  h.deliver(fromFar('BYE', '1 BYE'))
  t.same(h.ended, [['call-1@10.0.1.23', 'bye from far end']])
})

t.test('CANCEL marks the call; the 487 ends it; without a 487 the ring timeout does', async t => {
  const h = new Harness()
  h.deliver(invite(sdp(A, 4000)))
  h.deliver({ start: 'CANCEL', cseq: '1 CANCEL', phoneSent: true })
  t.equal(h.call()?.cancelled, true)
  const fin = h.deliver(fromFar('487 Request Terminated', '1 INVITE'))
  t.ok(fin.ops.includes('delete any_dnat 20000'))
  t.same(h.ended, [['call-1@10.0.1.23', 'final 487']])

  const h2 = new Harness()
  h2.deliver(invite(sdp(A, 4000)))
  h2.deliver({ start: 'CANCEL', cseq: '1 CANCEL', phoneSent: true })
  h2.clock.now += 31_000
  h2.calls.tick()
  t.same(h2.ended, [['call-1@10.0.1.23', 'cancel without 487']])
})

t.test('error finals end a ringing call; a failed re-INVITE leaves an established one', async t => {
  for (const code of ['486 Busy Here', '503 Service Unavailable', '603 Decline', '302 Moved Temporarily']) {
    const h = new Harness()
    h.deliver(invite(sdp(A, 4000)))
    h.deliver(fromFar(code, '1 INVITE'))
    t.same(h.ended, [['call-1@10.0.1.23', `final ${code.slice(0, 3)}`]], code)
    t.equal(h.ports.inUse, 0)
  }
  const h = new Harness()
  h.deliver(invite(sdp(A, 4000)))
  h.deliver(fromFar('200 OK', '1 INVITE', sdp(B, 6000)))
  h.deliver(fromPhone('INVITE', '2 INVITE', sdp(A, 4000, 'a=sendonly\n')))
  h.deliver(fromFar('491 Request Pending', '2 INVITE'))
  t.equal(h.call()?.state, 'confirmed', '491 to a re-INVITE: the call goes on')
})

t.test('hold and resume by re-INVITE keep the same mappings', async t => {
  const h = new Harness()
  h.deliver(invite(sdp(A, 4000)))
  h.deliver(fromFar('200 OK', '1 INVITE', sdp(B, 6000)))
  const before = h.elements()
  const hold = h.deliver(fromPhone('INVITE', '2 INVITE', sdp(A, 4000, 'a=sendonly\n')))
  t.match(hold.out, 'm=audio 20000 ', 'the held stream keeps its public port')
  h.deliver(fromFar('200 OK', '2 INVITE', sdp(B, 6000, 'a=recvonly\n')))
  t.same(h.elements(), before, 'phone hold: nothing changed in the kernel')
  // The far end holds RFC 2543 style: c=0.0.0.0 — no pinhole from 0.0.0.0, the old one stays.
  h.deliver({ start: 'INVITE', cseq: '1 INVITE', fromTag: 'b1', toTag: 'a1', body: sdp('0.0.0.0', 6000), phoneSent: false })
  h.deliver({ start: '200 OK', cseq: '1 INVITE', fromTag: 'b1', toTag: 'a1', body: sdp(A, 4000), phoneSent: true })
  t.same(h.elements(), before, 'far hold: the pinhole from B stays for the resume')
  h.deliver({ start: 'INVITE', cseq: '2 INVITE', fromTag: 'b1', toTag: 'a1', body: sdp(B, 6000), phoneSent: false })
  h.deliver({ start: '200 OK', cseq: '2 INVITE', fromTag: 'b1', toTag: 'a1', body: sdp(A, 4000), phoneSent: true })
  t.same(h.elements(), before, 'resumed on the same mappings')
  t.equal(h.ports.inUse, 1)
})

t.test('re-INVITE moving the phone to a new port: the old one goes once the far end answers', async t => {
  const h = new Harness()
  h.deliver(invite(sdp(A, 4000)))
  h.deliver(fromFar('200 OK', '1 INVITE', sdp(B, 6000)))
  const offer = h.deliver(fromPhone('INVITE', '2 INVITE', sdp(A, 4002, 'a=rtcp-mux\n')))
  t.ok(offer.ops.includes(`add peer_dnat ${B}.20002 : ${A}.4002`), 'the new port is open to B at once')
  t.ok(h.maps.get('src_nat', { ip: A, port: 4000 }), 'the old port still receives until the answer')
  const answer = h.deliver(fromFar('200 OK', '2 INVITE', sdp(B, 6000)))
  t.same(answer.ops.filter(o => o.startsWith('delete')), [`delete peer_dnat ${B}.20000`, `delete peer_dnat ${B}.20001`, `delete src_nat ${A}.4000`, `delete src_nat ${A}.4001`])
  t.equal(h.ports.inUse, 1)
})

t.test('UPDATE: an offer in UPDATE completes with its 2xx', async t => {
  const h = new Harness()
  h.deliver(invite(sdp(A, 4000)))
  h.deliver(fromFar('183 Session Progress', '1 INVITE', sdp(B, 6000)))
  h.deliver(fromPhone('UPDATE', '2 UPDATE', sdp(A, 4002)))
  t.equal(h.ports.inUse, 2)
  h.deliver(fromFar('200 OK', '2 UPDATE', sdp(B, 6000)))
  t.equal(h.ports.inUse, 1, 'the 200 to the UPDATE retires the port the phone left')
  t.equal(h.call()?.state, 'early', 'an UPDATE answer does not confirm the INVITE')
})

t.test('forking: the fork that answers keeps the pinhole; the others lose theirs and their flows', async t => {
  const h = new Harness()
  h.deliver(invite(sdp(A, 4000)))
  const x = h.deliver(fromFar('183 Session Progress', '1 INVITE', sdp(B, 6000), 'x'))
  const y = h.deliver(fromFar('183 Session Progress', '1 INVITE', sdp(C, 7000), 'y'))
  const z = h.deliver(fromFar('183 Session Progress', '1 INVITE', sdp(B, 6000), 'z'))
  t.ok(x.ops.includes(`add peer_dnat ${B}.20000 : ${A}.4000`))
  t.equal(x.first, false, 'early media from the first fork: narrowing')
  t.ok(y.ops.includes(`add peer_dnat ${C}.20000 : ${A}.4000`), 'both forks may send early media')
  t.same(z.ops, [], 'a third fork on an address already allowed adds nothing')
  const ok = h.deliver(fromFar('200 OK', '1 INVITE', sdp(B, 6000), 'x'))
  t.same(ok.ops, [`delete peer_dnat ${C}.20000`, `delete peer_dnat ${C}.20001`])
  t.same(h.forksDropped.map(f => f.far), [[{ ip: C, rtpPort: 7000, rtcpPort: 7001, payloadTypes: [0, 8] }]], 'only the flows of the fork on another endpoint go')
  t.same([...(h.call()?.farMedia.keys() ?? [])], ['x'])
})

t.test('early media from a far end, then its 200 without SDP', async t => {
  const h = new Harness()
  h.deliver(invite(sdp(A, 4000)))
  h.deliver(fromFar('183 Session Progress', '1 INVITE', sdp(B, 6000)))
  t.ok(h.maps.get('peer_dnat', { ip: B, port: 20000 }), 'early media allowed from B')
  t.same(h.deliver(fromFar('200 OK', '1 INVITE')).ops, [], 'the confirmation keeps the early pinhole')
  t.equal(h.call()?.state, 'confirmed')
})

t.test('late offer: INVITE without SDP, offer in the 200, answer in the ACK', async t => {
  const h = new Harness()
  t.same(h.deliver(invite()).ops, [`add peer_dnat ${B}.5060 : ${A}.5060`])
  h.deliver(fromFar('200 OK', '1 INVITE', sdp(B, 6000, 'm=video 6002 RTP/AVP 96\n')))
  t.equal(h.ports.inUse, 0, 'nothing of the phone to map yet')
  const ack = h.deliver(fromPhone('ACK', '1 ACK', sdp(A, 4000, 'm=video 0 RTP/AVP 96\n')))
  t.ok(ack.ops.includes(`add peer_dnat ${B}.20000 : ${A}.4000`), 'the answer in the ACK opens toward B only')
  t.equal(ack.first, true)
  t.notOk(ack.ops.some(o => o.includes('any_dnat')))
  t.equal(h.ports.inUse, 1, 'the declined video got no port')
})

t.test('the far end declines a stream: its mappings go at once', async t => {
  const h = new Harness()
  h.deliver(invite(sdp(A, 4000, 'm=video 4002 RTP/AVP 96\na=rtcp-mux\n')))
  t.equal(h.ports.inUse, 2)
  const ok = h.deliver(fromFar('200 OK', '1 INVITE', sdp(B, 6000, 'm=video 0 RTP/AVP 96\n')))
  t.ok(ok.ops.includes('delete any_dnat 20002'))
  t.ok(ok.ops.includes(`delete src_nat ${A}.4002`))
  t.equal(h.ports.inUse, 1)
  t.equal(h.streamsDropped.length, 1)
  // An answer in the far end's ACK declines too (late offer from the phone's side).
  const h2 = new Harness()
  h2.deliver({ start: 'INVITE', cseq: '1 INVITE', fromTag: 'b1', phoneSent: false })
  h2.deliver({ start: '200 OK', cseq: '1 INVITE', fromTag: 'b1', toTag: 'a1', body: sdp(A, 4000, 'm=video 4002 RTP/AVP 96\n'), phoneSent: true })
  h2.deliver({ start: 'ACK', cseq: '1 ACK', fromTag: 'b1', toTag: 'a1', body: sdp(B, 6000, 'm=video 0 RTP/AVP 96\n'), phoneSent: false })
  t.equal(h2.ports.inUse, 1, 'the video the far end declined in its ACK is gone')
})

t.test('PRACK (RFC 3262): offer/answer in PRACK and in its 200', async t => {
  // Inbound call without offer: the phone offers in a reliable 183, the far end answers in the PRACK.
  const h = new Harness()
  h.deliver({ start: 'INVITE', cseq: '1 INVITE', fromTag: 'b1', phoneSent: false, extra: 'Supported: 100rel\n' })
  h.deliver({ start: '183 Session Progress', cseq: '1 INVITE', fromTag: 'b1', toTag: 'a1', body: sdp(A, 4000, 'm=video 4002 RTP/AVP 96\n'), phoneSent: true, extra: 'Require: 100rel\nRSeq: 1\n' })
  t.equal(h.ports.inUse, 2)
  const prack = h.deliver({ start: 'PRACK', cseq: '2 PRACK', fromTag: 'b1', toTag: 'a1', body: sdp(B, 6000, 'm=video 0 RTP/AVP 96\n'), phoneSent: false, extra: 'RAck: 1 1 INVITE\n' })
  t.equal(h.ports.inUse, 1, 'the PRACK answers: the declined video goes at once')
  t.ok(prack.ops.includes(`add peer_dnat ${B}.20000 : ${A}.4000`))

  // Outbound call with offer: answer in the reliable 183, a new offer in the PRACK, its answer in the 200.
  const o = new Harness()
  o.deliver(invite(sdp(A, 4000, 'm=video 4002 RTP/AVP 96\n')))
  o.deliver(fromFar('183 Session Progress', '1 INVITE', sdp(B, 6000, 'm=video 6002 RTP/AVP 96\n')))
  o.deliver({ ...fromPhone('PRACK', '2 PRACK', sdp(A, 4000, 'm=video 0 RTP/AVP 96\n')), extra: 'RAck: 1 1 INVITE\n' })
  t.equal(o.ports.inUse, 2, 'a PRACK offer: the phone still receives on what it offered before, until the answer')
  o.deliver(fromFar('200 OK', '2 PRACK'))
  t.equal(o.ports.inUse, 2, 'a 200 to PRACK without SDP answers nothing')
  o.deliver({ ...fromPhone('PRACK', '3 PRACK', sdp(A, 4000, 'm=video 0 RTP/AVP 96\n')), extra: 'RAck: 2 1 INVITE\n' })
  o.deliver(fromFar('200 OK', '3 PRACK', sdp(B, 6000, 'm=video 0 RTP/AVP 96\n')))
  t.equal(o.ports.inUse, 1, 'the 200 to the PRACK answers: the dropped video goes')
})

t.test('INFO, OPTIONS, MESSAGE and unknown methods in a dialog keep an established call alive', async t => {
  const h = new Harness()
  h.deliver(invite(sdp(A, 4000)))
  const ringDeadline = h.call()?.deadline
  h.deliver(fromFar('INFO', '1 INFO'))
  t.equal(h.call()?.deadline, ringDeadline, 'a ringing call keeps its ring timeout')
  h.deliver(fromFar('200 OK', '1 INVITE', sdp(B, 6000)))
  for (const method of ['INFO', 'OPTIONS', 'MESSAGE', 'NOTIFY']) {
    h.clock.now += 100_000
    h.deliver(fromPhone(method, `5 ${method}`))
    t.equal(h.call()?.deadline, h.clock.now + 600_000, `${method} restarts the call timeout`)
    h.deliver(fromFar('200 OK', `5 ${method}`))
  }
  t.same(h.ended, [])
})

t.test('messages of no call: nothing, except REGISTER', async t => {
  const h = new Harness()
  t.same(h.deliver(fromFar('BYE', '9 BYE')).ops, [])
  t.same(h.deliver(fromPhone('ACK', '9 ACK', sdp(A, 4000))).ops, [], 'no call: no media for it')
  t.equal(h.ports.inUse, 0)
})
