// A gateway that forwards nothing new on its own (FORWARD policy DROP, only established/related
// accepted, not even LAN → WAN) with sipalg in firewall mode: calls still have audio because
// sipalg accepts exactly the flows it negotiated, only from the far end's SDP address, only from
// the phone's negotiated port, and only while the call lives.

import t from 'tap'
import { Lab } from '../lab/lab.js'
import { captureUdp, runCall } from '../lab/sip.js'
import { startSipalg } from '../lab/sipalg.js'

const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }

t.test('strict firewall gateway', async t => {
  const lab = await Lab.up({ forwardPolicy: 'drop' })
  t.teardown(async () => { await lab.down() })
  await lab.sh('gw', 'iptables', ['-D', 'FORWARD', '-i', 'lan0', '-o', 'wan0', '-j', 'ACCEPT'])
  const alg = await startSipalg(lab, { args: ['--firewall'] })
  t.teardown(async () => { await alg.stop() })

  const call = runCall(lab, { durationMs: 2500 })
  // The far end's media pinhole: "203.0.113.9 . <public rtp> : 10.0.1.23 . <private rtp>".
  let pinhole: RegExpExecArray | null = null
  for (let i = 0; i < 60 && pinhole === null; i++) {
    pinhole = /^203\.0\.113\.9 \. (2\d{4}) : 10\.0\.1\.23 \. (1\d{4})$/.exec((await alg.elements('peer_dnat')).find(e => / : 10\.0\.1\.23 \. 1\d{4}$/.test(e)) ?? '')
    if (pinhole === null) await sleep(100)
  }
  t.ok(pinhole, 'media pinhole for B installed during the call')
  const publicRtp = Number(pinhole?.[1] ?? 0)
  // A third host on the public side aims at the same public media port mid-call.
  const intruder = await lab.sendUdp('c', '203.0.113.1', publicRtp, 20, 'x'.repeat(172), 27000)
  t.equal(intruder.code, 0, 'C sent its packets')
  const r = await call

  t.ok(r.ok, `call completes (exit A=${String(r.exitA)} B=${String(r.exitB)})`)
  t.ok(r.rtpAtA > 10, `B's audio reaches A (${r.rtpAtA})`)
  t.ok(r.rtpAtB > 10, `A's audio reaches B (${r.rtpAtB})`)
  t.same(Object.keys(r.rtpSourcesAtA).filter(k => k.startsWith('203.0.113.10.')), [], 'nothing from C reached A')
  const bSource = Object.keys(r.rtpSourcesAtA).find(k => k.startsWith('203.0.113.9.'))
  t.ok(bSource, 'B\'s RTP source seen at A')

  // After the BYE, B's media to the same public port (same source port: the old flow) is dropped.
  const cap = captureUdp(lab, 'a', 16000, 16999)
  await cap.ready
  await lab.sendUdp('b', '203.0.113.1', publicRtp, 20, 'y'.repeat(172), Number(bSource?.split('.').pop() ?? 26000))
  await sleep(300)
  t.same(await cap.stop(), [], 'after BYE the far end\'s media reaches nobody')

  // Outbound, only the phone's negotiated ip:port gets out: another port of A reaches nobody.
  const capB = captureUdp(lab, 'b', 26000, 26999)
  await capB.ready
  await lab.sendUdp('a', '203.0.113.9', 26000, 20, 'z'.repeat(172), 16999)
  await sleep(300)
  t.same(await capB.stop(), [], 'media from a port nobody negotiated does not leave')
  t.same(await alg.elements('peer_dnat'), [])
})
