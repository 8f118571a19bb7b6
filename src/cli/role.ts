// The role of this sipalg in a gateway pair (docs/ha.md). With the state file it is 'single'. With
// a Redis store, the node whose outside interface holds the public address (the VIP keepalived
// moves, src/netfilter/addrwatch.ts) is 'active': it processes the queue and writes to the store;
// the other is 'standby': it passes packets untouched (keepalived sends it none of the gateway's
// traffic anyway) and follows the store, its kernel maps kept in step (src/store/follower.ts), so
// that becoming active only revives the calls it already holds.

import type { Logger } from 'pino'
import type { Alg } from '../alg.js'
import type { SavedState } from '../dialog/state.js'
import type { KernelMaps, MapOp } from '../media/mappings.js'
import { shortCode } from '../errors.js'
import type { HaStatus } from '../status.js'
import { AddressWatch } from '../netfilter/addrwatch.js'
import { Follower } from '../store/follower.js'
import type { StateStore, StoredElement, StoredState } from '../store/store.js'

export type Role = HaStatus['role']

/**
 * A role change starts the daemon over with a new Alg (empty tables: src/cli/run.ts). What belongs
 * to the daemon rather than to its tables goes on from the old one: the counters (`sipalg status`
 * and the metrics only ever count up; a counter back at 0 reads as a restart to a scraper's rate())
 * and the `sipalg trace` listener, so a trace attached before the change sees the messages after it.
 */
export function succeed (prev: Alg, next: Alg): Alg {
  for (const [name, n] of Object.entries(prev.counters.snapshot())) next.counters.inc(name, n)
  next.onMessage = prev.onMessage
  return next
}

export interface RoleShell {
  /** Start over with empty tables, then take over `taken` (adopting the kernel's elements first). */
  takeOver: (taken: StoredState | null) => { calls: number, registrations: number }
  /** Start over with empty tables (this node no longer processes the queue). */
  standDown: () => void
  onChange: () => void
  /** The elements in this node's kernel now. */
  kernelElements: () => StoredElement[]
}

export class Roles {
  role: Role
  private follower: Follower | null = null
  private watch: AddressWatch | null = null
  private roleChanges = 0
  private lastChange: HaStatus['lastChange'] = null

  constructor (private readonly store: StateStore, private readonly kernel: KernelMaps, private readonly shell: RoleShell, private readonly log: Logger) {
    this.role = store.kind === 'file' ? 'single' : 'standby'
  }

  /** Takes the first role: single or active take over what the store holds; standby follows it. */
  async start (vip: { iface: string, address: string } | null): Promise<void> {
    if (this.store.kind === 'redis' && vip !== null) {
      this.watch = new AddressWatch({ ...vip, onChange: held => { void this.change(held ? 'active' : 'standby') } })
      this.role = this.watch.held ? 'active' : 'standby'
    } else if (this.store.kind === 'redis') this.role = 'active'
    if (this.role === 'standby') this.follow()
    else this.takeOver(await this.loadStored(), true)
    this.log.info({ role: this.role, store: this.store.kind }, `sipalg starts ${this.role}`)
  }

  get processes (): boolean { return this.role !== 'standby' }

  /** Calls and registrations as they changed (the shell calls it after each batch and each second). */
  writeState (state: SavedState | null): void {
    if (state !== null && this.processes) this.store.writeState(state)
  }

  writeOps (ops: MapOp[]): void {
    if (this.processes) this.store.writeOps(ops, Date.now())
  }

  status (): HaStatus {
    const f = this.follower
    return {
      role: this.role,
      store: this.store.stats(),
      roleChanges: this.roleChanges,
      lastChange: this.lastChange,
      mirrored: f === null ? null : { calls: f.callCount, registrations: f.registrationCount, elements: f.elementCount }
    }
  }

  async stop (): Promise<void> {
    this.watch?.stop()
    await this.store.close()
  }

  private async change (to: 'active' | 'standby'): Promise<void> {
    if (to === this.role) return
    const t0 = performance.now()
    const from = this.role
    this.role = to
    this.roleChanges++
    let taken = { calls: 0, registrations: 0 }
    if (to === 'active') {
      // The follower's copy is what the old active node wrote last: no store round trip here.
      const stored = this.follower?.stored() ?? null
      await this.store.stopFollowing()
      this.follower = null
      taken = this.takeOver(stored, false)
    } else {
      this.shell.standDown()
      this.follow()
    }
    const takeoverMs = Math.round((performance.now() - t0) * 10) / 10
    this.lastChange = { at: new Date().toISOString(), to, takeoverMs }
    this.log.info({ from, to, takeoverMs, ...taken }, to === 'active' ? 'this gateway holds the public address now: active, calls taken over' : 'the public address left this gateway: standby, following the store')
    this.shell.onChange()
  }

  /** `install`: the kernel may lack the store's elements (a start, not a standby's promotion). */
  private takeOver (stored: StoredState | null, install: boolean): { calls: number, registrations: number } {
    // Elements the store has and this kernel does not (a node that was down) go in first.
    if (install && stored !== null && this.store.kind === 'redis') new Follower(this.kernel, this.shell.kernelElements()).resync(stored)
    const taken = this.shell.takeOver(stored)
    this.store.becomeWriter(stored)
    return taken
  }

  /** Not awaited: a store that is down is followed once it answers (the subscription waits for it). */
  private follow (): void {
    const f = new Follower(this.kernel, this.shell.kernelElements())
    this.follower = f
    this.store.follow(c => { f.apply(c) }, s => { f.resync(s) }).catch((e: Error) => {
      this.log.warn({ code: shortCode('E314_STORE'), err: e.message }, 'cannot follow the state store; retrying while it reconnects')
    })
  }

  private async loadStored (): Promise<StoredState | null> {
    try {
      return await this.store.load()
    } catch (e) {
      this.log.warn({ code: shortCode('E314_STORE'), err: (e as Error).message }, 'cannot read the state store: starting without its calls')
      return null
    }
  }
}
