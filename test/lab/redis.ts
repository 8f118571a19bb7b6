// A redis-server of a test's own, in a network namespace of its own (sipalg-<runid>-redis), in the
// foreground as a child (killed by its PID), with its own config, pid file and UNIX socket in a
// temp directory: a socket path reaches across namespaces, so a test in the root namespace talks
// to it without any address. Nothing is saved to disk.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { newRunId } from './lab.js'

export class LabRedis {
  readonly ns: string
  readonly dir: string
  readonly socket: string
  private child: ChildProcess | null = null

  private constructor (runId: string) {
    this.ns = `sipalg-${runId}-redis`
    this.dir = mkdtempSync(join(tmpdir(), 'sipalg-redis-'))
    this.socket = join(this.dir, 'redis.sock')
    writeFileSync(join(this.dir, 'redis.conf'), [
      'port 0', `unixsocket ${this.socket}`, 'unixsocketperm 700', `pidfile ${join(this.dir, 'redis.pid')}`,
      `dir ${this.dir}`, 'save ""', 'appendonly no', 'daemonize no', 'loglevel warning', ''
    ].join('\n'))
  }

  static async start (runId = newRunId()): Promise<LabRedis> {
    const r = new LabRedis(runId)
    const add = spawnSync('ip', ['netns', 'add', r.ns])
    if (add.status !== 0) throw new Error(`ip netns add ${r.ns}: ${add.stderr.toString()}`)
    await r.up()
    return r
  }

  get url (): string { return `redis+unix://${this.socket}?db=0` }
  get pid (): number | undefined { return this.child?.pid }

  /** Starts (again) redis-server; resolves once its socket answers. */
  async up (): Promise<void> {
    rmSync(this.socket, { force: true })
    this.child = spawn('ip', ['netns', 'exec', this.ns, 'redis-server', join(this.dir, 'redis.conf')], { stdio: 'ignore' })
    const until = Date.now() + 5000
    while (!existsSync(this.socket)) {
      if (Date.now() > until) throw new Error('redis-server did not open its socket within 5 s')
      await new Promise(resolve => setTimeout(resolve, 20))
    }
  }

  /** Stops redis-server (by its PID) and waits for it to be gone. */
  async down (): Promise<void> {
    const child = this.child
    this.child = null
    if (child === null || child.exitCode !== null) return
    await new Promise<void>(resolve => { child.once('exit', () => { resolve() }); child.kill('SIGKILL') })
  }

  async stop (): Promise<void> {
    await this.down()
    spawnSync('ip', ['netns', 'del', this.ns])
    rmSync(this.dir, { recursive: true, force: true })
  }
}
