// A minimal SIP phone for the lab, IPv4 or IPv6 (sipp's IPv6 support needs IPv6 pcaps for its RTP):
// one call as caller (uac) or callee (uas), RTP (UDP) both ways at 20 ms, counted per source. SIP
// over UDP, or over TCP with a last argument `tcp` (the caller connects from an ephemeral port, the
// callee listens on 5060 and answers on the caller's connection).
// Prints one JSON line: { ok, rtpIn, rtpOut, sources, farMedia, sipFrom, error? }; sipFrom is the
// address the first SIP message came from. Every wait is bounded.
//
//   node udp-phone.mjs uac LOCAL_IP MEDIA_PORT FAR_IP [DURATION_MS] [tcp]   (calls FAR_IP:5060, sends BYE)
//   node udp-phone.mjs uas LOCAL_IP MEDIA_PORT [tcp]                        (answers, waits for the BYE)
import dgram from 'node:dgram'
import net from 'node:net'

const args = process.argv.slice(2)
const tcp = args.at(-1) === 'tcp'
if (tcp) args.pop()
const [role, localIp, mediaPortText, farIp, durationText] = args
const mediaPort = Number(mediaPortText)
const durationMs = Number(durationText ?? 2000)
const v6 = localIp.includes(':')
const host = ip => (ip.includes(':') ? `[${ip}]` : ip)
const family = v6 ? 'udp6' : 'udp4'
const ipType = v6 ? 'IP6' : 'IP4'
const media = dgram.createSocket(family)
const sources = {}
let rtpIn = 0
let rtpOut = 0
let farMedia = null
let sipFrom = null
let rtpTimer = null

/**
 * SIP over UDP or TCP: `listen(cb)` binds port 5060 (TCP: listens) and calls cb once ready, then
 * `onMessage(text, reply)` for each message; `send` goes to FAR_IP:5060 (TCP: on the caller's
 * connection, a new one once it was closed or refused), `reply` back where the message came from;
 * `resend()` says whether sending again helps (UDP: always; TCP: only when the connection is gone,
 * e.g. the callee was not listening yet).
 */
const udpSignalling = () => {
  const sock = dgram.createSocket(family)
  let handler = () => {}
  sock.on('message', (raw, r) => { sipFrom ??= r.address; handler(raw.toString('latin1'), bytes => sock.send(bytes, r.port, r.address)) })
  return {
    resend: () => true,
    listen: cb => sock.bind(5060, localIp, cb),
    onMessage: h => { handler = h },
    send: bytes => sock.send(bytes, 5060, farIp),
    close: () => sock.close()
  }
}

const tcpSignalling = () => {
  let handler = () => {}
  let conn = null
  const server = net.createServer(s => { wire(s) })
  /** Messages cut out of the stream by their Content-Length. */
  const wire = s => {
    let buf = Buffer.alloc(0)
    s.on('error', () => {})
    s.on('data', d => {
      sipFrom ??= s.remoteAddress
      buf = Buffer.concat([buf, d])
      for (;;) {
        const end = buf.indexOf('\r\n\r\n')
        if (end < 0) return
        const head = buf.subarray(0, end).toString('latin1')
        const total = end + 4 + Number(/^Content-Length:\s*(\d+)/mi.exec(head)?.[1] ?? 0)
        if (buf.length < total) return
        const text = buf.subarray(0, total).toString('latin1')
        buf = buf.subarray(total)
        handler(text, bytes => s.write(bytes))
      }
    })
  }
  return {
    resend: () => conn === null,
    listen: cb => (role === 'uas' ? server.listen(5060, localIp, cb) : cb()),
    onMessage: h => { handler = h },
    send: bytes => {
      if (conn === null) {
        const c = net.connect({ host: farIp, port: 5060, localAddress: localIp })
        c.on('close', () => { if (conn === c) conn = null })
        conn = c
        wire(c)
      }
      conn.write(bytes)
    },
    close: () => { conn?.destroy(); server.close() }
  }
}
const sip = tcp ? tcpSignalling() : udpSignalling()

const finish = (ok, error) => {
  clearInterval(rtpTimer)
  process.stdout.write(JSON.stringify({ ok, rtpIn, rtpOut, sources, farMedia, sipFrom, ...(error === undefined ? {} : { error }) }) + '\n')
  sip.close()
  media.close()
  process.exit(0)
}
setTimeout(() => finish(false, 'timeout'), durationMs + 15000).unref()

const sdp = () => ['v=0', `o=- 1 1 IN ${ipType} ${localIp}`, 's=-', `c=IN ${ipType} ${localIp}`, 't=0 0',
  `m=audio ${mediaPort} RTP/AVP 0`, 'a=rtpmap:0 PCMU/8000', ''].join('\r\n')

const message = (start, headers, body = '') =>
  Buffer.from(`${start}\r\n${headers.join('\r\n')}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`)

/** The far end's media from an SDP body: c= address and m=audio port. */
const parseSdp = text => {
  const c = /^c=IN IP[46] (\S+)/m.exec(text)
  const m = /^m=audio (\d+)/m.exec(text)
  return c === null || m === null ? null : { ip: c[1], port: Number(m[1]) }
}

const startRtp = () => {
  let seq = 0
  rtpTimer = setInterval(() => {
    if (farMedia === null) return
    const pkt = Buffer.alloc(172)
    pkt[0] = 0x80
    pkt.writeUInt16BE(seq++ & 0xffff, 2)
    pkt.writeUInt32BE(seq * 160, 4)
    pkt.writeUInt32BE(0x5a1a6, 8)
    media.send(pkt, farMedia.port, farMedia.ip, () => { rtpOut++ })
  }, 20)
}

media.on('message', (_m, r) => { rtpIn++; const k = `${r.address}.${r.port}`; sources[k] = (sources[k] ?? 0) + 1 })

const header = (text, name) => (new RegExp(`^${name}:\\s*(.*)$`, 'mi').exec(text) ?? [])[1]?.trim()

/** Sends to the far end until `done()` is true, every 500 ms while sending again helps, at most 8 times. */
const retransmit = (bytes, done) => {
  let n = 0
  const send = () => {
    if (done() || n >= 8) return
    if (n++ === 0 || sip.resend()) sip.send(bytes)
    setTimeout(send, 500)
  }
  send()
}

const uac = () => {
  const callId = `ipv6-lab-${process.pid}@${host(localIp)}`
  const via = `Via: SIP/2.0/${tcp ? 'TCP' : 'UDP'} ${host(localIp)}:5060;branch=z9hG4bK-${process.pid}`
  const from = `From: <sip:a@${host(localIp)}>;tag=uac${process.pid}`
  let to = `To: <sip:b@${host(farIp)}>`
  let answered = false
  let byeDone = false
  const invite = message(`INVITE sip:b@${host(farIp)}:5060 SIP/2.0`, [via, 'Max-Forwards: 70', from, to, `Call-ID: ${callId}`, 'CSeq: 1 INVITE',
    `Contact: <sip:a@${host(localIp)}:5060${tcp ? ';transport=tcp' : ''}>`, 'Content-Type: application/sdp'], sdp())
  sip.onMessage(text => {
    if (/^SIP\/2\.0 200/.test(text) && /^CSeq:\s*1 INVITE/mi.test(text) && !answered) {
      answered = true
      to = `To: ${header(text, 'To')}`
      farMedia = parseSdp(text)
      sip.send(message(`ACK sip:b@${host(farIp)}:5060 SIP/2.0`, [via.replace(/branch=\S+/, 'branch=z9hG4bK-ack'), 'Max-Forwards: 70', from, to, `Call-ID: ${callId}`, 'CSeq: 1 ACK']))
      startRtp()
      setTimeout(() => {
        clearInterval(rtpTimer)
        // RTP still in flight lands before the BYE goes.
        setTimeout(() => retransmit(message(`BYE sip:b@${host(farIp)}:5060 SIP/2.0`, [via.replace(/branch=\S+/, 'branch=z9hG4bK-bye'), 'Max-Forwards: 70', from, to, `Call-ID: ${callId}`, 'CSeq: 2 BYE']), () => byeDone), 200)
      }, durationMs)
    } else if (/^SIP\/2\.0 200/.test(text) && /^CSeq:\s*2 BYE/mi.test(text)) {
      byeDone = true
      finish(true)
    }
  })
  retransmit(invite, () => answered)
}

const uas = () => {
  let answer = null
  sip.onMessage((text, reply) => {
    const common = [`Via: ${header(text, 'Via')}`, `From: ${header(text, 'From')}`, `Call-ID: ${header(text, 'Call-ID')}`, `CSeq: ${header(text, 'CSeq')}`]
    if (/^INVITE /.test(text)) {
      farMedia = parseSdp(text)
      answer ??= message('SIP/2.0 200 OK', [...common, `To: ${header(text, 'To')};tag=uas${process.pid}`, `Contact: <sip:b@${host(localIp)}:5060${tcp ? ';transport=tcp' : ''}>`, 'Content-Type: application/sdp'], sdp())
      reply(answer)
    } else if (/^ACK /.test(text)) {
      if (rtpTimer === null) startRtp()
    } else if (/^BYE /.test(text)) {
      reply(message('SIP/2.0 200 OK', [...common, `To: ${header(text, 'To')}`]))
      clearInterval(rtpTimer)
      setTimeout(() => finish(true), 300)
    }
  })
}

media.bind(mediaPort, localIp, () => {
  sip.listen(() => {
    if (role === 'uac') uac(); else if (role === 'uas') { uas(); process.stdout.write('') } else finish(false, `unknown role ${role}`)
  })
})
