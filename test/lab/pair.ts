// The two-gateway lab (test/lab/pair.sh) for tests. `gateway('g1')` gives a view of it in the
// shape of the one-gateway Lab, with 'gw' meaning that gateway, so the helpers of
// test/lab/sipalg.ts and test/lab/sip.ts (startSipalg, runCall, tcpdump) work on either node.

import type { ChildProcess, SpawnOptions } from 'node:child_process'
import { spawn } from 'node:child_process'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Lab, newRunId, run, type ExecOptions, type ExecResult } from './lab.js'

export const PAIR_SH = join(dirname(fileURLToPath(import.meta.url)), 'pair.sh')
export type PairRole = 'g1' | 'g2' | 'a' | 'b' | 'store'
export type Gateway = 'g1' | 'g2'
export const STORE_URL = 'redis://198.51.100.10:6379/0'

export class PairLab {
  readonly runId = newRunId()
  readonly dir = mkdtempSync(join(tmpdir(), 'sipalg-pair-'))
  private readonly children = new Set<ChildProcess>()

  static async up (): Promise<PairLab> {
    const p = new PairLab()
    const r = await run('bash', [PAIR_SH, 'up', p.runId, p.dir], { timeoutMs: 30_000 })
    if (r.code !== 0) throw new Error(`pair.sh up failed: ${r.stderr}${r.stdout}`)
    return p
  }

  nsOf (role: PairRole): string { return `sipalg-${this.runId}-${role}` }

  async sh (role: PairRole, cmd: string, args: readonly string[] = [], opts: ExecOptions = {}): Promise<string> {
    const r = await run('ip', ['netns', 'exec', this.nsOf(role), cmd, ...args], opts)
    if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} in ${role}: ${r.stderr}`)
    return r.stdout
  }

  /** Whether the gateway holds the public VIP now. */
  async holdsVip (g: Gateway): Promise<boolean> {
    return (await this.sh(g, 'ip', ['-o', '-4', 'addr', 'show', 'dev', 'wan0'])).includes(' 203.0.113.1/')
  }

  /** The `pid` keepalived, conntrackd or redis-server wrote (or pair.sh wrote for it). */
  async daemonPid (file: string): Promise<number> {
    const r = await run('cat', [join(this.dir, file)])
    return Number(r.stdout.trim())
  }

  /**
   * A gateway's hard failure: keepalived and conntrackd killed, then its links down (sipalg is the
   * test's). In that order: keepalived seeing a link go down first would announce priority 0 on
   * the other links and hand over at once, faster than a real failure. keepalived's parent is
   * frozen before its VRRP child is killed: it would otherwise start a new child if it got to the
   * child's exit before its own SIGKILL, and that child drops the VIPs like a clean stop and lives
   * on in the namespace: whether the VIPs stayed on the dead node's interfaces depended on that race.
   */
  async fail (g: Gateway): Promise<void> {
    const main = await this.daemonPid(`${g}-keepalived-main.pid`)
    if (main > 0) { try { process.kill(main, 'SIGSTOP') } catch { /* gone */ } }
    for (const f of [`${g}-vrrp.pid`, `${g}-keepalived-main.pid`, `${g}-conntrackd.pid`]) {
      const pid = await this.daemonPid(f)
      if (pid > 0) { try { process.kill(pid, 'SIGKILL') } catch { /* gone */ } }
    }
    for (const dev of ['wan0', 'lan0', 'sync0']) await this.sh(g, 'ip', ['link', 'set', dev, 'down'])
  }

  /**
   * The failed gateway boots again, its links still down but the sync link: like any machine that
   * comes back it holds none of the VIPs (the killed keepalived left them on its interfaces, where
   * a restarted sipalg would see the public address and start active next to the real active node).
   */
  async reboot (g: Gateway): Promise<void> {
    for (const [vip, dev] of [['203.0.113.1/24', 'wan0'], ['10.0.1.1/24', 'lan0']]) {
      await run('ip', ['netns', 'exec', this.nsOf(g), 'ip', 'addr', 'del', vip, 'dev', dev])
    }
    await this.sh(g, 'ip', ['link', 'set', 'sync0', 'up'])
  }

  /** Links up again and keepalived started again (it takes the VIPs back by its priority). */
  async recover (g: Gateway): Promise<void> {
    for (const dev of ['wan0', 'lan0', 'sync0']) await this.sh(g, 'ip', ['link', 'set', dev, 'up'])
    const child = spawn('ip', ['netns', 'exec', this.nsOf(g), 'keepalived', '-n', '-l', '-D', '-P', '-f', join(this.dir, `${g}-keepalived.conf`),
      '-p', join(this.dir, `${g}-keepalived.pid`), '-r', join(this.dir, `${g}-vrrp.pid`)], { stdio: 'ignore' })
    this.children.add(child)
  }

  /** The one-gateway Lab shape, 'gw' being `g`. */
  gateway (g: Gateway): Lab {
    const map = (role: string): PairRole => (role === 'gw' ? g : role as PairRole)
    const view: Record<string, unknown> = {
      runId: this.runId,
      ns: (role: string) => this.nsOf(map(role)),
      exec: async (role: string, cmd: string, args: readonly string[] = [], opts: ExecOptions = {}): Promise<ExecResult> =>
        await run('ip', ['netns', 'exec', this.nsOf(map(role)), cmd, ...args], opts),
      sh: async (role: string, cmd: string, args: readonly string[] = [], opts: ExecOptions = {}) => await this.sh(map(role), cmd, args, opts),
      spawn: (role: string, cmd: string, args: readonly string[] = [], opts: SpawnOptions = {}): ChildProcess => {
        const child = spawn('ip', ['netns', 'exec', this.nsOf(map(role)), cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'], ...opts })
        this.children.add(child)
        child.on('exit', () => { this.children.delete(child) })
        return child
      },
      stop: async (child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM', graceMs = 3000) => { await stopChild(child, signal, graceMs) },
      sendUdp: async (...a: Parameters<Lab['sendUdp']>) => await Lab.prototype.sendUdp.apply(view, a),
      flushConntrack: async () => {
        for (const gw of ['g1', 'g2'] as const) await run('ip', ['netns', 'exec', this.nsOf(gw), 'conntrack', '-F'])
      }
    }
    return view as unknown as Lab
  }

  async down (): Promise<void> {
    for (const c of this.children) await stopChild(c, 'SIGKILL', 1000)
    await run('bash', [PAIR_SH, 'down', this.runId, this.dir], { timeoutMs: 30_000 })
  }
}

async function stopChild (child: ChildProcess, signal: NodeJS.Signals, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return
  const gone = new Promise<void>(resolve => { child.once('exit', () => { resolve() }) })
  try { process.kill(child.pid, signal) } catch { return }
  const timer = setTimeout(() => { try { if (child.pid !== undefined) process.kill(child.pid, 'SIGKILL') } catch { /* gone */ } }, graceMs)
  await gone
  clearTimeout(timer)
}
