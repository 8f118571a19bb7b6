// Issue 4, flow 3: re-INVITE and UPDATE — hold (UPDATE a=sendonly, re-INVITE c=IN IP4 0.0.0.0), resume on a
// new media port: the mappings follow the phone's SDP and audio resumes both ways after the hold.

import t from 'tap'
import { Lab } from '../lab/lab.js'
import { startSipalg } from '../lab/sipalg.js'
import { count, find, leaked, mPorts, runFlow, sleep, sources } from './flows.js'

t.test('hold and resume through sipalg', async t => {
  const lab = await Lab.up({ forwardPolicy: 'drop' })
  t.teardown(async () => { await lab.down() })
  const alg = await startSipalg(lab)
  t.teardown(async () => { await alg.stop() })

  await t.test('A holds (sendonly, then c=0.0.0.0), resumes with a re-INVITE on a new port: mappings follow, audio resumes', async t => {
    const snapshots: string[][] = []
    let running = true
    const flow = runFlow(lab, [
      { role: 'b', scenario: 'uas-hold.xml' },
      { role: 'a', scenario: 'uac-hold.xml', remote: '203.0.113.9:5060', durationMs: 1500 }
    ]).finally(() => { running = false })
    for (let i = 0; i < 100 && running; i++) {
      snapshots.push([...await alg.elements('peer_dnat'), ...await alg.elements('any_dnat')])
      await sleep(150)
    }
    const r = await flow
    t.ok(r.ok, r.describe())
    const atB = r.peers.b?.received ?? []
    const invites = find(atB, /^INVITE /)
    const update = find(atB, /^UPDATE /)[0] ?? ''
    t.equal(invites.length, 3, 'INVITE, the old-style hold re-INVITE and the resuming re-INVITE reached B')
    t.same([...invites, update].flatMap(leaked), [], 'no private address in any offer')
    t.match(update, /^a=sendonly\r?$/m, 'UPDATE: sendonly hold passed as written')
    t.match(invites[1] ?? '', /^c=IN IP4 0\.0\.0\.0\r?$/m, 're-INVITE: old-style hold address left as written')
    const first = mPorts(invites[0] ?? '')[0] ?? 0
    const held = mPorts(update)[0] ?? 0
    const resumed = mPorts(invites[2] ?? '')[0] ?? 0
    t.equal(held, first, 'same public port while held (same private port)')
    t.not(resumed, first, 'the new private port got a new public port')
    t.ok(resumed > 0)

    // A's private ports: sipp's first per-call port and +2 for the resume.
    const aPorts = [...new Set((r.rtp.a ?? []).map(p => p.dport))].sort()
    t.equal(aPorts.length, 2, `RTP reached A on its first and its new port (${aPorts.join(',')})`)
    const newPort = aPorts[1] ?? 0
    t.ok(count(r.rtp.a, { dport: newPort }) > 5, `b→a after resume, on the new port (${count(r.rtp.a, { dport: newPort })})`)
    t.ok(count(r.rtp.b, { src: `203.0.113.1.${resumed}` }) > 5, `a→b after resume, from the new public port (${JSON.stringify(sources(r.rtp.b))})`)
    t.ok(count(r.rtp.b, { src: `203.0.113.1.${first}` }) > 5, 'a→b before the hold from the first public port')
    t.ok(count(r.rtp.a, { dport: aPorts[0] }) > 5, 'b→a before the hold on the first port')
    t.comment(`flow 3 hold/resume: rtp a→b ${count(r.rtp.b)} (after resume ${count(r.rtp.b, { src: `203.0.113.1.${resumed}` })}) b→a ${count(r.rtp.a)} (after resume ${count(r.rtp.a, { dport: newPort })})`)

    const pinhole = (port: number): string => `203.0.113.9 . ${port} : 10.0.1.23 . `
    t.ok(snapshots.some(s => s.some(e => e.startsWith(pinhole(first)))), 'the first port was mapped, limited to B')
    t.ok(snapshots.some(s => s.some(e => e.startsWith(pinhole(resumed))) && !s.some(e => e.startsWith(pinhole(first)))),
      'after the resume the new port is mapped and the old one is gone')
    t.same(await alg.elements('any_dnat'), [], 'nothing left after BYE')
    t.same(await alg.elements('peer_dnat'), [])
  })

  const st = await alg.status()
  t.equal(st.counters.internal_errors ?? 0, 0)
  t.equal(st.counters.map_ops_failed ?? 0, 0)
  t.equal(st.calls.length, 0)
})
