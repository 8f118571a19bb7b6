// sipalg's own nftables table: the NAT maps (filled element by element over netlink while
// running) and the two NAT chains that consult them. Created with one `nft -f` transaction at
// start; an existing table keeps its map elements, so a restarted sipalg adopts live calls.

import { spawnSync } from 'node:child_process'
import { SipalgError } from '../errors.js'

export interface TableSpec {
  table: string
  publicIp: string
  outsideIf: string | null
  /** ct mark (value/mask) put on flows sipalg's maps translate; the FORWARD rules accept it. */
  mark: { value: number, mask: number }
  /**
   * The media port range: the first packet of a new flow to one of its ports while any_dnat opens
   * it to anyone gets the packet mark `firstPacketMark`, and sipalg-rules.sh queues marked new flows
   * to sipalg (media latching, and cutting flows a narrowed pinhole no longer allows: src/dialog/calls.ts).
   */
  mediaPorts?: { lo: number, hi: number }
  /** SIP over TCP: a registered phone's public SIP port DNATs TCP too (never in the media range). */
  tcp?: boolean
}

/** nft's name of an address family: `table ip` (IPv4, NAT maps) or `table ip6` (IPv6 firewall sets). */
export type Family = 'ip' | 'ip6'

export const DEFAULT_MARK = { value: 0x5a100000, mask: 0xffff0000 }
/** Packet mark (meta mark, value/mask) of a new media flow sipalg wants to see; sipalg-rules.sh --first-packet-mark. */
export const FIRST_PACKET_MARK = { value: 0x5a200000, mask: 0xffff0000 }

const hex = (n: number): string => '0x' + (n >>> 0).toString(16).padStart(8, '0')

export function tableScript (s: TableSpec): string {
  const t = `ip ${s.table}`
  const inIf = s.outsideIf === null ? '' : `iifname "${s.outsideIf}" `
  const outIf = s.outsideIf === null ? '' : `oifname "${s.outsideIf}" `
  const keep = hex(~s.mark.mask >>> 0)
  const mark = `ct mark set ct mark and ${keep} or ${hex(s.mark.value)}`
  const queueMark = `meta mark set meta mark and ${hex(~FIRST_PACKET_MARK.mask >>> 0)} or ${hex(FIRST_PACKET_MARK.value)}`
  return [
    `add table ${t}`,
    `add map ${t} any_dnat { type inet_service : ipv4_addr . inet_service; flags timeout; }`,
    `add map ${t} peer_dnat { type ipv4_addr . inet_service : ipv4_addr . inet_service; flags timeout; }`,
    `add map ${t} src_nat { type ipv4_addr . inet_service : inet_service; flags timeout; }`,
    `add map ${t} latch_dnat { type ipv4_addr . inet_service . inet_service : ipv4_addr . inet_service; flags timeout; }`,
    // One step ahead of iptables' NAT chains (dstnat/srcnat): a flow's NAT binding is made by the first
    // NAT chain that acts on it, so sipalg's chosen ports must bind before the gateway's MASQUERADE does
    // (two phones on 5060 get different public ports: test/e2e/calls.ts).
    `add chain ${t} pre { type nat hook prerouting priority dstnat - 1; policy accept; }`,
    `add chain ${t} post { type nat hook postrouting priority srcnat - 1; policy accept; }`,
    // Marks outbound flows from a negotiated phone ip:port, so a FORWARD policy DROP that only
    // lets established traffic and sipalg's mark through still passes the phone's media.
    `add chain ${t} media_mark { type filter hook forward priority filter - 1; policy accept; }`,
    `flush chain ${t} pre`,
    `flush chain ${t} post`,
    `flush chain ${t} media_mark`,
    `add rule ${t} media_mark ${outIf}ct state new meta l4proto udp ip saddr . udp sport @src_nat ${mark}`,
    `add rule ${t} pre ${inIf}ip daddr ${s.publicIp} meta l4proto udp ip saddr . udp sport . udp dport @latch_dnat ${mark} dnat ip to ip saddr . udp sport . udp dport map @latch_dnat`,
    `add rule ${t} pre ${inIf}ip daddr ${s.publicIp} meta l4proto udp ip saddr . udp dport @peer_dnat ${mark} dnat ip to ip saddr . udp dport map @peer_dnat`,
    // Only a flow's first packet traverses a NAT chain, so only that one is marked (and queued).
    ...(s.mediaPorts === undefined ? [] : [`add rule ${t} pre ${inIf}ip daddr ${s.publicIp} udp dport ${s.mediaPorts.lo}-${s.mediaPorts.hi} udp dport @any_dnat ${queueMark}`]),
    `add rule ${t} pre ${inIf}ip daddr ${s.publicIp} meta l4proto udp udp dport @any_dnat ${mark} dnat ip to udp dport map @any_dnat`,
    ...tcpDnat(s, t, inIf),
    // On a map miss the rule does not match and the gateway's own MASQUERADE does the rest.
    `add rule ${t} post ${outIf}meta l4proto udp snat ip to ${s.publicIp} : ip saddr . udp sport map @src_nat`,
    ''
  ].join('\n')
}

/**
 * SIP over TCP: a registered phone's public SIP port takes TCP connections too (never its media
 * ports, which stay UDP-only). A connection DNATed here is then diverted to the splice
 * (src/netfilter/tproxy.ts, after dstnat) with the phone as its destination. No ct mark: it is
 * delivered locally, never forwarded.
 */
function tcpDnat (s: TableSpec, t: string, inIf: string): string[] {
  if (s.tcp !== true || s.mediaPorts === undefined) return []
  const keep = `${inIf}ip daddr ${s.publicIp} tcp dport != ${s.mediaPorts.lo}-${s.mediaPorts.hi}`
  return [
    `add rule ${t} pre ${keep} ip saddr . tcp dport @peer_dnat dnat ip to ip saddr . tcp dport map @peer_dnat`,
    `add rule ${t} pre ${keep} tcp dport @any_dnat dnat ip to tcp dport map @any_dnat`
  ]
}

/**
 * sipalg's IPv6 table, `table ip6 <table>` (a table of its own, so the IPv4 table stays exactly as
 * it was): no NAT, only the firewall. pinhole6 holds far address . phone address . phone port of
 * each negotiated stream (only the far end's SDP address), media6 the phone's negotiated
 * address . port; the forward-hook chain puts sipalg's ct mark on the first packet of such a flow,
 * which the operator's FORWARD rules accept like IPv4's (iptables/sipalg-rules.sh, ip6tables).
 */
export function table6Script (s: TableSpec): string {
  const t = `ip6 ${s.table}`
  const inIf = s.outsideIf === null ? '' : `iifname "${s.outsideIf}" `
  const outIf = s.outsideIf === null ? '' : `oifname "${s.outsideIf}" `
  const mark = `ct mark set ct mark and ${hex(~s.mark.mask >>> 0)} or ${hex(s.mark.value)}`
  return [
    `add table ${t}`,
    `add set ${t} pinhole6 { type ipv6_addr . ipv6_addr . inet_service; flags timeout; }`,
    `add set ${t} media6 { type ipv6_addr . inet_service; flags timeout; }`,
    `add chain ${t} media_mark { type filter hook forward priority filter - 1; policy accept; }`,
    `flush chain ${t} media_mark`,
    `add rule ${t} media_mark ${inIf}ct state new meta l4proto udp ip6 saddr . ip6 daddr . udp dport @pinhole6 ${mark}`,
    `add rule ${t} media_mark ${outIf}ct state new meta l4proto udp ip6 saddr . udp sport @media6 ${mark}`,
    ''
  ].join('\n')
}

/** Creates (or keeps, with its elements) `table ip6 <table>`. */
export function createTable6 (s: TableSpec): void {
  const r = nft(['-f', '-'], table6Script(s))
  if (!r.ok) throw new SipalgError('E204_NFT', { what: `creating table ip6 ${s.table}`, why: r.out })
}

/** Runs `nft` with args (and a script on stdin); ok is false when it could not run or exited non-zero. */
export function nft (args: string[], input?: string): { ok: boolean, out: string } {
  const r = spawnSync('nft', args, { input, encoding: 'utf8' })
  if (r.error !== undefined) return { ok: false, out: r.error.message }
  return { ok: r.status === 0, out: `${r.stdout}${r.stderr}`.trim() }
}

export function createTable (s: TableSpec): void {
  const r = nft(['-f', '-'], tableScript(s))
  if (!r.ok) throw new SipalgError('E204_NFT', { what: `creating table ip ${s.table}`, why: r.out })
}
