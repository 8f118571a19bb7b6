// Call state: which media mappings each INVITE dialog of an inside phone needs, and when they go.
// Keyed by Call-ID + the inside phone's signalling endpoint (a hairpinned call has one Call-ID on
// two inside phones). Forked early dialogs (several far ends answering with their own SDP) share
// the phone's media ports; the far end that answers with a 2xx keeps the pinhole.
//
// What each SIP method does to a call is decided in ./methods.ts (the method table); this file
// holds the state and the steps those handlers call.

import { looksIpv6 } from '../ip6.js'
import type { Endpoint, MediaGrant, MediaMapping, MediaRequest, SdpSummary } from '../rewrite/types.js'
import type { ElemData, ElemKey, MapName, MappingTable } from '../media/mappings.js'
import type { MediaPortPool } from '../media/ports.js'
import { admits, offer, openLatch, type LatchMode, type Source, type StreamLatch } from '../media/latch.js'

export interface CallPolicy {
  /** From INVITE to a final answer. */
  ringMs: number
  /** An established call with no SIP seen for this long is over (hold-aware: long by default). */
  callMs: number
  /** Lifetime of a kernel element between refreshes; elements outlive a dead sipalg by at most this. */
  elementMs: number
  /**
   * Firewall mode: inbound media only from the far end's SDP address, never "from anyone" while
   * that address is not known yet (costs early media from a far end that sends before its SDP).
   */
  farEndOnly?: boolean
  /**
   * Whether a far SDP address may become a pinhole source (a public IPv4 address; garbage or an
   * inside host never does). Unset: any address but 0.0.0.0.
   */
  farAddressUsable?: (ip: string) => boolean
  /** media_latching (src/media/latch.ts); unset = off. */
  latching?: LatchMode
  /** How long a stream stays open to a latch after the far end's media is known (and after the answer). */
  latchMs?: number
}

/** One DNAT element a stream has installed (the mirror owns the data). */
export interface DnatElement { map: MapName, key: ElemKey }

/** Far sources of flows the kernel admitted to a public port while it was open to anyone. */
export interface SeenFlow { ip: string, port: number, publicPort: number }

// A flood of sources on an open port must not grow a call without bound; flows past this many are
// left to conntrack's own timeout when the pinhole narrows.
const SEEN_FLOWS_MAX = 32

export interface Stream {
  index: number
  media: string
  priv: { ip: string, rtpPort: number, rtcpPort: number | null }
  pub: { rtpPort: number, rtcpPort: number | null }
  /** Far-end media addresses allowed in, as last installed ([] = from anyone: far SDP not known yet). */
  allowedFarIps: string[]
  /** The DNAT elements last installed (unset in a state file of an older sipalg: derived from allowedFarIps). */
  dnat?: DnatElement[]
  /** The latch (media_latching: first) since the far end's media is known; unset = none. */
  latch?: StreamLatch
  /** Flows the kernel admitted while a port was open to anyone: cut when the pinhole no longer allows them. */
  seen?: SeenFlow[]
}

export type CallState = 'early' | 'confirmed' | 'ended'

export interface Call {
  key: string
  callId: string
  phone: Endpoint
  phonePublicPort: number
  /** The phone placed the call (it sent the INVITE). */
  outgoing: boolean
  state: CallState
  createdAt: number
  deadline: number
  /** When tick() last renewed this call's kernel element timeouts. */
  refreshedAt: number
  cancelled: boolean
  streams: Map<string, Stream>
  /** Far SDP streams by far dialog tag ('' before the far end has a tag), by m= index. */
  farMedia: Map<string, Array<FarStream | null>>
  confirmedTag: string | null
  /** Far-end signalling addresses allowed to send in-dialog requests to the phone. */
  farSignalling: Set<string>
  /** The phone's streams in the last SDP it sent with any mapped stream (offer or answer). */
  phoneSdp: Set<string> | null
}

export interface FarStream {
  ip: string
  rtpPort: number
  rtcpPort: number | null
  /** The payload types of its m= line (what a latch accepts); unset in an older state file. */
  payloadTypes?: number[]
}

/** What the first packet of a new flow on a phone's open media port led to (src/alg.ts queues it). */
export type FirstPacket =
  | { outcome: 'latched' | 'refused' | 'admitted' | 'narrowed', call: Call, stream: Stream, publicPort: number }
  | { outcome: 'unknown' }

export interface CallEvents {
  onStart?: (call: Call) => void
  onEnd?: (call: Call, reason: string) => void
  /** A stream's mappings are gone: flows the kernel still tracks for it should go too. */
  onStreamDropped?: (call: Call, stream: Stream, far: FarStream[]) => void
  /** Forks that did not answer lost their pinholes on this stream: their flows should go too. */
  onForkDropped?: (call: Call, stream: Stream, far: FarStream[]) => void
  /** A stream's pinhole narrowed (answer, latch, window end, re-INVITE): flows it admitted earlier and no longer allows go. */
  onFlowsNarrowed?: (call: Call, stream: Stream, flows: SeenFlow[]) => void
  /** The far SDP names media of the other address family than the phone (ANAT, RFC 4091): passed, no pinhole for those. */
  onOtherFamily?: (call: Call, addresses: string[]) => void
  /**
   * A stream got its ports after the far end's media was known (late offer: the answer in the ACK):
   * the phone may already be sending to it, in a kernel flow that started before the mapping.
   */
  onLateStream?: (call: Call, stream: Stream, far: FarStream[]) => void
}

/** The parts of a SIP message call and registration tracking read (a parsed SipMessage has them). */
export interface SipFacts {
  isRequest: boolean
  method?: string
  statusCode?: number
  callId?: string
  fromTag?: string
  toTag?: string
  cseq?: { seq: number, method: string }
  to?: { uri: string }
  expires?: number
  contacts?: Array<{ uri: string, expires: number | undefined }>
}

/** One SIP message of a call or registration, after the rewriter mapped its addresses. */
export interface Tracked {
  msg: SipFacts
  /** The inside phone sent it (outbound); otherwise the far end did. */
  phoneSent: boolean
  phone: Endpoint
  /** The phone's public signalling port. */
  phonePublicPort: number
  /** The far end's signalling address (the packet's other side). */
  farIp: string
  /** The phone's media as written into this message (its SDP, mapped). */
  phoneMedia: MediaMapping[]
  /** The far end's SDP as received, when the far end sent one. */
  farSdp?: SdpSummary
}

export const callKey = (callId: string, phone: Endpoint): string => `${callId}|${phone.ip}:${phone.port}`

export const streamKey = (ip: string, port: number): string => `${ip}:${port}`

/**
 * An IPv6 phone's call: no NAT, so its streams keep their own ports (the media port pool is
 * IPv4's public ports) and its kernel elements are the firewall sets pinhole6 and media6.
 */
export class CallTable {
  private readonly calls = new Map<string, Call>()
  /** Phone media endpoints (private ip:port, RTP and RTCP) → their stream, for the first packets the kernel queues. */
  private readonly byPrivate = new Map<string, { call: Call, stream: Stream, port: 'rtp' | 'rtcp' }>()
  private changed = false

  constructor (
    private readonly maps: MappingTable,
    private readonly ports: MediaPortPool,
    private readonly policy: CallPolicy,
    private readonly events: CallEvents = {},
    private readonly now: () => number = Date.now
  ) {}

  get size (): number { return this.calls.size }
  values (): IterableIterator<Call> { return this.calls.values() }

  /** The call a message of this Call-ID to or from this phone belongs to. */
  find (callId: string | undefined, phone: Endpoint): Call | undefined {
    return callId === undefined ? undefined : this.calls.get(callKey(callId, phone))
  }

  /** A new call for an initial INVITE (see isInitialInvite in ./methods.ts). */
  begin (callId: string, phone: Endpoint, phonePublicPort: number, phoneSent: boolean): Call {
    const now = this.now()
    const call: Call = {
      key: callKey(callId, phone),
      callId,
      phone,
      phonePublicPort,
      outgoing: phoneSent,
      state: 'early',
      createdAt: now,
      deadline: now + this.policy.ringMs,
      refreshedAt: now,
      cancelled: false,
      streams: new Map(),
      farMedia: new Map(),
      confirmedTag: null,
      farSignalling: new Set(),
      phoneSdp: null
    }
    this.calls.set(call.key, call)
    this.changed = true
    this.events.onStart?.(call)
    return call
  }

  /**
   * Takes over a call a previous sipalg left (restart): its ports are claimed and its kernel
   * elements, adopted from the table, become this call's again. False when the kernel no longer
   * has its media (the call died meanwhile): then it is forgotten.
   */
  restore (call: Call): boolean {
    const v6 = looksIpv6(call.phone.ip)
    const alive = call.streams.size > 0 &&
      [...call.streams.values()].every(s => this.maps.get(v6 ? 'media6' : 'src_nat', { ip: s.priv.ip, port: s.priv.rtpPort })?.data.port === s.pub.rtpPort)
    if (!alive || this.calls.has(call.key) || this.now() >= call.deadline) return false
    for (const s of call.streams.values()) { if (!v6) this.ports.claim(s.pub.rtpPort); this.index(call, s) }
    this.calls.set(call.key, call)
    this.install(call)
    for (const ip of call.farSignalling) this.allowFarSignalling(call, ip)
    return true
  }

  /** Whether anything a restarted sipalg would need changed since the last call (state saving). */
  takeChanged (): boolean {
    const c = this.changed
    this.changed = false
    return c
  }

  /** Public ports for one of the phone's streams; the same private endpoint keeps its ports. */
  grantMedia (call: Call, req: MediaRequest): MediaGrant | null {
    const existing = call.streams.get(streamKey(req.ip, req.rtpPort))
    if (existing !== undefined) {
      if ((existing.priv.rtcpPort === null) === (req.rtcpPort === null)) {
        if (existing.index !== req.index) { existing.index = req.index; this.changed = true }
        return { rtpPort: existing.pub.rtpPort, rtcpPort: existing.pub.rtcpPort }
      }
      this.dropStream(call, existing)
    }
    const rtp = looksIpv6(req.ip) ? req.rtpPort : this.ports.take()
    if (rtp === null) return null
    const stream: Stream = {
      index: req.index,
      media: req.media,
      priv: { ip: req.ip, rtpPort: req.rtpPort, rtcpPort: req.rtcpPort },
      pub: { rtpPort: rtp, rtcpPort: req.rtcpPort === null ? null : looksIpv6(req.ip) ? req.rtcpPort : rtp + 1 },
      allowedFarIps: []
    }
    call.streams.set(streamKey(req.ip, req.rtpPort), stream)
    this.index(call, stream)
    this.changed = true
    const far = this.farStreams(call, req.index)
    if (far.length > 0) this.events.onLateStream?.(call, stream, far)
    return { rtpPort: stream.pub.rtpPort, rtcpPort: stream.pub.rtcpPort }
  }

  // ---- Steps every message of a call takes, around its method's handler (./methods.ts) ----

  /**
   * Before the method's handler: the far signalling address may reach the phone, and the far
   * end's SDP (if any) is recorded under its dialog tag. True when the far media changed.
   */
  messageSeen (call: Call, m: Tracked): boolean {
    if (!call.farSignalling.has(m.farIp)) {
      call.farSignalling.add(m.farIp)
      this.changed = true
      this.allowFarSignalling(call, m.farIp)
    }
    if (m.farSdp === undefined || m.phoneSent) return false
    const usable = this.policy.farAddressUsable ?? (() => true)
    const v6 = looksIpv6(call.phone.ip)
    const other = m.farSdp.streams.flatMap(s => s.ip !== null && s.port > 0 && looksIpv6(s.ip) !== v6 ? [s.ip] : [])
    if (other.length > 0) this.events.onOtherFamily?.(call, other)
    const far = m.farSdp.streams.map(s => (s.ip !== null && s.ip !== '0.0.0.0' && s.port > 0 && looksIpv6(s.ip) === v6 && usable(s.ip)
      ? { ip: s.ip, rtpPort: s.port, rtcpPort: s.rtcpPort, payloadTypes: s.payloadTypes }
      : null))
    if (!far.some(f => f !== null)) return false
    call.farMedia.set((m.msg.isRequest ? m.msg.fromTag : m.msg.toTag) ?? '', far)
    this.changed = true
    return true
  }

  /**
   * After the handler: the phone's SDP is remembered; when the message completes an offer/answer
   * exchange, streams the phone no longer lists (a port it moved away from) and streams the far
   * end declined (m= port 0) are over; kernel elements follow the new state.
   */
  messageDone (call: Call, m: Tracked, completes: boolean, mediaChanged: boolean): void {
    if (m.phoneSent && m.phoneMedia.length > 0) {
      call.phoneSdp = new Set(m.phoneMedia.map(p => streamKey(p.private.ip, p.private.rtpPort)))
    }
    if (completes && call.phoneSdp !== null) {
      const keep = call.phoneSdp
      for (const [k, s] of call.streams) if (!keep.has(k)) this.dropStream(call, s)
    }
    if (completes && !m.phoneSent && m.farSdp !== undefined) {
      for (const s of [...call.streams.values()]) {
        if (m.farSdp.streams[s.index]?.port === 0) this.dropStream(call, s)
      }
    }
    // Kernel elements change only with new SDP or a new dialog state; tick() refreshes timeouts.
    if (mediaChanged || m.phoneMedia.length > 0) this.install(call)
  }

  // ---- What the method handlers do ----

  /** An in-dialog request of an established call: it is alive, its timeout starts again. */
  keepAlive (call: Call): void {
    if (call.state !== 'confirmed') return
    const deadline = this.now() + this.policy.callMs
    // A saved deadline a minute old is close enough for a restart: INFO and OPTIONS do not rewrite the state file.
    if (deadline - call.deadline >= 60_000) this.changed = true
    call.deadline = deadline
  }

  cancelled (call: Call): void {
    if (!call.cancelled) this.changed = true
    call.cancelled = true
  }

  /**
   * A 2xx to the INVITE. The first one picks the answering dialog: forked early dialogs that did
   * not answer lose their media pinholes, and the kernel flows their early media already opened
   * must go too (a flow outlives its pinhole).
   */
  confirm (call: Call, m: Tracked): void {
    if (call.state === 'early') {
      call.confirmedTag = (m.phoneSent ? m.msg.fromTag : m.msg.toTag) ?? ''
      const lost: Array<Array<FarStream | null>> = []
      for (const [tag, streams] of call.farMedia) {
        if (tag !== call.confirmedTag && !m.phoneSent) { lost.push(streams); call.farMedia.delete(tag) }
      }
      if (lost.length > 0) this.dropLostForks(call, lost)
      call.state = 'confirmed'
      this.changed = true
      // Media usually starts at the answer: a latch opened by early SDP gets its full window from here.
      const until = this.now() + (this.policy.latchMs ?? 0)
      for (const s of call.streams.values()) if (s.latch !== undefined && s.latch.until < until) s.latch.until = until
    }
    call.deadline = this.now() + this.policy.callMs
  }

  end (call: Call, reason: string): void {
    if (call.state === 'ended') return
    call.state = 'ended'
    for (const s of [...call.streams.values()]) this.dropStream(call, s)
    for (const ip of call.farSignalling) {
      this.maps.release('peer_dnat', { ip, port: call.phonePublicPort }, call.key)
    }
    this.calls.delete(call.key)
    this.changed = true
    this.events.onEnd?.(call, reason)
  }

  /** Ends calls past their deadline and refreshes kernel timeouts of the live ones. */
  tick (): void {
    const now = this.now()
    for (const call of [...this.calls.values()]) {
      if (now >= call.deadline) {
        this.end(call, call.state === 'early' ? (call.cancelled ? 'cancel without 487' : 'no answer') : 'timeout')
      } else if (this.latchWindowPassed(call, now)) {
        this.install(call)
      } else if (now - call.refreshedAt >= this.policy.elementMs / 4) {
        // Kernel timeouts are renewed a few times per element lifetime, not on every tick.
        call.refreshedAt = now
        this.install(call)
        for (const ip of call.farSignalling) this.allowFarSignalling(call, ip)
      }
    }
  }

  /** The far end's media for one of the call's m= lines (the answering dialog's, once confirmed). */
  farStreams (call: Call, index: number): FarStream[] {
    const out: FarStream[] = []
    for (const [tag, streams] of call.farMedia) {
      if (call.confirmedTag !== null && tag !== call.confirmedTag && tag !== '') continue
      const f = streams[index]
      if (f !== null && f !== undefined) out.push(f)
    }
    return out
  }

  /**
   * The first packet of a new flow to one of the phone's media ports while it is open to anyone
   * (the kernel queues only those: src/netfilter/table.ts). With a latch open, an RTP-shaped packet
   * locks the port to its source and everything else is refused; without one the flow is admitted
   * and remembered, so the narrowing that follows can cut it. A port already narrowed (the kernel
   * has not caught up yet) admits only what its new elements allow.
   */
  firstPacket (to: Source, from: Source, payload: Uint8Array): FirstPacket {
    const hit = this.byPrivate.get(streamKey(to.ip, to.port))
    if (hit === undefined) return { outcome: 'unknown' }
    const { call, stream: s, port } = hit
    const publicPort = port === 'rtp' ? s.pub.rtpPort : (s.pub.rtcpPort ?? s.pub.rtpPort)
    const base = { call, stream: s, publicPort }
    if (s.latch !== undefined && admits(s.latch, port, this.now()).kind === 'any') {
      const pts = this.farStreams(call, s.index).flatMap(f => f.payloadTypes ?? [])
      const res = offer(s.latch, port, from, payload, pts.length > 0 ? pts : undefined, this.now())
      if (res !== 'latched') return { ...base, outcome: 'refused' }
      this.remember(s, from, publicPort)
      this.changed = true
      this.install(call)
      return { ...base, outcome: 'latched' }
    }
    if (!this.allows(s, publicPort, from)) return { ...base, outcome: 'narrowed' }
    this.remember(s, from, publicPort)
    return { ...base, outcome: 'admitted' }
  }

  /**
   * (Re)installs every stream's kernel elements; refreshes timeouts of unchanged ones. What the
   * phone advertises and every new path must be in the kernel before the message is released;
   * a pinhole narrowed from "anyone" to the far end may follow the verdict (the path was open).
   * Flows admitted earlier that the narrowed pinhole no longer allows are handed on to be cut.
   */
  private install (call: Call): void {
    const t = this.policy.elementMs
    for (const s of call.streams.values()) {
      const far = this.farAddresses(call, s.index)
      if (looksIpv6(s.priv.ip)) { this.install6(call, s, far); continue }
      this.updateLatch(call, s, far)
      const want = this.dnatWanted(s, far)
      const before = this.dnatInstalled(s)
      const wasOpenToAny = new Set(before.filter(e => e.map === 'any_dnat').map(e => e.key.port))
      const wanted = new Set(want.map(w => dnatId(w)))
      for (const e of before) if (!wanted.has(dnatId(e))) this.maps.release(e.map, e.key, call.key)
      if (before.map(dnatId).join() !== [...wanted].join() || far.join() !== s.allowedFarIps.join()) this.changed = true
      this.maps.set('src_nat', { ip: s.priv.ip, port: s.priv.rtpPort }, { port: s.pub.rtpPort }, t, call.key, true)
      if (s.priv.rtcpPort !== null && s.pub.rtcpPort !== null) {
        this.maps.set('src_nat', { ip: s.priv.ip, port: s.priv.rtcpPort }, { port: s.pub.rtcpPort }, t, call.key, true)
      }
      // A new path must be there before the verdict, unless the port was open to anyone (the path was open).
      for (const w of want) this.maps.set(w.map, w.key, w.data, t, call.key, w.map === 'any_dnat' || !wasOpenToAny.has(w.key.port))
      s.dnat = want.map(w => ({ map: w.map, key: w.key }))
      s.allowedFarIps = far
      this.cutNarrowed(call, s)
    }
  }

  /**
   * An IPv6 stream's firewall elements: its media ports accept flows only from the far end's SDP
   * addresses (pinhole6; none while those are unknown: IPv6 is never open to anyone), and the
   * phone's negotiated ports may send (media6). Every new pinhole precedes the verdict.
   */
  private install6 (call: Call, s: Stream, far: string[]): void {
    const t = this.policy.elementMs
    const want = far.flatMap(ip => this.portPairs(s).map(([, port]) => ({ map: 'pinhole6' as const, key: { ip, dst: s.priv.ip, port } })))
    const wanted = new Set(want.map(dnatId))
    const before = this.dnatInstalled(s)
    for (const e of before) if (!wanted.has(dnatId(e))) this.maps.release(e.map, e.key, call.key)
    if (before.map(dnatId).join() !== [...wanted].join()) this.changed = true
    for (const [, port] of this.portPairs(s)) this.maps.set('media6', { ip: s.priv.ip, port }, { port }, t, call.key, true)
    for (const w of want) this.maps.set(w.map, w.key, { ip: s.priv.ip, port: w.key.port }, t, call.key, true)
    s.dnat = want
    s.allowedFarIps = far
  }

  /** Opens the stream's latch when its far media is first known or moved (re-INVITE); media_latching: first only. */
  private updateLatch (call: Call, s: Stream, far: string[]): void {
    if (this.policy.latching !== 'first' || far.length === 0) { delete s.latch; return }
    const sdp = this.farStreams(call, s.index).map(f => `${f.ip}:${f.rtpPort}`).sort().join()
    if (s.latch?.sdp === sdp) return
    s.latch = openLatch(sdp, this.now() + (this.policy.latchMs ?? 0))
    this.changed = true
  }

  /** The DNAT elements a stream needs now: per public port, anyone / a latched source / the far addresses. */
  private dnatWanted (s: Stream, far: string[]): Array<{ map: MapName, key: ElemKey, data: ElemData }> {
    const out: Array<{ map: MapName, key: ElemKey, data: ElemData }> = []
    const now = this.now()
    this.portPairs(s).forEach(([pub, priv], i) => {
      const data = { ip: s.priv.ip, port: priv }
      const a = s.latch === undefined ? (far.length === 0 ? { kind: 'any' as const } : { kind: 'sdp' as const }) : admits(s.latch, i === 0 ? 'rtp' : 'rtcp', now)
      if (a.kind === 'any') {
        if (this.policy.farEndOnly !== true || s.latch !== undefined) out.push({ map: 'any_dnat', key: { port: pub }, data })
      } else if (a.kind === 'source') {
        out.push({ map: 'latch_dnat', key: { ip: a.source.ip, sport: a.source.port, port: pub }, data })
      } else {
        // RTCP that never latched while RTP did: the RTP source's address is the far end's too.
        const rtpSource = i === 1 && s.latch !== undefined ? s.latch.rtp.source : null
        const ips = rtpSource === null || far.includes(rtpSource.ip) ? far : [...far, rtpSource.ip].sort()
        for (const ip of ips) out.push({ map: 'peer_dnat', key: { ip, port: pub }, data })
      }
    })
    return out
  }

  /** What the stream has in the kernel (a stream of an older state file: derived from its far addresses). */
  private dnatInstalled (s: Stream): DnatElement[] {
    if (s.dnat !== undefined) return s.dnat
    return this.portPairs(s).flatMap(([pub]): DnatElement[] => s.allowedFarIps.length === 0
      ? [{ map: 'any_dnat', key: { port: pub } }]
      : s.allowedFarIps.map(ip => ({ map: 'peer_dnat' as const, key: { ip, port: pub } })))
  }

  /** Whether the stream's installed elements let a flow from `from` reach `publicPort`. */
  private allows (s: Stream, publicPort: number, from: Source): boolean {
    return this.dnatInstalled(s).some(e => e.key.port === publicPort && (e.map === 'any_dnat' ||
      (e.map === 'peer_dnat' && e.key.ip === from.ip) ||
      (e.map === 'latch_dnat' && e.key.ip === from.ip && e.key.sport === from.port)))
  }

  private remember (s: Stream, from: Source, publicPort: number): void {
    const seen = s.seen ?? (s.seen = [])
    if (seen.some(f => f.ip === from.ip && f.port === from.port && f.publicPort === publicPort)) return
    if (seen.length >= SEEN_FLOWS_MAX) seen.shift()
    seen.push({ ip: from.ip, port: from.port, publicPort })
  }

  /** Flows the stream admitted earlier that its elements no longer allow: handed on to be cut. */
  private cutNarrowed (call: Call, s: Stream): void {
    if (s.seen === undefined || s.seen.length === 0) return
    const gone = s.seen.filter(f => !this.allows(s, f.publicPort, f))
    if (gone.length === 0) return
    s.seen = s.seen.filter(f => this.allows(s, f.publicPort, f))
    this.events.onFlowsNarrowed?.(call, s, gone)
  }

  /** A latch window ended with a port still open to anyone: it narrows to the far end's SDP address now. */
  private latchWindowPassed (call: Call, now: number): boolean {
    for (const s of call.streams.values()) {
      if (s.latch !== undefined && now >= s.latch.until && this.dnatInstalled(s).some(e => e.map === 'any_dnat')) return true
    }
    return false
  }

  private allowFarSignalling (call: Call, ip: string): void {
    // IPv6 SIP reaches the phone by the operator's own rules (its SIP port): nothing to DNAT.
    if (looksIpv6(call.phone.ip)) return
    const openToAny = this.maps.get('any_dnat', { port: call.phonePublicPort }) !== undefined
    this.maps.set('peer_dnat', { ip, port: call.phonePublicPort }, call.phone, this.policy.elementMs, call.key, !openToAny)
  }

  /** The far addresses a stream admits: its SDP's; media_latching: signalling adds the call's signalling peers. */
  private farAddresses (call: Call, index: number): string[] {
    const sdp = this.farStreams(call, index).map(f => f.ip)
    if (sdp.length === 0 || this.policy.latching !== 'signalling') return [...new Set(sdp)].sort()
    const usable = this.policy.farAddressUsable ?? (() => true)
    return [...new Set([...sdp, ...[...call.farSignalling].filter(usable)])].sort()
  }

  private portPairs (s: Stream): Array<[number, number]> {
    const pairs: Array<[number, number]> = [[s.pub.rtpPort, s.priv.rtpPort]]
    if (s.pub.rtcpPort !== null && s.priv.rtcpPort !== null) pairs.push([s.pub.rtcpPort, s.priv.rtcpPort])
    return pairs
  }

  private index (call: Call, s: Stream): void {
    this.byPrivate.set(streamKey(s.priv.ip, s.priv.rtpPort), { call, stream: s, port: 'rtp' })
    if (s.priv.rtcpPort !== null) this.byPrivate.set(streamKey(s.priv.ip, s.priv.rtcpPort), { call, stream: s, port: 'rtcp' })
  }

  private unindex (s: Stream): void {
    for (const port of [s.priv.rtpPort, s.priv.rtcpPort]) {
      if (port === null) continue
      const k = streamKey(s.priv.ip, port)
      if (this.byPrivate.get(k)?.stream === s) this.byPrivate.delete(k)
    }
  }

  /** Media flows of forks that did not answer, unless the answering fork uses the same far endpoint. */
  private dropLostForks (call: Call, lost: Array<Array<FarStream | null>>): void {
    for (const s of call.streams.values()) {
      const kept = this.farStreams(call, s.index)
      const gone = lost.flatMap(streams => {
        const f = streams[s.index]
        return f === null || f === undefined || kept.some(k => k.ip === f.ip && k.rtpPort === f.rtpPort) ? [] : [f]
      })
      if (gone.length > 0) this.events.onForkDropped?.(call, s, gone)
    }
  }

  private dropStream (call: Call, s: Stream): void {
    for (const e of this.dnatInstalled(s)) this.maps.release(e.map, e.key, call.key)
    s.dnat = []
    s.allowedFarIps = []
    // A stream never installed has nothing else; one installed in firewall mode had no any_dnat.
    this.maps.release('any_dnat', { port: s.pub.rtpPort }, call.key)
    if (s.pub.rtcpPort !== null) this.maps.release('any_dnat', { port: s.pub.rtcpPort }, call.key)
    this.maps.release('src_nat', { ip: s.priv.ip, port: s.priv.rtpPort }, call.key)
    if (s.priv.rtcpPort !== null) this.maps.release('src_nat', { ip: s.priv.ip, port: s.priv.rtcpPort }, call.key)
    if (looksIpv6(s.priv.ip)) {
      for (const [, port] of this.portPairs(s)) this.maps.release('media6', { ip: s.priv.ip, port }, call.key)
    } else {
      this.ports.release(s.pub.rtpPort)
    }
    call.streams.delete(streamKey(s.priv.ip, s.priv.rtpPort))
    this.unindex(s)
    this.changed = true
    const far = this.farStreams(call, s.index)
    // Flows it admitted from elsewhere (a latched source, early media from anyone) go with it.
    const extra = (s.seen ?? []).filter(f => !far.some(x => x.ip === f.ip && (x.rtpPort === f.port || x.rtcpPort === f.port)))
    s.seen = []
    this.events.onStreamDropped?.(call, s, far)
    if (extra.length > 0) this.events.onFlowsNarrowed?.(call, s, extra)
  }
}

const dnatId = (e: DnatElement): string => `${e.map}|${e.key.ip ?? ''}|${e.key.dst ?? ''}|${e.key.sport ?? ''}|${e.key.port}`
