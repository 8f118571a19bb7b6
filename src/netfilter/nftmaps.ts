// nftables map elements over netlink (libnftnl + libmnl): persistent socket, one all-or-nothing batch per
// apply(), returns once the kernel acked every op. Family ip (`table ip NAME`). No cache, no nft process.
import { loadNative, toSipalgError } from './native.js'
import type { Handle, NativeAddon, NativeRule } from './native.js'
import { isIPv4 } from 'node:net'
import { ipv6Bytes, ipv6FromBytes } from '../ip6.js'

export type NftOp = { op: 'add' | 'delete', map: string, key: Buffer, data?: Buffer, timeoutMs?: number }

export interface NftElement {
  key: Buffer
  data: Buffer | null
  /** ms until the kernel removes it (NFTNL_SET_ELEM_EXPIRATION), null without a timeout */
  expiresMs: number | null
  /** the element's timeout in ms, null when none */
  timeoutMs: number | null
}

/** `inet_service` key/data: 2 bytes, port in network order. */
export function portKey (port: number): Buffer {
  checkPort(port)
  const b = Buffer.allocUnsafe(2)
  b.writeUInt16BE(port, 0)
  return b
}

/** `ipv4_addr . inet_service` key/data: 8 bytes = address, port (network order), 2 zero bytes. */
export function addrPortKey (ip: string, port: number): Buffer {
  checkPort(port)
  if (!isIPv4(ip)) throw new TypeError(`not an IPv4 address: ${ip}`)
  const b = Buffer.alloc(8)
  const p = ip.split('.')
  for (let i = 0; i < 4; i++) b[i] = Number(p[i])
  b.writeUInt16BE(port, 4)
  return b
}

/** `ipv4_addr . inet_service . inet_service` key: 12 bytes = address, then each port padded to 4 bytes. */
export function addrPortPortKey (ip: string, port1: number, port2: number): Buffer {
  checkPort(port2)
  const b = Buffer.alloc(12)
  addrPortKey(ip, port1).copy(b, 0)
  b.writeUInt16BE(port2, 8)
  return b
}

/** `ipv4_addr` key/data: 4 bytes. */
export function addrKey (ip: string): Buffer {
  return addrPortKey(ip, 0).subarray(0, 4)
}

function v6 (ip: string): Buffer {
  const b = ipv6Bytes(ip)
  if (b === null) throw new TypeError(`not an IPv6 address: ${ip}`)
  return b
}

/** `ipv6_addr . inet_service` key: 20 bytes = address, port (network order), 2 zero bytes. */
export function addr6PortKey (ip: string, port: number): Buffer {
  checkPort(port)
  const b = Buffer.alloc(20)
  v6(ip).copy(b, 0)
  b.writeUInt16BE(port, 16)
  return b
}

/** `ipv6_addr . ipv6_addr . inet_service` key: 36 bytes = far address, phone address, port padded to 4 bytes. */
export function addr6Addr6PortKey (far: string, phone: string, port: number): Buffer {
  checkPort(port)
  const b = Buffer.alloc(36)
  v6(far).copy(b, 0)
  v6(phone).copy(b, 16)
  b.writeUInt16BE(port, 32)
  return b
}

/** Decode a 20-byte ip6 . port or a 36-byte ip6 . ip6 . port key (as list() of table ip6 returns them). */
export function decodeKey6 (b: Buffer): { ip: string, dst?: string, port: number } {
  if (b.length === 20) return { ip: ipv6FromBytes(b, 0), port: b.readUInt16BE(16) }
  if (b.length === 36) return { ip: ipv6FromBytes(b, 0), dst: ipv6FromBytes(b, 16), port: b.readUInt16BE(32) }
  throw new TypeError(`cannot decode a ${b.length}-byte IPv6 key`)
}

/** Decode a 2-byte port, an 8-byte addr.port or a 12-byte addr.port.port (as used by list()). */
export function decodeKey (b: Buffer): { ip?: string, sport?: number, port: number } {
  if (b.length === 2) return { port: b.readUInt16BE(0) }
  if (b.length >= 10) return { ip: `${b[0]}.${b[1]}.${b[2]}.${b[3]}`, sport: b.readUInt16BE(4), port: b.readUInt16BE(8) }
  if (b.length >= 6) return { ip: `${b[0]}.${b[1]}.${b[2]}.${b[3]}`, port: b.readUInt16BE(4) }
  if (b.length === 4) return { ip: `${b[0]}.${b[1]}.${b[2]}.${b[3]}`, port: 0 }
  throw new TypeError(`cannot decode a ${b.length}-byte key`)
}

export function checkPort (port: number): void {
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new TypeError(`not a port: ${port}`)
}

export class NftMaps {
  readonly table: string
  private readonly native: NativeAddon
  private readonly handle: Handle
  private closed = false

  private constructor (native: NativeAddon, handle: Handle, table: string) {
    this.native = native
    this.handle = handle
    this.table = table
  }

  /** Open a persistent netlink socket for `table ip <table>` (`table ip6 <table>` with family 6; checked to exist: E204 if not). */
  static open (table: string, family: 4 | 6 = 4): NftMaps {
    const native = loadNative()
    try {
      return new NftMaps(native, family === 6 ? native.nftOpen(table, 6) : native.nftOpen(table), table)
    } catch (err) {
      throw toSipalgError(err, { what: `opening table ${family === 6 ? 'ip6' : 'ip'} ${table}` })
    }
  }

  /**
   * Apply ops in one netlink batch, all-or-nothing; returns after the kernel acked. Adding an existing key
   * with the same data refreshes its timeout; with other data it fails (EEXIST): send delete+add in one
   * batch. Deleting a missing element fails (ENOENT). On failure nothing was applied and a SipalgError
   * E204_NFT is thrown; details.errno and details.opIndex say which op and why.
   */
  apply (ops: NftOp[]): void {
    this.assertOpen()
    if (ops.length === 0) return
    try {
      this.native.nftApply(this.handle, ops)
    } catch (err) {
      throw toSipalgError(err, { what: `a batch on table ip ${this.table}` })
    }
  }

  /** Dump a map's elements (used at startup to adopt mappings left by a previous run). */
  list (map: string): NftElement[] {
    this.assertOpen()
    try {
      return this.native.nftList(this.handle, map)
    } catch (err) {
      throw toSipalgError(err, { what: `listing map ip ${this.table} ${map}` })
    }
  }

  /**
   * The rules of any `table ip <table>` on this socket (`table ip6 <table>` on one opened with
   * family 6, e.g. ip6tables-nft's `filter`; one netlink dump, ~20 µs for a handful): how
   * src/netfilter/watch.ts sees, without running nft, that a table or chain was flushed.
   * An absent table lists no rules.
   */
  rules (table: string): NativeRule[] {
    this.assertOpen()
    try {
      return this.native.nftRules(this.handle, table)
    } catch (err) {
      throw toSipalgError(err, { what: `listing the rules of table ip ${table}` })
    }
  }

  stats (): { batches: number, ops: number, errors: number } {
    return this.native.nftStats(this.handle)
  }

  /** Idempotent. */
  close (): void {
    if (this.closed) return
    this.closed = true
    this.native.nftClose(this.handle)
  }

  private assertOpen (): void {
    if (this.closed) throw new Error(`NftMaps for table ip ${this.table} is closed`)
  }
}
