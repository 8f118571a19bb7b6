// What a host in a SIP header names: an IPv4 address or a name (left to the rest of sipalg as
// written), an IPv6 literal (RFC 3261 25.1: "[" IPv6address "]" in a host, bare in received=),
// or something malformed: a bracketed literal that is no IPv6 address, one with a zone id
// ("[fe80::1%eth0]", RFC 6874 applies to URIs of browsers, not to SIP), a bare colon-holding host.
import { canonicalIpv6 } from '../ip6.js'
import type { SipMessage } from './message.js'
import { locateUriHost } from './uri.js'

export type SipHost =
  | { kind: 'ipv4-or-name' }
  | { kind: 'ipv6', ip: string }
  | { kind: 'malformed' }

/** A host as written in a Via sent-by or a URI; an IPv6 literal comes out canonical. */
export function sipHost (host: string): SipHost {
  if (host.startsWith('[')) {
    const ip = host.endsWith(']') ? canonicalIpv6(host.slice(1, -1)) : null
    return ip === null ? { kind: 'malformed' } : { kind: 'ipv6', ip }
  }
  return host.includes(':') || host.includes(']') ? { kind: 'malformed' } : { kind: 'ipv4-or-name' }
}

/** A Via received= value: bare IPv6 (RFC 3261's grammar), bracketed (what many UAs write), or IPv4. */
export function receivedHost (value: string): SipHost {
  if (value.startsWith('[')) return sipHost(value)
  if (!value.includes(':')) return { kind: 'ipv4-or-name' }
  const ip = canonicalIpv6(value)
  return ip === null ? { kind: 'malformed' } : { kind: 'ipv6', ip }
}

/**
 * How many hosts of the message are malformed (Request-URI, top Via sent-by and received=,
 * Contact, From, To): counted by the packet path, which passes the message as it came.
 */
export function malformedHosts (msg: SipMessage): number {
  const hosts: SipHost[] = []
  if (msg.isRequest) {
    const r = locateUriHost(msg.text, msg.requestUriStart, msg.requestUriEnd)
    if (r !== undefined) hosts.push(sipHost(r.host))
  }
  const via = msg.topVia
  if (via !== undefined) {
    hosts.push(sipHost(via.host))
    const received = via.params.find(p => p.name.toLowerCase() === 'received')
    if (received !== undefined && typeof received.value === 'string') hosts.push(receivedHost(received.value))
  }
  for (const c of msg.contacts) if (c.address?.target !== undefined) hosts.push(sipHost(c.address.target.host))
  for (const a of [msg.from, msg.to]) if (a?.target !== undefined) hosts.push(sipHost(a.target.host))
  return hosts.filter(h => h.kind === 'malformed').length
}
