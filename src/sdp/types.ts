// What the rest of sipalg learns from an SDP body: one entry per m= line, as written.

/** One m= line as written in the SDP (before any rewrite). */
export interface SdpStream {
  index: number
  media: string
  ip: string | null        // effective connection address (media c= else session c=); IPv6 canonical, null if malformed
  port: number             // 0 = declined
  portCount: number
  proto: string
  /** RTP payload types the m= format list names (what an RTP packet of this stream may carry). */
  payloadTypes: number[]
  rtcpPort: number | null  // from a=rtcp, else port+1, null with rtcp-mux or port 0
  rtcpIp: string | null
  rtcpMux: boolean
  direction: 'sendrecv' | 'sendonly' | 'recvonly' | 'inactive'
  hold: boolean            // c=0.0.0.0, sendonly or inactive
}

export interface SdpSummary {
  sessionIp: string | null
  originIp: string | null
  ice: boolean
  streams: SdpStream[]
  /** Connection addresses that are no valid literal of their type (an IPv6 zone id, garbage): ignored, counted. */
  malformedAddresses?: string[]
}
