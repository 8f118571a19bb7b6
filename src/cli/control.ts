// The daemon's local control socket: `sipalg status` connects, sends one command line, and reads
// one JSON document back. A unix socket (mode 0600) so only root can read call details.
// Streaming commands (`trace`) keep the connection open and write one JSON document per line
// until the client goes away or the daemon stops.

import { createServer, createConnection, type Server, type Socket } from 'node:net'
import { chmodSync, mkdirSync, rmSync } from 'node:fs'
import { dirname } from 'node:path'
import { SipalgError } from '../errors.js'
import { flagOr, type ParsedArgs } from './args.js'
import { command } from './commands.js'
import type { TraceEvent } from '../trace/ladder.js'

export const defaultSocketPath = (table: string, queue: number): string => `/run/sipalg/${table}-${queue}.sock`
export const defaultStatePath = (table: string, queue: number): string => `/run/sipalg/${table}-${queue}.state.json`

/** --socket, else the default path from --table and --queue (status and trace). */
export function socketPath (args: ParsedArgs, cmd: 'status' | 'trace'): string {
  if (typeof args.flags.socket === 'string') return args.flags.socket
  const def = command(cmd)
  return defaultSocketPath(flagOr(args, def, 'table') as string, flagOr(args, def, 'queue') as number)
}

/** What a streaming handler gets: send documents, learn when the client has gone. */
export interface StreamClient {
  /** Queues one JSON line. Past `maxBuffered` bytes waiting, documents are dropped and counted,
   *  and a {"lost": n} line goes out once the client catches up: a slow reader never grows the daemon. */
  send: (doc: unknown) => void
  onClose: (f: () => void) => void
}

export type StreamHandler = (client: StreamClient) => void

/**
 * The daemon's `trace` stream: each client gets {trace: 'started'}, then every message event while
 * it stays connected. `listen` installs the fan-out on the daemon's Alg (undefined once the last
 * client has gone: the ALG emits no events then); a role change carries it to the next Alg
 * (succeed in src/cli/role.ts), so the clients are the stream's, not the Alg's.
 */
export function traceStream (publicIp: string, listen: (listener: ((e: TraceEvent) => void) | undefined) => void): StreamHandler {
  const clients = new Set<(e: TraceEvent) => void>()
  const fanOut = (e: TraceEvent): void => { for (const send of clients) send(e) }
  return client => {
    client.send({ trace: 'started', publicIp })
    clients.add(client.send)
    listen(fanOut)
    client.onClose(() => {
      clients.delete(client.send)
      if (clients.size === 0) listen(undefined)
    })
  }
}

export interface ControlServer {
  server: Server
  /** Stops listening and ends every open stream. */
  close: () => void
}

const MAX_BUFFERED = 4 * 1024 * 1024

function streamClient (conn: Socket, maxBuffered: number): StreamClient {
  let lost = 0
  conn.on('drain', () => {
    if (lost > 0 && !conn.destroyed) { conn.write(JSON.stringify({ lost }) + '\n'); lost = 0 }
  })
  return {
    send: doc => {
      if (conn.destroyed || conn.writableEnded) return
      if (conn.writableLength > maxBuffered) { lost++; return }
      conn.write(JSON.stringify(doc) + '\n')
    },
    onClose: f => { conn.once('close', f) }
  }
}

export function serveControl (path: string, handlers: Record<string, () => unknown | Promise<unknown>>,
  streams: Record<string, StreamHandler> = {}, maxBuffered = MAX_BUFFERED): ControlServer {
  mkdirSync(dirname(path), { recursive: true })
  rmSync(path, { force: true })
  const open = new Set<Socket>()
  const server = createServer(conn => {
    let line = ''
    conn.setEncoding('utf8')
    conn.setTimeout(2000, () => conn.destroy())
    conn.on('data', (chunk: string) => {
      if (open.has(conn)) return // a stream: nothing more to read
      line += chunk
      if (line.length > 256) { conn.destroy(); return }
      const nl = line.indexOf('\n')
      if (nl < 0) return
      const name = line.slice(0, nl).trim()
      const stream = streams[name]
      if (stream !== undefined) {
        conn.setTimeout(0)
        open.add(conn)
        conn.once('close', () => open.delete(conn))
        stream(streamClient(conn, maxBuffered))
        return
      }
      const handler = handlers[name]
      // A handler may answer later (the supervisor asks its workers first, src/workers/supervisor.ts).
      void Promise.resolve(handler === undefined ? { error: 'unknown command' } : handler())
        .then(doc => doc, (e: unknown) => ({ error: String(e) }))
        .then(doc => { if (!conn.destroyed) conn.end(JSON.stringify(doc) + '\n') })
    })
    conn.on('error', () => conn.destroy())
  })
  server.listen(path, () => chmodSync(path, 0o600))
  server.unref()
  return {
    server,
    close: () => {
      server.close()
      for (const c of open) c.end()
    }
  }
}

export async function askControl (path: string, command: string): Promise<unknown> {
  return await new Promise((resolve, reject) => {
    const conn = createConnection(path)
    let text = ''
    conn.setEncoding('utf8')
    conn.setTimeout(3000, () => { conn.destroy(); reject(new SipalgError('E300_DAEMON_DOWN', { path })) })
    conn.on('connect', () => conn.write(`${command}\n`))
    conn.on('data', (c: string) => { text += c })
    conn.on('end', () => {
      try { resolve(JSON.parse(text)) } catch { reject(new SipalgError('E300_DAEMON_DOWN', { path })) }
    })
    conn.on('error', () => reject(new SipalgError('E300_DAEMON_DOWN', { path })))
  })
}

/**
 * Opens a streaming command: calls onDoc for every JSON line until the daemon ends the stream
 * (resolves) or the socket fails to connect (rejects with E300_DAEMON_DOWN). `stop()` ends it early.
 */
export function streamControl (path: string, command: string, onDoc: (doc: unknown) => void): { done: Promise<void>, stop: () => void } {
  const conn = createConnection(path)
  const done = new Promise<void>((resolve, reject) => {
    let connected = false
    let buf = ''
    conn.setEncoding('utf8')
    conn.on('connect', () => { connected = true; conn.write(`${command}\n`) })
    conn.on('data', (c: string) => {
      buf += c
      let nl: number
      while ((nl = buf.indexOf('\n')) >= 0) {
        const l = buf.slice(0, nl)
        buf = buf.slice(nl + 1)
        if (l.trim() === '') continue
        let doc: unknown
        try { doc = JSON.parse(l) } catch { continue } // a torn line: skip
        onDoc(doc)
      }
    })
    conn.on('close', () => { if (connected) resolve() })
    conn.on('error', () => { if (!connected) reject(new SipalgError('E300_DAEMON_DOWN', { path })) })
  })
  return { done, stop: () => { conn.end(); conn.destroy() } }
}
