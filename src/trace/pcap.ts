// A small reader for captures: classic libpcap (what `tcpdump -w` writes; both byte orders,
// microsecond and nanosecond timestamps) and pcapng (the default of Wireshark and dumpcap; see
// readPcapng). Link types: Ethernet (with VLAN tags), Linux cooked v1/v2, raw IP and BSD loopback.
// Yields the IP packet (IPv4 or IPv6) of each record; everything else is skipped.

export class PcapError extends Error {}

export interface PcapPacket {
  /** Capture time, milliseconds since the epoch. */
  at: number
  /** The IPv4 or IPv6 packet (header onwards). */
  ip: Buffer
}

export const LINKTYPE = { NULL: 0, ETHERNET: 1, RAW_OLD: 12, RAW: 101, LINUX_SLL: 113, IPV4: 228, IPV6: 229, LINUX_SLL2: 276 } as const

const ETH_IPV4 = 0x0800
const ETH_IPV6 = 0x86dd
const ETH_VLAN = [0x8100, 0x88a8, 0x9100]
/** BSD loopback's address family word for IPv6: 24 (NetBSD/OpenBSD), 28 (FreeBSD), 30 (macOS). */
const NULL_AF_INET6 = [24, 28, 30]

const isIpType = (type: number): boolean => type === ETH_IPV4 || type === ETH_IPV6
const nullFamily = (f: Buffer): number => f.readUInt32LE(0) < 256 ? f.readUInt32LE(0) : f.readUInt32BE(0)

/** Offset of the IP header in a link-layer frame, or -1 when the frame holds neither IPv4 nor IPv6. */
function ipOffset (linkType: number, f: Buffer): number {
  switch (linkType) {
    case LINKTYPE.ETHERNET: {
      let off = 12
      if (f.length < off + 2) return -1
      let type = f.readUInt16BE(off)
      while (ETH_VLAN.includes(type) && f.length >= off + 6) { off += 4; type = f.readUInt16BE(off) }
      return isIpType(type) ? off + 2 : -1
    }
    case LINKTYPE.LINUX_SLL: return f.length >= 16 && isIpType(f.readUInt16BE(14)) ? 16 : -1
    case LINKTYPE.LINUX_SLL2: return f.length >= 20 && isIpType(f.readUInt16BE(0)) ? 20 : -1
    case LINKTYPE.NULL: {
      if (f.length < 4) return -1
      const family = nullFamily(f)
      return family === 2 || NULL_AF_INET6.includes(family) ? 4 : -1
    }
    case LINKTYPE.RAW: case LINKTYPE.RAW_OLD: return f.length > 0 && (f[0] >> 4 === 4 || f[0] >> 4 === 6) ? 0 : -1
    case LINKTYPE.IPV4: return f.length > 0 && f[0] >> 4 === 4 ? 0 : -1
    case LINKTYPE.IPV6: return f.length > 0 && f[0] >> 4 === 6 ? 0 : -1
    default: return -1
  }
}

export interface Pcap {
  linkType: number
  packets: PcapPacket[]
  /** Records skipped: neither IPv4 nor IPv6, or a link type without IP. */
  skipped: number
  /** The file ended inside a record (a capture still being written, or cut). */
  truncated: boolean
}

/** One captured frame: its IP packet kept, or counted as skipped. */
function addFrame (out: Pcap, linkType: number, at: number, frame: Buffer): void {
  const ip = ipOffset(linkType, frame)
  if (ip < 0) out.skipped++
  else out.packets.push({ at, ip: frame.subarray(ip) })
}

/** Reads a classic pcap or a pcapng capture, told apart by their first four bytes. */
export function readPcap (buf: Buffer): Pcap {
  if (buf.length >= 4 && buf.readUInt32BE(0) === PCAPNG_BLOCK.SECTION_HEADER) return readPcapng(buf)
  return readClassicPcap(buf)
}

function readClassicPcap (buf: Buffer): Pcap {
  if (buf.length < 24) throw new PcapError('too short for a pcap file header')
  const magicBE = buf.readUInt32BE(0)
  const magicLE = buf.readUInt32LE(0)
  let le: boolean
  let nano: boolean
  if (magicLE === 0xa1b2c3d4 || magicLE === 0xa1b23c4d) { le = true; nano = magicLE === 0xa1b23c4d } else if (magicBE === 0xa1b2c3d4 || magicBE === 0xa1b23c4d) { le = false; nano = magicBE === 0xa1b23c4d } else throw new PcapError('not a pcap or pcapng capture (bad magic number)')
  const u32 = (off: number): number => le ? buf.readUInt32LE(off) : buf.readUInt32BE(off)
  const linkType = u32(20) & 0x0fffffff
  const out: Pcap = { linkType, packets: [], skipped: 0, truncated: false }
  let off = 24
  while (off < buf.length) {
    if (off + 16 > buf.length) { out.truncated = true; break }
    const sec = u32(off)
    const frac = u32(off + 4)
    const incl = u32(off + 8)
    if (off + 16 + incl > buf.length) { out.truncated = true; break }
    const frame = buf.subarray(off + 16, off + 16 + incl)
    off += 16 + incl
    addFrame(out, linkType, sec * 1000 + (nano ? frac / 1e6 : frac / 1e3), frame)
  }
  return out
}

// pcapng (https://www.ietf.org/archive/id/draft-ietf-opsawg-pcapng-02.html): a sequence of blocks,
// each "type, total length, body, total length" in the byte order its section header declares.
// The blocks that carry packets: Enhanced Packet (EPB), Simple Packet (SPB) and the obsolete Packet
// Block; each refers to an Interface Description (IDB) for its link type and timestamp unit.
export const PCAPNG_BLOCK = { SECTION_HEADER: 0x0a0d0d0a, INTERFACE: 1, PACKET_OBSOLETE: 2, SIMPLE_PACKET: 3, ENHANCED_PACKET: 6 } as const
const BYTE_ORDER_MAGIC = 0x1a2b3c4d
const OPT_END = 0
const OPT_IF_TSRESOL = 9
const OPT_IF_TSOFFSET = 14

interface PcapngInterface {
  linkType: number
  snapLen: number
  /** Timestamp units per second: 10^6 unless if_tsresol says otherwise. */
  unitsPerSecond: bigint
  /** if_tsoffset: seconds to add to every timestamp. */
  offsetSeconds: number
}

/** A block's body with readers in its section's byte order. */
class Body {
  constructor (readonly buf: Buffer, readonly le: boolean) {}
  get length (): number { return this.buf.length }
  u16 (off: number): number { return this.le ? this.buf.readUInt16LE(off) : this.buf.readUInt16BE(off) }
  u32 (off: number): number { return this.le ? this.buf.readUInt32LE(off) : this.buf.readUInt32BE(off) }
  /** A 64-bit value written as two 32-bit halves (timestamps: high half first in either order). */
  u64 (offHigh: number, offLow: number): bigint { return (BigInt(this.u32(offHigh)) << 32n) | BigInt(this.u32(offLow)) }
}

function readInterface (b: Body): PcapngInterface {
  if (b.length < 8) throw new PcapError('pcapng interface description block too short')
  const iface: PcapngInterface = { linkType: b.u16(0), snapLen: b.u32(4), unitsPerSecond: 1_000_000n, offsetSeconds: 0 }
  for (let off = 8; off + 4 <= b.length;) {
    const code = b.u16(off)
    const len = b.u16(off + 2)
    if (code === OPT_END || off + 4 + len > b.length) break
    if (code === OPT_IF_TSRESOL && len >= 1) {
      const v = b.buf[off + 4]
      // High bit set: a negative power of two; else of ten. Beyond 2^-63 or 10^-18 a timestamp
      // could not count a second in 64 bits: the file is corrupt.
      const exp = v & 0x7f
      if ((v & 0x80) !== 0 ? exp > 63 : exp > 18) throw new PcapError(`pcapng if_tsresol ${v} is not a usable resolution`)
      iface.unitsPerSecond = (v & 0x80) !== 0 ? 2n ** BigInt(exp) : 10n ** BigInt(exp)
    } else if (code === OPT_IF_TSOFFSET && len >= 8) {
      const hi = b.u32(off + (b.le ? 8 : 4))
      const lo = b.u32(off + (b.le ? 4 : 8))
      iface.offsetSeconds = (hi | 0) * 2 ** 32 + lo // signed seconds
    }
    off += 4 + len + ((4 - (len % 4)) % 4)
  }
  return iface
}

/** A timestamp in the interface's units → milliseconds since the epoch, whole seconds kept exact. */
function milliseconds (ts: bigint, iface: PcapngInterface): number {
  const seconds = Number(ts / iface.unitsPerSecond) + iface.offsetSeconds
  return seconds * 1000 + Number(ts % iface.unitsPerSecond) * 1000 / Number(iface.unitsPerSecond)
}

export function readPcapng (buf: Buffer): Pcap {
  const out: Pcap = { linkType: -1, packets: [], skipped: 0, truncated: false }
  let le = true
  let interfaces: PcapngInterface[] = []
  let lastAt = 0
  let off = 0
  while (off < buf.length) {
    if (off + 12 > buf.length) { out.truncated = true; break }
    if (buf.readUInt32BE(off) === PCAPNG_BLOCK.SECTION_HEADER) {
      // A new section: its own byte order, its own interfaces.
      const bom = buf.readUInt32LE(off + 8)
      if (bom === BYTE_ORDER_MAGIC) le = true
      else if (buf.readUInt32BE(off + 8) === BYTE_ORDER_MAGIC) le = false
      else throw new PcapError(`pcapng section header at byte ${off} has no byte-order magic (corrupt file)`)
      interfaces = []
    }
    const type = le ? buf.readUInt32LE(off) : buf.readUInt32BE(off)
    const len = le ? buf.readUInt32LE(off + 4) : buf.readUInt32BE(off + 4)
    if (len < 12 || len % 4 !== 0) throw new PcapError(`pcapng block at byte ${off} has an impossible length ${len} (corrupt file)`)
    if (off + len > buf.length) { out.truncated = true; break }
    const b = new Body(buf.subarray(off + 8, off + len - 4), le)
    if ((le ? buf.readUInt32LE(off + len - 4) : buf.readUInt32BE(off + len - 4)) !== len) {
      throw new PcapError(`pcapng block at byte ${off}: its two lengths differ (corrupt file)`)
    }
    off += len
    if (type === PCAPNG_BLOCK.INTERFACE) {
      const iface = readInterface(b)
      interfaces.push(iface)
      if (out.linkType < 0) out.linkType = iface.linkType
    } else if (type === PCAPNG_BLOCK.ENHANCED_PACKET || type === PCAPNG_BLOCK.PACKET_OBSOLETE) {
      // EPB: interface (32 bits); the obsolete Packet Block: interface (16), drops (16). Then both:
      // timestamp high, low, captured length, original length, data.
      if (b.length < 20) { out.skipped++; continue }
      const iface = interfaces[type === PCAPNG_BLOCK.ENHANCED_PACKET ? b.u32(0) : b.u16(0)]
      const captured = b.u32(12)
      if (iface === undefined || 20 + captured > b.length) { out.skipped++; continue }
      lastAt = milliseconds(b.u64(4, 8), iface)
      addFrame(out, iface.linkType, lastAt, b.buf.subarray(20, 20 + captured))
    } else if (type === PCAPNG_BLOCK.SIMPLE_PACKET) {
      // No interface field (always the first) and no timestamp: it shares the last one seen.
      const iface = interfaces[0]
      if (b.length < 4 || iface === undefined) { out.skipped++; continue }
      const captured = Math.min(b.u32(0), b.length - 4, iface.snapLen === 0 ? Infinity : iface.snapLen)
      addFrame(out, iface.linkType, lastAt, b.buf.subarray(4, 4 + captured))
    } // name resolution, statistics, custom blocks: nothing sipalg draws
  }
  return out
}
