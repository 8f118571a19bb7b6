// Self-healing: a firewall reload (`nft flush ruleset`, `systemctl restart nftables`, `iptables -F`)
// removes sipalg's nft table and its queue rules, and sipalg would otherwise go on with nothing
// queued to it and no NAT maps. Every CHECK_MS the watch lists the rules of sipalg's table and of
// iptables-nft's `ip filter` over the nft netlink socket sipalg already has open (two dumps, tens
// of µs: see docs/errors.md E303) and puts back what is missing: the table with the mappings of
// every live call and registration (from the mirror in src/media/mappings.ts), and the queue rules
// of iptables/sipalg-rules.sh when they were installed at start.

import { spawnSync } from 'node:child_process'
import type { Logger } from 'pino'
import type { ErrorCode } from '../errors.js'
import { logCoded } from '../log.js'
import { applyOps, type Entry, type KernelMaps, type MapOp } from '../media/mappings.js'
import type { NativeRule } from './native.js'

export const CHECK_MS = 250
/** The chain sipalg-rules.sh installs in iptables' filter table, and the comment on its rules. */
const QUEUE_CHAIN = 'SIPALG'
const COMMENT = Buffer.from('sipalg')

/** Rules per chain that a table script (src/netfilter/table.ts tableScript) adds. */
export function expectedRuleCounts (script: string): Map<string, number> {
  const counts = new Map<string, number>()
  for (const m of script.matchAll(/^add rule \S+ \S+ (\S+) /gm)) counts.set(m[1], (counts.get(m[1]) ?? 0) + 1)
  return counts
}

/** null when the table has exactly its rules, else how it differs (for the log line). */
export function diagnoseTable (rules: NativeRule[], expected: Map<string, number>): 'deleted' | 'flushed or changed' | null {
  if (rules.length === 0) return 'deleted'
  const seen = new Map<string, number>()
  for (const r of rules) seen.set(r.chain, (seen.get(r.chain) ?? 0) + 1)
  for (const [chain, n] of expected) if (seen.get(chain) !== n) return 'flushed or changed'
  return null
}

export interface QueueRulesSeen { chainRules: number, jump: boolean }

/** sipalg's queue rules as iptables-nft keeps them in `table ip filter` (each carries the comment). */
export function queueRulesSeen (filterRules: NativeRule[]): QueueRulesSeen {
  let chainRules = 0
  let jump = false
  for (const r of filterRules) {
    if (!r.raw.includes(COMMENT)) continue
    if (r.chain === QUEUE_CHAIN) chainRules++
    else if (r.chain === 'FORWARD') jump = true
  }
  return { chainRules, jump }
}

/** Every live mirror entry as an add with the time it has left: what a fresh table needs. */
export function replayOps (entries: Iterable<Entry>, now: number): MapOp[] {
  const ops: MapOp[] = []
  for (const e of entries) {
    const left = Math.round(e.expiresAt - now)
    if (left > 0) ops.push({ op: 'add', map: e.map, key: e.key, data: e.data, timeoutMs: left })
  }
  return ops
}

/** The iptables-restore text that puts the queue chain's rules back (and the jump, when it is gone). */
export function queueRulesRestore (chainLines: string[], withJump: boolean): string {
  return [
    '*filter',
    `:${QUEUE_CHAIN} - [0:0]`,
    ...chainLines,
    ...(withJump ? [`-I FORWARD 1 -m comment --comment sipalg -j ${QUEUE_CHAIN}`] : []),
    'COMMIT',
    ''
  ].join('\n')
}

export interface WatchDeps {
  table: string
  /** This sipalg's nfqueue: queue rules sending SIP elsewhere belong to another instance. */
  queue: number
  /** The table's creation script (tableScript) and a function that runs it. */
  script: string
  createTable: () => void
  rules: (table: string) => NativeRule[]
  kernel: KernelMaps
  entries: () => Iterable<Entry>
  log: Logger
  onHeal: (what: 'table' | 'queue_rules') => void
  now?: () => number
  /** Runs iptables(-restore); for tests. */
  run?: (cmd: string, args: string[], input?: string) => { ok: boolean, out: string }
}

import type { RulesetStatus as WatchStatus } from '../status.js'
export type { WatchStatus }

const runCmd = (cmd: string, args: string[], input?: string): { ok: boolean, out: string } => {
  const r = spawnSync(cmd, args, { input, encoding: 'utf8', timeout: 10_000 })
  return { ok: r.error === undefined && r.status === 0, out: r.error?.message ?? `${r.stdout}${r.stderr}`.trim() }
}

export class RulesetWatch {
  private readonly expected: Map<string, number>
  private readonly run: NonNullable<WatchDeps['run']>
  private readonly now: () => number
  /** `-A SIPALG ...` lines as installed; null when the queue rules were not installed at start. */
  private queueLines: string[] | null = null
  private timer: NodeJS.Timeout | undefined
  private checks = 0
  private checkNs = 0n
  private tableHeals = 0
  private queueRuleHeals = 0
  private lastHeal: WatchStatus['lastHeal'] = null
  /** A heal that failed is retried each check but logged once until it works. */
  private failing = new Set<string>()

  constructor (private readonly d: WatchDeps) {
    this.expected = expectedRuleCounts(d.script)
    this.run = d.run ?? runCmd
    this.now = d.now ?? Date.now
    this.learnQueueRules()
  }

  /**
   * Remembers the queue rules installed now (`sipalg rules install`) as the ones to keep, when
   * they queue to this sipalg's queue, or to a balanced run of queues starting there (workers; the
   * first worker watches for all). A second instance on another queue leaves them alone.
   */
  private learnQueueRules (): void {
    const seen = queueRulesSeen(this.d.rules('filter'))
    if (seen.chainRules === 0 || !seen.jump) { this.queueLines = null; return }
    const r = this.run('iptables', ['-w', '-t', 'filter', '-S', QUEUE_CHAIN])
    const lines = r.ok ? r.out.split('\n').filter(l => l.startsWith(`-A ${QUEUE_CHAIN} `)) : []
    const ours = (l: string): boolean => l.includes(`--queue-num ${this.d.queue} `) || l.endsWith(`--queue-num ${this.d.queue}`) || l.includes(`--queue-balance ${this.d.queue}:`)
    this.queueLines = lines.some(ours) ? lines : null
  }

  /**
   * Rules added to the table after it was created (SIP over TCP's divert chain, src/netfilter/tproxy.ts
   * divertScript), checked from now on like the table's own: that chain deleted alone heals the
   * table, whose createTable puts the chain back too.
   */
  expectAlso (script: string): void {
    for (const [chain, n] of expectedRuleCounts(script)) this.expected.set(chain, n)
  }

  start (intervalMs = CHECK_MS): void {
    this.timer = setInterval(() => { this.check() }, intervalMs)
    this.timer.unref()
  }

  stop (): void { clearInterval(this.timer) }

  /** One check; heals what is missing. Never throws: a failure is logged (E305) and retried. */
  check (): void {
    const t0 = process.hrtime.bigint()
    const own = this.guard('the nft table', () => this.d.rules(this.d.table))
    const filter = this.queueLines === null ? null : this.guard('iptables rules', () => this.d.rules('filter'))
    this.checks++
    this.checkNs += process.hrtime.bigint() - t0
    const tableWhat = own === undefined ? null : diagnoseTable(own, this.expected)
    if (tableWhat !== null) this.healTable(tableWhat, t0)
    if (filter !== null && filter !== undefined) this.checkQueueRules(queueRulesSeen(filter), t0)
  }

  private healTable (what: string, t0: bigint): void {
    const ok = this.guard(`nft table ip ${this.d.table}`, () => {
      this.d.createTable()
      const ops = replayOps(this.d.entries(), this.now())
      const failed = applyOps(this.d.kernel, ops)
      if (failed.length > 0) throw new Error(`${failed.length} of ${ops.length} mappings refused: ${failed[0].error.message}`)
      return ops.length
    })
    if (ok === undefined) return
    this.tableHeals++
    this.healed('table', 'E303_TABLE_HEALED', { table: this.d.table, what, elements: ok }, t0)
  }

  private checkQueueRules (seen: QueueRulesSeen, t0: bigint): void {
    const lines = this.queueLines ?? []
    if (seen.jump && seen.chainRules > 0) {
      // Present but different: the operator re-ran `sipalg rules install` with other options.
      if (seen.chainRules !== lines.length) this.learnQueueRules()
      return
    }
    const what = !seen.jump && seen.chainRules === 0 ? 'removed' : seen.jump ? 'flushed' : 'unhooked from FORWARD'
    const ok = this.guard('the queue rules', () => {
      const r = this.run('iptables-restore', ['-w', '--noflush'], queueRulesRestore(lines, !seen.jump))
      if (!r.ok) throw new Error(r.out)
      return true
    })
    if (ok === undefined) return
    this.queueRuleHeals++
    this.healed('queue_rules', 'E304_QUEUE_RULES_HEALED', { what }, t0)
  }

  private healed (what: 'table' | 'queue_rules', code: ErrorCode, details: Record<string, unknown>, t0: bigint): void {
    const healMs = Number(process.hrtime.bigint() - t0) / 1e6
    this.lastHeal = { at: new Date(this.now()).toISOString(), what, healMs: Math.round(healMs * 10) / 10 }
    this.d.onHeal(what)
    logCoded(this.d.log, 'warn', code, { ...details, healMs: this.lastHeal.healMs })
  }

  /** Runs f; on failure logs E305 once per kind until it works again and returns undefined. */
  private guard<T> (what: string, f: () => T): T | undefined {
    try {
      const v = f()
      this.failing.delete(what)
      return v
    } catch (e) {
      if (!this.failing.has(what)) logCoded(this.d.log, 'error', 'E305_HEAL_FAILED', { what, why: (e as Error).message })
      this.failing.add(what)
      return undefined
    }
  }

  status (): WatchStatus {
    return {
      checks: this.checks,
      checkUsMean: this.checks === 0 ? 0 : Math.round(Number(this.checkNs / BigInt(this.checks)) / 100) / 10,
      tableHeals: this.tableHeals,
      queueRuleHeals: this.queueRuleHeals,
      queueRulesWatched: this.queueLines !== null,
      lastHeal: this.lastHeal
    }
  }
}
