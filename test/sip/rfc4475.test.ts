// RFC 4475's torture messages through the parser: every valid one (3.1.1) parses, framing and all;
// no invalid one (3.1.2) throws, and each has a stated answer.
import t from 'tap'
import { classifyDatagram, parseSip, type SipMessage } from '../../src/sip/message.js'
import { paramValue } from '../../src/sip/text.js'
import { torture, tortureNames } from '../fixtures/rfc4475.js'

const VALID = ['dblreq', 'esc01', 'esc02', 'escnull', 'intmeth', 'longreq', 'lwsdisp', 'mpart01', 'noreason', 'semiuri', 'transports', 'unreason', 'wsinv']

function parse (kind: 'valid' | 'invalid', name: string): SipMessage {
  const r = parseSip(torture(kind, name))
  if (!r.ok) throw new Error(`${name}: ${r.reason}`)
  return r.msg
}

const vias = (m: SipMessage): string[] => m.valueRanges('via').map(r => m.text.slice(r.start, r.end).replace(/\s+/g, ' '))

t.test('every valid message of section 3.1.1 is here and parses', async t => {
  t.same(tortureNames('valid'), VALID)
  for (const name of VALID) {
    const raw = torture('valid', name)
    t.equal(classifyDatagram(raw), 'sip', `${name} is SIP`)
    const r = parseSip(raw)
    t.ok(r.ok, `${name} parses${r.ok ? '' : `: ${r.reason}`}`)
    if (r.ok) t.ok(r.msg.framing.ok, `${name}: framing valid`)
  }
})

t.test('intmeth: NUL, BEL and DEL as quoted-pairs in a display name; token characters everywhere', async t => {
  const m = parse('valid', 'intmeth')
  t.equal(m.method, "!interesting-Method0123456789_*+`.%indeed'~")
  t.equal(m.to?.target?.host, 'example.com')
  t.equal(m.to?.uri, "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*@example.com")
  t.equal(m.fromTag, "_token~1'+`*%!-.")
  t.equal(m.callId, 'intmeth.word%ZK-!.*_+\'@word`~)(><:\\/"][?}{')
  t.same(m.cseq, { seq: 139122385, method: "!interesting-Method0123456789_*+`.%indeed'~" })
  t.equal(m.topVia?.transport, 'TCP')
})

t.test('a NUL outside a quoted string is still no SIP', async t => {
  const raw = torture('valid', 'intmeth').toString('latin1')
  for (const [where, text] of [
    ['unescaped in a quoted string', raw.replace('NUL:\\\u0000', 'NUL:\u0000')],
    ['in a token', raw.replace('Max-Forwards: 255', 'Max-Forwards: 2\u000055')],
    ['after a closed quoted string', raw.replace('DEL:\\\u007f"', 'DEL:\\\u007f"\u0000')]
  ]) {
    const r = parseSip(Buffer.from(text, 'latin1'))
    t.notOk(r.ok, where)
    if (!r.ok) t.match(r.reason, 'NUL byte', where)
  }
})

t.test('wsinv: folding, LWS around every separator, compact and long names mixed', async t => {
  const m = parse('valid', 'wsinv')
  t.same(vias(m), ['SIP / 2.0 /UDP 192.0.2.2;branch=390skdjuw', 'SIP / 2.0 / TCP spindle.example.com ; branch = z9hG4bK9ikj8', 'SIP / 2.0 / UDP 192.168.255.111 ; branch= z9hG4bK30239'])
  t.equal(m.topVia?.host, '192.0.2.2')
  t.equal(m.toTag, '1918181833n')
  t.equal(m.fromTag, '98asjd8')
  t.same(m.cseq, { seq: 9, method: 'INVITE' }, 'CSeq folded over two lines, with leading zeros')
  t.equal(m.contacts.length, 1)
  t.equal(paramValue(m.contacts[0].address?.params ?? [], 'newparam'), 'newvalue')
  t.equal(m.contentLength, 150)
})

t.test('esc02, dblreq, semiuri, transports, longreq, mpart01, unreason, noreason, escnull, lwsdisp, esc01', async t => {
  t.equal(parse('valid', 'esc02').contacts.length, 2, 'C%6Fntact is an unknown header, not Contact')
  const dbl = parse('valid', 'dblreq')
  t.same(dbl.framing.ok && dbl.framing.bodyEnd, dbl.bodyStart, 'Content-Length 0: the second request is no part of the message')
  t.equal(parse('valid', 'semiuri').method, 'OPTIONS')
  t.same(parse('valid', 'transports').valueRanges('via').length, 5)
  const long = parse('valid', 'longreq')
  t.equal(long.valueRanges('via').length, 34)
  t.equal(long.topVia?.host, 'sip33.example.com')
  t.equal(parse('valid', 'mpart01').contentLength, 274)
  const unreason = parse('valid', 'unreason')
  t.equal(unreason.statusCode, 200)
  t.match(unreason.reasonPhrase, /^= 2\*\*3 \* 5\*\*2 \u00d0/)
  t.equal(parse('valid', 'noreason').reasonPhrase, '')
  t.same(parse('valid', 'escnull').contacts.map(c => c.uri), ['sip:%00@host5.example.com', 'sip:%00%00@host5.example.com'])
  t.equal(parse('valid', 'lwsdisp').fromTag, '323')
  t.equal(parse('valid', 'esc01').contacts[0].address?.target?.host, 'host5.example.net')
})

/** What the parser answers for each invalid message: not SIP, or parsed with framing valid or not. */
const INVALID: Record<string, 'not-sip' | 'framing-invalid' | 'parsed'> = {
  badinv01: 'parsed', clerr: 'framing-invalid', ncl: 'framing-invalid', scalar02: 'parsed', scalarlg: 'parsed',
  quotbal: 'parsed', ltgtruri: 'parsed', lwsruri: 'not-sip', lwsstart: 'not-sip', trws: 'not-sip', escruri: 'parsed',
  baddate: 'parsed', regbadct: 'parsed', badaspec: 'parsed', baddn: 'parsed', badvers: 'not-sip', mismatch01: 'parsed',
  mismatch02: 'parsed', bigcode: 'not-sip'
}

t.test('every invalid message of section 3.1.2 is here, none throws, each has its answer', async t => {
  t.same(tortureNames('invalid'), Object.keys(INVALID).sort())
  for (const [name, expected] of Object.entries(INVALID)) {
    let answer = 'threw'
    t.doesNotThrow(() => {
      const r = parseSip(torture('invalid', name))
      answer = !r.ok ? 'not-sip' : r.msg.framing.ok ? 'parsed' : 'framing-invalid'
    }, name)
    t.equal(answer, expected, name)
  }
  const scalar = parse('invalid', 'scalar02')
  t.equal(scalar.cseq, undefined, 'a CSeq above 2**32 is not read')
  t.equal(scalar.expires, undefined, 'nor an Expires of 100 digits')
})
