// Where sipalg keeps the state another sipalg takes over: the calls and registrations
// (src/dialog/state.ts) and, for a second gateway, the kernel map elements. Two kinds behind one
// interface: the local state file (one gateway; a restart finds the elements in its own kernel)
// and Redis (two gateways: the standby follows what the active node writes, src/store/redis.ts).
// Writes never throw and never wait: the packet path hands over what changed and goes on; a write
// that fails is counted and retried with what is newest by then.

import type { SavedState } from '../dialog/state.js'
import type { ElemData, ElemKey, MapName, MapOp } from '../media/mappings.js'
import { SipalgError } from '../errors.js'

/** A kernel map element as the store keeps it; absolute expiry, so a follower knows what is left. */
export interface StoredElement { map: MapName, key: ElemKey, data: ElemData, expiresAt: number }

/** What a store holds: the state a node takes over, and the elements its kernel should hold. */
export interface StoredState { state: SavedState, elements: StoredElement[] }

/** One write of the active node, as a follower receives it: null = removed. */
export interface StoreChange {
  at: number
  calls: Record<string, string | null>
  registrations: Record<string, string | null>
  elements: Record<string, StoredElement | null>
}

export interface StoreStats {
  kind: 'file' | 'redis'
  writes: number
  writesFailed: number
  /** Keys waiting to be written (after a failure, or coalescing). */
  pending: number
  /** Follower: age of the last change received when it arrived (ms), null before any. */
  lagMs: number | null
  changesFollowed: number
}

export interface StateStore {
  readonly kind: 'file' | 'redis'
  /** What the store holds now (at start, and when a standby becomes active); null when nothing. */
  load: () => Promise<StoredState | null>
  /** The calls and registrations as they are now; the store writes what changed. */
  writeState: (state: SavedState) => void
  /** Kernel map changes, as sent to the kernel. */
  writeOps: (ops: MapOp[], now: number) => void
  /**
   * This node writes from now on: `base` is what it took over, so its first write removes what
   * the store holds and this node does not (calls that ended while no one wrote).
   */
  becomeWriter: (base: StoredState | null) => void
  /** Follows another node's writes (standby). Resolves once subscribed. */
  follow: (onChange: (c: StoreChange) => void, onResync: (s: StoredState) => void) => Promise<void>
  stopFollowing: () => Promise<void>
  stats: () => StoreStats
  /** Writes what is pending (best effort, bounded in time) and lets go of the store. */
  close: () => Promise<void>
}

export const elementId = (map: MapName, key: ElemKey): string =>
  key.ip === undefined ? `${map}|${key.port}` : `${map}|${key.ip}|${key.port}`

/** The element an op leaves behind (null: none), with its absolute expiry. */
export function elementAfter (op: MapOp, now: number): StoredElement | null {
  if (op.op === 'delete' || op.data === undefined) return null
  return { map: op.map, key: op.key, data: op.data, expiresAt: now + (op.timeoutMs ?? 0) }
}

export type StoreLocation =
  | { kind: 'file', path: string }
  | { kind: 'redis', host: string, port: number, db: number }
  | { kind: 'redis', path: string, db: number }

/**
 * `state_store`: unset → the state file; redis://host[:port][/db] or redis+unix:///socket[?db=N].
 * Throws E103 for anything else.
 */
export function parseStoreLocation (value: string | null, statePath: string): StoreLocation {
  if (value === null || value === '' || value === 'file') return { kind: 'file', path: statePath }
  const example = 'state_store: redis://198.51.100.10:6379/0'
  let url: URL
  try { url = new URL(value) } catch { throw new SipalgError('E103_CONFIG_KEY', { key: 'state_store', why: `has "${value}", not a URL`, example }) }
  const db = (text: string): number => {
    const n = text === '' ? 0 : Number(text)
    if (!Number.isInteger(n) || n < 0 || n > 15) throw new SipalgError('E103_CONFIG_KEY', { key: 'state_store', why: `has database "${text}", must be 0 to 15`, example })
    return n
  }
  if (url.protocol === 'redis:' && url.hostname !== '') {
    const port = url.port === '' ? 6379 : Number(url.port)
    return { kind: 'redis', host: url.hostname, port, db: db(url.pathname.replace(/^\//, '')) }
  }
  if (url.protocol === 'redis+unix:' && url.pathname !== '') return { kind: 'redis', path: url.pathname, db: db(url.searchParams.get('db') ?? '') }
  throw new SipalgError('E103_CONFIG_KEY', { key: 'state_store', why: `has "${value}", must be redis://host:port/db or redis+unix:///path`, example })
}
