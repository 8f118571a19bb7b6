// A minimal SIP phone over UDP for the lab, IPv4 or IPv6 (sipp's IPv6 support needs IPv6 pcaps for
// its RTP): one call as caller (uac) or callee (uas), RTP both ways at 20 ms, counted per source.
// Prints one JSON line: { ok, rtpIn, rtpOut, sources, farMedia, error? }. Every wait is bounded.
//
//   node udp-phone.mjs uac LOCAL_IP MEDIA_PORT FAR_IP [DURATION_MS]   (calls FAR_IP:5060, sends BYE)
//   node udp-phone.mjs uas LOCAL_IP MEDIA_PORT                        (answers, waits for the BYE)
import dgram from 'node:dgram'

const [role, localIp, mediaPortText, farIp, durationText] = process.argv.slice(2)
const mediaPort = Number(mediaPortText)
const durationMs = Number(durationText ?? 2000)
const v6 = localIp.includes(':')
const host = ip => (ip.includes(':') ? `[${ip}]` : ip)
const family = v6 ? 'udp6' : 'udp4'
const ipType = v6 ? 'IP6' : 'IP4'
const sip = dgram.createSocket(family)
const media = dgram.createSocket(family)
const sources = {}
let rtpIn = 0
let rtpOut = 0
let farMedia = null
let rtpTimer = null

const finish = (ok, error) => {
  clearInterval(rtpTimer)
  process.stdout.write(JSON.stringify({ ok, rtpIn, rtpOut, sources, farMedia, ...(error === undefined ? {} : { error }) }) + '\n')
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

/** Sends until `done()` is true (every 500 ms, at most 8 times). */
const retransmit = (bytes, ip, port, done) => {
  let n = 0
  const send = () => { if (done() || n++ >= 8) return; sip.send(bytes, port, ip); setTimeout(send, 500) }
  send()
}

const uac = () => {
  const callId = `ipv6-lab-${process.pid}@${host(localIp)}`
  const via = `Via: SIP/2.0/UDP ${host(localIp)}:5060;branch=z9hG4bK-${process.pid}`
  const from = `From: <sip:a@${host(localIp)}>;tag=uac${process.pid}`
  let to = `To: <sip:b@${host(farIp)}>`
  let answered = false
  let byeDone = false
  const invite = message(`INVITE sip:b@${host(farIp)}:5060 SIP/2.0`, [via, 'Max-Forwards: 70', from, to, `Call-ID: ${callId}`, 'CSeq: 1 INVITE',
    `Contact: <sip:a@${host(localIp)}:5060>`, 'Content-Type: application/sdp'], sdp())
  sip.on('message', raw => {
    const text = raw.toString('latin1')
    if (/^SIP\/2\.0 200/.test(text) && /^CSeq:\s*1 INVITE/mi.test(text) && !answered) {
      answered = true
      to = `To: ${header(text, 'To')}`
      farMedia = parseSdp(text)
      sip.send(message(`ACK sip:b@${host(farIp)}:5060 SIP/2.0`, [via.replace(/branch=\S+/, 'branch=z9hG4bK-ack'), 'Max-Forwards: 70', from, to, `Call-ID: ${callId}`, 'CSeq: 1 ACK']), 5060, farIp)
      startRtp()
      setTimeout(() => {
        clearInterval(rtpTimer)
        // RTP still in flight lands before the BYE goes.
        setTimeout(() => retransmit(message(`BYE sip:b@${host(farIp)}:5060 SIP/2.0`, [via.replace(/branch=\S+/, 'branch=z9hG4bK-bye'), 'Max-Forwards: 70', from, to, `Call-ID: ${callId}`, 'CSeq: 2 BYE']), farIp, 5060, () => byeDone), 200)
      }, durationMs)
    } else if (/^SIP\/2\.0 200/.test(text) && /^CSeq:\s*2 BYE/mi.test(text)) {
      byeDone = true
      finish(true)
    }
  })
  retransmit(invite, farIp, 5060, () => answered)
}

const uas = () => {
  let answer = null
  sip.on('message', (raw, r) => {
    const text = raw.toString('latin1')
    const common = [`Via: ${header(text, 'Via')}`, `From: ${header(text, 'From')}`, `Call-ID: ${header(text, 'Call-ID')}`, `CSeq: ${header(text, 'CSeq')}`]
    if (/^INVITE /.test(text)) {
      farMedia = parseSdp(text)
      answer ??= message('SIP/2.0 200 OK', [...common, `To: ${header(text, 'To')};tag=uas${process.pid}`, `Contact: <sip:b@${host(localIp)}:5060>`, 'Content-Type: application/sdp'], sdp())
      sip.send(answer, r.port, r.address)
    } else if (/^ACK /.test(text)) {
      if (rtpTimer === null) startRtp()
    } else if (/^BYE /.test(text)) {
      sip.send(message('SIP/2.0 200 OK', [...common, `To: ${header(text, 'To')}`]), r.port, r.address)
      clearInterval(rtpTimer)
      setTimeout(() => finish(true), 300)
    }
  })
}

media.bind(mediaPort, localIp, () => {
  sip.bind(5060, localIp, () => {
    if (role === 'uac') uac(); else if (role === 'uas') { uas(); process.stdout.write('') } else finish(false, `unknown role ${role}`)
  })
})
