// Scanning helpers over latin1 text, where one character is one byte of the datagram, so every
// offset found here is also a byte offset into the raw Buffer.

export const SP = 0x20
export const HT = 0x09
export const CR = 0x0d
export const LF = 0x0a

/** Linear white space, including the CR/LF of a folded header line. */
export function isLws (code: number): boolean {
  return code === SP || code === HT || code === CR || code === LF
}

export function skipLws (text: string, i: number, end: number): number {
  while (i < end && isLws(text.charCodeAt(i))) i++
  return i
}

export function trimEnd (text: string, start: number, end: number): number {
  while (end > start && isLws(text.charCodeAt(end - 1))) end--
  return end
}

export interface Range { start: number, end: number }

/**
 * Split [start,end) at commas that are not inside "quotes" or <angle brackets>; each piece is
 * trimmed of LWS. Empty pieces are dropped.
 */
export function splitList (text: string, start: number, end: number): Range[] {
  const out: Range[] = []
  let inQuote = false
  let inAngle = false
  let pieceStart = start
  for (let i = start; i < end; i++) {
    const c = text.charCodeAt(i)
    if (inQuote) {
      if (c === 0x5c) i++ // backslash escapes the next character inside a quoted string
      else if (c === 0x22) inQuote = false
    } else if (c === 0x22) inQuote = true
    else if (c === 0x3c) inAngle = true
    else if (c === 0x3e) inAngle = false
    else if (c === 0x2c && !inAngle) {
      pushTrimmed(text, pieceStart, i, out)
      pieceStart = i + 1
    }
  }
  pushTrimmed(text, pieceStart, end, out)
  return out
}

function pushTrimmed (text: string, start: number, end: number, out: Range[]): void {
  start = skipLws(text, start, end)
  end = trimEnd(text, start, end)
  if (end > start) out.push({ start, end })
}

/** Parameters ";name=value;flag" in [start,end); names lower-cased, quotes kept in values. */
export interface Param { name: string, value: string | true, start: number, end: number, valueStart: number, valueEnd: number }

export function parseParams (text: string, start: number, end: number): Param[] {
  const out: Param[] = []
  let i = start
  while (i < end) {
    const semi = text.indexOf(';', i)
    if (semi < 0 || semi >= end) break
    let p = skipLws(text, semi + 1, end)
    const nameStart = p
    while (p < end) {
      const c = text.charCodeAt(p)
      if (c === 0x3d || c === 0x3b || isLws(c)) break
      p++
    }
    const name = text.slice(nameStart, p).toLowerCase()
    p = skipLws(text, p, end)
    if (p < end && text.charCodeAt(p) === 0x3d) {
      p = skipLws(text, p + 1, end)
      const valueStart = p
      if (p < end && text.charCodeAt(p) === 0x22) {
        p++
        while (p < end && text.charCodeAt(p) !== 0x22) p += text.charCodeAt(p) === 0x5c ? 2 : 1
        p = Math.min(p + 1, end)
      } else {
        while (p < end && text.charCodeAt(p) !== 0x3b && !isLws(text.charCodeAt(p))) p++
      }
      if (name !== '') out.push({ name, value: text.slice(valueStart, p), start: nameStart, end: p, valueStart, valueEnd: p })
    } else if (name !== '') {
      out.push({ name, value: true, start: nameStart, end: p, valueStart: p, valueEnd: p })
    }
    i = Math.max(p, semi + 1)
  }
  return out
}

export function paramValue (params: Param[], name: string): string | true | undefined {
  for (const p of params) if (p.name === name) return p.value
  return undefined
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/

export function isIPv4 (s: string): boolean {
  return s.length >= 7 && s.length <= 15 && IPV4.test(s)
}

/** A decimal port 0..65535 written with digits only, else null. */
export function parsePort (s: string): number | null {
  if (s.length === 0 || s.length > 5) return null
  let n = 0
  for (let i = 0; i < s.length; i++) {
    const d = s.charCodeAt(i) - 0x30
    if (d < 0 || d > 9) return null
    n = n * 10 + d
  }
  return n <= 65535 ? n : null
}
