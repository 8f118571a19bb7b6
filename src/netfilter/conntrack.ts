// Conntrack entries by exact UDP tuple (native/ct.c over ctnetlink): delete the stale ones that would
// keep a media flow on an old NAT binding, and read the counters `sipalg status` shows per RTP stream.
import { loadNative, toSipalgError } from './native.js'
import { addrKey, checkPort } from './nftmaps.js'
import { ipv6Bytes } from '../ip6.js'

export interface ConntrackTuple {
  proto: 'udp'
  src: string
  dst: string
  sport: number
  dport: number
  /** which direction the tuple describes (default 'original') */
  direction?: 'original' | 'reply'
}

/** An address as the words of a packed tuple: one for IPv4, four for IPv6 (native/ct.c). */
function addressWords (ip: string, family: 4 | 6): number[] {
  if (family === 4) return [addrKey(ip).readUInt32BE(0)]
  const b = ipv6Bytes(ip)
  if (b === null) throw new TypeError(`not an IPv6 address: ${ip}`)
  return [0, 4, 8, 12].map(o => b.readUInt32BE(o))
}

/** [reply, src, dst, sport, dport] per tuple, addresses as addressWords. */
function packTuples (tuples: ConntrackTuple[], family: 4 | 6 = 4): Uint32Array {
  const stride = family === 6 ? 11 : 5
  const packed = new Uint32Array(tuples.length * stride)
  tuples.forEach((t, i) => {
    if (t.proto !== 'udp') throw new TypeError('only udp is supported')
    checkPort(t.sport)
    checkPort(t.dport)
    packed.set([t.direction === 'reply' ? 1 : 0, ...addressWords(t.src, family), ...addressWords(t.dst, family), t.sport, t.dport], i * stride)
  })
  return packed
}

/** deleteConntrack for IPv6 tuples (addresses in any IPv6 text form). */
export function deleteConntrack6 (tuples: ConntrackTuple[]): number {
  if (tuples.length === 0) return 0
  try {
    return loadNative().ctDeleteMany6(packTuples(tuples, 6))
  } catch (err) {
    throw toSipalgError(err, { what: 'deleting IPv6 conntrack entries' })
  }
}

/**
 * Deletes UDP conntrack entries by their exact tuples (ctnetlink IPCTNL_MSG_CT_DELETE), all in one
 * send() on a persistent socket. Returns how many existed; missing ones are not errors.
 * Partial filters (wildcards) are not supported.
 */
export function deleteConntrack (tuples: ConntrackTuple[]): number {
  if (tuples.length === 0) return 0
  try {
    return loadNative().ctDeleteMany(packTuples(tuples))
  } catch (err) {
    throw toSipalgError(err, { what: 'deleting conntrack entries' })
  }
}

export interface FlowCounters { packets: number, bytes: number }

/**
 * Packets and bytes of the conntrack entries with these exact tuples (one netlink send): null for a
 * tuple with no entry; a direction's counters are null when the kernel does not count
 * (net.netfilter.nf_conntrack_acct = 0). At most 128 tuples per call, all of one family.
 */
export function conntrackCounters (tuples: ConntrackTuple[], family: 4 | 6 = 4): Array<{ orig: FlowCounters | null, reply: FlowCounters | null } | null> {
  if (tuples.length === 0) return []
  let v: Float64Array
  try {
    v = family === 6 ? loadNative().ctCounters6(packTuples(tuples, 6)) : loadNative().ctCounters(packTuples(tuples))
  } catch (err) {
    throw toSipalgError(err, { what: 'reading conntrack counters' })
  }
  const dir = (i: number): FlowCounters | null => (v[i] < 0 ? null : { packets: v[i], bytes: v[i + 1] })
  return tuples.map((_, i) => (v[i * 4] === -2 ? null : { orig: dir(i * 4), reply: dir(i * 4 + 2) }))
}
