// A role change in a gateway pair replaces the daemon's Alg (src/cli/run.ts, src/cli/role.ts):
// the counters go on from where they were, and a `sipalg trace` client connected before the change
// receives the messages the new Alg handles.

import t from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { Alg } from '../../src/alg.js'
import { buildConfig } from '../../src/config.js'
import { buildUdp } from '../../src/netfilter/packet.js'
import { serveControl, streamControl, traceStream } from '../../src/cli/control.js'
import { succeed } from '../../src/cli/role.js'
import { sdp } from '../dialog/harness.js'

const A = '10.0.1.23'; const B = '203.0.113.9'; const PUB = '203.0.113.1'
const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }
const newAlg = (): Alg => new Alg(buildConfig([{ public: PUB, inside: ['10.0.1.0/24'] }]), pino({ level: 'silent' }))

function invite (callId: string, rtp: number): Buffer {
  const body = sdp(A, rtp).replace(/\n/g, '\r\n')
  const head = `INVITE sip:bob@${B} SIP/2.0\r\nVia: SIP/2.0/UDP ${A}:5060;branch=z9hG4bK-${callId};rport\r\nMax-Forwards: 70\r\n` +
    `From: <sip:alice@${A}>;tag=a-${callId}\r\nTo: <sip:bob@${B}>\r\nCall-ID: ${callId}\r\nCSeq: 1 INVITE\r\n` +
    `Contact: <sip:alice@${A}:5060>\r\nContent-Type: application/sdp\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n`
  return buildUdp(A, 5060, B, 5060, Buffer.from(head + body, 'latin1'))
}

t.test('the next Alg counts on from the previous one', async t => {
  const prev = newAlg()
  prev.process(invite('role-1', 4000))
  prev.counters.inc('role_changes')
  const next = succeed(prev, newAlg())
  t.same([next.counters.snapshot().queued, next.counters.snapshot().calls_started, next.counters.snapshot().role_changes], [1, 1, 1], 'carried over')
  next.process(invite('role-2', 4002))
  next.counters.inc('role_changes')
  const after = next.counters.snapshot()
  t.same([after.queued, after.calls_started, after.role_changes], [2, 2, 2], 'and counting on')
  t.equal(next.status().calls.length, 1, 'the tables start empty: only the call the next Alg saw')
})

t.test('a trace client connected before a role change gets the events after it', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'sipalg-role-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  const path = join(dir, 'c.sock')
  let alg = newAlg()
  const ctl = serveControl(path, {}, { trace: traceStream(PUB, listener => { alg.onMessage = listener }) })
  t.teardown(() => { ctl.close() })
  await sleep(50)
  const got: Array<{ trace?: string, callId?: string }> = []
  const client = streamControl(path, 'trace', d => got.push(d as { trace?: string, callId?: string }))
  for (let i = 0; i < 50 && alg.onMessage === undefined; i++) await sleep(20)
  alg.process(invite('before', 4000))
  alg = succeed(alg, newAlg())
  alg.process(invite('after', 4000))
  for (let i = 0; i < 50 && got.length < 3; i++) await sleep(20)
  t.same(got.map(d => d.trace ?? d.callId), ['started', 'before', 'after'], 'one stream across the change')
  client.stop()
  for (let i = 0; i < 50 && alg.onMessage !== undefined; i++) await sleep(20)
  t.equal(alg.onMessage, undefined, 'the last client gone: the current Alg emits nothing')
})
