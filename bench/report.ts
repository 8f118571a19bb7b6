// Renders bench/run.sh's JSON lines as one markdown table (bench/results/latest.md).
// Usage: node dist/bench/report.js results.jsonl
import { readFileSync } from 'node:fs'

type Row = Record<string, any>
const rows: Row[] = readFileSync(process.argv[2], 'utf8').split('\n').filter(l => l.trim() !== '').flatMap(l => {
  try { return [JSON.parse(l) as Row] } catch { return [] }
})
const of = (part: string): Row[] => rows.filter(r => r.part === part)
const n = (x: unknown, d = 0): string => typeof x === 'number' && Number.isFinite(x) ? x.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d }) : '–'
const ratio = (a: unknown, b: unknown): string => typeof a === 'number' && typeof b === 'number' && b > 0 ? `${(a / b).toFixed(2)}×` : '–'
const faster = (base: unknown, x: unknown): string => typeof base === 'number' && typeof x === 'number' && x > 0 ? `${Math.round(base / x).toLocaleString('en-US')}×` : '–'
const ok = (good: boolean | null): string => good === null ? '' : good ? ' ✅' : ' ❌'

const out: string[] = []
const meta = of('meta')[0] ?? {}
out.push(`# sipalg benchmarks (bench/run.sh)`, '')
out.push(`${meta.date ?? ''} · commit ${meta.commit ?? '?'} · kernel ${meta.kernel ?? '?'} · ${meta.cpus ?? '?'} CPUs (shared) · ${meta.seconds ?? '?'} s in total. ` +
  'Every baseline was measured in the same invocation; ratios are sipalg ÷ baseline. Noise between runs is large on this machine.', '')
out.push('| # | figure | sipalg | baseline(s), same run | ratio | spec §7 target |', '| --- | --- | --- | --- | --- | --- |')

// 1. rewrite engine
for (const r of of('rewrite')) {
  const target = r.msg === 'INVITE + SDP' ? 100_000 : null
  out.push(`| 1 | rewrite engine, ${r.msg} (${r.bytes} B), one core | ${n(r.rate)} msg/s (${n(1e6 / r.rate, 2)} µs, ${r.allocB === null ? '?' : n(r.allocB)} B allocated/msg) | target 100,000 msg/s | ${ratio(r.rate, 100_000)} | ≥ 100,000/s INVITE+SDP${target === null ? '' : ok(r.rate >= target)} |`)
}

// 1b. the whole JS packet path (parse, rewrite, call state, mapping mirror), no kernel
for (const r of of('alg')) {
  out.push(`| 1 | ALG packet path in JS (7-packet calls), one core | ${n(r.callsPerSec)} calls/s = ${n(r.packetsPerSec)} SIP packets/s (${n(r.warmUs, 1)} µs/packet back to back; ${n(r.pacedUs, 1)} µs/packet one call every 10 ms, cold caches) | – | – | (bounds the queue rate and the latency) |`)
}

// 2b. SIP datagrams through the queue path
{
  const bestOf = (mode: string): number | undefined => of('sipthru_best').find(r => r.mode === mode)?.best
  const stop = (mode: string): string => {
    const fail = of('sipthru').find(r => r.mode === mode && r.clean !== true)
    return fail === undefined ? 'no loss up to the last step' : `stopped at ${n(fail.rate)}/s: ${n(fail.lost)} lost, ${n(fail.received - (fail.rewritten ?? fail.received))} arrived unrewritten = fail-open bypasses of a full queue (the daemon's inferred count: ${n(fail.bypass ?? 0)})`
  }
  const s = bestOf('sipalg'); const p = bestOf('plain'); const h = bestOf('helper')
  if (s !== undefined) {
    out.push(`| 2 | SIP datagrams/s through the gateway with 0 loss (500-byte OPTIONS, private Via+Contact, paced, 60k per step) | ${n(s)}/s, every one rewritten (${stop('sipalg')}) | plain NAT ${n(p)}/s (${stop('plain')}); kernel SIP helper ${n(h)}/s (${stop('helper')}) | ${ratio(s, h)} of helper | ≥ 75,000/s, 0 loss${ok(s >= 75_000)} |`)
  }
}

// 2. call rate
const best = (pattern: string, mode: string): number | undefined => of('callrate_best').find(r => r.pattern === pattern && r.mode === mode)?.best
const stopper = (pattern: string, mode: string): string => {
  const steps = of('callrate').filter(r => r.pattern === pattern && r.mode === mode)
  const bad = steps.find(r => r.clean !== true)
  if (bad === undefined) return steps.length > 0 ? 'no failure up to the last step' : 'not run'
  const why = bad.failed > 0 ? `${bad.failed} of ${bad.calls} calls failed` : `reached ${n(bad.achieved)} of ${bad.rate}/s`
  return `stopped at ${bad.rate}/s: ${why}`
}
for (const [pattern, label] of [['percall', 'per-call media ports, one SIP source port'], ['same', 'new source port per call, every call offers m=audio 6000 (PBX trunk)']]) {
  const p = best(pattern, 'plain'); const h = best(pattern, 'helper'); const s = best(pattern, 'sipalg')
  if (p === undefined && s === undefined) continue
  out.push(`| 2 | max calls/s with 0 failures, ${label} | ${n(s)} (${stopper(pattern, 'sipalg')}) | plain NAT ${n(p)} (${stopper(pattern, 'plain')}); kernel SIP helper ${n(h)} (${stopper(pattern, 'helper')}) | ${ratio(s, p)} of plain, ${ratio(s, h)} of helper | ≥ 0.9× plain${ok(s !== undefined && p !== undefined ? s >= 0.9 * p : null)}, ≥ 1× helper${ok(s !== undefined && h !== undefined ? s >= h : null)} |`)
}

// 3. latency
for (const rate of [...new Set(of('latency').map(r => r.rate))]) {
  const get = (mode: string): Row | undefined => of('latency').find(r => r.rate === rate && r.mode === mode)
  const p = get('plain'); const h = get('helper')
  for (const [mode, how] of [['sipalg', 'normal priority'], ['sipalg-rt', 'SCHED_RR 5, as systemd/sipalg.service runs it']] as const) {
    const s = get(mode)
    if (s === undefined) continue
    const fmt = (r?: Row): string => r === undefined ? '–' : `${n(r.p50, 0)} / ${n(r.p99, 0)} / ${n(r.p999, 0)} µs (${r.packets} pkts${r.unmatched > 0 ? `, ${r.unmatched} unmatched` : ''}${r.failed > 0 ? `, ${r.failed} failed calls` : ''})`
    const add50 = s.p50 !== null && p?.p50 != null ? s.p50 - p.p50 : null
    const add99 = s.p99 !== null && p?.p99 != null ? s.p99 - p.p99 : null
    const hist = s.histogram ? `; daemon's own histogram (batch processing only, bucket bounds): p50 ≤ ${s.histogram.p50}, p99 ≤ ${s.histogram.p99} µs, mean ${s.histogram.mean} µs` : ''
    out.push(`| 3 | SIP packet transit through the gateway at ${rate} calls/s, p50 / p99 / p99.9 (wire, lan0⇄wan0), daemon at ${how} | ${fmt(s)}; added vs plain: p50 +${n(add50)} µs, p99 +${n(add99)} µs${hist} | plain NAT ${fmt(p)}; kernel SIP helper ${fmt(h)} | p50 ${ratio(s.p50, p?.p50)}, p99 ${ratio(s.p99, p?.p99)} of plain | added p50 < 100 µs${ok(add50 === null ? null : add50 < 100)}, p99 < 1 ms${ok(add99 === null ? null : add99 < 1000)} |`)
  }
}

// 4. media
const media = of('media')
if (media.length > 0) {
  const bestOf = (mode: string): Row | undefined => media.filter(r => r.mode === mode && typeof r.recv?.pps === 'number').sort((a, b) => b.recv.pps - a.recv.pps)[0]
  const s = bestOf('sipalg'); const p = bestOf('plain'); const r = bestOf('relay'); const ru = bestOf('rules')
  const qmoved = media.filter(m => m.mode === 'sipalg').map(m => (m.queueAfter ?? -1) - (m.queueBefore ?? 0))
  const allRuns = (mode: string): string => media.filter(m => m.mode === mode).map(m => n(m.recv?.pps)).join(', ')
  const srcOk = media.filter(m => m.mode === 'sipalg').every(m => m.publicPort !== '' && m.recv?.from === `203.0.113.1:${m.publicPort}`)
  out.push(`| 4 | RTP-sized datagrams forwarded A→B, packets/s (best of runs: ${allRuns('sipalg')}) | ${n(s?.recv?.pps)} pps via sipalg's kernel mappings (left as ${s?.recv?.from ?? '?'}; public media port ${s?.publicPort || 'none'}${srcOk ? ', as mapped' : ', NOT the mapped port'}) | plain forwarding ${n(p?.recv?.pps)} pps (${allRuns('plain')}); plain + sipalg's 2 iptables NFQUEUE rules, no daemon ${n(ru?.recv?.pps)} pps (${allRuns('rules')}); Node userspace relay ${n(r?.recv?.pps)} pps (${allRuns('relay')}) | ${ratio(s?.recv?.pps, p?.recv?.pps)} of plain, ${ratio(s?.recv?.pps, ru?.recv?.pps)} of plain+rules; relay ${ratio(r?.recv?.pps, p?.recv?.pps)} of plain | ≥ 0.95× plain${ok(s && p ? s.recv.pps >= 0.95 * p.recv.pps : null)} |`)
  out.push(`| 4 | RTP packets that reached sipalg's queue during the media runs | ${qmoved.join(', ')} | – | – | 0${ok(qmoved.length > 0 && qmoved.every(x => x === 0))} |`)
}

// 5. mapping install/remove
for (const size of [...new Set(of('nftmaps').map(r => r.elements))]) {
  const get = (way: string): Row | undefined => of('nftmaps').find(r => r.elements === size && r.way === way)
  const s = get('netlink'); const f = get('nft -f process'); const i = get('nft -i'); const paced = get('netlink paced')
  if (s === undefined) continue
  const fmt = (r?: Row): string => r === undefined ? '–' : `add ${n(r.addP50, 1)} / ${n(r.addP99, 1)}, delete ${n(r.delP50, 1)} / ${n(r.delP99, 1)} µs`
  const idle = paced === undefined ? '' : `; one batch every 10 ms, idle between: ${fmt(paced)}`
  const good = Math.max(s.addP50, s.delP50) < 50 && Math.max(s.addP99, s.delP99) < 500
  out.push(`| 5 | mapping install / remove (2 elements per batch, kernel-acked), p50 / p99, ${n(size)} elements per map | ${fmt(s)} back to back (NftMaps.apply, netlink)${idle} | fresh \`nft -f\` process: ${fmt(f)}; persistent \`nft -i\`: ${fmt(i)} | add p50 ${faster(f?.addP50, s.addP50)} faster than nft -f, ${faster(i?.addP50, s.addP50)} than nft -i | p50 < 50 µs, p99 < 0.5 ms${ok(good)} |`)
}

// 6. 1 worker vs N workers (bench/workers.sh), the kernel helper of parts 2b/2 as the baseline
{
  const helperSip = of('sipthru_best').find(r => r.mode === 'helper')?.best
  const helperCalls = best('percall', 'helper')
  const sip = (w: number): number | undefined => of('workers_sipthru_best').find(r => r.workers === w)?.best
  const calls = (w: number): number | undefined => of('workers_callrate_best').find(r => r.workers === w)?.best
  const counts = [...new Set([...of('workers_sipthru_best'), ...of('workers_callrate_best')].map(r => r.workers as number))].sort((a, b) => a - b)
  for (const w of counts) {
    const scale = w === 1 ? '' : `; ${ratio(sip(w), sip(1))} of 1 worker`
    const hops = (of('workers_sipthru_best').find(r => r.workers === w)?.handoff ?? []) as Array<{ sent: number, failed: number } | null>
    const handed = hops.reduce((a, h) => a + (h?.sent ?? 0), 0)
    out.push(`| 6 | SIP datagrams/s with 0 loss, one phone, sipalg with ${w} worker(s) | ${n(sip(w))}/s${w === 1 ? '' : ` (${n(handed)} packets handed between workers)`} | kernel SIP helper ${n(helperSip)}/s | ${ratio(sip(w), helperSip)} of helper${scale} | ≥ 1× helper${ok(sip(w) !== undefined && helperSip !== undefined ? (sip(w) as number) >= helperSip : null)} |`)
    out.push(`| 6 | max calls/s with 0 failures, one SIP 5-tuple, sipalg with ${w} worker(s) | ${n(calls(w))} | kernel SIP helper ${n(helperCalls)} | ${ratio(calls(w), helperCalls)} of helper${w === 1 ? '' : `; ${ratio(calls(w), calls(1))} of 1 worker`} | ≥ 1× helper${ok(calls(w) !== undefined && helperCalls !== undefined ? (calls(w) as number) >= helperCalls : null)} |`)
  }
  // One phone per worker's shard, calls placed from all of them at once: where N workers can spread the load.
  const multi = (mode: string, w: number): Row | undefined => of('workers_multi_best').find(r => r.mode === mode && r.workers === w)
  const mh = multi('helper', 0)
  for (const w of [...new Set(of('workers_multi_best').filter(r => r.mode === 'sipalg').map(r => r.workers as number))].sort((a, b) => a - b)) {
    const m = multi('sipalg', w)
    const one = multi('sipalg', 1)
    const stop = of('workers_multi').filter(r => r.mode === 'sipalg' && r.workers === w && r.clean !== true)[0]
    const why = stop === undefined ? 'no failure up to the last step' : `stopped at ${n(stop.rate)}/s: ${n(stop.failed)} of ${n(stop.calls)} calls failed`
    out.push(`| 6 | max calls/s with 0 failures, ${n(m?.phones)} phones (one per worker's shard) calling at once, sipalg with ${w} worker(s) | ${n(m?.best)} (${why}) | kernel SIP helper ${n(mh?.best)} (same phones) | ${ratio(m?.best, mh?.best)} of helper${w === 1 ? '' : `; ${ratio(m?.best, one?.best)} of 1 worker`} | ≥ 1× helper${ok(m !== undefined && mh !== undefined ? m.best >= mh.best : null)} |`)
  }
  for (const h of of('handoff')) {
    out.push(`| 6 | the hop between two workers alone (${h.bytes}-byte packet to another process over a unix socket and back, no ALG) | p50 ≤ ${n(h.p50)} µs, p99 ≤ ${n(h.p99)} µs (mean ${n(h.mean)} µs) one at a time; ${n(h.batchedPerSec)} packets/s with 64 in flight | – | – | (the price of a packet read by a worker that does not own its phone) |`)
  }
}

// 7. SIP over TCP: the splice next to plain NAT forwarding of the same connection's traffic
{
  const tcp = of('tcp').filter(r => typeof r.result?.answered === 'number' && r.result.answered === r.result.requests)
  const median = (xs: number[]): number | undefined => xs.length === 0 ? undefined : [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
  const med = (path: string, kind: string, key: string): number | undefined => median(tcp.filter(r => r.path === path && r.kind === kind).map(r => r.result[key] as number))
  const all = (path: string, kind: string, key: string): string => tcp.filter(r => r.path === path && r.kind === kind).map(r => n(r.result[key])).join(', ')
  const sp = med('splice', 'pipeline', 'rate'); const pp = med('plain', 'pipeline', 'rate'); const bp = med('beside', 'pipeline', 'rate')
  if (sp !== undefined || pp !== undefined) {
    const runs = tcp.filter(r => r.path === 'splice' && r.kind === 'pipeline')
    const cpuUs = median(runs.map(r => r.daemonCpuMs * 1000 / r.result.answered))
    const first = tcp.find(r => r.kind === 'pipeline')
    const atB = of('tcp_server').find(r => r.port === 5060)
    const spliced = tcp.filter(r => r.path === 'splice').reduce((sum, r) => sum + (r.result.answered as number), 0)
    out.push(`| 7 | SIP/TCP request + response pairs/s on one connection, pipelined (≤ ${first?.window ?? '?'} unanswered ${first?.result.bytes ?? '?'}-byte MESSAGEs, each answered by a 200 OK), median of rounds | ${n(sp)}/s through the splice (rounds: ${all('splice', 'pipeline', 'rate')}; daemon CPU ${n(cpuUs, 1)} µs per pair${atB === undefined ? '' : `; Via named the public address in ${n(atB.rewritten)} of the ${n(spliced)} requests sent through the splice`}) | plain NAT ${n(pp)}/s (${all('plain', 'pipeline', 'rate')}); port 5070 beside the running splice ${n(bp)}/s (${all('beside', 'pipeline', 'rate')}) | ${ratio(sp, pp)} of plain | – |`)
  }
  const s50 = med('splice', 'rtt', 'p50'); const p50 = med('plain', 'rtt', 'p50'); const s99 = med('splice', 'rtt', 'p99'); const p99 = med('plain', 'rtt', 'p99')
  if (s50 !== undefined || p50 !== undefined) {
    const added = s50 !== undefined && p50 !== undefined ? s50 - p50 : undefined
    const added99 = s99 !== undefined && p99 !== undefined ? s99 - p99 : undefined
    out.push(`| 7 | SIP/TCP round trip on an open connection (one MESSAGE → 200 OK at a time), p50 / p99, median of rounds | ${n(s50)} / ${n(s99)} µs through the splice: added p50 +${n(added)} µs, p99 +${n(added99)} µs | plain NAT ${n(p50)} / ${n(p99)} µs; port 5070 beside the splice ${n(med('beside', 'rtt', 'p50'))} / ${n(med('beside', 'rtt', 'p99'))} µs | p50 ${ratio(s50, p50)}, p99 ${ratio(s99, p99)} of plain | – |`)
  }
}

// 8. sustained trunk: a new source port per call, for minutes
for (const r of of('trunk')) {
  const mb = (kb: unknown): string => typeof kb === 'number' ? n(kb / 1024, 1) : '–'
  const [rss0, rssMid, rssEnd] = (r.rssKb ?? []) as number[]
  const refused = r.end?.refusedSignalling
  // Flat: the second half of the run grew the daemon by less than a tenth of what it held at the middle.
  const flat = typeof rssMid === 'number' && typeof rssEnd === 'number' && rssMid > 0 ? (rssEnd - rssMid) / rssMid < 0.1 : null
  const good = r.failed === 0 && r.ok === r.calls && refused === 0 && flat === true
  out.push(`| 8 | sustained trunk: ${n(r.rate)} calls/s for ${n(r.seconds)} s, new source port per call | ${n(r.ok)} of ${n(r.calls)} calls completed, ${n(r.failed)} failed (sipp reached ${n(r.achieved)}/s); the daemon saw ${n(r.end?.callsStarted)} calls start, ${n(r.end?.callsEnded)} end; refused_signalling ${n(refused)}; src_nat elements (its signalling ports) at the middle / end ${n(r.mid?.mappings?.src_nat)} / ${n(r.end?.mappings?.src_nat)}; daemon RSS start / middle / end ${mb(rss0)} / ${mb(rssMid)} / ${mb(rssEnd)} MB | – | – | 0 failed, 0 refused_signalling, RSS flat${ok(good)} |`)
}

const notes = of('note')
if (notes.length > 0) { out.push('', '**Notes**', ''); for (const x of notes) out.push(`- ${x.text}`) }
out.push('', 'Raw step records: bench/results/latest.jsonl.')
console.log(out.join('\n'))
