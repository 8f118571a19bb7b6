// The standby's copy of the active node's state (src/store/store.ts StoreChange): the calls and
// registrations it will take over, and the kernel map elements, installed in its own kernel as
// they arrive so that a failover needs no loading: the packets keepalived moves over find their
// NAT elements already there. The state is kept as the store holds it (JSON by key) and revived
// only when this node becomes active.

import type { SavedState } from '../dialog/state.js'
import { applyOps, type KernelMaps, type MapOp } from '../media/mappings.js'
import { elementId, type StoreChange, type StoredElement, type StoredState } from './store.js'

export class Follower {
  private readonly calls = new Map<string, string>()
  private readonly registrations = new Map<string, string>()
  private readonly elements = new Map<string, StoredElement>()
  /** Kernel changes refused (an element the kernel would not take). */
  refused = 0

  /** `inKernel`: the elements the kernel holds now, so that a resync removes those the store does not have. */
  constructor (private readonly kernel: KernelMaps, inKernel: StoredElement[] = [], private readonly now: () => number = Date.now) {
    for (const e of inKernel) this.elements.set(elementId(e.map, e.key), e)
  }

  get callCount (): number { return this.calls.size }
  get registrationCount (): number { return this.registrations.size }
  get elementCount (): number { return this.elements.size }

  /** Everything again (a (re)subscription): what the store no longer has goes from the kernel too. */
  resync (s: StoredState): void {
    const elements: StoreChange['elements'] = Object.fromEntries(s.elements.map(e => [elementId(e.map, e.key), e]))
    for (const id of this.elements.keys()) if (!(id in elements)) elements[id] = null
    this.calls.clear()
    this.registrations.clear()
    this.apply({
      at: s.state.savedAt,
      calls: Object.fromEntries(s.state.calls.map(c => [c.key, JSON.stringify(c)])),
      registrations: Object.fromEntries(s.state.registrations.map(r => [r.key, JSON.stringify(r)])),
      elements
    })
  }

  apply (c: StoreChange): void {
    for (const [k, v] of Object.entries(c.calls)) { if (v === null) this.calls.delete(k); else this.calls.set(k, v) }
    for (const [k, v] of Object.entries(c.registrations)) { if (v === null) this.registrations.delete(k); else this.registrations.set(k, v) }
    const ops: MapOp[] = []
    const now = this.now()
    for (const [id, e] of Object.entries(c.elements)) {
      const had = this.elements.get(id)
      if (had !== undefined) ops.push({ op: 'delete', map: had.map, key: had.key })
      if (e === null || e.expiresAt <= now) { this.elements.delete(id); continue }
      this.elements.set(id, e)
      ops.push({ op: 'add', map: e.map, key: e.key, data: e.data, timeoutMs: e.expiresAt - now })
    }
    // applyOps retries one by one: a delete of an element already expired, an add over one left behind.
    this.refused += applyOps(this.kernel, ops).filter(f => f.op.op === 'add').length
  }

  /** What this node takes over when it becomes active. */
  stored (): StoredState {
    const now = this.now()
    return {
      state: {
        version: 1,
        savedAt: now,
        calls: [...this.calls.values()].map(v => JSON.parse(v) as SavedState['calls'][number]),
        registrations: [...this.registrations.values()].map(v => JSON.parse(v) as SavedState['registrations'][number])
      },
      elements: [...this.elements.values()].filter(e => e.expiresAt > now)
    }
  }
}
