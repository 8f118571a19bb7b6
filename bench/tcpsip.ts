// SIP over TCP load for bench/tcp.sh: a server that answers every request with a 200 OK, and a client
// that measures one connection's request/response rate (pipelined) or its round trip (one at a time).
// Requests are ~1 KB MESSAGEs with the phone's private address in Via and Contact, so the splice has
// real rewriting to do; the same bytes go to a port that is only NAT-forwarded for the baseline.
//   node dist/bench/tcpsip.js server IP PORT... SECONDS     prints "listening", then per port at the end (or SIGTERM):
//                                                         {"port", "requests", "rewritten"} (Via naming 203.0.113.1)
//   node dist/bench/tcpsip.js pipeline IP PORT COUNT WINDOW  COUNT requests, at most WINDOW unanswered
//   node dist/bench/tcpsip.js rtt IP PORT COUNT              COUNT requests, each after the last answer
// Client modes print one JSON line. Every mode is bounded in count and time.
import { createConnection, createServer, type Socket } from 'node:net'

const [mode, ip, ...args] = process.argv.slice(2)
const DEADLINE_MS = 60_000
setTimeout(() => { console.log(JSON.stringify({ error: 'deadline' })); process.exit(2) }, DEADLINE_MS).unref()

/** Whole messages from a byte stream by Content-Length (these peers send nothing else). */
class Frames {
  private buf: Buffer = Buffer.alloc(0)
  push (chunk: Buffer, each: (msg: Buffer) => void): void {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk])
    for (;;) {
      const end = this.buf.indexOf('\r\n\r\n')
      if (end < 0) return
      const cl = /\r\nContent-Length: *(\d+)/i.exec(this.buf.toString('latin1', 0, end))
      const total = end + 4 + (cl === null ? 0 : Number(cl[1]))
      if (this.buf.length < total) return
      each(this.buf.subarray(0, total))
      this.buf = this.buf.subarray(total)
    }
  }
}

function request (seq: number): Buffer {
  const body = 'x'.repeat(640)
  return Buffer.from(`MESSAGE sip:bob@203.0.113.9 SIP/2.0\r
Via: SIP/2.0/TCP 10.0.1.23:5062;branch=z9hG4bK-bench-${seq};rport\r
Max-Forwards: 70\r
From: "Alice" <sip:alice@203.0.113.9>;tag=bench-a\r
To: <sip:bob@203.0.113.9>\r
Call-ID: tcp-bench-${seq}@10.0.1.23\r
CSeq: ${seq} MESSAGE\r
Contact: <sip:alice@10.0.1.23:5062;transport=tcp>\r
User-Agent: sipalg-bench/1\r
Content-Type: text/plain\r
Content-Length: ${body.length}\r
\r
${body}`, 'latin1')
}

function response (req: Buffer): Buffer {
  const text = req.toString('latin1', 0, req.indexOf('\r\n\r\n'))
  const keep = text.split('\r\n').filter(l => /^(Via|From|To|Call-ID|CSeq):/i.test(l))
  return Buffer.from(['SIP/2.0 200 OK', ...keep.map(l => /^To:/i.test(l) ? `${l};tag=bench-b` : l), 'Content-Length: 0', '', ''].join('\r\n'), 'latin1')
}

function connect (port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = createConnection({ host: ip, port, localAddress: '10.0.1.23', noDelay: true })
    s.once('connect', () => { resolve(s) })
    s.once('error', reject)
  })
}

const quantile = (sorted: number[], q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]

if (mode === 'server') {
  const seconds = Number(args.at(-1))
  const counts = new Map<number, { requests: number, rewritten: number }>()
  for (const port of args.slice(0, -1).map(Number)) {
    const c = { requests: 0, rewritten: 0 }
    counts.set(port, c)
    createServer({ noDelay: true }, s => {
      const frames = new Frames()
      s.on('error', () => {})
      s.on('data', chunk => {
        const out: Buffer[] = []
        frames.push(chunk, m => {
          c.requests++
          if (m.includes('Via: SIP/2.0/TCP 203.0.113.1:')) c.rewritten++
          out.push(response(m))
        })
        if (out.length > 0) s.write(out.length === 1 ? out[0] : Buffer.concat(out))
      })
    }).listen(port, ip)
  }
  console.log('listening')
  const report = (): void => {
    for (const [port, c] of counts) console.log(JSON.stringify({ port, ...c }))
    process.exit(0)
  }
  setTimeout(report, seconds * 1000)
  process.on('SIGTERM', report)
} else if (mode === 'pipeline') {
  const [port, count, window] = args.map(Number)
  const s = await connect(port)
  const frames = new Frames()
  let sent = 0
  let answered = 0
  const t0 = process.hrtime.bigint()
  const fill = (): void => {
    const batch: Buffer[] = []
    while (sent < count && sent - answered < window) batch.push(request(++sent))
    if (batch.length > 0) s.write(Buffer.concat(batch))
  }
  await new Promise<void>(resolve => {
    s.on('data', chunk => {
      frames.push(chunk, () => { answered++ })
      if (answered >= count) resolve(); else fill()
    })
    s.on('close', () => { resolve() })
    fill()
  })
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9
  console.log(JSON.stringify({ port, requests: count, answered, seconds, rate: Math.round(answered / seconds), bytes: request(1).length }))
  s.destroy()
} else if (mode === 'rtt') {
  const [port, count] = args.map(Number)
  const s = await connect(port)
  const frames = new Frames()
  const times: number[] = []
  let started = 0n
  await new Promise<void>(resolve => {
    const next = (): void => {
      if (times.length >= count) { resolve(); return }
      started = process.hrtime.bigint()
      s.write(request(times.length + 1))
    }
    s.on('data', chunk => {
      frames.push(chunk, () => {
        times.push(Number(process.hrtime.bigint() - started) / 1000)
        next()
      })
    })
    s.on('close', () => { resolve() })
    next()
  })
  const sorted = [...times].sort((a, b) => a - b)
  console.log(JSON.stringify({ port, requests: count, answered: times.length, p50: Math.round(quantile(sorted, 0.5)), p99: Math.round(quantile(sorted, 0.99)) }))
  s.destroy()
} else {
  console.error('usage: see the top of bench/tcpsip.ts')
  process.exit(64)
}
