// Abuse limits on new calls (`limits:` in the config): concurrent calls in total and per inside
// host, and new calls per second in total and per host. A refused call still passes; it just
// gets no mapping (Alg.callFor counts and logs the refusal).

export interface Limits { maxCalls: number, callsPerHost: number, callsPerSecond: number, callsPerSecondPerHost: number }

export type Refusal = 'max_calls' | 'calls_per_host' | 'calls_per_second' | 'calls_per_second_per_host'

export class RateLimiter {
  private readonly active = new Map<string, number>()
  private second = -1
  private startedThisSecond = 0
  private readonly perHostThisSecond = new Map<string, number>()

  constructor (private readonly limits: Limits, private readonly now: () => number = Date.now) {}

  admit (host: string, activeCalls: number): Refusal | null {
    this.roll()
    if (activeCalls >= this.limits.maxCalls) return 'max_calls'
    if ((this.active.get(host) ?? 0) >= this.limits.callsPerHost) return 'calls_per_host'
    if (this.startedThisSecond >= this.limits.callsPerSecond) return 'calls_per_second'
    if ((this.perHostThisSecond.get(host) ?? 0) >= this.limits.callsPerSecondPerHost) return 'calls_per_second_per_host'
    return null
  }

  started (host: string): void {
    this.roll()
    this.active.set(host, (this.active.get(host) ?? 0) + 1)
    this.startedThisSecond++
    this.perHostThisSecond.set(host, (this.perHostThisSecond.get(host) ?? 0) + 1)
  }

  ended (host: string): void {
    const n = (this.active.get(host) ?? 0) - 1
    if (n > 0) this.active.set(host, n); else this.active.delete(host)
  }

  private roll (): void {
    const s = Math.floor(this.now() / 1000)
    if (s !== this.second) { this.second = s; this.startedThisSecond = 0; this.perHostThisSecond.clear() }
  }
}
