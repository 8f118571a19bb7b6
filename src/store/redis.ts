// Redis as the store (two gateways). The active node writes each call, registration and kernel map
// element under its own key as it changes, and publishes the same change on one channel in the
// same transaction; the standby subscribes, so it sees every change in order within a
// round trip, and reads everything back whenever it (re)subscribes, so a missed message only
// costs a reload. Layout under the prefix sipalg:<table>:
//   calls, registrations   hashes, field = the call's or registration's key, value = its JSON
//   el:<map|ip|port>       one string per kernel element (JSON), expiring with the element
//   changes                the channel: one StoreChange (JSON) per write
// Writes are fire-and-forget (no offline queue: a command fails at once while disconnected); the
// keys a failed write carried stay pending and go with the next try, newest value winning.

import { Redis } from 'ioredis'
import type { SavedState } from '../dialog/state.js'
import type { MapOp } from '../media/mappings.js'
import { SipalgError } from '../errors.js'
import { elementAfter, elementId, type StateStore, type StoreChange, type StoreStats, type StoredElement, type StoredState } from './store.js'

export interface RedisStoreEvents {
  /** The first failed write of an outage (later ones are only counted). */
  writeFailed: (err: Error, pending: number) => void
  /** Writes work again after `downMs`. */
  writeRecovered: (downMs: number) => void
}

type Where = { host: string, port: number, db: number } | { path: string, db: number }

// Changes of one wake-up go in one transaction; a few ms of coalescing keep a burst of calls to
// one round trip without delaying what a standby sees by more than that.
const COALESCE_MS = 5
const RETRY_MIN_MS = 100
const RETRY_MAX_MS = 1000

const SAVED_AT = 'saved_at'

export class RedisStore implements StateStore {
  readonly kind = 'redis' as const
  private readonly client: Redis
  private sub: Redis | null = null
  private readonly prefix: string
  /** What the store holds as far as this node knows (JSON by key). */
  private readonly sentCalls = new Map<string, string>()
  private readonly sentRegs = new Map<string, string>()
  private latestCalls: Map<string, string> | null = null
  private latestRegs: Map<string, string> | null = null
  private readonly pendingElements = new Map<string, StoredElement | null>()
  /** Every element this node holds, for a full rewrite. */
  private readonly liveElements = new Map<string, StoredElement>()
  /** The next write carries everything, not only what changed (set on each reconnect). */
  private rewriteAll = false
  private wasReady = false
  private timer: NodeJS.Timeout | null = null
  private inFlight: Promise<void> | null = null
  private failingSince: number | null = null
  private retryMs = RETRY_MIN_MS
  private closed = false
  private writes = 0
  private writesFailed = 0
  private lagMs: number | null = null
  private changesFollowed = 0

  /** For messages: where the store is. */
  readonly name: string

  constructor (where: Where, table: string, private readonly events: RedisStoreEvents, private readonly now: () => number = Date.now) {
    this.prefix = `sipalg:${table}:`
    this.name = 'path' in where ? `redis+unix://${where.path}?db=${where.db}` : `redis://${where.host}:${where.port}/${where.db}`
    this.client = new Redis({
      ...where,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      connectTimeout: 1000,
      // A cut link leaves the connection up with nothing answering: a write fails after a second
      // (counted, retried) instead of waiting for TCP to give up.
      commandTimeout: 1000,
      retryStrategy: times => Math.min(times * 100, 1000)
    })
    // Connection errors are seen through the writes that fail; ioredis would throw them otherwise.
    this.client.on('error', () => {})
    // A restarted redis-server may have lost what it held: write everything again on each reconnect.
    this.client.on('ready', () => {
      if (this.wasReady) { this.rewriteAll = true; this.schedule(COALESCE_MS) }
      this.wasReady = true
    })
  }

  /** Resolves once connected (or rejects after timeoutMs): a start does not wait on a store that is down. */
  async ready (timeoutMs = 2000): Promise<boolean> {
    if (this.client.status === 'ready') return true
    return await new Promise(resolve => {
      const done = (ok: boolean): void => { clearTimeout(t); this.client.off('ready', onReady); resolve(ok) }
      const onReady = (): void => { done(true) }
      const t = setTimeout(() => { done(false) }, timeoutMs)
      this.client.on('ready', onReady)
    })
  }

  async load (): Promise<StoredState | null> {
    if (!await this.ready()) throw this.problem('read', `not connected: ${this.client.status}`)
    const r = await this.client.multi().hgetall(this.key('calls')).hgetall(this.key('registrations')).get(this.key(SAVED_AT)).exec()
    if (r === null) throw this.problem('read', 'transaction aborted')
    for (const [err] of r) if (err !== null) throw this.problem('read', err.message)
    const calls = r[0][1] as Record<string, string>
    const regs = r[1][1] as Record<string, string>
    const elements: StoredElement[] = []
    let cursor = '0'
    do {
      const [next, keys] = await this.client.scan(cursor, 'MATCH', `${this.key('el:')}*`, 'COUNT', 500)
      cursor = next
      if (keys.length > 0) for (const v of await this.client.mget(keys)) if (v !== null) elements.push(JSON.parse(v) as StoredElement)
    } while (cursor !== '0')
    if (Object.keys(calls).length === 0 && Object.keys(regs).length === 0 && elements.length === 0) return null
    return {
      state: {
        version: 1,
        savedAt: Number(r[2][1] ?? 0),
        calls: Object.values(calls).map(v => JSON.parse(v) as SavedState['calls'][number]),
        registrations: Object.values(regs).map(v => JSON.parse(v) as SavedState['registrations'][number])
      },
      elements
    }
  }

  becomeWriter (base: StoredState | null): void {
    this.sentCalls.clear()
    this.sentRegs.clear()
    for (const c of base?.state.calls ?? []) this.sentCalls.set(c.key, JSON.stringify(c))
    for (const r of base?.state.registrations ?? []) this.sentRegs.set(r.key, JSON.stringify(r))
  }

  writeState (state: SavedState): void {
    this.latestCalls = new Map(state.calls.map(c => [c.key, JSON.stringify(c)]))
    this.latestRegs = new Map(state.registrations.map(r => [r.key, JSON.stringify(r)]))
    this.schedule(COALESCE_MS)
  }

  writeOps (ops: MapOp[], now: number): void {
    if (ops.length === 0) return
    for (const op of ops) {
      const id = elementId(op.map, op.key)
      const e = elementAfter(op, now)
      this.pendingElements.set(id, e)
      if (e === null) this.liveElements.delete(id); else this.liveElements.set(id, e)
    }
    this.schedule(COALESCE_MS)
  }

  async follow (onChange: (c: StoreChange) => void, onResync: (s: StoredState) => void): Promise<void> {
    if (this.sub !== null) return
    // Subscribing waits for the connection (the writer's connection fails fast instead).
    const sub = this.client.duplicate({ enableOfflineQueue: true, maxRetriesPerRequest: null, commandTimeout: undefined })
    this.sub = sub
    sub.on('error', () => {})
    // Changes that arrive while the full state is being read are applied after it, in order.
    let buffered: StoreChange[] | null = null
    const resync = async (): Promise<void> => {
      const mine: StoreChange[] = []
      buffered = mine
      try {
        const s = await this.load()
        onResync(s ?? { state: { version: 1, savedAt: 0, calls: [], registrations: [] }, elements: [] })
      } catch { /* the next (re)subscription reads again */ }
      if (buffered === mine) buffered = null
      for (const c of mine) onChange(c)
    }
    sub.on('message', (_channel: string, text: string) => {
      let c: StoreChange
      try { c = JSON.parse(text) as StoreChange } catch { return }
      this.lagMs = Math.max(0, this.now() - c.at)
      this.changesFollowed++
      if (buffered !== null) buffered.push(c); else onChange(c)
    })
    // ioredis subscribes again after a reconnect; what was published meanwhile is read back.
    let connectedBefore = false
    sub.on('ready', () => {
      if (connectedBefore && this.sub === sub) void resync()
      connectedBefore = true
    })
    await sub.subscribe(this.key('changes'))
    await resync()
  }

  async stopFollowing (): Promise<void> {
    const sub = this.sub
    this.sub = null
    if (sub !== null) sub.disconnect()
  }

  stats (): StoreStats {
    return { kind: 'redis', writes: this.writes, writesFailed: this.writesFailed, pending: this.pendingCount(), lagMs: this.lagMs, changesFollowed: this.changesFollowed }
  }

  async close (): Promise<void> {
    if (this.timer !== null) clearTimeout(this.timer)
    this.timer = null
    if (this.inFlight !== null) await this.inFlight
    if (this.client.status === 'ready' && this.pendingCount() > 0) await this.flush()
    this.closed = true
    await this.stopFollowing()
    this.client.disconnect()
  }

  private key (name: string): string { return this.prefix + name }

  private problem (what: string, why: string): SipalgError {
    return new SipalgError('E314_STORE', { what, why, store: this.name })
  }

  private pendingCount (): number {
    if (this.rewriteAll) return Math.max(1, this.liveElements.size + (this.latestCalls?.size ?? 0) + (this.latestRegs?.size ?? 0))
    return this.pendingElements.size + (this.latestCalls === null ? 0 : diffCount(this.sentCalls, this.latestCalls)) +
      (this.latestRegs === null ? 0 : diffCount(this.sentRegs, this.latestRegs))
  }

  private schedule (ms: number): void {
    if (this.timer !== null || this.closed) return
    this.timer = setTimeout(() => {
      this.timer = null
      if (this.inFlight !== null) { this.schedule(COALESCE_MS); return }
      this.inFlight = this.flush().finally(() => { this.inFlight = null })
    }, ms)
    this.timer.unref()
  }

  /** One transaction with every pending key and the change message; on failure all stay pending. */
  private async flush (): Promise<void> {
    const now = this.now()
    const all = this.rewriteAll
    const change: StoreChange = {
      at: now,
      calls: this.latestCalls === null ? {} : diff(this.sentCalls, this.latestCalls, all),
      registrations: this.latestRegs === null ? {} : diff(this.sentRegs, this.latestRegs, all),
      elements: all ? { ...Object.fromEntries(this.liveElements), ...Object.fromEntries(this.pendingElements) } : Object.fromEntries(this.pendingElements)
    }
    const m = this.client.multi()
    for (const [k, v] of Object.entries(change.calls)) { if (v === null) m.hdel(this.key('calls'), k); else m.hset(this.key('calls'), k, v) }
    for (const [k, v] of Object.entries(change.registrations)) { if (v === null) m.hdel(this.key('registrations'), k); else m.hset(this.key('registrations'), k, v) }
    for (const [id, e] of Object.entries(change.elements)) {
      const ttl = e === null ? 0 : e.expiresAt - now
      if (ttl <= 0) m.del(this.key(`el:${id}`)); else m.set(this.key(`el:${id}`), JSON.stringify(e), 'PX', ttl)
    }
    m.set(this.key(SAVED_AT), String(now))
    m.publish(this.key('changes'), JSON.stringify(change))
    try {
      const r = await m.exec()
      if (r === null) throw this.problem('write', 'transaction aborted')
      for (const [err] of r) if (err !== null) throw this.problem('write', err.message)
    } catch (e) {
      this.writesFailed++
      if (this.failingSince === null) {
        this.failingSince = now
        this.events.writeFailed(e as Error, this.pendingCount())
      }
      this.schedule(this.retryMs)
      this.retryMs = Math.min(this.retryMs * 2, RETRY_MAX_MS)
      return
    }
    this.writes++
    if (all) this.rewriteAll = false
    apply(this.sentCalls, change.calls)
    apply(this.sentRegs, change.registrations)
    // An element changed again while this write was on its way stays pending with its new value.
    for (const [id, e] of Object.entries(change.elements)) if (this.pendingElements.get(id) === e) this.pendingElements.delete(id)
    this.retryMs = RETRY_MIN_MS
    if (this.failingSince !== null) {
      this.events.writeRecovered(this.now() - this.failingSince)
      this.failingSince = null
    }
    if (this.pendingCount() > 0) this.schedule(COALESCE_MS)
  }
}

/** What turns `sent` into `latest`: changed values (all values when `all`), and null for keys gone. */
function diff (sent: Map<string, string>, latest: Map<string, string>, all = false): Record<string, string | null> {
  const out: Record<string, string | null> = {}
  for (const [k, v] of latest) if (all || sent.get(k) !== v) out[k] = v
  for (const k of sent.keys()) if (!latest.has(k)) out[k] = null
  return out
}

function diffCount (sent: Map<string, string>, latest: Map<string, string>): number {
  return Object.keys(diff(sent, latest)).length
}

function apply (sent: Map<string, string>, change: Record<string, string | null>): void {
  for (const [k, v] of Object.entries(change)) { if (v === null) sent.delete(k); else sent.set(k, v) }
}
