// The first real calls through sipalg (issue 3), run once per gateway FORWARD policy: real sipp
// phones, real kernel NAT in namespaces, RTP counted where it arrives.

import type { Test } from 'tap'
import { Lab, type ForwardPolicy } from '../lab/lab.js'
import { runCall, privateAddresses, type CallResult } from '../lab/sip.js'
import { installRules, startSipalg, type Sipalg } from '../lab/sipalg.js'

/**
 * Private addresses in what B received, apart from From/To and Call-ID: spec §3 keeps identity
 * headers as written and never touches Call-ID (sipp writes "n-pid@10.0.1.23" there).
 */
export function leaked (msg: string): string[] {
  return privateAddresses(msg.split(/\r?\n/).filter(l => !/^(From|To|Call-ID|f|t|i)\s*:/i.test(l)).join('\n'))
}

const viaPort = (msg: string): number => Number(/^Via: SIP\/2\.0\/UDP [\d.]+:(\d+)/m.exec(msg)?.[1] ?? 5060)
const mPort = (msg: string): number => Number(/^m=audio (\d+)/m.exec(msg)?.[1] ?? 0)

/**
 * A map's elements once removals have landed: sipalg applies them right after the verdicts
 * (at the latest on its 1 s tick), so give it that long before calling something left behind.
 */
async function settled (alg: Sipalg, map: 'src_nat' | 'any_dnat' | 'peer_dnat', want: number): Promise<string[]> {
  let got = await alg.elements(map)
  for (let i = 0; i < 15 && got.length > want; i++) {
    await new Promise(resolve => setTimeout(resolve, 100))
    got = await alg.elements(map)
  }
  return got
}

function describe (r: CallResult): string {
  return `exit A=${String(r.exitA)} B=${String(r.exitB)} rtpAtA=${r.rtpAtA} rtpAtB=${r.rtpAtB}\n${r.logA.slice(-1500)}\n${r.logB.slice(-1500)}`
}

export async function callSuite (t: Test, policy: ForwardPolicy): Promise<void> {
  const lab = await Lab.up({ forwardPolicy: policy })
  t.teardown(async () => { await lab.down() })

  await t.test('rules installed, sipalg not running: SIP passes untouched (fail-open), no audio to A', async t => {
    await installRules(lab)
    const r = await runCall(lab, { durationMs: 900 })
    t.ok(r.ok, `call connects: ${describe(r)}`)
    t.match(r.inviteSeenByB, /c=IN IP4 10\.0\.1\.23/, 'B is told the private address, as with plain NAT')
    t.equal(r.rtpAtA, 0, 'no RTP reaches A')
  })

  const alg = await startSipalg(lab)
  t.teardown(async () => { await alg.stop() })

  await t.test('A calls B, A hangs up: audio both ways, no private address, nothing left behind', async t => {
    const r = await runCall(lab, { durationMs: 1500 })
    t.ok(r.ok, `200 OK, ACK, BYE/200: ${describe(r)}`)
    t.same(leaked(r.inviteSeenByB), [], 'INVITE seen by B names no 10.x address')
    t.same(leaked(r.ackSeenByB), [], 'ACK seen by B names no 10.x address')
    t.match(r.inviteSeenByB, /^c=IN IP4 203\.0\.113\.1\r?$/m)
    t.ok(r.rtpAtA > 10, `RTP from B arrived at A (${r.rtpAtA})`)
    t.ok(r.rtpAtB > 10, `RTP from A arrived at B (${r.rtpAtB})`)
    const port = mPort(r.inviteSeenByB)
    t.same(Object.keys(r.rtpSourcesAtB), [`203.0.113.1.${port}`], 'A\'s RTP comes from the public port B was told')
    t.same(await settled(alg, 'any_dnat', 0), [], 'no open media mapping after BYE')
    t.same(await settled(alg, 'peer_dnat', 0), [], 'no peer mapping after BYE')
    t.same(await settled(alg, 'src_nat', 1), ['10.0.1.23 . 5060 : 5060'], 'only A\'s signalling mapping stays')
  })

  await t.test('B hangs up: B\'s BYE reaches A, mappings removed', async t => {
    const r = await runCall(lab, { durationMs: 1200, byeFrom: 'b' })
    t.ok(r.ok, `call completes with B's BYE: ${describe(r)}`)
    t.ok(r.receivedByA.some(m => m.startsWith('BYE ')), 'A received the BYE')
    t.ok(r.rtpAtA > 10 && r.rtpAtB > 10, `audio both ways (${r.rtpAtA}/${r.rtpAtB})`)
    t.same(await settled(alg, 'any_dnat', 0), [])
    t.same(await settled(alg, 'peer_dnat', 0), [])
  })

  await t.test('two phones on port 5060, same RTP port, calling at once: both have audio, public ports differ', async t => {
    await lab.flushConntrack()
    const [one, two] = await Promise.all([
      runCall(lab, { from: 'a', to: 'b', durationMs: 1500, fromMediaBase: 16000, flushConntrack: false }),
      runCall(lab, { from: 'a2', to: 'c', durationMs: 1500, fromMediaBase: 16000, flushConntrack: false })
    ])
    t.ok(one.ok, `A→B: ${describe(one)}`)
    t.ok(two.ok, `A2→C: ${describe(two)}`)
    t.ok(one.rtpAtA > 10 && one.rtpAtB > 10, `A↔B audio (${one.rtpAtA}/${one.rtpAtB})`)
    t.ok(two.rtpAtA > 10 && two.rtpAtB > 10, `A2↔C audio (${two.rtpAtA}/${two.rtpAtB})`)
    t.same([...leaked(one.inviteSeenByB), ...leaked(two.inviteSeenByB)], [])
    t.not(viaPort(one.inviteSeenByB), viaPort(two.inviteSeenByB), 'different public signalling ports')
    t.not(mPort(one.inviteSeenByB), mPort(two.inviteSeenByB), 'different public media ports')
    t.same(await settled(alg, 'any_dnat', 0), [])
  })

  await t.test('a 4 KB INVITE (fragmented on the wire, reassembled before the queue) is rewritten and delivered', async t => {
    const sdp = ['v=0', 'o=- 7 7 IN IP4 10.0.1.23', 's=-', 'c=IN IP4 10.0.1.23', 't=0 0', 'm=audio 4400 RTP/AVP 0 8',
      ...Array.from({ length: 120 }, (_, i) => `a=x-padding-${i}:${'p'.repeat(20)}`), ''].join('\r\n')
    const invite = ['INVITE sip:bob@203.0.113.9 SIP/2.0', 'Via: SIP/2.0/UDP 10.0.1.23:5060;branch=z9hG4bK-big1',
      'From: <sip:alice@example.net>;tag=big', 'To: <sip:bob@example.net>', 'Call-ID: big-invite-1', 'CSeq: 1 INVITE',
      'Contact: <sip:alice@10.0.1.23:5060>', 'Content-Type: application/sdp', `Content-Length: ${sdp.length}`, '', sdp].join('\r\n')
    t.ok(invite.length > 4000, `${invite.length} bytes: more than one 1500-byte frame`)
    const rx = lab.spawn('b', 'node', ['-e', `const s = require('node:dgram').createSocket('udp4');
      s.on('message', m => { console.log(JSON.stringify({ n: m.length, text: m.toString('latin1') })); process.exit(0) });
      s.bind(5060, '203.0.113.9', () => console.log('ready')); setTimeout(() => process.exit(3), 8000)`])
    let out = ''
    rx.stdout?.setEncoding('utf8').on('data', (d: string) => { out += d })
    for (let i = 0; i < 50 && !out.includes('ready'); i++) await new Promise(resolve => setTimeout(resolve, 50))
    await lab.sendUdp('a', '203.0.113.9', 5060, 1, invite, 5060)
    await new Promise<void>(resolve => { if (rx.exitCode !== null) resolve(); else rx.on('exit', () => resolve()) })
    const got = JSON.parse(out.split('\n').find(l => l.startsWith('{')) ?? '{"n":0,"text":""}') as { n: number, text: string }
    t.ok(got.n > 4000, `B received the whole INVITE (${got.n} bytes)`)
    t.match(got.text, /^c=IN IP4 203\.0\.113\.1\r$/m, 'rewritten')
    t.match(got.text, /^m=audio 2\d{4} /m)
    const body = got.text.slice(got.text.indexOf('\r\n\r\n') + 4)
    t.match(got.text, new RegExp(`Content-Length: ${body.length}\r\n`), 'Content-Length matches the rewritten body')
    // B turns it down: the 487 ends the call in sipalg (and the pinholes with it).
    const busy = ['SIP/2.0 487 Request Terminated', 'Via: SIP/2.0/UDP 203.0.113.1:5060;branch=z9hG4bK-big1',
      'From: <sip:alice@example.net>;tag=big', 'To: <sip:bob@example.net>;tag=b', 'Call-ID: big-invite-1', 'CSeq: 1 INVITE',
      'Content-Length: 0', '', ''].join('\r\n')
    await lab.sendUdp('b', '203.0.113.1', 5060, 1, busy, 5060)
  })

  const st = await alg.status()
  t.equal(st.counters.internal_errors ?? 0, 0, 'no internal errors')
  t.equal(st.counters.map_ops_failed ?? 0, 0, 'the kernel accepted every mapping change')
  t.ok(st.counters.rewritten > 0)
  t.equal(st.calls.length, 0, 'no call left')
}
