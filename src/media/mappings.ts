// sipalg's mirror of its kernel NAT maps. Every change goes through here, so the ops sent to the
// kernel are always valid for what it holds (nft aborts a whole batch on a duplicate add with
// other data or on deleting a missing element) and nothing is installed twice.

export type MapName = 'src_nat' | 'any_dnat' | 'peer_dnat' | 'latch_dnat' | IPv6SetName
/** The IPv6 firewall sets of `table ip6` (src/netfilter/table.ts): no NAT, only pinholes. */
export type IPv6SetName = 'pinhole6' | 'media6'

/** src_nat: private ip.port → public port; any_dnat: public port → private ip.port;
 *  peer_dnat: remote ip . public port → private ip.port;
 *  latch_dnat: remote ip . remote port (sport) . public port → private ip.port (a latched media source);
 *  pinhole6: far ip . phone ip (dst) . phone port (a set: the data only mirrors the phone);
 *  media6: phone ip . phone port (a set: outbound media the phone negotiated). */
export interface ElemKey { ip?: string, dst?: string, sport?: number, port: number }
export interface ElemData { ip?: string, port: number }

export interface MapOp {
  op: 'add' | 'delete'
  map: MapName
  key: ElemKey
  /** add: the element's data. */
  data?: ElemData
  timeoutMs?: number
  /** delete: the data the element held (for traces; the kernel deletes by key). */
  was?: ElemData
}

export interface KernelMaps {
  /** Applies a batch all-or-nothing; throws when the kernel refused it. */
  apply: (ops: MapOp[]) => void
}

export interface Entry {
  map: MapName
  key: ElemKey
  data: ElemData
  timeoutMs: number
  expiresAt: number
  refreshedAt: number
  /** Who relies on this element (a call, a registration); it goes when the last one lets go. */
  owners: Set<string>
}

// An element this close to its kernel expiry may already be gone: never send a delete for it.
const EXPIRY_MARGIN_MS = 1000

/** Owner of the kernel elements found at start, until a restored call or registration claims them. */
export const ADOPTED = 'adopted'

const entryId = (map: MapName, key: ElemKey): string =>
  key.dst !== undefined ? `${map}|${key.ip ?? ''}|${key.dst}|${key.port}` : key.ip === undefined ? `${map}|${key.port}` : key.sport === undefined ? `${map}|${key.ip}|${key.port}` : `${map}|${key.ip}|${key.sport}|${key.port}`

const sameData = (a: ElemData, b: ElemData): boolean => a.ip === b.ip && a.port === b.port

export class MappingTable {
  private readonly entries = new Map<string, Entry>()
  private pending: MapOp[] = []
  private firstNeeded = false

  constructor (private readonly now: () => number = Date.now) {}

  /**
   * Whether a pending op must reach the kernel before the verdict of the packet that caused it
   * (a set() asked so, and the element is new or its data changed). Cleared by takePending().
   */
  get mustPrecedeVerdict (): boolean { return this.firstNeeded }

  get (map: MapName, key: ElemKey): Entry | undefined {
    const e = this.entries.get(entryId(map, key))
    return e !== undefined && e.expiresAt > this.now() ? e : undefined
  }

  /**
   * Installs or refreshes an element for an owner. Data that changes replaces the element
   * (and its owners). A refresh of unchanged data is skipped while the element is young; one
   * that is sent replaces the element (delete + add, atomic in one batch).
   * `beforeVerdict`: a packet released now relies on this element (a port the phone advertises,
   * a path not open yet); a refresh of an element the kernel still holds never does.
   */
  set (map: MapName, key: ElemKey, data: ElemData, timeoutMs: number, owner: string, beforeVerdict = false): void {
    const id = entryId(map, key)
    const now = this.now()
    const old = this.entries.get(id)
    let owners: Set<string> | undefined
    let inKernel = false
    if (old !== undefined && old.expiresAt > now) {
      const safe = old.expiresAt - now > EXPIRY_MARGIN_MS
      if (sameData(old.data, data)) {
        old.owners.add(owner)
        if (now - old.refreshedAt < old.timeoutMs / 4 && now + timeoutMs <= old.expiresAt + old.timeoutMs / 4) return
        owners = old.owners
        timeoutMs = Math.max(timeoutMs, old.expiresAt - now)
        inKernel = safe
        // Re-adding an existing element does not restart its kernel timeout (seen on 6.18; older
        // kernels ignore a new expiration too): delete and add it in the same batch instead.
        this.pending.push({ op: 'delete', map, key, was: old.data })
      } else if (safe) {
        this.pending.push({ op: 'delete', map, key, was: old.data })
      }
    }
    if (beforeVerdict && !inKernel) this.firstNeeded = true
    owners ??= new Set<string>()
    owners.add(owner)
    this.pending.push({ op: 'add', map, key, data, timeoutMs })
    this.entries.set(id, { map, key, data, timeoutMs, expiresAt: now + timeoutMs, refreshedAt: now, owners })
  }

  /** The owner lets go; the element is deleted when nobody relies on it any more. */
  release (map: MapName, key: ElemKey, owner: string): Entry | undefined {
    const id = entryId(map, key)
    const old = this.entries.get(id)
    if (old === undefined) return undefined
    old.owners.delete(owner)
    if (old.owners.size > 0) return undefined
    this.entries.delete(id)
    if (old.expiresAt - this.now() > EXPIRY_MARGIN_MS) this.pending.push({ op: 'delete', map, key, was: old.data })
    return old
  }

  /** Records an element found in the kernel (restart adoption) without sending anything. */
  adopt (map: MapName, key: ElemKey, data: ElemData, remainingMs: number, timeoutMs: number, owner: string): void {
    const now = this.now()
    this.entries.set(entryId(map, key), {
      map, key, data, timeoutMs, expiresAt: now + remainingMs, refreshedAt: now, owners: new Set([owner])
    })
  }

  /** An owner stops relying on every element that has another owner (restart adoption done). */
  disownShared (owner: string): void {
    for (const e of this.entries.values()) if (e.owners.size > 1) e.owners.delete(owner)
  }

  /** Drops mirror entries the kernel has expired by itself and returns them. */
  sweep (): Entry[] {
    const now = this.now()
    const gone: Entry[] = []
    for (const [id, e] of this.entries) if (e.expiresAt <= now) { this.entries.delete(id); gone.push(e) }
    return gone
  }

  /** Ops queued since `from` (a pendingCount taken earlier), without taking them. */
  pendingSince (from: number): MapOp[] { return this.pending.slice(from) }
  get pendingCount (): number { return this.pending.length }

  takePending (): MapOp[] {
    const ops = this.pending
    this.pending = []
    this.firstNeeded = false
    return ops
  }

  * all (): IterableIterator<Entry> {
    const now = this.now()
    for (const e of this.entries.values()) if (e.expiresAt > now) yield e
  }
}

/** A kernel element as a trace shows it. */
export interface MapElement { map: MapName, key: ElemKey, data: ElemData }

/**
 * What a run of ops changed, net: elements that are new or hold new data, and elements gone.
 * A refresh (delete + add of the same data) and an element added and removed again are no change.
 */
export function netChanges (ops: MapOp[]): { added: MapElement[], removed: MapElement[] } {
  const byId = new Map<string, { map: MapName, key: ElemKey, before?: ElemData, after?: ElemData, first: boolean }>()
  for (const o of ops) {
    const id = entryId(o.map, o.key)
    let e = byId.get(id)
    if (e === undefined) { e = { map: o.map, key: o.key, first: true }; byId.set(id, e) }
    if (e.first && o.op === 'delete') e.before = o.was
    e.first = false
    e.after = o.op === 'add' ? o.data : undefined
  }
  const added: MapElement[] = []
  const removed: MapElement[] = []
  for (const e of byId.values()) {
    if (e.after !== undefined && (e.before === undefined || !sameData(e.before, e.after))) added.push({ map: e.map, key: e.key, data: e.after })
    else if (e.after === undefined && e.before !== undefined) removed.push({ map: e.map, key: e.key, data: e.before })
  }
  return { added, removed }
}

/**
 * Sends ops as one batch; when the kernel refuses it (an element expired under us, a race
 * with another writer) falls back to op by op so one stale op never blocks the rest.
 * Returns the ops that failed even alone.
 */
export function applyOps (kernel: KernelMaps, ops: MapOp[]): Array<{ op: MapOp, error: Error }> {
  if (ops.length === 0) return []
  try {
    kernel.apply(ops)
    return []
  } catch {
    const failed: Array<{ op: MapOp, error: Error }> = []
    for (let i = 0; i < ops.length; i++) {
      const op = ops[i]
      const next = ops[i + 1]
      // A delete followed by the add of the same key is a replacement: keep them together.
      const group = op.op === 'delete' && next?.op === 'add' && next.map === op.map &&
        entryId(next.map, next.key) === entryId(op.map, op.key)
        ? [op, next]
        : [op]
      if (group.length === 2) i++
      const add = group[group.length - 1]
      // Retries: the old element already expired (drop the delete), or one we thought
      // expired is still there with other data (delete it first).
      const tries = add.op === 'add'
        ? [group, [add], [{ op: 'delete' as const, map: add.map, key: add.key }, add]]
        : [group]
      let lastError: Error | undefined
      for (const attempt of tries) {
        try { kernel.apply(attempt); lastError = undefined; break } catch (e) { lastError = e as Error }
      }
      // A delete that fails alone means the element is gone: the state we wanted.
      if (lastError !== undefined && add.op === 'add') failed.push({ op: add, error: lastError })
    }
    return failed
  }
}
