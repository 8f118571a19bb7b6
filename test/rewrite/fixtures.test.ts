// Every fixture through the engine: the exact list of changed fields, Content-Length true to the
// new body, nothing that must never change changed, and no inside address left where it matters.
import t, { type Test } from 'tap'
import { rewriteMessage } from '../../src/rewrite/rewrite.js'
import type { Direction, RewriteContext, RewriteResult } from '../../src/rewrite/types.js'
import { parseSip } from '../../src/sip/message.js'
import { paramValue } from '../../src/sip/text.js'
import { asText, fixture, fixtureNames, insideLeftovers, makeCtx, parsed } from '../fixtures/helpers.js'

interface Case {
  direction?: Direction
  ctx?: Partial<RewriteContext>
  changes: string[]
  leftAlone?: RewriteResult['leftAlone']
  /** Line prefixes allowed to keep a 10.x address (From/To and Call-ID always are). */
  allowInside?: string[]
  check?: (t: Test, r: RewriteResult, out: string) => void
}

const V = (from: string, to: string): string => `Via: ${from} → ${to}`
const C = (from: string, to: string): string => `Contact: ${from} → ${to}`
const PUB = '203.0.113.1'

const cases: Record<string, Case> = {
  'polycom-invite.sip': {
    changes: [V('10.0.1.23', PUB), C('10.0.1.23', PUB), 'Content-Length: 258 → 263', `o=: 10.0.1.23 → ${PUB}`, `c=: 10.0.1.23 → ${PUB}`, 'm=audio: 2222 → 20000'],
    check: (t, r) => {
      const expected = asText(fixture('polycom-invite.sip'))
        .replace('SIP/2.0/UDP 10.0.1.23;', `SIP/2.0/UDP ${PUB};`)
        .replace('<sip:1001@10.0.1.23>', `<sip:1001@${PUB}>`)
        .replace('Content-Length: 258', 'Content-Length: 263')
        .replace('IN IP4 10.0.1.23\r\ns=', `IN IP4 ${PUB}\r\ns=`)
        .replace('c=IN IP4 10.0.1.23', `c=IN IP4 ${PUB}`)
        .replace('m=audio 2222 ', 'm=audio 20000 ')
      t.equal(asText(r.bytes), expected, 'exact output bytes')
      t.same(r.signalling, { private: { ip: '10.0.1.23', port: 5060 }, publicPort: 5060 })
      t.same(r.media, [{ index: 0, media: 'audio', private: { ip: '10.0.1.23', rtpPort: 2222, rtcpPort: 2223 }, public: { rtpPort: 20000, rtcpPort: 20001 } }])
    }
  },
  'yealink-invite-rtcp-video.sip': {
    changes: [V('10.0.1.23:5060', `${PUB}:5060`), C('10.0.1.23:5060', `${PUB}:5060`), 'Content-Length: 464 → 470',
      `o=: 10.0.1.23 → ${PUB}`, `c=: 10.0.1.23 → ${PUB}`, 'm=audio: 11800 → 20000', 'a=rtcp: 11801 → 20001',
      `a=rtcp: 10.0.1.23 → ${PUB}`, 'm=video: 11802 → 20002', 'a=rtcp: 11803 → 20003'],
    check: (t, r, out) => {
      t.match(out, `Contact: <sip:201@${PUB}:5060;transport=UDP>;+sip.instance="<urn:uuid:00000000-0000-1000-8000-805ec0a1b2c3>"\r\n`)
      t.match(out, `a=rtcp:20001 IN IP4 ${PUB}\r\n`)
      t.equal(r.media.length, 2)
      t.same(r.media[1].private, { ip: '10.0.1.23', rtpPort: 11802, rtcpPort: 11803 })
    }
  },
  'linphone-invite-compact-lf.sip': {
    ctx: { phone: { ip: '10.0.1.23', port: 5062 } },
    changes: [V('10.0.1.23:5062', `${PUB}:5062`), C('10.0.1.23:5062', `${PUB}:5062`), 'Content-Length: 285 → 290',
      `o=: 10.0.1.23 → ${PUB}`, `c=: 10.0.1.23 → ${PUB}`, 'm=audio: 7078 → 20000'],
    check: (t, r, out) => {
      t.match(out, '\nl: 290\n', 'compact l: kept')
      t.notMatch(out, '\r', 'LF line ends kept')
      t.match(out, `m: <sip:alice@${PUB}:5062;transport=udp>;expires=3600;+sip.instance=`)
    }
  },
  'baresip-invite-ice.sip': {
    changes: [V('10.0.1.23:5060', `${PUB}:5060`), C('10.0.1.23:5060', `${PUB}:5060`)],
    leftAlone: 'ice',
    allowInside: ['o=', 'c=', 'a=candidate'],
    check: (t, r) => {
      const input = parsed(fixture('baresip-invite-ice.sip'))
      t.ok(parsed(r.bytes).body.equals(input.body), 'SDP untouched')
      t.equal(r.media.length, 0)
      t.equal(r.sdp?.ice, true)
    }
  },
  'invite-video-declined.sip': {
    changes: [V('10.0.1.23:5060', `${PUB}:5060`), C('10.0.1.23:5060', `${PUB}:5060`), 'Content-Length: 199 → 206',
      `o=: 10.0.1.23 → ${PUB}`, `c=: 10.0.1.23 → ${PUB}`, 'm=audio: 8000 → 20000', `c=: 10.0.1.23 → ${PUB}`],
    check: (t, r, out) => {
      t.match(out, 'm=video 0 RTP/AVP 34', 'port 0 stays 0')
      t.equal(r.media.length, 1)
    }
  },
  'reinvite-hold-zero.sip': {
    changes: [V('10.0.1.23:5060', `${PUB}:5060`), C('10.0.1.23:5060', `${PUB}:5060`), 'Content-Length: 176 → 179', `o=: 10.0.1.23 → ${PUB}`, 'm=audio: 2222 → 20000'],
    check: (t, r, out) => {
      t.match(out, 'c=IN IP4 0.0.0.0\r\n', 'hold address stays')
      t.match(out, 'm=audio 20000 ', 'the private port does not leak')
      t.same(r.media, [{ index: 0, media: 'audio', private: { ip: '10.0.1.23', rtpPort: 2222, rtcpPort: 2223 }, public: { rtpPort: 20000, rtcpPort: 20001 } }])
      t.equal(r.sdp?.streams[0].hold, true)
    }
  },
  'reinvite-sendonly.sip': {
    changes: [V('10.0.1.23:5060', `${PUB}:5060`), C('10.0.1.23:5060', `${PUB}:5060`), 'Content-Length: 178 → 183',
      `o=: 10.0.1.23 → ${PUB}`, `c=: 10.0.1.23 → ${PUB}`, 'm=audio: 2222 → 20000'],
    check: (t, r) => { t.equal(r.sdp?.streams[0].direction, 'sendonly'); t.equal(r.sdp?.streams[0].hold, true) }
  },
  'register-expires.sip': {
    changes: [V('10.0.1.23:5060', `${PUB}:5060`), C('10.0.1.23:5060', `${PUB}:5060`)],
    check: (t, r, out) => {
      t.match(out, `Contact: "1001" <sip:1001@${PUB}:5060;line=k7f3>;expires=3600;+sip.instance="<urn:uuid:00000000-0000-1000-8000-0004f2a1b2c3>";reg-id=1\r\n`)
      t.match(out, 'Content-Length: 0\r\n\r\n')
    }
  },
  'register-folded-lf.sip': {
    changes: [V('10.0.1.23:5060', `${PUB}:5060`), C('10.0.1.23:5060', `${PUB}:5060`)],
    check: (t, r, out) => {
      t.match(out, `Via: SIP/2.0/UDP ${PUB}:5060\n ;branch=z9hG4bK.f0ld3d;rport\n`, 'folding kept')
      t.match(out, `Contact: <sip:alice@${PUB}:5060>\n\t;expires=600\n`)
    }
  },
  'ok200-invite-sdp.sip': {
    changes: [C('10.0.1.23:5060', `${PUB}:5060`), 'Content-Length: 178 → 183', `o=: 10.0.1.23 → ${PUB}`, `c=: 10.0.1.23 → ${PUB}`, 'm=audio: 2224 → 20000'],
    check: (t, r, out) => t.match(out, 'Via: SIP/2.0/UDP 203.0.113.9:5060;branch=z9hG4bK5f2a8c41;rport=5060;received=203.0.113.9\r\n', 'far-end Via untouched')
  },
  'ringing183-sdp.sip': {
    changes: [C('10.0.1.23:5060', `${PUB}:5060`), 'Content-Length: 175 → 181', `o=: 10.0.1.23 → ${PUB}`, `c=: 10.0.1.23 → ${PUB}`, 'm=audio: 2226 → 20000', 'a=rtcp: 2227 → 20001']
  },
  'ack.sip': { changes: [V('10.0.1.23:5060', `${PUB}:5060`), C('10.0.1.23:5060', `${PUB}:5060`)] },
  'bye.sip': { changes: [V('10.0.1.23:5060', `${PUB}:5060`)] },
  'pbx-invite-other-host.sip': {
    ctx: { phone: { ip: '10.0.1.5', port: 5060 } },
    changes: [V('10.0.1.5:5060', `${PUB}:5060`), `Record-Route: 10.0.1.5 → ${PUB}`, C('10.0.1.5:5060', `${PUB}:5060`), 'Content-Length: 109 → 112', `o=: 10.0.1.5 → ${PUB}`],
    allowInside: ['Via: SIP/2.0/UDP 10.0.1.23', 'c=IN IP4 10.0.1.23'],
    check: (t, r) => {
      t.equal(r.media.length, 0, 'no mapping toward another inside host')
      t.match(r.detail, '10.0.1.23 is another inside host')
    }
  },
  'invite-already-public.sip': {
    changes: [],
    leftAlone: 'already-public'
  },
  'invite-rtcp-mux-two-contacts.sip': {
    changes: [V('10.0.1.23:5060', `${PUB}:5060`), C('10.0.1.23:5060', `${PUB}:5060`), C('10.0.1.23:5080', `${PUB}:5080`),
      'Content-Length: 124 → 130', `o=: 10.0.1.23 → ${PUB}`, 'm=audio: 4000 → 20000', `c=: 10.0.1.23 → ${PUB}`, 'a=rtcp: 4000 → 20000'],
    check: (t, r, out) => {
      t.same(r.media[0].public, { rtpPort: 20000, rtcpPort: null })
      t.same(r.media[0].private.rtcpPort, null)
      t.match(out, `"Alt, Line" <sip:1001@${PUB}:5080>;q=0.3\r\n`)
      t.match(out, 'Via: SIP/2.0/TCP ')
    }
  },
  'inbound-invite.sip': {
    direction: 'inbound',
    changes: [`Request-URI: ${PUB}:5060 → 10.0.1.23:5060`, `To: ${PUB}:5060 → 10.0.1.23:5060`],
    allowInside: ['INVITE sip:1001@10.0.1.23', 'To:'],
    check: (t, r, out) => {
      t.equal(r.sdp?.sessionIp, '203.0.113.9')
      t.equal(r.sdp?.streams[0].port, 14510)
      t.ok(out.endsWith(asText(parsed(fixture('inbound-invite.sip')).body)), 'far-end SDP unchanged')
    }
  },
  'inbound-200-register.sip': {
    direction: 'inbound',
    changes: [`Via: ${PUB}:5060 → 10.0.1.23:5060`, `Via received: ${PUB} → 10.0.1.23`],
    allowInside: ['Via:']
  }
}

function describe (r: RewriteResult): string[] {
  return r.changes.map(c => `${c.field}: ${c.before} → ${c.after}`)
}

t.test('every fixture has an expectation', async t => {
  t.same(fixtureNames().filter(n => cases[n] === undefined), [])
})

for (const [name, c] of Object.entries(cases)) {
  t.test(name, async t => {
    const input = fixture(name)
    const msg = parsed(input)
    const r = rewriteMessage(msg, c.direction ?? 'outbound', makeCtx(c.ctx))
    t.same(describe(r), c.changes, 'changed fields, in message order')
    t.equal(r.changed, c.changes.length > 0)
    if (c.leftAlone !== undefined) t.equal(r.leftAlone, c.leftAlone)
    if (!r.changed) t.equal(r.bytes, input, 'unchanged → the input Buffer itself')
    const out = parseSip(r.bytes)
    t.ok(out.ok, 'output parses')
    if (!out.ok) return
    const o = out.msg
    t.equal(o.callId, msg.callId, 'Call-ID kept')
    t.equal(o.fromTag, msg.fromTag, 'From tag kept')
    t.equal(o.toTag, msg.toTag, 'To tag kept')
    t.same(o.cseq, msg.cseq, 'CSeq kept')
    t.equal(paramValue(o.topVia?.params ?? [], 'branch'), paramValue(msg.topVia?.params ?? [], 'branch'), 'branch kept')
    if (typeof o.contentLength === 'number') t.equal(o.contentLength, o.body.length, 'Content-Length matches the body')
    if ((c.direction ?? 'outbound') === 'outbound') {
      t.same(insideLeftovers(r.bytes, ['From:', 'f:', 'To:', 't:', 'Call-ID:', 'i:', ...(c.allowInside ?? [])]), [], 'no inside address left')
    }
    c.check?.(t, r, asText(r.bytes))
  })
}

t.test('trusted inside proxy: its phones\' addresses are mapped too', async t => {
  const r = rewriteMessage(parsed(fixture('pbx-invite-other-host.sip')), 'outbound', makeCtx({ phone: { ip: '10.0.1.5', port: 5060 }, trustedProxy: true }))
  t.same(describe(r), [V('10.0.1.5:5060', `${PUB}:5060`), `Record-Route: 10.0.1.5 → ${PUB}`, C('10.0.1.5:5060', `${PUB}:5060`), 'Content-Length: 109 → 114',
    `o=: 10.0.1.5 → ${PUB}`, `c=: 10.0.1.23 → ${PUB}`, 'm=audio: 16384 → 20000'])
  t.same(r.media[0].private, { ip: '10.0.1.23', rtpPort: 16384, rtcpPort: 16385 })
})

t.test('rewriteFromTo maps From/To naming the sender only', async t => {
  const r = rewriteMessage(parsed(fixture('invite-rtcp-mux-two-contacts.sip')), 'outbound', makeCtx({ rewriteFromTo: true }))
  t.match(asText(r.bytes), `From: <sip:1001@${PUB}>;tag=mux-from\r\n`)
  t.match(asText(r.bytes), 'To: <sip:1002@10.0.1.24>\r\n', 'another inside host stays')
  t.ok(r.changes.some(c => c.field === 'From'))
})

t.test('rewriteIce rewrites the SDP even with ICE', async t => {
  const r = rewriteMessage(parsed(fixture('baresip-invite-ice.sip')), 'outbound', makeCtx({ rewriteIce: true }))
  t.equal(r.leftAlone, undefined)
  t.ok(r.changes.some(c => c.field === 'm=audio'))
})

t.test('refusals leave the part alone and say so', async t => {
  const noSig = rewriteMessage(parsed(fixture('ack.sip')), 'outbound', makeCtx({ mapSignalling: () => null }))
  t.equal(noSig.changed, false)
  t.equal(noSig.leftAlone, 'refused')
  t.match(noSig.detail, 'refused')
  const noMedia = rewriteMessage(parsed(fixture('polycom-invite.sip')), 'outbound', makeCtx({ mapMedia: () => null }))
  t.equal(noMedia.leftAlone, 'refused')
  t.same(describe(noMedia).map(d => d.split(':')[0]), ['Via', 'Contact', 'Content-Length', 'o='], 'c= and m= kept with the refused stream')
  t.same(noMedia.media, [])
})

t.test('inbound: names of no mapping are left alone', async t => {
  const r = rewriteMessage(parsed(fixture('inbound-invite.sip')), 'inbound', makeCtx({ lookupSignalling: () => null }))
  t.equal(r.changed, false)
  t.equal(r.leftAlone, 'no-private-address')
  t.ok(r.sdp !== undefined)
})

t.test('a response restored inbound is what the phone sent outbound', async t => {
  const sent = parsed(fixture('register-expires.sip'))
  const out = rewriteMessage(sent, 'outbound', makeCtx())
  const outVia = parsed(out.bytes).header('via')!
  t.match(outVia, `SIP/2.0/UDP ${PUB}:5060;`)
  const reply = Buffer.from(asText(fixture('inbound-200-register.sip')))
  const back = rewriteMessage(parsed(reply), 'inbound', makeCtx())
  t.equal(parsed(back.bytes).topVia?.host, '10.0.1.23')
  t.equal(paramValue(parsed(back.bytes).topVia?.params ?? [], 'branch'), paramValue(sent.topVia?.params ?? [], 'branch'))
})

t.test('an inside proxy\'s Record-Route goes out public and comes back private in Route and Record-Route', async t => {
  const out = rewriteMessage(parsed(fixture('pbx-invite-other-host.sip')), 'outbound', makeCtx({ phone: { ip: '10.0.1.5', port: 5060 } }))
  t.match(asText(out.bytes), `Record-Route: <sip:${PUB};lr>\r\n`)
  const bye = Buffer.from([
    'BYE sip:100@203.0.113.1:5060 SIP/2.0', 'Via: SIP/2.0/UDP 203.0.113.9:5060;branch=z9hG4bK-far-bye',
    `Route: <sip:${PUB};lr>`, 'From: <sip:+15551230000@203.0.113.9>;tag=far', 'To: "Front Desk" <sip:100@10.0.1.5>;tag=pbx-7f3a',
    'Call-ID: pbx-call-0001@10.0.1.5', 'CSeq: 2 BYE', 'Content-Length: 0', '', ''].join('\r\n'), 'latin1')
  const back = rewriteMessage(parsed(bye), 'inbound', makeCtx({ phone: { ip: '10.0.1.5', port: 5060 }, lookupSignalling: (p: number) => (p === 5060 ? { ip: '10.0.1.5', port: 5060 } : null) }))
  t.match(asText(back.bytes), 'BYE sip:100@10.0.1.5:5060 SIP/2.0\r\n', 'Request-URI back to the PBX')
  t.match(asText(back.bytes), 'Route: <sip:10.0.1.5;lr>\r\n', 'the PBX finds its own Route entry')
  t.ok(back.changes.some(c => c.field === 'Route'))
})
