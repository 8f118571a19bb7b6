// IPv4/UDP and IPv6/UDP framing of queued packets: read the addresses, swap in a new UDP payload
// with every length and checksum recomputed (after a payload verdict the kernel trusts them).
import { ipv6FromBytes } from '../ip6.js'

export interface UdpPacket {
  src: string
  dst: string
  srcPort: number
  dstPort: number
  /** Offset of the UDP payload in the packet buffer. */
  payloadOffset: number
  payload: Buffer
  /** Fragment of a larger datagram the kernel did not reassemble. */
  fragment: boolean
  /** IP version; unset = 4 (IPv6 addresses are in RFC 5952 text form). */
  family?: 6
}

export type PacketParse =
  | { ok: true, udp: UdpPacket }
  | { ok: false, reason: 'short' | 'not-ipv4' | 'not-udp' | 'bad-length' | 'fragment' | 'bad-extension' }

const PROTO_UDP = 17

export function ipv4ToString (b: Buffer, off: number): string {
  return `${b[off]}.${b[off + 1]}.${b[off + 2]}.${b[off + 3]}`
}

export function parseUdp (pkt: Buffer): PacketParse {
  if (pkt.length < 20) return { ok: false, reason: 'short' }
  if (pkt[0] >> 4 === 6) return parseUdp6(pkt)
  if (pkt[0] >> 4 !== 4) return { ok: false, reason: 'not-ipv4' }
  const ihl = (pkt[0] & 0x0f) * 4
  const total = pkt.readUInt16BE(2)
  if (ihl < 20 || total > pkt.length || total < ihl + 8) return { ok: false, reason: 'bad-length' }
  if (pkt[9] !== PROTO_UDP) return { ok: false, reason: 'not-udp' }
  const frag = pkt.readUInt16BE(6)
  if ((frag & 0x1fff) !== 0 || (frag & 0x2000) !== 0) return { ok: false, reason: 'fragment' }
  const udpLen = pkt.readUInt16BE(ihl + 4)
  if (udpLen < 8 || ihl + udpLen > total) return { ok: false, reason: 'bad-length' }
  return { ok: true, udp: udpAt(pkt, ihl, udpLen, ipv4ToString(pkt, 12), ipv4ToString(pkt, 16)) }
}

/** The UDP datagram whose header is at `off`. */
function udpAt (pkt: Buffer, off: number, udpLen: number, src: string, dst: string): UdpPacket {
  return {
    src,
    dst,
    srcPort: pkt.readUInt16BE(off),
    dstPort: pkt.readUInt16BE(off + 2),
    payloadOffset: off + 8,
    payload: pkt.subarray(off + 8, off + udpLen),
    fragment: false
  }
}

const IPV6_HEADER = 40
// Extension headers a UDP datagram may sit behind (RFC 8200 4.1). ESP (50) hides what follows.
const HOP_BY_HOP = 0
const ROUTING = 43
const FRAGMENT = 44
const AUTH = 51
const DEST_OPTS = 60
const MOBILITY = 135
// A chain longer than this is an attack, not a phone (RFC 8200 allows each header once, dest opts twice).
const MAX_EXTENSIONS = 8

/**
 * IPv6/UDP: the fixed header, then the extension headers skipped by their own lengths (never past
 * the packet). A fragment (non-zero offset or more to come) is reported like an IPv4 one; an
 * atomic fragment (offset 0, no more) is a whole datagram and parsed through.
 */
function parseUdp6 (pkt: Buffer): PacketParse {
  if (pkt.length < IPV6_HEADER + 8) return { ok: false, reason: 'short' }
  const payloadLen = pkt.readUInt16BE(4)
  const end = IPV6_HEADER + payloadLen
  // Payload length 0 is a jumbogram (RFC 2675): never a SIP datagram.
  if (payloadLen === 0 || end > pkt.length) return { ok: false, reason: 'bad-length' }
  let next = pkt[6]
  let off = IPV6_HEADER
  for (let n = 0; next !== PROTO_UDP; n++) {
    if (n >= MAX_EXTENSIONS || off + 8 > end) return { ok: false, reason: 'bad-extension' }
    let len: number
    if (next === FRAGMENT) {
      const frag = pkt.readUInt16BE(off + 2)
      if ((frag & 0xfff8) !== 0 || (frag & 1) !== 0) return { ok: false, reason: 'fragment' }
      len = 8
    } else if (next === AUTH) {
      len = (pkt[off + 1] + 2) * 4
    } else if (next === HOP_BY_HOP || next === ROUTING || next === DEST_OPTS || next === MOBILITY) {
      len = (pkt[off + 1] + 1) * 8
    } else {
      return { ok: false, reason: 'not-udp' }
    }
    next = pkt[off]
    off += len
  }
  if (off + 8 > end) return { ok: false, reason: 'bad-length' }
  const udpLen = pkt.readUInt16BE(off + 4)
  if (udpLen < 8 || off + udpLen > end) return { ok: false, reason: 'bad-length' }
  return { ok: true, udp: { ...udpAt(pkt, off, udpLen, ipv6FromBytes(pkt, 8), ipv6FromBytes(pkt, 24)), family: 6 } }
}

function sum16 (b: Buffer, start: number, end: number, acc: number): number {
  let i = start
  for (; i + 1 < end; i += 2) acc += (b[i] << 8) | b[i + 1]
  if (i < end) acc += b[i] << 8
  return acc
}

function fold (acc: number): number {
  while (acc > 0xffff) acc = (acc & 0xffff) + (acc >>> 16)
  return acc
}

export function ipHeaderChecksum (pkt: Buffer, ihl: number): number {
  const saved = pkt.readUInt16BE(10)
  pkt.writeUInt16BE(0, 10)
  const c = (~fold(sum16(pkt, 0, ihl, 0))) & 0xffff
  pkt.writeUInt16BE(saved, 10)
  return c
}

export function udpChecksum (pkt: Buffer, ihl: number): number {
  // Pseudo header: source, destination, protocol, UDP length.
  return udpSum(pkt, ihl, 12, 20)
}

/**
 * The IPv6 UDP checksum (mandatory: RFC 8200 8.1) of the UDP header at `udpOff`; the pseudo
 * header takes the fixed header's source and destination (sipalg changes no payload of a packet
 * whose routing header still has segments left, so that destination is the final one).
 */
export function udp6Checksum (pkt: Buffer, udpOff: number): number {
  return udpSum(pkt, udpOff, 8, 40)
}

/** UDP checksum over the addresses at pkt[addrStart, addrEnd), next header 17, UDP length and the datagram. */
function udpSum (pkt: Buffer, udpOff: number, addrStart: number, addrEnd: number): number {
  const udpLen = pkt.readUInt16BE(udpOff + 4)
  let acc = sum16(pkt, addrStart, addrEnd, 0) + PROTO_UDP + udpLen
  const savedCk = pkt.readUInt16BE(udpOff + 6)
  pkt.writeUInt16BE(0, udpOff + 6)
  acc = sum16(pkt, udpOff, udpOff + udpLen, acc)
  pkt.writeUInt16BE(savedCk, udpOff + 6)
  const c = (~fold(acc)) & 0xffff
  return c === 0 ? 0xffff : c
}

/** IPv6 payload length, UDP length and checksum of a packet whose UDP payload ends it, in place. */
function fixLengthsAndChecksums6 (out: Buffer, udpOff: number): void {
  out.writeUInt16BE(out.length - IPV6_HEADER, 4)
  out.writeUInt16BE(out.length - udpOff, udpOff + 4)
  out.writeUInt16BE(udp6Checksum(out, udpOff), udpOff + 6)
}

/** Recomputes IP total length, header checksum, UDP length and checksum in place (JS). */
export function fixLengthsAndChecksums (out: Buffer): void {
  const ihl = (out[0] & 0x0f) * 4
  out.writeUInt16BE(out.length, 2)
  out.writeUInt16BE(ipHeaderChecksum(out, ihl), 10)
  out.writeUInt16BE(out.length - ihl, ihl + 4)
  out.writeUInt16BE(udpChecksum(out, ihl), ihl + 6)
}

/**
 * A new packet with the same IP/UDP header and a new payload; lengths and checksums recomputed
 * by `fix` (the daemon passes the addon's C version: ~5 µs less per packet than JS).
 */
export function withPayload (pkt: Buffer, udp: UdpPacket, payload: Buffer,
  fix: (b: Buffer) => void = fixLengthsAndChecksums): Buffer {
  const out = Buffer.allocUnsafe(udp.payloadOffset + payload.length)
  pkt.copy(out, 0, 0, udp.payloadOffset)
  payload.copy(out, udp.payloadOffset)
  // The addon's fix is IPv4's; an IPv6 packet (never changed by today's policy) is fixed here.
  if (udp.family === 6) fixLengthsAndChecksums6(out, udp.payloadOffset - 8); else fix(out)
  return out
}

/**
 * Builds an IPv6/UDP packet, optionally behind extension headers (raw bytes, each starting with
 * its next-header byte placeholder, which is filled in); used by tests to make queue-shaped input.
 */
export function buildUdp6 (src: Buffer, srcPort: number, dst: Buffer, dstPort: number, payload: Buffer,
  extensions: Array<{ type: number, bytes: Buffer }> = []): Buffer {
  const ext = Buffer.concat(extensions.map(e => e.bytes))
  const udpOff = IPV6_HEADER + ext.length
  const out = Buffer.alloc(udpOff + 8 + payload.length)
  out[0] = 0x60
  out[6] = extensions.length === 0 ? PROTO_UDP : extensions[0].type
  out[7] = 64
  src.copy(out, 8)
  dst.copy(out, 24)
  ext.copy(out, IPV6_HEADER)
  let at = IPV6_HEADER
  extensions.forEach((e, i) => { out[at] = i + 1 < extensions.length ? extensions[i + 1].type : PROTO_UDP; at += e.bytes.length })
  out.writeUInt16BE(srcPort, udpOff)
  out.writeUInt16BE(dstPort, udpOff + 2)
  payload.copy(out, udpOff + 8)
  fixLengthsAndChecksums6(out, udpOff)
  return out
}

/** Builds an IPv4/UDP packet; used by tests and benchmarks to make queue-shaped input. */
export function buildUdp (src: string, srcPort: number, dst: string, dstPort: number, payload: Buffer): Buffer {
  const out = Buffer.alloc(28 + payload.length)
  out[0] = 0x45
  out.writeUInt16BE(out.length, 2)
  out[8] = 64
  out[9] = PROTO_UDP
  src.split('.').forEach((o, i) => { out[12 + i] = Number(o) })
  dst.split('.').forEach((o, i) => { out[16 + i] = Number(o) })
  out.writeUInt16BE(srcPort, 20)
  out.writeUInt16BE(dstPort, 22)
  out.writeUInt16BE(8 + payload.length, 24)
  payload.copy(out, 28)
  out.writeUInt16BE(ipHeaderChecksum(out, 20), 10)
  out.writeUInt16BE(udpChecksum(out, 20), 26)
  return out
}
