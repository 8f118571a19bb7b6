// Prometheus text exposition on 127.0.0.1 (off unless metrics_port is set).

import { createServer, type Server } from 'node:http'
import { LatencyHistogram } from './histogram.js'

export interface MetricsSource {
  counters: () => Record<string, number>
  gauges: () => Record<string, number>
  latency: LatencyHistogram
}

export function renderMetrics (src: MetricsSource): string {
  const lines: string[] = []
  for (const [name, v] of Object.entries(src.counters())) {
    lines.push(`# TYPE sipalg_${name}_total counter`, `sipalg_${name}_total ${v}`)
  }
  for (const [name, v] of Object.entries(src.gauges())) {
    lines.push(`# TYPE sipalg_${name} gauge`, `sipalg_${name} ${v}`)
  }
  const h = src.latency
  lines.push('# HELP sipalg_verdict_latency_microseconds Time from a queue wake-up to its verdicts, per packet.')
  lines.push('# TYPE sipalg_verdict_latency_microseconds histogram')
  let cum = 0
  h.bounds.forEach((b, i) => {
    cum += h.counts[i]
    lines.push(`sipalg_verdict_latency_microseconds_bucket{le="${b}"} ${cum}`)
  })
  lines.push(`sipalg_verdict_latency_microseconds_bucket{le="+Inf"} ${h.total}`)
  lines.push(`sipalg_verdict_latency_microseconds_sum ${h.sumUs}`, `sipalg_verdict_latency_microseconds_count ${h.total}`)
  return lines.join('\n') + '\n'
}

/** One process's metrics as plain JSON (a worker's answer to the supervisor's `metrics` request). */
export interface MetricsSnapshot {
  counters: Record<string, number>
  gauges: Record<string, number>
  latency: { counts: number[], total: number, sumUs: number, maxUs: number }
}

export function metricsSnapshot (src: MetricsSource): MetricsSnapshot {
  const h = src.latency
  return { counters: src.counters(), gauges: src.gauges(), latency: { counts: [...h.counts], total: h.total, sumUs: h.sumUs, maxUs: h.maxUs } }
}

const addInto = (into: Record<string, number>, from: Record<string, number>): void => {
  for (const [k, v] of Object.entries(from)) into[k] = (into[k] ?? 0) + v
}

/**
 * The whole gateway's metrics from its workers' (src/workers/supervisor.ts): counters, gauges and
 * histogram buckets summed (every gauge sipalg has is a count of something), plus the supervisor's own.
 */
export function sumMetrics (snaps: MetricsSnapshot[], own: { counters: Record<string, number>, gauges: Record<string, number> }): MetricsSource {
  const counters: Record<string, number> = {}
  const gauges: Record<string, number> = {}
  const latency = new LatencyHistogram()
  for (const s of snaps) {
    addInto(counters, s.counters)
    addInto(gauges, s.gauges)
    s.latency.counts.forEach((c, i) => { if (i < latency.counts.length) latency.counts[i] += c })
    latency.total += s.latency.total
    latency.sumUs += s.latency.sumUs
    latency.maxUs = Math.max(latency.maxUs, s.latency.maxUs)
  }
  addInto(counters, own.counters)
  addInto(gauges, own.gauges)
  return { counters: () => counters, gauges: () => gauges, latency }
}

export function serveMetrics (port: number, src: MetricsSource): Server {
  return serveMetricsText(port, () => renderMetrics(src))
}

/** /metrics answered with whatever `text` gives (the supervisor's asks its workers first). */
export function serveMetricsText (port: number, text: () => string | Promise<string>): Server {
  const server = createServer((req, res) => {
    if (req.url !== '/metrics') { res.writeHead(404).end('try /metrics\n'); return }
    void Promise.resolve(text()).then(body => { res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(body) },
      () => { res.writeHead(503).end('metrics unavailable\n') })
  })
  server.listen(port, '127.0.0.1')
  server.unref()
  return server
}
