// The ALG core: one queued IPv4 packet in, a verdict out, kernel map changes recorded in the
// mapping mirror (the caller sends them to the kernel — before the verdicts when
// maps.mustPrecedeVerdict says a released packet relies on them). No I/O here, so the whole packet
// path can be driven by tests and benchmarks without root.
//
// The per-packet path: triage (UDP on a SIP port, crossing the inside/outside boundary) → parse
// (src/sip) → admission of a new call (src/media/limits.ts) → rewrite (src/rewrite, which asks
// for public ports through the context built here) → call and registration tracking (the method
// table in src/dialog/methods.ts) → verdict.

import type { Logger } from 'pino'
import type { Config } from './config.js'
import { insideOf } from './config.js'
import { parseUdp, withPayload, type UdpPacket } from './netfilter/packet.js'
import { classifyDatagram, parseSip, type SipMessage } from './sip/message.js'
import { rewriteMessage } from './rewrite/rewrite.js'
import type { Direction, Endpoint, RewriteContext, RewriteResult } from './rewrite/types.js'
import { ipv4ToNumber } from './rewrite/cidr.js'
import { ADOPTED, MappingTable, netChanges, type ElemData, type ElemKey, type MapName } from './media/mappings.js'
import { MediaPortPool } from './media/ports.js'
import { parsePortRange } from './validate.js'
import { SignallingTable } from './media/signalling.js'
import { CallTable, type Call, type CallPolicy, type FarStream, type Stream } from './dialog/calls.js'
import { RegistrationTable, type RegistrationPolicy } from './dialog/registrations.js'
import { isInitialInvite, signallingUse, track } from './dialog/methods.js'
import { restoreState, snapshot, type SavedState } from './dialog/state.js'
import { Counters } from './counters.js'
import { RateLimiter } from './media/limits.js'
import { coreStatus, type CoreStatus } from './status.js'
import { applyLive, restartNeeded } from './reconfigure.js'
import { traceEvent, type TraceEvent } from './trace/ladder.js'
import { shortCode } from './errors.js'
import type { SipHop } from './hep/legs.js'
import { OncePerMinute } from './once-per-minute.js'
import { canonicalIpv6, hostPort, looksIpv6 } from './ip6.js'
import { sdpSummaryOf } from './rewrite/body.js'
import type { MediaMapping, SdpSummary } from './rewrite/types.js'
import { malformedHosts } from './sip/host.js'

export type Verdict =
  | { action: 'accept', payload?: Buffer }
  | { action: 'drop' }

const ACCEPT: Verdict = { action: 'accept' }
const DROP: Verdict = { action: 'drop' }

/** Where a SIP message travels: its direction, the inside phone and the far end (as the gateway sees them), the transport. */
export interface MessageLeg { direction: Direction, phone: Endpoint, far: Endpoint, transport: 'udp' | 'tcp' }

/** A kernel flow to delete: far end ↔ public port, or (phone set) the phone's own flow to the far end. */
/** A kernel element found at start (restart adoption). */
export interface KernelElement { map: MapName, key: ElemKey, data: ElemData, remainingMs: number }

/** A media flow to forget: far ip:port → public port, or for an IPv6 phone → local (the phone) . publicPort (its own port). */
export interface StaleFlow { remote: Endpoint, publicPort: number, local?: string, phone?: Endpoint }

export class Alg {
  readonly maps: MappingTable
  readonly calls: CallTable
  readonly registrations: RegistrationTable
  readonly signalling: SignallingTable
  readonly ports: MediaPortPool
  readonly counters = new Counters()
  private readonly isInside: (ip: string) => boolean
  private readonly sipPorts: Set<number>
  private readonly trusted = new Set<string>()
  private readonly limiter: RateLimiter
  private readonly onceAMinute: OncePerMinute
  private readonly publicIp: string
  /**
   * Kernel flows for the shell to forget: of ended streams (far ip:port → public port; IPv6: → the
   * phone `local` itself), and flows a phone may have started before its stream was mapped (`phone`
   * set: phone ip:port → far ip:port).
   */
  private staleFlows: StaleFlow[] = []
  /** `sipalg trace` listener: one event per SIP message. Unset (the default) costs nothing. */
  onMessage?: (e: TraceEvent) => void
  /** HEP export (src/hep/sender.ts): each SIP message as it arrived and as it leaves. Unset costs nothing. */
  onSip?: (hop: SipHop) => void

  // Policies are shared objects: a reload changes them in place for every call and registration.
  private readonly callPolicy: CallPolicy = { ringMs: 0, callMs: 0, elementMs: 0 }
  private readonly registrationPolicy: RegistrationPolicy = { graceMs: 0, inboundFromAny: false }

  constructor (private readonly cfg: Config, private readonly log: Logger, private readonly now: () => number = Date.now,
    private readonly fixPacket?: (pkt: Buffer) => void,
    /** Another worker's public signalling ports are never handed out here (src/workers/shard.ts). */
    signallingPortUsable: (port: number) => boolean = () => true) {
    if (cfg.public === null) throw new Error('Alg needs a public address')
    this.publicIp = cfg.public
    this.isInside = insideOf(cfg)
    this.sipPorts = new Set(cfg.sipPorts)
    this.maps = new MappingTable(now)
    const range = parsePortRange(cfg.mediaPorts)
    this.ports = new MediaPortPool(range.lo, range.hi)
    // A far SDP address that is not a public IPv4 address (garbage, or an inside host) never becomes a pinhole source.
    // IPv6: a canonical literal (the SDP summary made it so) that is not inside and not "::".
    this.callPolicy.farAddressUsable = ip => (ip.includes(':') ? ip !== '::' && canonicalIpv6(ip) === ip : ipv4ToNumber(ip) !== null) && !this.isInside(ip)
    this.applyPolicies(cfg)
    this.signalling = new SignallingTable(this.maps, cfg.timeouts.signalling * 1000, p => this.ports.contains(p) || !signallingPortUsable(p), now)
    this.calls = new CallTable(this.maps, this.ports, this.callPolicy, {
      onStart: call => { this.counters.inc('calls_started'); this.signalling.callStarted(call.phone); this.log.info({ callId: call.callId, phone: hostPort(call.phone.ip, call.phone.port), direction: call.outgoing ? 'outbound' : 'inbound' }, 'call started') },
      onStreamDropped: (_call, s, far) => { this.forgetFlows(s, far) },
      onForkDropped: (_call, s, far) => { this.forgetFlows(s, far) },
      // Its flow started un-NATed (no mapping yet) would keep its addresses: forgotten once the mapping is in.
      onLateStream: (_call, s, far) => { this.forgetPhoneFlows(s, far) },
      onFlowsNarrowed: (_call, _s, flows) => { for (const f of flows) this.staleFlows.push({ remote: { ip: f.ip, port: f.port }, publicPort: f.publicPort }) },
      onOtherFamily: (call, addresses) => { this.otherFamily(call, addresses) },
      onEnd: (call, reason) => { this.counters.inc('calls_ended'); this.signalling.callEnded(call.phone); this.limiter.ended(call.phone.ip); this.log.info({ callId: call.callId, reason, seconds: Math.round((this.now() - call.createdAt) / 1000) }, 'call ended') }
    }, now)
    this.registrations = new RegistrationTable(this.maps, this.registrationPolicy, this.publicIp, {
      onRegistered: reg => { this.log.info({ phone: `${reg.phone.ip}:${reg.phone.port}`, registrar: reg.registrar, aor: reg.aor, expires: Math.round((reg.expiresAt - this.now()) / 1000) }, 'registration') },
      onUnregistered: (phone, registrar) => { this.log.info({ phone: `${phone.ip}:${phone.port}`, registrar }, 'unregistered') }
    }, now)
    this.limiter = new RateLimiter(cfg.limits, now)
    this.onceAMinute = new OncePerMinute(now)
  }

  private applyPolicies (cfg: Config): void {
    const t = cfg.timeouts
    Object.assign(this.callPolicy, { ringMs: t.ring * 1000, callMs: t.call * 1000, elementMs: Math.min(t.element, t.call) * 1000, farEndOnly: cfg.firewall, latching: cfg.mediaLatching, latchMs: t.latch * 1000 })
    Object.assign(this.registrationPolicy, { graceMs: t.registrationGrace * 1000, inboundFromAny: cfg.inboundSipFrom === 'any' })
    this.trusted.clear()
    for (const ip of cfg.trustedInsideProxies) this.trusted.add(ip)
  }

  /**
   * A reloaded config (SIGHUP): what src/reconfigure.ts declares live takes effect at once, for
   * live calls too, and nothing is dropped. Returns the changed keys that need a restart.
   */
  reconfigure (next: Config): string[] {
    const needRestart = restartNeeded(this.cfg, next)
    applyLive(this.cfg, next)
    this.applyPolicies(this.cfg)
    this.log.level = this.cfg.logLevel
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
    if (udp.family === 6) return this.processIpv6(udp)
    const srcInside = this.isInside(udp.src)
    const dstInside = this.isInside(udp.dst)
    const direction: Direction | null = srcInside === dstInside ? null : srcInside ? 'outbound' : 'inbound'
    if (direction === 'inbound' && !this.sipPorts.has(udp.dstPort) && !this.sipPorts.has(udp.srcPort)) {
      const v = this.firstMediaPacket(udp)
      if (v !== null) return v
    }
    if (direction === null || (!this.sipPorts.has(udp.srcPort) && !this.sipPorts.has(udp.dstPort))) {
      this.counters.inc('passed_transit')
      return ACCEPT
    }
    const phone: Endpoint = direction === 'outbound' ? { ip: udp.src, port: udp.srcPort } : { ip: udp.dst, port: udp.dstPort }
    const far: Endpoint = direction === 'outbound' ? { ip: udp.dst, port: udp.dstPort } : { ip: udp.src, port: udp.srcPort }
    const kind = classifyDatagram(udp.payload)
    if (kind === 'keepalive') {
      this.counters.inc('keepalives')
      if (direction === 'outbound') this.signalling.allocateAndInstall(phone, 'long-lived', far)
      return ACCEPT
    }
    if (kind !== 'sip') return this.notSip(udp, 'not a SIP message')
    const res = parseSip(udp.payload)
    if (!res.ok) return this.notSip(udp, res.reason)
    const result = this.guarded({ direction, phone, far, transport: 'udp' }, res.msg)
    if (result === null || !result.changed) return ACCEPT
    return { action: 'accept', payload: withPayload(pkt, udp, result.bytes, this.fixPacket) }
  }

  /**
   * An IPv6 datagram: nothing to NAT, so nothing is rewritten and the verdict is a plain accept.
   * SIP between an inside and an outside host is tracked like IPv4's (the same call table and
   * method handlers), so the phone's negotiated media gets its pinholes (pinhole6, media6) before
   * the message that completes the offer/answer is released.
   */
  private processIpv6 (udp: UdpPacket): Verdict {
    this.counters.inc('ipv6_packets')
    const srcInside = this.isInside(udp.src)
    const direction: Direction | null = srcInside === this.isInside(udp.dst) ? null : srcInside ? 'outbound' : 'inbound'
    if (direction === null || (!this.sipPorts.has(udp.srcPort) && !this.sipPorts.has(udp.dstPort))) {
      this.counters.inc('passed_transit')
      return ACCEPT
    }
    const kind = classifyDatagram(udp.payload)
    if (kind === 'keepalive') {
      this.counters.inc('keepalives')
      return ACCEPT
    }
    if (kind !== 'sip') return this.notSip(udp, 'not a SIP message')
    const res = parseSip(udp.payload)
    if (!res.ok) return this.notSip(udp, res.reason)
    const phone: Endpoint = direction === 'outbound' ? { ip: udp.src, port: udp.srcPort } : { ip: udp.dst, port: udp.dstPort }
    const far: Endpoint = direction === 'outbound' ? { ip: udp.dst, port: udp.dstPort } : { ip: udp.src, port: udp.srcPort }
    this.guarded6({ direction, phone, far, transport: 'udp' }, res.msg)
    return ACCEPT
  }

  /** handleSip6, but a throw never stops SIP from flowing: the message passes as it came. */
  private guarded6 (leg: MessageLeg, msg: SipMessage): void {
    try {
      this.handleSip6(leg, msg)
    } catch (e) {
      this.counters.inc('internal_errors')
      this.log.error({ code: shortCode('E307_INTERNAL'), err: e, src: hostPort(leg.phone.ip, leg.phone.port), family: 'ipv6', transport: leg.transport }, 'internal error; message passed unmodified')
    }
  }

  /** Call tracking of one IPv6 SIP message (read, never rewritten). */
  private handleSip6 (leg: MessageLeg, msg: SipMessage): void {
    const { direction, phone, far } = leg
    const outbound = direction === 'outbound'
    const opsBefore = this.maps.pendingCount
    this.counters.inc(`ipv6_messages_${direction}`)
    // Literals with a zone id or that are no IPv6 address at all: malformed input, passed as it came.
    const bad = malformedHosts(msg)
    const sdp = sdpSummaryOf(msg)
    if (bad > 0 || (sdp?.malformedAddresses?.length ?? 0) > 0) this.counters.inc('malformed_ipv6_literals', bad + (sdp?.malformedAddresses?.length ?? 0))
    const call = this.callFor(msg, phone, phone.port, outbound)
    const phoneMedia = outbound && call !== undefined && sdp !== undefined ? this.ownMedia6(call, sdp, phone.ip) : []
    // An IPv6 registration needs no state: inbound SIP reaches the phone by the operator's own rules.
    if (call !== undefined) {
      track(this, call, { msg, phoneSent: outbound, phone, phonePublicPort: phone.port, farIp: far.ip, phoneMedia, farSdp: outbound ? undefined : sdp })
    }
    const result: RewriteResult = { bytes: msg.raw, changed: false, changes: [], media: phoneMedia, ...(sdp === undefined ? {} : { sdp }) }
    this.logMessage(msg, direction, result)
    if (this.onMessage !== undefined) {
      try { this.traceMessage(opsBefore, msg, leg, result) } catch { /* trace only */ }
    }
    if (this.onSip !== undefined) {
      // Nothing translated: the "public" end is the phone itself (src/hep/legs.ts sends it once).
      try { this.onSip({ direction, callId: msg.callId, phone, public: phone, far, arrived: msg.raw, left: msg.raw }) } catch { /* export only */ }
    }
    this.counters.inc('passed')
  }

  /**
   * The streams of an IPv6 phone's own SDP (its address, or "::" for a hold) as media mappings
   * that keep their ports: what the call's pinholes are built for.
   */
  private ownMedia6 (call: Call, sdp: SdpSummary, phoneIp: string): MediaMapping[] {
    const out: MediaMapping[] = []
    for (const s of sdp.streams) {
      if (s.port === 0 || (s.ip !== phoneIp && s.ip !== '::')) continue
      const rtcpPort = s.rtcpMux ? null : s.rtcpPort
      const grant = this.calls.grantMedia(call, { index: s.index, media: s.media, ip: phoneIp, rtpPort: s.port, rtcpPort, rtcpIp: s.rtcpIp ?? phoneIp })
      if (grant === null) continue
      out.push({ index: s.index, media: s.media, private: { ip: phoneIp, rtpPort: s.port, rtcpPort }, public: grant })
    }
    return out
  }

  /** Far SDP media of the other family than the phone (ANAT): passed as written, logged once per call. */
  private otherFamily (call: Call, addresses: string[]): void {
    this.counters.inc('sdp_other_family')
    if (!this.onceAMinute.first(`family ${call.key}`)) return
    this.log.warn({ code: shortCode('E321_SDP_MIXED_FAMILIES'), callId: call.callId, phone: call.phone.ip, family: looksIpv6(call.phone.ip) ? 'ipv6' : 'ipv4', addresses: addresses.join(',') }, 'far SDP offers media of the other address family; passed as written, no pinhole for it (logged once per call)')
  }

  /**
   * One whole SIP message from a stream (a TCP splice leg, src/tcp/splice.ts): the bytes to write to
   * the other leg. The same path as a UDP datagram; the caller framed the message by its
   * Content-Length, so a message without one has an empty body here (RFC 3261 18.3). Bytes that do not
   * parse as SIP are passed as they came (counted like a malformed datagram). Kernel changes it queues
   * follow the same rule as UDP: the caller applies them (maps.mustPrecedeVerdict) before writing.
   * An IPv6 phone's message takes the IPv6 datagram's path: tracked (pinholes), never rewritten.
   */
  processMessage (bytes: Buffer, leg: MessageLeg): Buffer {
    this.counters.inc(`${leg.transport}_messages_${leg.direction}`)
    const res = parseSip(bytes)
    if (!res.ok) {
      this.counters.inc('not_sip')
      return bytes
    }
    if (looksIpv6(leg.phone.ip)) {
      this.guarded6(leg, res.msg)
      return bytes
    }
    const result = this.guarded(leg, res.msg)
    return result === null ? bytes : result.bytes
  }

  /** handleSip, but a throw never stops SIP from flowing: the message passes unmodified (null). */
  private guarded (leg: MessageLeg, msg: SipMessage): RewriteResult | null {
    try {
      return this.handleSip(leg, msg)
    } catch (e) {
      // The engine promises not to throw; this is the last line that keeps SIP flowing if it does.
      this.counters.inc('internal_errors')
      this.log.error({ code: shortCode('E307_INTERNAL'), err: e, src: `${leg.phone.ip}:${leg.phone.port}`, transport: leg.transport }, 'internal error; message passed unmodified')
      return null
    }
  }

  /** Rewrite, tracking, counters and trace of one parsed message; null when it is passed as it came. */
  private handleSip (leg: MessageLeg, msg: SipMessage): RewriteResult | null {
    const { direction, phone, far } = leg
    const outbound = direction === 'outbound'
    const opsBefore = this.maps.pendingCount
    const publicPort = outbound ? this.signalling.allocateAndInstall(phone, signallingUse(msg), far) : this.signalling.lookupPrivate(phone)
    if (outbound && publicPort === null) {
      this.counters.inc('refused_signalling')
      return null
    }
    const phonePublicPort = publicPort ?? phone.port
    const call = this.callFor(msg, phone, phonePublicPort, outbound)
    const ctx: RewriteContext = {
      publicIp: this.publicIp,
      isInside: this.isInside,
      phone,
      trustedProxy: this.trusted.has(phone.ip),
      rewriteFromTo: this.cfg.rewriteFromTo,
      rewriteIce: this.cfg.rewriteIce,
      mapSignalling: ep => (ep.ip === phone.ip && ep.port === phone.port) ? publicPort : this.signalling.allocateAndInstall(ep),
      mapMedia: req => {
        if (call === undefined) { this.counters.inc('refused_media'); return null }
        const grant = this.calls.grantMedia(call, req)
        if (grant === null) this.counters.inc('refused_media_ports')
        return grant
      },
      lookupSignalling: port => this.signalling.lookupPublic(port)
    }
    const result = rewriteMessage(msg, direction, ctx)
    // A message whose phone has no public port (inbound to a phone sipalg never mapped) belongs to no registration.
    if (call !== undefined || publicPort !== null) {
      track(this, call, { msg, phoneSent: outbound, phone, phonePublicPort, farIp: far.ip, phoneMedia: result.media, farSdp: outbound ? undefined : result.sdp })
    }
    this.logMessage(msg, direction, result)
    if (this.onMessage !== undefined) {
      // A trace listener never costs a call its rewrite.
      try { this.traceMessage(opsBefore, msg, leg, result) } catch { /* trace only */ }
    }
    // Invalid framing (a Content-Length that is not a number, disagrees with another or exceeds the
    // body): the engine passes it untouched, and it counts as malformed like any broken input.
    if (result.leftAlone === 'malformed') this.counters.inc('malformed')
    if (this.onSip !== undefined) {
      // HEP export never costs a call its rewrite.
      try { this.onSip({ direction, callId: msg.callId, phone, public: { ip: this.publicIp, port: phonePublicPort }, far, arrived: msg.raw, left: result.changed ? result.bytes : msg.raw }) } catch { /* export only */ }
    }
    this.counters.inc(result.changed ? 'rewritten' : 'passed')
    return result
  }

  /**
   * The first packet of a new flow to a phone's media port open to anyone (queued by the kernel
   * while any_dnat holds the port: src/netfilter/table.ts). Null: not one of ours, passed as transit.
   */
  private firstMediaPacket (udp: UdpPacket): Verdict | null {
    const r = this.calls.firstPacket({ ip: udp.dst, port: udp.dstPort }, { ip: udp.src, port: udp.srcPort }, udp.payload)
    if (r.outcome === 'unknown') return null
    const from = `${udp.src}:${udp.srcPort}`
    switch (r.outcome) {
      case 'admitted':
        this.counters.inc('media_flows_seen')
        return ACCEPT
      case 'latched':
        this.counters.inc('media_latched')
        this.log.info({ callId: r.call.callId, media: r.stream.media, publicPort: r.publicPort, source: from }, 'media latched')
        return ACCEPT
      case 'refused':
        this.counters.inc('media_latch_refused')
        if (this.onceAMinute.first(`latch ${udp.src}`)) {
          this.log.warn({ code: shortCode('E315_LATCH_REFUSED'), callId: r.call.callId, publicPort: r.publicPort, source: from, bytes: udp.payload.length }, 'not the stream\'s RTP: no latch, dropped (logged once per source per minute)')
        }
        return DROP
      case 'narrowed':
        this.counters.inc('media_flows_refused')
        return DROP
    }
  }

  /** The message's call; an initial INVITE the limits admit begins one. */
  private callFor (msg: SipMessage, phone: Endpoint, publicPort: number, outbound: boolean): Call | undefined {
    const existing = this.calls.find(msg.callId, phone)
    if (existing !== undefined || msg.callId === undefined || !isInitialInvite(msg)) return existing
    const refusal = this.limiter.admit(phone.ip, this.calls.size)
    if (refusal !== null) {
      this.counters.inc(`refused_${refusal}`)
      if (this.onceAMinute.first(`limit ${phone.ip}`)) {
        this.log.warn({ code: shortCode('E311_CALL_LIMIT'), callId: msg.callId, phone: phone.ip, limit: refusal }, 'call refused by limit; message passed without media mapping (logged once per host per minute)')
      }
      return undefined
    }
    this.limiter.started(phone.ip)
    return this.calls.begin(msg.callId, phone, publicPort, outbound)
  }

  private notSip (udp: UdpPacket, why: string): Verdict {
    this.counters.inc('not_sip')
    if (this.onceAMinute.first(`not-sip ${udp.src}`)) {
      this.log.warn({ code: shortCode('E312_NOT_SIP'), src: `${udp.src}:${udp.srcPort}`, dst: `${udp.dst}:${udp.dstPort}`, bytes: udp.payload.length, why }, 'not SIP on a SIP port (logged once per source per minute)')
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

  /** One trace event: the message, what the rewriter changed, and the kernel changes it caused. */
  private traceMessage (opsBefore: number, msg: SipMessage, leg: MessageLeg, r: RewriteResult): void {
    const { added, removed } = netChanges(this.maps.pendingSince(opsBefore))
    const e = traceEvent(this.now(), msg, leg.direction, hostPort(leg.phone.ip, leg.phone.port), hostPort(leg.far.ip, leg.far.port), r, added, removed)
    if (leg.transport !== 'udp') e.transport = leg.transport
    this.onMessage?.(e)
  }

  /** Kernel flows between far media endpoints and a stream's public ports, for the shell to delete. */
  private forgetFlows (s: Stream, far: FarStream[]): void {
    const local = looksIpv6(s.priv.ip) ? { local: s.priv.ip } : {}
    for (const f of far) {
      this.staleFlows.push({ remote: { ip: f.ip, port: f.rtpPort }, publicPort: s.pub.rtpPort, ...local })
      if (f.rtcpPort !== null && s.pub.rtcpPort !== null) this.staleFlows.push({ remote: { ip: f.ip, port: f.rtcpPort }, publicPort: s.pub.rtcpPort, ...local })
    }
  }

  /**
   * The phone's flows to a far end's media that may predate the stream's NAT mapping. An IPv6
   * phone has no NAT to predate, and a flow before its pinhole was dropped, not tracked.
   */
  private forgetPhoneFlows (s: Stream, far: FarStream[]): void {
    if (looksIpv6(s.priv.ip)) return
    for (const f of far) {
      this.staleFlows.push({ remote: { ip: f.ip, port: f.rtpPort }, publicPort: s.pub.rtpPort, phone: { ip: s.priv.ip, port: s.priv.rtpPort } })
      if (f.rtcpPort !== null && s.priv.rtcpPort !== null && s.pub.rtcpPort !== null) {
        this.staleFlows.push({ remote: { ip: f.ip, port: f.rtcpPort }, publicPort: s.pub.rtcpPort, phone: { ip: s.priv.ip, port: s.priv.rtcpPort } })
      }
    }
  }

  hasStaleFlows (): boolean { return this.staleFlows.length > 0 }

  takeStaleFlows (): StaleFlow[] {
    const f = this.staleFlows
    this.staleFlows = []
    return f
  }

  /** What `sipalg status` shows (without the I/O shell's own figures). */
  status (): CoreStatus {
    return coreStatus(this, this.publicIp, this.counters.snapshot(), this.now())
  }

  /** Periodic work: call and registration timeouts, kernel refreshes, mirror expiry. */
  tick (): void {
    this.calls.tick()
    this.registrations.tick()
    for (const e of this.maps.sweep()) {
      if (e.map !== 'src_nat' || e.key.ip === undefined) continue
      const phone = { ip: e.key.ip, port: e.key.port }
      const freed = this.signalling.expired(phone)
      if (freed !== null && !looksIpv6(phone.ip)) for (const remote of freed.remotes) this.staleFlows.push({ remote, publicPort: freed.publicPort, phone })
      // A dead call's media left by a previous sipalg: its port is free again once the kernel let go.
      if (e.owners.has(ADOPTED) && e.owners.size === 1 && this.ports.contains(e.data.port)) this.ports.release(e.data.port)
    }
  }

  /** The call and registration state for a restarted sipalg, or null when nothing it needs changed since the last one. */
  stateIfChanged (): SavedState | null {
    const calls = this.calls.takeChanged()
    const registrations = this.registrations.takeChanged()
    return calls || registrations ? snapshot(this.calls.values(), this.registrations.values(), this.now()) : null
  }

  /**
   * After a restart, step 1: the elements a previous sipalg left in the kernel (they keep calls
   * alive) go into the mirror as 'adopted', with the ports they hold.
   */
  adopt (elements: Iterable<KernelElement>): number {
    let n = 0
    for (const e of elements) {
      this.maps.adopt(e.map, e.key, e.data, e.remainingMs, e.remainingMs, ADOPTED)
      if (e.map === 'src_nat' && e.key.ip !== undefined) {
        if (this.ports.contains(e.data.port)) this.ports.claim(e.data.port); else this.signalling.adopt({ ip: e.key.ip, port: e.key.port }, e.data.port)
      }
      n++
    }
    return n
  }

  /**
   * Step 2: takes over the calls and registrations a previous sipalg saved, if the kernel still
   * has their mappings. Elements nobody claims stay 'adopted' and expire by their kernel timeout.
   */
  restore (state: SavedState): { calls: number, registrations: number } {
    const taken = restoreState(state, this.calls, this.registrations)
    for (const call of taken.calls) this.limiter.started(call.phone.ip)
    this.maps.disownShared(ADOPTED)
    return { calls: taken.calls.length, registrations: taken.registrations }
  }
}
