// Call state: which media mappings each INVITE dialog of an inside phone needs, and when they go.
// Keyed by Call-ID + the inside phone's signalling endpoint (a hairpinned call has one Call-ID on
// two inside phones). Forked early dialogs (several far ends answering with their own SDP) share
// the phone's media ports; the far end that answers with a 2xx keeps the pinhole.

import type { Endpoint, MediaGrant, MediaMapping, MediaRequest, SdpSummary } from '../rewrite/types.js'
import type { MappingTable } from '../media/mappings.js'
import type { MediaPortPool } from '../media/ports.js'

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
  peerOnly?: boolean
}

export interface Stream {
  index: number
  media: string
  priv: { ip: string, rtpPort: number, rtcpPort: number | null }
  pub: { rtpPort: number, rtcpPort: number | null }
  /** Far-end media addresses allowed in, as last installed ('' = any: far SDP not known yet). */
  installedPeers: string[]
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
  /** Far signalling addresses allowed to send in-dialog requests to the phone. */
  signallingPeers: Set<string>
  /** The phone's streams in the last SDP it sent with any mapped stream (offer or answer). */
  phoneSdp: Set<string> | null
  endReason?: string
}

export interface FarStream { ip: string, rtpPort: number, rtcpPort: number | null }

export interface CallEvents {
  onStart?: (call: Call) => void
  onEnd?: (call: Call, reason: string) => void
  /** A stream's mappings are gone: flows the kernel still tracks for it should go too. */
  onStreamDropped?: (call: Call, stream: Stream, far: FarStream[]) => void
  /** Forks that did not answer lost their pinholes on this stream: their flows should go too. */
  onForkDropped?: (call: Call, stream: Stream, far: FarStream[]) => void
}

export interface SipFacts {
  isRequest: boolean
  method?: string
  statusCode?: number
  callId?: string
  fromTag?: string
  toTag?: string
  cseq?: { seq: number, method: string }
}

export const callKey = (callId: string, phone: Endpoint): string => `${callId}|${phone.ip}:${phone.port}`

const streamKey = (ip: string, port: number): string => `${ip}:${port}`

export class CallTable {
  private readonly calls = new Map<string, Call>()

  constructor (
    private readonly maps: MappingTable,
    private readonly ports: MediaPortPool,
    private readonly policy: CallPolicy,
    private readonly events: CallEvents = {},
    private readonly now: () => number = Date.now
  ) {}

  get size (): number { return this.calls.size }
  get (key: string): Call | undefined { return this.calls.get(key) }
  values (): IterableIterator<Call> { return this.calls.values() }

  /** The call a message belongs to; an initial INVITE creates it. */
  lookup (msg: SipFacts, phone: Endpoint, phonePublicPort: number, phoneSent: boolean): Call | undefined {
    if (msg.callId === undefined) return undefined
    const key = callKey(msg.callId, phone)
    let call = this.calls.get(key)
    if (call === undefined && msg.isRequest && msg.method === 'INVITE' && msg.toTag === undefined) {
      const now = this.now()
      call = {
        key,
        callId: msg.callId,
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
        signallingPeers: new Set(),
        phoneSdp: null
      }
      this.calls.set(key, call)
      this.events.onStart?.(call)
    }
    return call
  }

  /**
   * Takes over a call a previous sipalg left (restart): its ports are claimed and its kernel
   * elements, adopted from the table, become this call's again. False when the kernel no longer
   * has its media (the call died meanwhile): then it is forgotten.
   */
  restore (call: Call): boolean {
    const alive = call.streams.size > 0 &&
      [...call.streams.values()].every(s => this.maps.get('src_nat', { ip: s.priv.ip, port: s.priv.rtpPort })?.data.port === s.pub.rtpPort)
    if (!alive || this.calls.has(call.key) || this.now() >= call.deadline) return false
    for (const s of call.streams.values()) this.ports.claim(s.pub.rtpPort)
    this.calls.set(call.key, call)
    this.install(call)
    for (const ip of call.signallingPeers) this.allowSignallingPeer(call, ip)
    return true
  }

  /** Public ports for one of the phone's streams; the same private endpoint keeps its ports. */
  grantMedia (call: Call, req: MediaRequest): MediaGrant | null {
    const existing = call.streams.get(streamKey(req.ip, req.rtpPort))
    if (existing !== undefined) {
      if ((existing.priv.rtcpPort === null) === (req.rtcpPort === null)) {
        existing.index = req.index
        return { rtpPort: existing.pub.rtpPort, rtcpPort: existing.pub.rtcpPort }
      }
      this.dropStream(call, existing)
    }
    const rtp = this.ports.take()
    if (rtp === null) return null
    const stream: Stream = {
      index: req.index,
      media: req.media,
      priv: { ip: req.ip, rtpPort: req.rtpPort, rtcpPort: req.rtcpPort },
      pub: { rtpPort: rtp, rtcpPort: req.rtcpPort === null ? null : rtp + 1 },
      installedPeers: []
    }
    call.streams.set(streamKey(req.ip, req.rtpPort), stream)
    return { rtpPort: stream.pub.rtpPort, rtcpPort: stream.pub.rtcpPort }
  }

  /**
   * Updates the call from one message that went through the rewriter.
   * `phoneSdp`: the phone's media written into this message; `farSdp`: the far end's SDP.
   */
  update (call: Call, msg: SipFacts, phoneSent: boolean, remoteIp: string,
    phoneMedia: MediaMapping[], farSdp: SdpSummary | undefined): void {
    if (call.state === 'ended') return
    const now = this.now()
    if (!call.signallingPeers.has(remoteIp)) {
      call.signallingPeers.add(remoteIp)
      this.allowSignallingPeer(call, remoteIp)
    }
    // Kernel elements change only with new SDP or a new dialog state; tick() refreshes timeouts.
    let dirty = phoneMedia.length > 0

    if (farSdp !== undefined && !phoneSent) {
      const farTag = (msg.isRequest ? msg.fromTag : msg.toTag) ?? ''
      const far = farSdp.streams.map(s => (s.ip !== null && s.ip !== '0.0.0.0' && s.port > 0
        ? { ip: s.ip, rtpPort: s.port, rtcpPort: s.rtcpPort }
        : null))
      if (far.some(f => f !== null)) { call.farMedia.set(farTag, far); dirty = true }
    }

    if (msg.isRequest) {
      if (msg.method === 'BYE') return this.end(call, phoneSent ? 'bye from phone' : 'bye from far end')
      if (msg.method === 'CANCEL') call.cancelled = true
      if (call.state === 'confirmed') call.deadline = now + this.policy.callMs
    } else if (msg.cseq?.method === 'INVITE' && msg.statusCode !== undefined) {
      const code = msg.statusCode
      if (code >= 200 && code < 300) {
        if (call.state === 'early') {
          call.confirmedTag = (phoneSent ? msg.fromTag : msg.toTag) ?? ''
          // Forked early dialogs that did not answer lose their media pinholes, and the kernel
          // flows their early media already opened must go too (a flow outlives its pinhole).
          const lost: Array<FarStream | null>[] = []
          for (const [tag, streams] of call.farMedia) {
            if (tag !== call.confirmedTag && !phoneSent) { lost.push(streams); call.farMedia.delete(tag) }
          }
          if (lost.length > 0) this.dropLostForks(call, lost)
        }
        dirty ||= call.state === 'early'
        call.state = 'confirmed'
        call.deadline = now + this.policy.callMs
      } else if (code >= 300 && call.state === 'early') {
        return this.end(call, `final ${code}`)
      }
    }

    if (phoneSent && phoneMedia.length > 0) call.phoneSdp = new Set(phoneMedia.map(m => streamKey(m.private.ip, m.private.rtpPort)))
    // An offer/answer exchange completes with a 2xx to INVITE or UPDATE (either side answering) or
    // with the phone's answer in an ACK (late offer): the phone's last SDP is then its complete
    // media, and streams it no longer lists (a port it moved away from) are over.
    const completes = (msg.statusCode !== undefined && msg.statusCode >= 200 && msg.statusCode < 300 &&
      (msg.cseq?.method === 'INVITE' || msg.cseq?.method === 'UPDATE')) ||
      (phoneSent && msg.isRequest && msg.method === 'ACK' && phoneMedia.length > 0)
    if (completes && call.phoneSdp !== null) {
      const keep = call.phoneSdp
      for (const [k, s] of call.streams) if (!keep.has(k)) this.dropStream(call, s)
    }
    // The far end's answer declines a stream (m= port 0): nothing will flow on it.
    if (!phoneSent && farSdp !== undefined && (completes || (msg.isRequest && msg.method === 'ACK'))) {
      for (const s of [...call.streams.values()]) {
        if (farSdp.streams[s.index]?.port === 0) this.dropStream(call, s)
      }
    }
    if (dirty) this.install(call)
  }

  /** (Re)installs every stream's kernel elements; refreshes timeouts of unchanged ones. */
  install (call: Call): void {
    const t = this.policy.elementMs
    for (const s of call.streams.values()) {
      const far = this.farAddresses(call, s.index)
      if (far.join() !== s.installedPeers.join()) this.removeDnat(call, s, far)
      this.maps.set('src_nat', { ip: s.priv.ip, port: s.priv.rtpPort }, { port: s.pub.rtpPort }, t, call.key)
      if (s.priv.rtcpPort !== null && s.pub.rtcpPort !== null) {
        this.maps.set('src_nat', { ip: s.priv.ip, port: s.priv.rtcpPort }, { port: s.pub.rtcpPort }, t, call.key)
      }
      for (const [pub, priv] of this.portPairs(s)) {
        if (far.length === 0 && this.policy.peerOnly !== true) this.maps.set('any_dnat', { port: pub }, { ip: s.priv.ip, port: priv }, t, call.key)
        for (const ip of far) this.maps.set('peer_dnat', { ip, port: pub }, { ip: s.priv.ip, port: priv }, t, call.key)
      }
      s.installedPeers = far
    }
  }

  end (call: Call, reason: string): void {
    if (call.state === 'ended') return
    call.state = 'ended'
    call.endReason = reason
    for (const s of [...call.streams.values()]) this.dropStream(call, s)
    for (const ip of call.signallingPeers) {
      this.maps.release('peer_dnat', { ip, port: call.phonePublicPort }, call.key)
    }
    this.calls.delete(call.key)
    this.events.onEnd?.(call, reason)
  }

  /** Ends calls past their deadline and refreshes kernel timeouts of the live ones. */
  tick (): void {
    const now = this.now()
    for (const call of [...this.calls.values()]) {
      if (now >= call.deadline) {
        this.end(call, call.state === 'early' ? (call.cancelled ? 'cancel without 487' : 'no answer') : 'timeout')
      } else if (now - call.refreshedAt >= this.policy.elementMs / 4) {
        // Kernel timeouts are renewed a few times per element lifetime, not on every tick.
        call.refreshedAt = now
        this.install(call)
        for (const ip of call.signallingPeers) this.allowSignallingPeer(call, ip)
      }
    }
  }

  private allowSignallingPeer (call: Call, ip: string): void {
    this.maps.set('peer_dnat', { ip, port: call.phonePublicPort }, call.phone, this.policy.elementMs, call.key)
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

  private farAddresses (call: Call, index: number): string[] {
    return [...new Set(this.farStreams(call, index).map(f => f.ip))].sort()
  }

  private portPairs (s: Stream): Array<[number, number]> {
    const pairs: Array<[number, number]> = [[s.pub.rtpPort, s.priv.rtpPort]]
    if (s.pub.rtcpPort !== null && s.priv.rtcpPort !== null) pairs.push([s.pub.rtcpPort, s.priv.rtcpPort])
    return pairs
  }

  /** Removes the stream's DNAT elements, except peer elements for the addresses in `keep`. */
  private removeDnat (call: Call, s: Stream, keep: string[] = []): void {
    for (const [pub] of this.portPairs(s)) {
      if (s.installedPeers.length === 0) this.maps.release('any_dnat', { port: pub }, call.key)
      for (const ip of s.installedPeers) if (!keep.includes(ip)) this.maps.release('peer_dnat', { ip, port: pub }, call.key)
    }
    s.installedPeers = []
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
    this.removeDnat(call, s)
    // removeDnat only knows what was installed; a stream never installed has nothing else.
    this.maps.release('any_dnat', { port: s.pub.rtpPort }, call.key)
    if (s.pub.rtcpPort !== null) this.maps.release('any_dnat', { port: s.pub.rtcpPort }, call.key)
    this.maps.release('src_nat', { ip: s.priv.ip, port: s.priv.rtpPort }, call.key)
    if (s.priv.rtcpPort !== null) this.maps.release('src_nat', { ip: s.priv.ip, port: s.priv.rtcpPort }, call.key)
    this.ports.release(s.pub.rtpPort)
    call.streams.delete(streamKey(s.priv.ip, s.priv.rtpPort))
    this.events.onStreamDropped?.(call, s, this.farStreams(call, s.index))
  }
}
