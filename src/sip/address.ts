// name-addr / addr-spec values as used by From, To, Contact, Route:
//   "Display" <sip:user@host:port;uri-params>;header-params   or   sip:user@host;header-params
import { type Param, type Range, isLws, parseParams, skipLws } from './text.js'
import { type UriHostPort, locateUriHost } from './uri.js'

export interface NameAddr {
  uri: string
  uriStart: number
  uriEnd: number
  /** Host/port inside the URI, when it is a sip:/sips: URI. */
  target: UriHostPort | undefined
  params: Param[]
}

export function parseNameAddr (text: string, range: Range): NameAddr | undefined {
  const { start, end } = range
  let i = start
  let inQuote = false
  let angle = -1
  for (; i < end; i++) {
    const c = text.charCodeAt(i)
    if (inQuote) {
      if (c === 0x5c) i++
      else if (c === 0x22) inQuote = false
    } else if (c === 0x22) inQuote = true
    else if (c === 0x3c) { angle = i; break }
  }
  let uriStart: number
  let uriEnd: number
  let paramsStart: number
  if (angle >= 0) {
    const close = text.indexOf('>', angle)
    if (close < 0 || close >= end) return undefined
    uriStart = angle + 1
    uriEnd = close
    paramsStart = close + 1
  } else {
    // addr-spec: RFC 3261 §20 requires <> when the URI has ';', so the first ';' starts header params.
    uriStart = skipLws(text, start, end)
    uriEnd = uriStart
    while (uriEnd < end) {
      const c = text.charCodeAt(uriEnd)
      if (c === 0x3b || isLws(c)) break
      uriEnd++
    }
    paramsStart = uriEnd
  }
  return {
    uri: text.slice(uriStart, uriEnd),
    uriStart,
    uriEnd,
    target: locateUriHost(text, uriStart, uriEnd),
    params: parseParams(text, paramsStart, end)
  }
}
