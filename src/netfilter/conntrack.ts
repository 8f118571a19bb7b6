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

function ipToU32 (ip: string): number {
  return addrKey(ip).readUInt32BE(0)
}

function packTuples (tuples: ConntrackTuple[]): Uint32Array {
  const packed = new Uint32Array(tuples.length * 5)
  tuples.forEach((t, i) => {
    if (t.proto !== 'udp') throw new TypeError('only udp is supported')
    checkPort(t.sport)
    checkPort(t.dport)
    packed.set([t.direction === 'reply' ? 1 : 0, ipToU32(t.src), ipToU32(t.dst), t.sport, t.dport], i * 5)
  })
  return packed
}

/** IPv6 tuples: [reply, src as 4 words, dst as 4 words, sport, dport] (native/ct.c). */
function packTuples6 (tuples: ConntrackTuple[]): Uint32Array {
  const packed = new Uint32Array(tuples.length * 11)
  tuples.forEach((t, i) => {
    if (t.proto !== 'udp') throw new TypeError('only udp is supported')
    checkPort(t.sport)
    checkPort(t.dport)
    const src = ipv6Bytes(t.src)
    const dst = ipv6Bytes(t.dst)
    if (src === null || dst === null) throw new TypeError(`not an IPv6 tuple: ${t.src} -> ${t.dst}`)
    const words = [t.direction === 'reply' ? 1 : 0]
    for (const a of [src, dst]) for (let w = 0; w < 4; w++) words.push(a.readUInt32BE(w * 4))
    words.push(t.sport, t.dport)
    packed.set(words, i * 11)
  })
  return packed
}

/** deleteConntrack for IPv6 tuples (addresses in any IPv6 text form). */
export function deleteConntrack6 (tuples: ConntrackTuple[]): number {
  if (tuples.length === 0) return 0
  try {
    return loadNative().ctDeleteMany6(packTuples6(tuples))
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
    v = family === 6 ? loadNative().ctCounters6(packTuples6(tuples)) : loadNative().ctCounters(packTuples(tuples))
  } catch (err) {
    throw toSipalgError(err, { what: 'reading conntrack counters' })
  }
  const dir = (i: number): FlowCounters | null => (v[i] < 0 ? null : { packets: v[i], bytes: v[i + 1] })
  return tuples.map((_, i) => (v[i * 4] === -2 ? null : { orig: dir(i * 4), reply: dir(i * 4 + 2) }))
}
