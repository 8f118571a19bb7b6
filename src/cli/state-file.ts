// The call state file of `sipalg run` (src/dialog/state.ts says what is in it): written next to
// the control socket whenever the call or registration state changed, read once at start.

import { readFileSync, renameSync, writeFileSync, mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
import { parseState, type SavedState } from '../dialog/state.js'

/** Written atomically (temp file + rename): a crash mid-write leaves the previous state. */
export function saveState (path: string, state: SavedState): void {
  mkdirSync(dirname(path), { recursive: true })
  const tmp = `${path}.tmp`
  writeFileSync(tmp, JSON.stringify(state), { mode: 0o600 })
  renameSync(tmp, path)
}

/** The saved state, or null when there is none or it cannot be read (a fresh start). */
export function loadState (path: string): SavedState | null {
  try {
    return parseState(readFileSync(path, 'utf8'))
  } catch {
    return null
  }
}
