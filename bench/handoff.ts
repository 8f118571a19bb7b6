// The hop between workers alone (src/workers/handoff.ts), no ALG and no kernel: this process reads
// "packets" and hands them to a child process that answers every one with an accept carrying a
// payload of the same size, as an owner does. Prints one JSON line for bench/report.ts:
// the round trip of one packet at a time (p50/p99), and packets/s when a batch of 64 is in flight.
// Usage: node dist/bench/handoff.js [packets]   (the child: node dist/bench/handoff.js --serve PATH)

import { fork } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { HandoffClient, serveHandoff } from '../src/workers/handoff.js'

const PACKET = Buffer.alloc(520, 0x41)

async function main (): Promise<void> {
  if (process.argv[2] === '--serve') {
    const server = serveHandoff(process.argv[3], packets => packets.map(p => ({ action: 'accept' as const, payload: Buffer.from(p) })), () => {})
    server.ref()
    server.on('listening', () => { process.send?.('up') })
    process.on('disconnect', () => { server.close(); process.exit(0) })
    return
  }
  const total = Number(process.argv[2] ?? 20000)
  const dir = mkdtempSync(join(tmpdir(), 'sipalg-handoff-'))
  const path = join(dir, 'h0')
  const child = fork(fileURLToPath(import.meta.url), ['--serve', path])
  await new Promise<void>(resolve => child.once('message', () => { resolve() }))
  let answered = 0
  let wake: () => void = () => {}
  const sink = { verdict: () => { answered++ }, flush: () => { wake(); return 0 } }
  const client = new HandoffClient([path], sink, 5000)
  const waitFor = async (n: number): Promise<void> => { while (answered < n) await new Promise<void>(resolve => { wake = resolve }) }
  // One at a time: the latency of a hop.
  for (let i = 0; i < total; i++) { client.send(0, i, PACKET); await waitFor(i + 1) }
  const single = client.stats().rttUs
  // 64 in flight: what one reader can hand over per second.
  answered = 0
  const t0 = process.hrtime.bigint()
  for (let i = 0; i < total; i += 64) {
    const n = Math.min(64, total - i)
    for (let j = 0; j < n; j++) client.send(0, i + j, PACKET)
    await waitFor(i + n)
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9
  console.log(JSON.stringify({ part: 'handoff', packets: total, bytes: PACKET.length, p50: single.p50, p99: single.p99, mean: single.mean, batchedPerSec: Math.round(total / seconds) }))
  client.close()
  child.disconnect()
  rmSync(dir, { recursive: true, force: true })
}

void main()
