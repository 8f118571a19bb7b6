// Part 3 of bench/run.sh: per-packet transit time through the gateway from four pcaps (lan0/wan0, in/out,
// nanosecond timestamps). A SIP message is keyed by Call-ID + CSeq + method or status code; its transit
// time is (first time seen leaving on the far interface) − (first time seen arriving). Prints one JSON line.
// Usage: node dist/bench/wirelat.js MODE RATE DIR ACHIEVED FAILED < sipalg-status.json
import { readFileSync, existsSync } from 'node:fs'

interface Pkt { t: bigint, key: string }

function readPcap (path: string): Pkt[] {
  if (!existsSync(path)) return []
  const b = readFileSync(path)
  if (b.length < 24) return []
  const magic = b.readUInt32LE(0)
  const nano = magic === 0xa1b23c4d
  if (!nano && magic !== 0xa1b2c3d4) throw new Error(`${path}: not a little-endian pcap`)
  const linktype = b.readUInt32LE(20)
  const out: Pkt[] = []
  let o = 24
  while (o + 16 <= b.length) {
    const sec = BigInt(b.readUInt32LE(o))
    const frac = BigInt(b.readUInt32LE(o + 4))
    const incl = b.readUInt32LE(o + 8)
    const t = sec * 1_000_000_000n + (nano ? frac : frac * 1000n)
    const p = b.subarray(o + 16, o + 16 + incl)
    o += 16 + incl
    let ip = linktype === 1 ? 14 : linktype === 113 ? 16 : 0
    if (p.length < ip + 28 || (p[ip] >> 4) !== 4 || p[ip + 9] !== 17) continue
    const payload = p.subarray(ip + (p[ip] & 15) * 4 + 8)
    const key = sipKey(payload.toString('latin1', 0, Math.min(payload.length, 1500)))
    if (key !== null) out.push({ t, key })
  }
  return out
}

function sipKey (s: string): string | null {
  const nl = s.indexOf('\r\n')
  if (nl < 0) return null
  const first = s.slice(0, nl)
  const what = first.startsWith('SIP/2.0 ') ? first.slice(8, 11) : first.slice(0, first.indexOf(' '))
  const cid = /\r\n(?:Call-ID|i)\s*:\s*([^\r\n]+)/i.exec(s)
  const cseq = /\r\nCSeq\s*:\s*([^\r\n]+)/i.exec(s)
  if (cid === null || cseq === null) return null
  return `${cid[1].trim()}|${cseq[1].trim()}|${what}`
}

function firstSeen (pkts: Pkt[]): Map<string, bigint> {
  const m = new Map<string, bigint>()
  for (const p of pkts) if (!m.has(p.key)) m.set(p.key, p.t)
  return m
}

const [mode, rate, dir, achieved, failed] = process.argv.slice(2)
const deltas: number[] = []
let unmatched = 0
for (const [from, to] of [['lan0', 'wan0'], ['wan0', 'lan0']]) {
  const inn = firstSeen(readPcap(`${dir}/${from}-in.pcap`))
  const out = firstSeen(readPcap(`${dir}/${to}-out.pcap`))
  for (const [k, t] of inn) {
    const u = out.get(k)
    if (u === undefined || u < t) { unmatched++; continue }
    deltas.push(Number(u - t) / 1000)
  }
}
deltas.sort((a, b) => a - b)
const q = (x: number): number | null => deltas.length === 0 ? null : Math.round(deltas[Math.min(deltas.length - 1, Math.floor(x * deltas.length))] * 10) / 10
let status: Record<string, unknown> = {}
try { status = JSON.parse(readFileSync(0, 'utf8')) } catch {}
const q0 = (status.queue ?? {}) as Record<string, unknown>
console.log(JSON.stringify({
  part: 'latency', mode, rate: Number(rate), achieved: Number(achieved), failed: Number(failed),
  packets: deltas.length, unmatched, p50: q(0.5), p99: q(0.99), p999: q(0.999), max: q(1),
  ...(mode === 'sipalg' ? { histogram: status.latencyUs ?? null, queue: { packets: q0.packets, batches: q0.batches, enobufs: q0.enobufs, failOpen: q0.failOpenBypassesInferred } } : {})
}))
