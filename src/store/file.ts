// The state file as a store (one gateway, the default): the calls and registrations written
// atomically (src/cli/state-file.ts) at most once a second, the newest state winning; the kernel
// elements are not written because a restart finds them in its own kernel. Nothing to follow.

import { loadState, saveState } from '../cli/state-file.js'
import type { SavedState } from '../dialog/state.js'
import type { StateStore, StoreStats, StoredState } from './store.js'

const MIN_INTERVAL_MS = 1000

export class FileStore implements StateStore {
  readonly kind = 'file' as const
  private latest: SavedState | null = null
  private lastWriteAt = -Infinity
  private timer: NodeJS.Timeout | null = null
  private writes = 0
  private writesFailed = 0

  constructor (readonly path: string, private readonly onError: (e: Error) => void, private readonly now: () => number = Date.now) {}

  async load (): Promise<StoredState | null> {
    const state = loadState(this.path)
    return state === null ? null : { state, elements: [] }
  }

  writeState (state: SavedState): void {
    this.latest = state
    const wait = this.lastWriteAt + MIN_INTERVAL_MS - this.now()
    if (wait <= 0) this.flush()
    else if (this.timer === null) this.timer = setTimeout(() => { this.timer = null; this.flush() }, wait).unref()
  }

  writeOps (): void {}
  becomeWriter (): void {}
  async follow (): Promise<void> {}
  async stopFollowing (): Promise<void> {}

  stats (): StoreStats {
    return { kind: 'file', writes: this.writes, writesFailed: this.writesFailed, pending: this.latest === null ? 0 : 1, lagMs: null, changesFollowed: 0 }
  }

  async close (): Promise<void> {
    if (this.timer !== null) clearTimeout(this.timer)
    this.timer = null
    this.flush()
  }

  /** A failed write keeps the state and tries again a second later (or at the next change). */
  private flush (): void {
    if (this.latest === null) return
    this.lastWriteAt = this.now()
    try {
      saveState(this.path, this.latest)
      this.latest = null
      this.writes++
    } catch (e) {
      this.writesFailed++
      this.onError(e as Error)
      if (this.timer === null) this.timer = setTimeout(() => { this.timer = null; this.flush() }, MIN_INTERVAL_MS).unref()
    }
  }
}
