// HEP version 3 (the Homer Encapsulation Protocol, what Homer and `sngrep -L` read): one captured SIP
// datagram with its addresses, ports and capture time, encoded as "HEP3", the total length, then
// chunks of (vendor 0, type, length including its 6-byte head, value). Pure: bytes in, bytes out.
//
// The chunk order is the one capture agents use and that sngrep 1.x depends on: sngrep reads the
// fixed head (family … capture id), the two addresses, the auth key only when it has a password set,
// then the payload at that position; Homer reads chunks by type. The correlation id goes last, so a
// receiver that reads by position never mistakes it for the payload.

import { ipv4ToNumber } from '../rewrite/cidr.js'
import { ipv6Bytes, looksIpv6 } from '../ip6.js'

/** Chunk types of HEP3 (vendor 0, the generic chunks). */
export const CHUNK = {
  IP_FAMILY: 0x0001,
  IP_PROTOCOL: 0x0002,
  IPV4_SRC: 0x0003,
  IPV4_DST: 0x0004,
  IPV6_SRC: 0x0005,
  IPV6_DST: 0x0006,
  SRC_PORT: 0x0007,
  DST_PORT: 0x0008,
  TIME_SEC: 0x0009,
  TIME_USEC: 0x000a,
  PROTOCOL_TYPE: 0x000b,
  CAPTURE_ID: 0x000c,
  AUTH_KEY: 0x000e,
  PAYLOAD: 0x000f,
  CORRELATION_ID: 0x0011
} as const

const AF_INET = 2
const AF_INET6 = 10
const IPPROTO_UDP = 17
const PROTOCOL_SIP = 1
const CHUNK_HEAD = 6
/** Largest HEP packet: its length field is 16 bits. */
export const HEP_MAX_BYTES = 0xffff

export interface HepEndpoint { ip: string, port: number }

export interface HepMessage {
  src: HepEndpoint
  dst: HepEndpoint
  /** Capture time, microseconds since the epoch. */
  timeUs: number
  /** Capture agent id (hep_id): which sipalg sent it. */
  captureId: number
  /** The collector's auth key (hep_password), if it wants one. */
  authKey?: string
  /** Groups the messages of one call in Homer: the Call-ID. */
  correlationId?: string
  payload: Buffer
}

function chunk (type: number, value: Buffer): Buffer {
  const head = Buffer.alloc(CHUNK_HEAD)
  head.writeUInt16BE(0, 0)
  head.writeUInt16BE(type, 2)
  head.writeUInt16BE(CHUNK_HEAD + value.length, 4)
  return Buffer.concat([head, value])
}

const u8 = (type: number, v: number): Buffer => chunk(type, Buffer.from([v]))
const u16 = (type: number, v: number): Buffer => { const b = Buffer.alloc(2); b.writeUInt16BE(v); return chunk(type, b) }
const u32 = (type: number, v: number): Buffer => { const b = Buffer.alloc(4); b.writeUInt32BE(v >>> 0); return chunk(type, b) }

function ipv4 (type: number, ip: string): Buffer {
  const n = ipv4ToNumber(ip)
  if (n === null) throw new RangeError(`HEP: not an IPv4 address: ${ip}`)
  return u32(type, n)
}

function ipv6 (type: number, ip: string): Buffer {
  const b = ipv6Bytes(ip)
  if (b === null) throw new RangeError(`HEP: not an IPv6 address: ${ip}`)
  return chunk(type, b)
}

/** The family chunk's value and the two address chunks: both ends of one family. */
function addresses (m: HepMessage): { family: number, src: Buffer, dst: Buffer } {
  const v6 = looksIpv6(m.src.ip)
  if (v6 !== looksIpv6(m.dst.ip)) throw new RangeError(`HEP: ${m.src.ip} and ${m.dst.ip} are of two address families`)
  return v6
    ? { family: AF_INET6, src: ipv6(CHUNK.IPV6_SRC, m.src.ip), dst: ipv6(CHUNK.IPV6_DST, m.dst.ip) }
    : { family: AF_INET, src: ipv4(CHUNK.IPV4_SRC, m.src.ip), dst: ipv4(CHUNK.IPV4_DST, m.dst.ip) }
}

/**
 * The HEP3 packet of one SIP datagram, IPv4 or IPv6. Throws RangeError for what cannot be encoded
 * (an address that is no IP literal, two families, a port or id out of range, a packet over 64 KiB): the sender counts it as an
 * error and the SIP itself is untouched.
 */
export function encodeHep3 (m: HepMessage): Buffer {
  for (const p of [m.src.port, m.dst.port]) if (!Number.isInteger(p) || p < 0 || p > 0xffff) throw new RangeError(`HEP: bad port ${p}`)
  if (!Number.isInteger(m.captureId) || m.captureId < 0 || m.captureId > 0xffffffff) throw new RangeError(`HEP: bad capture id ${m.captureId}`)
  const sec = Math.floor(m.timeUs / 1e6)
  const addr = addresses(m)
  const chunks = [
    u8(CHUNK.IP_FAMILY, addr.family),
    u8(CHUNK.IP_PROTOCOL, IPPROTO_UDP),
    u16(CHUNK.SRC_PORT, m.src.port),
    u16(CHUNK.DST_PORT, m.dst.port),
    u32(CHUNK.TIME_SEC, sec),
    u32(CHUNK.TIME_USEC, Math.floor(m.timeUs - sec * 1e6)),
    u8(CHUNK.PROTOCOL_TYPE, PROTOCOL_SIP),
    u32(CHUNK.CAPTURE_ID, m.captureId),
    addr.src,
    addr.dst,
    ...(m.authKey === undefined ? [] : [chunk(CHUNK.AUTH_KEY, Buffer.from(m.authKey, 'utf8'))]),
    chunk(CHUNK.PAYLOAD, m.payload),
    ...(m.correlationId === undefined ? [] : [chunk(CHUNK.CORRELATION_ID, Buffer.from(m.correlationId, 'latin1'))])
  ]
  const length = 6 + chunks.reduce((n, c) => n + c.length, 0)
  if (length > HEP_MAX_BYTES) throw new RangeError(`HEP: ${length} bytes do not fit one HEP3 packet`)
  const head = Buffer.alloc(6)
  head.write('HEP3', 0, 'latin1')
  head.writeUInt16BE(length, 4)
  return Buffer.concat([head, ...chunks], length)
}
