// NFQUEUE consumer: batches of queued IPv4 packets in, verdicts (optionally with a new payload) out.
//
// One JS call per socket wake-up carries every packet that was ready (up to maxBatch, default 256).
// verdict() only appends to a buffer in C; pending verdicts are sent packed into one send() by flush(),
// automatically when the buffer fills, and automatically right after each onPackets callback returns —
// so verdicts given synchronously inside the callback need no flush(); verdicts given later (after an
// await) need flush() (or are sent with the next batch's flush).
import { readFileSync } from 'node:fs'
import { loadNative, toSipalgError, META_STRIDE, PKT_TRUNCATED, PKT_CSUM_NOT_READY, PKT_GSO } from './native.js'
import type { Handle, NativeAddon, NativeQueueStats } from './native.js'
import { SipalgError } from '../errors.js'

export { PKT_TRUNCATED, PKT_CSUM_NOT_READY, PKT_GSO }

/**
 * In place: IPv4 total length := pkt.length, UDP length, IP header checksum and UDP checksum recomputed
 * (native, ~0.1 µs for 500 bytes). Returns false and leaves pkt untouched if it is not IPv4/UDP.
 */
export function fixIpv4Udp (pkt: Uint8Array): boolean {
  return loadNative().fixIpv4Udp(pkt)
}

export interface QueuedPacket {
  /** kernel packet id, pass it to verdict() */
  id: number
  /** the full IPv4 packet (a view into the batch's shared buffer: copy it if you keep it past the verdict) */
  payload: Buffer
  /** skb mark (0 when none) */
  mark: number
  /** input / output interface index (0 when none) */
  indev: number
  outdev: number
  /** PKT_TRUNCATED | PKT_CSUM_NOT_READY | PKT_GSO */
  flags: number
}

export interface QueueOptions {
  /** queue number 0..65535 */
  queue: number
  /** kernel queue max length (default 16384) */
  maxLen?: number
  /** netlink socket receive buffer (default 32 MB; SO_RCVBUFFORCE as root, else SO_RCVBUF capped by rmem_max) */
  rcvbufBytes?: number
  /** NFQA_CFG_F_FAIL_OPEN: when the queue or socket is full the kernel accepts instead of dropping */
  failOpen?: boolean
  /** max packets per JS batch (default 256) */
  maxBatch?: number
}

/** Kernel's view from /proc/net/netfilter/nfnetlink_queue (this process's network namespace). */
export interface KernelQueueStats {
  portId: number
  /** packets waiting for a verdict right now */
  queueTotal: number
  copyMode: number
  copyRange: number
  /** dropped because the queue was full (fail-open off) */
  queueDropped: number
  /** dropped because our socket buffer was full (fail-open off) */
  userDropped: number
  /** last packet id the kernel assigned */
  idSequence: number
}

export interface QueueStats extends NativeQueueStats {
  kernel: KernelQueueStats | null
  /**
   * Packets the kernel gave an id but could not deliver to our socket (socket buffer overrun), inferred from
   * gaps in the id sequence plus ids assigned but not yet seen by us. With failOpen they were accepted
   * unmodified (a silent bypass); without it they were dropped (and also show in kernel.userDropped).
   * NOT counted anywhere (by the kernel either): fail-open bypasses because the *queue* was full — those
   * get no id. Watch kernel.queueTotal against maxLen for that.
   */
  overrunsInferred: number
  failOpenBypassesInferred: number
}

const VERDICT = { accept: 1, drop: 0 } as const

export function readKernelQueueStats (queue: number): KernelQueueStats | null {
  let text: string
  try { text = readFileSync('/proc/net/netfilter/nfnetlink_queue', 'utf8') } catch { return null }
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/).map(Number)
    if (f.length >= 8 && f[0] === queue) {
      return { portId: f[1], queueTotal: f[2], copyMode: f[3], copyRange: f[4], queueDropped: f[5], userDropped: f[6], idSequence: f[7] }
    }
  }
  return null
}

export class PacketQueue {
  readonly queue: number
  private readonly native: NativeAddon
  private readonly handle: Handle
  private cb: ((batch: QueuedPacket[]) => void) | null = null
  private backlog: QueuedPacket[][] = []
  private closed = false
  private readonly failOpen: boolean

  private constructor (native: NativeAddon, handle: Handle, queue: number, failOpen: boolean) {
    this.native = native
    this.handle = handle
    this.queue = queue
    this.failOpen = failOpen
  }

  /** Bind the queue. Throws E203 (bad number / bind failure), E202 (bound by another process), E200 (no CAP_NET_ADMIN), E201 (addon missing). */
  static open (opts: QueueOptions): PacketQueue {
    const q = opts.queue
    if (typeof q !== 'number' || !Number.isInteger(q) || q < 0 || q > 65535) {
      throw new SipalgError('E203_QUEUE_BIND', { queue: q, why: 'the queue number must be an integer 0..65535' })
    }
    const native = loadNative()
    let self: PacketQueue | undefined
    const pending: QueuedPacket[][] = []
    const onBatch = (data: Buffer, meta: Uint32Array, count: number): void => {
      const batch = decode(data, meta, count)
      if (self) self.dispatch(batch); else pending.push(batch)
    }
    let handle: Handle
    try {
      handle = native.nfqOpen(q, opts.maxLen, opts.rcvbufBytes, opts.failOpen === true, opts.maxBatch, onBatch)
    } catch (err) {
      throw toSipalgError(err, { queue: q, what: `binding nfqueue ${q}` })
    }
    self = new PacketQueue(native, handle, q, opts.failOpen === true)
    self.backlog.push(...pending)
    return self
  }

  /** Receive batches (one call per wake-up). Batches that arrived before this call are delivered on the next tick. */
  onPackets (cb: (batch: QueuedPacket[]) => void): void {
    this.assertOpen()
    this.cb = cb
    if (this.backlog.length) {
      const b = this.backlog
      this.backlog = []
      queueMicrotask(() => {
        for (const batch of b) this.dispatch(batch)
        if (!this.closed) this.native.nfqFlush(this.handle)
      })
    }
  }

  private dispatch (batch: QueuedPacket[]): void {
    if (this.cb) this.cb(batch)
    else this.backlog.push(batch)
  }

  /** Queue a verdict; with payload the packet is replaced (IPv4 checksums/lengths must already be right). */
  verdict (id: number, v: 'accept' | 'drop', payload?: Uint8Array): void {
    this.assertOpen()
    const code = VERDICT[v]
    if (code === undefined) throw new TypeError(`verdict must be 'accept' or 'drop', got ${String(v)}`)
    try {
      this.native.nfqVerdict(this.handle, id, code, payload)
    } catch (err) { throw toSipalgError(err, { queue: this.queue }) }
  }

  /** Send every pending verdict now (one send()). Returns how many verdict messages were sent. */
  flush (): number {
    this.assertOpen()
    return this.native.nfqFlush(this.handle)
  }

  stats (): QueueStats {
    const s = this.native.nfqStats(this.handle)
    const kernel = this.closed ? null : readKernelQueueStats(this.queue)
    const unseen = kernel && kernel.idSequence > s.lastId ? kernel.idSequence - s.lastId : 0
    const overruns = s.idGaps + unseen
    return { ...s, kernel, overrunsInferred: overruns, failOpenBypassesInferred: this.failOpen ? overruns : 0 }
  }

  /** Flush pending verdicts and unbind. Idempotent. Packets still queued in the kernel are dropped by it on unbind. */
  close (): void {
    if (this.closed) return
    this.closed = true
    this.cb = null
    this.backlog = []
    this.native.nfqClose(this.handle)
  }

  private assertOpen (): void {
    if (this.closed) throw new Error(`nfqueue ${this.queue}: PacketQueue is closed`)
  }
}

function decode (data: Buffer, meta: Uint32Array, count: number): QueuedPacket[] {
  const out = new Array<QueuedPacket>(count)
  for (let i = 0, m = 0; i < count; i++, m += META_STRIDE) {
    const off = meta[m + 1]
    out[i] = {
      id: meta[m],
      payload: data.subarray(off, off + meta[m + 2]),
      mark: meta[m + 3],
      indev: meta[m + 4],
      outdev: meta[m + 5],
      flags: meta[m + 6],
    }
  }
  return out
}
