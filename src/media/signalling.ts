// Public signalling ports of inside phones: the first SIP packet from a phone's
// ip:port gets a public port — its own number when free — installed as SNAT before the verdict,
// so the address written into the message is the one the far end really sees.
//
// How long a mapping lives without traffic depends on what the private ip:port is used for. A
// port that registered, sent keepalives or out-of-dialog requests (OPTIONS, SUBSCRIBE...) is a
// phone's long-lived signalling port and keeps the configured idle timeout. A port that only ever
// carried calls (a trunk or PBX opening a new source port per call) needs its mapping only for
// those calls: once the last one ends, the mapping lives CALL_LINGER_MS more and goes, so a
// trunk's ports are freed at the rate it opens them instead of piling up for the idle timeout.

import type { Endpoint } from '../rewrite/types.js'
import type { MappingTable } from './mappings.js'
import { SignallingPortPool } from './ports.js'

const SIGNALLING_OWNER = 'signalling'

/**
 * How long a call-only port stays mapped after its last call ended: 64×T1 = 32 s (RFC 3261 Timer
 * F for the BYE's client transaction, Timer H/J for the ACK of an error final and the server's
 * absorption of retransmissions). Every retransmission of the call's last transaction still finds
 * the mapping; nothing of the call needs it after that.
 */
export const CALL_LINGER_MS = 32_000

/** What a SIP message does on its phone's port (src/alg.ts decides, by the message's method). */
export type SignallingUse = 'call' | 'call-start' | 'long-lived'

/** Far ends remembered per port for the conntrack clean-up at expiry (a trunk's port talks to one). */
const MAX_REMOTES = 4

interface PortUse { calls: number, longLived: boolean, remotes: Endpoint[] }

/** A public port given back: the kernel flows NATed through it, to forget before it serves another phone. */
export interface FreedPort { publicPort: number, remotes: Endpoint[] }

export class SignallingTable {
  private readonly byPrivate = new Map<string, number>()
  private readonly byPublic = new Map<number, Endpoint>()
  private readonly use = new Map<string, PortUse>()
  private readonly pool: SignallingPortPool

  constructor (private readonly maps: MappingTable, private readonly idleMs: number, avoid: (port: number) => boolean,
    private readonly now: () => number = Date.now) {
    this.pool = new SignallingPortPool(avoid)
  }

  /**
   * The phone's public port — taken from the pool the first time — with its SNAT element
   * installed or refreshed (before the verdict: the message advertises that port); null when no
   * port is free. `use` (default long-lived: keepalives, registrations, other endpoints a message
   * names) says what the port serves; a call-only port between calls keeps only its linger time.
   * `far`: where the phone sent this message (its flow, NATed to the public port, is forgotten
   * when the port is freed).
   */
  allocateAndInstall (phone: Endpoint, use: SignallingUse = 'long-lived', far?: Endpoint): number | null {
    const id = `${phone.ip}:${phone.port}`
    let pub = this.byPrivate.get(id)
    if (pub === undefined) {
      const taken = this.pool.take(phone.port)
      if (taken === null) return null
      pub = taken
      this.byPrivate.set(id, pub)
      this.byPublic.set(pub, phone)
    }
    let u = this.use.get(id)
    if (u === undefined) { u = { calls: 0, longLived: false, remotes: [] }; this.use.set(id, u) }
    if (use === 'long-lived') u.longLived = true
    if (far !== undefined && u.remotes.length < MAX_REMOTES && !u.remotes.some(r => r.ip === far.ip && r.port === far.port)) u.remotes.push(far)
    const ttl = u.longLived || u.calls > 0 || use === 'call-start' ? this.idleMs : CALL_LINGER_MS
    this.maps.set('src_nat', phone, { port: pub }, ttl, SIGNALLING_OWNER, true)
    return pub
  }

  lookupPublic (port: number): Endpoint | null { return this.byPublic.get(port) ?? null }
  lookupPrivate (phone: Endpoint): number | null { return this.byPrivate.get(`${phone.ip}:${phone.port}`) ?? null }

  /** A call began on this port (it keeps its mapping while any call lives). */
  callStarted (phone: Endpoint): void {
    const u = this.use.get(`${phone.ip}:${phone.port}`)
    if (u !== undefined) u.calls++
  }

  /**
   * A call on this port ended. The last call of a call-only port leaves its mapping CALL_LINGER_MS
   * (replaced in the kernel with that timeout, after the verdicts: the element is there now).
   */
  callEnded (phone: Endpoint): void {
    const id = `${phone.ip}:${phone.port}`
    const u = this.use.get(id)
    const pub = this.byPrivate.get(id)
    if (u === undefined || pub === undefined || u.calls === 0) return
    u.calls--
    if (u.calls > 0 || u.longLived) return
    const e = this.maps.get('src_nat', phone)
    if (e === undefined || e.expiresAt - this.now() <= CALL_LINGER_MS || e.owners.size > 1) return
    this.maps.release('src_nat', phone, SIGNALLING_OWNER)
    this.maps.set('src_nat', phone, { port: pub }, CALL_LINGER_MS, SIGNALLING_OWNER)
  }

  /** Restart adoption: a mapping found in the kernel (its use unknown: it keeps the idle timeout). */
  adopt (phone: Endpoint, publicPort: number): void {
    if (!this.pool.claim(publicPort)) return
    this.byPrivate.set(`${phone.ip}:${phone.port}`, publicPort)
    this.byPublic.set(publicPort, phone)
  }

  /**
   * Frees a port whose SNAT element has expired (called with the mirror's sweep). Its flows outlive
   * it in conntrack (120 s for a UDP flow seen both ways, against CALL_LINGER_MS): the caller
   * forgets them, or the next phone given this public port would have its packets dropped as a
   * clash with the old flow's reply tuple until that expired (a trunk's calls failing).
   */
  expired (phone: Endpoint): FreedPort | null {
    const id = `${phone.ip}:${phone.port}`
    const pub = this.byPrivate.get(id)
    if (pub === undefined || this.maps.get('src_nat', phone) !== undefined) return null
    const remotes = this.use.get(id)?.remotes ?? []
    this.byPrivate.delete(id)
    this.byPublic.delete(pub)
    this.use.delete(id)
    this.pool.release(pub)
    return { publicPort: pub, remotes }
  }

  /** Private ports mapped now (status, bench: the trunk's port use). */
  get size (): number { return this.byPrivate.size }
}
