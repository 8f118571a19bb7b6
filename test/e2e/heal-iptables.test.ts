// `iptables -F FORWARD` mid-call (an operator resetting the forward rules, a firewall script's
// reload): sipalg's jump to its queue chain goes with it, so SIP would no longer reach sipalg.
// sipalg puts the jump back within a second; the call keeps its audio through its own ct-mark
// accept even though the operator's ESTABLISHED rule is gone, and its BYE is still rewritten.

import t from 'tap'
import { CLI } from '../lab/sipalg.js'
import { assertCallKept, assertNextCallWorks, midCall, msUntil, queueRulesBack } from './heal.js'

t.test('iptables -F FORWARD mid-call, FORWARD policy drop, firewall mode', async t => {
  const { lab, alg, call } = await midCall(t)
  t.equal((await lab.exec('gw', 'iptables', ['-w', '-F', 'FORWARD'])).code, 0)
  const rulesMs = await msUntil(async () => await queueRulesBack(lab))
  t.ok(rulesMs >= 0 && rulesMs < 1000, `the jump to SIPALG is back within a second (${rulesMs} ms)`)
  t.comment(`heal time seen from outside: ${rulesMs} ms`)

  assertCallKept(t, await call, 170)
  t.match(alg.log(), /"code":"E304".*were unhooked from FORWARD; re-installed them/)
  t.equal((await alg.status()).counters.ruleset_healed, 1)
  const text = await lab.sh('gw', 'node', [CLI, 'status', '--socket', alg.socket])
  t.match(text, /^Ruleset: 0 table and 1 queue-rule repairs, last \d{4}-\d\d-\d\dT[\d:.]+Z \(queue_rules, [\d.]+ ms\); checked \d+ times, [\d.]+ µs each$/m,
    'sipalg status says when it last healed')

  await assertNextCallWorks(t, lab)
  // And once more with everything flushed: the chain's own rules come back too.
  t.equal((await lab.exec('gw', 'iptables', ['-w', '-F'])).code, 0)
  t.ok(await msUntil(async () => await queueRulesBack(lab)) >= 0, 'iptables -F: the queue rules are back')
  t.match(alg.log(), /"code":"E304".*were removed; re-installed them/)
})
