// IPv4 networks written as "a.b.c.d/n" (a bare address means /32), and IPv6 networks written as
// "2001:db8:1::/64" (a bare address means /128). Used to decide which addresses are "inside", by
// the offline rewrite command and by the daemon's config.
import { parseIpv6 } from '../ip6.js'

export interface Cidr {
  readonly network: number
  readonly prefix: number
  contains: (ip: string) => boolean
  containsNumber: (ip: number) => boolean
  toString: () => string
}

/** IPv4 dotted quad → unsigned 32-bit number, or null. */
export function ipv4ToNumber (ip: string): number | null {
  let n = 0
  let octet = -1
  let dots = 0
  for (let i = 0; i < ip.length; i++) {
    const c = ip.charCodeAt(i)
    if (c === 0x2e) {
      if (octet < 0 || ++dots > 3) return null
      n = n * 256 + octet
      octet = -1
    } else if (c >= 0x30 && c <= 0x39) {
      if (octet === 0) return null // leading zero: "010" is ambiguous (octal in some parsers)
      octet = (octet < 0 ? 0 : octet * 10) + (c - 0x30)
      if (octet > 255) return null
    } else return null
  }
  if (dots !== 3 || octet < 0) return null
  return n * 256 + octet
}

function maskOf (prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0
}

/** An IPv6 network; `network` and `containsNumber` are IPv4's and never match. */
function parseCidr6 (text: string): Cidr | null {
  const slash = text.indexOf('/')
  const addr = slash < 0 ? text : text.slice(0, slash)
  const prefixText = slash < 0 ? '128' : text.slice(slash + 1)
  if (!/^\d{1,3}$/.test(prefixText) || Number(prefixText) > 128) return null
  const prefix = Number(prefixText)
  const net = parseIpv6(addr)
  if (net === null) return null
  const masked = (g: number[]): number[] => g.map((v, i) => {
    const bits = Math.max(0, Math.min(16, prefix - i * 16))
    return bits === 0 ? 0 : v & ((0xffff << (16 - bits)) & 0xffff)
  })
  const want = masked(net).join(':')
  return {
    network: -1,
    prefix,
    contains: (candidate: string) => {
      const g = parseIpv6(candidate)
      return g !== null && masked(g).join(':') === want
    },
    containsNumber: () => false,
    toString: () => `${addr}/${prefix}`
  }
}

export function parseCidr (text: string): Cidr | null {
  if (text.includes(':')) return parseCidr6(text)
  const slash = text.indexOf('/')
  const addr = slash < 0 ? text : text.slice(0, slash)
  const prefixText = slash < 0 ? '32' : text.slice(slash + 1)
  if (!/^\d{1,2}$/.test(prefixText)) return null
  const prefix = Number(prefixText)
  const ip = ipv4ToNumber(addr)
  if (ip === null || prefix > 32) return null
  const mask = maskOf(prefix)
  const network = (ip & mask) >>> 0
  return {
    network,
    prefix,
    contains: (candidate: string) => {
      const n = ipv4ToNumber(candidate)
      return n !== null && ((n & mask) >>> 0) === network
    },
    containsNumber: (n: number) => ((n & mask) >>> 0) === network,
    toString: () => `${addr}/${prefix}`
  }
}

/** RFC 1918 private networks: the default inside set. */
export const PRIVATE_NETWORKS = ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16']

/** One predicate for a list of networks. */
export function insideMatcher (cidrs: Cidr[]): (ip: string) => boolean {
  const v6 = cidrs.filter(c => c.network < 0)
  return ip => {
    const n = ipv4ToNumber(ip) // parsed once, not once per network
    if (n === null) return v6.length > 0 && ip.includes(':') && v6.some(c => c.contains(ip))
    for (const c of cidrs) if (c.containsNumber(n)) return true
    return false
  }
}
