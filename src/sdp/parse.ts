// Reads the parts of an SDP body that NAT traversal cares about, keeping the offset of every
// token a rewrite may replace. Works on a range of the SIP message's latin1 text so offsets are
// message byte offsets. Unknown or broken lines are skipped, never fatal.
import type { SdpStream, SdpSummary } from './types.js'
import { parsePort } from '../sip/text.js'
import { canonicalIpv6 } from '../ip6.js'

/** A token of an SDP line and where it sits in the message. */
export interface SdpToken { value: string, start: number, end: number }

/** An address token with the address type written before it (c=, a=rtcp): IP4, IP6 or other. */
export interface SdpAddress extends SdpToken { addrType: string }

export interface SdpMedia {
  index: number
  media: string
  /** m= port token; value may be invalid, see `port`. */
  portToken: SdpToken
  /** Parsed port, or null when the m= port is not a number in 0..65535. */
  port: number | null
  portCount: number
  proto: string
  /** RTP payload types of the m= format list (numbers 0..127 only). */
  payloadTypes: number[]
  conn: SdpAddress | undefined
  rtcpPort: SdpToken | undefined
  rtcpAddr: SdpAddress | undefined
  rtcpMux: boolean
  direction: SdpStream['direction'] | undefined
  /** Where a line added to this media section goes (start of the next m= line, or end of body). */
  sectionEnd: number
  /** Whether the section's last line has a terminator (an added line needs one in front if not). */
  sectionEndsWithEol: boolean
}

export interface ParsedSdp {
  origin: SdpToken | undefined
  sessionConn: SdpAddress | undefined
  sessionDirection: SdpStream['direction'] | undefined
  ice: boolean
  media: SdpMedia[]
  /** Line terminator as written, for any line the rewriter adds. */
  eol: '\r\n' | '\n'
}

const DIRECTIONS: ReadonlyArray<NonNullable<SdpStream['direction']>> = ['sendrecv', 'sendonly', 'recvonly', 'inactive']

const isBlank = (c: number): boolean => c === 0x20 || c === 0x09

/** Space-separated tokens of text[start,end), at most `max` of them. */
function tokens (text: string, start: number, end: number, max: number): SdpToken[] {
  const out: SdpToken[] = []
  let i = start
  while (i < end && out.length < max) {
    while (i < end && isBlank(text.charCodeAt(i))) i++
    const s = i
    while (i < end && !isBlank(text.charCodeAt(i))) i++
    if (i > s) out.push({ value: text.slice(s, i), start: s, end: i })
  }
  return out
}

/** The n-th (0-based) space-separated token of text[start,end), the ones before it skipped unread. */
function nthToken (text: string, start: number, end: number, n: number): SdpToken | undefined {
  let i = start
  for (let k = 0; ; k++) {
    while (i < end && isBlank(text.charCodeAt(i))) i++
    if (i >= end) return undefined
    const s = i
    while (i < end && !isBlank(text.charCodeAt(i))) i++
    if (k === n) return { value: text.slice(s, i), start: s, end: i }
  }
}

/** c= "IN IP4 addr[/ttl[/n]]" or "IN IP6 addr[/n]": the address token without the multicast suffix. */
function connectionAddress (text: string, start: number, end: number): SdpAddress | undefined {
  // Scanned in place (one c= per stream in every offer and answer): nettype, addrtype, address.
  let i = start
  let typeStart = 0
  let typeEnd = 0
  for (let field = 0; field < 2; field++) {
    while (i < end && isBlank(text.charCodeAt(i))) i++
    const s = i
    while (i < end && !isBlank(text.charCodeAt(i))) i++
    if (i === s) return undefined
    typeStart = s
    typeEnd = i
  }
  while (i < end && isBlank(text.charCodeAt(i))) i++
  const s = i
  while (i < end && !isBlank(text.charCodeAt(i))) i++
  if (i === s) return undefined
  const slash = text.indexOf('/', s)
  const e = slash >= 0 && slash < i ? slash : i
  const addrType = typeEnd - typeStart === 3 && text.startsWith('IP4', typeStart) ? 'IP4' : text.slice(typeStart, typeEnd).toUpperCase()
  return { value: text.slice(s, e), start: s, end: e, addrType }
}

export function parseSdp (text: string, start: number, end: number): ParsedSdp {
  const sdp: ParsedSdp = { origin: undefined, sessionConn: undefined, sessionDirection: undefined, ice: false, media: [], eol: '\r\n' }
  let current: SdpMedia | undefined
  let first = true
  let pos = start
  while (pos < end) {
    let nl = text.indexOf('\n', pos)
    if (nl < 0 || nl >= end) nl = end
    const hasEol = nl < end
    const lineEnd = nl > pos && text.charCodeAt(nl - 1) === 0x0d ? nl - 1 : nl
    if (first) { sdp.eol = lineEnd < nl ? '\r\n' : '\n'; first = false }
    const next = hasEol ? nl + 1 : end
    if (lineEnd - pos >= 2 && text.charCodeAt(pos + 1) === 0x3d) {
      const type = text.charCodeAt(pos)
      const v = pos + 2
      switch (type) {
        case 0x6f: // o=
          if (current === undefined) sdp.origin = nthToken(text, v, lineEnd, 5)
          break
        case 0x63: { // c=
          const addr = connectionAddress(text, v, lineEnd)
          if (current === undefined) sdp.sessionConn ??= addr
          else current.conn ??= addr
          break
        }
        case 0x6d: { // m=
          if (current !== undefined) { current.sectionEnd = pos; current.sectionEndsWithEol = true }
          // The format list after proto is bounded: a payload type is 0..127, so 128 tokens cover any real m= line.
          const t = tokens(text, v, lineEnd, 3 + 128)
          const portField = t[1] ?? { value: '', start: lineEnd, end: lineEnd }
          const slash = portField.value.indexOf('/')
          const portToken = slash < 0 ? portField : { value: portField.value.slice(0, slash), start: portField.start, end: portField.start + slash }
          const count = slash < 0 ? 1 : Number(portField.value.slice(slash + 1))
          current = {
            index: sdp.media.length,
            media: t[0]?.value ?? '',
            portToken,
            port: parsePort(portToken.value),
            portCount: Number.isInteger(count) && count > 0 && count <= 65535 ? count : 1,
            proto: t[2]?.value ?? '',
            payloadTypes: payloadTypes(t),
            conn: undefined,
            rtcpPort: undefined,
            rtcpAddr: undefined,
            rtcpMux: false,
            direction: undefined,
            sectionEnd: end,
            sectionEndsWithEol: true
          }
          sdp.media.push(current)
          break
        }
        case 0x61: // a=
          parseAttribute(text, v, lineEnd, sdp, current)
          break
      }
    }
    if (current !== undefined) current.sectionEndsWithEol = hasEol
    pos = next
  }
  return sdp
}

/** Whether the attribute name at text[start,end) is `name` (compared in place: no slice per a= line). */
const isName = (text: string, start: number, end: number, name: string): boolean =>
  end - start === name.length && text.startsWith(name, start)

/** The m= format tokens after proto that are RTP payload types (numbers 0..127). */
function payloadTypes (t: SdpToken[]): number[] {
  const out: number[] = []
  for (let k = 3; k < t.length; k++) {
    const v = t[k].value
    const n = v.length <= 3 ? parsePort(v) : null
    if (n !== null && n <= 127) out.push(n)
  }
  return out
}

function parseAttribute (text: string, start: number, end: number, sdp: ParsedSdp, media: SdpMedia | undefined): void {
  let nameEnd = start
  while (nameEnd < end && text.charCodeAt(nameEnd) !== 0x3a) nameEnd++
  // Most a= lines (rtpmap, fmtp, ptime) are none of these: told apart by length before any compare.
  switch (nameEnd - start) {
    case 8:
    case 9:
      for (let k = 0; k < DIRECTIONS.length; k++) {
        const d = DIRECTIONS[k]
        if (!isName(text, start, nameEnd, d)) continue
        if (media === undefined) sdp.sessionDirection ??= d
        else media.direction ??= d
        return
      }
      if (isName(text, start, nameEnd, 'ice-ufrag') || isName(text, start, nameEnd, 'candidate')) sdp.ice = true
      else if (media !== undefined && isName(text, start, nameEnd, 'rtcp-mux')) media.rtcpMux = true
      return
    case 4:
      if (media !== undefined && nameEnd < end && media.rtcpPort === undefined && text.startsWith('rtcp', start)) {
        const t = tokens(text, nameEnd + 1, end, 4)
        media.rtcpPort = t[0]
        media.rtcpAddr = t[3] === undefined ? undefined : { ...t[3], addrType: t[2].value.toUpperCase() }
      }
  }
}

/**
 * An address as the rest of sipalg compares it: IPv6 in its canonical form (so the SDP's
 * 2001:DB8:2:0::9 is the packet's 2001:db8:2::9). An IP6 address that is no IPv6 literal (a zone
 * id "fe80::1%eth0", garbage) or an IP4 one holding a colon is malformed: null, and listed.
 */
function addressOf (a: SdpAddress | undefined, bad: string[]): string | null {
  if (a === undefined) return null
  const v6 = a.addrType === 'IP6'
  if (!v6 && !a.value.includes(':')) return a.value
  const canonical = v6 ? canonicalIpv6(a.value) : null
  if (canonical === null && !bad.includes(a.value)) bad.push(a.value)
  return canonical
}

/** The caller-facing summary (./types.ts) of a parsed SDP. */
export function summarizeSdp (sdp: ParsedSdp): SdpSummary {
  const bad: string[] = []
  const sessionIp = addressOf(sdp.sessionConn, bad)
  const streams: SdpStream[] = []
  for (const m of sdp.media) {
    const ip = m.conn === undefined ? sessionIp : addressOf(m.conn, bad)
    const port = m.port ?? 0
    const direction = m.direction ?? sdp.sessionDirection ?? 'sendrecv'
    let rtcpPort: number | null = null
    if (port > 0 && !m.rtcpMux) {
      const explicit = m.rtcpPort === undefined ? null : parsePort(m.rtcpPort.value)
      rtcpPort = explicit ?? (port < 65535 ? port + 1 : null)
    }
    streams.push({
      index: m.index,
      media: m.media,
      ip,
      port,
      portCount: m.portCount,
      proto: m.proto,
      payloadTypes: m.payloadTypes,
      rtcpPort,
      rtcpIp: m.rtcpAddr === undefined ? ip : addressOf(m.rtcpAddr, bad),
      rtcpMux: m.rtcpMux,
      direction,
      hold: ip === '0.0.0.0' || direction === 'sendonly' || direction === 'inactive'
    })
  }
  const summary: SdpSummary = { sessionIp, originIp: sdp.origin?.value ?? null, ice: sdp.ice, streams }
  if (bad.length > 0) summary.malformedAddresses = bad
  return summary
}
