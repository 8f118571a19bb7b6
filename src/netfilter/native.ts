// Loads the native addon (native/build/Release/sipalg_native.node) and maps its errors to SipalgError.
// The addon throws Error objects carrying `kind` (NOT_ROOT | QUEUE_BUSY | QUEUE_BIND | NFT | CT | SOCKET | CLOSED | ARG),
// `errno` and `why` (strerror text); toSipalgError() turns them into catalogue errors.
import { createRequire } from 'node:module'
import { existsSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { SipalgError } from '../errors.js'

export type Handle = { readonly __brand: 'sipalg-native-handle' }

export interface NativeQueueStats {
  queue: number
  packets: number
  bytes: number
  batches: number
  wakeups: number
  maxBatchSeen: number
  verdictsSent: number
  accepted: number
  dropped: number
  replaced: number
  flushes: number
  pendingVerdicts: number
  verdictErrors: number
  lastVerdictErrno: number
  sendErrors: number
  lastSendErrno: number
  enobufs: number
  recvErrors: number
  lastRecvErrno: number
  idGaps: number
  lastId: number
  noPayload: number
  parseErrors: number
  truncated: number
  rcvbufBytes: number
  sndbufBytes: number
  maxLen: number
  failOpen: boolean
  closed: boolean
}

export interface NativeSetElem {
  key: Buffer
  data: Buffer | null
  expiresMs: number | null
  timeoutMs: number | null
}

export interface NativeRule {
  chain: string
  /** The rule's netlink payload (expressions, userdata): searched for text, e.g. a comment. */
  raw: Buffer
}

export interface NativeNftOp {
  op: 'add' | 'delete'
  map: string
  key: Uint8Array
  data?: Uint8Array
  timeoutMs?: number
}

/** Per-packet words in the meta Uint32Array handed to the batch callback. */
export const META_STRIDE = 8
/** meta[6] flag bits */
export const PKT_TRUNCATED = 1
export const PKT_CSUM_NOT_READY = 2
export const PKT_GSO = 4

export interface NativeAddon {
  nfqOpen (queue: number, maxLen: number | undefined, rcvbufBytes: number | undefined, failOpen: boolean,
    maxBatch: number | undefined, cb: (data: Buffer, meta: Uint32Array, count: number) => void): Handle
  nfqVerdict (h: Handle, id: number, verdict: 0 | 1, payload?: Uint8Array): void
  nfqFlush (h: Handle): number
  nfqStats (h: Handle): NativeQueueStats
  nfqClose (h: Handle): void
  /** family 6: `table ip6 <table>` (IPv6 firewall sets); default 4. */
  nftOpen (table: string, family?: 4 | 6): Handle
  nftApply (h: Handle, ops: NativeNftOp[]): void
  nftList (h: Handle, map: string): NativeSetElem[]
  nftClose (h: Handle): void
  nftStats (h: Handle): { batches: number, ops: number, errors: number }
  /** Every rule of `table <family> <table>` in the handle's family (ip, or ip6 when opened with 6; any table, not only the handle's): chain and netlink payload. */
  nftRules (h: Handle, table: string): NativeRule[]
  /** [reply 0|1, src, dst, sport, dport] per entry; returns how many existed and were deleted. */
  ctDeleteMany (tuples: Uint32Array): number
  /** Same tuples; [origPackets, origBytes, replyPackets, replyBytes] each: -2 no entry, -1 not counted. */
  ctCounters (tuples: Uint32Array): Float64Array
  /** IPv6: [reply 0|1, src 4 words, dst 4 words, sport, dport] per entry. */
  ctDeleteMany6 (tuples: Uint32Array): number
  ctCounters6 (tuples: Uint32Array): Float64Array
  fixIpv4Udp (pkt: Uint8Array): boolean
  /** A listening TCP socket (SO_REUSEADDR, IP_TRANSPARENT when asked); ip null = any. Returns the fd. */
  tcpListen (ip: string | null, port: number, backlog: number, transparent: boolean): number
  /** A TCP socket bound to src (null/0 = any), non-blocking connect to dst started. Returns the fd. */
  tcpConnect (srcIp: string | null, srcPort: number, dstIp: string, dstPort: number, transparent: boolean): number
  /** One datagram to systemd's $NOTIFY_SOCKET (a path or an @abstract name). */
  sdNotify (socket: string, text: string): boolean
}

let cached: NativeAddon | undefined

/** Path of the built addon: $SIPALG_NATIVE, else the first native/build/Release/sipalg_native.node above this file. */
export function addonPath (): string {
  const env = process.env.SIPALG_NATIVE
  if (env) return resolve(env)
  let dir = dirname(fileURLToPath(import.meta.url))
  for (let i = 0; i < 6; i++) {
    const p = join(dir, 'native', 'build', 'Release', 'sipalg_native.node')
    if (existsSync(p)) return p
    const up = dirname(dir)
    if (up === dir) break
    dir = up
  }
  return resolve(dirname(fileURLToPath(import.meta.url)), '../../native/build/Release/sipalg_native.node')
}

/** The addon, loaded once. Throws SipalgError E201_NATIVE_MISSING with the reason when it cannot be loaded. */
export function loadNative (): NativeAddon {
  if (cached) return cached
  const path = addonPath()
  if (!existsSync(path)) throw new SipalgError('E201_NATIVE_MISSING', { why: `${path} does not exist` })
  try {
    cached = createRequire(import.meta.url)(path) as NativeAddon
  } catch (err) {
    throw new SipalgError('E201_NATIVE_MISSING', { why: `cannot load ${path}: ${(err as Error).message}` })
  }
  return cached
}

interface AddonError extends Error { kind?: string, errno?: number, why?: string, opIndex?: number }

/** Map an error thrown by the addon to a SipalgError (other errors are returned unchanged). */
export function toSipalgError (err: unknown, ctx: { queue?: number, what?: string }): unknown {
  const e = err as AddonError
  if (!e || typeof e !== 'object' || typeof e.kind !== 'string') return err
  const why = e.why ?? e.message
  let out: SipalgError | Error
  switch (e.kind) {
    case 'NOT_ROOT': out = new SipalgError('E200_NOT_ROOT', { what: ctx.what ?? e.message }); break
    case 'QUEUE_BUSY': out = new SipalgError('E202_QUEUE_BUSY', { queue: ctx.queue }); break
    case 'QUEUE_BIND': out = new SipalgError('E203_QUEUE_BIND', { queue: ctx.queue, why: e.message }); break
    case 'NFT': out = new SipalgError('E204_NFT', { what: e.message, why, errno: e.errno, opIndex: e.opIndex }); break
    case 'SOCKET': out = new SipalgError('E207_TRANSPARENT_SOCKET', { what: ctx.what ?? e.message, why, errno: e.errno }); break
    case 'CLOSED': out = new Error(e.message); break
    case 'ARG': out = new TypeError(e.message); break
    default: out = new Error(`${e.message}: ${why}`)
  }
  Object.assign(out, { errno: e.errno, cause: err })
  return out
}
