// The daemon's local control socket: `sipalg status` connects, sends one command line, and reads
// one JSON document back. A unix socket (mode 0600) so only root can read call details.

import { createServer, createConnection, type Server } from 'node:net'
import { chmodSync, mkdirSync, rmSync } from 'node:fs'
import { dirname } from 'node:path'
import { SipalgError } from '../errors.js'

export const defaultSocketPath = (table: string, queue: number): string => `/run/sipalg/${table}-${queue}.sock`

export function serveControl (path: string, handlers: Record<string, () => unknown>): Server {
  mkdirSync(dirname(path), { recursive: true })
  rmSync(path, { force: true })
  const server = createServer(conn => {
    let line = ''
    conn.setEncoding('utf8')
    conn.setTimeout(2000, () => conn.destroy())
    conn.on('data', (chunk: string) => {
      line += chunk
      if (line.length > 256) { conn.destroy(); return }
      const nl = line.indexOf('\n')
      if (nl < 0) return
      const handler = handlers[line.slice(0, nl).trim()]
      conn.end(JSON.stringify(handler === undefined ? { error: 'unknown command' } : handler()) + '\n')
    })
    conn.on('error', () => conn.destroy())
  })
  server.listen(path, () => chmodSync(path, 0o600))
  server.unref()
  return server
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
