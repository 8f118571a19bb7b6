// SIP over TCP (issue 11), FORWARD policy DROP, with a raw TCP client in phone A's namespace and a
// raw server at B (test/e2e/fixtures/tcp-peer.mjs): an INVITE cut into three segments 150 ms apart
// (inside the top Via host and inside the SDP c= address) and ACK + OPTIONS in one segment; an HTTP
// POST carrying a REGISTER opens nothing; a declared Content-Length of 10 MB closes both legs and
// sipalg keeps running.
import t from 'tap'
import { join } from 'node:path'
import { Lab } from '../lab/lab.js'
import { startSipalg, ROOT } from '../lab/sipalg.js'
import { waitUdpListening } from '../lab/sip.js'
import { leaked } from './flows.js'
import { postCarryingRegister } from '../tcp/slipstream.js'

const PEER = join(ROOT, 'test', 'e2e', 'fixtures', 'tcp-peer.mjs')
const A = '10.0.1.23'; const B = '203.0.113.9'
const crlf = (s: string): string => s.replace(/\n/g, '\r\n')
const b64 = (s: string): string => Buffer.from(s, 'latin1').toString('base64')

/** A one-stream G.711 SDP body. */
const sdpOf = (user: string, ip: string, port: number): string => crlf(`v=0
o=${user} 1 1 IN IP4 ${ip}
s=-
c=IN IP4 ${ip}
t=0 0
m=audio ${port} RTP/AVP 8
a=rtpmap:8 PCMA/8000
`)

function invite (port: number): string {
  const body = sdpOf('alice', A, 16000)
  return crlf(`INVITE sip:bob@${B}:5060;transport=tcp SIP/2.0
Via: SIP/2.0/TCP ${A}:${port};branch=z9hG4bK-cut1;rport
Max-Forwards: 70
From: <sip:alice@${B}>;tag=a1
To: <sip:bob@${B}>
Call-ID: tcp-cut-${port}
CSeq: 1 INVITE
Contact: <sip:alice@${A}:${port};transport=tcp>
Content-Type: application/sdp
Content-Length: ${body.length}

`) + body
}

const inDialog = (method: string, cseq: number, port: number): string => crlf(`${method} sip:bob@${B}:5060;transport=tcp SIP/2.0
Via: SIP/2.0/TCP ${A}:${port};branch=z9hG4bK-${method}
Max-Forwards: 70
From: <sip:alice@${B}>;tag=a1
To: <sip:bob@${B}>;tag=b1
Call-ID: tcp-cut-${port}
CSeq: ${cseq} ${method}
Content-Length: 0

`)

t.test('SIP/TCP streams through the splice', async t => {
  const lab = await Lab.up({ forwardPolicy: 'drop' })
  t.teardown(async () => { await lab.down() })
  const alg = await startSipalg(lab)
  t.teardown(async () => { await alg.stop() })
  const counters = async (): Promise<Record<string, number>> => (await alg.status()).counters

  /** B listens, A sends the chunks; what B got and how A's connection ended. */
  const exchange = async (localPort: number, gapMs: number, chunks: string[], reply?: string): Promise<{ got: string, connections: number, outcome: string, back: string }> => {
    const server = lab.spawn('b', 'node', [PEER, 'server', B, '5060', String(2000 + gapMs * chunks.length), ...(reply === undefined ? [] : [b64(reply)])])
    let out = ''
    server.stdout?.on('data', (c: Buffer) => { out += c.toString() })
    const exited = new Promise(resolve => server.once('exit', resolve))
    await waitUdpListening(lab, 'b', B, 5060, 'tcp')
    const client = JSON.parse(await lab.sh('a', 'node', [PEER, 'client', B, '5060', A, String(localPort), String(gapMs), ...chunks.map(b64)])) as { outcome: string, got: string }
    await exited
    return { ...(JSON.parse(out) as { got: string, connections: number }), outcome: client.outcome, back: client.got }
  }

  await t.test('an INVITE in three segments cut inside the Via host and the c= address; ACK + OPTIONS in one', async t => {
    const inv = invite(5062)
    const cut1 = inv.indexOf(`${A}:5062`) + 4
    const cut2 = inv.indexOf(`c=IN IP4 ${A}`) + 'c=IN IP4 10.0'.length
    const r = await exchange(5062, 150, [inv.slice(0, cut1), inv.slice(cut1, cut2), inv.slice(cut2), inDialog('ACK', 1, 5062) + inDialog('OPTIONS', 2, 5062)])
    t.equal(r.outcome, 'open', 'the phone\'s connection stayed up')
    const msgs = r.got.split(/(?=^(?:INVITE|ACK|OPTIONS) )/m)
    t.same(msgs.map(m => m.split(' ')[0]), ['INVITE', 'ACK', 'OPTIONS'], 'three whole messages, in order')
    t.match(msgs[0], /^Via: SIP\/2\.0\/TCP 203\.0\.113\.1:5062;branch=z9hG4bK-cut1/m)
    t.match(msgs[0], /^c=IN IP4 203\.0\.113\.1\r$/m)
    t.match(msgs[0], /^Contact: <sip:alice@203\.0\.113\.1:5062;transport=tcp>/m)
    for (const m of msgs) t.same(leaked(m), [], `no private address: ${m.split('\r\n')[0]}`)
    const body = msgs[0].slice(msgs[0].indexOf('\r\n\r\n') + 4)
    t.equal(Number(/^Content-Length: (\d+)/m.exec(msgs[0])?.[1]), body.length, 'Content-Length matches the rewritten body')
    const c = await counters()
    t.equal(c.tcp_messages_outbound, 3)
  })

  await t.test('an HTTP POST carrying a REGISTER is spliced untouched and opens nothing', async t => {
    const post = postCarryingRegister(A, B, 5064)
    const before = { peer: await alg.elements('peer_dnat'), any: await alg.elements('any_dnat') }
    const r = await exchange(5064, 100, [post.slice(0, 30), post.slice(30)])
    t.equal(r.got, post, 'byte for byte, private address and all')
    const c = await counters()
    t.equal(c.tcp_not_sip, 1)
    t.equal(c.tcp_messages_outbound, 3, 'no new SIP message seen')
    t.same(await alg.elements('peer_dnat'), before.peer, 'no new DNAT from B (the first test\'s ringing call keeps its own)')
    t.same(await alg.elements('any_dnat'), before.any, 'no new inbound mapping')
    t.equal((await alg.status()).registrations.length, 0)
  })

  await t.test('a declared Content-Length of 10 MB resets both legs; sipalg keeps serving', async t => {
    const big = invite(5066).replace(/Content-Length: \d+/, 'Content-Length: 10485760')
    const r = await exchange(5066, 100, [big, 'x'.repeat(1000)])
    t.equal(r.outcome, 'ECONNRESET', 'the phone\'s leg is reset')
    t.notMatch(r.got, /INVITE/, 'nothing of it reached B')
    const c = await counters()
    t.equal(c.tcp_framing_errors, 1)
    t.match(alg.log(), /"code":"E316"/, 'logged with its catalogue code')
    const again = await exchange(5068, 100, [invite(5068)])
    t.match(again.got, /^INVITE sip:bob@203\.0\.113\.9:5060;transport=tcp SIP\/2\.0/, 'the next connection is spliced as before')
    t.equal(alg.child.exitCode, null, 'sipalg still running')
  })

  await t.test('the registrar reuses the registration connection: its 200 and then an INVITE reach A rewritten', async t => {
    const register = crlf(`REGISTER sip:${B} SIP/2.0
Via: SIP/2.0/TCP ${A}:5070;branch=z9hG4bK-reuse
Max-Forwards: 70
From: <sip:alice@${B}>;tag=r1
To: <sip:alice@${B}>
Call-ID: reuse-1
CSeq: 1 REGISTER
Contact: <sip:alice@${A}:5070;transport=tcp>
Expires: 120
Content-Length: 0

`)
    const sdpB = sdpOf('bob', B, 26000)
    const reply = crlf(`SIP/2.0 200 OK
Via: SIP/2.0/TCP 203.0.113.1:5070;branch=z9hG4bK-reuse;received=203.0.113.1
From: <sip:alice@${B}>;tag=r1
To: <sip:alice@${B}>;tag=reg
Call-ID: reuse-1
CSeq: 1 REGISTER
Contact: <sip:alice@203.0.113.1:5070;transport=tcp>;expires=60
Content-Length: 0

INVITE sip:alice@203.0.113.1:5070;transport=tcp SIP/2.0
Via: SIP/2.0/TCP ${B}:5060;branch=z9hG4bK-in1
Max-Forwards: 70
From: <sip:bob@${B}>;tag=b9
To: <sip:alice@${B}>
Call-ID: reuse-call-1
CSeq: 1 INVITE
Contact: <sip:bob@${B}:5060;transport=tcp>
Content-Type: application/sdp
Content-Length: ${sdpB.length}

`) + sdpB
    const r = await exchange(5070, 300, [register], reply)
    t.match(r.back, /^SIP\/2\.0 200 OK\r\nVia: SIP\/2\.0\/TCP 10\.0\.1\.23:5070;/, 'the 200 names the phone\'s own Via again')
    t.match(r.back, /^INVITE sip:alice@10\.0\.1\.23:5070;transport=tcp SIP\/2\.0\r$/m, 'the INVITE on the same connection reaches A, Request-URI restored')
    const regs = (await alg.status()).registrations as Array<{ phone: string }>
    t.ok(regs.some(x => x.phone === '10.0.1.23:5070'), `the registration is tracked (${JSON.stringify(regs)})`)
    t.equal((await counters()).tcp_messages_inbound, 2, 'the 200 and the INVITE went through the ALG')
  })
})
