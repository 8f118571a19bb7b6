// Outbound (inside phone → outside): one small handler per field, applied in table order, in the
// spirit of the kernel's nf_nat_sip.c. Each handler rewrites only what names the sender.
import { parseNameAddr, type NameAddr } from '../sip/address.js'
import { parsePort } from '../sip/text.js'
import { defaultViaPort } from '../sip/via.js'
import { type ParsedSdp, summarizeSdp } from '../sdp/parse.js'
import { fixContentLength, locateSdp } from './body.js'
import { type RewriteRun, formatHostPort, isPort } from './run.js'

type Handler = (run: RewriteRun) => void

function rewriteTopVia (run: RewriteRun): void {
  const via = run.msg.topVia
  if (via === undefined || via.port === null || run.classify(via.host) !== 'map') return
  const defaultPort = defaultViaPort(via.transport)
  const port = via.port ?? defaultPort
  const publicPort = run.publicPortFor({ ip: via.host, port })
  if (publicPort === null) return
  const after = formatHostPort(run.ctx.publicIp, publicPort, via.port !== undefined, defaultPort)
  const before = run.msg.text.slice(via.sentByStart, via.sentByEnd)
  run.edit(via.sentByStart, via.sentByEnd, after, 'Via', before, after)
}

/** host[:port] of a sip: URI naming the sender → the public mapping; user part and params kept. */
function rewriteUriTarget (run: RewriteRun, address: NameAddr | undefined, field: string): void {
  const target = address?.target
  if (target === undefined || target.port === null || run.classify(target.host) !== 'map') return
  const defaultPort = target.scheme === 'sips' ? 5061 : 5060
  const publicPort = run.publicPortFor({ ip: target.host, port: target.port ?? defaultPort })
  if (publicPort === null) return
  const after = formatHostPort(run.ctx.publicIp, publicPort, target.port !== undefined, defaultPort)
  const before = run.msg.text.slice(target.hostStart, target.hostPortEnd)
  run.edit(target.hostStart, target.hostPortEnd, after, field, before, after)
}

function rewriteContacts (run: RewriteRun): void {
  for (const c of run.msg.contacts) if (!c.star) rewriteUriTarget(run, c.address, 'Contact')
}

/**
 * An inside proxy (a PBX relaying for phones) that record-routes puts its own private address in
 * Record-Route: the far end would send every in-dialog request there. Entries naming the sender go
 * to the public mapping, like its Contact; entries naming others (outside proxies) stay.
 */
function rewriteRecordRoutes (run: RewriteRun): void {
  for (const r of run.msg.valueRanges('record-route')) rewriteUriTarget(run, parseNameAddr(run.msg.text, r), 'Record-Route')
}

function rewriteFromTo (run: RewriteRun): void {
  if (run.ctx.rewriteFromTo !== true) return
  rewriteUriTarget(run, run.msg.from, 'From')
  rewriteUriTarget(run, run.msg.to, 'To')
}

/** c= of an RFC 2543 hold: "send me nothing", while m= keeps the stream's real port. */
const HOLD_ADDRESS = '0.0.0.0'

/**
 * The private address behind a held stream. Its port still goes out in m=, so it is mapped like any
 * offer, under the address the stream lives on: the same key the call had before the hold (see
 * CallTable.grantMedia in src/dialog/calls.ts), so the resume finds the same public ports. That is
 * the o= address when it names an inside host, else the phone itself.
 */
function heldStreamAddress (run: RewriteRun, sdp: ParsedSdp): string {
  const origin = sdp.origin?.value
  if (origin === undefined || origin === HOLD_ADDRESS || !run.ctx.isInside(origin)) return run.ctx.phone.ip
  return origin
}

function rewriteSdp (run: RewriteRun): void {
  const body = locateSdp(run)
  if (body === undefined) return
  const { sdp } = body
  run.sdp = summarizeSdp(sdp)
  if (sdp.ice && run.ctx.rewriteIce !== true) {
    run.leave('ice', 'SDP carries ICE attributes; SDP left as written')
    return
  }
  const { ctx } = run
  const status: Array<'granted' | 'refused' | 'none'> = []
  for (const m of sdp.media) {
    status.push('none')
    const conn = m.conn ?? sdp.sessionConn
    if (m.port === null) { run.note(`m=${m.media} port "${m.portToken.value}" is not a port; left as written`); continue }
    if (m.port === 0 || conn === undefined) continue
    const ip = conn.value === HOLD_ADDRESS ? heldStreamAddress(run, sdp) : conn.value
    if (run.classify(ip) !== 'map') continue
    const explicitRtcp = m.rtcpPort === undefined ? null : parsePort(m.rtcpPort.value)
    const rtcpPort = m.rtcpMux ? null : explicitRtcp ?? (m.port < 65535 ? m.port + 1 : null)
    const request = {
      index: m.index, media: m.media, ip, rtpPort: m.port, rtcpPort, rtcpIp: m.rtcpAddr?.value ?? ip
    }
    const grant = ctx.mapMedia(request)
    if (grant === null || !isPort(grant.rtpPort) || (grant.rtcpPort !== null && !isPort(grant.rtcpPort))) {
      status[m.index] = 'refused'
      run.leave('refused', `media mapping for m=${m.media} ${ip}:${m.port} refused`)
      continue
    }
    status[m.index] = 'granted'
    run.edit(m.portToken.start, m.portToken.end, String(grant.rtpPort), `m=${m.media}`, m.portToken.value, String(grant.rtpPort))
    const publicRtcp = m.rtcpMux ? null : grant.rtcpPort
    if (m.rtcpMux && m.rtcpPort !== undefined && explicitRtcp !== null) {
      // Muxed RTCP shares the RTP port; a leftover a=rtcp must follow it.
      run.edit(m.rtcpPort.start, m.rtcpPort.end, String(grant.rtpPort), 'a=rtcp', m.rtcpPort.value, String(grant.rtpPort))
      if (m.rtcpAddr !== undefined && run.classify(m.rtcpAddr.value) === 'map') {
        run.edit(m.rtcpAddr.start, m.rtcpAddr.end, ctx.publicIp, 'a=rtcp', m.rtcpAddr.value, ctx.publicIp)
      }
    } else if (publicRtcp !== null) {
      if (m.rtcpPort !== undefined && explicitRtcp !== null) {
        run.edit(m.rtcpPort.start, m.rtcpPort.end, String(publicRtcp), 'a=rtcp', m.rtcpPort.value, String(publicRtcp))
        if (m.rtcpAddr !== undefined && run.classify(m.rtcpAddr.value) === 'map') {
          run.edit(m.rtcpAddr.start, m.rtcpAddr.end, ctx.publicIp, 'a=rtcp', m.rtcpAddr.value, ctx.publicIp)
        }
      } else if (m.rtcpPort === undefined && publicRtcp !== grant.rtpPort + 1) {
        // The far end assumes RTP+1 without a=rtcp; say so when the granted port differs.
        const line = `a=rtcp:${publicRtcp}`
        run.edit(m.sectionEnd, m.sectionEnd, (m.sectionEndsWithEol ? '' : sdp.eol) + line + (m.sectionEndsWithEol ? sdp.eol : ''), 'a=rtcp', '', line)
      }
    }
    run.media.push({
      index: m.index,
      media: m.media,
      private: { ip, rtpPort: m.port, rtcpPort },
      public: { rtpPort: grant.rtpPort, rtcpPort: publicRtcp }
    })
  }
  for (const m of sdp.media) {
    if (m.conn !== undefined && status[m.index] !== 'refused' && run.classify(m.conn.value) === 'map') {
      run.edit(m.conn.start, m.conn.end, ctx.publicIp, 'c=', m.conn.value, ctx.publicIp)
    }
  }
  const session = sdp.sessionConn
  if (session !== undefined && run.classify(session.value) === 'map') {
    // A session c= whose every dependent stream was refused keeps its address with its ports.
    const dependents = sdp.media.filter(m => m.conn === undefined && m.port !== null && m.port > 0)
    if (dependents.length === 0 || dependents.some(m => status[m.index] !== 'refused')) {
      run.edit(session.start, session.end, ctx.publicIp, 'c=', session.value, ctx.publicIp)
    }
  }
  const origin = sdp.origin
  if (origin !== undefined && run.classify(origin.value) === 'map') {
    run.edit(origin.start, origin.end, ctx.publicIp, 'o=', origin.value, ctx.publicIp)
  }
  fixContentLength(run, body)
}

/** Applied in this order; the change list is sorted by position afterwards. */
const OUTBOUND_HANDLERS: readonly Handler[] = [rewriteTopVia, rewriteRecordRoutes, rewriteContacts, rewriteFromTo, rewriteSdp]

export function rewriteOutbound (run: RewriteRun): void {
  for (const handler of OUTBOUND_HANDLERS) handler(run)
}
