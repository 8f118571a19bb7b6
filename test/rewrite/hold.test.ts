// RFC 2543 hold (c=0.0.0.0) still announces the stream's port in m=: it is mapped like any offer,
// under the address the stream lives on, so the far end never sees a private port and the resume
// finds the same public ports.
import t from 'tap'
import { rewriteMessage } from '../../src/rewrite/rewrite.js'
import type { MediaGrant, MediaRequest, RewriteContext } from '../../src/rewrite/types.js'
import { asText, makeCtx, parsed } from '../fixtures/helpers.js'

const PUB = '203.0.113.1'

/** A Cisco SPA-style INVITE / re-INVITE of one call; `conn` is the c= address, `origin` the o= one. */
function invite (cseq: number, conn: string, origin = '10.0.1.23', extra: string[] = []): Buffer {
  const sdp = [
    'v=0', `o=- 28776 ${28776 + cseq} IN IP4 ${origin}`, 's=-', `c=IN IP4 ${conn}`, 't=0 0',
    'm=audio 16450 RTP/AVP 0 18 101', 'a=rtpmap:0 PCMU/8000', 'a=rtpmap:18 G729a/8000', 'a=rtpmap:101 telephone-event/8000',
    'a=fmtp:101 0-15', 'a=ptime:20', ...extra, ''
  ].join('\r\n')
  return Buffer.from([
    'INVITE sip:1002@sip.example.net SIP/2.0',
    'Via: SIP/2.0/UDP 10.0.1.23:5060;branch=z9hG4bK-' + String(cseq) + 'a1b2c3',
    'From: "1001" <sip:1001@sip.example.net>;tag=4a5b6c7d8e',
    cseq === 101 ? 'To: <sip:1002@sip.example.net>' : 'To: <sip:1002@sip.example.net>;tag=as2f4e6d8c',
    'Call-ID: c0ffee01-5f3a7b29@10.0.1.23',
    `CSeq: ${cseq} INVITE`,
    'Max-Forwards: 70',
    'Contact: "1001" <sip:1001@10.0.1.23:5060>',
    'User-Agent: Cisco/SPA504G-7.6.2',
    'Content-Type: application/sdp',
    `Content-Length: ${sdp.length}`,
    '', sdp
  ].join('\r\n'), 'latin1')
}

/** A context whose media grants are kept per stream key ip:port, as CallTable.grantMedia keeps them. */
function callCtx (over: Partial<RewriteContext> = {}): RewriteContext & { requests: MediaRequest[] } {
  const grants = new Map<string, MediaGrant>()
  const requests: MediaRequest[] = []
  let next = 30000
  return Object.assign(makeCtx({
    mapMedia: req => {
      requests.push(req)
      const key = `${req.ip}:${req.rtpPort}`
      let g = grants.get(key)
      if (g === undefined) { g = { rtpPort: next, rtcpPort: next + 1 }; next += 2; grants.set(key, g) }
      return g
    },
    ...over
  }), { requests })
}

t.test('hold with a private o=: m= mapped under the o= address, c= and o= as for any offer', async t => {
  const ctx = callCtx()
  const offer = rewriteMessage(parsed(invite(101, '10.0.1.23')), 'outbound', ctx)
  const hold = rewriteMessage(parsed(invite(102, '0.0.0.0', '10.0.1.23', ['a=sendonly'])), 'outbound', ctx)
  const resume = rewriteMessage(parsed(invite(103, '10.0.1.23')), 'outbound', ctx)
  const out = asText(hold.bytes)
  t.match(out, 'c=IN IP4 0.0.0.0\r\n', 'c= stays the hold address')
  t.match(out, `o=- 28776 28878 IN IP4 ${PUB}\r\n`, 'o= mapped')
  t.match(out, 'm=audio 30000 RTP/AVP', 'm= carries the public port, not 16450')
  t.notMatch(out, '16450')
  t.same(ctx.requests.map(r => `${r.ip}:${r.rtpPort} rtcp ${r.rtcpIp}:${r.rtcpPort}`), Array(3).fill('10.0.1.23:16450 rtcp 10.0.1.23:16451'), 'one stream key for offer, hold and resume')
  t.same([offer, hold, resume].map(r => r.media[0].public.rtpPort), [30000, 30000, 30000], 'the resume finds the hold\'s mapping')
  t.same(hold.media[0].private, { ip: '10.0.1.23', rtpPort: 16450, rtcpPort: 16451 })
  t.equal(hold.sdp?.streams[0].ip, '0.0.0.0', 'the summary reports the SDP as written')
})

t.test('hold whose o= names no inside host: the stream lives on the phone\'s address', async t => {
  const ctx = callCtx()
  const hold = rewriteMessage(parsed(invite(102, '0.0.0.0', '0.0.0.0')), 'outbound', ctx)
  t.equal(ctx.requests[0]?.ip, '10.0.1.23', 'the phone from the context')
  t.match(asText(hold.bytes), 'm=audio 30000 ')
  t.match(asText(hold.bytes), 'o=- 28776 28878 IN IP4 0.0.0.0\r\n', 'an o= of 0.0.0.0 is left as written')
  const publicOrigin = callCtx()
  rewriteMessage(parsed(invite(102, '0.0.0.0', '198.51.100.7')), 'outbound', publicOrigin)
  t.equal(publicOrigin.requests[0]?.ip, '10.0.1.23', 'a public o= is not where the phone\'s stream lives')
})

t.test('hold whose o= names another inside host: no mapping toward it', async t => {
  const ctx = callCtx()
  const hold = rewriteMessage(parsed(invite(102, '0.0.0.0', '10.0.1.99')), 'outbound', ctx)
  t.same(ctx.requests, [])
  t.match(asText(hold.bytes), 'm=audio 16450 ')
  t.match(hold.detail, '10.0.1.99 is another inside host')
})

t.test('hold with a refused mapping leaves m= as written', async t => {
  const r = rewriteMessage(parsed(invite(102, '0.0.0.0')), 'outbound', makeCtx({ mapMedia: () => null }))
  t.equal(r.leftAlone, 'refused')
  t.match(asText(r.bytes), 'm=audio 16450 ')
})
