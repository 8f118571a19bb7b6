// Bounded fuzzing: mutated fixtures through the whole engine, both directions. Seeded, so a
// failure reproduces; the assertions are aggregated so 5,000 iterations stay quick.
import t from 'tap'
import type { Direction, RewriteResult } from '../../src/rewrite/types.js'
import { parseSip } from '../../src/sip/message.js'
import { fixture, fixtureNames, makeCtx, rewriteDatagram } from '../fixtures/helpers.js'
import { mulberry32, mutate } from '../fixtures/mutate.js'

t.test('5,000 mutated fixtures: no exception, well-formed results', async t => {
  const rnd = mulberry32(0x5a1a16)
  const seeds = fixtureNames().map(fixture)
  const problems: string[] = []
  let rewritten = 0
  for (let i = 0; i < 5000; i++) {
    const input = mutate(seeds[i % seeds.length], rnd)
    const direction: Direction = rnd() < 0.75 ? 'outbound' : 'inbound'
    let r: RewriteResult
    try {
      const out = rewriteDatagram(input, direction, makeCtx())
      if (typeof out === 'string') continue
      r = out
    } catch (err) {
      problems.push(`#${i} threw ${(err as Error).message}`)
      continue
    }
    if (!Buffer.isBuffer(r.bytes) || !Array.isArray(r.changes) || !Array.isArray(r.media)) problems.push(`#${i} malformed result`)
    else if (!r.changed && r.bytes !== input) problems.push(`#${i} unchanged but a new buffer`)
    else if (r.changed && !r.bytes.equals(input) && !parseSip(r.bytes).ok) problems.push(`#${i} rewritten output no longer parses`)
    else if (!r.changed && r.leftAlone === undefined) problems.push(`#${i} unchanged without a reason`)
    else if (r.changed !== (r.changes.length > 0)) problems.push(`#${i} changed flag disagrees with changes`)
    if (r.changed) rewritten++
    if (problems.length > 10) break
  }
  t.same(problems, [], 'no problems')
  t.ok(rewritten > 500, `${rewritten} mutated messages still rewritten`)
})
