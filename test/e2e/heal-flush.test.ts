// `systemctl restart nftables` mid-call on a gateway whose firewall drops forwarded traffic by
// default: the reload replaces the whole ruleset (sipalg's table and its iptables-nft queue rules
// with it) by the operator's own. sipalg notices within a second and puts its part back, so the
// call keeps its audio, its BYE is still rewritten, and the next call works.

import t from 'tap'
import { OPERATOR_NFTABLES_CONF, assertCallKept, assertNextCallWorks, midCall, msUntil, queueRulesBack } from './heal.js'

t.test('nft flush ruleset + the operator\'s rules, mid-call, firewall mode', async t => {
  // A table or queue rules left missing would cut the BYE's rewrite; an outage of more than a
  // second would cost 30+ of the call's ≈ 200 packets each way.
  const { lab, alg, call } = await midCall(t)
  const reload = await lab.exec('gw', 'nft', ['-f', '-'], { input: OPERATOR_NFTABLES_CONF })
  t.equal(reload.code, 0, reload.stderr)
  const tableMs = await msUntil(async () => (await lab.exec('gw', 'nft', ['list', 'chain', 'ip', 'sipalg', 'pre'])).stdout.includes('dnat'))
  const rulesMs = await msUntil(async () => await queueRulesBack(lab))
  t.ok(tableMs >= 0 && tableMs < 1000, `the table is back within a second (${tableMs} ms after the reload)`)
  t.ok(rulesMs >= 0 && rulesMs < 1000, `the queue rules are back within a second (${rulesMs} ms)`)
  t.ok((await alg.elements('peer_dnat')).some(e => / : 10\.0\.1\.23 \. 1\d{4}$/.test(e)), 'the call\'s pinhole is back in the map')
  t.comment(`heal time seen from outside: table ${tableMs} ms, queue rules ${rulesMs} ms`)

  assertCallKept(t, await call, 170)
  t.match(alg.log(), /"level":40,.*"code":"E303".*E303: nft table ip sipalg was deleted by someone else/)
  t.match(alg.log(), /"code":"E304".*E304: sipalg's queue rules .* were removed; re-installed them/)
  const status = await alg.status() as unknown as { counters: Record<string, number>, ruleset: { tableHeals: number, queueRuleHeals: number, lastHeal: { at: string, healMs: number } | null, checkUsMean: number } }
  t.equal(status.ruleset.tableHeals, 1, 'one table repair')
  t.equal(status.ruleset.queueRuleHeals, 1, 'one queue-rule repair')
  t.equal(status.counters.ruleset_healed, 2)
  t.ok(status.ruleset.lastHeal !== null && Date.now() - Date.parse(status.ruleset.lastHeal.at) < 30_000, 'status says when it last healed')
  t.comment(`heal time inside sipalg: ${String(status.ruleset.lastHeal?.healMs)} ms; one check costs ${status.ruleset.checkUsMean} µs`)

  await assertNextCallWorks(t, lab)
  t.equal((await alg.status()).counters.ruleset_healed, 2, 'nothing more to heal')

  // `nft flush ruleset` with nothing restored: no MASQUERADE, no filter at all. sipalg's part comes
  // back, and calls still work: the phone's SIP and media leave through sipalg's own SNAT.
  t.equal((await lab.exec('gw', 'nft', ['flush', 'ruleset'])).code, 0)
  t.ok(await msUntil(async () => await queueRulesBack(lab) && (await lab.exec('gw', 'nft', ['list', 'chain', 'ip', 'sipalg', 'post'])).stdout.includes('snat')) >= 0,
    'flush ruleset alone: sipalg\'s table and queue rules are back')
  t.equal((await alg.status()).counters.ruleset_healed, 4)
  await assertNextCallWorks(t, lab)
})
