// The sipalg lab (spec §1) for tap tests: a NAT gateway and four phones in network namespaces named
// sipalg-<run id>-<role>, built and removed by lab.sh next to this file.
//
//   const lab = await Lab.up({ forwardPolicy: 'drop' })
//   t.teardown(() => lab.down())
//   await lab.exec('a', 'ip', ['-br', 'addr'])
//   const p = lab.spawn('gw', 'node', ['dist/src/cli/main.js', 'run', ...])   // killed by PID on down()
//
// Safety: every command runs through `ip netns exec <one of this lab's namespaces>`; nothing touches the
// root namespace. Processes started with spawn() are tracked and killed by PID (never by name) on down(),
// on process exit and on SIGINT/SIGTERM, and the namespaces are deleted then too.
import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

export type Role = 'gw' | 'a' | 'a2' | 'b' | 'c'
export type ForwardPolicy = 'accept' | 'drop'
export const ROLES: readonly Role[] = ['gw', 'a', 'a2', 'b', 'c']

/** Lab addresses (spec §1). */
export const ADDR = {
  gwInside: '10.0.1.1',
  gwPublic: '203.0.113.1',
  a: '10.0.1.23',
  a2: '10.0.1.24',
  b: '203.0.113.9',
  c: '203.0.113.10',
  insideNet: '10.0.1.0/24',
  outsideNet: '203.0.113.0/24',
} as const

/** Lab IPv6 addresses (documentation prefix 2001:db8::/32; routed, not NATed). */
export const ADDR6 = {
  gwInside: '2001:db8:1::1',
  gwOutside: '2001:db8:2::1',
  a: '2001:db8:1::23',
  a2: '2001:db8:1::24',
  b: '2001:db8:2::9',
  c: '2001:db8:2::10',
  insideNet: '2001:db8:1::/64',
  outsideNet: '2001:db8:2::/64'
} as const

/** The address of a phone, or the gateway's inside (lan0) address for 'gw'. */
export function addrOf (role: Role): string {
  return role === 'gw' ? ADDR.gwInside : ADDR[role]
}

/** Interface each role uses: lan0/wan0 on the gateway, eth0 on every phone. */
export const IFACE = { gwInside: 'lan0', gwOutside: 'wan0', phone: 'eth0' } as const

export const LAB_SH = join(dirname(fileURLToPath(import.meta.url)), 'lab.sh')

export interface LabOptions {
  forwardPolicy?: ForwardPolicy
  /** Letters/digits only, ≤ 24 chars; default: 6 random hex chars + pid. */
  runId?: string
}

export interface ExecOptions {
  /** Kill (SIGKILL) after this many ms; default 30,000. */
  timeoutMs?: number
  /** Written to stdin, then stdin is closed. */
  input?: string
  cwd?: string
  env?: NodeJS.ProcessEnv
}

export interface ExecResult {
  /** Exit code; null when killed by a signal (see signal/timedOut). */
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
  timedOut: boolean
}

export function newRunId (): string {
  return randomBytes(3).toString('hex') + String(process.pid)
}

/** Runs a command (no shell), collects output, kills it by PID after timeoutMs. */
export function run (cmd: string, args: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
  return new Promise((resolve) => {
    const timeoutMs = opts.timeoutMs ?? 30_000
    const child = spawn(cmd, args, {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    let timedOut = false
    child.stdout?.setEncoding('utf8').on('data', (d: string) => { stdout += d })
    child.stderr?.setEncoding('utf8').on('data', (d: string) => { stderr += d })
    if (opts.input !== undefined) child.stdin?.end(opts.input)
    const timer = setTimeout(() => {
      timedOut = true
      if (child.pid !== undefined) { try { process.kill(child.pid, 'SIGKILL') } catch { /* gone */ } }
    }, timeoutMs)
    child.on('error', (err) => {
      clearTimeout(timer)
      resolve({ code: 127, signal: null, stdout, stderr: stderr + String(err), timedOut })
    })
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, stdout, stderr, timedOut })
    })
  })
}

// ---- process-wide cleanup of every lab that is still up
const liveLabs = new Set<Lab>()
let handlersInstalled = false

function cleanupAllSync (): void {
  for (const lab of [...liveLabs]) lab.downSync()
}

function installHandlers (): void {
  if (handlersInstalled) return
  handlersInstalled = true
  process.on('exit', cleanupAllSync)
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    const onSignal = (): void => {
      cleanupAllSync()
      process.removeListener(sig, onSignal)
      process.kill(process.pid, sig) // default action now: die by the same signal
    }
    process.on(sig, onSignal)
  }
}

export class Lab {
  readonly runId: string
  readonly forwardPolicy: ForwardPolicy
  private readonly children = new Set<ChildProcess>()
  private isUp = true

  private constructor (runId: string, forwardPolicy: ForwardPolicy) {
    this.runId = runId
    this.forwardPolicy = forwardPolicy
  }

  /** Builds the lab (lab.sh up). Rejects with lab.sh's output if that fails (nothing is left behind). */
  static async up (opts: LabOptions = {}): Promise<Lab> {
    const runId = opts.runId ?? newRunId()
    if (!/^[A-Za-z0-9]{1,24}$/.test(runId)) throw new Error(`bad lab run id ${runId}`)
    const policy = opts.forwardPolicy ?? 'accept'
    installHandlers()
    const lab = new Lab(runId, policy)
    liveLabs.add(lab) // before "up": a signal during setup still removes what was built
    const r = await run('bash', [LAB_SH, 'up', runId, '--forward-policy', policy], { timeoutMs: 30_000 })
    if (r.code !== 0) {
      lab.downSync()
      throw new Error(`lab.sh up ${runId} failed (${r.code ?? r.signal}): ${r.stderr}${r.stdout}`)
    }
    return lab
  }

  /** Namespace name of a role: sipalg-<runId>-<role>. */
  ns (role: Role): string {
    if (!ROLES.includes(role)) throw new Error(`unknown lab role ${String(role)}`)
    return `sipalg-${this.runId}-${role}`
  }

  /** Runs cmd inside the role's namespace and collects its output (never rejects; see code/timedOut). */
  exec (role: Role, cmd: string, args: readonly string[] = [], opts: ExecOptions = {}): Promise<ExecResult> {
    this.assertUp()
    return run('ip', ['netns', 'exec', this.ns(role), cmd, ...args], opts)
  }

  /** Like exec, but rejects unless the command exits 0. Resolves to stdout. */
  async sh (role: Role, cmd: string, args: readonly string[] = [], opts: ExecOptions = {}): Promise<string> {
    const r = await this.exec(role, cmd, args, opts)
    if (r.code !== 0) {
      throw new Error(`[${this.ns(role)}] ${cmd} ${args.join(' ')} -> ${r.timedOut ? 'timeout' : r.code ?? r.signal}: ${r.stderr}`)
    }
    return r.stdout
  }

  /**
   * Starts a long-running process inside the role's namespace. `ip netns exec` execs the command, so
   * child.pid is the command's own PID; it is tracked and killed by PID on down().
   */
  spawn (role: Role, cmd: string, args: readonly string[] = [], opts: SpawnOptions = {}): ChildProcess {
    this.assertUp()
    const child = spawn('ip', ['netns', 'exec', this.ns(role), cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'], ...opts })
    this.children.add(child)
    child.on('exit', () => { this.children.delete(child) })
    child.on('error', () => { this.children.delete(child) })
    return child
  }

  /** Stops a process started with spawn(): signal (default SIGTERM), SIGKILL after graceMs; waits for exit. */
  async stop (child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM', graceMs = 3000): Promise<void> {
    if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
    try { process.kill(child.pid, signal) } catch { return }
    const timer = setTimeout(() => {
      if (child.pid !== undefined) { try { process.kill(child.pid, 'SIGKILL') } catch { /* gone */ } }
    }, graceMs)
    await exited
    clearTimeout(timer)
  }

  /**
   * Sends `count` (≤ 100) UDP datagrams (one datagram each, 20 ms apart) from the role's namespace to
   * ip:port, from `sport` (default: an ephemeral port, the same for all). Uses this Node binary inside
   * the namespace. code != 0 when sending failed, e.g. "ENETUNREACH" (no route).
   */
  sendUdp (role: Role, ip: string, port: number, count = 3, payload = 'sipalg-lab', sport = 0): Promise<ExecResult> {
    const n = Math.max(1, Math.min(100, Math.floor(count)))
    const js = `const d = require('node:dgram'); const s = d.createSocket('udp4');
      const [ip, port, n, sport, payload] = process.argv.slice(1);
      let i = 0;
      s.on('error', e => { console.error(e.code || String(e)); process.exit(1) });
      const next = () => { if (i++ >= Number(n)) { s.close(); return }
        s.send(Buffer.from(payload), Number(port), ip, e => { if (e) { console.error(e.code || String(e)); process.exit(1) } setTimeout(next, 20) }) };
      s.bind(Number(sport), next);`
    return this.exec(role, process.execPath, ['-e', js, ip, String(port), String(n), String(sport), payload], { timeoutMs: 10_000 })
  }

  /** conntrack -F and conntrack -F expect on the gateway (between scenarios). */
  async flushConntrack (): Promise<void> {
    await this.exec('gw', 'conntrack', ['-F'], { timeoutMs: 5000 })
    await this.exec('gw', 'conntrack', ['-F', 'expect'], { timeoutMs: 5000 })
  }

  /** Kills every spawned process (by PID) and deletes the namespaces. Idempotent. */
  async down (): Promise<void> {
    if (!this.isUp) return
    await Promise.all([...this.children].map(c => this.stop(c, 'SIGTERM', 2000)))
    this.downSync()
  }

  /** Synchronous variant for exit/signal handlers. Idempotent. */
  downSync (): void {
    for (const c of this.children) {
      if (c.pid !== undefined && c.exitCode === null && c.signalCode === null) {
        try { process.kill(c.pid, 'SIGKILL') } catch { /* gone */ }
      }
    }
    this.children.clear()
    if (this.isUp || liveLabs.has(this)) {
      spawnSync('bash', [LAB_SH, 'down', this.runId], { stdio: 'ignore', timeout: 30_000 })
    }
    this.isUp = false
    liveLabs.delete(this)
  }

  get running (): boolean { return this.isUp }

  private assertUp (): void {
    if (!this.isUp) throw new Error(`lab ${this.runId} is down`)
  }
}

/** Namespaces named sipalg-<runId>-* that currently exist (for "nothing left behind" checks). */
export async function listLabNamespaces (runId: string): Promise<string[]> {
  const r = await run('ip', ['netns', 'list'], { timeoutMs: 5000 })
  return r.stdout.split('\n').map(l => l.split(' ')[0] ?? '').filter(n => n.startsWith(`sipalg-${runId}-`))
}
