import { PassThrough } from 'node:stream'
import t from 'tap'
import { runRewrite } from '../../src/cli/rewrite.js'
import { parseCidr } from '../../src/rewrite/cidr.js'
import { parseSip } from '../../src/sip/message.js'
import { fixture } from '../fixtures/helpers.js'

async function run (args: string[], input: Buffer | string): Promise<{ code: number, stdout: Buffer, stderr: string }> {
  const stdin = new PassThrough()
  const stdout = new PassThrough()
  const stderr = new PassThrough()
  const out: Buffer[] = []
  const err: Buffer[] = []
  stdout.on('data', (d: Buffer) => out.push(d))
  stderr.on('data', (d: Buffer) => err.push(d))
  stdin.end(input)
  const code = await runRewrite(args, { stdin, stdout, stderr })
  return { code, stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString() }
}

t.test('done-when: INVITE from 10.0.1.23 explained and rewritten to 203.0.113.1', async t => {
  const r = await run(['--public', '203.0.113.1', '--explain'], fixture('yealink-invite-rtcp-video.sip'))
  t.equal(r.code, 0)
  const lines = r.stderr.trim().split('\n')
  t.same(lines, [
    'Via: 10.0.1.23:5060 → 203.0.113.1:5060',
    'Contact: 10.0.1.23:5060 → 203.0.113.1:5060',
    'Content-Length: 464 → 470',
    'o=: 10.0.1.23 → 203.0.113.1',
    'c=: 10.0.1.23 → 203.0.113.1',
    'm=audio: 11800 → 20000',
    'a=rtcp: 11801 → 20001',
    'a=rtcp: 10.0.1.23 → 203.0.113.1',
    'm=video: 11802 → 20002',
    'a=rtcp: 11803 → 20003'
  ])
  const m = parseSip(r.stdout)
  t.ok(m.ok)
  if (m.ok) {
    t.equal(m.msg.contentLength, m.msg.body.length, 'Content-Length is right')
    t.notMatch(m.msg.body.toString('latin1'), '10.0.1.23')
  }
})

t.test('not SIP: exit 3, nothing on stdout, one line on stderr', async t => {
  for (const input of ['GET / HTTP/1.1\r\nHost: x\r\n\r\n', '', '\r\n\r\n', Buffer.from([0xde, 0xad, 0xbe, 0xef])]) {
    const r = await run(['--public', '203.0.113.1'], input)
    t.equal(r.code, 3)
    t.equal(r.stdout.length, 0)
    t.match(r.stderr, /^sipalg: E105: input is not a SIP message: .+\n$/)
  }
})

t.test('flags', async t => {
  const missing = await run([], fixture('ack.sip'))
  t.equal(missing.code, 64)
  t.match(missing.stderr, 'sipalg: E100: ')
  const badPublic = await run(['--public', '300.1.1.1'], fixture('ack.sip'))
  t.equal(badPublic.code, 64)
  t.match(badPublic.stderr, 'sipalg: E101: invalid value for --public: 300.1.1.1')
  t.equal((await run(['--public', '203.0.113.1', '--direction', 'sideways'], '')).code, 64)
  t.equal((await run(['--public', '203.0.113.1', '--inside', '10.0.0.0/33'], '')).code, 64)
  t.equal((await run(['--public', '203.0.113.1', '--media-ports', '30000-20000'], '')).code, 64)
  t.equal((await run(['--public', '203.0.113.1', '--bogus'], '')).code, 64)
  t.equal((await run(['--public'], '')).code, 64)
  const oneRange = await run(['--public', '203.0.113.1', '--media-ports', '30000-30002'], '')
  t.match(oneRange.stderr, 'sipalg: E101: invalid value for --media-ports: 30000-30002 (must hold at least two RTP/RTCP port pairs); e.g. --media-ports 20000-29999')
  const low = await run(['--public', '203.0.113.1', '--media-ports', '100-2000'], '')
  t.match(low.stderr, 'must lie within 1024-65535', 'the same range rule as the daemon\'s media_ports')
})

t.test('--inside narrows what is private; --media-ports picks the first even port', async t => {
  const outside = await run(['--public', '203.0.113.1', '--inside', '192.168.0.0/16', '--explain'], fixture('polycom-invite.sip'))
  t.equal(outside.code, 0)
  t.ok(outside.stdout.equals(fixture('polycom-invite.sip')), '10.x is not inside here: unchanged')
  t.match(outside.stderr, 'left alone: already-public')
  const odd = await run(['--public=203.0.113.1', '--media-ports=30001-30010', '--explain'], fixture('yealink-invite-rtcp-video.sip'))
  t.match(odd.stderr, 'm=audio: 11800 → 30002\n')
  t.match(odd.stderr, 'm=video: 11802 → 30004\n')
})

t.test('--rewrite-ice, --rewrite-from-to, --source', async t => {
  const ice = await run(['--public', '203.0.113.1', '--explain'], fixture('baresip-invite-ice.sip'))
  t.match(ice.stderr, 'left alone: ice')
  const iceOn = await run(['--public', '203.0.113.1', '--explain', '--rewrite-ice'], fixture('baresip-invite-ice.sip'))
  t.match(iceOn.stderr, 'm=audio: 10634 → 20000')
  const ft = await run(['--public', '203.0.113.1', '--explain', '--rewrite-from-to'], fixture('register-expires.sip'))
  t.notMatch(ft.stderr, 'From:', 'From names the registrar, not the phone')
  const other = await run(['--public', '203.0.113.1', '--explain', '--source', '10.0.1.99'], fixture('ack.sip'))
  t.match(other.stderr, 'left alone: refused (10.0.1.23 is another inside host')
})

t.test('inbound to the public address needs --source, and then restores the phone', async t => {
  const noSource = await run(['--public', '203.0.113.1', '--direction', 'inbound'], fixture('inbound-invite.sip'))
  t.equal(noSource.code, 64)
  t.match(noSource.stderr, /^sipalg: E100: the message names no inside address for the phone \(see "sipalg help rewrite"\); give --source/)
  t.equal(noSource.stdout.length, 0)
  const r = await run(['--public', '203.0.113.1', '--direction', 'inbound', '--source', '10.0.1.23', '--explain'], fixture('inbound-invite.sip'))
  t.equal(r.code, 0)
  t.match(r.stdout.toString(), 'INVITE sip:1001@10.0.1.23:5060 SIP/2.0\r\n')
  t.match(r.stderr, 'Request-URI: 203.0.113.1:5060 → 10.0.1.23:5060')
})

/** A fixture with header lines removed (Content-Length is unchanged: the body is untouched). */
const without = (name: string, ...headers: string[]): Buffer => {
  const text = fixture(name).toString('latin1')
  return Buffer.from(text.split('\r\n').filter(l => !headers.some(h => l.startsWith(`${h}:`))).join('\r\n'), 'latin1')
}

t.test('the phone, when --source is not given', async t => {
  await t.test('outbound request: the top Via', async t => {
    const r = await run(['--public', '203.0.113.1', '--explain'], fixture('yealink-invite-rtcp-video.sip'))
    t.equal(r.code, 0)
    t.match(r.stderr, 'Via: 10.0.1.23:5060 → 203.0.113.1:5060')
  })
  await t.test('outbound request without Via: the Contact host', async t => {
    const r = await run(['--public', '203.0.113.1', '--explain'], without('yealink-invite-rtcp-video.sip', 'Via'))
    t.equal(r.code, 0, r.stderr)
    t.match(r.stderr, 'Contact: 10.0.1.23:5060 → 203.0.113.1:5060')
    t.match(r.stderr, 'c=: 10.0.1.23 → 203.0.113.1', 'the SDP is the phone\'s too')
  })
  await t.test('outbound response: the Contact host, not the far end\'s top Via', async t => {
    const r = await run(['--public', '203.0.113.1', '--explain'], fixture('ok200-invite-sdp.sip'))
    t.equal(r.code, 0)
    t.match(r.stderr, 'Contact: 10.0.1.23:5060 → 203.0.113.1:5060')
    t.notMatch(r.stderr, 'left alone')
  })
  await t.test('outbound, neither Via nor Contact: asks for --source', async t => {
    const r = await run(['--public', '203.0.113.1'], without('yealink-invite-rtcp-video.sip', 'Via', 'Contact'))
    t.equal(r.code, 64)
    t.match(r.stderr, /^sipalg: E100: the message names no address for the phone .*give --source, e\.g\. --source 10\.0\.1\.23/)
    t.equal(r.stdout.length, 0)
    const given = await run(['--public', '203.0.113.1', '--source', '10.0.1.23', '--explain'], without('yealink-invite-rtcp-video.sip', 'Via', 'Contact'))
    t.equal(given.code, 0)
    t.match(given.stderr, 'm=audio: 11800 → 20000')
  })
  const inboundToPrivate = Buffer.from(fixture('inbound-invite.sip').toString('latin1')
    .replace('INVITE sip:1001@203.0.113.1:5060 SIP/2.0', 'INVITE sip:1001@10.0.1.23:5060 SIP/2.0'), 'latin1')
  await t.test('inbound request: the Request-URI host when it is inside', async t => {
    // A far end that kept the phone's private Contact (registered before sipalg ran) still names
    // the gateway in To: that is restored to the phone the Request-URI names.
    const r = await run(['--public', '203.0.113.1', '--direction', 'inbound', '--explain'], inboundToPrivate)
    t.equal(r.code, 0, r.stderr)
    t.match(r.stderr, 'To: 203.0.113.1:5060 → 10.0.1.23:5060')
  })
  await t.test('inbound request: the To host when the Request-URI is not inside', async t => {
    const toPrivate = Buffer.from(fixture('inbound-invite.sip').toString('latin1')
      .replace('To: <sip:1001@203.0.113.1:5060>', 'To: <sip:1001@10.0.1.23:5060>'), 'latin1')
    const r = await run(['--public', '203.0.113.1', '--direction', 'inbound', '--explain'], toPrivate)
    t.equal(r.code, 0, r.stderr)
    t.match(r.stderr, 'Request-URI: 203.0.113.1:5060 → 10.0.1.23:5060')
  })
  await t.test('inbound response: the top Via when it is inside', async t => {
    const response = Buffer.from(fixture('inbound-200-register.sip').toString('latin1')
      .replace('Via: SIP/2.0/UDP 203.0.113.1:5060;branch=z9hG4bK0f1e2d3c4b;rport=5060;received=203.0.113.1', 'Via: SIP/2.0/UDP 10.0.1.23:5060;branch=z9hG4bK0f1e2d3c4b')
      .replace('From: <sip:1001@203.0.113.9>', 'From: <sip:1001@203.0.113.1:5060>'), 'latin1')
    const r = await run(['--public', '203.0.113.1', '--direction', 'inbound', '--rewrite-from-to', '--explain'], response)
    t.equal(r.code, 0, r.stderr)
    t.match(r.stderr, 'From: 203.0.113.1:5060 → 10.0.1.23:5060')
    const publicVia = await run(['--public', '203.0.113.1', '--direction', 'inbound'], fixture('inbound-200-register.sip'))
    t.equal(publicVia.code, 64, 'its top Via is the public address: --source needed')
  })
})

t.test('CIDR helper', async t => {
  const c = parseCidr('10.0.1.0/24')!
  t.ok(c.contains('10.0.1.23'))
  t.notOk(c.contains('10.0.2.1'))
  t.notOk(c.contains('not an ip'))
  t.notOk(c.contains('10.0.1.256'))
  t.ok(parseCidr('0.0.0.0/0')!.contains('203.0.113.1'))
  t.ok(parseCidr('203.0.113.1')!.contains('203.0.113.1'), 'bare address is /32')
  t.notOk(parseCidr('203.0.113.1')!.contains('203.0.113.2'))
  t.ok(parseCidr('172.16.0.0/12')!.contains('172.31.255.255'))
  t.notOk(parseCidr('172.16.0.0/12')!.contains('172.32.0.0'))
  for (const bad of ['10.0.0.0/33', '10.0.0/8', '10.0.0.0/', 'a.b.c.d/8', '10.0.0.01/8', '', '10.0.0.0/8/8']) t.equal(parseCidr(bad), null, `"${bad}" rejected`)
})
