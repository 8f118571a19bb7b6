// A small reader for classic libpcap captures (what `tcpdump -w` writes): both byte orders,
// microsecond and nanosecond timestamps; Ethernet (with VLAN tags), Linux cooked v1/v2, raw IP and
// BSD loopback link types. Yields the IPv4 packet of each record; everything else is skipped.

export class PcapError extends Error {}

export interface PcapPacket {
  /** Capture time, milliseconds since the epoch. */
  at: number
  /** The IPv4 packet (header onwards). */
  ip: Buffer
}

export const LINKTYPE = { NULL: 0, ETHERNET: 1, RAW_OLD: 12, RAW: 101, LINUX_SLL: 113, IPV4: 228, LINUX_SLL2: 276 } as const

const ETH_IPV4 = 0x0800
const ETH_VLAN = [0x8100, 0x88a8, 0x9100]

/** Offset of the IP header in a link-layer frame, or -1 when the frame holds no IPv4. */
function ipOffset (linkType: number, f: Buffer): number {
  switch (linkType) {
    case LINKTYPE.ETHERNET: {
      let off = 12
      if (f.length < off + 2) return -1
      let type = f.readUInt16BE(off)
      while (ETH_VLAN.includes(type) && f.length >= off + 6) { off += 4; type = f.readUInt16BE(off) }
      return type === ETH_IPV4 ? off + 2 : -1
    }
    case LINKTYPE.LINUX_SLL: return f.length >= 16 && f.readUInt16BE(14) === ETH_IPV4 ? 16 : -1
    case LINKTYPE.LINUX_SLL2: return f.length >= 20 && f.readUInt16BE(0) === ETH_IPV4 ? 20 : -1
    case LINKTYPE.NULL: return f.length >= 4 && (f.readUInt32LE(0) === 2 || f.readUInt32BE(0) === 2) ? 4 : -1
    case LINKTYPE.RAW: case LINKTYPE.RAW_OLD: case LINKTYPE.IPV4: return f.length > 0 && f[0] >> 4 === 4 ? 0 : -1
    default: return -1
  }
}

export interface Pcap {
  linkType: number
  packets: PcapPacket[]
  /** Records skipped: not IPv4 or a link type without IP. */
  skipped: number
  /** The file ended inside a record (a capture still being written, or cut). */
  truncated: boolean
}

export function readPcap (buf: Buffer): Pcap {
  if (buf.length < 24) throw new PcapError('too short for a pcap file header')
  const magicBE = buf.readUInt32BE(0)
  const magicLE = buf.readUInt32LE(0)
  let le: boolean
  let nano: boolean
  if (magicLE === 0xa1b2c3d4 || magicLE === 0xa1b23c4d) { le = true; nano = magicLE === 0xa1b23c4d } else if (magicBE === 0xa1b2c3d4 || magicBE === 0xa1b23c4d) { le = false; nano = magicBE === 0xa1b23c4d } else if (magicBE === 0x0a0d0d0a) {
    throw new PcapError('this is pcapng; write classic pcap (tcpdump -w does) or convert it: editcap -F pcap in.pcapng out.pcap')
  } else throw new PcapError('not a libpcap capture (bad magic number)')
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
    const ip = ipOffset(linkType, frame)
    if (ip < 0) { out.skipped++; continue }
    out.packets.push({ at: sec * 1000 + (nano ? frac / 1e6 : frac / 1e3), ip: frame.subarray(ip) })
  }
  return out
}
