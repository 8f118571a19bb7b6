// The hop between workers (docs/workers.md): a worker that reads a packet whose phone another
// worker owns (src/workers/shard.ts) sends it to the owner over a unix socket; the owner runs the
// ALG, puts in the kernel what the released packet relies on, and only then answers with the
// verdict and the new payload, which the reader gives the kernel. So a mapping is still in the
// kernel before the SIP that advertises it leaves, whichever worker read it.
//
// Frames, both ways: u32 length of the rest, u32 tag, then a request's packet, or a reply's
// action byte (0 accept as it came, 1 accept with the payload that follows, 2 drop).

import { createConnection, createServer, type Server, type Socket } from 'node:net'
import { rmSync } from 'node:fs'
import type { Verdict } from '../alg.js'
import { LatencyHistogram } from '../histogram.js'
import type { HandoffStatus } from '../status.js'

/** What the reader gives its verdicts to: the PacketQueue (src/netfilter/queue.ts). */
export interface VerdictSink {
  verdict: (id: number, v: 'accept' | 'drop', payload?: Uint8Array) => void
  flush: () => number
}

const ACCEPT_AS_IS = 0
const ACCEPT_PAYLOAD = 1
const DROP = 2

/** Splits a byte stream into frames; keeps the partial tail for the next chunk. */
class FrameReader {
  private buf: Buffer = Buffer.alloc(0)
  push (chunk: Buffer, each: (tag: number, body: Buffer) => void): void {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk])
    let off = 0
    while (this.buf.length - off >= 8) {
      const len = this.buf.readUInt32LE(off)
      if (this.buf.length - off - 4 < len) break
      each(this.buf.readUInt32LE(off + 4), this.buf.subarray(off + 8, off + 4 + len))
      off += 4 + len
    }
    this.buf = off === this.buf.length ? Buffer.alloc(0) : Buffer.from(this.buf.subarray(off))
  }
}

function frame (tag: number, head: number | null, body: Uint8Array | undefined): Buffer {
  const extra = head === null ? 0 : 1
  const n = body?.length ?? 0
  const out = Buffer.allocUnsafe(8 + extra + n)
  out.writeUInt32LE(4 + extra + n, 0)
  out.writeUInt32LE(tag, 4)
  if (head !== null) out[8] = head
  if (body !== undefined) out.set(body, 8 + extra)
  return out
}

export function encodeVerdict (tag: number, v: Verdict): Buffer {
  if (v.action === 'drop') return frame(tag, DROP, undefined)
  return v.payload === undefined ? frame(tag, ACCEPT_AS_IS, undefined) : frame(tag, ACCEPT_PAYLOAD, v.payload)
}

export function decodeVerdict (body: Buffer): Verdict {
  if (body[0] === DROP) return { action: 'drop' }
  return body[0] === ACCEPT_PAYLOAD ? { action: 'accept', payload: Buffer.from(body.subarray(1)) } : { action: 'accept' }
}

export const encodeRequest = (tag: number, pkt: Uint8Array): Buffer => frame(tag, null, pkt)

/**
 * The owner's side: every packet of one read is decided together (one kernel commit for all, as a
 * queue batch), the answers written in one send.
 */
export function serveHandoff (path: string, decide: (packets: Buffer[]) => Verdict[], onServed: (n: number) => void): Server {
  rmSync(path, { force: true })
  const server = createServer(conn => {
    const reader = new FrameReader()
    conn.on('data', (chunk: Buffer) => {
      const tags: number[] = []
      const packets: Buffer[] = []
      reader.push(chunk, (tag, body) => { tags.push(tag); packets.push(body) })
      if (packets.length === 0) return
      const verdicts = decide(packets)
      conn.write(Buffer.concat(verdicts.map((v, i) => encodeVerdict(tags[i], v))))
      onServed(packets.length)
    })
    conn.on('error', () => conn.destroy())
  })
  server.listen(path)
  server.unref()
  return server
}

interface Pending { id: number, owner: number, sentAt: bigint }

/**
 * Packets one reader may have waiting on one owner. An owner that falls behind (more SIP than one
 * core can rewrite) would otherwise hold every packet past the timeout; past this many, new ones
 * pass as they came at once, as the kernel does when a queue is full.
 */
export const MAX_IN_FLIGHT = 4096

/** The reader's side: hands packets to their owners and gives the kernel the answers. */
export class HandoffClient {
  private readonly conns: Array<Socket | null>
  private readonly downUntil: number[]
  private readonly inFlight: number[]
  private readonly pending = new Map<number, Pending>()
  private nextTag = 1
  private sent = 0
  private failed = 0
  served = 0
  private readonly rtt = new LatencyHistogram()
  private readonly sweep: NodeJS.Timeout
  private readonly corked = new Set<Socket>()
  private closed = false

  constructor (private readonly paths: readonly string[], private readonly sink: VerdictSink,
    private readonly timeoutMs = 1000, private readonly now: () => number = Date.now) {
    this.conns = paths.map(() => null)
    this.downUntil = paths.map(() => 0)
    this.inFlight = paths.map(() => 0)
    this.sweep = setInterval(() => { this.expire() }, Math.max(10, Math.floor(timeoutMs / 5)))
    this.sweep.unref()
  }

  /** Sends one queued packet (copied: the queue's buffer is reused) to the worker that owns it. */
  send (owner: number, id: number, pkt: Uint8Array): void {
    this.sent++
    const conn = this.inFlight[owner] >= MAX_IN_FLIGHT ? null : this.connection(owner)
    if (conn === null) { this.passAsIs(id); return }
    this.inFlight[owner]++
    const tag = this.nextTag
    this.nextTag = this.nextTag >= 0xffffffff ? 1 : this.nextTag + 1
    this.pending.set(tag, { id, owner, sentAt: process.hrtime.bigint() })
    // The packets of one queue batch for one owner leave in one send (uncorked after this tick).
    if (!this.corked.has(conn)) {
      conn.cork()
      if (this.corked.size === 0) process.nextTick(() => { this.uncork() })
      this.corked.add(conn)
    }
    conn.write(encodeRequest(tag, pkt))
  }

  private uncork (): void {
    for (const c of this.corked) c.uncork()
    this.corked.clear()
  }

  stats (): HandoffStatus {
    return { sent: this.sent, failed: this.failed, served: this.served, rttUs: this.rtt.summary() }
  }

  /** Passes whatever is still waiting for an owner as it came; call it before the queue closes. */
  close (): void {
    if (this.closed) return
    this.closed = true
    clearInterval(this.sweep)
    for (const c of this.conns) c?.destroy()
    if (this.pending.size === 0) return
    for (const [tag, p] of this.pending) { this.settle(tag, p); this.passAsIs(p.id) }
    this.sink.flush()
  }

  private settle (tag: number, p: Pending): void {
    this.pending.delete(tag)
    this.inFlight[p.owner]--
  }

  /** An owner that went away (restarting) is not dialled again for a moment: its packets pass as they came. */
  private connection (owner: number): Socket | null {
    const have = this.conns[owner]
    if (have !== null) return have
    if (this.now() < this.downUntil[owner]) return null
    const conn = createConnection(this.paths[owner])
    const reader = new FrameReader()
    conn.on('data', (chunk: Buffer) => {
      reader.push(chunk, (tag, body) => { this.answered(tag, body) })
      this.sink.flush()
    })
    conn.on('error', () => conn.destroy())
    conn.on('close', () => {
      if (this.closed) return
      if (this.conns[owner] === conn) this.conns[owner] = null
      this.downUntil[owner] = this.now() + 100
      let any = false
      for (const [tag, p] of this.pending) if (p.owner === owner) { this.settle(tag, p); this.passAsIs(p.id); any = true }
      if (any) this.sink.flush()
    })
    this.conns[owner] = conn
    return conn
  }

  private answered (tag: number, body: Buffer): void {
    const p = this.pending.get(tag)
    if (p === undefined) return // timed out already: it passed as it came
    this.settle(tag, p)
    const v = decodeVerdict(body)
    if (v.action === 'drop') this.sink.verdict(p.id, 'drop')
    else this.sink.verdict(p.id, 'accept', v.payload)
    this.rtt.record(Number(process.hrtime.bigint() - p.sentAt) / 1000)
  }

  private passAsIs (id: number): void {
    this.failed++
    this.sink.verdict(id, 'accept')
  }

  private expire (): void {
    if (this.pending.size === 0) return
    const limit = process.hrtime.bigint() - BigInt(this.timeoutMs) * 1_000_000n
    let any = false
    for (const [tag, p] of this.pending) {
      if (p.sentAt > limit) break // insertion order = send order
      this.settle(tag, p)
      this.passAsIs(p.id)
      any = true
    }
    if (any) this.sink.flush()
  }
}
