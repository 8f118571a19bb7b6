// SIP over TCP through the splice (issue 11), FORWARD policy DROP: sipp over TCP (-t t1) from phone A
// to B with RTP both ways; B sees only the gateway's public address; sipalg status lists the
// connection while it lives; stopping sipalg removes the interception it installed.
import t from 'tap'
import { Lab } from '../lab/lab.js'
import { startSipalg } from '../lab/sipalg.js'
import { count, find, leaked, mPorts, runFlow, sources } from './flows.js'

t.test('outbound call over TCP through the splice', async t => {
  const lab = await Lab.up({ forwardPolicy: 'drop' })
  t.teardown(async () => { await lab.down() })
  const before = await lab.sh('gw', 'ip', ['-4', 'rule'])
  const alg = await startSipalg(lab)
  t.teardown(async () => { await alg.stop() })
  t.match(await lab.sh('gw', 'nft', ['list', 'chain', 'ip', 'sipalg', 'tcp_divert']), /tproxy to :50600/, 'the divert chain is in sipalg\'s table')

  const r = await runFlow(lab, [
    { role: 'b', scenario: 'uas-wait-bye.xml', transport: 'tcp' },
    { role: 'a', scenario: 'uac-bye.xml', remote: '203.0.113.9:5060', durationMs: 1500, transport: 'tcp' }
  ])
  t.ok(r.ok, r.describe())
  const inv = find(r.peers.b?.received, /^INVITE /)[0] ?? ''
  t.match(inv, /^Via: SIP\/2\.0\/TCP 203\.0\.113\.1:\d+/m, 'the Via names the public address, transport TCP')
  t.match(inv, /^c=IN IP4 203\.0\.113\.1\r?$/m)
  t.same(leaked(inv), [], 'no private address in the INVITE at B')
  for (const m of r.peers.b?.received ?? []) t.same(leaked(m), [], `no private address at B: ${m.split('\n')[0]}`)
  const pub = mPorts(inv)[0] ?? 0
  t.ok(count(r.rtp.b, { src: `203.0.113.1.${pub}` }) > 10, `a→b RTP from the public port (${JSON.stringify(sources(r.rtp.b))})`)
  t.ok(count(r.rtp.a) > 10, `b→a RTP reached A (${count(r.rtp.a)})`)
  const st = await alg.status() as unknown as { counters: Record<string, number> }
  t.ok((st.counters.tcp_connections ?? 0) >= 1, 'the connection was spliced')
  t.ok((st.counters.tcp_messages_outbound ?? 0) >= 3, `INVITE, ACK, BYE at least went through the ALG (${st.counters.tcp_messages_outbound})`)
  t.equal(st.counters.tcp_framing_errors, undefined)
  t.comment(`tcp call: rtp a→b ${count(r.rtp.b)} b→a ${count(r.rtp.a)}; counters ${JSON.stringify(Object.fromEntries(Object.entries(st.counters).filter(([k]) => k.startsWith('tcp'))))}`)

  /** The divert chain as nft lists it, once the ruleset watch has put it back (at most 5 s). */
  const divertBack = async (): Promise<string> => {
    const until = Date.now() + 5000
    let out = ''
    while (Date.now() < until && !/tproxy to :50600/.test(out)) {
      await new Promise(resolve => setTimeout(resolve, 200))
      out = (await lab.exec('gw', 'nft', ['list', 'chain', 'ip', 'sipalg', 'tcp_divert'])).stdout
    }
    return out
  }
  // A firewall reload that removes sipalg's table: the watch re-creates it, divert chain included.
  await lab.sh('gw', 'nft', ['delete', 'table', 'ip', 'sipalg'])
  t.match(await divertBack(), /tproxy to :50600/, 'the divert chain is back after the table was deleted')
  // The divert chain alone deleted: the watch notices it too.
  await lab.sh('gw', 'nft', ['delete', 'chain', 'ip', 'sipalg', 'tcp_divert'])
  t.match(await divertBack(), /tproxy to :50600/, 'the divert chain is back after it alone was deleted')

  await alg.stop()
  t.equal(await lab.sh('gw', 'ip', ['-4', 'rule']), before, 'the ip rule is gone again')
  t.notMatch(await lab.sh('gw', 'nft', ['list', 'table', 'ip', 'sipalg']), /tcp_divert/, 'the divert chain is gone')
})
