// Startup checks of everything `sipalg run` binds or writes, done before it binds the queue for
// good or creates its nft table: a busy queue, a taken port or an unusable path then ends sipalg
// with a catalogue error naming the key, and nothing is left behind (no bound queue, no table, no
// stale socket).

import { accessSync, constants, existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { createConnection, createServer } from 'node:net'
import { dirname } from 'node:path'
import type { Logger } from 'pino'
import { SipalgError } from '../errors.js'
import { logCoded } from '../log.js'
import { PacketQueue } from '../netfilter/queue.js'

export interface PreflightPaths {
  /** The nfqueue: bound for a moment (as `sipalg doctor` does) so a busy one fails before the table exists. */
  queue: number
  metricsPort: number
  /** The transparent listener's port (src/tcp/daemon.ts); null with tcp: false. */
  tcpListenPort: number | null
  controlSocket: string
  readyFile: string | null
  stateFile: string
}

const why = (e: unknown): string => (e as NodeJS.ErrnoException).code ?? (e as Error).message

/** Binds a port for a moment on the address its listener uses; `taken` is the error when that fails. */
async function checkPort (port: number, host: string, taken: (why: string) => SipalgError): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const s = createServer()
    s.once('error', e => { reject(taken(why(e))) })
    s.listen(port, host, () => { s.close(() => { resolve() }) })
  })
}

/**
 * The directory exists (created the way the daemon would, mkdir -p) and a file can be created in
 * it: tried for real, because root passes every permission check yet still meets read-only mounts.
 */
function checkWritable (key: string, path: string): void {
  const unusable = (why: string): SipalgError => new SipalgError('E108_PATH_UNUSABLE', { key, path, why })
  if (existsSync(path) && statSync(path).isDirectory()) throw unusable('EISDIR')
  const dir = dirname(path)
  try { mkdirSync(dir, { recursive: true }) } catch (e) {
    // mkdir -p over a regular file says EEXIST: the real trouble is that it is not a directory.
    throw unusable(why(e) === 'EEXIST' ? 'ENOTDIR' : why(e))
  }
  try {
    const probe = `${path}.${process.pid}.probe`
    writeFileSync(probe, '')
    rmSync(probe)
    if (existsSync(path) && !statSync(path).isSocket()) accessSync(path, constants.W_OK)
  } catch (e) {
    throw unusable(why(e))
  }
}

/** A control socket another process still answers on belongs to a running sipalg: never steal it. */
async function checkSocketFree (path: string): Promise<void> {
  if (!existsSync(path)) return
  const alive = await new Promise<boolean>(resolve => {
    const c = createConnection(path)
    c.once('connect', () => { c.destroy(); resolve(true) })
    c.once('error', () => { resolve(false) })
  })
  if (alive) throw new SipalgError('E301_ALREADY_RUNNING', { path })
}

/**
 * A state file that cannot be parsed is moved aside (kept for a post-mortem) and sipalg starts
 * without it: refusing to start would keep the gateway without an ALG over a file it rewrites
 * within a second anyway.
 */
function checkStateFile (path: string, log: Logger): void {
  if (!existsSync(path)) return
  let problem: string | null = null
  try {
    const s = JSON.parse(readFileSync(path, 'utf8')) as { version?: unknown } | null
    if (s === null || typeof s !== 'object' || s.version !== 1) problem = 'not a sipalg state file (version 1)'
  } catch (e) { problem = why(e) }
  if (problem !== null) {
    const movedTo = `${path}.corrupt`
    try { rmSync(movedTo, { recursive: true, force: true }); renameSync(path, movedTo) } catch (m) {
      throw new SipalgError('E108_PATH_UNUSABLE', { key: 'state_file', path, why: why(m) })
    }
    logCoded(log, 'warn', 'E302_STATE_CORRUPT', { path, why: problem, movedTo })
  }
}

/** Throws the first failure as a SipalgError; logs (E302) and recovers from a corrupt state file. */
export async function preflight (p: PreflightPaths, log: Logger): Promise<void> {
  PacketQueue.open({ queue: p.queue, maxLen: 64 }).close()
  if (p.metricsPort !== 0) await checkPort(p.metricsPort, '127.0.0.1', w => new SipalgError('E107_PORT_IN_USE', { key: 'metrics_port', port: p.metricsPort, why: w }))
  // The transparent listener binds the wildcard address (src/netfilter/transparent.ts): so does the check.
  // A live sipalg on the control socket is the likeliest owner of a taken listener port: said first.
  await checkSocketFree(p.controlSocket)
  const tcpPort = p.tcpListenPort
  if (tcpPort !== null) await checkPort(tcpPort, '0.0.0.0', w => new SipalgError('E320_TCP_LISTEN_PORT_IN_USE', { port: tcpPort, why: w }))
  checkWritable('control_socket', p.controlSocket)
  if (p.readyFile !== null) checkWritable('ready_file', p.readyFile)
  checkStateFile(p.stateFile, log)
  checkWritable('state_file', p.stateFile)
}
