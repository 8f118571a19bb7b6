// `sipalg status` for people: the tables a real document renders to, the workers section included.

import t from 'tap'
import { renderStatus } from '../../src/cli/status.js'
import type { StatusDoc } from '../../src/status.js'

const doc: StatusDoc = {
  uptimeSeconds: 42,
  publicIp: '203.0.113.1',
  calls: [{ callId: '1-7263@10.0.1.23', phone: '10.0.1.23:5060', direction: 'out', state: 'confirmed', ageSeconds: 3, media: ['10.0.1.23:16000 → 20000 ⇐ 203.0.113.9:6000'], flows: [{ media: 'audio', publicPort: 20000, far: { ip: '203.0.113.9', port: 6000 }, in: { packets: 150, bytes: 25800 }, out: { packets: 149, bytes: 25628 } }] }],
  registrations: [{ phone: '10.0.1.24:5060', publicPort: 5061, registrar: '203.0.113.9:5060', aor: 'sip:carol@example.net', expiresInSeconds: 290 }],
  mappings: { src_nat: 3, peer_dnat: 2 },
  counters: { queued: 12 },
  latencyUs: { packets: 12, p50: 35, p99: 350, mean: 60 }
}

t.test('calls, registrations, mappings, counters and latency', async t => {
  const text = renderStatus(doc)
  t.match(text, /^sipalg on 203\.0\.113\.1, up 42s\n/)
  t.match(text, /1-7263@10\.0\.1\.23\s+10\.0\.1\.23:5060\s+out\s+confirmed\s+3s\s+10\.0\.1\.23:16000 → 20000 ⇐ 203\.0\.113\.9:6000 {2}\[in 150 \/ out 149 pkts\]/)
  t.match(text, /10\.0\.1\.24:5060\s+5061\s+203\.0\.113\.9:5060\s+sip:carol@example\.net\s+290s/)
  t.match(text, /Verdict latency: p50 ≤ 35 µs, p99 ≤ 350 µs over 12 packets/)
  t.notMatch(text, /Workers/, 'one process: no workers section')
})

t.test('with workers: one line each, a restarting one and its last exit shown', async t => {
  const rtt = { packets: 40, p50: 60, p99: 410, p999: 900, max: 950, mean: 80 }
  const text = renderStatus({
    ...doc,
    workers: [
      { index: 0, queue: 0, pid: 4100, up: true, restarts: 0, calls: 1, registrations: 1, packets: 900, handoff: { sent: 40, failed: 1, served: 12, rttUs: rtt }, lastExit: null },
      { index: 1, queue: 1, pid: null, up: false, restarts: 2, calls: 0, registrations: 0, packets: 0, handoff: null, lastExit: { at: '2026-12-02T03:00:00.000Z', code: null, signal: 'SIGKILL' } }
    ]
  })
  t.match(text, /\nWorkers \(2\)\n\s+#\s+QUEUE\s+PID\s+STATE/)
  t.match(text, /\n {2}0\s+0\s+4100\s+up\s+1\s+1\s+900\s+0\s+40 sent \(1 passed unanswered\), 12 served, p99 410 µs\n/)
  t.match(text, /\n {2}1\s+1\s+–\s+restarting\s+0\s+0\s+0\s+2\s+SIGKILL at 2026-12-02T03:00:00\.000Z\n/)
})
