// Verdict latency per packet (µs), in log-spaced buckets: cheap to record on every batch.
// Measured from the queue wake-up to the verdicts' send (time spent queued in the kernel before
// the wake-up is not visible here; bench/ measures on the wire for that).

const BOUNDS = [1, 2, 5, 10, 20, 35, 50, 75, 100, 150, 200, 350, 500, 750, 1000, 2000, 5000, 10000, 20000, 50000, 100000, 1000000]

export class LatencyHistogram {
  readonly bounds = BOUNDS
  /** counts[i]: packets ≤ bounds[i]; the last slot counts everything above the last bound. */
  readonly counts = new Array<number>(BOUNDS.length + 1).fill(0)
  total = 0
  sumUs = 0
  maxUs = 0

  /** A batch of n packets took `us` from the wake-up to the verdicts' send. */
  record (us: number, n = 1): void {
    let i = 0
    while (i < BOUNDS.length && us > BOUNDS[i]) i++
    this.counts[i] += n
    this.total += n
    this.sumUs += us * n
    if (us > this.maxUs) this.maxUs = us
  }

  /** Upper bound of the bucket holding quantile q (the max seen, for the overflow bucket). */
  quantile (q: number): number {
    if (this.total === 0) return 0
    let seen = 0
    const want = q * this.total
    for (let i = 0; i < BOUNDS.length; i++) {
      seen += this.counts[i]
      if (seen >= want) return Math.min(BOUNDS[i], Math.ceil(this.maxUs))
    }
    return Math.ceil(this.maxUs)
  }

  summary (): { packets: number, p50: number, p99: number, p999: number, max: number, mean: number } {
    return {
      packets: this.total,
      p50: this.quantile(0.5),
      p99: this.quantile(0.99),
      p999: this.quantile(0.999),
      max: Math.ceil(this.maxUs),
      mean: this.total === 0 ? 0 : Math.round(this.sumUs / this.total)
    }
  }
}
