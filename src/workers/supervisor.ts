// `sipalg run` with workers: N > 1 (docs/workers.md): this process binds no queue. It starts N
// workers — the same `sipalg run` command, told its seat by SIPALG_WORKER=i/n — restarts one that
// dies (with a back-off; the new one adopts its shard's calls like a restarted daemon), and answers
// the gateway's control socket and metrics port for all of them. Processes, not threads: a worker
// that crashes, native code included, takes no other down.

import { fork, type ChildProcess } from 'node:child_process'
import { rmSync, writeFileSync } from 'node:fs'
import type { Logger } from 'pino'
import { checkWorkersFit, type Config } from '../config.js'
import { SipalgError } from '../errors.js'
import { createLogger, logCoded } from '../log.js'
import { parsePortRange } from '../validate.js'
import { preflight } from '../cli/preflight.js'
import { askControl, serveControl, streamControl, type StreamClient } from '../cli/control.js'
import { renderMetrics, serveMetricsText, sumMetrics, type MetricsSnapshot } from '../metrics.js'
import { mergeStatus, type Seat, type WorkerDoc } from './merge.js'
import { ALIVE_EVERY_MS, baseSocketPath, HUNG_MS, resolveWorkers, WORKER_ENV, workerPaths } from './worker.js'
import { startNotifier, type Notifier } from '../cli/systemd.js'

/** Back-off before restart k of a worker that keeps dying: 0.1 s doubling to 5 s; reset after a minute up. */
export const restartDelayMs = (consecutive: number): number => Math.min(5000, 100 * 2 ** Math.min(consecutive, 6))
const STABLE_MS = 60_000

interface Worker extends Seat {
  child: ChildProcess | null
  startedAt: number
  consecutive: number
  everReady: boolean
  timer: NodeJS.Timeout | null
  /** When it last said it was alive (or came up). */
  aliveAt: number
}

export async function runSupervisor (argv: string[], cfg: Config, pretty: boolean): Promise<number> {
  const n = resolveWorkers(cfg.workers)
  const log = createLogger(cfg.logLevel, pretty)
  // A gateway pair replicates one process's state (docs/ha.md); its store has no notion of shards.
  if (cfg.stateStore !== null) throw new SipalgError('E319_WORKERS_WITH_STATE_STORE', { workers: n })
  checkWorkersFit(n, parsePortRange(cfg.mediaPorts), cfg.queue)
  await preflight({ queue: cfg.queue, metricsPort: cfg.metricsPort, tcpListenPort: cfg.tcp ? cfg.tcpListenPort : null, controlSocket: baseSocketPath(cfg), readyFile: cfg.readyFile, stateFile: workerPaths(cfg, 0).state }, log)
  const s = supervise({ cfg, n, log, module: process.argv[1], args: ['run', ...argv], notifier: startNotifier(log) })
  process.on('SIGHUP', s.reload)
  process.once('SIGTERM', () => { s.stop('SIGTERM') })
  process.once('SIGINT', () => { s.stop('SIGINT') })
  return await s.done
}

export interface SuperviseOptions {
  cfg: Config
  n: number
  log: Logger
  /** What each worker runs: `node <module> <args>` with SIPALG_WORKER=i/n. */
  module: string
  args: string[]
  /** Node flags of the workers (default: this process's, e.g. --cpu-prof). */
  execArgv?: string[]
  /** systemd's notifications (READY once every worker is up, the watchdog from this loop). */
  notifier?: Notifier | null
  /** A worker silent this long is killed and restarted (default HUNG_MS). */
  hungMs?: number
}

export interface Supervisor {
  /** Resolves to the exit code once every worker has gone. */
  done: Promise<number>
  stop: (why: string, code?: number) => void
  /** SIGHUP to every worker: each re-reads the config. */
  reload: () => void
}

/** Starts the workers and the gateway's control socket and metrics; the checks are the caller's. */
export function supervise (o: SuperviseOptions): Supervisor {
  const { cfg, n, log } = o
  const socketPath = baseSocketPath(cfg)
  const startedAt = Date.now()
  const counters = { worker_restarts: 0 }
  let stopping = false
  let exitCode = 0
  let finish: () => void = () => {}
  const gone = new Promise<void>(resolve => { finish = resolve })
  const workers: Worker[] = Array.from({ length: n }, (_, index) => ({
    index, queue: cfg.queue + index, pid: null, up: false, restarts: 0, lastExit: null, child: null, startedAt: 0, consecutive: 0, everReady: false, timer: null, aliveAt: 0
  }))
  const tracers = new Set<Tracer>()

  const start = (w: Worker): void => {
    w.timer = null
    const child = fork(o.module, o.args, {
      env: { ...process.env, [WORKER_ENV]: `${w.index}/${n}` },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      execArgv: o.execArgv ?? process.execArgv
    })
    w.child = child
    w.pid = child.pid ?? null
    w.startedAt = Date.now()
    child.on('message', (m: unknown) => {
      if ((m as { sipalgAlive?: number } | null)?.sipalgAlive === w.index) { w.aliveAt = Date.now(); return }
      if (typeof (m as { sipalgTableRebuilt?: number } | null)?.sipalgTableRebuilt === 'number') {
        for (const other of workers) if (other !== w && other.up) other.child?.send({ sipalgReplay: true })
        return
      }
      if ((m as { sipalgWorkerReady?: number } | null)?.sipalgWorkerReady !== w.index) return
      w.up = true
      w.aliveAt = Date.now()
      const first = !w.everReady
      w.everReady = true
      for (const t of tracers) t.attach(w)
      if (first) onFirstReady(w)
    })
    child.on('exit', (code, signal) => {
      w.up = false
      w.child = null
      w.pid = null
      w.lastExit = { at: new Date().toISOString(), code, signal }
      if (stopping) { if (workers.every(x => x.child === null)) finish(); return }
      if (!w.everReady) {
        // It never came up (a busy queue, a bad path: it logged why): the gateway cannot run.
        log.info({ worker: w.index, exitCode: code, signal }, 'a worker failed to start (its error is logged above); stopping the others')
        stop('worker failed to start', code === null || code === 0 ? 70 : code)
        return
      }
      if (Date.now() - w.startedAt > STABLE_MS) w.consecutive = 0
      const delayMs = restartDelayMs(w.consecutive)
      w.consecutive++
      w.restarts++
      counters.worker_restarts++
      logCoded(log, 'error', 'E318_WORKER_DIED_RESTARTING', { worker: w.index, queue: w.queue, exitCode: code, signal, delayMs, restarts: w.restarts })
      w.timer = setTimeout(() => { start(w) }, delayMs)
    })
  }

  // Worker 0 first: it creates the table; the others find it there.
  const onFirstReady = (w: Worker): void => {
    if (w.index === 0) for (const other of workers.slice(1)) start(other)
    if (!workers.every(x => x.everReady)) return
    if (cfg.readyFile !== null) writeFileSync(cfg.readyFile, `${process.pid}\n`)
    o.notifier?.ready(`${n} workers on queues ${cfg.queue}-${cfg.queue + n - 1}`)
    log.info({ workers: n, queues: `${cfg.queue}-${cfg.queue + n - 1}`, pids: workers.map(x => x.pid) }, 'sipalg running with workers')
  }

  const docs = async (command: string): Promise<unknown[]> =>
    await Promise.all(workers.map(async w => w.up ? await askControl(workerPaths(cfg, w.index).control, command).catch(() => null) : null))
  const status = async (): Promise<WorkerDoc> => mergeStatus(workers, (await docs('status')) as Array<WorkerDoc | null>,
    { uptimeSeconds: Math.round((Date.now() - startedAt) / 1000), publicIp: cfg.public ?? '', counters })
  const metricsText = async (): Promise<string> => {
    const snaps = ((await docs('metrics')) as Array<MetricsSnapshot | null>).filter((s): s is MetricsSnapshot => s !== null && Array.isArray(s.latency?.counts))
    return renderMetrics(sumMetrics(snaps, { counters, gauges: { workers: n, workers_up: workers.filter(w => w.up).length } }))
  }
  const control = serveControl(socketPath, { status }, {
    trace: client => {
      const t = new Tracer(client, cfg, log)
      client.send({ trace: 'started', publicIp: cfg.public, workers: n })
      tracers.add(t)
      for (const w of workers) if (w.up) t.attach(w)
      client.onClose(() => { tracers.delete(t); t.stop() })
    }
  })
  const metrics = cfg.metricsPort === 0 ? null : serveMetricsText(cfg.metricsPort, metricsText)

  // A worker whose event loop is stuck handles nothing and does not exit by itself: kill it, and
  // the exit handler restarts it like one that crashed.
  const hungMs = o.hungMs ?? HUNG_MS
  const hangCheck = setInterval(() => {
    const now = Date.now()
    for (const w of workers) {
      if (!w.up || w.child === null || now - w.aliveAt < hungMs) continue
      logCoded(log, 'error', 'E323_WORKER_HUNG_KILLED', { worker: w.index, queue: w.queue, silentMs: now - w.aliveAt })
      w.up = false
      w.child.kill('SIGKILL')
    }
  }, Math.min(ALIVE_EVERY_MS, hungMs)).unref()

  const stop = (why: string, code = 0): void => {
    if (stopping) return
    stopping = true
    clearInterval(hangCheck)
    o.notifier?.stopping()
    o.notifier?.close()
    exitCode = code
    log.info({ why }, 'stopping the workers')
    for (const w of workers) {
      if (w.timer !== null) clearTimeout(w.timer)
      w.child?.kill('SIGTERM')
    }
    // A worker that does not stop in time is killed: the supervisor never hangs on one.
    setTimeout(() => { for (const w of workers) w.child?.kill('SIGKILL') }, 10_000).unref()
    if (workers.every(w => w.child === null)) finish()
  }
  start(workers[0])

  const done = gone.then(() => {
    for (const t of tracers) t.stop()
    control.close()
    metrics?.close()
    rmSync(socketPath, { force: true })
    if (cfg.readyFile !== null) rmSync(cfg.readyFile, { force: true })
    log.info({ restarts: counters.worker_restarts }, 'sipalg stopped; kernel mappings left to expire')
    return exitCode
  })
  return { done, stop, reload: () => { for (const w of workers) w.child?.kill('SIGHUP') } }
}

/** One `sipalg trace` client of the supervisor: every worker's events, a restarted worker's too. */
class Tracer {
  private readonly streams = new Map<number, () => void>()
  constructor (private readonly client: StreamClient, private readonly cfg: Config, private readonly log: Logger) {}

  attach (w: Seat): void {
    this.streams.get(w.index)?.()
    const s = streamControl(workerPaths(this.cfg, w.index).control, 'trace', doc => {
      if ((doc as { trace?: string }).trace === 'started') return
      this.client.send(doc)
    })
    s.done.catch(() => { this.log.debug({ worker: w.index }, 'trace: worker not reachable') })
    this.streams.set(w.index, s.stop)
  }

  stop (): void {
    for (const s of this.streams.values()) s()
    this.streams.clear()
  }
}
