// The two legs of one SIP message through the gateway, as a capture on each side would show them.
// sipalg sees the message in FORWARD (src/cli/rules.ts), between the kernel's DNAT and SNAT, so it
// knows the phone's private address and, from its signalling mapping, the public one:
//
//   outbound  arrived  phone (private) → far end       left  public ip:port → far end  (rewritten)
//   inbound   arrived  far end → public ip:port        left  far end → phone (private) (rewritten)
//   IPv6      one message, phone ⇄ far end as written (nothing is translated)
//
// Pure: a hop in, two HEP messages out.

import type { HepEndpoint, HepMessage } from './encode.js'

/** One SIP message sipalg handled (what Alg.onSip reports). */
export interface SipHop {
  direction: 'outbound' | 'inbound'
  callId?: string
  /** The inside phone's own address. */
  phone: HepEndpoint
  /** The gateway's public address and the public port of the phone's signalling. */
  public: HepEndpoint
  far: HepEndpoint
  /** The datagram's payload as it arrived, and as sipalg let it go (the same bytes when unchanged). */
  arrived: Buffer
  left: Buffer
}

export interface HepIdentity { captureId: number, authKey?: string }

/**
 * Arrived, then left: the left leg a microsecond later, so collectors keep the order. A hop nothing
 * translated (IPv6: no NAT, the message passes as written) is one message: a second, identical one
 * would show in Homer as a retransmission.
 */
export function hopLegs (hop: SipHop, timeUs: number, id: HepIdentity): HepMessage[] {
  const common = { captureId: id.captureId, authKey: id.authKey, correlationId: hop.callId }
  if (hop.public.ip === hop.phone.ip && hop.public.port === hop.phone.port && hop.left === hop.arrived) {
    return [hop.direction === 'outbound'
      ? { ...common, src: hop.phone, dst: hop.far, timeUs, payload: hop.arrived }
      : { ...common, src: hop.far, dst: hop.phone, timeUs, payload: hop.arrived }]
  }
  if (hop.direction === 'outbound') {
    return [
      { ...common, src: hop.phone, dst: hop.far, timeUs, payload: hop.arrived },
      { ...common, src: hop.public, dst: hop.far, timeUs: timeUs + 1, payload: hop.left }
    ]
  }
  return [
    { ...common, src: hop.far, dst: hop.public, timeUs, payload: hop.arrived },
    { ...common, src: hop.far, dst: hop.phone, timeUs: timeUs + 1, payload: hop.left }
  ]
}
