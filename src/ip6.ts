// IPv6 address literals: strict parsing of what SIP and SDP carry (RFC 4291 text forms, no zone id)
// and the one canonical text form (RFC 5952: lowercase, longest zero run as "::") that every table
// key, log line and status document uses, so "2001:DB8:0:0::23" in an SDP and the packet's
// 2001:db8::23 are the same address.

/** The eight 16-bit groups of an IPv6 literal, or null when it is not one (a zone id "%eth0" is not). */
export function parseIpv6 (text: string): number[] | null {
  if (text.length < 2 || text.length > 45) return null
  const dbl = text.indexOf('::')
  if (dbl >= 0 && text.indexOf('::', dbl + 1) >= 0) return null
  const head = dbl < 0 ? text : text.slice(0, dbl)
  const tail = dbl < 0 ? '' : text.slice(dbl + 2)
  const a = groups(head, dbl < 0 || tail === '')
  const b = dbl < 0 ? [] : groups(tail, true)
  if (a === null || b === null) return null
  if (dbl < 0) return a.length === 8 ? a : null
  if (a.length + b.length > 7) return null
  return [...a, ...new Array<number>(8 - a.length - b.length).fill(0), ...b]
}

/** Colon-separated groups; the last may be a dotted IPv4 (two groups) when `lastMayBeV4`. */
function groups (part: string, lastMayBeV4: boolean): number[] | null {
  if (part === '') return []
  const out: number[] = []
  const items = part.split(':')
  for (let i = 0; i < items.length; i++) {
    const g = items[i]
    if (i === items.length - 1 && lastMayBeV4 && g.includes('.')) {
      const v4 = dotted(g)
      if (v4 === null) return null
      out.push(v4 >>> 16, v4 & 0xffff)
    } else if (/^[0-9a-fA-F]{1,4}$/.test(g)) {
      out.push(parseInt(g, 16))
    } else return null
  }
  return out
}

function dotted (text: string): number | null {
  const p = text.split('.')
  if (p.length !== 4) return null
  let n = 0
  for (const o of p) {
    if (!/^(0|[1-9]\d{0,2})$/.test(o) || Number(o) > 255) return null
    n = n * 256 + Number(o)
  }
  return n
}

/** RFC 5952 text of eight groups. */
export function formatIpv6 (g: ArrayLike<number>): string {
  let bestAt = -1
  let bestLen = 1
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) { i++; continue }
    let j = i
    while (j < 8 && g[j] === 0) j++
    if (j - i > bestLen) { bestAt = i; bestLen = j - i }
    i = j
  }
  const hex = (from: number, to: number): string => Array.from({ length: to - from }, (_, k) => g[from + k].toString(16)).join(':')
  if (bestAt < 0) return hex(0, 8)
  return `${hex(0, bestAt)}::${hex(bestAt + bestLen, 8)}`
}

/** The canonical form of an IPv6 literal, or null when it is not one. */
export function canonicalIpv6 (text: string): string | null {
  const g = parseIpv6(text)
  return g === null ? null : formatIpv6(g)
}

/** Whether text looks like an IPv6 literal at all (has a colon): the family a host names. */
export const looksIpv6 = (text: string): boolean => text.includes(':')

/** 16 bytes, network order. */
export function ipv6Bytes (text: string): Buffer | null {
  const g = parseIpv6(text)
  if (g === null) return null
  const b = Buffer.alloc(16)
  g.forEach((v, i) => b.writeUInt16BE(v, i * 2))
  return b
}

/** The text of 16 bytes at `off`. */
export function ipv6FromBytes (b: Uint8Array, off: number): string {
  const g = new Array<number>(8)
  for (let i = 0; i < 8; i++) g[i] = (b[off + i * 2] << 8) | b[off + i * 2 + 1]
  return formatIpv6(g)
}

/** ip:port as people read it: an IPv6 address bracketed ([2001:db8:1::23]:5060). */
export const hostPort = (ip: string, port: number): string => (ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`)
