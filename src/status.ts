// What `sipalg status` shows: the document the daemon sends on its control socket, and how the
// core fills its part from the call, registration and mapping tables. The shell (src/cli/run.ts)
// adds its own figures (uptime, latency, queue, per-flow traffic); src/cli/status.ts renders it.

import type { StoreStats } from './store/store.js'
import type { CallTable, Stream } from './dialog/calls.js'
import { hostPort, looksIpv6 } from './ip6.js'
import type { RegistrationTable } from './dialog/registrations.js'
import type { MappingTable } from './media/mappings.js'

/** One media stream's RTP flow through the gateway; traffic from conntrack when it counts. */
export interface FlowStatus {
  media: string
  publicPort: number
  far: { ip: string, port: number } | null
  /** An IPv6 stream: the phone's address (no NAT: publicPort is the phone's own port). */
  phone?: string
  /** Far end → phone and phone → far end, when the kernel has the flow and counts (nf_conntrack_acct). */
  in?: { packets: number, bytes: number } | null
  out?: { packets: number, bytes: number } | null
}

export interface StatusDoc {
  uptimeSeconds: number
  publicIp: string
  /** family: set for an IPv6 call only (an IPv4 call's entry is as it always was). */
  calls: Array<{ callId: string, phone: string, family?: 'ipv6', direction: string, state: string, ageSeconds: number, media: string[], flows: FlowStatus[] }>
  registrations: Array<{ phone: string, publicPort: number, registrar: string, aor: string, expiresInSeconds: number }>
  mappings: Record<string, number>
  counters: Record<string, number>
  latencyUs: { packets: number, p50: number, p99: number, mean: number }
  /** Self-healing of sipalg's table and queue rules (src/netfilter/watch.ts). */
  ruleset?: RulesetStatus
  /** The role in a gateway pair and the state store (src/cli/role.ts). */
  ha?: HaStatus
  /** Live SIP/TCP splice connections (src/tcp/splice.ts); absent with tcp: false. */
  tcpConnections?: ConnectionStatus[]
  /** A worker's own document (workers: N > 1): which seat it is and its handoffs. */
  worker?: WorkerSelfStatus
  /** The supervisor's merged document: one entry per worker (docs/workers.md). */
  workers?: WorkerStatus[]
}

/** Packets handed between workers (src/workers/handoff.ts). */
export interface HandoffStatus {
  /** read here, decided by their owner */
  sent: number
  /** of those, passed as they came (the owner did not answer in time, or was restarting) */
  failed: number
  /** read by another worker, decided here */
  served: number
  /** the round trip of one handed-off packet, seen by the reader (µs) */
  rttUs: { packets: number, p50: number, p99: number, p999: number, max: number, mean: number }
}

export interface WorkerSelfStatus { index: number, count: number, pid: number, handoff: HandoffStatus | null }

/** One worker as the supervisor reports it. */
export interface WorkerStatus {
  index: number
  queue: number
  /** null while it is being restarted */
  pid: number | null
  up: boolean
  restarts: number
  calls: number
  registrations: number
  /** packets it read from its queue */
  packets: number
  handoff: HandoffStatus | null
  lastExit: { at: string, code: number | null, signal: string | null } | null
}

export interface HaStatus {
  role: 'single' | 'active' | 'standby'
  store: StoreStats
  roleChanges: number
  lastChange: { at: string, to: HaStatus['role'], takeoverMs: number } | null
  /** Standby: what it holds for a takeover. */
  mirrored: { calls: number, registrations: number, elements: number } | null
}

/** One SIP/TCP splice connection (src/tcp/splice.ts). */
export interface ConnectionStatus {
  direction: 'outbound' | 'inbound' | 'transit'
  phone: string
  far: string
  ageSeconds: number
  /** messages phone → far end and far end → phone */
  messagesOut: number
  messagesIn: number
  /** the stream did not start as SIP: spliced without parsing */
  notSip: boolean
}

/** What the ruleset watch (src/netfilter/watch.ts) reports. */
export interface RulesetStatus {
  checks: number
  checkUsMean: number
  tableHeals: number
  queueRuleHeals: number
  queueRulesWatched: boolean
  lastHeal: { at: string, what: string, healMs: number } | null
}

/** The part of the status document the core knows. */
export type CoreStatus = Pick<StatusDoc, 'publicIp' | 'calls' | 'registrations' | 'mappings' | 'counters'>

export function coreStatus (tables: { calls: CallTable, registrations: RegistrationTable, maps: MappingTable },
  publicIp: string, counters: Record<string, number>, now: number): CoreStatus {
  const { calls, registrations, maps } = tables
  const mappings: Record<string, number> = { src_nat: 0, any_dnat: 0, peer_dnat: 0, latch_dnat: 0 }
  // The IPv6 sets (pinhole6, media6) are listed once they hold something.
  for (const e of maps.all()) mappings[e.map] = (mappings[e.map] ?? 0) + 1
  const seconds = (ms: number): number => Math.round(ms / 1000)
  return {
    publicIp,
    calls: [...calls.values()].map(c => ({
      callId: c.callId,
      phone: hostPort(c.phone.ip, c.phone.port),
      ...(looksIpv6(c.phone.ip) ? { family: 'ipv6' as const } : {}),
      direction: c.outgoing ? 'out' : 'in',
      state: c.state,
      ageSeconds: seconds(now - c.createdAt),
      media: [...c.streams.values()].map(s => `${s.media} ${hostPort(s.priv.ip, s.priv.rtpPort)} → ${s.pub.rtpPort}` +
        ` ⇐ ${admitted(s, now)}`),
      flows: [...c.streams.values()].map(s => {
        const far = calls.farStreams(c, s.index)[0]
        const flow: FlowStatus = { media: s.media, publicPort: s.pub.rtpPort, far: far === undefined ? null : { ip: far.ip, port: far.rtpPort } }
        if (looksIpv6(s.priv.ip)) flow.phone = s.priv.ip
        return flow
      })
    })),
    registrations: [...registrations.values()].map(r => ({
      phone: `${r.phone.ip}:${r.phone.port}`,
      publicPort: r.publicPort,
      registrar: r.registrar,
      aor: r.aor,
      expiresInSeconds: seconds(r.expiresAt - now)
    })),
    mappings,
    counters
  }
}

/** Who a stream's RTP port admits: anyone, the far addresses, or the source it latched onto (media_latching: first). */
function admitted (s: Stream, now: number): string {
  const src = s.latch?.rtp.source ?? null
  if (src !== null) return `${src.ip}:${src.port} (latched)`
  if (s.latch !== undefined && now < s.latch.until) return `any (latching, ${Math.ceil((s.latch.until - now) / 1000)} s left)`
  return s.allowedFarIps.length === 0 ? 'any' : s.allowedFarIps.join(',')
}
