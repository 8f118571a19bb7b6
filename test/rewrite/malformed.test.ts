// Bad input: the engine never throws, and each case has a stated answer:
// not-sip (passed unchanged), malformed (framing unknown: passed unchanged), unchanged (parsed, nothing
// safe to do), or rewritten (what is unambiguous).
import t, { type Test } from 'tap'
import type { RewriteContext, RewriteResult } from '../../src/rewrite/types.js'
import { parseSip } from '../../src/sip/message.js'
import { asText, fixture, makeCtx, rewriteDatagram } from '../fixtures/helpers.js'

const INVITE = asText(fixture('polycom-invite.sip'))
const [HEAD, BODY] = INVITE.split('\r\n\r\n') as [string, string]
const withBody = (head: string, body: string): string => `${head}\r\n\r\n${body}`
const replaceHeader = (name: string, line: string | null): string =>
  withBody(HEAD.split('\r\n').flatMap(l => l.startsWith(`${name}:`) ? (line === null ? [] : [line]) : [l]).join('\r\n'), BODY)

interface Case {
  name: string
  input: string | Buffer
  expect: 'not-sip' | 'keepalive' | 'unchanged' | 'rewritten' | 'malformed'
  ctx?: Partial<RewriteContext>
  check?: (t: Tap, r: RewriteResult, out: string) => void
}
type Tap = Test

function stun (): Buffer {
  const b = Buffer.alloc(28)
  b.writeUInt16BE(0x0001, 0); b.writeUInt16BE(8, 2); b.writeUInt32BE(0x2112a442, 4)
  return b
}

function garbage (n: number, seed: number): Buffer {
  const b = Buffer.alloc(n)
  let x = seed
  for (let i = 0; i < n; i++) { x = (x * 1103515245 + 12345) >>> 0; b[i] = x >>> 24 }
  return b
}

const sdpWith = (body: string): string => replaceHeader('Content-Length', `Content-Length: ${body.length}`).split('\r\n\r\n')[0] + '\r\n\r\n' + body
const sdp = (lines: string[]): string => sdpWith(lines.join('\r\n') + '\r\n')
const SDP_HEAD = ['v=0', 'o=- 1 1 IN IP4 10.0.1.23', 's=-', 'c=IN IP4 10.0.1.23', 't=0 0']
const bodyKept = (t: Tap, out: string, text: string): void => { t.match(out, text, 'body left as written') }

const cases: Case[] = [
  { name: 'empty datagram', input: '', expect: 'not-sip' },
  { name: 'only CRLF', input: '\r\n', expect: 'keepalive' },
  { name: 'double CRLF keepalive', input: '\r\n\r\n', expect: 'keepalive' },
  { name: 'STUN binding request', input: stun(), expect: 'keepalive' },
  { name: 'truncated start line, no line end', input: 'INVITE sip:1002@sip.example.net SIP/2.0', expect: 'not-sip' },
  { name: 'truncated start line version', input: 'INVITE sip:1002@sip.example.net SIP/2.\r\n\r\n', expect: 'not-sip' },
  { name: 'method only', input: 'INVITE\r\n\r\n', expect: 'not-sip' },
  { name: 'truncated status code', input: 'SIP/2.0 20\r\n\r\n', expect: 'not-sip' },
  { name: 'status code out of range', input: 'SIP/2.0 999 Nope\r\nVia: SIP/2.0/UDP 10.0.1.23\r\n\r\n', expect: 'not-sip' },
  { name: 'Request-URI without scheme', input: 'INVITE 1002 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.1.23\r\n\r\n', expect: 'not-sip' },
  { name: 'HTTP request with SIP in the body', input: `POST /upload HTTP/1.1\r\nHost: 203.0.113.1:5060\r\nContent-Length: ${INVITE.length}\r\n\r\n${INVITE}`, expect: 'not-sip' },
  { name: 'HTTP response', input: 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n', expect: 'not-sip' },
  { name: 'SIP after leading spaces', input: `  ${INVITE}`, expect: 'not-sip' },
  { name: 'SIP after a leading CRLF', input: `\r\n${INVITE}`, expect: 'not-sip' },
  { name: 'SIP text at offset 100 of garbage', input: Buffer.concat([garbage(100, 7), Buffer.from(INVITE, 'latin1')]), expect: 'not-sip' },
  { name: 'binary garbage', input: garbage(512, 42), expect: 'not-sip' },
  { name: 'truncated in the headers (no blank line)', input: INVITE.slice(0, 200), expect: 'not-sip' },
  { name: 'header line without colon', input: replaceHeader('Max-Forwards', 'Max-Forwards 70'), expect: 'not-sip' },
  { name: 'empty header name', input: replaceHeader('Max-Forwards', ': 70'), expect: 'not-sip' },
  { name: 'continuation line before any header', input: INVITE.replace('\r\nVia:', '\r\n folded\r\nVia:'), expect: 'not-sip' },
  { name: 'NUL byte in a header', input: replaceHeader('User-Agent', 'User-Agent: evil\u0000agent'), expect: 'not-sip' },
  { name: 'header name of 64 KiB without colon', input: replaceHeader('Max-Forwards', 'X'.repeat(65536)), expect: 'not-sip' },
  {
    name: 'NUL byte in the SDP', input: sdp([...SDP_HEAD, 'a=tool:\u0000x', 'm=audio 2222 RTP/AVP 0']), expect: 'rewritten',
    check: (t, r) => t.ok(r.changes.some(c => c.field === 'm=audio'))
  },
  // Framing the message's extent cannot be known from: passed as it came, counted as malformed.
  { name: 'negative Content-Length', input: replaceHeader('Content-Length', 'Content-Length: -5'), expect: 'malformed', check: (t, r) => t.match(r.detail, '"-5" is not a length') },
  { name: 'non-numeric Content-Length', input: replaceHeader('Content-Length', 'Content-Length: abc'), expect: 'malformed', check: (t, r) => t.match(r.detail, 'not a length') },
  { name: 'Content-Length with a sign', input: replaceHeader('Content-Length', 'Content-Length: +258'), expect: 'malformed' },
  { name: 'huge Content-Length', input: replaceHeader('Content-Length', 'Content-Length: 99999999999999999999'), expect: 'malformed' },
  {
    name: 'Content-Length larger than the body (truncated datagram)', input: replaceHeader('Content-Length', 'Content-Length: 5000'), expect: 'malformed',
    check: (t, r) => t.match(r.detail, 'Content-Length 5000 exceeds the 258 body bytes')
  },
  {
    name: 'two Content-Length headers that disagree', input: INVITE.replace('Content-Length: 258', 'Content-Length: 258\r\nl: 200'), expect: 'malformed',
    check: (t, r) => t.match(r.detail, 'Content-Length 258 and 200 disagree')
  },
  {
    name: 'body shorter than Content-Length in a Grandstream-style REGISTER',
    input: 'REGISTER sip:sip.example.net SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.1.23:5060;branch=z9hG4bK1598344961;rport\r\nFrom: "1001" <sip:1001@sip.example.net>;tag=1390457121\r\nTo: <sip:1001@sip.example.net>\r\nCall-ID: 1718196520-5060-1@10.0.1.23\r\nCSeq: 2 REGISTER\r\nContact: <sip:1001@10.0.1.23:5060>;reg-id=1\r\nUser-Agent: Grandstream GXP2170 1.0.11.23\r\nContent-Length: 4\r\n\r\nab',
    expect: 'malformed'
  },
  // Framing that is valid, if unusual.
  {
    name: 'the same Content-Length twice', input: INVITE.replace('Content-Length: 258', 'Content-Length: 258\r\nl: 258'), expect: 'rewritten',
    check: (t, r, out) => {
      t.equal(r.leftAlone, undefined)
      t.match(out, 'Content-Length: 263\r\nl: 263\r\n', 'both copies follow the body')
      t.ok(r.changes.some(c => c.field === 'm=audio'))
    }
  },
  {
    name: 'Content-Length smaller than the body', input: replaceHeader('Content-Length', 'Content-Length: 10'), expect: 'rewritten',
    check: (t, r, out) => {
      t.ok(out.endsWith(BODY.slice(10)), 'bytes past Content-Length kept as they were')
      t.match(out, 'Content-Length: 10\r\n')
      t.match(r.detail, '248 bytes past Content-Length kept as written')
    }
  },
  {
    name: 'SDP within Content-Length, a stray CRLF after it', input: INVITE + '\r\n', expect: 'rewritten',
    check: (t, r, out) => {
      t.match(out, 'Content-Length: 263\r\n', 'the declared body is rewritten and measured')
      t.ok(out.endsWith('a=fmtp:101 0-15\r\n\r\n'), 'the stray bytes stay after it')
      t.ok(r.changes.some(c => c.field === 'm=audio'))
    }
  },
  {
    name: 'missing Content-Length with SDP (UDP: the datagram frames it)', input: replaceHeader('Content-Length', null), expect: 'rewritten',
    check: (t, r, out) => {
      t.notMatch(out, /content-length|\nl:/i, 'no Content-Length added')
      t.ok(r.changes.some(c => c.field === 'm=audio'), 'body rewritten')
      t.notOk(r.changes.some(c => c.field === 'Content-Length'))
    }
  },
  { name: '64 KiB header value', input: replaceHeader('User-Agent', `User-Agent: ${'A'.repeat(65536)}`), expect: 'rewritten' },
  {
    name: 'non-UTF-8 bytes in a display name', input: INVITE.replace('"Alice Desk" <sip:1001@10.0.1.23>', '"Al\u00ff\u00fece" <sip:1001@10.0.1.23>'), expect: 'rewritten',
    check: (t, r) => { t.ok(r.bytes.includes(Buffer.from([0x22, 0x41, 0x6c, 0xff, 0xfe]))); t.ok(r.changes.some(c => c.field === 'Contact')) }
  },
  {
    name: 'non-UTF-8 bytes in the SDP', input: sdp([...SDP_HEAD.slice(0, 2), 's=\u00c9t\u00e9 \u00ff', ...SDP_HEAD.slice(3), 'm=audio 2222 RTP/AVP 0']), expect: 'rewritten',
    check: (t, r) => { t.ok(r.bytes.includes(Buffer.from([0x73, 0x3d, 0xc9, 0x74, 0xe9, 0x20, 0xff]))); t.equal(r.media.length, 1) }
  },
  {
    name: 'SDP with 1,000 m= lines', input: sdp([...SDP_HEAD, ...Array.from({ length: 1000 }, (_, i) => `m=audio ${2000 + 2 * i} RTP/AVP 0`)]), expect: 'rewritten',
    check: (t, r) => { t.equal(r.media.length, 1000); t.equal(r.sdp?.streams.length, 1000) }
  },
  {
    name: 'm= port above 65535', input: sdp([...SDP_HEAD, 'm=audio 70000 RTP/AVP 0']), expect: 'rewritten',
    check: (t, r, out) => { t.match(out, 'm=audio 70000 '); t.equal(r.media.length, 0); t.match(r.detail, 'not a port') }
  },
  { name: 'negative m= port', input: sdp([...SDP_HEAD, 'm=audio -1 RTP/AVP 0']), expect: 'rewritten', check: (t, r, out) => { t.match(out, 'm=audio -1 '); t.equal(r.media.length, 0) } },
  { name: 'non-numeric m= port', input: sdp([...SDP_HEAD, 'm=audio abc RTP/AVP 0']), expect: 'rewritten', check: (t, r) => t.equal(r.media.length, 0) },
  { name: 'm= with missing fields', input: sdp([...SDP_HEAD, 'm=audio']), expect: 'rewritten', check: (t, r) => t.equal(r.media.length, 0) },
  {
    name: 'a=rtcp port above 65535', input: sdp([...SDP_HEAD, 'm=audio 2222 RTP/AVP 0', 'a=rtcp:99999']), expect: 'rewritten',
    check: (t, r, out) => { t.match(out, 'a=rtcp:99999\r\n', 'unusable a=rtcp left'); t.equal(r.media[0].public.rtpPort, 20000) }
  },
  {
    name: 'c= without an address', input: sdp(['v=0', 'o=- 1 1 IN IP4 10.0.1.23', 's=-', 'c=IN', 't=0 0', 'm=audio 2222 RTP/AVP 0']), expect: 'rewritten',
    check: (t, r, out) => { t.match(out, 'o=- 1 1 IN IP4 203.0.113.1'); t.equal(r.media.length, 0) }
  },
  { name: 'SDP content type with a non-SDP body', input: sdpWith('hello world, not sdp\r\n'), expect: 'rewritten', check: (t, r, out) => t.ok(out.endsWith('hello world, not sdp\r\n')) },
  {
    name: 'Via with a port above 65535', input: replaceHeader('Via', 'Via: SIP/2.0/UDP 10.0.1.23:99999;branch=z9hG4bKx'), expect: 'rewritten',
    check: (t, r, out) => { t.match(out, 'Via: SIP/2.0/UDP 10.0.1.23:99999;'); t.notOk(r.changes.some(c => c.field === 'Via')) }
  },
  { name: 'Via without sent-by', input: replaceHeader('Via', 'Via: SIP/2.0/UDP'), expect: 'rewritten', check: (t, r) => t.notOk(r.changes.some(c => c.field === 'Via')) },
  { name: 'no Via at all', input: replaceHeader('Via', null), expect: 'rewritten', check: (t, r) => t.ok(r.changes.some(c => c.field === 'Contact')) },
  {
    name: 'Contact: *', input: `REGISTER sip:203.0.113.9 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.1.23:5060;branch=z9hG4bKs\r\nContact: *\r\nExpires: 0\r\nContent-Length: 0\r\n\r\n`, expect: 'rewritten',
    check: (t, r, out) => { t.match(out, 'Contact: *\r\n'); t.same(r.changes.map(c => c.field), ['Via']) }
  },
  { name: 'Contact with an unclosed <', input: replaceHeader('Contact', 'Contact: <sip:1001@10.0.1.23'), expect: 'rewritten', check: (t, r, out) => t.match(out, 'Contact: <sip:1001@10.0.1.23\r\n') },
  { name: 'CRLF start line, LF headers', input: `OPTIONS sip:x@203.0.113.9 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.1.23:5060;branch=z9hG4bKm\nContent-Length: 0\n\n`, expect: 'rewritten' },
  { name: 'lower-case extension method', input: 'foo sip:x@203.0.113.9 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.1.23:5060;branch=z9hG4bKl\r\n\r\n', expect: 'rewritten' },
  { name: 'status line without reason phrase', input: 'SIP/2.0 200\r\nVia: SIP/2.0/UDP 203.0.113.9;branch=z9hG4bKr\r\nContact: <sip:a@10.0.1.23>\r\n\r\n', expect: 'rewritten' },
  { name: 'minimal request, nothing to rewrite', input: 'OPTIONS sip:x@203.0.113.9 SIP/2.0\r\n\r\n', expect: 'unchanged', check: (t, r) => t.equal(r.leftAlone, 'already-public') },
  { name: 'mapSignalling refuses', input: fixture('ack.sip'), ctx: { mapSignalling: () => null }, expect: 'unchanged', check: (t, r) => t.equal(r.leftAlone, 'refused') },
  { name: 'mapSignalling returns an impossible port', input: fixture('ack.sip'), ctx: { mapSignalling: () => 70000 }, expect: 'unchanged', check: (t, r) => t.equal(r.leftAlone, 'refused') },
  { name: 'mapMedia returns an impossible grant', input: INVITE, ctx: { mapMedia: () => ({ rtpPort: -4, rtcpPort: null }) }, expect: 'rewritten', check: (t, r) => { t.equal(r.leftAlone, 'refused'); t.equal(r.media.length, 0) } },
  { name: 'a callback throws', input: INVITE, ctx: { mapMedia: () => { throw new Error('boom') } }, expect: 'unchanged', check: (t, r) => { t.equal(r.leftAlone, 'malformed'); t.match(r.detail, 'boom') } }
]

t.test('at least 40 broken messages', async t => { t.ok(cases.length >= 40, `${cases.length} cases`) })

for (const c of cases) {
  t.test(c.name, async t => {
    const input = typeof c.input === 'string' ? Buffer.from(c.input, 'latin1') : c.input
    let out: ReturnType<typeof rewriteDatagram> | undefined
    t.doesNotThrow(() => { out = rewriteDatagram(input, 'outbound', makeCtx(c.ctx)) })
    if (c.expect === 'not-sip' || c.expect === 'keepalive') {
      t.equal(out, c.expect, 'passed as it came, without parsing')
      return
    }
    if (out === undefined || typeof out === 'string') { t.fail(`refused as ${String(out)}`); return }
    const r = out
    if (c.expect === 'unchanged' || c.expect === 'malformed') {
      t.equal(r.changed, false)
      t.equal(r.bytes, input, 'the input Buffer itself')
      if (c.expect === 'malformed') t.equal(r.leftAlone, 'malformed')
    } else {
      t.equal(r.changed, true, 'rewritten')
      t.ok(parseSip(r.bytes).ok, 'output still parses')
    }
    c.check?.(t, r, r.bytes.toString('latin1'))
  })
}
