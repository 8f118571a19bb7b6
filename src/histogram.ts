// Verdict latency per packet (µs), in log-spaced buckets: cheap to record on every batch.

const BOUNDS = [5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 50000, Infinity]

export class LatencyHistogram {
  readonly bounds = BOUNDS
  readonly counts = new Array<number>(BOUNDS.length).fill(0)
  total = 0
  sumUs = 0

  /** A batch of n packets took `us` from the wake-up to the verdicts' send. */
  record (us: number, n = 1): void {
    let i = 0
    while (us > BOUNDS[i]) i++
    this.counts[i] += n
    this.total += n
    this.sumUs += us * n
  }

  quantile (q: number): number {
    if (this.total === 0) return 0
    let seen = 0
    const want = q * this.total
    for (let i = 0; i < BOUNDS.length; i++) {
      seen += this.counts[i]
      if (seen >= want) return BOUNDS[i]
    }
    return Infinity
  }

  summary (): { packets: number, p50: number, p99: number, mean: number } {
    return { packets: this.total, p50: this.quantile(0.5), p99: this.quantile(0.99), mean: this.total === 0 ? 0 : Math.round(this.sumUs / this.total) }
  }
}
