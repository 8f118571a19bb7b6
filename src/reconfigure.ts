// A reloaded config (SIGHUP): which keys apply to the running sipalg at once, for calls in
// progress too, and which need a restart. One declaration — LIVE — says what applies live;
// every other key that changed needs a restart (the queue, the table, the addresses and port
// ranges the kernel rules and the port pools were built from).

import type { Config } from './config.js'

type Live = { [K in keyof Config]?: true | { [S in keyof Config[K]]?: true } }

/** Config keys a reload applies live; for an object, the sub-keys that do. */
export const LIVE: Live = {
  limits: { maxCalls: true, callsPerHost: true, callsPerSecond: true, callsPerSecondPerHost: true },
  // The signalling timeout is built into the signalling table at start.
  timeouts: { ring: true, call: true, registrationGrace: true, element: true, latch: true },
  rewriteFromTo: true,
  rewriteIce: true,
  firewall: true,
  // A stream picks the mode up at its next change (a new answer, a re-INVITE, the latch window's end).
  mediaLatching: true,
  malformed: true,
  inboundSipFrom: true,
  logLevel: true,
  trustedInsideProxies: true
}

const same = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b)

/** The changed keys (dotted for sub-keys) a reload cannot apply: they need a restart. */
export function restartNeeded (current: Config, next: Config): string[] {
  const out: string[] = []
  for (const k of Object.keys(next) as Array<keyof Config>) {
    const live = LIVE[k]
    if (live === true || same(current[k], next[k])) continue
    if (live === undefined) { out.push(k); continue }
    const cur = current[k] as unknown as Record<string, unknown>
    const nxt = next[k] as unknown as Record<string, unknown>
    for (const s of Object.keys(nxt)) if (!(s in live) && !same(cur[s], nxt[s])) out.push(`${k}.${s}`)
  }
  return out
}

/** Copies the live keys of `next` into `current` (in place: the running parts hold `current`). */
export function applyLive (current: Config, next: Config): void {
  const cur = current as unknown as Record<string, unknown>
  const nxt = next as unknown as Record<string, unknown>
  for (const [k, live] of Object.entries(LIVE)) {
    if (live === true) { cur[k] = structuredClone(nxt[k]); continue }
    const into = cur[k] as Record<string, unknown>
    const from = nxt[k] as Record<string, unknown>
    for (const s of Object.keys(live)) into[s] = from[s]
  }
}
