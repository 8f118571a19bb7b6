// Media latching (symmetric RTP): a stream whose far end sends from another address than its SDP
// names (a carrier's media server, an SBC cluster) is opened to any source on its public ports for
// a bounded window, and locked to the source of the first packet that looks like the stream's
// media. This file is the pure part: what counts as RTP/RTCP, and the per-port latch state.
// src/dialog/calls.ts turns the state into kernel elements; src/alg.ts feeds it the first packet of
// each flow, which the kernel queues while a media port is open to anyone (src/netfilter/table.ts
// marks it, iptables/sipalg-rules.sh queues marked new flows).

export type LatchMode = 'off' | 'first' | 'signalling'

export interface Source { ip: string, port: number }

/** One public port's latch (RTP or RTCP): open until `until`, or locked to a source. */
export interface PortLatch {
  /** The source the port is locked to; null while open (or when the window passed with nothing). */
  source: Source | null
}

export interface StreamLatch {
  /** The far SDP media (ip:port) the window was opened for: new far media re-opens the latch. */
  sdp: string
  /** The window ends (ms, the CallTable's clock): after it an unlatched port keeps the SDP address only. */
  until: number
  rtp: PortLatch
  rtcp: PortLatch
}

// RTCP packet types 200..206 (SR, RR, SDES, BYE, APP, RTPFB, PSFB); in the RTP header's 7-bit
// payload type field they read as 72..78, which RFC 5761 keeps out of RTP's dynamic range.
const RTCP_FIRST = 200
const RTCP_LAST = 206

/**
 * An RTP packet of a stream whose SDP lists `payloadTypes`: version 2, a full 12-byte header plus
 * its CSRCs, and a payload type the SDP named (undefined: a call saved before sipalg kept them —
 * any payload type outside the RTCP range).
 */
export function isRtp (b: Uint8Array, payloadTypes: readonly number[] | undefined): boolean {
  if (b.length < 12 || (b[0] >> 6) !== 2) return false
  const csrcs = b[0] & 0x0f
  if (b.length < 12 + 4 * csrcs) return false
  const pt = b[1] & 0x7f
  if (payloadTypes === undefined) return pt < RTCP_FIRST - 128 || pt > RTCP_LAST - 128
  return payloadTypes.includes(pt)
}

/** An RTCP compound packet's first header: version 2, an RTCP packet type, a length that fits. */
export function isRtcp (b: Uint8Array): boolean {
  if (b.length < 8 || (b[0] >> 6) !== 2) return false
  if (b[1] < RTCP_FIRST || b[1] > RTCP_LAST) return false
  const words = (b[2] << 8) | b[3]
  return (words + 1) * 4 <= b.length
}

export const openLatch = (sdp: string, until: number): StreamLatch =>
  ({ sdp, until, rtp: { source: null }, rtcp: { source: null } })

/** What a public port admits now: anyone (window open, nothing latched), one source, or the SDP address. */
export type PortAdmits = { kind: 'any' } | { kind: 'source', source: Source } | { kind: 'sdp' }

export function admits (latch: StreamLatch, port: 'rtp' | 'rtcp', now: number): PortAdmits {
  const src = latch[port].source
  if (src !== null) return { kind: 'source', source: src }
  return now < latch.until ? { kind: 'any' } : { kind: 'sdp' }
}

/** The first packet of a new flow on an open port: latch onto it, or refuse it (not the stream's media). */
export function offer (latch: StreamLatch, port: 'rtp' | 'rtcp', from: Source, payload: Uint8Array,
  payloadTypes: readonly number[] | undefined, now: number): 'latched' | 'refused' | 'closed' {
  if (admits(latch, port, now).kind !== 'any') return 'closed'
  const shaped = port === 'rtp' ? isRtp(payload, payloadTypes) : isRtcp(payload)
  if (!shaped) return 'refused'
  latch[port].source = { ip: from.ip, port: from.port }
  return 'latched'
}
