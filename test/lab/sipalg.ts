// Starts sipalg on a lab gateway the way an operator would (rules + `sipalg run`), for tests and
// the demo. Everything it starts is tracked by the lab and killed by PID when the lab goes down.

import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { ChildProcess } from 'node:child_process'
import type { Lab } from './lab.js'

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
export const CLI = join(ROOT, 'dist', 'src', 'cli', 'main.js')

export interface SipalgOptions {
  /** Extra `sipalg run` flags. */
  args?: string[]
  /** sipalg.yaml contents (written to a temp file and passed with --config). */
  config?: string
  /** Install the queue rules (default true). */
  rules?: boolean
  ruleArgs?: string[]
  /** Extra environment of the daemon (e.g. systemd's NOTIFY_SOCKET). */
  env?: Record<string, string>
}

export interface Sipalg {
  child: ChildProcess
  dir: string
  socket: string
  log: () => string
  status: () => Promise<StatusJson>
  /** The elements of one of sipalg's maps, as `nft` prints them ("key : data" per element). */
  elements: (map: 'src_nat' | 'any_dnat' | 'peer_dnat' | 'latch_dnat') => Promise<string[]>
  stop: (signal?: NodeJS.Signals) => Promise<void>
}

export interface StatusJson {
  calls: Array<{ callId: string, phone: string, state: string, media: string[], flows: Array<{ far: { ip: string, port: number } | null, in?: { packets: number } | null, out?: { packets: number } | null }> }>
  registrations: unknown[]
  mappings: Record<string, number>
  counters: Record<string, number>
  latencyUs: { packets: number, p50: number, p99: number }
  queue: { packets: number, enobufs: number }
}

export async function installRules (lab: Lab, args: string[] = []): Promise<void> {
  await lab.sh('gw', 'node', [CLI, 'rules', 'install', ...args])
}

export async function startSipalg (lab: Lab, opts: SipalgOptions = {}): Promise<Sipalg> {
  const dir = mkdtempSync(join(tmpdir(), `sipalg-${lab.runId}-`))
  const ready = join(dir, 'ready')
  const socket = join(dir, 'control.sock')
  const args = [CLI, 'run', '--public', '203.0.113.1', '--inside', '10.0.1.0/24', '--outside-if', 'wan0',
    '--inside-if', 'lan0', '--ready-file', ready, '--control-socket', socket, ...(opts.args ?? [])]
  // Each test's daemon keeps its own call state (the default path is shared by every namespace).
  if (!args.includes('--state-file')) args.push('--state-file', join(dir, 'state.json'))
  if (opts.config !== undefined) {
    writeFileSync(join(dir, 'sipalg.yaml'), opts.config)
    args.push('--config', join(dir, 'sipalg.yaml'))
  }
  if (opts.rules !== false) await installRules(lab, opts.ruleArgs)
  const tableAt = args.indexOf('--table')
  const table = tableAt < 0 ? 'sipalg' : args[tableAt + 1]
  const child = lab.spawn('gw', 'node', args, { stdio: ['ignore', 'pipe', 'pipe'], ...(opts.env === undefined ? {} : { env: { ...process.env, ...opts.env } }) })
  let log = ''
  child.stdout?.on('data', (c: Buffer) => { log += c.toString() })
  child.stderr?.on('data', (c: Buffer) => { log += c.toString() })
  // Ready within a second on a quiet machine; 20 s leaves room for a supervisor and its workers
  // starting on a CI machine busy with another lab (10 s was once too short).
  const deadline = Date.now() + 20_000
  while (!existsSync(ready)) {
    if (child.exitCode !== null || Date.now() > deadline) {
      throw new Error(`sipalg did not start (exit ${String(child.exitCode)}):\n${log}`)
    }
    await new Promise(resolve => setTimeout(resolve, 50))
  }
  const s: Sipalg = {
    child,
    dir,
    socket,
    log: () => log,
    status: async () => JSON.parse(await lab.sh('gw', 'node', [CLI, 'status', '--json', '--socket', socket])) as StatusJson,
    elements: async map => {
      const out = await lab.sh('gw', 'nft', ['list', 'map', 'ip', table, map])
      const m = /elements = \{([^}]*)\}/s.exec(out)
      if (m === null) return []
      return m[1].split(',').map(e => e.replace(/\s+/g, ' ').replace(/ timeout \S+ expires \S+/, '').trim()).filter(e => e !== '')
    },
    stop: async (signal = 'SIGTERM') => {
      await lab.stop(child, signal)
      rmSync(dir, { recursive: true, force: true })
    }
  }
  return s
}
