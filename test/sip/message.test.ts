import t from 'tap'
import { ByteEditor } from '../../src/sip/editor.js'
import { classifyDatagram, parseSip, type SipMessage } from '../../src/sip/message.js'
import { paramValue } from '../../src/sip/text.js'
import { fixture, fixtureNames, parsed } from '../fixtures/helpers.js'

const viaParam = (m: SipMessage, name: string): string | true | undefined => paramValue(m.topVia?.params ?? [], name)
const listValues = (m: SipMessage, name: string): string[] => m.valueRanges(name).map(r => m.text.slice(r.start, r.end))

t.test('every fixture parses and serializes back to the identical bytes', async t => {
  for (const name of fixtureNames()) {
    const raw = fixture(name)
    const r = parseSip(raw)
    t.ok(r.ok, `${name} parses`)
    if (!r.ok) continue
    const out = new ByteEditor(r.msg.raw).serialize()
    t.equal(out, raw, `${name}: no edits → the same Buffer`)
    t.ok(out.equals(raw), `${name}: identical bytes`)
    t.equal(classifyDatagram(raw), 'sip', `${name} classified as sip`)
  }
})

t.test('request fields of a Polycom-style INVITE', async t => {
  const m = parsed(fixture('polycom-invite.sip'))
  t.equal(m.isRequest, true)
  t.equal(m.method, 'INVITE')
  t.equal(m.text.slice(m.requestUriStart, m.requestUriEnd), 'sip:1002@sip.example.net')
  t.equal(m.callId, '6e2b1c8a-4f0d3b27-91a5c6e3@10.0.1.23')
  t.equal(m.fromTag, '8D3F2A1C-5B7E9D04')
  t.equal(m.toTag, undefined)
  t.same(m.cseq, { seq: 1, method: 'INVITE' })
  t.equal(m.contentLength, 258)
  t.equal(m.body.length, 258)
  const via = m.topVia!
  t.equal(via.transport, 'UDP')
  t.equal(via.host, '10.0.1.23')
  t.equal(via.port, undefined)
  t.equal(viaParam(m, 'branch'), 'z9hG4bK3c8f1a2b7e')
  t.equal(viaParam(m, 'rport'), true)
  t.equal(m.contacts.length, 1)
  t.equal(m.contacts[0].uri, 'sip:1001@10.0.1.23')
  t.same(listValues(m, 'allow')[0], 'INVITE')
  t.equal(listValues(m, 'allow').length, 12)
  t.equal(m.header('USER-agent'), 'PolycomVVX-VVX_411-UA/6.4.3.5018')
})

t.test('compact headers and LF-only line ends', async t => {
  const m = parsed(fixture('linphone-invite-compact-lf.sip'))
  t.equal(m.eol, '\n')
  t.equal(m.header('via'), m.header('v'))
  t.equal(m.topVia?.port, 5062)
  t.equal(m.callId, '2kZpQe8yLm')
  t.equal(m.fromTag, 'Ufh3k~9qP')
  t.same(listValues(m, 'supported'), ['replaces', 'outbound', 'gruu'])
  t.equal(m.contentLength, m.body.length)
  t.equal(m.contacts[0].expires, 3600)
  t.equal(m.header('c'), 'application/sdp')
})

t.test('folded headers', async t => {
  const m = parsed(fixture('register-folded-lf.sip'))
  t.equal(viaParam(m, 'branch'), 'z9hG4bK.f0ld3d')
  t.equal(viaParam(m, 'rport'), true)
  t.equal(m.contacts[0].expires, 600)
  t.equal(m.header('subject'), 'a long subject continued on the next line')
})

t.test('multiple values across lines and within one line', async t => {
  const m = parsed(fixture('pbx-invite-other-host.sip'))
  t.same(listValues(m, 'via').map(v => v.slice(0, 26)), ['SIP/2.0/UDP 10.0.1.5:5060;', 'SIP/2.0/UDP 10.0.1.23:5060'])
  const two = parsed(fixture('invite-rtcp-mux-two-contacts.sip'))
  t.equal(two.contacts.length, 2, 'comma inside a quoted display name is no separator')
  t.equal(two.contacts[1].address?.target?.port, 5080)
})

t.test('responses, REGISTER, Expires and Via params', async t => {
  const ok = parsed(fixture('inbound-200-register.sip'))
  t.equal(ok.isRequest, false)
  t.equal(ok.statusCode, 200)
  t.equal(ok.reasonPhrase, 'OK')
  t.equal(viaParam(ok, 'received'), '203.0.113.1')
  t.equal(viaParam(ok, 'rport'), '5060')
  t.equal(ok.toTag, 'as4c2d1e0f')
  t.equal(ok.contacts[0].expires, 1800)
  const reg = parsed(fixture('register-expires.sip'))
  t.equal(reg.expires, 3600)
  t.equal(reg.contacts[0].expires, 3600)
  t.equal(reg.contacts[0].address?.params.find(p => p.name === '+sip.instance')?.value, '"<urn:uuid:00000000-0000-1000-8000-0004f2a1b2c3>"')
})

t.test('classifyDatagram', async t => {
  t.equal(classifyDatagram(Buffer.from('\r\n')), 'keepalive')
  t.equal(classifyDatagram(Buffer.from('\r\n\r\n')), 'keepalive')
  t.equal(classifyDatagram(Buffer.from('\r\n\r\n\r\n')), 'not-sip')
  const stun = Buffer.alloc(20)
  stun.writeUInt16BE(0x0001, 0)
  stun.writeUInt32BE(0x2112a442, 4)
  t.equal(classifyDatagram(stun), 'keepalive')
  const badCookie = Buffer.from(stun)
  badCookie.writeUInt32BE(0x2112a443, 4)
  t.equal(classifyDatagram(badCookie), 'not-sip')
  t.equal(classifyDatagram(Buffer.alloc(0)), 'not-sip')
  t.equal(classifyDatagram(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')), 'not-sip')
  t.equal(classifyDatagram(Buffer.from('OPTIONS sip:x@y SIP/2.0\r\n')), 'sip')
})

t.test('ByteEditor', async t => {
  const raw = Buffer.from('abcdefghij')
  const e = new ByteEditor(raw)
  t.ok(e.replace(2, 4, 'XYZ'))
  t.notOk(e.replace(3, 5, 'no'), 'overlap refused')
  t.ok(e.replace(10, 10, '!'), 'insert at the end')
  t.ok(e.replace(0, 0, '>'), 'insert at the start')
  t.equal(e.deltaWithin(0, 10), 3, 'inserts at both ends count')
  t.equal(e.serialize().toString(), '>abXYZefghij!')
  t.equal(raw.toString(), 'abcdefghij', 'input untouched')
  const bytes = Buffer.from([0xff, 0x41, 0xfe])
  const b = new ByteEditor(bytes)
  b.replace(1, 2, 'BB')
  t.same([...b.serialize()], [0xff, 0x42, 0x42, 0xfe], 'non-UTF-8 bytes kept')
})
