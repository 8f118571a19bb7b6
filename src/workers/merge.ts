// The whole gateway's status document from its workers' (src/workers/supervisor.ts): calls,
// registrations and connections listed together, counts summed, and a `workers` section. Pure.

import type { StatusDoc, WorkerStatus } from '../status.js'

/** A worker's document as its control socket gives it (src/cli/run.ts adds the queue's figures). */
export type WorkerDoc = StatusDoc & { queue?: Record<string, unknown> }

/** What the supervisor knows of a worker without asking it. */
export interface Seat {
  index: number
  queue: number
  pid: number | null
  up: boolean
  restarts: number
  lastExit: WorkerStatus['lastExit']
}

function sum (into: Record<string, number>, from: Record<string, unknown> | undefined): Record<string, number> {
  for (const [k, v] of Object.entries(from ?? {})) if (typeof v === 'number') into[k] = (into[k] ?? 0) + v
  return into
}

/**
 * Merges the documents of the workers that answered (null: down or restarting). Latency quantiles
 * cannot be added: p50/p99 are the worst worker's (an upper bound), the mean is weighted by packets.
 */
export function mergeStatus (seats: readonly Seat[], docs: ReadonlyArray<WorkerDoc | null>, own: { uptimeSeconds: number, publicIp: string, counters: Record<string, number> }): WorkerDoc {
  const live = docs.filter((d): d is WorkerDoc => d !== null)
  const packets = live.reduce((n, d) => n + d.latencyUs.packets, 0)
  const latencyUs = {
    packets,
    p50: Math.max(0, ...live.map(d => d.latencyUs.p50)),
    p99: Math.max(0, ...live.map(d => d.latencyUs.p99)),
    mean: packets === 0 ? 0 : Math.round(live.reduce((n, d) => n + d.latencyUs.mean * d.latencyUs.packets, 0) / packets)
  }
  const tcp = live.flatMap(d => d.tcpConnections ?? [])
  const first = live[0]
  return {
    uptimeSeconds: own.uptimeSeconds,
    publicIp: first?.publicIp ?? own.publicIp,
    calls: live.flatMap(d => d.calls),
    registrations: live.flatMap(d => d.registrations),
    mappings: live.reduce((m, d) => sum(m, d.mappings), {}),
    counters: sum(live.reduce((m, d) => sum(m, d.counters), {}), own.counters),
    latencyUs,
    queue: live.reduce((m, d) => sum(m, d.queue), {}),
    ...(first?.ruleset === undefined ? {} : { ruleset: first.ruleset }),
    ...(first?.ha === undefined ? {} : { ha: first.ha }),
    ...(live.some(d => d.tcpConnections !== undefined) ? { tcpConnections: tcp } : {}),
    workers: seats.map((s, i) => {
      const d = docs[i] ?? null
      return {
        index: s.index,
        queue: s.queue,
        pid: s.pid,
        up: s.up && d !== null,
        restarts: s.restarts,
        calls: d?.calls.length ?? 0,
        registrations: d?.registrations.length ?? 0,
        packets: typeof d?.queue?.packets === 'number' ? d.queue.packets : 0,
        handoff: d?.worker?.handoff ?? null,
        lastExit: s.lastExit
      }
    })
  }
}
