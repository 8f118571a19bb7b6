// Public signalling ports of inside phones: the first SIP packet from a phone's
// ip:port gets a public port — its own number when free — installed as SNAT before the verdict,
// so the address written into the message is the one the far end really sees.

import type { Endpoint } from '../rewrite/types.js'
import type { MappingTable } from './mappings.js'
import { SignallingPortPool } from './ports.js'

const SIGNALLING_OWNER = 'signalling'

export class SignallingTable {
  private readonly byPrivate = new Map<string, number>()
  private readonly byPublic = new Map<number, Endpoint>()
  private readonly pool: SignallingPortPool

  constructor (private readonly maps: MappingTable, private readonly idleMs: number, avoid: (port: number) => boolean) {
    this.pool = new SignallingPortPool(avoid)
  }

  /**
   * The phone's public port — taken from the pool the first time — with its SNAT element
   * installed or refreshed (before the verdict: the message advertises that port); null when no
   * port is free.
   */
  allocateAndInstall (phone: Endpoint): number | null {
    const id = `${phone.ip}:${phone.port}`
    let pub = this.byPrivate.get(id)
    if (pub === undefined) {
      const taken = this.pool.take(phone.port)
      if (taken === null) return null
      pub = taken
      this.byPrivate.set(id, pub)
      this.byPublic.set(pub, phone)
    }
    this.maps.set('src_nat', phone, { port: pub }, this.idleMs, SIGNALLING_OWNER, true)
    return pub
  }

  lookupPublic (port: number): Endpoint | null { return this.byPublic.get(port) ?? null }
  lookupPrivate (phone: Endpoint): number | null { return this.byPrivate.get(`${phone.ip}:${phone.port}`) ?? null }

  /** Restart adoption: a mapping found in the kernel. */
  adopt (phone: Endpoint, publicPort: number): void {
    if (!this.pool.claim(publicPort)) return
    this.byPrivate.set(`${phone.ip}:${phone.port}`, publicPort)
    this.byPublic.set(publicPort, phone)
  }

  /** Frees ports whose SNAT element has expired (called with the mirror's sweep). */
  expired (phone: Endpoint): void {
    const id = `${phone.ip}:${phone.port}`
    const pub = this.byPrivate.get(id)
    if (pub === undefined || this.maps.get('src_nat', phone) !== undefined) return
    this.byPrivate.delete(id)
    this.byPublic.delete(pub)
    this.pool.release(pub)
  }
}
