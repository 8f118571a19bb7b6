// `sipalg rules install|uninstall` (flags in src/cli/commands.ts); `install --print [--nft]` shows the
// exact text install would apply (or its nft form) and applies nothing.
// Adds/removes sipalg's own iptables chain (spec §2) by running iptables/sipalg-rules.sh from the
// package root, which does the work (and is usable on its own, e.g. from a systemd unit).

import { spawn } from 'node:child_process'
import { resolveWorkers } from '../workers/worker.js'
import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { SipalgError } from '../errors.js'
import { parseCommand } from './commands.js'
import { defaults } from '../config.js'
import { removeInterception } from '../netfilter/tproxy.js'
import { tproxySpec } from '../tcp/daemon.js'

export const RULES_SCRIPT_NAME = join('iptables', 'sipalg-rules.sh')

/**
 * The rules script: found by walking up from this module (src/cli/rules.ts when run from source,
 * dist/src/cli/rules.js when compiled) to the package root that holds iptables/sipalg-rules.sh.
 */
export function rulesScriptPath (from: string = dirname(fileURLToPath(import.meta.url))): string {
  let dir = from
  for (let i = 0; i < 6; i++) {
    const candidate = join(dir, RULES_SCRIPT_NAME)
    if (existsSync(candidate)) return candidate
    const up = dirname(dir)
    if (up === dir) break
    dir = up
  }
  throw new SipalgError('E205_IPTABLES', { what: 'rules', why: `${RULES_SCRIPT_NAME} not found above ${from}` })
}

export interface RulesIo {
  stdout?: NodeJS.WritableStream
  stderr?: NodeJS.WritableStream
  /** For tests: the uid to check instead of process.getuid(). */
  uid?: number
  /** For tests: another script path. */
  script?: string
  /** For tests: command prefix for the script, e.g. ['ip', 'netns', 'exec', 'sipalg-x-gw']. */
  prefix?: string[]
}

/** Checked flags (src/cli/commands.ts) → the script's arguments. Throws E100 (usage) / E101 (bad flag value). */
export function rulesArgs (argv: string[]): string[] {
  const { positional, flags } = parseCommand('rules', argv)
  const action = positional[0]
  if (action !== 'install' && action !== 'uninstall') {
    throw new SipalgError('E100_USAGE', { detail: `sipalg rules install|uninstall, not "${action}"` })
  }
  const out: string[] = [action]
  if (typeof flags.queue === 'number') out.push('--queue', String(flags.queue))
  if (flags.workers !== undefined) out.push('--workers', String(resolveWorkers(flags.workers as 'auto' | number)))
  if (Array.isArray(flags['sip-ports'])) out.push('--sip-ports', flags['sip-ports'].join(','))
  if (typeof flags['media-mark'] === 'string') out.push('--media-mark', flags['media-mark'])
  if (typeof flags['first-packet-mark'] === 'string') out.push('--first-packet-mark', flags['first-packet-mark'])
  if (flags['fail-closed'] === true) out.push('--fail-closed')
  if (flags.print === true || flags.nft === true) {
    if (action !== 'install' || flags.print !== true) {
      throw new SipalgError('E100_USAGE', { detail: `--print goes with install only, --nft with install --print (sipalg help rules)` })
    }
    out.push('--print', ...(flags.nft === true ? ['--nft'] : []))
  }
  return out
}

/** Runs `sipalg rules ...`. Resolves to the exit code (0); throws SipalgError (E100/E101/E200/E205). */
export async function runRules (argv: string[], io: RulesIo = {}): Promise<number> {
  const args = rulesArgs(argv)
  const uid = io.uid ?? process.getuid?.()
  // --print changes nothing: anyone may look (without root it cannot see FORWARD, so it shows the jump).
  if (uid !== 0 && !args.includes('--print')) throw new SipalgError('E200_NOT_ROOT', { what: `sipalg rules ${args[0]}` })
  const script = io.script ?? rulesScriptPath()
  const stdout = io.stdout ?? process.stdout
  const stderr = io.stderr ?? process.stderr
  const { code, err } = await new Promise<{ code: number | null, err: string }>((resolve) => {
    const cmd = [...(io.prefix ?? []), 'bash', script, ...args]
    const child = spawn(cmd[0] ?? 'bash', cmd.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] })
    let err = ''
    child.stdout.on('data', (d: Buffer) => { stdout.write(d) })
    child.stderr.setEncoding('utf8').on('data', (d: string) => { err += d })
    child.on('error', (e) => resolve({ code: null, err: String(e) }))
    child.on('close', (c) => resolve({ code: c, err }))
  })
  if (code !== 0) {
    const why = err.trim().replace(/^sipalg-rules\.sh: /gm, '') || `exit code ${code ?? 'none'}`
    if (code === 64) stderr.write(err) // usage from the script: should not happen after our own checks
    throw new SipalgError('E205_IPTABLES', { what: `sipalg rules ${args[0]}`, why })
  }
  // The SIP/TCP interception belongs to `sipalg run`, which removes it at stop; after a crash
  // uninstall takes it away (src/tcp/daemon.ts), here in this network namespace: IPv4's, and IPv6's
  // where there is one (each piece only if present, so a host without IPv6 has nothing to remove).
  if (args[0] === 'uninstall' && io.prefix === undefined) for (const family of ['ip', 'ip6'] as const) removeInterception(tproxySpec(defaults, family))
  return 0
}
