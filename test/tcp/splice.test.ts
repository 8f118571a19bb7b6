// The splice on loopback, no root: a plain listener stands in for the transparent one (the accepted
// socket's local address is the "original destination"), and plain net.connect for the addon's
// upstream leg. 127.0.0.2 is the inside phone, 127.0.0.3 the gateway's public address, 127.0.0.1
// the far end. The real Alg rewrites.
import t from 'tap'
import net, { type Socket } from 'node:net'
import { once } from 'node:events'
import { pino } from 'pino'
import { Alg } from '../../src/alg.js'
import { buildConfig } from '../../src/config.js'
import { TcpSplice, type SpliceLimits } from '../../src/tcp/splice.js'
import type { UpstreamOptions } from '../../src/netfilter/transparent.js'
import type { MapOp } from '../../src/media/mappings.js'
import { sdp } from '../dialog/harness.js'
import { postCarryingRegister } from './slipstream.js'

const PHONE = '127.0.0.2'; const PUB = '127.0.0.3'; const FAR = '127.0.0.1'
const crlf = (s: string): string => s.replace(/\n/g, '\r\n')
const sleep = async (ms: number): Promise<void> => await new Promise(resolve => setTimeout(resolve, ms))

function invite (port: number, callId = 'splice-1'): Buffer {
  const body = crlf(sdp(PHONE, 16000, ''))
  return Buffer.from(crlf(`INVITE sip:bob@${FAR};transport=tcp SIP/2.0
Via: SIP/2.0/TCP ${PHONE}:${port};branch=z9hG4bK-${callId};rport
Max-Forwards: 70
From: <sip:alice@${FAR}>;tag=a1
To: <sip:bob@${FAR}>
Call-ID: ${callId}
CSeq: 1 INVITE
Contact: <sip:alice@${PHONE}:${port};transport=tcp>
Content-Type: application/sdp
Content-Length: ${Buffer.byteLength(body)}

`) + body, 'latin1')
}

interface Lab {
  alg: Alg
  splice: TcpSplice
  /** map ops applied before each write, in order */
  applied: MapOp[]
  upstreams: UpstreamOptions[]
  /** the far end's accepted sockets, and what each received */
  farSockets: Socket[]
  received: () => string
  phone: () => Promise<Socket>
  gwPort: number
  close: () => Promise<void>
}

async function lab (opts: { limits?: Partial<SpliceLimits>, nonSip?: 'pass' | 'reset', farUp?: boolean } = {}): Promise<Lab> {
  const alg = new Alg(buildConfig([{ public: PUB, inside: [`${PHONE}/32`] }]), pino({ level: 'silent' }))
  const applied: MapOp[] = []
  const upstreams: UpstreamOptions[] = []
  const farSockets: Socket[] = []
  let farData = ''
  const far = net.createServer({ allowHalfOpen: true }, s => {
    farSockets.push(s)
    s.on('data', b => { farData += b.toString('latin1') })
    s.on('error', () => {})
  })
  far.listen(0, FAR)
  await once(far, 'listening')
  const farPort = (far.address() as net.AddressInfo).port
  if (opts.farUp === false) far.close()
  const splice = new TcpSplice({
    core: { processMessage: (b, leg) => alg.processMessage(b, leg), publicPort: p => alg.signalling.allocateAndInstall(p), counters: alg.counters },
    isInside: ip => ip === PHONE,
    publicIp: PUB,
    limits: { connections: 10, connectionsPerHost: 5, idleMs: 60_000, connectTimeoutMs: 1000, maxHeaderBytes: 16 * 1024, maxBodyBytes: 64 * 1024, ...opts.limits },
    nonSip: opts.nonSip ?? 'pass',
    beforeWrite: () => { if (alg.maps.mustPrecedeVerdict) applied.push(...alg.maps.takePending()) },
    connect: o => {
      upstreams.push(o)
      // The stand-in for the original destination's port: the far server's.
      return net.connect({ host: o.to.ip, port: farPort, localAddress: o.from?.ip, allowHalfOpen: true })
    },
    log: pino({ level: 'silent' })
  })
  const gw = net.createServer({ allowHalfOpen: true }, s => { splice.accept(s) })
  gw.listen(0, FAR)
  await once(gw, 'listening')
  const gwPort = (gw.address() as net.AddressInfo).port
  const phones: Socket[] = []
  return {
    alg,
    splice,
    applied,
    upstreams,
    farSockets,
    received: () => farData,
    gwPort,
    phone: async () => {
      const s = net.connect({ host: FAR, port: gwPort, localAddress: PHONE, allowHalfOpen: true })
      s.on('error', () => {})
      phones.push(s)
      await once(s, 'connect')
      return s
    },
    close: async () => {
      splice.closeAll()
      for (const s of [...phones, ...farSockets]) s.destroy()
      gw.close()
      if (opts.farUp !== false) far.close()
      await sleep(20)
    }
  }
}

async function until (what: string, cond: () => boolean, ms = 2000): Promise<void> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await sleep(10)
  }
}

t.test('an INVITE cut inside the Via host and inside the SDP c= address arrives whole and rewritten, mappings first', async t => {
  const l = await lab()
  t.teardown(l.close)
  const phone = await l.phone()
  const msg = invite(phone.localPort ?? 0)
  const text = msg.toString('latin1')
  const cut1 = text.indexOf(`${PHONE}:`) + 5
  const cut2 = text.indexOf(`c=IN IP4 ${PHONE}`) + 13
  phone.write(msg.subarray(0, cut1))
  await sleep(50)
  phone.write(msg.subarray(cut1, cut2))
  await sleep(50)
  phone.write(Buffer.concat([msg.subarray(cut2), Buffer.from('\r\n\r\n')]))
  await until('the INVITE at the far end', () => l.received().endsWith('\r\n\r\n') && l.received().includes('a=rtpmap:0 PCMU'))
  const got = l.received()
  t.match(got, `Via: SIP/2.0/TCP ${PUB}:${phone.localPort}`)
  t.match(got, `Contact: <sip:alice@${PUB}:${phone.localPort};transport=tcp>`)
  t.match(got, `c=IN IP4 ${PUB}`)
  t.notMatch(got, PHONE, 'no inside address reaches the far end')
  const cl = Number(/Content-Length: (\d+)/.exec(got)?.[1])
  const bodyStart = got.indexOf('\r\n\r\n') + 4
  t.equal(got.length - bodyStart - 4, cl, 'Content-Length is the rewritten body (then the keep-alive)')
  t.ok(l.applied.some(o => o.op === 'add' && o.map === 'src_nat' && o.key.port === 16000), 'the media mapping was applied before the write')
  t.same(l.upstreams[0].from, { ip: PUB, port: phone.localPort }, 'the upstream leg binds the public address and the phone\'s public port')
  t.equal(l.splice.status()[0].messagesOut, 1)
  t.equal(l.alg.counters.snapshot().tcp_keepalives, 1)
})

t.test('responses come back rewritten; ACK + OPTIONS in one segment are two messages; FIN crosses both ways', async t => {
  const l = await lab()
  t.teardown(l.close)
  const phone = await l.phone()
  const port = phone.localPort ?? 0
  phone.write(invite(port))
  await until('far leg', () => l.farSockets.length === 1 && l.received().includes('a=rtpmap:0 PCMU'))
  const body = crlf(sdp(FAR, 30000, ''))
  const ok = crlf(`SIP/2.0 200 OK
Via: SIP/2.0/TCP ${PUB}:${port};branch=z9hG4bK-splice-1;rport=${port};received=${PUB}
From: <sip:alice@${FAR}>;tag=a1
To: <sip:bob@${FAR}>;tag=b1
Call-ID: splice-1
CSeq: 1 INVITE
Contact: <sip:bob@${FAR}:5060;transport=tcp>
Content-Type: application/sdp
Content-Length: ${Buffer.byteLength(body)}

`) + body
  let toPhone = ''
  phone.on('data', b => { toPhone += b.toString('latin1') })
  l.farSockets[0].write(ok)
  await until('the 200 at the phone', () => toPhone.includes('a=rtpmap:0 PCMU'))
  t.match(toPhone, `Via: SIP/2.0/TCP ${PHONE}:${port}`, 'the Via the phone wrote, back')
  const inDialog = (m: string, n: number): string => crlf(`${m} sip:bob@${FAR}:5060;transport=tcp SIP/2.0
Via: SIP/2.0/TCP ${PHONE}:${port};branch=z9hG4bK-${m}
From: <sip:alice@${FAR}>;tag=a1
To: <sip:bob@${FAR}>;tag=b1
Call-ID: splice-1
CSeq: ${n} ${m}
Content-Length: 0

`)
  phone.write(inDialog('ACK', 1) + inDialog('OPTIONS', 2))
  await until('ACK and OPTIONS', () => l.received().includes('OPTIONS sip:'))
  t.equal(l.splice.status()[0].messagesOut, 3)
  t.equal(l.splice.status()[0].messagesIn, 1)
  t.match(l.received(), `Via: SIP/2.0/TCP ${PUB}:${port};branch=z9hG4bK-OPTIONS`)
  phone.end()
  await once(l.farSockets[0], 'end')
  t.pass('the phone\'s FIN reached the far end')
  const phoneEnded = once(phone, 'end')
  l.farSockets[0].end()
  await phoneEnded
  await until('the connection forgotten', () => l.splice.size === 0)
  t.pass('the far end\'s FIN reached the phone, and the splice let go')
})

t.test('an HTTP POST carrying a REGISTER is spliced unparsed and opens nothing; with reset it is refused', async t => {
  const post = (): string => postCarryingRegister(PHONE, FAR, 5060)
  const l = await lab()
  t.teardown(l.close)
  const phone = await l.phone()
  phone.write(post())
  await until('the POST at the far end', () => l.received().includes('Content-Length: 0'))
  t.equal(l.received(), post(), 'byte for byte')
  const c = l.alg.counters.snapshot()
  t.equal(c.tcp_not_sip, 1)
  t.equal(c.tcp_messages_outbound, undefined, 'no SIP message seen')
  t.equal(l.alg.maps.pendingCount, 0, 'no mapping asked for by the REGISTER')
  t.equal(l.upstreams[0].from?.port, 0, 'the far leg takes any port')
  t.equal(l.alg.signalling.lookupPrivate({ ip: PHONE, port: phone.localPort ?? 0 }), null, 'and no signalling port of the phone')
  t.equal(l.splice.status()[0].notSip, true)
  await l.close()

  const r = await lab({ nonSip: 'reset' })
  t.teardown(r.close)
  const p2 = await r.phone()
  p2.write(post())
  const [err] = await once(p2, 'error') as [NodeJS.ErrnoException]
  t.equal(err.code, 'ECONNRESET')
  t.equal(r.alg.counters.snapshot().tcp_refused_not_sip, 1)
})

t.test('the far leg waits for the first message: keep-alives before it are held, then sent first', async t => {
  const l = await lab()
  t.teardown(l.close)
  const phone = await l.phone()
  phone.write('\r\n\r\n')
  await sleep(50)
  t.same(l.upstreams, [], 'keep-alives alone open nothing')
  phone.write(invite(phone.localPort ?? 0, 'after-ping'))
  await until('the INVITE', () => l.received().includes('Call-ID: after-ping'))
  t.ok(l.received().startsWith('\r\n\r\nINVITE '), 'the keep-alive went first, untouched')
  t.same(l.upstreams[0].from, { ip: PUB, port: l.alg.signalling.lookupPrivate({ ip: PHONE, port: phone.localPort ?? 0 }) }, 'the far leg binds the phone\'s public signalling port')
})

t.test('a declared Content-Length of 10 MB closes both legs, counted; the splice keeps serving', async t => {
  const l = await lab()
  t.teardown(l.close)
  const phone = await l.phone()
  const big = invite(phone.localPort ?? 0).toString('latin1').replace(/Content-Length: \d+/, 'Content-Length: 10485760')
  phone.write(big)
  const [err] = await once(phone, 'error') as [NodeJS.ErrnoException]
  t.equal(err.code, 'ECONNRESET', 'the phone leg is reset')
  await until('both legs gone', () => l.splice.size === 0)
  t.equal(l.alg.counters.snapshot().tcp_framing_errors, 1)
  t.notMatch(l.received(), 'INVITE', 'nothing of it reached the far end')
  t.same([l.upstreams.length, l.farSockets.length], [0, 0], 'no far leg was opened for it')
  const again = await l.phone()
  again.write(invite(again.localPort ?? 0, 'after'))
  await until('the next INVITE', () => l.received().includes('Call-ID: after'))
})

t.test('limits per host and in total reset the connection; an unreachable far end resets the phone', async t => {
  const l = await lab({ limits: { connectionsPerHost: 2 } })
  t.teardown(l.close)
  const a = await l.phone()
  const b = await l.phone()
  await until('two live', () => l.splice.size === 2)
  const c = net.connect({ host: FAR, port: l.gwPort, localAddress: PHONE })
  const [err] = await once(c, 'error') as [NodeJS.ErrnoException]
  t.equal(err.code, 'ECONNRESET', 'the third connection from the host is reset')
  t.equal(l.alg.counters.snapshot().tcp_refused_limit_host, 1)
  t.same([l.upstreams.length, l.farSockets.length], [0, 0], 'connections that said nothing opened nothing at the far end')
  a.end(); b.end()
  await until('forgotten', () => l.splice.size === 0)
  await l.close()

  const down = await lab({ farUp: false })
  t.teardown(down.close)
  const p = await down.phone()
  p.write(invite(p.localPort ?? 0))
  const [e2] = await once(p, 'error') as [NodeJS.ErrnoException]
  t.equal(e2.code, 'ECONNRESET', 'the phone sees a reset, not a silent connection')
  t.equal(down.alg.counters.snapshot().tcp_upstream_failed, 1)
})

t.test('an idle connection is closed', async t => {
  const l = await lab({ limits: { idleMs: 150 } })
  t.teardown(l.close)
  const p = await l.phone()
  const [err] = await once(p, 'error') as [NodeJS.ErrnoException]
  t.equal(err.code, 'ECONNRESET')
  t.equal(l.alg.counters.snapshot().tcp_idle_closed, 1)
})

t.test('an inbound connection: the leg to the phone is transparent from the far end, messages both ways', async t => {
  const alg = new Alg(buildConfig([{ public: PUB, inside: [`${PHONE}/32`] }]), pino({ level: 'silent' }))
  let atPhone = ''
  const phoneServer = net.createServer({ allowHalfOpen: true }, s => {
    s.on('error', () => {})
    s.on('data', b => {
      atPhone += b.toString('latin1')
      if (atPhone.includes('\r\n\r\n')) s.write(crlf('SIP/2.0 200 OK\nVia: SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bK-o\nCall-ID: in-1\nCSeq: 1 OPTIONS\nContent-Length: 0\n\n'))
    })
  })
  phoneServer.listen(0, PHONE)
  await once(phoneServer, 'listening')
  const upstreams: UpstreamOptions[] = []
  const splice = new TcpSplice({
    core: { processMessage: (b, leg) => alg.processMessage(b, leg), publicPort: p => alg.signalling.allocateAndInstall(p), counters: alg.counters },
    isInside: ip => ip === PHONE,
    publicIp: PUB,
    limits: { connections: 10, connectionsPerHost: 5, idleMs: 60_000, connectTimeoutMs: 1000, maxHeaderBytes: 16 * 1024, maxBodyBytes: 64 * 1024 },
    nonSip: 'pass',
    beforeWrite: () => {},
    connect: o => { upstreams.push(o); return net.connect({ host: PHONE, port: (phoneServer.address() as net.AddressInfo).port, allowHalfOpen: true }) },
    log: pino({ level: 'silent' })
  })
  // The "diverted" connection arrives at the phone's address: as after the registration's DNAT.
  const gw = net.createServer({ allowHalfOpen: true }, s => { splice.accept(s) })
  gw.listen(0, PHONE)
  await once(gw, 'listening')
  const far = net.connect({ host: PHONE, port: (gw.address() as net.AddressInfo).port, localAddress: FAR })
  far.on('error', () => {})
  t.teardown(() => { far.destroy(); splice.closeAll(); gw.close(); phoneServer.close() })
  await once(far, 'connect')
  let atFar = ''
  far.on('data', b => { atFar += b.toString('latin1') })
  far.write(crlf(`OPTIONS sip:alice@${PUB}:5060;transport=tcp SIP/2.0\nVia: SIP/2.0/TCP ${FAR}:5060;branch=z9hG4bK-o\nCall-ID: in-1\nCSeq: 1 OPTIONS\nContent-Length: 0\n\n`))
  await until('the answer at the far end', () => atFar.includes('200 OK'))
  t.match(atPhone, /^OPTIONS sip:alice@/, 'the request reached the phone')
  t.equal(upstreams[0].transparent, true, 'the leg to the phone is transparent')
  t.equal(upstreams[0].from?.ip, FAR, 'from the far end\'s own address')
  const st = splice.status()[0]
  t.equal(st.direction, 'inbound')
  t.equal(st.phone.split(':')[0], PHONE)
  t.same([st.messagesIn, st.messagesOut], [1, 1])
})

t.test('an IPv6 phone calling out: the far leg is transparent from the phone\'s own address, the bytes as they came, pinholes first', async t => {
  // Loopback has one IPv6 address: the accepted socket is told the addresses a divert would have given it.
  const A6 = '2001:db8:1::23'; const B6 = '2001:db8:2::9'
  const alg = new Alg(buildConfig([{ public: PUB, inside: ['2001:db8:1::/64'], firewall: true }]), pino({ level: 'silent' }))
  let atFar = ''
  const far = net.createServer({ allowHalfOpen: true }, s => {
    s.on('error', () => {})
    s.on('data', b => { atFar += b.toString('latin1') })
  })
  far.listen(0, '::1')
  await once(far, 'listening')
  const upstreams: UpstreamOptions[] = []
  const applied: MapOp[] = []
  const splice = new TcpSplice({
    core: { processMessage: (b, leg) => alg.processMessage(b, leg), publicPort: () => { t.fail('an IPv6 phone has no public port'); return null }, counters: alg.counters },
    isInside: ip => ip.startsWith('2001:db8:1:'),
    publicIp: PUB,
    limits: { connections: 10, connectionsPerHost: 5, idleMs: 60_000, connectTimeoutMs: 1000, maxHeaderBytes: 16 * 1024, maxBodyBytes: 64 * 1024 },
    nonSip: 'pass',
    beforeWrite: () => { if (alg.maps.mustPrecedeVerdict) applied.push(...alg.maps.takePending()) },
    connect: o => { upstreams.push(o); return net.connect({ host: '::1', port: (far.address() as net.AddressInfo).port, allowHalfOpen: true }) },
    log: pino({ level: 'silent' })
  })
  const gw = net.createServer({ allowHalfOpen: true }, s => {
    Object.defineProperty(s, 'remoteAddress', { value: A6 })
    Object.defineProperty(s, 'localAddress', { value: B6 })
    Object.defineProperty(s, 'localPort', { value: 5060 })
    splice.accept(s)
  })
  gw.listen(0, '::1')
  await once(gw, 'listening')
  const phone = net.connect({ host: '::1', port: (gw.address() as net.AddressInfo).port })
  phone.on('error', () => {})
  t.teardown(() => { phone.destroy(); splice.closeAll(); gw.close(); far.close() })
  await once(phone, 'connect')
  const body = crlf(`v=0\no=- 1 1 IN IP6 ${A6}\ns=-\nc=IN IP6 ${A6}\nt=0 0\nm=audio 16000 RTP/AVP 0\n`)
  const inv = crlf(`INVITE sip:bob@[${B6}];transport=tcp SIP/2.0\nVia: SIP/2.0/TCP [${A6}]:5060;branch=z9hG4bK-v6t\nMax-Forwards: 70\nFrom: <sip:alice@[${A6}]>;tag=a1\nTo: <sip:bob@[${B6}]>\nCall-ID: tcp6-1\nCSeq: 1 INVITE\nContact: <sip:alice@[${A6}]:5060;transport=tcp>\nContent-Type: application/sdp\nContent-Length: ${Buffer.byteLength(body)}\n\n`) + body
  phone.write(inv)
  await until('the INVITE at the far end', () => atFar.length >= inv.length)
  t.equal(atFar, inv, 'byte for byte: IPv6 is never rewritten')
  t.same(upstreams, [{ to: { ip: B6, port: 5060 }, from: { ip: A6, port: 0 }, transparent: true, connectTimeoutMs: 1000 }], 'transparent from the phone\'s own address')
  t.same(applied.map(o => `${o.op} ${o.map} ${o.key.ip ?? ''} . ${o.key.port}`), [`add media6 ${A6} . 16000`, `add media6 ${A6} . 16001`], 'the phone\'s media elements went in before the write')
  t.equal(alg.calls.size, 1, 'the call is tracked')
  t.match(alg.counters.snapshot(), { tcp_messages_outbound: 1, ipv6_messages_outbound: 1 })
  t.equal(alg.counters.snapshot().rewritten, undefined)
  t.equal(alg.ports.inUse, 0, 'no IPv4 public port for an IPv6 call')
})
