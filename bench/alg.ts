// The whole per-packet path in JS (IPv4/UDP framing, parse, rewrite, call state, mapping mirror)
// for complete calls — INVITE, 100, 180, 200+SDP, ACK, BYE, 200 — with kernel ops discarded.
// Shows what one core can carry before NFQUEUE and netlink are involved.
// Run: npx tsc -p tsconfig.json && node dist/bench/alg.js
import { pino } from 'pino'
import { Alg } from '../src/alg.js'
import { buildConfig } from '../src/config.js'
import { buildUdp } from '../src/netfilter/packet.js'

const A = '10.0.1.23'; const B = '203.0.113.9'; const PUB = '203.0.113.1'
const crlf = (s: string): string => s.replace(/\n/g, '\r\n')
const sdp = (ip: string, port: number): string => crlf(`v=0\no=- 1 1 IN IP4 ${ip}\ns=-\nc=IN IP4 ${ip}\nt=0 0\nm=audio ${port} RTP/AVP 0 8 101\na=rtpmap:0 PCMU/8000\na=rtpmap:8 PCMA/8000\na=rtpmap:101 telephone-event/8000\na=ptime:20\na=sendrecv\n`)

function call (id: number): Array<[string, number, string, number, Buffer]> {
  const cid = `bench-${id}@${A}`
  const offer = sdp(A, 4000 + (id % 1000) * 2)
  const answer = sdp(B, 30000)
  const head = (start: string, via: string, cseq: string, toTag: boolean, extra = ''): string => crlf(`${start}
Via: SIP/2.0/UDP ${via};branch=z9hG4bK-${id}-${cseq.replace(' ', '')};rport
From: "Alice" <sip:alice@sip.example.net>;tag=a${id}
To: <sip:bob@sip.example.net>${toTag ? `;tag=b${id}` : ''}
Call-ID: ${cid}
CSeq: ${cseq}
Contact: <sip:alice@${A}:5060>
Max-Forwards: 70
User-Agent: bench
${extra}`)
  const msg = (h: string, body = ''): Buffer => Buffer.from(`${h}${body === '' ? '' : 'Content-Type: application/sdp\r\n'}Content-Length: ${body.length}\r\n\r\n${body}`, 'latin1')
  return [
    [A, 5060, B, 5060, msg(head(`INVITE sip:bob@${B} SIP/2.0`, `${A}:5060`, '1 INVITE', false), offer)],
    [B, 5060, A, 5060, msg(head('SIP/2.0 100 Trying', `${PUB}:5060`, '1 INVITE', false))],
    [B, 5060, A, 5060, msg(head('SIP/2.0 180 Ringing', `${PUB}:5060`, '1 INVITE', true))],
    [B, 5060, A, 5060, msg(head('SIP/2.0 200 OK', `${PUB}:5060`, '1 INVITE', true), answer)],
    [A, 5060, B, 5060, msg(head(`ACK sip:bob@${B}:5060 SIP/2.0`, `${A}:5060`, '1 ACK', true))],
    [A, 5060, B, 5060, msg(head(`BYE sip:bob@${B}:5060 SIP/2.0`, `${A}:5060`, '2 BYE', true))],
    [B, 5060, A, 5060, msg(head('SIP/2.0 200 OK', `${PUB}:5060`, '2 BYE', true))]
  ]
}

const alg = new Alg(buildConfig([{ public: PUB, inside: ['10.0.1.0/24'], limits: { calls_per_second: 10_000_000, calls_per_second_per_host: 10_000_000, calls_per_host: 10_000_000, max_calls: 10_000_000 } }]), pino({ level: 'silent' }))
const packets = Array.from({ length: 2000 }, (_, i) => call(i).map(([s, sp, d, dp, p]) => buildUdp(s, sp, d, dp, p)))

let ops = 0
const run = (ms: number): { calls: number, packets: number, seconds: number } => {
  const t0 = process.hrtime.bigint()
  let calls = 0; let n = 0
  while (Number(process.hrtime.bigint() - t0) / 1e6 < ms) {
    for (const p of packets[calls % packets.length]) { alg.process(p); n++ }
    ops += alg.maps.takePending().length
    calls++
  }
  return { calls, packets: n, seconds: Number(process.hrtime.bigint() - t0) / 1e9 }
}

run(500) // warm-up
const r = run(3000)
const cps = r.calls / r.seconds

// The same calls one at a time with the process idle in between (10 ms), as a gateway sees them at
// low load: the first packets after an idle gap run with cold caches.
async function paced (calls: number): Promise<number> {
  let ns = 0n
  let n = 0
  for (let i = 0; i < calls; i++) {
    await new Promise(resolve => setTimeout(resolve, 10))
    const batch = packets[(i * 7) % packets.length]
    const t0 = process.hrtime.bigint()
    for (const p of batch) alg.process(p)
    ns += process.hrtime.bigint() - t0
    n += batch.length
    alg.maps.takePending()
  }
  return Number(ns) / 1000 / n
}
const pacedUs = await paced(200)
const warmUs = 1e6 * r.seconds / r.packets

if (process.argv.includes('--json')) {
  console.log(JSON.stringify({ part: 'alg', callsPerSec: Math.round(cps), packetsPerSec: Math.round(r.packets / r.seconds), warmUs, pacedUs }))
} else {
  console.log('| ALG path (JS, one core) | figure |')
  console.log('| --- | --- |')
  console.log(`| complete calls/s (7 SIP packets each) | ${Math.round(cps).toLocaleString('en')} |`)
  console.log(`| SIP packets/s | ${Math.round(r.packets / r.seconds).toLocaleString('en')} |`)
  console.log(`| µs per packet, back to back | ${warmUs.toFixed(2)} |`)
  console.log(`| µs per packet, one call every 10 ms (idle between) | ${pacedUs.toFixed(2)} |`)
  console.log(`| kernel map ops per call | ${(ops / (r.calls + 1)).toFixed(1)} |`)
  console.log(`| calls left / ports in use | ${alg.calls.size} / ${alg.ports.inUse} |`)
}
