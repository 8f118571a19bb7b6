// Soak (issue 5 item 5): many short calls from the inside phones (A, A2) to the outside phones (B, C)
// with random outcomes — answered (with a short RTP stream or without) and hung up, cancelled while
// ringing (487), rejected with a 4xx/5xx/6xx final, and abandoned (answered, then nobody sends BYE) — at a
// bounded rate. Afterwards every call is accounted for, the abandoned ones end by sipalg's call timeout,
// every mapping goes (media at once, signalling after its idle timeout), and sipalg's memory is back near
// its start.
//
// How outcomes are produced: a seeded PRNG (mulberry32, SOAK_SEED) draws every call's outcome, final code,
// early-media flag, RTP flag, caller (A or A2) and callee (B or C). The plan goes to each caller's sipp
// as an -inf CSV read SEQUENTIALly (test/lab/sipp/soak-uac.xml); the caller branches on it, sends the
// INVITE to the chosen callee (setdest) and writes the outcome into the Request-URI user part, which the
// callee's sipp (test/lab/sipp/soak-uas.xml) matches to answer, ring, reject or stop. Same seed, same
// calls; the plan is printed.
//
//   bash test/run.sh test/e2e/soak.test.ts                               CI size: 200 calls at 20/s, ~35 s
//   SOAK_CALLS=1000 bash test/run.sh --timeout=900 test/e2e/soak.test.ts full run (test/e2e/soak-run.sh)
//   env: SOAK_CALLS (200), SOAK_RATE total calls/s (20, at most 50), SOAK_SEED (0x50a4),
//        SOAK_KEEP=1 keeps the sipp work directory (CSV plans, stats, error logs).

import t from 'tap'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { ChildProcess } from 'node:child_process'
import { ADDR, Lab, type Role } from '../lab/lab.js'
import { captureUdp, MEDIA_BASE, PCAP, SIPP_DIR, sippResult, tcpdump, waitUdpListening, type Capture } from '../lab/sip.js'
import { startSipalg, type Sipalg, type StatusJson } from '../lab/sipalg.js'
import { mulberry32 } from '../fixtures/mutate.js'

const CALLS = Math.max(8, Math.min(5000, Math.floor(Number(process.env.SOAK_CALLS ?? 200))))
const RATE = Math.max(2, Math.min(50, Number(process.env.SOAK_RATE ?? 20)))
const SEED = Number(process.env.SOAK_SEED ?? 0x50a4) >>> 0
const KEEP = process.env.SOAK_KEEP === '1'

// sipalg timeouts for the run (seconds): short, so the tail of the soak is quick.
// signalling outlives call, so once the abandoned calls are gone the phones' signalling entries are all
// that is left, and they go later; and the calls last longer than signalling (200 calls at 20/s ≈ 10 s),
// so the phones' signalling entries must be refreshed while they talk, not just installed once.
const TIMEOUTS = { ring: 3, call: 3, signalling: 8, element: 5 }
const RSS_SLACK_KB = 40 * 1024
const RTP_PACKETS = 25 // soak-rtp.pcap: the first 25 packets (750 ms) of g711a.pcap

type Outcome = 'answered' | 'answered_rtp' | 'cancelled' | 'rejected' | 'abandoned' | 'abandoned_rtp'
type Caller = 'a' | 'a2'
type Callee = 'b' | 'c'
interface PlannedCall { n: number, outcome: Outcome, code: number, early: boolean, from: Caller, to: Callee, user: string }

const CODES = [404, 480, 486, 500, 503, 600, 603]
const KIND: Record<Outcome, number> = { answered: 1, answered_rtp: 1, cancelled: 2, rejected: 3, abandoned: 4, abandoned_rtp: 4 }
const OUTCOMES: Outcome[] = ['answered', 'answered_rtp', 'cancelled', 'rejected', 'abandoned', 'abandoned_rtp']

/** The seeded plan: ~20 % answered, ~20 % answered with RTP, 20 % cancelled, 25 % rejected, 15 % abandoned (a third with RTP). */
function plan (calls: number, seed: number): PlannedCall[] {
  const rnd = mulberry32(seed)
  const out: PlannedCall[] = []
  for (let n = 0; n < calls; n++) {
    const r = rnd()
    const outcome: Outcome = r < 0.2 ? 'answered' : r < 0.4 ? 'answered_rtp' : r < 0.6 ? 'cancelled' : r < 0.85 ? 'rejected' : r < 0.95 ? 'abandoned' : 'abandoned_rtp'
    const code = CODES[Math.floor(rnd() * CODES.length)] ?? 486
    const early = rnd() < 0.5
    const from: Caller = rnd() < 0.5 ? 'a' : 'a2'
    const to: Callee = rnd() < 0.5 ? 'b' : 'c'
    const rtp = outcome.endsWith('_rtp')
    const user = outcome === 'cancelled'
      ? `cancel-${early ? 'early-' : ''}${n}`
      : outcome === 'rejected'
        ? `reject-${early ? 'early-' : ''}${code}-${n}`
        : `${outcome.startsWith('answered') ? 'answer' : 'abandon'}-${rtp ? 'rtp-' : ''}${n}`
    out.push({ n, outcome, code: outcome === 'rejected' ? code : 0, early, from, to, user })
  }
  return out
}

/** The first `packets` records of a classic pcap file. */
function truncatePcap (pcap: Buffer, packets: number): Buffer {
  let off = 24
  for (let i = 0; i < packets && off + 16 <= pcap.length; i++) off += 16 + pcap.readUInt32LE(off + 8)
  return pcap.subarray(0, Math.min(off, pcap.length))
}

const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }

const rssKb = (pid: number): number => {
  try { return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) } catch { return 0 }
}

/** Times (ms since the epoch) of the SIP datagrams a phone sends from its port 5060 (tcpdump -tt, outbound). */
function sipSendTimes (lab: Lab, role: Caller): { ready: Promise<void>, stop: () => Promise<number[]> } {
  const dump = tcpdump(lab, role, 'udp and src port 5060', { direction: 'out', extraArgs: ['-tt'] })
  return {
    ready: dump.ready,
    stop: async () => (await dump.stop()).flatMap(l => { const m = /^(\d+\.\d+) IP /.exec(l); return m === null ? [] : [Math.round(Number(m[1]) * 1000)] })
  }
}

/** Last row of a sipp -trace_stat file as name → value. */
async function sippStats (file: string): Promise<Record<string, string>> {
  let text = ''
  try { text = await readFile(file, 'utf8') } catch { return {} }
  const rows = text.split('\n').filter(l => l.includes(';'))
  if (rows.length < 2) return {}
  const head = (rows[0] ?? '').split(';')
  const last = (rows[rows.length - 1] ?? '').split(';')
  return Object.fromEntries(head.map((h, i) => [h, last[i] ?? '']))
}

const num = (s: Record<string, string>, k: string): number => Number(s[k] ?? NaN)

/** Sum of the *_Retrans columns in the last row of a sipp -trace_counts file. */
async function sippRetransmissions (file: string): Promise<number> {
  let text = ''
  try { text = await readFile(file, 'utf8') } catch { return NaN }
  const rows = text.split('\n').filter(l => l.includes(';'))
  const head = (rows[0] ?? '').split(';')
  const last = (rows[rows.length - 1] ?? '').split(';')
  return head.reduce((sum, h, i) => h.endsWith('_Retrans') ? sum + Number(last[i] ?? 0) : sum, 0)
}

/** sipalg's "call ended" log lines: reason → count. */
function endReasons (log: string): Record<string, number> {
  const r: Record<string, number> = {}
  for (const line of log.split('\n')) {
    if (!line.includes('"call ended"')) continue
    try {
      const j = JSON.parse(line) as { reason?: string }
      const k = j.reason ?? '?'
      r[k] = (r[k] ?? 0) + 1
    } catch { /* not JSON */ }
  }
  return r
}

async function until (what: () => Promise<boolean>, ms: number, stepMs = 250): Promise<boolean> {
  const end = Date.now() + ms
  while (Date.now() < end) { if (await what()) return true; await sleep(stepMs) }
  return await what()
}

const mappingCounts = async (alg: Sipalg): Promise<{ src_nat: string[], any_dnat: string[], peer_dnat: string[] }> => ({
  src_nat: await alg.elements('src_nat'),
  any_dnat: await alg.elements('any_dnat'),
  peer_dnat: await alg.elements('peer_dnat'),
})

t.test(`soak: ${CALLS} calls at ${RATE} calls/s, seed 0x${SEED.toString(16)}`, async t => {
  const calls = plan(CALLS, SEED)
  const expected = Object.fromEntries(OUTCOMES.map(o => [o, calls.filter(c => c.outcome === o).length])) as Record<Outcome, number>
  const expectedCodes: Record<string, number> = {}
  for (const c of calls) if (c.outcome === 'rejected') expectedCodes[`final ${c.code}`] = (expectedCodes[`final ${c.code}`] ?? 0) + 1
  t.comment(`plan: ${JSON.stringify(expected)} rejected by code ${JSON.stringify(expectedCodes)}`)

  const lab = await Lab.up({ forwardPolicy: 'drop' })
  t.teardown(async () => { await lab.down() })
  const dir = await mkdtemp(join(tmpdir(), `sipalg-soak-${lab.runId}-`))
  t.teardown(async () => { if (!KEEP) await rm(dir, { recursive: true, force: true }); else t.comment(`sipp work directory kept: ${dir}`) })
  await writeFile(join(dir, 'soak-rtp.pcap'), truncatePcap(readFileSync(PCAP), RTP_PACKETS))
  const callers: Caller[] = ['a', 'a2']
  for (const who of callers) {
    const lines = calls.filter(c => c.from === who).map(c => `${c.user};${KIND[c.outcome]};${c.outcome.endsWith('_rtp') ? 1 : 0};${ADDR[c.to]};`)
    await writeFile(join(dir, `${who}.csv`), `SEQUENTIAL\n${lines.join('\n')}\n`)
  }

  const alg = await startSipalg(lab, {
    // Its own state file: the default (/run/sipalg/sipalg-0.state.json) is shared by every sipalg on the
    // host, and a daemon would take over the calls and registrations another lab's sipalg saved there.
    args: ['--state-file', join(dir, 'sipalg-state.json')],
    config: `timeouts: { ring: ${TIMEOUTS.ring}, call: ${TIMEOUTS.call}, signalling: ${TIMEOUTS.signalling}, element: ${TIMEOUTS.element} }\n` +
      'limits: { max_calls: 10000, calls_per_host: 2000, calls_per_second: 2000, calls_per_second_per_host: 1000 }\n'
  })
  t.teardown(async () => { await alg.stop() })
  const pid = alg.child.pid as number
  await sleep(1000)
  const rssStart = rssKb(pid)
  let rssPeak = rssStart
  const started = Date.now()

  // RTP counted where it arrives, at every phone's media port range.
  const caps: Record<Exclude<Role, 'gw'>, Capture> = {
    a: captureUdp(lab, 'a', MEDIA_BASE.a, MEDIA_BASE.a + 9999),
    a2: captureUdp(lab, 'a2', MEDIA_BASE.a2, MEDIA_BASE.a2 + 9999),
    b: captureUdp(lab, 'b', MEDIA_BASE.b, MEDIA_BASE.b + 9999),
    c: captureUdp(lab, 'c', MEDIA_BASE.c, MEDIA_BASE.c + 9999),
  }
  const sipOut = { a: sipSendTimes(lab, 'a'), a2: sipSendTimes(lab, 'a2') }
  await Promise.all([...Object.values(caps), ...Object.values(sipOut)].map(async c => { await c.ready }))

  const perCallerRate = RATE / 2
  const soakSeconds = Math.ceil(CALLS / RATE) + 60
  const common = ['-nostdin', '-t', 'u1', '-timeout', `${soakSeconds}s`, '-timeout_error', '-max_retrans', '5',
    '-recv_timeout', '10000', '-trace_stat', '-fd', '1', '-trace_err', '-trace_counts']
  const uas: Array<{ p: ChildProcess, done: ReturnType<typeof sippResult>, stf: string, who: Callee, counts: string }> = []
  for (const who of ['b', 'c'] as Callee[]) {
    const stf = join(dir, `${who}-stat.csv`)
    const p = lab.spawn(who, 'sipp', ['-sf', join(SIPP_DIR, 'soak-uas.xml'), '-i', ADDR[who], '-p', '5060', '-mi', ADDR[who],
      '-mp', String(MEDIA_BASE[who]), ...common, '-stf', stf, '-error_file', join(dir, `${who}-err.log`)], { cwd: dir })
    uas.push({ p, done: sippResult(p, (soakSeconds + 30) * 1000, lab), stf, who, counts: join(dir, `soak-uas_${String(p.pid)}_counts.csv`) })
  }
  for (const who of ['b', 'c'] as Callee[]) await waitUdpListening(lab, who, ADDR[who], 5060)

  // When each inside phone sent its last SIP (from tcpdump, below): its signalling entry lives on from there.
  const lastSipAt: Record<Caller, number> = { a: 0, a2: 0 }
  const uacDone: Record<Caller, boolean> = { a: false, a2: false }
  const uac: Array<{ done: ReturnType<typeof sippResult>, stf: string, who: Caller, n: number, counts: string }> = []
  for (const who of callers) {
    const n = calls.filter(c => c.from === who).length
    const stf = join(dir, `${who}-stat.csv`)
    const p = lab.spawn(who, 'sipp', [`${ADDR.b}:5060`, '-sf', join(SIPP_DIR, 'soak-uac.xml'), '-inf', join(dir, `${who}.csv`),
      '-i', ADDR[who], '-p', '5060', '-mi', ADDR[who], '-mp', String(MEDIA_BASE[who]),
      '-r', String(perCallerRate), '-rp', '1000', '-m', String(n), '-l', '300', ...common,
      '-stf', stf, '-error_file', join(dir, `${who}-err.log`)], { cwd: dir })
    const done = sippResult(p, (soakSeconds + 10) * 1000, lab)
    void done.then(() => { uacDone[who] = true })
    uac.push({ done, stf, who, n, counts: join(dir, `soak-uac_${String(p.pid)}_counts.csv`) })
  }

  // Sample sipalg's RSS while the calls run.
  // Sample sipalg's RSS, and check twice a second that each calling phone's signalling entry is in the
  // kernel: a phone sending SIP every few dozen ms never goes idle, so its entry must never lapse.
  let sampling = true
  const sippStart = Date.now()
  const present: Record<Caller, Array<{ at: number, ok: boolean }>> = { a: [], a2: [] }
  let signallingChecks = 0
  const sampler = (async () => {
    for (let i = 0; sampling && i < soakSeconds * 4; i++) {
      rssPeak = Math.max(rssPeak, rssKb(pid))
      if (i % 2 === 1 && Date.now() - sippStart > 1500) {
        const src = await alg.elements('src_nat')
        signallingChecks++
        for (const who of callers) {
          if (!uacDone[who]) present[who].push({ at: Date.now(), ok: src.some(e => e.startsWith(`${ADDR[who]} . 5060 `)) })
        }
      }
      await sleep(250)
    }
  })()
  const uacRuns = await Promise.all(uac.map(async u => await u.done))
  const callsSeconds = (Date.now() - started) / 1000
  sampling = false
  await sampler
  // From here on the phones are quiet: watch (4× a second) when each one's signalling entry leaves the kernel.
  const goneAt: Record<Caller, number> = { a: 0, a2: 0 }
  const watcher = (async () => {
    const end = Date.now() + (TIMEOUTS.signalling + 20) * 1000
    while (Date.now() < end && callers.some(w => goneAt[w] === 0)) {
      const src = await alg.elements('src_nat')
      for (const who of callers) if (goneAt[who] === 0 && !src.some(e => e.startsWith(`${ADDR[who]} . 5060 `))) goneAt[who] = Date.now()
      await sleep(250)
    }
  })()
  const sent: Record<Caller, number[]> = { a: await sipOut.a.stop(), a2: await sipOut.a2.stop() }
  for (const who of callers) lastSipAt[who] = sent[who].length > 0 ? Math.max(...sent[who]) : 0
  // A missing entry is a lapse when the phone had sent SIP before the check and also recently (well
  // within the idle timeout, less the quarter sipalg may skip refreshing).
  const lapses: Record<Caller, number[]> = { a: [], a2: [] }
  for (const who of callers) {
    for (const c of present[who]) {
      if (c.ok) continue
      const before = sent[who].filter(x => x <= c.at - 300)
      if (before.length > 0 && c.at - Math.max(...before) < TIMEOUTS.signalling * 750 - 1000) lapses[who].push(Math.round((c.at - sippStart) / 100) / 10)
    }
  }

  // The callees: no new calls are coming, SIGUSR1 makes sipp finish its calls and quit with final stats.
  await sleep(1500)
  for (const u of uas) await lab.stop(u.p, 'SIGUSR1', 5000)
  const uasRuns = await Promise.all(uas.map(async u => await u.done))
  await sleep(300)
  const rtp = Object.fromEntries(await Promise.all((Object.entries(caps) as Array<[Exclude<Role, 'gw'>, Capture]>)
    .map(async ([k, c]) => [k, (await c.stop()).length] as const))) as Record<Exclude<Role, 'gw'>, number>

  await t.test('the calling phones\' signalling entries stay in the kernel while they talk', async t => {
    t.ok(signallingChecks > 0, `${signallingChecks} checks over ${callsSeconds.toFixed(1)} s of calls (signalling timeout ${TIMEOUTS.signalling} s)`)
    for (const who of callers) {
      t.same(lapses[who], [], `${ADDR[who]}:5060 → public port never missing from src_nat while ${who} sent SIP` +
        (lapses[who].length > 0 ? ` (missing at ${lapses[who].slice(0, 10).join(', ')} s after the start)` : ''))
    }
  })

  await t.test('every call ran its planned outcome (sipp on both sides)', async t => {
    for (const [i, u] of uac.entries()) {
      const s = await sippStats(u.stf)
      const run = uacRuns[i] as Awaited<ReturnType<typeof sippResult>>
      t.equal(num(s, 'SuccessfulCall(C)'), u.n, `${u.who}: ${u.n} calls succeeded (exit ${String(run.code)})`)
      t.equal(num(s, 'FailedCall(C)'), 0, `${u.who}: no call failed${num(s, 'FailedCall(C)') > 0 ? `\n${run.log.slice(-3000)}` : ''}`)
    }
    for (const [i, u] of uas.entries()) {
      const s = await sippStats(u.stf)
      const run = uasRuns[i] as Awaited<ReturnType<typeof sippResult>>
      const planned = calls.filter(c => c.to === u.who).length
      t.equal(num(s, 'SuccessfulCall(C)'), planned, `${u.who}: ${planned} calls answered/rejected as planned`)
      t.equal(num(s, 'FailedCall(C)'), 0, `${u.who}: no call failed${num(s, 'FailedCall(C)') > 0 ? `\n${run.log.slice(-3000)}` : ''}`)
    }
  })

  // Right after the soak: only the abandoned calls may still be there; they end by the call timeout.
  const afterSoak = await alg.status()
  rssPeak = Math.max(rssPeak, rssKb(pid))
  const rssAfterSoak = rssKb(pid)
  t.comment(`after the calls (${callsSeconds.toFixed(1)} s): ${afterSoak.calls.length} calls still tracked ` +
    `(states ${JSON.stringify(countBy(afterSoak.calls.map(c => c.state)))}), mappings ${JSON.stringify(afterSoak.mappings)}`)

  let st: StatusJson = afterSoak
  await t.test(`the abandoned calls end by the call timeout (${TIMEOUTS.call} s), media mappings go with them`, async t => {
    t.ok(await until(async () => { st = await alg.status(); return st.calls.length === 0 }, (TIMEOUTS.call + TIMEOUTS.ring + 5) * 1000),
      `no call left (${st.calls.length}: ${st.calls.slice(0, 3).map(c => `${c.callId} ${c.state}`).join(', ')})`)
    const m = await mappingCounts(alg)
    st = await alg.status()
    t.same(m.any_dnat, [], 'any_dnat empty')
    t.same(m.peer_dnat, [], 'peer_dnat empty')
    const notSignalling = m.src_nat.filter(e => !/^10\.0\.1\.(23|24) \. 5060 : \d+$/.test(e))
    t.same(notSignalling, [], `src_nat holds only the phones' signalling entries (${m.src_nat.join(', ')})`)
    // src_nat is left out: a phone's signalling entry may expire in the mirror a moment before the kernel drops it.
    t.same({ any_dnat: m.any_dnat.length, peer_dnat: m.peer_dnat.length }, { any_dnat: st.mappings.any_dnat, peer_dnat: st.mappings.peer_dnat },
      'sipalg\'s mappings (status) are what the kernel holds')
    t.equal(st.mappings.latch_dnat ?? 0, 0, 'no latch left')
  })

  await t.test(`signalling entries expire after ${TIMEOUTS.signalling} s idle: no element left`, async t => {
    await watcher
    // sipalg refreshes an entry on a phone's SIP unless it did so within the last quarter of the timeout,
    // so an entry goes between 3/4 of the timeout and the timeout after the phone's last SIP message.
    for (const who of callers) {
      const idle = (goneAt[who] - lastSipAt[who]) / 1000
      t.ok(goneAt[who] > 0 && idle >= TIMEOUTS.signalling * 0.75 - 0.75 && idle <= TIMEOUTS.signalling + 1.5,
        `${who}'s signalling entry left the kernel ${idle.toFixed(1)} s after ${who}'s last SIP (expected ` +
        `${(TIMEOUTS.signalling * 0.75).toFixed(1)}–${TIMEOUTS.signalling} s)`)
    }
    let m = await mappingCounts(alg)
    const gone = await until(async () => {
      m = await mappingCounts(alg)
      st = await alg.status()
      return m.src_nat.length + m.any_dnat.length + m.peer_dnat.length === 0 && Object.values(st.mappings).every(v => v === 0)
    }, (TIMEOUTS.signalling + 10) * 1000, 500)
    t.ok(gone, `0 elements in src_nat/any_dnat/peer_dnat (${JSON.stringify(m)})`)
    t.same(Object.values(st.mappings).filter(v => v !== 0), [], `status mappings all 0 (${JSON.stringify(st.mappings)})`)
  })

  const rssEnd = rssKb(pid)
  const counters = st.counters
  const reasons = endReasons(alg.log())
  const left = await mappingCounts(alg)
  const leftCount = left.src_nat.length + left.any_dnat.length + left.peer_dnat.length
  const seen = {
    answered: reasons['bye from phone'] ?? 0,
    cancelled: reasons['final 487'] ?? 0,
    rejected: Object.entries(reasons).filter(([k]) => /^final [456]\d\d$/.test(k) && k !== 'final 487').reduce((s, [, v]) => s + v, 0),
    abandoned: reasons.timeout ?? 0,
  }

  await t.test('every call accounted for, nothing failed, memory back near its start', async t => {
    t.equal(alg.child.exitCode, null, 'sipalg still running')
    t.equal(counters.calls_started, CALLS, `calls_started = ${CALLS} (${counters.calls_started})`)
    t.equal(counters.calls_ended, counters.calls_started, `calls_ended = calls_started (${counters.calls_ended})`)
    t.equal(st.calls.length, 0, 'status: 0 calls')
    t.equal(seen.answered, expected.answered + expected.answered_rtp, `answered calls ended by BYE (${seen.answered})`)
    t.equal(seen.cancelled, expected.cancelled, `cancelled calls ended by their 487 (${seen.cancelled})`)
    const rejectedCodes = Object.fromEntries(Object.entries(reasons).filter(([k]) => /^final [456]\d\d$/.test(k) && k !== 'final 487'))
    t.same(rejectedCodes, expectedCodes, 'rejected calls ended by their final, code by code')
    t.equal(seen.abandoned, expected.abandoned + expected.abandoned_rtp, `abandoned calls ended by the call timeout (${seen.abandoned})`)
    t.same(Object.keys(reasons).filter(k => !['bye from phone', 'final 487', 'timeout'].includes(k) && !/^final [456]\d\d$/.test(k)), [],
      `no other end reason (${JSON.stringify(reasons)})`)
    t.equal(counters.internal_errors ?? 0, 0, 'no internal error')
    t.equal(counters.map_ops_failed ?? 0, 0, 'the kernel accepted every mapping change')
    t.same(Object.entries(counters).filter(([k, v]) => k.startsWith('refused_') && v > 0), [], 'nothing refused (limits raised for the soak)')
    t.equal(st.queue.packets, counters.queued, `every queued packet reached the ALG (${st.queue.packets})`)
    const q = st.queue as StatusJson['queue'] & { verdictsSent?: number, overrunsInferred?: number }
    if (q.verdictsSent !== undefined) t.equal(q.verdictsSent, st.queue.packets, 'every packet got a verdict')
    t.equal(st.queue.enobufs, 0, 'no queue overrun (ENOBUFS)')
    if (q.overrunsInferred !== undefined) t.equal(q.overrunsInferred, 0, 'no packet lost before the queue (id gaps)')
    const rtpCalls = expected.answered_rtp + expected.abandoned_rtp
    const rtpArrived = rtp.a + rtp.a2 + rtp.b + rtp.c
    t.ok(rtpCalls === 0 || rtpArrived >= rtpCalls * RTP_PACKETS * 2 * 0.8,
      `RTP arrived both ways: ${rtpArrived} of ${rtpCalls * RTP_PACKETS * 2} packets (${JSON.stringify(rtp)})`)
    t.comment(`RSS: start ${rssStart} kB, peak ${rssPeak} kB, right after the calls ${rssAfterSoak} kB, end ${rssEnd} kB (${rssEnd - rssStart >= 0 ? '+' : ''}${rssEnd - rssStart} kB)`)
    t.ok(rssEnd - rssStart < RSS_SLACK_KB, `RSS back near its start: ${rssStart} kB → ${rssEnd} kB (limit +${RSS_SLACK_KB} kB)`)
  })

  const total = (Date.now() - started) / 1000
  t.comment(`sipalg counters: ${JSON.stringify(counters)}`)
  if (KEEP) {
    await writeFile(join(dir, 'sipalg.log'), alg.log())
    const nft = await lab.exec('gw', 'nft', ['list', 'table', 'ip', 'sipalg'])
    const ct = await lab.exec('gw', 'conntrack', ['-L'])
    await writeFile(join(dir, 'end-state.txt'), `${JSON.stringify(await alg.status(), null, 1)}\n${nft.stdout}\n${ct.stdout}`)
  }
  const retrans = (await Promise.all([...uac, ...uas].map(async u => await sippRetransmissions(u.counts)))).reduce((a, b) => a + b, 0)
  t.comment(`SOAK SUMMARY: ${CALLS} calls seed 0x${SEED.toString(16)} at ${RATE}/s: ` +
    `answered ${expected.answered} + ${expected.answered_rtp} with RTP (BYE seen ${seen.answered}), ` +
    `cancelled ${expected.cancelled} (487 ${seen.cancelled}), rejected ${expected.rejected} (${seen.rejected}), ` +
    `abandoned ${expected.abandoned} + ${expected.abandoned_rtp} with RTP (timed out ${seen.abandoned}); ` +
    `calls_started ${counters.calls_started ?? 0} calls_ended ${counters.calls_ended ?? 0}; RTP packets arrived ${JSON.stringify(rtp)}; ` +
    `RSS ${rssStart} kB → peak ${rssPeak} kB → ${rssEnd} kB; mappings left ${leftCount}; ` +
    `queued ${counters.queued ?? 0} rewritten ${counters.rewritten ?? 0}; sipp retransmissions ${retrans}; calls took ${callsSeconds.toFixed(1)} s, total ${total.toFixed(1)} s`)
})

function countBy (xs: string[]): Record<string, number> {
  const r: Record<string, number> = {}
  for (const x of xs) r[x] = (r[x] ?? 0) + 1
  return r
}
