// What a restarted sipalg needs to take over live calls: the call and registration state,
// saved as JSON next to the control socket. The kernel keeps the mappings themselves (and the
// audio flowing) while sipalg is down; this file lets the next one know whose they are, so the
// call's BYE still removes them. Anything in the file the kernel no longer has is dropped.

import { readFileSync, renameSync, writeFileSync, mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
import type { Call, FarStream, Stream } from './calls.js'
import type { Registration } from './registrations.js'

interface SavedCall extends Omit<Call, 'streams' | 'farMedia' | 'signallingPeers' | 'phoneSdp'> {
  streams: Stream[]
  farMedia: Array<[string, Array<FarStream | null>]>
  signallingPeers: string[]
  phoneSdp: string[] | null
}

export interface SavedState {
  version: 1
  savedAt: number
  calls: SavedCall[]
  registrations: Registration[]
}

export function snapshot (calls: Iterable<Call>, registrations: Iterable<Registration>, now: number): SavedState {
  return {
    version: 1,
    savedAt: now,
    calls: [...calls].map(c => ({
      ...c,
      streams: [...c.streams.values()],
      farMedia: [...c.farMedia],
      signallingPeers: [...c.signallingPeers],
      phoneSdp: c.phoneSdp === null ? null : [...c.phoneSdp]
    })),
    registrations: [...registrations]
  }
}

export function reviveCall (c: SavedCall): Call {
  return {
    ...c,
    refreshedAt: c.refreshedAt ?? 0,
    streams: new Map(c.streams.map(s => [`${s.priv.ip}:${s.priv.rtpPort}`, s])),
    farMedia: new Map(c.farMedia),
    signallingPeers: new Set(c.signallingPeers),
    phoneSdp: c.phoneSdp === null ? null : new Set(c.phoneSdp)
  }
}

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
    const s = JSON.parse(readFileSync(path, 'utf8')) as SavedState
    return s.version === 1 && Array.isArray(s.calls) && Array.isArray(s.registrations) ? s : null
  } catch {
    return null
  }
}
