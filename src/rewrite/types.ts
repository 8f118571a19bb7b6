// The contract between the pure rewrite engine and the packet path that drives it.
// The engine decides *what* to rewrite; the caller owns every side effect (port choice,
// kernel mappings) through the callbacks below, so the engine stays pure and testable.
import type { SdpSummary } from '../sdp/types.js'

export type { SdpStream, SdpSummary } from '../sdp/types.js'

export interface Endpoint { ip: string, port: number }

export type Direction = 'outbound' | 'inbound'

/** A media stream of an inside phone that needs public ports. */
export interface MediaRequest {
  index: number            // m= line index in the SDP (0-based)
  media: string            // audio | video | application | ...
  ip: string               // private address the stream lives on (a c=0.0.0.0 hold: o= if inside, else the phone)
  rtpPort: number          // private RTP port from m=
  rtcpPort: number | null  // private RTCP port (a=rtcp or rtp+1); null when a=rtcp-mux
  rtcpIp: string           // address from a=rtcp ... IN IP4 addr, else ip
}

export interface MediaGrant { rtpPort: number, rtcpPort: number | null }

export interface RewriteContext {
  publicIp: string
  isInside: (ip: string) => boolean
  /** The inside phone: the packet's source outbound, its destination inbound. */
  phone: Endpoint
  /** The sender may name other inside hosts (an inside PBX/proxy): rewrite those too. */
  trustedProxy?: boolean
  /** Rewrite From/To URIs too (off by default: identity and digest auth depend on them). */
  rewriteFromTo?: boolean
  /** Rewrite SDP that carries ICE attributes (off by default: ICE solves NAT itself). */
  rewriteIce?: boolean
  /** Outbound: public port for a private signalling endpoint; null = refused (message left alone). */
  mapSignalling: (priv: Endpoint) => number | null
  /** Outbound: public ports for a media stream; null = refused (stream left alone). */
  mapMedia: (req: MediaRequest) => MediaGrant | null
  /** Inbound: the private endpoint behind a public signalling port, if sipalg made that mapping. */
  lookupSignalling: (publicPort: number) => Endpoint | null
}

export interface Change { field: string, before: string, after: string }

export interface MediaMapping {
  index: number
  media: string
  private: { ip: string, rtpPort: number, rtcpPort: number | null }
  public: { rtpPort: number, rtcpPort: number | null }
}

export type LeftAloneReason =
  | 'ice' | 'already-public' | 'no-private-address' | 'refused' | 'malformed'

export interface RewriteResult {
  /** The bytes to put on the wire: the input buffer itself when nothing changed. */
  bytes: Buffer
  changed: boolean
  /** Why the message (or its SDP) was left alone, when it was. */
  leftAlone?: LeftAloneReason
  detail?: string
  changes: Change[]
  /** Outbound: the signalling mapping the rewritten addresses rely on. */
  signalling?: { private: Endpoint, publicPort: number }
  /** Outbound: the media mappings written into the SDP. */
  media: MediaMapping[]
  /** The SDP as received (before rewrite), when the message had one. */
  sdp?: SdpSummary
}
