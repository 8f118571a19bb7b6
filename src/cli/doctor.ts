// `sipalg doctor`: checks what this host needs and prints the fix for each failure.

import { spawnSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { SipalgError } from '../errors.js'
import { parseCommand } from './commands.js'
import { runConfig } from './run.js'

interface Check { name: string, ok: boolean, detail: string, fix?: string, /** reported, but not a failure */ warn?: boolean }

/** Where the host keeps its nftables ruleset (Debian, Ubuntu); SIPALG_NFTABLES_CONF for tests. */
const nftablesConf = (): string => process.env.SIPALG_NFTABLES_CONF ?? '/etc/nftables.conf'

/**
 * A ruleset file that starts with `flush ruleset` removes sipalg's queue rules and table whenever
 * it is loaded (`systemctl restart nftables`); without sipalg's ct-mark accept (README "Firewall
 * reloads") its own policy then decides over sipalg's media.
 */
/**
 * Whether the kernel's SIP helper is attached to UDP and to TCP, from `iptables-save -t raw` and
 * `nft list ruleset`: iptables CT rules (-p udp|tcp ... --helper sip; no -p = both), nft
 * `ct helper set` rules (by the protocol they match; none named = both) and `ct helper` objects
 * (`type "sip" protocol udp|tcp`).
 */
export function sipHelperAttached (raw: string, rules: string): { udp: boolean, tcp: boolean } {
  const found = { udp: false, tcp: false }
  const mark = (line: string): void => {
    const proto = /(?:^|\s)(?:-p|protocol|meta l4proto)\s+(udp|tcp)\b/.exec(line)?.[1] ?? (/\b(udp|tcp)\s+(?:dport|sport)\b/.exec(line)?.[1])
    if (proto !== 'tcp') found.udp = true
    if (proto !== 'udp') found.tcp = true
  }
  for (const line of raw.split('\n')) if (/--helper sip\b/.test(line)) mark(line)
  for (const line of rules.split('\n')) if (/ct helper set\s+"?sip/.test(line) || /type "sip"/.test(line)) mark(line)
  return found
}

export function nftablesConfCheck (text: string, path: string): Check {
  const first = text.split('\n').map(l => l.trim()).find(l => l !== '' && !l.startsWith('#')) ?? ''
  const flushes = /^flush ruleset\b/.test(first)
  // The ct-mark accept is what a reload cannot do without: sipalg re-installs its own queue rules.
  const acceptsMedia = /^\s*ct mark and 0xffff0000 == 0x5a100000 accept\b/m.test(text)
  if (!flushes || acceptsMedia) {
    return { name: 'nftables.conf', ok: true, detail: flushes ? `${path} flushes the ruleset and accepts sipalg's media (sipalg re-installs its queue rules after a reload)` : `${path} does not flush the ruleset` }
  }
  return { name: 'nftables.conf', ok: false, warn: true, detail: `${path} starts with "flush ruleset"`, fix: `E209: ${new SipalgError('E209_NFTABLES_CONF_FLUSHES', { path }).message}` }
}

const sh = (cmd: string, args: string[]): { ok: boolean, out: string } => {
  const r = spawnSync(cmd, args, { encoding: 'utf8' })
  return { ok: r.error === undefined && r.status === 0, out: `${r.stdout ?? ''}${r.stderr ?? ''}` }
}

export async function runDoctor (argv: string[]): Promise<number> {
  parseCommand('doctor', argv) // a mistyped flag is a usage error (E100/E101), not a failed check
  const checks: Check[] = []
  const add = (c: Check): void => { checks.push(c) }

  const root = process.getuid?.() === 0
  add({ name: 'root', ok: root, detail: root ? 'running as root' : 'not root', fix: 'run sipalg as root (CAP_NET_ADMIN)' })

  for (const tool of ['iptables', 'nft']) {
    const r = sh(tool, ['--version'])
    add({ name: tool, ok: r.ok, detail: r.ok ? r.out.trim().split('\n')[0] : 'not found', fix: 'apt-get install iptables nftables' })
  }

  let native: { ok: boolean, detail: string }
  try {
    const m = await import('../netfilter/native.js')
    m.loadNative()
    native = { ok: true, detail: 'native addon loads' }
  } catch (e) {
    native = { ok: false, detail: e instanceof SipalgError ? e.message : String(e) }
  }
  add({ name: 'native addon', ok: native.ok, detail: native.detail, fix: 'make build' })

  const nfq = existsSync('/proc/net/netfilter/nfnetlink_queue') || sh('modprobe', ['-n', 'nfnetlink_queue']).ok
  add({ name: 'NFQUEUE', ok: nfq, detail: nfq ? 'nfnetlink_queue available' : 'nfnetlink_queue missing', fix: 'modprobe nfnetlink_queue (kernel CONFIG_NETFILTER_NETLINK_QUEUE)' })

  if (root) {
    const raw = sh('iptables-save', ['-t', 'raw']).out
    const rules = sh('nft', ['list', 'ruleset']).out
    const helper = sipHelperAttached(raw, rules)
    add({ name: 'kernel SIP helper', ok: !helper.udp, detail: helper.udp ? 'nf_conntrack_sip is attached to traffic here' : 'not attached', fix: new SipalgError('E206_KERNEL_HELPER').message })
    // Over TCP the helper would edit the phone's leg of a connection sipalg splices and rewrites.
    add({ name: 'kernel SIP helper on TCP', ok: !helper.tcp, detail: helper.tcp ? 'nf_conntrack_sip is attached to SIP over TCP here' : 'not attached (SIP over TCP is spliced by sipalg; TLS on 5061 is end-to-end and never touched)', fix: new SipalgError('E206_KERNEL_HELPER').message })
  }

  const confPath = nftablesConf()
  if (existsSync(confPath)) {
    let text = ''
    try { text = readFileSync(confPath, 'utf8') } catch { /* unreadable: nothing to say about it */ }
    add(nftablesConfCheck(text, confPath))
  }

  let config: ReturnType<typeof runConfig> | Error
  try { config = runConfig(argv) } catch (e) { config = e as Error }

  if (root && native.ok) {
    // Bind the queue for a moment, exactly as `sipalg run` would, and let go.
    const queue = config instanceof Error ? 0 : config.cfg.queue
    try {
      const { PacketQueue } = await import('../netfilter/queue.js')
      PacketQueue.open({ queue, maxLen: 64 }).close()
      add({ name: 'queue free', ok: true, detail: `nfqueue ${queue} can be bound` })
    } catch (e) {
      add({ name: 'queue free', ok: false, detail: e instanceof SipalgError ? e.message : String(e), fix: `stop the other consumer of queue ${queue} or use another queue number` })
    }
  }

  if (config instanceof SipalgError && config.code !== 'E104_NO_PUBLIC_ADDRESS') {
    add({ name: 'configuration', ok: false, detail: config.message, fix: 'correct the file or flag it names' })
  } else if (config instanceof Error) {
    add({ name: 'public address', ok: false, detail: config instanceof SipalgError ? config.message : String(config), fix: 'pass --public or --outside-if' })
  } else {
    add({ name: 'public address', ok: true, detail: String(config.cfg.public) })
  }

  let failed = 0
  for (const c of checks) {
    if (!c.ok && c.warn !== true) failed++
    process.stdout.write(`${c.ok ? 'ok  ' : c.warn === true ? 'WARN' : 'FAIL'}  ${c.name.padEnd(18)} ${c.detail}${!c.ok && c.fix !== undefined ? `\n      fix: ${c.fix}` : ''}\n`)
  }
  return failed === 0 ? 0 : 1
}
