// The one set of value checks shared by command-line flags (src/cli/commands.ts) and the config
// file (src/config.ts): each says why a value is wrong and shows one that is right, and the caller
// wraps that into its own catalogue entry (E101 for a flag, E103 for a config key).

import { ipv4ToNumber, parseCidr } from './rewrite/cidr.js'
import { canonicalIpv6 } from './ip6.js'

export type Checked<T> = { ok: true, value: T } | { ok: false, why: string, example: string }

const good = <T>(value: T): Checked<T> => ({ ok: true, value })
const bad = (why: string, example: string): Checked<never> => ({ ok: false, why, example })

/** A dotted quad without leading zeros ("010" reads as octal in some tools). */
export const isIpv4 = (text: string): boolean => ipv4ToNumber(text) !== null

export function ipv4 (text: string): Checked<string> {
  return isIpv4(text) ? good(text) : bad('not an IPv4 address', '203.0.113.1')
}

/** An IPv4 network "a.b.c.d/n"; a bare address means /32. */
export function cidr (text: string): Checked<string> {
  return parseCidr(text) !== null ? good(text) : bad('not an IPv4 or IPv6 network', '10.0.1.0/24')
}

/** A whole number written in decimal digits only, from lo to hi. */
export function integer (text: string, lo: number, hi: number, example: string, why = `not a whole number from ${lo} to ${hi}`): Checked<number> {
  const n = /^\d{1,10}$/.test(text) ? Number(text) : NaN
  return n >= lo && n <= hi ? good(n) : bad(why, example)
}

export const port = (text: string): Checked<number> => integer(text, 1, 65535, '5060', 'not a UDP port 1-65535')

/** Ports written "5060,5080". */
export function portList (text: string): Checked<number[]> {
  const out: number[] = []
  for (const part of text.split(',')) {
    const p = port(part.trim())
    if (!p.ok) return bad('not a comma-separated list of UDP ports 1-65535', '5060,5080')
    out.push(p.value)
  }
  return good(out)
}

export const queue = (text: string): Checked<number> => integer(text, 0, 65535, '0', 'not an NFQUEUE number 0-65535')

/** `workers`: auto (one per core) or how many sipalg processes share the gateway (docs/workers.md). */
export function workers (text: string): Checked<'auto' | number> {
  const t = text.trim()
  return t === 'auto' ? good('auto') : integer(t, 1, 64, 'auto', 'not auto or a number of workers from 1 to 64')
}

export interface PortRange { lo: number, hi: number }

/**
 * Public media ports "lo-hi": above the privileged ports, and room for at least two RTP/RTCP pairs
 * (src/media/ports.ts hands them out as even RTP, RTCP = RTP + 1).
 */
export function portRange (text: string): Checked<PortRange> {
  const example = '20000-29999'
  const m = /^(\d{1,5})-(\d{1,5})$/.exec(text.trim())
  if (m === null) return bad('not a range like 20000-29999', example)
  const lo = Number(m[1])
  const hi = Number(m[2])
  if (lo < 1024 || hi > 65535 || hi < lo) return bad('must lie within 1024-65535, low port first', example)
  const firstEven = lo + (lo % 2)
  if (hi < firstEven + 3) return bad('must hold at least two RTP/RTCP port pairs', example)
  return good({ lo, hi })
}

export class ValidationError extends Error {
  override name = 'ValidationError'
}

/** The media port range, for code that already holds a validated config (throws if it is not). */
export function parsePortRange (text: string): PortRange {
  const r = portRange(text)
  if (!r.ok) throw new ValidationError(`media port range "${text}": ${r.why}`)
  return r.value
}

const TRUE = new Set(['true', 'yes', '1'])
const FALSE = new Set(['false', 'no', '0'])

/** true/false, yes/no, 1/0; anything else is refused rather than read as one of them. */
export function boolean (text: string): Checked<boolean> {
  const t = text.toLowerCase()
  if (TRUE.has(t)) return good(true)
  if (FALSE.has(t)) return good(false)
  return bad('not true/false, yes/no or 1/0', 'true')
}

export function choice<T extends string> (text: string, allowed: readonly T[]): Checked<T> {
  return (allowed as readonly string[]).includes(text) ? good(text as T) : bad(`must be one of ${allowed.join(', ')}`, allowed[0])
}

/** An nftables table name sipalg creates (and derives its socket and state file names from). */
export function identifier (text: string): Checked<string> {
  return /^[A-Za-z][A-Za-z0-9_]{0,31}$/.test(text) ? good(text) : bad('not a short nftables identifier (a letter, then letters, digits or _)', 'sipalg')
}

/** A connection mark with optional mask, decimal or 0x hex, each within 32 bits. */
export function markMask (text: string): Checked<string> {
  const n = '(?:0x[0-9a-fA-F]{1,8}|\\d{1,10})'
  const ok = new RegExp(`^${n}(?:/${n})?$`).test(text) && text.split('/').every(x => Number(x) <= 0xffffffff)
  return ok ? good(text) : bad('not a 32-bit ct mark with optional mask', '0x5a100000/0xffff0000')
}

/**
 * A HEP collector: udp://HOST:PORT with an IPv4 address, a host name or a [bracketed IPv6] one (HEP over TCP or TLS is not
 * sent: a UDP datagram per message is what keeps a dead collector from costing anything).
 */
export function hepUrl (text: string): Checked<{ host: string, port: number }> {
  const example = 'udp://127.0.0.1:9060'
  const m = /^udp:\/\/(?:([A-Za-z0-9.-]{1,253})|\[([0-9A-Fa-f:.]{2,45})\]):(\d{1,5})$/.exec(text.trim())
  if (m === null) return bad('not udp://HOST:PORT', example)
  const p = port(m[3])
  if (!p.ok) return bad('has no UDP port 1-65535', example)
  if (m[2] !== undefined) {
    // A collector reached over IPv6: udp://[2001:db8::5]:9060, the literal in brackets as in a URL.
    const v6 = canonicalIpv6(m[2])
    return v6 === null ? bad('has no valid IPv6 address in its brackets', example) : good({ host: v6, port: p.value })
  }
  if (/^[\d.]+$/.test(m[1]) && !isIpv4(m[1])) return bad('has no valid IPv4 address', example)
  return good({ host: m[1], port: p.value })
}

/** The config key and flag `hep` keep the checked URL as written. */
export function hepUrlText (text: string): Checked<string> {
  const r = hepUrl(text)
  return r.ok ? good(text.trim()) : r
}
