// Issue 4, flow 7: forking. Two early dialogs answer A's INVITE with different SDP (tag x: B's media,
// tag y: C's address); both get a pinhole while ringing; the fork that answers keeps audio, the other's
// pinhole is removed.

import t from 'tap'
import { Lab } from '../lab/lab.js'
import { startSipalg } from '../lab/sipalg.js'
import { count, find, leaked, mPorts, runFlow, sleep, sources } from './flows.js'

t.test('forked early dialogs through sipalg', async t => {
  const lab = await Lab.up({ forwardPolicy: 'drop' })
  t.teardown(async () => { await lab.down() })
  const alg = await startSipalg(lab)
  t.teardown(async () => { await alg.stop() })

  await t.test('two 183s with different c=: both allowed while ringing; the answering fork keeps audio, the other loses its pinhole', async t => {
    let running = true
    const flow = runFlow(lab, [
      { role: 'b', scenario: 'uas-fork.xml' },
      { role: 'a', scenario: 'uac-bye.xml', remote: '203.0.113.9:5060', durationMs: 1500 }
    ]).finally(() => { running = false })

    // While ringing: C's pinhole appears; media from C (port 27000) reaches A.
    let cPinhole = ''
    for (let i = 0; i < 60 && running && cPinhole === ''; i++) {
      cPinhole = (await alg.elements('peer_dnat')).find(e => e.startsWith('203.0.113.10 . 2')) ?? ''
      if (cPinhole === '') await sleep(50)
    }
    t.not(cPinhole, '', 'fork y (c=203.0.113.10) got a pinhole while ringing')
    const pub = Number(/ \. (\d+) :/.exec(cPinhole)?.[1] ?? 0)
    const early = await lab.sendUdp('c', '203.0.113.1', pub, 5, 'early-media-from-fork-y', 27000)
    t.equal(early.code, 0)

    // After the answer from fork x: C's pinhole gone, B's stays; media from C no longer gets in.
    let answered = false
    for (let i = 0; i < 80 && running && !answered; i++) {
      const els = await alg.elements('peer_dnat')
      answered = !els.some(e => e.startsWith('203.0.113.10 . ')) && els.some(e => e.startsWith(`203.0.113.9 . ${pub} `))
      if (!answered) await sleep(50)
    }
    t.ok(answered, 'after the 200 from fork x only B may send media to the port')
    const lateFrom = Date.now() / 1000
    await lab.sendUdp('c', '203.0.113.1', pub, 5, 'late-media-from-fork-y', 27000)

    const r = await flow
    t.ok(r.ok, r.describe())
    t.equal(find(r.peers.a?.received, /^SIP\/2\.0 183 /).length, 2, 'A saw both 183s')
    const inv = find(r.peers.b?.received, /^INVITE /)[0] ?? ''
    t.same(leaked(inv), [])
    t.equal(mPorts(inv)[0], pub, 'the pinholes are on the port offered to B')
    const fromC = (r.rtp.a ?? []).filter(p => p.src.startsWith('203.0.113.10.'))
    t.ok(fromC.filter(p => p.t < lateFrom).length > 0, `fork y's media reached A while ringing (${fromC.length})`)
    t.equal(fromC.filter(p => p.t >= lateFrom).length, 0, 'fork y\'s media is refused after fork x answered')
    const fromB = count(r.rtp.a) - fromC.length
    t.ok(fromB > 10, `b→a (${fromB}) ${JSON.stringify(sources(r.rtp.a))}`)
    t.ok(count(r.rtp.b, { src: `203.0.113.1.${pub}` }) > 10, `a→b (${count(r.rtp.b)})`)
    t.comment(`flow 7 forking: rtp a→b ${count(r.rtp.b)} b→a ${fromB}; from fork y early ${fromC.filter(p => p.t < lateFrom).length} / after answer ${fromC.filter(p => p.t >= lateFrom).length}`)
    t.same(await alg.elements('any_dnat'), [])
    t.same(await alg.elements('peer_dnat'), [])
  })

  const st = await alg.status()
  t.equal(st.counters.internal_errors ?? 0, 0)
  t.equal(st.counters.map_ops_failed ?? 0, 0)
  t.equal(st.calls.length, 0)
})
