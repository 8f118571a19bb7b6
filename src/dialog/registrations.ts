// Registrations of inside phones with outside registrars. A granted registration keeps the
// phone's signalling mapping and a DNAT from the registrar alive for the granted expiry plus a
// grace period, so inbound calls reach the phone and refreshes never race the NAT's timeout.

import type { Endpoint } from '../rewrite/types.js'
import type { MappingTable } from '../media/mappings.js'

export interface Registration {
  key: string
  phone: Endpoint
  publicPort: number
  registrar: string
  aor: string
  expiresAt: number
  refreshedAt: number
}

export interface RegistrationPolicy {
  graceMs: number
  /** 'any': inbound SIP from any address reaches a registered phone, not only from its registrar. */
  inboundFromAny: boolean
}

interface Pending { phone: Endpoint, publicPort: number, registrar: string, aor: string, at: number }

const PENDING_TTL_MS = 64_000 // Timer F: a REGISTER transaction cannot outlive 64*T1.

export class RegistrationTable {
  private readonly regs = new Map<string, Registration>()
  private readonly pending = new Map<string, Pending>()

  constructor (
    private readonly maps: MappingTable,
    private readonly policy: RegistrationPolicy,
    private readonly now: () => number = Date.now
  ) {}

  get size (): number { return this.regs.size }
  values (): IterableIterator<Registration> { return this.regs.values() }

  /** An outbound REGISTER: remember who asked whom, to match the registrar's answer. */
  request (txKey: string, phone: Endpoint, publicPort: number, registrar: string, aor: string): void {
    this.pending.set(txKey, { phone, publicPort, registrar, aor, at: this.now() })
  }

  /** The registrar's final answer. Returns the registration now in force, if any. */
  answer (txKey: string, statusCode: number, grantedSeconds: number | null): Registration | undefined {
    const p = this.pending.get(txKey)
    if (p === undefined || statusCode < 200) return undefined
    this.pending.delete(txKey)
    if (statusCode >= 300) return undefined
    const key = `${p.phone.ip}:${p.phone.port}|${p.registrar}|${p.aor}`
    if (grantedSeconds === null || grantedSeconds <= 0) {
      this.remove(key)
      return undefined
    }
    const now = this.now()
    const reg: Registration = {
      key, phone: p.phone, publicPort: p.publicPort, registrar: p.registrar, aor: p.aor,
      expiresAt: now + grantedSeconds * 1000, refreshedAt: now
    }
    this.regs.set(key, reg)
    this.install(reg)
    return reg
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

  remove (key: string): void {
    const reg = this.regs.get(key)
    if (reg === undefined) return
    this.regs.delete(key)
    this.maps.release('peer_dnat', { ip: reg.registrar, port: reg.publicPort }, reg.key)
    if (this.policy.inboundFromAny) this.maps.release('any_dnat', { port: reg.publicPort }, reg.key)
  }

  /** Forgets registrations past expiry + grace and unanswered REGISTERs. */
  tick (): void {
    const now = this.now()
    for (const reg of [...this.regs.values()]) {
      if (now >= reg.expiresAt + this.policy.graceMs) this.remove(reg.key)
    }
    for (const [k, p] of this.pending) if (now - p.at > PENDING_TTL_MS) this.pending.delete(k)
  }

  private install (reg: Registration): void {
    const ttl = reg.expiresAt - this.now() + this.policy.graceMs
    this.maps.set('src_nat', reg.phone, { port: reg.publicPort }, ttl, reg.key)
    this.maps.set('peer_dnat', { ip: reg.registrar, port: reg.publicPort }, reg.phone, ttl, reg.key)
    if (this.policy.inboundFromAny) this.maps.set('any_dnat', { port: reg.publicPort }, reg.phone, ttl, reg.key)
  }
}
