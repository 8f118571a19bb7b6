// REGISTERs that bind several Contact URIs (one header with a comma-separated list, or several
// headers): every URI naming the sender goes public with its parameters kept; others stay.
import t from 'tap'
import { rewriteMessage } from '../../src/rewrite/rewrite.js'
import { asText, insideLeftovers, makeCtx, parsed } from '../fixtures/helpers.js'

const PUB = '203.0.113.1'

function register (ua: string, contacts: string[]): string {
  return [
    'REGISTER sip:sip.example.net SIP/2.0',
    'Via: SIP/2.0/UDP 10.0.1.23:5060;branch=z9hG4bK1598344961;rport',
    'From: "1001" <sip:1001@sip.example.net>;tag=1390457121',
    'To: "1001" <sip:1001@sip.example.net>',
    'Call-ID: 1718196520-5060-1@10.0.1.23',
    'CSeq: 2 REGISTER',
    ...contacts,
    'Max-Forwards: 70',
    `User-Agent: ${ua}`,
    'Expires: 3600',
    'Content-Length: 0',
    '', ''
  ].join('\r\n')
}

const cases: Array<{ name: string, ua: string, contacts: string[], expect: string[] }> = [
  {
    name: 'one header, two URIs (Yealink with a second line on another port)',
    ua: 'Yealink SIP-T46U 108.86.0.40',
    contacts: ['Contact: <sip:1001@10.0.1.23:5060>;expires=3600;reg-id=1, <sip:1001@10.0.1.23:5062;transport=UDP>;expires=3600;reg-id=2'],
    expect: [`Contact: <sip:1001@${PUB}:5060>;expires=3600;reg-id=1, <sip:1001@${PUB}:5062;transport=UDP>;expires=3600;reg-id=2`]
  },
  {
    name: 'two Contact headers (Polycom, two registrations of one line)',
    ua: 'PolycomVVX-VVX_411-UA/6.4.3.5018',
    contacts: ['Contact: "1001" <sip:1001@10.0.1.23;line=k7f3>;expires=3600', 'Contact: "1001" <sip:1001@10.0.1.23:5060;line=k7f4>;expires=600'],
    expect: [`Contact: "1001" <sip:1001@${PUB};line=k7f3>;expires=3600`, `Contact: "1001" <sip:1001@${PUB}:5060;line=k7f4>;expires=600`]
  },
  {
    name: 'quoted commas in a feature tag (snom), then a second URI',
    ua: 'snomD785/10.1.54.13',
    contacts: ['Contact: <sip:1001@10.0.1.23:5060;line=xyz1>;reg-id=1;q=1.0;+sip.instance="<urn:uuid:0004f2a1-b2c3>";methods="INVITE, ACK, BYE, CANCEL";expires=3600, <sip:1001@10.0.1.23:5060;line=xyz2>;q=0.5'],
    expect: [`Contact: <sip:1001@${PUB}:5060;line=xyz1>;reg-id=1;q=1.0;+sip.instance="<urn:uuid:0004f2a1-b2c3>";methods="INVITE, ACK, BYE, CANCEL";expires=3600, <sip:1001@${PUB}:5060;line=xyz2>;q=0.5`]
  },
  {
    name: 'compact m: folded onto a second line (Linphone), addr-spec form without <>',
    ua: 'Linphone Desktop/5.2.6 (belle-sip/5.2.94)',
    contacts: ['m: sip:alice@10.0.1.23:5062;expires=3600,\r\n\tsip:alice@10.0.1.23:5062;transport=tcp'],
    expect: [`m: sip:alice@${PUB}:5062;expires=3600,\r\n\tsip:alice@${PUB}:5062;transport=tcp`]
  },
  {
    name: 'a URI of another inside host among the sender\'s (Grandstream behind a PBX) stays',
    ua: 'Grandstream GXP2170 1.0.11.23',
    contacts: ['Contact: <sip:1001@10.0.1.23:5060>, <sip:1001@10.0.1.99:5060>', 'Contact: <sip:1001@10.0.1.23:5064>'],
    expect: [`Contact: <sip:1001@${PUB}:5060>, <sip:1001@10.0.1.99:5060>`, `Contact: <sip:1001@${PUB}:5064>`]
  }
]

for (const c of cases) {
  t.test(c.name, async t => {
    const ctx = makeCtx()
    const r = rewriteMessage(parsed(register(c.ua, c.contacts)), 'outbound', ctx)
    const out = asText(r.bytes)
    for (const line of c.expect) t.match(out, `\r\n${line}\r\n`, 'every URI naming the sender rewritten, params kept')
    t.same(ctx.signallingRequests.map(e => `${e.ip}:${e.port}`).sort(), [...new Set(ctx.signallingRequests.map(e => `${e.ip}:${e.port}`))].sort(), 'one mapping asked per endpoint')
    const others = c.contacts.join('').includes('10.0.1.99') ? ['Contact: <sip:1001@203.0.113.1:5060>, <sip:1001@10.0.1.99'] : []
    t.same(insideLeftovers(r.bytes, ['From:', 'To:', 'Call-ID:', 'User-Agent:', ...others]), [], 'no URI of the sender left private')
  })
}
