// Issue 4, flows 8–10: audio + video (a=rtcp and a=rtcp-mux), video declined with m=video 0; a phone that
// already writes only public addresses (STUN/rport) and an ICE phone, left alone and logged; SIP on a
// configured port other than 5060.

import t from 'tap'
import { Lab } from '../lab/lab.js'
import { MEDIA_BASE } from '../lab/sip.js'
import { startSipalg } from '../lab/sipalg.js'
import { count, find, leaked, mPorts, runFlow, sleep, sources } from './flows.js'

t.test('media variants and phones sipalg leaves alone', async t => {
  const lab = await Lab.up({ forwardPolicy: 'drop' })
  t.teardown(async () => { await lab.down() })
  const alg = await startSipalg(lab, { args: ['--log-level', 'debug'] })
  t.teardown(async () => { await alg.stop() })

  const watch = async (flow: Promise<unknown>): Promise<string[][]> => {
    let running = true
    void flow.finally(() => { running = false })
    const snaps: string[][] = []
    for (let i = 0; i < 100 && running; i++) {
      snaps.push([...await alg.elements('peer_dnat'), ...(await alg.elements('any_dnat')).map(e => `any ${e}`)])
      await sleep(150)
    }
    return snaps
  }

  await t.test('audio (a=rtcp) + video (a=rtcp-mux): both mapped, RTP both ways on both streams', async t => {
    const flow = runFlow(lab, [
      { role: 'b', scenario: 'uas-video.xml' },
      { role: 'a', scenario: 'uac-video.xml', remote: '203.0.113.9:5060', durationMs: 1500, keys: { rtcpport: String(MEDIA_BASE.a + 1) } }
    ])
    const snaps = await watch(flow)
    const r = await flow
    t.ok(r.ok, r.describe())
    const inv = find(r.peers.b?.received, /^INVITE /)[0] ?? ''
    t.same(leaked(inv), [])
    const [audio, video] = mPorts(inv)
    t.match(inv, new RegExp(`^a=rtcp:${(audio ?? 0) + 1}\\r?$`, 'm'), 'explicit a=rtcp follows the public RTCP port')
    t.match(inv, /^a=rtcp-mux\r?$/m)
    t.not(video, audio)
    // sipp 3.6.1 with two m= lines sends both pcaps from/to the port of the last m= line it wrote or
    // read (seen here: everything on the video ports), so per-stream counts wait for another RTP source.
    const todo = { todo: 'sipp 3.6.1 plays audio and video pcaps on the last m= port only' }
    const aPorts = [...new Set((r.rtp.a ?? []).map(p => p.dport))].sort()
    t.ok(count(r.rtp.a) > 10 && count(r.rtp.b) > 10, `media both ways (${count(r.rtp.b)}/${count(r.rtp.a)})`)
    t.ok(count(r.rtp.b, { src: `203.0.113.1.${video}` }) > 10, `a→b on the video mapping (${JSON.stringify(sources(r.rtp.b))})`)
    t.equal(aPorts.length, 2, `RTP reached A on the audio and the video port (${aPorts.join(',')})`, todo)
    t.ok(count(r.rtp.b, { src: `203.0.113.1.${audio}` }) > 10, 'a→b audio', todo)
    const during = snaps.find(s => s.some(e => e.startsWith(`203.0.113.9 . ${video} `))) ?? []
    t.ok(during.some(e => e.startsWith(`203.0.113.9 . ${(audio ?? 0) + 1} `)), 'audio RTCP port mapped')
    t.notOk(during.some(e => e.startsWith(`203.0.113.9 . ${(video ?? 0) + 1} `)), 'no RTCP port for the rtcp-mux video')
    t.comment(`flow 8 audio+video: audio a→b ${count(r.rtp.b, { src: `203.0.113.1.${audio}` })} b→a ${count(r.rtp.a, { dport: aPorts[0] })}; video a→b ${count(r.rtp.b, { src: `203.0.113.1.${video}` })} b→a ${count(r.rtp.a, { dport: aPorts[1] })}`)
    t.same(await alg.elements('any_dnat'), [])
    t.same(await alg.elements('peer_dnat'), [])
  })

  await t.test('video declined with m=video 0: audio flows, the video port is unmapped once answered', async t => {
    const flow = runFlow(lab, [
      { role: 'b', scenario: 'uas-video-declined.xml' },
      { role: 'a', scenario: 'uac-video.xml', remote: '203.0.113.9:5060', durationMs: 1500, keys: { rtcpport: String(MEDIA_BASE.a + 1) } }
    ])
    const snaps = await watch(flow)
    const r = await flow
    t.ok(r.ok, r.describe())
    const [audio, video] = mPorts(find(r.peers.b?.received, /^INVITE /)[0] ?? '')
    t.ok(count(r.rtp.a) > 10, `b→a (${count(r.rtp.a)})`)
    // A (sipp) sends its audio from the declined video port, which sipalg rightly no longer maps.
    t.ok(count(r.rtp.b, { src: `203.0.113.1.${audio}` }) > 10, `a→b audio (${JSON.stringify(sources(r.rtp.b))})`,
      { todo: 'sipp 3.6.1 sends audio from the last m= port it wrote (the declined video port)' })
    const answered = snaps.filter(s => s.some(e => e.startsWith(`203.0.113.9 . ${audio} `)))
    t.ok(answered.length > 0, 'audio pinhole limited to B')
    t.notOk(answered.some(s => s.some(e => e.includes(` ${video} :`) || e.startsWith(`any ${video} `))), 'no mapping for the declined video port after the answer')
    t.comment(`flow 8 video declined: rtp a→b ${count(r.rtp.b)} b→a ${count(r.rtp.a)}`)
    t.same(await alg.elements('any_dnat'), [])
    t.same(await alg.elements('peer_dnat'), [])
  })

  await t.test('a phone that already writes public addresses (STUN/rport): left alone, logged, audio both ways', async t => {
    const r = await runFlow(lab, [
      { role: 'b', scenario: 'uas-wait-bye-late-rtp.xml' },
      { role: 'a', scenario: 'uac-public.xml', remote: '203.0.113.9:5060', durationMs: 1500 }
    ])
    t.ok(r.ok, r.describe())
    const inv = find(r.peers.b?.received, /^INVITE /)[0] ?? ''
    const sent = find(r.peers.a?.sent, /^INVITE /)[0] ?? ''
    t.equal(inv.replace(/\s+$/, ''), sent.replace(/\s+$/, ''), 'B got the INVITE byte for byte as A wrote it')
    t.ok(count(r.rtp.a) > 10 && count(r.rtp.b) > 10, `audio both ways (${count(r.rtp.b)}/${count(r.rtp.a)})`)
    t.comment(`flow 9 already public: rtp a→b ${count(r.rtp.b)} b→a ${count(r.rtp.a)}`)
    const callId = /^Call-ID:\s*(\S+)/m.exec(sent)?.[1] ?? '?'
    const lines = alg.log().split('\n').filter(l => l.includes(callId) && l.includes('"leftAlone":"already-public"'))
    t.ok(lines.length > 0, 'the log says it was left alone (already-public)')
    t.same(await alg.elements('any_dnat'), [])
  })

  await t.test('an ICE phone: its SDP is left as written and logged; signalling still mapped; audio both ways', async t => {
    const r = await runFlow(lab, [
      { role: 'b', scenario: 'uas-wait-bye-late-rtp.xml' },
      { role: 'a', scenario: 'uac-ice.xml', remote: '203.0.113.9:5060', durationMs: 1500, keys: { icePort: String(MEDIA_BASE.a) } }
    ])
    t.ok(r.ok, r.describe())
    const inv = find(r.peers.b?.received, /^INVITE /)[0] ?? ''
    const sent = find(r.peers.a?.sent, /^INVITE /)[0] ?? ''
    const body = (m: string): string => m.slice(m.search(/\r?\n\r?\n/)).trim()
    t.equal(body(inv), body(sent), 'SDP unchanged (candidates, c=, m= as the phone wrote them)')
    t.match(inv, /^Via: SIP\/2\.0\/UDP 203\.0\.113\.1:5060;/m, 'Via still mapped')
    t.match(inv, /^Contact: <sip:alice@203\.0\.113\.1:5060>/m, 'Contact still mapped')
    t.ok(count(r.rtp.a) > 10 && count(r.rtp.b) > 10, `audio both ways (${count(r.rtp.b)}/${count(r.rtp.a)})`)
    t.comment(`flow 9 ICE: rtp a→b ${count(r.rtp.b)} b→a ${count(r.rtp.a)}`)
    const callId = /^Call-ID:\s*(\S+)/m.exec(sent)?.[1] ?? '?'
    t.ok(alg.log().split('\n').some(l => l.includes(callId) && l.includes('"leftAlone":"ice"')), 'the log says the SDP was left alone (ice)')
    t.same(await alg.elements('any_dnat'), [])
  })

  const st = await alg.status()
  t.equal(st.counters.internal_errors ?? 0, 0)
  t.equal(st.counters.map_ops_failed ?? 0, 0)
  t.equal(st.calls.length, 0)
})

t.test('SIP on port 5080 when configured', async t => {
  const lab = await Lab.up({ forwardPolicy: 'drop' })
  t.teardown(async () => { await lab.down() })
  const alg = await startSipalg(lab, { args: ['--sip-ports', '5060,5080'], ruleArgs: ['--sip-ports', '5060,5080'] })
  t.teardown(async () => { await alg.stop() })
  const r = await runFlow(lab, [
    { role: 'b', scenario: 'uas-wait-bye.xml', port: 5080 },
    { role: 'a', scenario: 'uac-bye.xml', port: 5080, remote: '203.0.113.9:5080', durationMs: 1500 }
  ])
  t.ok(r.ok, r.describe())
  const inv = find(r.peers.b?.received, /^INVITE /)[0] ?? ''
  t.same(leaked(inv), [], 'rewritten on 5080 too')
  t.match(inv, /^Via: SIP\/2\.0\/UDP 203\.0\.113\.1:5080;/m)
  const pub = mPorts(inv)[0] ?? 0
  t.ok(count(r.rtp.a) > 10, `b→a (${count(r.rtp.a)})`)
  t.ok(count(r.rtp.b, { src: `203.0.113.1.${pub}` }) > 10, `a→b from the public port (${JSON.stringify(sources(r.rtp.b))})`)
  t.comment(`flow 10 port 5080: rtp a→b ${count(r.rtp.b)} b→a ${count(r.rtp.a)}`)
  t.same(await alg.elements('any_dnat'), [])
  t.same(await alg.elements('peer_dnat'), [])
  t.equal((await alg.status()).calls.length, 0)
})
