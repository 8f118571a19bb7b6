// The ALG core: one queued IPv4 packet in, a verdict out, kernel map changes recorded in the
// mapping mirror (the caller sends them to the kernel — before the verdicts when takeMappingsFirst()
// says a released packet relies on them). No I/O here, so the whole packet path can be driven by
// tests and benchmarks without root.

import type { Logger } from 'pino'
import type { Config } from './config.js'
import { insideOf } from './config.js'
import { parseUdp, withPayload, type UdpPacket } from './netfilter/packet.js'
import { classifyDatagram, parseSip, type SipMessage } from './sip/message.js'
import { rewriteMessage } from './rewrite/rewrite.js'
import { locateUriHost } from './sip/uri.js'
import type { Direction, Endpoint, RewriteContext, RewriteResult, SdpSummary } from './rewrite/types.js'
import { ipv4ToNumber } from './rewrite/cidr.js'
import { MappingTable, entryId, type Entry, type MapOp } from './media/mappings.js'
import { MediaPortPool } from './media/ports.js'
import { parsePortRange } from './validate.js'
import { SignallingTable } from './media/signalling.js'
import { CallTable, callKey, type Call, type CallPolicy, type FarStream, type Stream } from './dialog/calls.js'
import { RegistrationTable, type RegistrationPolicy } from './dialog/registrations.js'
import { reviveCall, snapshot, type SavedState } from './dialog/state.js'
import { Counters } from './counters.js'
import { RateLimiter } from './media/limits.js'
import type { StatusDoc } from './cli/status.js'
import { traceEvent, type TraceEvent } from './trace/ladder.js'
import type { SipHop } from './hep/legs.js'

export type Verdict =
  | { action: 'accept', payload?: Buffer }
  | { action: 'drop' }

const ACCEPT: Verdict = { action: 'accept' }
const DROP: Verdict = { action: 'drop' }

export class Alg {
  readonly maps: MappingTable
  readonly calls: CallTable
  readonly registrations: RegistrationTable
  readonly signalling: SignallingTable
  readonly ports: MediaPortPool
  readonly counters = new Counters()
  private readonly isInside: (ip: string) => boolean
  private readonly sipPorts: Set<number>
  private readonly trusted: Set<string>
  private readonly limiter: RateLimiter
  private readonly quietUntil = new Map<string, number>()
  private readonly publicIp: string
  private savedGeneration = -1
  private mappingsFirst = false
  /** Kernel flows of ended streams (far ip:port → public port) for the shell to forget. */
  private staleFlows: Array<{ remote: Endpoint, publicPort: number }> = []
  /** `sipalg trace` listener: one event per SIP message. Unset (the default) costs nothing. */
  onMessage?: (e: TraceEvent) => void
  /** HEP export (src/hep/sender.ts): each SIP message as it arrived and as it leaves. Unset costs nothing. */
  onSip?: (hop: SipHop) => void

  constructor (private readonly cfg: Config, private readonly log: Logger, private readonly now: () => number = Date.now,
    private readonly fixPacket?: (pkt: Buffer) => void) {
    if (cfg.public === null) throw new Error('Alg needs a public address')
    this.publicIp = cfg.public
    this.isInside = insideOf(cfg)
    this.sipPorts = new Set(cfg.sipPorts)
    this.trusted = new Set(cfg.trustedInsideProxies)
    this.maps = new MappingTable(now)
    const range = parsePortRange(cfg.mediaPorts)
    this.ports = new MediaPortPool(range.lo, range.hi)
    this.applyPolicies(cfg)
    this.signalling = new SignallingTable(this.maps, cfg.timeouts.signalling * 1000, p => this.ports.contains(p))
    this.calls = new CallTable(this.maps, this.ports, this.callPolicy,
      {
        onStart: call => { this.counters.inc('calls_started'); this.log.info({ callId: call.callId, phone: `${call.phone.ip}:${call.phone.port}`, direction: call.outgoing ? 'outbound' : 'inbound' }, 'call started') },
        onStreamDropped: (_call, s, far) => { this.forgetFlows(s, far) },
        onForkDropped: (_call, s, far) => { this.forgetFlows(s, far) },
        onEnd: (call, reason) => { this.counters.inc('calls_ended'); this.limiter.ended(call.phone.ip); this.log.info({ callId: call.callId, reason, seconds: Math.round((this.now() - call.createdAt) / 1000) }, 'call ended') }
      }, now)
    this.registrations = new RegistrationTable(this.maps, this.registrationPolicy, now)
    this.limiter = new RateLimiter(cfg.limits, now)
  }

  // Policies are shared objects: a reload changes them in place for every call and registration.
  private readonly callPolicy: CallPolicy = { ringMs: 0, callMs: 0, elementMs: 0 }
  private readonly registrationPolicy: RegistrationPolicy = { graceMs: 0, inboundFromAny: false }

  private applyPolicies (cfg: Config): void {
    const t = cfg.timeouts
    Object.assign(this.callPolicy, { ringMs: t.ring * 1000, callMs: t.call * 1000, elementMs: Math.min(t.element, t.call) * 1000, peerOnly: cfg.firewall })
    Object.assign(this.registrationPolicy, { graceMs: t.registrationGrace * 1000, inboundFromAny: cfg.inboundSipFrom === 'any' })
  }

  /**
   * A reloaded config (SIGHUP): timeouts, limits, rewrite and firewall options take effect at once,
   * for live calls too, and nothing is dropped. Returns the changed keys that need a restart.
   */
  reconfigure (next: Config): string[] {
    const needRestart: string[] = (['public', 'inside', 'outsideIf', 'queue', 'sipPorts', 'mediaPorts', 'table', 'failClosed',
      'controlSocket', 'stateFile', 'metricsPort', 'queueMaxLen', 'queueRcvbufBytes', 'hep', 'hepId', 'hepPassword'] as const)
      .filter(k => JSON.stringify(next[k]) !== JSON.stringify(this.cfg[k]))
    if (next.timeouts.signalling !== this.cfg.timeouts.signalling) needRestart.push('timeouts.signalling')
    Object.assign(this.cfg.limits, next.limits)
    Object.assign(this.cfg.timeouts, next.timeouts, { signalling: this.cfg.timeouts.signalling })
    for (const k of ['rewriteFromTo', 'rewriteIce', 'firewall', 'malformed', 'inboundSipFrom', 'logLevel'] as const) {
      (this.cfg as unknown as Record<string, unknown>)[k] = next[k]
    }
    this.trusted.clear()
    for (const ip of next.trustedInsideProxies) this.trusted.add(ip)
    this.applyPolicies(this.cfg)
    this.log.level = next.logLevel
    return needRestart
  }

  process (pkt: Buffer): Verdict {
    this.counters.inc('queued')
    const parsed = parseUdp(pkt)
    if (!parsed.ok) {
      this.counters.inc(parsed.reason === 'fragment' ? 'fragments' : 'not_udp')
      return ACCEPT
    }
    const udp = parsed.udp
    const srcInside = this.isInside(udp.src)
    const dstInside = this.isInside(udp.dst)
    const direction: Direction | null = srcInside === dstInside ? null : srcInside ? 'outbound' : 'inbound'
    if (direction === null || (!this.sipPorts.has(udp.srcPort) && !this.sipPorts.has(udp.dstPort))) {
      this.counters.inc('passed_transit')
      return ACCEPT
    }
    const phone: Endpoint = direction === 'outbound' ? { ip: udp.src, port: udp.srcPort } : { ip: udp.dst, port: udp.dstPort }
    const kind = classifyDatagram(udp.payload)
    if (kind === 'keepalive') {
      this.counters.inc('keepalives')
      if (direction === 'outbound') this.signalling.map(phone)
      return ACCEPT
    }
    if (kind !== 'sip') return this.notSip(udp, 'not a SIP message')
    const res = parseSip(udp.payload)
    if (!res.ok) return this.notSip(udp, res.reason)
    try {
      return this.handleSip(pkt, udp, direction, phone, res.msg)
    } catch (e) {
      // The engine promises not to throw; this is the last line that keeps SIP flowing if it does.
      this.counters.inc('internal_errors')
      this.log.error({ err: e, src: `${udp.src}:${udp.srcPort}` }, 'internal error; message passed unmodified')
      return ACCEPT
    }
  }

  private handleSip (pkt: Buffer, udp: UdpPacket, direction: Direction, phone: Endpoint, msg: SipMessage): Verdict {
    const mapsBefore = this.onMessage === undefined ? undefined : new Map([...this.maps.all()].map(e => [entryId(e.map, e.key), e]))
    const outbound = direction === 'outbound'
    const opsBefore = this.maps.pendingCount
    const remoteIp = outbound ? udp.dst : udp.src
    const publicPort = outbound ? this.signalling.map(phone) : this.signalling.lookupPrivate(phone)
    if (outbound && publicPort === null) {
      this.counters.inc('refused_signalling')
      return ACCEPT
    }
    const call = this.callFor(msg, phone, publicPort ?? phone.port, outbound)
    const ctx: RewriteContext = {
      publicIp: this.publicIp,
      isInside: this.isInside,
      peer: phone,
      trustedProxy: this.trusted.has(phone.ip),
      rewriteFromTo: this.cfg.rewriteFromTo,
      rewriteIce: this.cfg.rewriteIce,
      mapSignalling: ep => (ep.ip === phone.ip && ep.port === phone.port) ? publicPort : this.signalling.map(ep),
      mapMedia: req => {
        if (call === undefined) { this.counters.inc('refused_media'); return null }
        const grant = this.calls.grantMedia(call, req)
        if (grant === null) this.counters.inc('refused_media_ports')
        return grant
      },
      lookupSignalling: port => this.signalling.lookupPublic(port)
    }
    const result = rewriteMessage(msg, direction, ctx)
    if (call !== undefined) this.calls.update(call, msg, outbound, remoteIp, result.media, outbound ? undefined : this.usableFarSdp(result.sdp))
    this.trackRegistration(msg, outbound, phone, publicPort, remoteIp)
    if (this.maps.pendingCount !== opsBefore && this.opensSomething(this.maps.pendingSince(opsBefore), outbound)) this.mappingsFirst = true
    this.logMessage(msg, direction, result)
    if (mapsBefore !== undefined) {
      // A trace listener never costs a call its rewrite.
      try { this.traceMessage(mapsBefore, msg, direction, phone, outbound ? `${udp.dst}:${udp.dstPort}` : `${udp.src}:${udp.srcPort}`, result) } catch { /* trace only */ }
    }
    if (this.onSip !== undefined) {
      const far = outbound ? { ip: udp.dst, port: udp.dstPort } : { ip: udp.src, port: udp.srcPort }
      // HEP export never costs a call its rewrite.
      try { this.onSip({ direction, callId: msg.callId, phone, public: { ip: this.publicIp, port: publicPort ?? phone.port }, far, arrived: udp.payload, left: result.changed ? result.bytes : udp.payload }) } catch { /* export only */ }
    }
    if (!result.changed) {
      this.counters.inc('passed')
      return ACCEPT
    }
    this.counters.inc('rewritten')
    return { action: 'accept', payload: withPayload(pkt, udp, result.bytes, this.fixPacket) }
  }

  private callFor (msg: SipMessage, phone: Endpoint, publicPort: number, outbound: boolean): Call | undefined {
    const existing = msg.callId === undefined ? undefined : this.calls.get(callKey(msg.callId, phone))
    if (existing !== undefined) return existing
    if (!(msg.isRequest && msg.method === 'INVITE' && msg.toTag === undefined)) return undefined
    const refusal = this.limiter.admit(phone.ip, this.calls.size)
    if (refusal !== null) {
      this.counters.inc(`refused_${refusal}`)
      if (this.firstThisMinute(`limit ${phone.ip}`)) {
        this.log.warn({ callId: msg.callId, phone: phone.ip, limit: refusal }, 'call refused by limit; message passed without media mapping (logged once per host per minute)')
      }
      return undefined
    }
    const call = this.calls.lookup(msg, phone, publicPort, outbound)
    if (call !== undefined) this.limiter.started(phone.ip)
    return call
  }

  private trackRegistration (msg: SipMessage, outbound: boolean, phone: Endpoint, publicPort: number | null, remoteIp: string): void {
    if (msg.cseq?.method !== 'REGISTER' || msg.callId === undefined || publicPort === null) return
    const tx = `${msg.callId}|${msg.cseq.seq}`
    if (outbound && msg.isRequest) {
      this.registrations.request(tx, phone, publicPort, remoteIp, msg.to?.uri ?? '')
    } else if (!outbound && !msg.isRequest && msg.statusCode !== undefined) {
      const reg = this.registrations.answer(tx, msg.statusCode, grantedExpiry(msg, this.publicIp, publicPort))
      if (reg !== undefined) {
        this.log.info({ phone: `${phone.ip}:${phone.port}`, registrar: remoteIp, aor: reg.aor, expires: Math.round((reg.expiresAt - this.now()) / 1000) }, 'registration')
      } else if (msg.statusCode >= 200 && msg.statusCode < 300) {
        this.log.info({ phone: `${phone.ip}:${phone.port}`, registrar: remoteIp }, 'unregistered')
      }
    }
  }

  /** Whether this is the first time this minute something is logged under `key` (log floods stay bounded). */
  private firstThisMinute (key: string): boolean {
    const now = this.now()
    if ((this.quietUntil.get(key) ?? 0) > now) return false
    if (this.quietUntil.size > 10_000) this.quietUntil.clear()
    this.quietUntil.set(key, now + 60_000)
    return true
  }

  /**
   * The far end's SDP as far as it may open anything: a media address that is not a public IPv4
   * address (garbage, 0.0.0.0, or an inside host — spec §5) never becomes a pinhole source.
   */
  private usableFarSdp (sdp: SdpSummary | undefined): SdpSummary | undefined {
    if (sdp === undefined) return undefined
    const usable = (ip: string | null): boolean => ip !== null && ipv4ToNumber(ip) !== null && !this.isInside(ip) && ip !== '0.0.0.0'
    if (sdp.streams.every(s => usable(s.ip))) return sdp
    return { ...sdp, streams: sdp.streams.map(s => (usable(s.ip) ? s : { ...s, ip: null })) }
  }

  private notSip (udp: UdpPacket, why: string): Verdict {
    this.counters.inc('not_sip')
    if (this.firstThisMinute(`not-sip ${udp.src}`)) {
      this.log.warn({ src: `${udp.src}:${udp.srcPort}`, dst: `${udp.dst}:${udp.dstPort}`, bytes: udp.payload.length, why }, 'not SIP on a SIP port (logged once per source per minute)')
    }
    if (this.cfg.malformed === 'drop' || this.cfg.failClosed) {
      this.counters.inc('dropped')
      return DROP
    }
    return ACCEPT
  }

  private logMessage (msg: SipMessage, direction: Direction, r: RewriteResult): void {
    if (!this.log.isLevelEnabled('debug')) return
    this.log.debug({
      callId: msg.callId,
      direction,
      message: msg.isRequest ? msg.method : `${msg.statusCode} (${msg.cseq?.method ?? '?'})`,
      changes: r.changes.map(c => `${c.field}: ${c.before} -> ${c.after}`),
      leftAlone: r.leftAlone,
      detail: r.detail
    }, 'sip')
  }

  private traceMessage (before: Map<string, Entry>, msg: SipMessage, direction: Direction, phone: Endpoint, far: string, r: RewriteResult): void {
    const mapping = (e: Entry): { map: string, key: Entry['key'], data: Entry['data'] } => ({ map: e.map, key: e.key, data: e.data })
    const added = []
    for (const e of this.maps.all()) {
      const id = entryId(e.map, e.key)
      const old = before.get(id)
      before.delete(id)
      if (old === undefined || old.data.ip !== e.data.ip || old.data.port !== e.data.port) added.push(mapping(e))
    }
    this.onMessage?.(traceEvent(this.now(), msg, direction, `${phone.ip}:${phone.port}`, far, r, added, [...before.values()].map(mapping)))
  }

  /** Kernel flows between far media endpoints and a stream's public ports, for the shell to delete. */
  private forgetFlows (s: Stream, far: FarStream[]): void {
    for (const f of far) {
      this.staleFlows.push({ remote: { ip: f.ip, port: f.rtpPort }, publicPort: s.pub.rtpPort })
      if (f.rtcpPort !== null && s.pub.rtcpPort !== null) this.staleFlows.push({ remote: { ip: f.ip, port: f.rtcpPort }, publicPort: s.pub.rtcpPort })
    }
  }

  /**
   * Whether these ops must be in the kernel before the message that caused them is released: what a
   * phone's message advertises (its ports), and any pinhole that opens a path not open yet (the far
   * end may send media the moment it sent its answer). Narrowing an open pinhole to the far end,
   * and every removal, can follow the verdict.
   */
  private opensSomething (ops: MapOp[], outbound: boolean): boolean {
    const wasOpen = new Set(ops.filter(o => o.op === 'delete' && o.map === 'any_dnat').map(o => o.key.port))
    for (const o of ops) {
      if (o.op !== 'add') continue
      if (outbound) return true
      const narrowing = o.map === 'peer_dnat' && (wasOpen.has(o.key.port) || this.maps.get('any_dnat', { port: o.key.port }) !== undefined)
      if (!narrowing) return true
    }
    return false
  }

  /** Whether a packet processed since the last call needs its map changes in the kernel before its verdict. */
  takeMappingsFirst (): boolean {
    const v = this.mappingsFirst
    this.mappingsFirst = false
    return v
  }

  hasStaleFlows (): boolean { return this.staleFlows.length > 0 }

  takeStaleFlows (): Array<{ remote: Endpoint, publicPort: number }> {
    const f = this.staleFlows
    this.staleFlows = []
    return f
  }

  /** What `sipalg status` shows (without the I/O shell's own figures). */
  status (): Pick<StatusDoc, 'publicIp' | 'calls' | 'registrations' | 'mappings' | 'counters'> {
    const now = this.now()
    const mappings: Record<string, number> = { src_nat: 0, any_dnat: 0, peer_dnat: 0 }
    for (const e of this.maps.all()) mappings[e.map]++
    return {
      publicIp: this.publicIp,
      calls: [...this.calls.values()].map(c => ({
        callId: c.callId,
        phone: `${c.phone.ip}:${c.phone.port}`,
        direction: c.outgoing ? 'out' : 'in',
        state: c.state,
        ageSeconds: Math.round((now - c.createdAt) / 1000),
        media: [...c.streams.values()].map(s => `${s.media} ${s.priv.ip}:${s.priv.rtpPort} → ${s.pub.rtpPort}` +
          ` ⇐ ${s.installedPeers.length === 0 ? 'any' : s.installedPeers.join(',')}`),
        flows: [...c.streams.values()].map(s => {
          const far = this.calls.farStreams(c, s.index)[0]
          return { media: s.media, publicPort: s.pub.rtpPort, far: far === undefined ? null : { ip: far.ip, port: far.rtpPort } }
        })
      })),
      registrations: [...this.registrations.values()].map(r => ({
        phone: `${r.phone.ip}:${r.phone.port}`,
        publicPort: r.publicPort,
        registrar: r.registrar,
        aor: r.aor,
        expiresInSeconds: Math.round((r.expiresAt - now) / 1000)
      })),
      mappings,
      counters: this.counters.snapshot()
    }
  }

  /** Periodic work: call and registration timeouts, kernel refreshes, mirror expiry. */
  tick (): void {
    this.calls.tick()
    this.registrations.tick()
    for (const e of this.maps.sweep()) {
      if (e.map !== 'src_nat' || e.key.ip === undefined) continue
      this.signalling.expired({ ip: e.key.ip, port: e.key.port })
      // A dead call's media left by a previous sipalg: its port is free again once the kernel let go.
      if (e.owners.has(ADOPTED) && e.owners.size === 1 && this.ports.contains(e.data.port)) this.ports.release(e.data.port)
    }
  }

  /** The call and registration state for a restarted sipalg, or null when unchanged since the last one. */
  stateIfChanged (): SavedState | null {
    const generation = this.counters.get('queued') + this.counters.get('calls_ended') + this.registrations.size
    if (generation === this.savedGeneration) return null
    this.savedGeneration = generation
    return snapshot(this.calls.values(), this.registrations.values(), this.now())
  }

  /**
   * After a restart: takes over the calls and registrations a previous sipalg saved, if the kernel
   * still has their mappings (adopted into the mirror beforehand). Elements nobody claims stay
   * 'adopted' and expire by their kernel timeout.
   */
  restore (state: SavedState): { calls: number, registrations: number } {
    let calls = 0
    let registrations = 0
    for (const saved of state.calls) {
      const call = reviveCall(saved)
      if (this.calls.restore(call)) { calls++; this.limiter.started(call.phone.ip) }
    }
    for (const reg of state.registrations) if (this.registrations.restore(reg)) registrations++
    this.maps.disownShared(ADOPTED)
    return { calls, registrations }
  }
}

/** Owner of the kernel elements found at start, until a restored call or registration claims them. */
export const ADOPTED = 'adopted'

/** The expiry the registrar granted to our (rewritten) Contact, in seconds; null when none. */
export function grantedExpiry (msg: SipMessage, publicIp: string, publicPort: number): number | null {
  const header = msg.expires
  for (const c of msg.contacts) {
    const hp = locateUriHost(c.uri, 0, c.uri.length)
    if (hp?.host === publicIp && (hp.port ?? 5060) === publicPort) return c.expires ?? header ?? 3600
  }
  // Our binding is not listed: the registrar no longer has it (an unregister's answer).
  return null
}
