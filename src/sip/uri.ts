// Locating the host and port inside a SIP URI without re-serializing it: the rewriter replaces
// exactly the host[:port] bytes and keeps the user part, parameters and headers as written.
import { isLws, parsePort } from './text.js'

export interface UriHostPort {
  scheme: string
  host: string
  /** Port as written; undefined when the URI has none. Null when written but invalid. */
  port: number | null | undefined
  hostStart: number
  /** End of host[:port], i.e. where the URI parameters begin. */
  hostPortEnd: number
}

/** Host and port of a sip:/sips: URI in text[start,end), or undefined for other schemes. */
export function locateUriHost (text: string, start: number, end: number): UriHostPort | undefined {
  const colon = text.indexOf(':', start)
  if (colon < 0 || colon >= end) return undefined
  const scheme = text.slice(start, colon).toLowerCase()
  if (scheme !== 'sip' && scheme !== 'sips') return undefined
  // The user part may hold '?' (RFC 4475's intmeth), so URI headers (?...) start only after the
  // first '@'; a raw '@' inside them (which RFC 3261 forbids, but some UAs write) is not the user's.
  const firstAt = text.indexOf('@', colon)
  let limit = firstAt < 0 || firstAt >= end ? -1 : text.indexOf('?', firstAt)
  if (limit < 0 || limit > end) limit = end
  const at = text.lastIndexOf('@', limit - 1)
  const hasUser = at > colon
  const hostStart = hasUser ? at + 1 : colon + 1
  let i = hostStart
  if (text.charCodeAt(i) === 0x5b) { // [IPv6]
    const close = text.indexOf(']', i)
    i = close < 0 || close >= limit ? limit : close + 1
  } else {
    while (i < limit) {
      const c = text.charCodeAt(i)
      if (c === 0x3a || c === 0x3b || c === 0x3f || c === 0x3e || c === 0x2c || isLws(c)) break
      i++
    }
  }
  const hostEnd = i
  if (hostEnd === hostStart) return undefined
  let port: number | null | undefined
  if (i < limit && text.charCodeAt(i) === 0x3a) {
    const portStart = ++i
    while (i < limit) {
      const c = text.charCodeAt(i)
      if (c < 0x30 || c > 0x39) break
      i++
    }
    port = parsePort(text.slice(portStart, i))
  }
  return {
    scheme,
    host: text.slice(hostStart, hostEnd),
    port,
    hostStart,
    hostPortEnd: i
  }
}
