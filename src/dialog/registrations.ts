// Registrations of inside phones with outside registrars. A granted registration keeps the
// phone's signalling mapping and a DNAT from the registrar alive for the granted expiry plus a
// grace period, so inbound calls reach the phone and refreshes never race the NAT's timeout.
// The REGISTER handlers of the method table (./methods.ts) call requested() and answered().

import type { Endpoint } from '../rewrite/types.js'
import type { MappingTable } from '../media/mappings.js'
import { locateUriHost } from '../sip/uri.js'
import type { SipFacts, Tracked } from './calls.js'

export interface Registration {
  key: string
  phone: Endpoint
  publicPort: number
  registrar: string
  aor: string
  expiresAt: number
}

export interface RegistrationPolicy {
  graceMs: number
  /** 'any': inbound SIP from any address reaches a registered phone, not only from its registrar. */
  inboundFromAny: boolean
}

export interface RegistrationEvents {
  onRegistered?: (reg: Registration) => void
  /** A 2xx that granted our contact nothing (an unregister, or the registrar dropped it). */
  onUnregistered?: (phone: Endpoint, registrar: string) => void
}

interface Pending { phone: Endpoint, publicPort: number, registrar: string, aor: string, at: number }

const PENDING_TTL_MS = 64_000 // Timer F: a REGISTER transaction cannot outlive 64*T1.

/** The expiry the registrar granted to our (rewritten) Contact, in seconds; null when none. */
export function grantedExpiry (msg: SipFacts, publicIp: string, publicPort: number): number | null {
  for (const c of msg.contacts ?? []) {
    const hp = locateUriHost(c.uri, 0, c.uri.length)
    if (hp?.host === publicIp && (hp.port ?? 5060) === publicPort) return c.expires ?? msg.expires ?? 3600
  }
  // Our binding is not listed: the registrar no longer has it (an unregister's answer).
  return null
}

/**
 * A phone registering over TCP sends from an ephemeral port but names its listening port in the
 * Contact (`;transport=tcp`): that is where a registrar opening a new connection must reach it, so
 * the registration (and its DNAT) is for the Contact, whose public port the rewrite has just mapped.
 * Null when the Contact is the sending port itself, or not the phone's.
 */
function tcpListeningContact (m: Tracked): Endpoint | null {
  for (const c of m.msg.contacts ?? []) {
    if (!/;transport=tcp\b/i.test(c.uri)) continue
    const hp = locateUriHost(c.uri, 0, c.uri.length)
    const port = hp?.port ?? 5060
    if (hp?.host === m.phone.ip && port !== m.phone.port) return { ip: hp.host, port }
  }
  return null
}

const transaction = (msg: SipFacts): string | undefined =>
  msg.callId === undefined || msg.cseq === undefined ? undefined : `${msg.callId}|${msg.cseq.seq}`

export class RegistrationTable {
  private readonly regs = new Map<string, Registration>()
  private readonly pending = new Map<string, Pending>()
  private changed = false

  constructor (
    private readonly maps: MappingTable,
    private readonly policy: RegistrationPolicy,
    private readonly publicIp: string,
    private readonly events: RegistrationEvents = {},
    private readonly now: () => number = Date.now
  ) {}

  values (): IterableIterator<Registration> { return this.regs.values() }

  /** Whether a registration came, went or was refreshed since the last call (state saving). */
  takeChanged (): boolean {
    const c = this.changed
    this.changed = false
    return c
  }

  /** An outbound REGISTER: remember who asked whom, to match the registrar's answer. */
  requested (m: Tracked): void {
    const tx = transaction(m.msg)
    if (tx === undefined) return
    const listening = tcpListeningContact(m)
    const mapped = listening === null ? undefined : this.maps.get('src_nat', listening)?.data.port
    const [phone, publicPort] = listening !== null && mapped !== undefined ? [listening, mapped] : [m.phone, m.phonePublicPort]
    this.pending.set(tx, { phone, publicPort, registrar: m.farIp, aor: m.msg.to?.uri ?? '', at: this.now() })
  }

  /** The registrar's answer: a final one puts the registration it grants in force, or ends it. */
  answered (m: Tracked): void {
    const tx = transaction(m.msg)
    const p = tx === undefined ? undefined : this.pending.get(tx)
    const code = m.msg.statusCode ?? 0
    if (tx === undefined || p === undefined || code < 200) return
    this.pending.delete(tx)
    if (code >= 300) return
    const key = `${p.phone.ip}:${p.phone.port}|${p.registrar}|${p.aor}`
    const granted = grantedExpiry(m.msg, this.publicIp, p.publicPort)
    if (granted === null || granted <= 0) {
      this.remove(key)
      this.events.onUnregistered?.(p.phone, p.registrar)
      return
    }
    const now = this.now()
    const reg: Registration = {
      key, phone: p.phone, publicPort: p.publicPort, registrar: p.registrar, aor: p.aor,
      expiresAt: now + granted * 1000
    }
    this.regs.set(key, reg)
    this.changed = true
    this.install(reg)
    this.events.onRegistered?.(reg)
  }

  /** Takes over a registration a previous sipalg saved, if it has not expired meanwhile. */
  restore (reg: Registration): boolean {
    if (this.now() >= reg.expiresAt + this.policy.graceMs || this.regs.has(reg.key)) return false
    // Only what the kernel still holds: a state file from another network namespace or a
    // rebooted gateway names registrations nobody maps any more.
    const dnat = this.maps.get('peer_dnat', { ip: reg.registrar, port: reg.publicPort })
    if (dnat?.data.ip !== reg.phone.ip || dnat.data.port !== reg.phone.port) return false
    this.regs.set(reg.key, reg)
    this.install(reg)
    return true
  }

  /** Forgets registrations past expiry + grace and unanswered REGISTERs. */
  tick (): void {
    const now = this.now()
    for (const reg of [...this.regs.values()]) {
      if (now >= reg.expiresAt + this.policy.graceMs) this.remove(reg.key)
    }
    for (const [k, p] of this.pending) if (now - p.at > PENDING_TTL_MS) this.pending.delete(k)
  }

  private remove (key: string): void {
    const reg = this.regs.get(key)
    if (reg === undefined) return
    this.regs.delete(key)
    this.changed = true
    this.maps.release('peer_dnat', { ip: reg.registrar, port: reg.publicPort }, reg.key)
    if (this.policy.inboundFromAny) this.maps.release('any_dnat', { port: reg.publicPort }, reg.key)
  }

  /** The registrar's path to the phone is new: in the kernel before the 200 reaches the phone. */
  private install (reg: Registration): void {
    const ttl = reg.expiresAt - this.now() + this.policy.graceMs
    this.maps.set('src_nat', reg.phone, { port: reg.publicPort }, ttl, reg.key, true)
    this.maps.set('peer_dnat', { ip: reg.registrar, port: reg.publicPort }, reg.phone, ttl, reg.key, true)
    if (this.policy.inboundFromAny) this.maps.set('any_dnat', { port: reg.publicPort }, reg.phone, ttl, reg.key, true)
  }
}
