// A hostile stream through the gateway in both directions — 1,000+ mutated and malformed SIP
// datagrams (some oversized, so fragmented on the wire), SIPVicious scans — and sipalg keeps
// running, gives every packet a verdict, counts what it saw, and a normal call works right after.

import t from 'tap'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Lab } from '../lab/lab.js'
import { runCall } from '../lab/sip.js'
import { startSipalg } from '../lab/sipalg.js'
import { corpus, rssKb } from './fixtures/hostile-corpus.js'

const SENDER = `
const dgram = require('node:dgram')
const [file, host, port, sport] = process.argv.slice(1)
const corpus = JSON.parse(require('node:fs').readFileSync(file, 'utf8')).map(b => Buffer.from(b, 'base64'))
const s = dgram.createSocket({ type: 'udp4', reuseAddr: true })
s.bind(Number(sport), async () => {
  const end = Date.now() + 20000
  for (let i = 0; i < corpus.length && Date.now() < end; i++) {
    await new Promise(r => s.send(corpus[i], Number(port), host, () => r()))
    if (i % 20 === 19) await new Promise(r => setTimeout(r, 2))
  }
  s.close()
})`

t.test('hostile stream in both directions', async t => {
  const lab = await Lab.up({ forwardPolicy: 'drop' })
  t.teardown(async () => { await lab.down() })
  const alg = await startSipalg(lab)
  t.teardown(async () => { await alg.stop() })
  const pid = alg.child.pid as number
  const dir = mkdtempSync(join(tmpdir(), 'sipalg-abuse-'))
  const outFile = join(dir, 'out.json'); const inFile = join(dir, 'in.json')
  const outbound = corpus(0xa1, 600); const inbound = corpus(0xb2, 600)
  writeFileSync(outFile, JSON.stringify(outbound.map(b => b.toString('base64'))))
  writeFileSync(inFile, JSON.stringify(inbound.map(b => b.toString('base64'))))
  const rssBefore = rssKb(pid)

  // Inbound datagrams reach the queue only on a flow the phone opened: let A talk to B first.
  await lab.sendUdp('a', '203.0.113.9', 5060, 1, 'OPTIONS sip:b@203.0.113.9 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.1.23:5060;branch=z9hG4bK-1\r\nFrom: <sip:a@10.0.1.23>;tag=1\r\nTo: <sip:b@203.0.113.9>\r\nCall-ID: abuse\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n', 5060)
  const [o, i] = await Promise.all([
    lab.exec('a', 'node', ['-e', SENDER, outFile, '203.0.113.9', '5060', '5060'], { timeoutMs: 30_000 }),
    lab.exec('b', 'node', ['-e', SENDER, inFile, '203.0.113.1', '5060', '5060'], { timeoutMs: 30_000 })
  ])
  t.equal(o.code, 0, `outbound corpus sent ${o.stderr}`)
  t.equal(i.code, 0, `inbound corpus sent ${i.stderr}`)

  // Scanners on the public side probing the gateway's 5060, and a scan from inside going out.
  const scans = await Promise.all([
    lab.exec('c', 'timeout', ['20', 'svmap', '-p', '5060', '-t', '0.2', '203.0.113.1'], { timeoutMs: 25_000 }),
    lab.exec('c', 'timeout', ['20', 'svwar', '-e', '100-130', '-t', '0.2', '-m', 'INVITE', '203.0.113.1'], { timeoutMs: 25_000 }),
    lab.exec('a', 'timeout', ['20', 'svmap', '-p', '5060-5062', '-t', '0.2', '203.0.113.9'], { timeoutMs: 25_000 })
  ])
  t.notMatch(scans[0].stdout, /10\.0\.1\./, 'svmap from outside finds no inside phone')
  t.notMatch(scans[1].stdout, /\|\s*1\d\d\s*\|\s*(reqauth|noauth)/, 'svwar finds no extension behind the gateway')

  await new Promise(resolve => setTimeout(resolve, 500))
  t.equal(alg.child.exitCode, null, 'sipalg still running')
  const st = await alg.status()
  t.ok(st.counters.queued >= 1000, `at least 1,000 datagrams went through the queue (${st.counters.queued})`)
  t.equal(st.queue.packets, st.counters.queued, 'every queued packet reached the ALG')
  t.equal((st.queue as unknown as { verdictsSent: number }).verdictsSent, st.queue.packets, 'every packet got a verdict')
  t.ok(st.counters.not_sip > 50, `malformed datagrams counted (${st.counters.not_sip})`)
  t.equal(st.counters.internal_errors ?? 0, 0, 'no internal error')
  t.equal(st.counters.map_ops_failed ?? 0, 0,
    `the kernel accepted every mapping change\n${alg.log().split('\n').filter(l => l.includes('kernel refused')).slice(0, 5).join('\n')}`)
  const rssAfter = rssKb(pid)
  t.ok(rssAfter - rssBefore < 64 * 1024, `memory bounded: RSS ${rssBefore} kB → ${rssAfter} kB`)
  t.comment(`verdicts: ${JSON.stringify(st.counters)}`)

  const r = await runCall(lab, { durationMs: 1000 })
  t.ok(r.ok && r.rtpAtA > 10 && r.rtpAtB > 10, `a normal call right after has audio both ways (${r.rtpAtA}/${r.rtpAtB})`)
})
