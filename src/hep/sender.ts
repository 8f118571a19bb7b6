// Sends every SIP message sipalg handles to a HEP collector (Homer, `sngrep -L`), twice: as it
// arrived and as it left (src/hep/legs.ts). Never in the way of the packet path: one connected UDP
// socket, fire and forget; a collector that is down or unreachable only grows `hep_errors` (the
// kernel reports ICMP unreachable on a connected socket, so a dead collector is seen, not guessed),
// nothing is thrown, and at most MAX_QUEUED datagrams wait in the socket's own queue — beyond that a
// message is counted as an error and not kept.

import { createSocket, type Socket } from 'node:dgram'
import { performance } from 'node:perf_hooks'
import type { Counters } from '../counters.js'
import { hepUrl } from '../validate.js'
import { encodeHep3 } from './encode.js'
import { looksIpv6 } from '../ip6.js'
import { hopLegs, type HepIdentity, type SipHop } from './legs.js'

/** Datagrams allowed to wait in the socket before new ones are counted as errors and dropped. */
export const MAX_QUEUED = 1024
const RECONNECT_MS = 5000

export interface HepSenderOptions {
  /** udp://HOST:PORT, as the config key `hep` holds it (checked there). */
  url: string
  captureId: number
  authKey: string | null
  counters: Pick<Counters, 'inc'>
  /** Told once per minute at most while messages cannot be sent. */
  warn?: (why: string) => void
  /** Microseconds since the epoch (tests fix it). */
  clockUs?: () => number
  maxQueued?: number
}

const wallClockUs = (): number => Math.floor((performance.timeOrigin + performance.now()) * 1000)

export class HepSender {
  private socket: Socket | null = null
  private connected = false
  private closed = false
  private quietUntil = 0
  private retry: NodeJS.Timeout | null = null
  private readonly id: HepIdentity
  private readonly host: string
  private readonly port: number

  constructor (private readonly opts: HepSenderOptions) {
    const target = hepUrl(opts.url)
    if (!target.ok) throw new RangeError(`hep: ${target.why}`)
    this.host = target.value.host
    this.port = target.value.port
    this.id = { captureId: opts.captureId, authKey: opts.authKey ?? undefined }
    // Both counters exist from the start, so status and metrics show an idle exporter as 0.
    opts.counters.inc('hep_sent', 0)
    opts.counters.inc('hep_errors', 0)
    this.connect()
  }

  /** The collector's address, once the socket is connected (for logs and tests). */
  get target (): string { return looksIpv6(this.host) ? `[${this.host}]:${this.port}` : `${this.host}:${this.port}` }

  private connect (): void {
    // A bracketed collector address (src/validate.ts hepUrl) is kept as the bare IPv6 literal.
    const s = createSocket(looksIpv6(this.host) ? 'udp6' : 'udp4')
    this.socket = s
    s.unref()
    s.on('error', err => { this.failed(err.message) })
    s.connect(this.port, this.host, () => { if (this.socket === s) this.connected = true })
  }

  /** A socket-level failure (a name that does not resolve): a new socket a few seconds later. */
  private failed (why: string): void {
    this.tell(why)
    if (this.connected || this.closed || this.retry !== null) return
    this.socket?.close()
    this.socket = null
    this.retry = setTimeout(() => { this.retry = null; if (!this.closed) this.connect() }, RECONNECT_MS)
    this.retry.unref()
  }

  private tell (why: string): void {
    const now = Date.now()
    if (now < this.quietUntil) return
    this.quietUntil = now + 60_000
    this.opts.warn?.(why)
  }

  private error (why: string): void {
    this.opts.counters.inc('hep_errors')
    this.tell(why)
  }

  /** Both legs of one message; returns at once, whatever the collector does. */
  send (hop: SipHop): void {
    const timeUs = (this.opts.clockUs ?? wallClockUs)()
    for (const leg of hopLegs(hop, timeUs, this.id)) {
      const s = this.socket
      if (s === null || !this.connected) { this.error(`not connected to ${this.target}`); continue }
      if (s.getSendQueueCount() >= (this.opts.maxQueued ?? MAX_QUEUED)) { this.error(`${MAX_QUEUED} datagrams already waiting for ${this.target}`); continue }
      let pkt: Buffer
      try { pkt = encodeHep3(leg) } catch (e) { this.error((e as Error).message); continue }
      try {
        s.send(pkt, err => { if (err == null) this.opts.counters.inc('hep_sent'); else this.error(`${this.target}: ${err.message}`) })
      } catch (e) { this.error((e as Error).message) }
    }
  }

  close (): void {
    this.closed = true
    if (this.retry !== null) clearTimeout(this.retry)
    this.connected = false
    try { this.socket?.close() } catch { /* already closed */ }
    this.socket = null
  }
}
