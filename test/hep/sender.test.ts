// The HEP sender on loopback: both legs reach a live collector; a dead one (nothing listening) and a
// full send queue only grow hep_errors, never throw, never keep what they cannot send.

import t from 'tap'
import { createSocket } from 'node:dgram'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import { Counters } from '../../src/counters.js'
import { HepSender } from '../../src/hep/sender.js'
import type { SipHop } from '../../src/hep/legs.js'

const hop: SipHop = {
  direction: 'outbound',
  callId: 'hep-1@10.0.1.23',
  phone: { ip: '10.0.1.23', port: 5060 },
  public: { ip: '203.0.113.1', port: 5060 },
  far: { ip: '203.0.113.9', port: 5060 },
  arrived: Buffer.from('BYE sip:bob@203.0.113.9 SIP/2.0\r\nContact: <sip:alice@10.0.1.23>\r\n\r\n'),
  left: Buffer.from('BYE sip:bob@203.0.113.9 SIP/2.0\r\nContact: <sip:alice@203.0.113.1>\r\n\r\n')
}

const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }

async function until (what: () => boolean, ms = 3000): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end; await sleep(10)) if (what()) return true
  return what()
}

t.test('a live collector gets both legs of every message', async t => {
  const collector = createSocket('udp4')
  collector.bind(0, '127.0.0.1')
  await once(collector, 'listening')
  t.teardown(() => { collector.close() })
  const got: Buffer[] = []
  collector.on('message', m => { got.push(m) })
  const counters = new Counters()
  const sender = new HepSender({ url: `udp://127.0.0.1:${(collector.address() as AddressInfo).port}`, captureId: 2001, authKey: null, counters, clockUs: () => 5_000_000 })
  t.teardown(() => { sender.close() })
  t.same(counters.snapshot(), { hep_errors: 0, hep_sent: 0 }, 'counters shown from the start')
  t.ok(await until(() => { sender.send(hop); return got.length > 0 }), 'connected and sending')
  const before = got.length
  sender.send(hop)
  t.ok(await until(() => got.length >= before + 2))
  t.ok(got.every(p => p.subarray(0, 4).toString() === 'HEP3'))
  const texts = got.slice(before).map(p => p.toString('latin1'))
  t.match(texts[0], /Contact: <sip:alice@10\.0\.1\.23>/, 'first as it arrived')
  t.match(texts[1], /Contact: <sip:alice@203\.0\.113\.1>/, 'then as it left')
  t.ok(texts.every(s => s.includes('hep-1@10.0.1.23')), 'each carries the Call-ID')
  t.equal((counters.snapshot().hep_sent ?? 0), got.length)
})

t.test('a dead collector costs nothing but a counter', async t => {
  // A port nobody listens on: bind one, note it, close it.
  const probe = createSocket('udp4')
  probe.bind(0, '127.0.0.1')
  await once(probe, 'listening')
  const port = (probe.address() as AddressInfo).port
  probe.close()
  const counters = new Counters()
  const warnings: string[] = []
  const sender = new HepSender({ url: `udp://127.0.0.1:${port}`, captureId: 1, authKey: 'k', counters, warn: w => { warnings.push(w) } })
  t.teardown(() => { sender.close() })
  const started = Date.now()
  for (let i = 0; i < 200; i++) { sender.send(hop); if (i % 20 === 0) await sleep(5) }
  t.ok(Date.now() - started < 2000, 'sending never waits for the collector')
  t.ok(await until(() => (counters.snapshot().hep_errors ?? 0) > 0), `errors counted (${JSON.stringify(counters.snapshot())})`)
  const settled = (): number => (counters.snapshot().hep_errors ?? 0) + (counters.snapshot().hep_sent ?? 0)
  t.ok(await until(() => settled() === 400), `every leg is either sent or counted as an error, none kept (${settled()})`)
  t.ok(warnings.length >= 1 && warnings.length <= 2, `told at most once a minute (${warnings.length}: ${warnings[0] ?? ''})`)
})

t.test('a full send queue drops and counts instead of buffering', async t => {
  const collector = createSocket('udp4')
  collector.bind(0, '127.0.0.1')
  await once(collector, 'listening')
  t.teardown(() => { collector.close() })
  const counters = new Counters()
  const sender = new HepSender({ url: `udp://127.0.0.1:${(collector.address() as AddressInfo).port}`, captureId: 1, authKey: null, counters, maxQueued: 0 })
  t.teardown(() => { sender.close() })
  await sleep(50)
  sender.send(hop)
  t.equal((counters.snapshot().hep_errors ?? 0), 2, 'with no room in the queue both legs are dropped and counted')
  t.equal((counters.snapshot().hep_sent ?? 0), 0)
})

t.test('a collector name that does not resolve: errors counted, retried later', async t => {
  const counters = new Counters()
  const sender = new HepSender({ url: 'udp://no-such-collector.invalid:9060', captureId: 1, authKey: null, counters })
  t.teardown(() => { sender.close() })
  sender.send(hop)
  t.equal((counters.snapshot().hep_errors ?? 0), 2, 'not connected yet: counted, not queued')
  t.throws(() => new HepSender({ url: 'tcp://127.0.0.1:9060', captureId: 1, authKey: null, counters }), /udp:\/\/HOST:PORT/)
})
