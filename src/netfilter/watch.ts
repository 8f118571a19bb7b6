// Self-healing: a firewall reload (`nft flush ruleset`, `systemctl restart nftables`, `iptables -F`)
// removes sipalg's nft table and its queue rules, and sipalg would otherwise go on with nothing
// queued to it and no NAT maps. Every CHECK_MS the watch lists the rules of sipalg's table and of
// iptables-nft's `ip filter` over the nft netlink socket sipalg already has open (two dumps, tens
// of µs: see docs/errors.md E303) and puts back what is missing: the table with the mappings of
// every live call and registration (from the mirror in src/media/mappings.ts), and the queue rules
// of iptables/sipalg-rules.sh when they were installed at start. With IPv6 on, the same is done for
// `table ip6 <table>` and ip6tables' `ip6 filter`, over the ip6 socket (two more dumps), each family
// on its own: a reload of one leaves the other untouched.

import { spawnSync } from 'node:child_process'
import type { Logger } from 'pino'
import type { ErrorCode } from '../errors.js'
import { logCoded } from '../log.js'
import { applyOps, type Entry, type KernelMaps, type MapOp } from '../media/mappings.js'
import type { NativeRule } from './native.js'
import type { Family } from './table.js'

export const CHECK_MS = 250
/** The chain sipalg-rules.sh installs in iptables' filter table, and the comment on its rules. */
const QUEUE_CHAIN = 'SIPALG'
const COMMENT = Buffer.from('sipalg')

/** The iptables of a family, whose filter table (iptables-nft's `table <family> filter`) holds the queue rules. */
const IPTABLES: Record<Family, string> = { ip: 'iptables', ip6: 'ip6tables' }

/** Rules per chain that a table script (src/netfilter/table.ts tableScript) adds. */
export function expectedRuleCounts (script: string): Map<string, number> {
  const counts = new Map<string, number>()
  for (const m of script.matchAll(/^add rule \S+ \S+ (\S+) /gm)) counts.set(m[1], (counts.get(m[1]) ?? 0) + 1)
  return counts
}

/** The maps and sets a table script declares: the mirror entries a re-created table takes back. */
export function declaredMaps (script: string): Set<string> {
  return new Set([...script.matchAll(/^add (?:map|set) \S+ \S+ (\S+) /gm)].map(m => m[1]))
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

/** sipalg's queue rules as iptables-nft keeps them in `table ip filter` (ip6tables: `ip6 filter`; each carries the comment). */
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

/**
 * Every live mirror entry as an add with the time it has left: what a fresh table needs. `maps`:
 * only the entries of those maps (a re-created `table ip6` takes back its sets, nothing of IPv4's).
 */
export function replayOps (entries: Iterable<Entry>, now: number, maps?: Set<string>): MapOp[] {
  const ops: MapOp[] = []
  for (const e of entries) {
    if (maps !== undefined && !maps.has(e.map)) continue
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

/** One family's table: its creation script, a function that runs it, and rule listings over its socket. */
export interface FamilyDeps {
  script: string
  createTable: () => void
  /** The rules of `table <family> <name>` (sipalg's own, or `filter`: iptables-nft's). */
  rules: (table: string) => NativeRule[]
}

export interface WatchDeps extends FamilyDeps {
  table: string
  /** This sipalg's nfqueue: queue rules sending SIP elsewhere belong to another instance. */
  queue: number
  /** IPv6 on (an IPv6 inside prefix): `table ip6 <table>` and ip6tables' queue rules are watched too. */
  ipv6?: FamilyDeps
  kernel: KernelMaps
  entries: () => Iterable<Entry>
  log: Logger
  onHeal: (what: 'table' | 'queue_rules', family: Family) => void
  now?: () => number
  /** Runs iptables(-restore) and ip6tables(-restore); for tests. */
  run?: (cmd: string, args: string[], input?: string) => { ok: boolean, out: string }
}

import type { RulesetStatus as WatchStatus } from '../status.js'
export type { WatchStatus }

const runCmd = (cmd: string, args: string[], input?: string): { ok: boolean, out: string } => {
  const r = spawnSync(cmd, args, { input, encoding: 'utf8', timeout: 10_000 })
  return { ok: r.error === undefined && r.status === 0, out: r.error?.message ?? `${r.stdout}${r.stderr}`.trim() }
}

/** What the watch keeps per family. */
interface Watched extends FamilyDeps {
  family: Family
  expected: Map<string, number>
  maps: Set<string>
  /** `-A SIPALG ...` lines as installed; null when the queue rules were not installed at start. */
  queueLines: string[] | null
}

export class RulesetWatch {
  private readonly families: Watched[]
  private readonly run: NonNullable<WatchDeps['run']>
  private readonly now: () => number
  private timer: NodeJS.Timeout | undefined
  private checks = 0
  private checkNs = 0n
  private tableHeals = 0
  private queueRuleHeals = 0
  private lastHeal: WatchStatus['lastHeal'] = null
  /** A heal that failed is retried each check but logged once until it works. */
  private failing = new Set<string>()

  constructor (private readonly d: WatchDeps) {
    const watched = (family: Family, f: FamilyDeps): Watched => ({
      family, script: f.script, createTable: f.createTable, rules: f.rules,
      expected: expectedRuleCounts(f.script), maps: declaredMaps(f.script), queueLines: null
    })
    this.families = [watched('ip', d), ...(d.ipv6 === undefined ? [] : [watched('ip6', d.ipv6)])]
    this.run = d.run ?? runCmd
    this.now = d.now ?? Date.now
    for (const f of this.families) this.learnQueueRules(f)
  }

  /**
   * Remembers the queue rules installed now (`sipalg rules install`) as the ones to keep, when
   * they queue to this sipalg's queue, or to a balanced run of queues starting there (workers; the
   * first worker watches for all). A second instance on another queue leaves them alone.
   */
  private learnQueueRules (f: Watched): void {
    const seen = queueRulesSeen(f.rules('filter'))
    if (seen.chainRules === 0 || !seen.jump) { f.queueLines = null; return }
    const r = this.run(IPTABLES[f.family], ['-w', '-t', 'filter', '-S', QUEUE_CHAIN])
    const lines = r.ok ? r.out.split('\n').filter(l => l.startsWith(`-A ${QUEUE_CHAIN} `)) : []
    const ours = (l: string): boolean => l.includes(`--queue-num ${this.d.queue} `) || l.endsWith(`--queue-num ${this.d.queue}`) || l.includes(`--queue-balance ${this.d.queue}:`)
    f.queueLines = lines.some(ours) ? lines : null
  }

  /**
   * Rules added to a table after it was created (SIP over TCP's divert chain, src/netfilter/tproxy.ts
   * divertScript), checked from now on like the table's own: that chain deleted alone heals the
   * table, whose createTable puts the chain back too. A family not watched is ignored.
   */
  expectAlso (family: Family, script: string): void {
    const f = this.families.find(x => x.family === family)
    if (f === undefined) return
    for (const [chain, n] of expectedRuleCounts(script)) f.expected.set(chain, n)
  }

  start (intervalMs = CHECK_MS): void {
    this.timer = setInterval(() => { this.check() }, intervalMs)
    this.timer.unref()
  }

  stop (): void { clearInterval(this.timer) }

  /** One check of every family; heals what is missing. Never throws: a failure is logged (E305) and retried. */
  check (): void {
    const t0 = process.hrtime.bigint()
    const seen = this.families.map(f => ({
      f,
      own: this.guard(`the nft table ${f.family} ${this.d.table}`, () => f.rules(this.d.table)),
      filter: f.queueLines === null ? undefined : this.guard(`${IPTABLES[f.family]} rules`, () => f.rules('filter'))
    }))
    this.checks++
    this.checkNs += process.hrtime.bigint() - t0
    for (const { f, own, filter } of seen) {
      const tableWhat = own === undefined ? null : diagnoseTable(own, f.expected)
      if (tableWhat !== null) this.healTable(f, tableWhat, t0)
      if (filter !== undefined) this.checkQueueRules(f, queueRulesSeen(filter), t0)
    }
  }

  private healTable (f: Watched, what: string, t0: bigint): void {
    const ok = this.guard(`nft table ${f.family} ${this.d.table}`, () => {
      f.createTable()
      const ops = replayOps(this.d.entries(), this.now(), f.maps)
      const failed = applyOps(this.d.kernel, ops)
      if (failed.length > 0) throw new Error(`${failed.length} of ${ops.length} mappings refused: ${failed[0].error.message}`)
      return ops.length
    })
    if (ok === undefined) return
    this.tableHeals++
    this.healed(f.family, 'table', 'E303_TABLE_HEALED', { table: this.d.table, what, elements: ok }, t0)
  }

  private checkQueueRules (f: Watched, seen: QueueRulesSeen, t0: bigint): void {
    const lines = f.queueLines ?? []
    if (seen.jump && seen.chainRules > 0) {
      // Present but different: the operator re-ran `sipalg rules install` with other options.
      if (seen.chainRules !== lines.length) this.learnQueueRules(f)
      return
    }
    const what = !seen.jump && seen.chainRules === 0 ? 'removed' : seen.jump ? 'flushed' : 'unhooked from FORWARD'
    const ok = this.guard(`the ${IPTABLES[f.family]} queue rules`, () => {
      const r = this.run(`${IPTABLES[f.family]}-restore`, ['-w', '--noflush'], queueRulesRestore(lines, !seen.jump))
      if (!r.ok) throw new Error(r.out)
      return true
    })
    if (ok === undefined) return
    this.queueRuleHeals++
    this.healed(f.family, 'queue_rules', 'E304_QUEUE_RULES_HEALED', { what }, t0)
  }

  private healed (family: Family, what: 'table' | 'queue_rules', code: ErrorCode, details: Record<string, unknown>, t0: bigint): void {
    const healMs = Number(process.hrtime.bigint() - t0) / 1e6
    // IPv4's heals keep their plain names (what status readers already match); IPv6's say so.
    this.lastHeal = { at: new Date(this.now()).toISOString(), what: family === 'ip' ? what : `${family} ${what}`, healMs: Math.round(healMs * 10) / 10 }
    this.d.onHeal(what, family)
    logCoded(this.d.log, 'warn', code, { family, ...details, healMs: this.lastHeal.healMs })
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
      queueRulesWatched: this.families.some(f => f.queueLines !== null),
      lastHeal: this.lastHeal
    }
  }
}
