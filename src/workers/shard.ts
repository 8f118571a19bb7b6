// Which worker owns what, when `workers: N` runs N sipalg processes on N queues (docs/workers.md).
// Pure: the same answers in every worker, the supervisor and the tests.
//
// The kernel spreads packets over the queues by a hash symmetric in (saddr, daddr), so a phone and
// one far host always meet on one queue, but a phone talking to two far hosts may be read on two.
// The ALG state of a phone (its signalling port, registrations, calls) must live in one worker, so
// the owner of a packet is a hash of its inside address alone; a reader that is not the owner hands
// the packet over (src/workers/handoff.ts).

import type { PortRange } from '../validate.js'
import { ipv6FromBytes, looksIpv6, parseIpv6 } from '../ip6.js'
import { ipv4ToNumber } from '../rewrite/cidr.js'
import type { ElemData, ElemKey, MapName } from '../media/mappings.js'

/** Spreads IPv4 addresses that differ in their last bits (a /24 of phones) evenly (murmur3 finalizer). */
export function mixAddress (addr: number): number {
  let h = addr >>> 0
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b)
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35)
  return (h ^ (h >>> 16)) >>> 0
}

/** The worker (0..n-1) that owns an inside address (a 32-bit number). */
export const ownerOfAddress = (addr: number, n: number): number => n <= 1 ? 0 : mixAddress(addr) % n

/** An IPv6 address folded to 32 bits (its groups xor-ed pairwise), so a /64 of phones spreads like a /24. */
function ipv6ToNumber (ip: string): number {
  const g = parseIpv6(ip) ?? []
  let h = 0
  for (let i = 0; i < g.length; i += 2) h ^= ((g[i] << 16) | g[i + 1]) >>> 0
  return h >>> 0
}

export const ownerOfIp = (ip: string, n: number): number =>
  ownerOfAddress(looksIpv6(ip) ? ipv6ToNumber(ip) : ipv4ToNumber(ip) ?? 0, n)

/**
 * The owner of a queued IPv4 packet: the owner of its inside address (the source of a packet from
 * the inside, the destination of one going in, as FORWARD sees it: after DNAT). A packet with
 * both or neither ends inside (transit, not IP) has no owner (null): whoever reads it decides it.
 */
export function packetOwner (pkt: Uint8Array, isInside: (ip: string) => boolean, n: number): number | null {
  const version = pkt.length < 20 ? 0 : pkt[0] >> 4
  if (version === 6 && pkt.length < 40) return null
  if (version !== 4 && version !== 6) return null
  const src = version === 4 ? `${pkt[12]}.${pkt[13]}.${pkt[14]}.${pkt[15]}` : ipv6FromBytes(pkt, 8)
  const dst = version === 4 ? `${pkt[16]}.${pkt[17]}.${pkt[18]}.${pkt[19]}` : ipv6FromBytes(pkt, 24)
  const srcIn = isInside(src)
  if (srcIn === isInside(dst)) return null
  // IPv4: the address is already a number in the header; no second parse of the string per packet.
  if (version === 4) {
    const o = srcIn ? 12 : 16
    return ownerOfAddress(((pkt[o] << 24) | (pkt[o + 1] << 16) | (pkt[o + 2] << 8) | pkt[o + 3]) >>> 0, n)
  }
  return ownerOfIp(srcIn ? src : dst, n)
}

/**
 * Worker i's share of the media range: a contiguous run of whole RTP/RTCP pairs, the shares
 * disjoint and together the whole range. Null when the range holds fewer than two pairs per worker.
 */
export function mediaSlice (range: PortRange, i: number, n: number): PortRange | null {
  const first = range.lo + (range.lo % 2)
  const pairs = Math.floor((range.hi - first + 1) / 2)
  if (pairs < 2 * n) return null
  const from = Math.floor(i * pairs / n)
  const to = Math.floor((i + 1) * pairs / n)
  return { lo: first + 2 * from, hi: first + 2 * to - 1 }
}

/**
 * Public signalling ports are interleaved (port mod n = i) rather than cut in runs: a phone whose
 * own port belongs to another worker gets the nearest one above it (5061 for 5060 on worker 1 of 2),
 * and every worker's pool spans the whole port space.
 */
export const ownsSignallingPort = (port: number, i: number, n: number): boolean => n <= 1 || port % n === i

/** A kernel element left in the shared table: the worker whose phone it serves (restart adoption). */
export function elementOwner (e: { map: MapName, key: ElemKey, data: ElemData }, n: number): number | null {
  const ip = e.map === 'src_nat' ? e.key.ip : e.data.ip
  return ip === undefined ? null : ownerOfIp(ip, n)
}
