// Public port choice. Media ports come in (even RTP, RTP+1 RTCP) pairs from a configured range
// and are reused least-recently-freed first, so a port that just carried a call is not handed
// straight to the next one (its conntrack entries may still be alive in the kernel).

export class MediaPortPool {
  private readonly free: number[] = []
  private head = 0
  private readonly used = new Set<number>()

  constructor (readonly lo: number, readonly hi: number) {
    const first = lo % 2 === 0 ? lo : lo + 1
    for (let p = first; p + 1 <= hi; p += 2) this.free.push(p)
  }

  get inUse (): number { return this.used.size }

  /** An even RTP port whose +1 is free too, or null when the range is exhausted. */
  take (): number | null {
    if (this.head >= this.free.length) return null
    const p = this.free[this.head++]
    if (this.head > 4096 && this.head * 2 > this.free.length) { this.free.splice(0, this.head); this.head = 0 }
    this.used.add(p)
    return p
  }

  /** Claims a specific pair (adopting mappings found in the kernel after a restart). */
  claim (port: number): boolean {
    const even = port - (port % 2)
    if (this.used.has(even) || even < this.lo || even + 1 > this.hi) return false
    const i = this.free.indexOf(even, this.head)
    if (i < 0) return false
    this.free.splice(i, 1)
    this.used.add(even)
    return true
  }

  release (port: number): void {
    const even = port - (port % 2)
    if (this.used.delete(even)) this.free.push(even)
  }

  contains (port: number): boolean { return port >= this.lo && port <= this.hi }
}

/**
 * Public signalling ports: the phone's own port when free (so a single phone keeps 5060),
 * otherwise the next free one above it, never inside the media range.
 */
export class SignallingPortPool {
  private readonly used = new Set<number>()
  constructor (private readonly avoid: (port: number) => boolean) {}

  take (preferred: number): number | null {
    for (let i = 0; i < 65536 - 1024; i++) {
      const p = ((preferred - 1024 + i) % (65536 - 1024)) + 1024
      if (!this.used.has(p) && !this.avoid(p)) { this.used.add(p); return p }
    }
    return null
  }

  claim (port: number): boolean {
    if (this.used.has(port)) return false
    this.used.add(port)
    return true
  }

  release (port: number): void { this.used.delete(port) }
}
