// Prometheus text exposition on 127.0.0.1 (off unless metrics_port is set).

import { createServer, type Server } from 'node:http'
import type { LatencyHistogram } from './histogram.js'

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

export function serveMetrics (port: number, src: MetricsSource): Server {
  const server = createServer((req, res) => {
    if (req.url !== '/metrics') { res.writeHead(404).end('try /metrics\n'); return }
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(renderMetrics(src))
  })
  server.listen(port, '127.0.0.1')
  server.unref()
  return server
}
