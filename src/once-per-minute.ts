// Log floods stay bounded: a warning about the same source is written at most once a minute.

export class OncePerMinute {
  private readonly quietUntil = new Map<string, number>()

  constructor (private readonly now: () => number) {}

  /** Whether this is the first time this minute something is logged under `key`. */
  first (key: string): boolean {
    const now = this.now()
    if ((this.quietUntil.get(key) ?? 0) > now) return false
    if (this.quietUntil.size > 10_000) this.quietUntil.clear()
    this.quietUntil.set(key, now + 60_000)
    return true
  }
}
