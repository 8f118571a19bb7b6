// One Via value: "SIP/2.0/UDP host[:port];branch=...;rport;received=..."
import { type Param, type Range, isLws, parseParams, parsePort, skipLws } from './text.js'

export interface Via {
  transport: string
  host: string
  /** Port as written; undefined when absent, null when written but invalid. */
  port: number | null | undefined
  params: Param[]
  sentByStart: number
  sentByEnd: number
}

export function parseVia (text: string, range: Range): Via | undefined {
  const { start, end } = range
  // sent-protocol: three tokens separated by '/', LWS allowed around the slashes.
  let i = start
  let transport = ''
  for (let part = 0; part < 3; part++) {
    i = skipLws(text, i, end)
    const tokenStart = i
    while (i < end) {
      const c = text.charCodeAt(i)
      if (c === 0x2f || isLws(c)) break
      i++
    }
    if (i === tokenStart) return undefined
    if (part === 2) transport = text.slice(tokenStart, i).toUpperCase()
    else {
      i = skipLws(text, i, end)
      if (text.charCodeAt(i) !== 0x2f) return undefined
      i++
    }
  }
  const sentByStart = skipLws(text, i, end)
  if (sentByStart === i || sentByStart >= end) return undefined
  i = sentByStart
  if (text.charCodeAt(i) === 0x5b) {
    const close = text.indexOf(']', i)
    if (close < 0 || close >= end) return undefined
    i = close + 1
  } else {
    while (i < end) {
      const c = text.charCodeAt(i)
      if (c === 0x3a || c === 0x3b || isLws(c)) break
      i++
    }
  }
  const hostEnd = i
  if (hostEnd === sentByStart) return undefined
  let port: number | null | undefined
  if (i < end && text.charCodeAt(i) === 0x3a) {
    const portStart = ++i
    while (i < end && text.charCodeAt(i) !== 0x3b && !isLws(text.charCodeAt(i))) i++
    port = parsePort(text.slice(portStart, i))
  }
  return {
    transport,
    host: text.slice(sentByStart, hostEnd),
    port,
    params: parseParams(text, i, end),
    sentByStart,
    sentByEnd: i
  }
}

/** Port a sent-by without a port implies (RFC 3261 §18.2.2). */
export function defaultViaPort (transport: string): number {
  return transport === 'TLS' || transport === 'WSS' ? 5061 : 5060
}
