// `sipalg status`: what the running daemon is doing — calls, registrations, mappings, counters —
// as tables for people, or --json for scripts; --watch refreshes every second.

import { askControl, socketPath } from './control.js'
import { parseCommand } from './commands.js'
import type { FlowStatus, HaStatus, StatusDoc, WorkerStatus } from '../status.js'

function table (head: string[], rows: string[][]): string {
  if (rows.length === 0) return '  (none)\n'
  const w = head.map((h, i) => Math.max(h.length, ...rows.map(r => (r[i] ?? '').length)))
  const line = (r: string[]): string => '  ' + r.map((c, i) => (c ?? '').padEnd(w[i])).join('  ').trimEnd() + '\n'
  return line(head) + rows.map(line).join('')
}

const traffic = (f: FlowStatus | undefined): string =>
  f?.in === undefined && f?.out === undefined ? '' : `  [in ${f.in?.packets ?? '–'} / out ${f.out?.packets ?? '–'} pkts]`

export function renderStatus (s: StatusDoc): string {
  let out = `sipalg on ${s.publicIp}, up ${s.uptimeSeconds}s\n\nCalls (${s.calls.length})\n`
  out += table(['CALL-ID', 'PHONE', 'DIR', 'STATE', 'AGE', 'MEDIA (private → public ⇐ allowed from)'],
    s.calls.map(c => [c.callId.slice(0, 32), c.phone, c.direction, c.state, `${c.ageSeconds}s`,
      c.media.map((m, i) => m + traffic(c.flows?.[i])).join('; ')]))
  out += `\nRegistrations (${s.registrations.length})\n`
  out += table(['PHONE', 'PUBLIC PORT', 'REGISTRAR', 'AOR', 'EXPIRES IN'],
    s.registrations.map(r => [r.phone, String(r.publicPort), r.registrar, r.aor, `${r.expiresInSeconds}s`]))
  if (s.tcpConnections !== undefined) {
    out += `\nSIP/TCP connections (${s.tcpConnections.length})\n`
    out += table(['PHONE', 'FAR END', 'DIR', 'AGE', 'MESSAGES OUT/IN'],
      s.tcpConnections.map(c => [c.phone, c.far, c.direction, `${c.ageSeconds}s`, c.notSip ? 'not SIP (spliced unparsed)' : `${c.messagesOut}/${c.messagesIn}`]))
  }
  out += `\nKernel mappings\n${table(['MAP', 'ELEMENTS'], Object.entries(s.mappings).map(([k, v]) => [k, String(v)]))}`
  out += `\nCounters\n${table(['NAME', 'VALUE'], Object.entries(s.counters).map(([k, v]) => [k, String(v)]))}`
  if (s.ruleset !== undefined) {
    const h = s.ruleset.lastHeal
    out += `\nRuleset: ${s.ruleset.tableHeals} table and ${s.ruleset.queueRuleHeals} queue-rule repairs` +
      `${h === null ? '' : `, last ${h.at} (${h.what}, ${h.healMs} ms)`}; checked ${s.ruleset.checks} times, ${s.ruleset.checkUsMean} µs each` +
      `${s.ruleset.queueRulesWatched ? '' : '; queue rules not watched (not installed when sipalg started)'}\n`
  }
  if (s.ha !== undefined && s.ha.role !== 'single') out += renderHa(s.ha)
  if (s.workers !== undefined) out += renderWorkers(s.workers)
  out += `\nVerdict latency: p50 ≤ ${s.latencyUs.p50} µs, p99 ≤ ${s.latencyUs.p99} µs over ${s.latencyUs.packets} packets\n`
  return out
}

/** With workers: one line each — its queue, whether it is up, what it holds, and its handoffs. */
export function renderWorkers (workers: readonly WorkerStatus[]): string {
  const exit = (w: WorkerStatus): string => w.lastExit === null ? '' : `${w.lastExit.signal ?? `code ${String(w.lastExit.code)}`} at ${w.lastExit.at}`
  const handoff = (w: WorkerStatus): string => w.handoff === null ? '' : `${w.handoff.sent} sent (${w.handoff.failed} passed unanswered), ${w.handoff.served} served, p99 ${w.handoff.rttUs.p99} µs`
  return `\nWorkers (${workers.length})\n` + table(['#', 'QUEUE', 'PID', 'STATE', 'CALLS', 'REGS', 'PACKETS', 'RESTARTS', 'LAST EXIT', 'HANDOFF'],
    workers.map(w => [String(w.index), String(w.queue), w.pid === null ? '–' : String(w.pid), w.up ? 'up' : 'restarting',
      String(w.calls), String(w.registrations), String(w.packets), String(w.restarts), exit(w), handoff(w)]))
}

/** The gateway pair part: role, store health, and on a standby what it holds for a takeover. */
export function renderHa (ha: HaStatus): string {
  const st = ha.store
  const m = ha.mirrored
  const last = ha.lastChange
  return `\nPair: ${ha.role}` +
    `${m === null ? '' : `, mirrored ${m.calls} calls, ${m.registrations} registrations, ${m.elements} kernel elements`}` +
    `${st.lagMs === null ? '' : `, replication lag ${st.lagMs} ms`}; ${ha.roleChanges} role changes` +
    `${last === null ? '' : ` (last ${last.at} to ${last.to}, taken over in ${last.takeoverMs} ms)`}\n` +
    `Store: ${st.kind}, ${st.writes} writes, ${st.writesFailed} failed, ${st.pending} pending, ${st.changesFollowed} changes followed\n`
}

export async function runStatus (argv: string[]): Promise<number> {
  const args = parseCommand('status', argv)
  const path = socketPath(args, 'status')
  const json = args.flags.json === true
  const once = async (): Promise<void> => {
    const doc = await askControl(path, 'status') as StatusDoc
    process.stdout.write(json ? JSON.stringify(doc, null, 2) + '\n' : renderStatus(doc))
  }
  if (args.flags.watch !== true) { await once(); return 0 }
  for (;;) {
    process.stdout.write('\x1b[2J\x1b[H')
    await once()
    await new Promise(resolve => setTimeout(resolve, 1000))
  }
}
