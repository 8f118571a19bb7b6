// What a restarted sipalg needs to take over live calls: the call and registration state as a
// plain JSON document. The kernel keeps the mappings themselves (and the audio flowing) while
// sipalg is down; this document lets the next one know whose they are, so the call's BYE still
// removes them. Anything in it the kernel no longer has is dropped at restore. The file that
// holds it is the shell's business (src/cli/state-file.ts).

import type { Call, CallTable, FarStream, Stream } from './calls.js'
import { streamKey } from './calls.js'
import type { Registration, RegistrationTable } from './registrations.js'

interface SavedStream extends Omit<Stream, 'allowedFarIps'> {
  allowedFarIps?: string[]
  /** The name before allowedFarIps (state files written by an older sipalg). */
  installedPeers?: string[]
}

interface SavedCall extends Omit<Call, 'streams' | 'farMedia' | 'farSignalling' | 'phoneSdp'> {
  streams: SavedStream[]
  farMedia: Array<[string, Array<FarStream | null>]>
  farSignalling?: string[]
  /** The name before farSignalling (state files written by an older sipalg). */
  signallingPeers?: string[]
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
      farSignalling: [...c.farSignalling],
      phoneSdp: c.phoneSdp === null ? null : [...c.phoneSdp]
    })),
    registrations: [...registrations]
  }
}

export function reviveCall (saved: SavedCall): Call {
  const { signallingPeers, farSignalling, ...c } = saved
  return {
    ...c,
    refreshedAt: c.refreshedAt ?? 0,
    streams: new Map(c.streams.map(({ installedPeers, allowedFarIps, ...s }) =>
      [streamKey(s.priv.ip, s.priv.rtpPort), { ...s, allowedFarIps: allowedFarIps ?? installedPeers ?? [] }])),
    farMedia: new Map(c.farMedia),
    farSignalling: new Set(farSignalling ?? signallingPeers ?? []),
    phoneSdp: c.phoneSdp === null ? null : new Set(c.phoneSdp)
  }
}

/** A saved state read back (JSON text), or null when it is not one (a fresh start). */
export function parseState (text: string): SavedState | null {
  try {
    const s = JSON.parse(text) as SavedState
    return s !== null && typeof s === 'object' && s.version === 1 && Array.isArray(s.calls) && Array.isArray(s.registrations) ? s : null
  } catch {
    return null
  }
}

/**
 * Takes over the saved calls and registrations the kernel still has mappings for. Returns the
 * calls taken over (the caller counts them against its limits) and how many registrations.
 */
export function restoreState (state: SavedState, calls: CallTable, registrations: RegistrationTable): { calls: Call[], registrations: number } {
  const taken: Call[] = []
  for (const saved of state.calls) {
    const call = reviveCall(saved)
    if (calls.restore(call)) taken.push(call)
  }
  let regs = 0
  for (const reg of state.registrations) if (registrations.restore(reg)) regs++
  return { calls: taken, registrations: regs }
}
