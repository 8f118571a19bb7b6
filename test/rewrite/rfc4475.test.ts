// RFC 4475's torture messages through the engine, with 192.0.2.0/24 standing for the inside network:
// what names the sender is rewritten, whatever the syntax around it, and nothing throws.
import t from 'tap'
import { insideMatcher, parseCidr, type Cidr } from '../../src/rewrite/cidr.js'
import type { RewriteResult } from '../../src/rewrite/types.js'
import { parseSip } from '../../src/sip/message.js'
import { asText, makeCtx, rewriteDatagram } from '../fixtures/helpers.js'
import { type TortureKind, torture, tortureNames } from '../fixtures/rfc4475.js'

const isInside = insideMatcher([parseCidr('192.0.2.0/24') as Cidr])
const PUB = '203.0.113.1'

function rewrite (kind: TortureKind, name: string, phoneIp: string, direction: 'outbound' | 'inbound' = 'outbound'): RewriteResult {
  const out = rewriteDatagram(torture(kind, name), direction, makeCtx({ isInside, phone: { ip: phoneIp, port: 5060 }, lookupSignalling: port => ({ ip: phoneIp, port }) }))
  if (typeof out === 'string') throw new Error(`${name} refused as ${out}`)
  return out
}

const fields = (r: RewriteResult): string[] => r.changes.map(c => `${c.field}: ${c.before} → ${c.after}`)

t.test('wsinv: the folded top Via of the sender, nothing of the other inside hosts', async t => {
  const r = rewrite('valid', 'wsinv', '192.0.2.2')
  t.same(fields(r), [`Via: 192.0.2.2 → ${PUB}`])
  t.match(asText(r.bytes), `Via  : SIP  /   2.0\r\n /UDP\r\n    ${PUB};branch=390skdjuw\r\n`, 'folding and LWS kept')
  t.match(r.detail, '192.0.2.4 is another inside host')
})

t.test('esc01: the SDP of the sender, with its escapes around it kept', async t => {
  const r = rewrite('valid', 'esc01', '192.0.2.1')
  t.same(fields(r), ['Content-Length: 150 → 155', `o=: 192.0.2.1 → ${PUB}`, `c=: 192.0.2.1 → ${PUB}`, 'm=audio: 49217 → 20000', 'm=video: 3227 → 20002'])
  const out = parseSip(r.bytes)
  t.ok(out.ok && out.msg.contentLength === out.msg.body.length, 'Content-Length true')
  t.match(asText(r.bytes), '<sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31>')
})

t.test('dblreq: the first request is rewritten, the trailing bytes stay as they came', async t => {
  const input = torture('valid', 'dblreq')
  const r = rewrite('valid', 'dblreq', '192.0.2.125')
  t.same(fields(r), [`Via: 192.0.2.125 → ${PUB}`])
  const tail = asText(input).slice(asText(input).indexOf('INVITE sip:joe'))
  t.ok(asText(r.bytes).endsWith(tail), 'the second request is no part of the message: untouched')
})

t.test('unreason: a response with a UTF-8 reason phrase keeps it byte for byte', async t => {
  const input = torture('valid', 'unreason')
  const r = rewrite('valid', 'unreason', '192.0.2.198')
  t.same(fields(r), [`Via: 192.0.2.198 → ${PUB}`, 'Content-Length: 154 → 155', `o=: 192.0.2.198 → ${PUB}`, `c=: 192.0.2.198 → ${PUB}`, 'm=audio: 49217 → 20000', 'm=video: 3227 → 20002'])
  t.ok(r.bytes.subarray(0, input.indexOf('\r\n')).equals(input.subarray(0, input.indexOf('\r\n'))), 'status line identical')
})

t.test('intmeth: valid, nothing of ours in it, passed as it came', async t => {
  const input = torture('valid', 'intmeth')
  const r = rewrite('valid', 'intmeth', '192.0.2.1')
  t.equal(r.changed, false)
  t.ok(r.bytes.equals(input), 'the bytes as they came')
  t.equal(r.leftAlone, 'already-public')
})

t.test('every valid message, both directions: no throw, never malformed, output parses', async t => {
  for (const name of tortureNames('valid')) {
    for (const direction of ['outbound', 'inbound'] as const) {
      const r = rewrite('valid', name, '192.0.2.1', direction)
      t.not(r.leftAlone, 'malformed', `${name} ${direction}`)
      t.ok(parseSip(r.bytes).ok, `${name} ${direction}: output parses`)
    }
  }
})

t.test('invalid messages: framing that cannot be known passes untouched, the rest never throws', async t => {
  for (const name of ['clerr', 'ncl']) {
    const input = torture('invalid', name)
    const r = rewrite('invalid', name, name === 'clerr' ? '192.0.2.155' : '192.0.2.53')
    t.equal(r.leftAlone, 'malformed', name)
    t.ok(r.bytes.equals(input), `${name}: the bytes as they came`)
  }
  const badinv = rewrite('invalid', 'badinv01', '192.0.2.15')
  t.same(fields(badinv), [`Via: 192.0.2.15 → ${PUB}`, 'Content-Length: 152 → 155', `o=: 192.0.2.15 → ${PUB}`, `c=: 192.0.2.15 → ${PUB}`, 'm=audio: 49217 → 20000', 'm=video: 3227 → 20002'],
    'extra separators around an unambiguous sent-by')
  for (const name of tortureNames('invalid')) {
    for (const direction of ['outbound', 'inbound'] as const) {
      t.doesNotThrow(() => {
        const out = rewriteDatagram(torture('invalid', name), direction, makeCtx({ isInside }))
        if (typeof out !== 'string' && out.changed) t.ok(parseSip(out.bytes).ok, `${name} ${direction}: output parses`)
      }, `${name} ${direction}`)
    }
  }
})

t.test('inv2543 (RFC 2543 syntax, no Content-Length): the SDP is rewritten, no Content-Length added', async t => {
  t.same(tortureNames('more'), ['inv2543', 'mcl01'])
  const r = rewrite('more', 'inv2543', '192.0.2.5')
  t.same(fields(r), [`o=: 192.0.2.5 → ${PUB}`, `c=: 192.0.2.5 → ${PUB}`, 'm=audio: 49217 → 20000'])
  t.notMatch(asText(r.bytes), /content-length/i, 'the datagram still frames the body')
  t.ok(asText(r.bytes).endsWith(`c=IN IP4 ${PUB}\r\nt=0 0\r\nm=audio 20000 RTP/AVP 0\r\n`))
})

t.test('mcl01 (two Content-Length values): passed as it came, counted as malformed', async t => {
  const input = torture('more', 'mcl01')
  const r = rewrite('more', 'mcl01', '192.0.2.1')
  t.equal(r.leftAlone, 'malformed')
  t.match(r.detail, 'Content-Length 13 and 5 disagree')
  t.ok(r.bytes.equals(input))
})
