// One worker of a multi-worker gateway (docs/workers.md), as `sipalg run` sees it: which queue it
// reads, which media and signalling ports it may hand out, where its state and sockets live, and
// the handoff of packets whose phone another worker owns. The supervisor (src/workers/supervisor.ts)
// starts each worker as `sipalg run` with the same flags and SIPALG_WORKER=i/n in its environment.

import { availableParallelism } from 'node:os'
import type { Server } from 'node:net'
import type { Config } from '../config.js'
import { checkWorkersFit, insideOf } from '../config.js'
import type { Verdict, KernelElement } from '../alg.js'
import { parsePortRange, type PortRange } from '../validate.js'
import { defaultSocketPath, defaultStatePath } from '../cli/control.js'
import type { QueuedPacket } from '../netfilter/queue.js'
import { elementOwner, mediaSlice, ownsSignallingPort, packetOwner } from './shard.js'
import { HandoffClient, serveHandoff, type VerdictSink } from './handoff.js'
import type { WorkerSelfStatus } from '../status.js'

export const WORKER_ENV = 'SIPALG_WORKER'

/** `workers: auto` is one per core; a number is taken as it is. */
export const resolveWorkers = (setting: Config['workers'], cores = availableParallelism()): number =>
  setting === 'auto' ? Math.max(1, cores) : setting

/** "i/n" from the supervisor; null in a single-worker sipalg. */
export function workerFromEnv (env: NodeJS.ProcessEnv = process.env): { index: number, count: number } | null {
  const m = /^(\d{1,3})\/(\d{1,3})$/.exec(env[WORKER_ENV] ?? '')
  if (m === null) return null
  const index = Number(m[1])
  const count = Number(m[2])
  return count > 1 && index < count ? { index, count } : null
}

export const baseSocketPath = (cfg: Config): string => cfg.controlSocket ?? defaultSocketPath(cfg.table, cfg.queue)
const baseStatePath = (cfg: Config): string => cfg.stateFile ?? defaultStatePath(cfg.table, cfg.queue)

/** Worker i's sockets and state file, next to the gateway's own (the supervisor answers on that one). */
export function workerPaths (cfg: Config, i: number): { control: string, handoff: string, state: string } {
  const sock = baseSocketPath(cfg)
  return { control: `${sock}.w${i}`, handoff: `${sock}.h${i}`, state: `${baseStatePath(cfg)}.w${i}` }
}

/** The gateway's config as worker i of n runs it: its own queue, media slice, state and socket; no ready file or metrics (the supervisor's). */
export function workerConfig (cfg: Config, i: number, n: number): Config {
  const range = parsePortRange(cfg.mediaPorts)
  checkWorkersFit(n, range, cfg.queue)
  const slice = mediaSlice(range, i, n) as PortRange
  const paths = workerPaths(cfg, i)
  // The gateway-wide limits are shared out; the per-host ones hold as they are (a host has one owner).
  const limits = { ...cfg.limits, maxCalls: Math.ceil(cfg.limits.maxCalls / n), callsPerSecond: Math.ceil(cfg.limits.callsPerSecond / n) }
  return { ...cfg, queue: cfg.queue + i, mediaPorts: `${slice.lo}-${slice.hi}`, stateFile: paths.state, controlSocket: paths.control, readyFile: null, metricsPort: 0, limits }
}

/** What `sipalg run` does differently as worker `index` of `count`. */
/** How often a worker tells its supervisor it is alive; silent for HUNG_MS, it is killed (E323). */
export const ALIVE_EVERY_MS = 1000
export const HUNG_MS = 10_000

export class WorkerShard {
  private alive: NodeJS.Timeout | null = null
  private handoff: HandoffClient | null = null
  private server: Server | null = null
  private readonly isInside: (ip: string) => boolean
  private readonly media: { lo: number, hi: number }
  private readonly paths: string[]

  constructor (readonly index: number, readonly count: number, gateway: Config) {
    this.isInside = insideOf(gateway)
    this.media = parsePortRange(gateway.mediaPorts)
    this.paths = Array.from({ length: count }, (_, i) => workerPaths(gateway, i).handoff)
  }

  /** SIP over TCP is spliced by worker 0 alone (one transparent listener): it owns every TCP-signalled call. */
  get runsTcp (): boolean { return this.index === 0 }

  /** A public signalling port this worker may hand out: its interleave, never in the media range. */
  signallingPort = (port: number): boolean =>
    ownsSignallingPort(port, this.index, this.count) && (port < this.media.lo || port > this.media.hi)

  /** Restart adoption: only the elements of this worker's phones. */
  ownsElement = (e: KernelElement): boolean => elementOwner(e, this.count) === this.index

  /**
   * Starts the handoff both ways: packets this worker reads for others get their verdicts on `sink`
   * when the owner answers; packets others read for this worker are decided by `decide` (the ALG
   * plus the kernel commit).
   */
  start (sink: VerdictSink, decide: (packets: Buffer[]) => Verdict[]): void {
    const client = new HandoffClient(this.paths, sink)
    this.handoff = client
    this.server = serveHandoff(this.paths[this.index], decide, n => { client.served += n })
  }

  /** The packets of a batch this worker owns (or nobody does); the rest go to their owners, answered later. */
  keepOwn (batch: QueuedPacket[]): QueuedPacket[] {
    const handoff = this.handoff
    if (handoff === null) return batch
    let own: QueuedPacket[] | null = null
    for (let i = 0; i < batch.length; i++) {
      const p = batch[i]
      const owner = packetOwner(p.payload, this.isInside, this.count)
      if (owner === null || owner === this.index) { own?.push(p); continue }
      if (own === null) own = batch.slice(0, i)
      handoff.send(owner, p.id, p.payload)
    }
    return own ?? batch
  }

  /**
   * One healer for the gateway's ruleset (src/netfilter/watch.ts): worker 0. Two would race to
   * rebuild the shared table and restore the queue rules twice.
   */
  get watchesRuleset (): boolean { return this.index === 0 }

  /** Worker 0 rebuilt the shared table: through the supervisor, the others put their elements back. */
  tableRebuilt (): void { process.send?.({ sipalgTableRebuilt: this.index }) }

  /** `replay` runs each time another worker rebuilt the table (its elements went with the old one). */
  onTableRebuilt (replay: () => void): void {
    process.on('message', (m: unknown) => { if ((m as { sipalgReplay?: boolean } | null)?.sipalgReplay === true) replay() })
  }

  /**
   * The supervisor counts a worker up once it says so; from then on the worker says every
   * ALIVE_EVERY_MS that its event loop turns (a silent one is killed: E323).
   */
  ready (): void {
    process.send?.({ sipalgWorkerReady: this.index })
    this.alive ??= setInterval(() => { process.send?.({ sipalgAlive: this.index }) }, ALIVE_EVERY_MS).unref()
  }

  /** The status document's `worker` section (merged by the supervisor into `workers`). */
  stats (): WorkerSelfStatus {
    return { index: this.index, count: this.count, pid: process.pid, handoff: this.handoff?.stats() ?? null }
  }

  close (): void {
    if (this.alive !== null) clearInterval(this.alive)
    this.server?.close()
    this.handoff?.close()
  }
}
