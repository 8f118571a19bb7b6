// The lab itself (spec §1) and the baseline it exists to detect: with plain NAT and no sipalg, a SIP
// call "connects" but the far end sees the phone's private address and audio is one-way.
import t from 'tap'
import { Lab, ADDR, listLabNamespaces, type Role } from './lab/lab.js'
import { runCall, captureUdp, addressesIn, privateAddresses } from './lab/sip.js'

const addrs = async (lab: Lab, role: Role): Promise<string[]> =>
  (await lab.sh(role, 'ip', ['-4', '-o', 'addr', 'show'])).split('\n')
    .flatMap(l => { const m = /^\d+:\s+(\S+)\s+inet (\S+)/.exec(l); return m === null ? [] : [`${m[1]} ${m[2]}`] })

for (const policy of ['accept', 'drop'] as const) {
  t.test(`lab with FORWARD policy ${policy}`, async t => {
    const lab = await Lab.up({ forwardPolicy: policy })
    const runId = lab.runId
    t.teardown(() => lab.down())

    t.test('namespaces, addresses, routes, gateway settings', async t => {
      t.same((await listLabNamespaces(runId)).sort(), ['a', 'a2', 'b', 'c', 'gw'].map(r => `sipalg-${runId}-${r}`).sort())
      t.equal(lab.ns('gw'), `sipalg-${runId}-gw`)
      t.same((await addrs(lab, 'gw')).sort(), ['lan0 10.0.1.1/24', 'lo 127.0.0.1/8', 'wan0 203.0.113.1/24'])
      t.same(await addrs(lab, 'a'), ['lo 127.0.0.1/8', 'eth0 10.0.1.23/24'])
      t.same(await addrs(lab, 'a2'), ['lo 127.0.0.1/8', 'eth0 10.0.1.24/24'])
      t.same(await addrs(lab, 'b'), ['lo 127.0.0.1/8', 'eth0 203.0.113.9/24'])
      t.same(await addrs(lab, 'c'), ['lo 127.0.0.1/8', 'eth0 203.0.113.10/24'])
      t.match(await lab.sh('a', 'ip', ['route']), /^default via 10\.0\.1\.1 dev eth0/m)
      t.match(await lab.sh('a2', 'ip', ['route']), /^default via 10\.0\.1\.1 dev eth0/m)
      t.notMatch(await lab.sh('b', 'ip', ['route']), /default/, 'outside phones have no default route')
      t.notMatch(await lab.sh('c', 'ip', ['route']), /default/)
      t.equal((await lab.sh('gw', 'sysctl', ['-n', 'net.ipv4.ip_forward'])).trim(), '1')
      const filter = await lab.sh('gw', 'iptables', ['-w', '-S', 'FORWARD'])
      t.match(await lab.sh('gw', 'iptables', ['-w', '-t', 'nat', '-S', 'POSTROUTING']), /-A POSTROUTING -o wan0 -j MASQUERADE/)
      if (policy === 'drop') {
        t.match(filter, /-P FORWARD DROP/)
        t.match(filter, /-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT/)
        t.match(filter, /-A FORWARD -i lan0 -o wan0 -j ACCEPT/)
      } else {
        t.equal(filter.trim(), '-P FORWARD ACCEPT')
      }
    })

    t.test('plain NAT: UDP from A reaches B from 203.0.113.1; B cannot reach 10.0.1.23', async t => {
      await lab.flushConntrack()
      const cap = captureUdp(lab, 'b', 9999, 9999)
      await cap.ready
      const s = await lab.sendUdp('a', ADDR.b, 9999, 3)
      t.equal(s.code, 0, s.stderr)
      await new Promise(resolve => setTimeout(resolve, 300))
      const pkts = await cap.stop()
      t.equal(pkts.length, 3)
      t.ok(pkts.every(p => p.startsWith('203.0.113.1.')), `masqueraded: ${pkts.join(', ')}`)
      // A2 too, and A to C.
      const cap2 = captureUdp(lab, 'c', 9999, 9999)
      await cap2.ready
      t.equal((await lab.sendUdp('a2', ADDR.c, 9999, 2)).code, 0)
      await new Promise(resolve => setTimeout(resolve, 300))
      t.equal((await cap2.stop()).filter(p => p.startsWith('203.0.113.1.')).length, 2)

      const back = await lab.sendUdp('b', ADDR.a, 9999, 1)
      t.not(back.code, 0, 'a leaked private address is unroutable from outside')
      t.match(back.stderr, /ENETUNREACH/)
      // Unsolicited inbound to the gateway's public address does not reach A either.
      const capA = captureUdp(lab, 'a', 9999, 9999)
      await capA.ready
      await lab.sendUdp('b', ADDR.gwPublic, 9999, 2)
      await new Promise(resolve => setTimeout(resolve, 300))
      t.equal((await capA.stop()).length, 0)
    })

    t.test('baseline call, plain NAT, no sipalg: connects, but B sees 10.0.1.23 and audio is one-way', async t => {
      const r = await runCall(lab, { from: 'a', to: 'b', rtp: true, byeFrom: 'a', durationMs: 1500 })
      t.ok(r.ok, `call completed (exit A ${r.exitA}, B ${r.exitB})`, { logA: r.logA.slice(-1500), logB: r.logB.slice(-1500) })
      t.match(r.okSeenByA, /^SIP\/2\.0 200 OK/, 'A got 200 OK')
      t.ok(r.inviteSeenByB !== '' && r.ackSeenByB !== '' && r.byeSeenByB !== '', 'B saw INVITE, ACK, BYE')
      const inv = addressesIn(r.inviteSeenByB)
      t.same(inv.c, ['10.0.1.23'], 'SDP c= seen by B is the private address')
      t.same(inv.o, ['10.0.1.23'])
      t.same(inv.via, ['10.0.1.23:5060'])
      t.match(inv.contact[0], /10\.0\.1\.23/)
      t.same(privateAddresses(r.inviteSeenByB), ['10.0.1.23'])
      t.match(r.ackSeenByB, /10\.0\.1\.23/)
      t.equal(r.rtpAtA, 0, 'no RTP from B arrives at A')
      t.ok(r.rtpAtB > 20, `A's RTP arrives at B (${r.rtpAtB} packets)`)
      t.same(Object.keys(r.rtpSourcesAtB), [`${ADDR.gwPublic}.16000`], 'from the gateway address (MASQUERADE kept the port)')
      t.match(r.logB, /Network is unreachable/, "B's RTP to 10.0.1.23 fails at B")
      t.comment(`baseline (${policy}): rtpAtA=${r.rtpAtA} rtpAtB=${r.rtpAtB} c=${inv.c.join(',')} via=${inv.via.join(',')} contact=${inv.contact.join(',')}`)
    })

    t.test('baseline call, B hangs up', async t => {
      const r = await runCall(lab, { from: 'a', to: 'b', byeFrom: 'b', durationMs: 1000 })
      t.ok(r.ok, `call completed (exit A ${r.exitA}, B ${r.exitB})`)
      t.equal(r.byeSeenByB, '')
      t.ok(r.receivedByA.some(m => m.startsWith('BYE ')), 'A received the BYE of B through the NAT')
      t.equal(r.rtpAtA, 0)
      t.ok(r.rtpAtB > 10, `rtpAtB=${r.rtpAtB}`)
    })

    t.test('signalling only (rtp: false), A2 calls C', async t => {
      const r = await runCall(lab, { from: 'a2', to: 'c', rtp: false, durationMs: 200 })
      t.ok(r.ok)
      t.equal(r.rtpAtA + r.rtpAtB, 0)
      t.same(addressesIn(r.inviteSeenByB).c, ['10.0.1.24'])
    })

    t.test('down removes every namespace, twice is fine', async t => {
      await lab.down()
      t.same(await listLabNamespaces(runId), [])
      await lab.down()
      t.notOk(lab.running)
      t.throws(() => lab.exec('a', 'true'))
    })
  })
}

t.test('a spawned process is killed by PID on down(); exec has a timeout', async t => {
  const lab = await Lab.up()
  t.teardown(() => lab.down())
  const p = lab.spawn('gw', 'sleep', ['60'])
  const exited = new Promise<void>(resolve => p.on('exit', () => resolve()))
  t.ok(typeof p.pid === 'number')
  const r = await lab.exec('gw', 'sleep', ['5'], { timeoutMs: 200 })
  t.ok(r.timedOut, 'exec timeout kills the command')
  await lab.down()
  await exited
  t.pass('spawned process gone')
  t.same(await listLabNamespaces(lab.runId), [])
})
