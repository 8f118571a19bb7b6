// Operations against a daemon running in the lab during a real call (issue 7, items 2, 3 and 6):
// `sipalg status` (JSON and table), Prometheus metrics, and a `sipalg trace` client that watches
// the call go by; and `sipalg status` with no daemon at all.

import t from 'tap'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Lab } from '../lab/lab.js'
import { runCall } from '../lab/sip.js'
import { CLI, startSipalg, type StatusJson } from '../lab/sipalg.js'
import { catalogue } from '../../src/errors.js'
import type { TraceEvent } from '../../src/trace/ladder.js'

const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }

/** One sample of a Prometheus text exposition (first line that names it exactly). */
function sample (text: string, name: string): number | undefined {
  const esc = name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
  const m = new RegExp(`^${esc} (\\S+)$`, 'm').exec(text)
  return m === null ? undefined : Number(m[1])
}

t.test('status, metrics and trace while a call is up', async t => {
  const lab = await Lab.up({ forwardPolicy: 'drop' })
  t.teardown(async () => { await lab.down() })
  const alg = await startSipalg(lab, { args: ['--metrics-port', '9260'] })
  t.teardown(async () => { await alg.stop() })
  const metrics = async (): Promise<string> =>
    await lab.sh('gw', 'curl', ['-sS', '--max-time', '3', 'http://127.0.0.1:9260/metrics'])

  // A trace client, connected before the call.
  const tracer = lab.spawn('gw', 'node', [CLI, 'trace', '--json', '--socket', alg.socket])
  let traceOut = ''
  tracer.stdout?.setEncoding('utf8').on('data', (d: string) => { traceOut += d })
  let traceErr = ''
  tracer.stderr?.setEncoding('utf8').on('data', (d: string) => { traceErr += d })
  for (let i = 0; i < 100 && !traceOut.includes('"trace":"started"'); i++) await sleep(50)
  t.match(traceOut, /"trace":"started","publicIp":"203\.0\.113\.1"/, `trace client connected ${traceErr}`)

  const before = await metrics()
  t.equal(sample(before, 'sipalg_active_calls'), 0, 'no call before')

  const call = runCall(lab, { byeFrom: 'b', durationMs: 6000 })
  let mid: StatusJson | undefined
  for (let i = 0; i < 60; i++) {
    const st = await alg.status()
    if (st.calls.length === 1 && st.calls[0].state === 'confirmed') { mid = st; break }
    await sleep(100)
  }

  await t.test('during the call: status shows it with its media mapping', async t => {
    if (mid === undefined) { t.fail(`the call never showed as confirmed in sipalg status:\n${alg.log().slice(-2000)}`); return }
    t.equal(mid.calls.length, 1, 'one call')
    const c = mid.calls[0]
    t.match(c.callId, /@10\.0\.1\.23$/, 'sipp\'s Call-ID')
    t.equal(c.phone, '10.0.1.23:5060')
    t.equal(c.media.length, 1, 'one media stream')
    t.match(c.media[0], /^audio 10\.0\.1\.23:16\d{3} → \d+ ⇐ 203\.0\.113\.9$/, 'private RTP → public port, only from B once answered')
    t.ok(mid.mappings.peer_dnat > 0, `peer_dnat elements (${JSON.stringify(mid.mappings)})`)
    const table = await lab.sh('gw', 'node', [CLI, 'status', '--socket', alg.socket])
    t.match(table, /^Calls \(1\)$/m)
    t.ok(table.includes(c.callId.slice(0, 32)), 'the table names the Call-ID')
    t.match(table, /audio 10\.0\.1\.23:16\d{3} → \d+/)
  })

  await t.test('during the call: status shows the RTP each way from conntrack', async t => {
    await sleep(800)
    const st = await alg.status()
    const f = st.calls[0]?.flows[0]
    t.same(f?.far?.ip, '203.0.113.9', 'the far end of the flow')
    t.ok((f?.in?.packets ?? 0) > 10, `packets in from B (${JSON.stringify(f?.in)})`)
    t.ok((f?.out?.packets ?? 0) > 10, `packets out to B (${JSON.stringify(f?.out)})`)
    const table = await lab.sh('gw', 'node', [CLI, 'status', '--socket', alg.socket])
    t.match(table, /\[in \d+ \/ out \d+ pkts\]/, 'the table shows them')
  })

  await t.test('during the call: metrics', async t => {
    const m = await metrics()
    t.equal(sample(m, 'sipalg_active_calls'), 1, 'sipalg_active_calls 1')
    t.ok((sample(m, 'sipalg_queued_total') ?? 0) > 0, 'sipalg_queued_total > 0')
    t.ok((sample(m, 'sipalg_rewritten_total') ?? 0) > 0, 'sipalg_rewritten_total > 0')
    t.ok((sample(m, 'sipalg_mappings_peer_dnat') ?? 0) > 0, 'mappings gauge')
    t.match(m, /^# TYPE sipalg_verdict_latency_microseconds histogram$/m)
    const count = sample(m, 'sipalg_verdict_latency_microseconds_count') ?? 0
    t.ok(count > 0, `latency histogram counted ${count} packets`)
    t.equal(sample(m, 'sipalg_verdict_latency_microseconds_bucket{le="+Inf"}'), count, '+Inf bucket = count')
  })

  const r = await call
  t.ok(r.ok, `call completed: exit A=${String(r.exitA)} B=${String(r.exitB)}\n${r.logA.slice(-1000)}\n${r.logB.slice(-1000)}`)

  await t.test('after the call: no call, gauge back to 0', async t => {
    let st = await alg.status()
    for (let i = 0; i < 20 && st.calls.length > 0; i++) { await sleep(100); st = await alg.status() }
    t.equal(st.calls.length, 0, '0 calls')
    t.equal(sample(await metrics(), 'sipalg_active_calls'), 0)
    t.match(await lab.sh('gw', 'node', [CLI, 'status', '--socket', alg.socket]), /^Calls \(0\)\n {2}\(none\)$/m)
  })

  await t.test('the trace client saw INVITE, 200, ACK, BYE with what sipalg changed', async t => {
    await sleep(200)
    await lab.stop(tracer, 'SIGINT')
    t.equal(tracer.exitCode, 0, `trace exits 0 on Ctrl-C ${traceErr}`)
    const events = traceOut.trim().split('\n').map(l => JSON.parse(l) as TraceEvent & { trace?: string }).filter(e => e.trace === undefined)
    const label = (e: TraceEvent): string => e.method ?? `${e.status ?? '?'} ${e.cseqMethod ?? '?'}`
    const seq = events.map(label)
    for (const want of ['INVITE', '200 INVITE', 'ACK', 'BYE', '200 BYE']) t.ok(seq.includes(want), `${want} in ${seq.join(', ')}`)
    t.ok(seq.indexOf('INVITE') < seq.indexOf('200 INVITE') && seq.indexOf('200 INVITE') < seq.indexOf('ACK') && seq.indexOf('ACK') < seq.indexOf('BYE'), 'in order')
    t.ok(events.every(e => e.phone === '10.0.1.23:5060' && e.far === '203.0.113.9:5060'), 'phone and far end')
    const invite = events.find(e => e.method === 'INVITE') as TraceEvent
    t.equal(invite.direction, 'outbound')
    t.same(invite.changes.find(c => c.field === 'Via'), { field: 'Via', before: '10.0.1.23:5060', after: '203.0.113.1:5060' })
    t.match(invite.changes.find(c => c.field === 'c=') ?? {}, { before: '10.0.1.23', after: '203.0.113.1' })
    t.ok(invite.added.some(m => m.map === 'any_dnat' && m.data?.ip === '10.0.1.23'), 'INVITE opened the media port')
    const ok = events.find(e => e.status === 200 && e.cseqMethod === 'INVITE') as TraceEvent
    t.equal(ok.direction, 'inbound')
    t.ok(ok.added.some(m => m.map === 'peer_dnat' && m.key.ip === '203.0.113.9'), 'the answer narrowed it to B')
    const bye = events.find(e => e.method === 'BYE') as TraceEvent
    t.equal(bye.direction, 'inbound', 'B hung up')
    t.ok(bye.removed.some(m => m.map === 'peer_dnat'), 'BYE removed the media mappings')
  })

  const st = await alg.status()
  t.equal(st.counters.internal_errors ?? 0, 0, 'no internal errors')
})

t.test('sipalg status with no daemon: E300 from the catalogue', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'sipalg-nodaemon-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  const socket = join(dir, 'nobody.sock')
  const r = spawnSync(process.execPath, [CLI, 'status', '--socket', socket], { encoding: 'utf8', timeout: 10_000 })
  t.equal(r.status, catalogue.E300_DAEMON_DOWN.exitCode, 'exit code 69')
  t.equal(r.stderr, `sipalg: E300: ${catalogue.E300_DAEMON_DOWN.message({ path: socket })}\n`)
  t.equal(r.stdout, '')
  const tr = spawnSync(process.execPath, [CLI, 'trace', '--socket', socket], { encoding: 'utf8', timeout: 10_000 })
  t.equal(tr.status, 69, 'sipalg trace too')
  t.match(tr.stderr, /^sipalg: E300: sipalg is not running/)
})
