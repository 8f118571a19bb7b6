// Counters, the verdict latency histogram and their Prometheus text (src/counters.ts,
// src/histogram.ts, src/metrics.ts).
import t from 'tap'
import { Counters } from '../src/counters.js'
import { LatencyHistogram } from '../src/histogram.js'
import { renderMetrics } from '../src/metrics.js'

t.test('counters: named, sorted in the snapshot', async t => {
  const c = new Counters()
  c.inc('queued'); c.inc('queued'); c.inc('calls_started', 3)
  t.same(Object.entries(c.snapshot()), [['calls_started', 3], ['queued', 2]])
})

t.test('histogram: buckets, quantiles, summary', async t => {
  const h = new LatencyHistogram()
  t.same(h.summary(), { packets: 0, p50: 0, p99: 0, p999: 0, max: 0, mean: 0 })
  h.record(3, 98)
  h.record(40, 1)
  h.record(2_000_000, 1)
  t.equal(h.total, 100)
  t.equal(h.quantile(0.5), 5, 'upper bound of the bucket holding the median')
  t.equal(h.quantile(0.99), 50)
  t.equal(h.quantile(1), 2_000_000, 'the overflow bucket reports the max seen')
  t.same(h.summary(), { packets: 100, p50: 5, p99: 50, p999: 2_000_000, max: 2_000_000, mean: Math.round((3 * 98 + 40 + 2_000_000) / 100) })
  const small = new LatencyHistogram()
  small.record(0.4)
  t.equal(small.quantile(0.5), 1, 'never above the max seen, rounded up')
})

t.test('renderMetrics: counters as _total, gauges, a cumulative histogram', async t => {
  const latency = new LatencyHistogram()
  latency.record(3, 2)
  latency.record(150)
  const text = renderMetrics({ counters: () => ({ queued: 7 }), gauges: () => ({ active_calls: 2 }), latency })
  t.match(text, '# TYPE sipalg_queued_total counter\nsipalg_queued_total 7\n')
  t.match(text, '# TYPE sipalg_active_calls gauge\nsipalg_active_calls 2\n')
  t.match(text, 'sipalg_verdict_latency_microseconds_bucket{le="2"} 0\n')
  t.match(text, 'sipalg_verdict_latency_microseconds_bucket{le="5"} 2\n')
  t.match(text, 'sipalg_verdict_latency_microseconds_bucket{le="150"} 3\n')
  t.match(text, 'sipalg_verdict_latency_microseconds_bucket{le="+Inf"} 3\n')
  t.match(text, 'sipalg_verdict_latency_microseconds_sum 156\nsipalg_verdict_latency_microseconds_count 3\n')
  t.ok(text.endsWith('\n'))
})
