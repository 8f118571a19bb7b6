// HEP export (issue 16) to a real sngrep: sngrep listens for HEP on the gateway's own loopback (inside
// the gateway's namespace, 127.0.0.1 is that namespace's own) while a lab call goes through sipalg.
// Every SIP message of the call reaches it twice: as it arrived (private phone → far end, or far end →
// public address) and as it left (public address → far end, or far end → private phone), rewritten.
//
// sngrep 1.6 (Debian 12) writes no -O file while it listens with -L (its dump needs exactly one
// capture device, and -L opens none), so what reaches sngrep's port is captured with tcpdump on the
// gateway's lo, and sngrep itself turns that into SIP: `sngrep -N -q -E -I hep.pcap -O sip.pcap`
// decapsulates each HEP packet into an IP/UDP packet with the addresses, ports and time it carries.
// The test reads sip.pcap (src/trace/pcap.ts). Then the collector is stopped: the next call is
// unaffected, and hep_errors grows.

import t from 'tap'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Lab, ADDR } from '../lab/lab.js'
import { runCall, startLine, waitUdpListening } from '../lab/sip.js'
import { startSipalg } from '../lab/sipalg.js'
import { readPcap } from '../../src/trace/pcap.js'
import { parseUdp } from '../../src/netfilter/packet.js'
import { leaked } from './flows.js'
import { hepChunks } from '../fixtures/hep.js'
import { CHUNK } from '../../src/hep/encode.js'

const HEP_PORT = 9060

interface Seen { at: number, src: string, dst: string, text: string }

/** CSeq and start line: which message this is (a retransmission would repeat it). */
const identity = (text: string): string => `${startLine(text)} | ${/^CSeq:\s*(.+?)\r?$/mi.exec(text)?.[1] ?? '?'}`

t.test('sngrep receives every message of a call twice: as it arrived and as it left', async t => {
  const lab = await Lab.up({ forwardPolicy: 'drop' })
  t.teardown(async () => { await lab.down() })
  const dir = mkdtempSync(join(tmpdir(), `sipalg-hep-${lab.runId}-`))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })

  const sngrep = lab.spawn('gw', 'sngrep', ['-N', '-L', `udp:127.0.0.1:${HEP_PORT}`])
  let screen = ''
  sngrep.stdout?.setEncoding('utf8').on('data', (d: string) => { screen = (screen + d).slice(-2000) })
  await waitUdpListening(lab, 'gw', '127.0.0.1', HEP_PORT)
  const hepPcap = join(dir, 'hep.pcap')
  const dump = lab.spawn('gw', 'tcpdump', ['-i', 'lo', '-U', '-n', '-w', hepPcap, 'udp', 'dst', 'port', String(HEP_PORT)])
  await new Promise<void>((resolve, reject) => {
    let err = ''
    const timer = setTimeout(() => { reject(new Error(`tcpdump on the gateway's lo: ${err}`)) }, 10_000)
    dump.stderr?.setEncoding('utf8').on('data', (d: string) => { err += d; if (err.includes('listening on')) { clearTimeout(timer); resolve() } })
  })

  const alg = await startSipalg(lab, { args: ['--hep', `udp://127.0.0.1:${HEP_PORT}`, '--hep-id', '2001'] })
  t.teardown(async () => { await alg.stop() })

  const call = await runCall(lab, { from: 'a', to: 'b', durationMs: 500 })
  t.ok(call.ok, `the call completed with HEP on:\n${call.logA.slice(-400)}\n${call.logB.slice(-400)}`)
  await new Promise(resolve => setTimeout(resolve, 500))
  const counters = (await alg.status()).counters
  await lab.stop(dump, 'SIGINT')

  // What sngrep made of it live: its own dialog count.
  t.match(screen, /Dialog count: 1\b/, 'sngrep shows one dialog (the call)')

  // The HEP packets as they reached sngrep: each carries the capture id and the Call-ID.
  const callId = /^Call-ID:\s*(.+?)\r?$/mi.exec(call.inviteSeenByB)?.[1] ?? ''
  const hep = readPcap(readFileSync(hepPcap)).packets.map(p => parseUdp(p.ip)).flatMap(r => r.ok ? [hepChunks(r.udp.payload)] : [])
  t.ok(hep.length > 0, `${hep.length} HEP packets reached sngrep`)
  t.ok(hep.every(c => c.find(([type]) => type === CHUNK.CORRELATION_ID)?.[1].toString('latin1') === callId), `correlation id = Call-ID ${callId}`)
  t.ok(hep.every(c => c.find(([type]) => type === CHUNK.CAPTURE_ID)?.[1].readUInt32BE(0) === 2001), 'capture agent id 2001')
  t.equal(counters.hep_sent, hep.length, 'hep_sent counts what the collector got')
  t.equal(counters.hep_errors, 0)

  // sngrep's own decoding of them into SIP packets (what it would show and save).
  const sipPcap = join(dir, 'sip.pcap')
  const conv = spawnSync('sngrep', ['-N', '-q', '-E', '-I', hepPcap, '-O', sipPcap], { encoding: 'utf8', timeout: 20_000 })
  t.equal(conv.status, 0, `sngrep -E -I … -O: ${conv.stderr}`)
  const summary = spawnSync('tcpdump', ['-nn', '-tttt', '-r', sipPcap], { encoding: 'utf8' }).stdout
  t.comment(`sngrep's pcap of the call (tcpdump -r):\n${summary}`)
  // sngrep 1.6 writes each decapsulated packet twice (identical records): keep one of each.
  const records = new Map<string, Seen>()
  for (const p of readPcap(readFileSync(sipPcap)).packets) {
    const r = parseUdp(p.ip)
    if (!r.ok) continue
    const u = r.udp
    records.set(`${p.at}|${u.payload.toString('latin1')}`, { at: p.at, src: `${u.src}:${u.srcPort}`, dst: `${u.dst}:${u.dstPort}`, text: u.payload.toString('latin1') })
  }
  const seen = [...records.values()]
  t.equal(seen.length, hep.length, 'sngrep decoded every HEP packet into one SIP packet')

  const a = `${ADDR.a}:5060`
  const b = `${ADDR.b}:5060`
  const invite = seen.find(s => s.src !== a && s.dst === b && /^INVITE /.test(s.text))
  const pub = invite?.src ?? ''
  t.match(pub, /^203\.0\.113\.1:\d+$/, `the INVITE left from the public address (${pub})`)
  /** The legs of each message in `received`; `public` names the leg on the public side (no private address in it). */
  const check = (received: string[], arrived: [string, string], left: [string, string], label: string, publicLeg: 'arrived' | 'left'): void => {
    for (const m of received) {
      const id = identity(m)
      const legs = seen.filter(s => identity(s.text) === id)
      t.equal(legs.length, 2, `${label} ${id}: twice (${legs.map(l => `${l.src} > ${l.dst}`).join(', ')})`)
      const [first, second] = legs.sort((x, y) => x.at - y.at)
      t.same([first?.src, first?.dst], arrived, `${label} ${id}: arrived ${arrived.join(' > ')}`)
      t.same([second?.src, second?.dst], left, `${label} ${id}: left ${left.join(' > ')}`)
      const outside = publicLeg === 'arrived' ? first : second
      const inside = publicLeg === 'arrived' ? second : first
      t.same(leaked(outside?.text ?? ''), [], `${label} ${id}: no private address on the public side`)
      t.match(inside?.text ?? '', /^Via: SIP\/2\.0\/UDP 10\.0\.1\.23:5060/m, `${label} ${id}: the private side names the phone`)
    }
  }
  // Outbound (A → B): arrived from the private phone, left from the public address, as B got it.
  check(call.receivedByB, [a, b], [pub, b], 'a→b', 'left')
  t.match(seen.find(s => s.src === a && /^INVITE /.test(s.text))?.text ?? '', /^c=IN IP4 10\.0\.1\.23\r?$/m, 'the arrived INVITE has the phone\'s own SDP')
  // Inbound (B → A): arrived at the public address, left to the private phone.
  check(call.receivedByA, [b, pub], [b, a], 'b→a', 'arrived')
  t.equal(seen.length, 2 * (call.receivedByA.length + call.receivedByB.length), 'nothing else: two legs per message')

  await t.test('a stopped collector: the call is unaffected, hep_errors grows', async t => {
    await lab.stop(sngrep, 'SIGTERM')
    const before = (await alg.status()).counters
    const again = await runCall(lab, { from: 'a', to: 'b', durationMs: 300 })
    t.ok(again.ok, 'the call completed with the collector gone')
    t.same(leaked(again.inviteSeenByB), [], 'and was rewritten as usual')
    await new Promise(resolve => setTimeout(resolve, 300))
    const after = (await alg.status()).counters
    const legs = 2 * (again.receivedByA.length + again.receivedByB.length)
    t.ok(after.hep_errors > before.hep_errors, `hep_errors ${before.hep_errors} → ${after.hep_errors}`)
    t.equal((after.hep_errors - before.hep_errors) + (after.hep_sent - before.hep_sent), legs, `every leg sent or counted as an error (${legs})`)
    t.equal(after.internal_errors ?? 0, 0)
  })
})
