// Bounded fuzzing: mutated fixtures through the whole engine, both directions. Seeded, so a
// failure reproduces; the assertions are aggregated so 5,000 iterations stay quick.
import t from 'tap'
import { rewriteDatagram } from '../../src/rewrite/rewrite.js'
import type { Direction, RewriteResult } from '../../src/rewrite/types.js'
import { parseSip } from '../../src/sip/message.js'
import { fixture, fixtureNames, makeCtx } from '../fixtures/helpers.js'

function mulberry32 (seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0
    let x = Math.imul(seed ^ (seed >>> 15), 1 | seed)
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

const TOKENS = [':', '\r\n', '\n', ' ', '<', '>', '"', ';', ',', '/', '=', '0', '99999', '-1', '\r\n ', '10.0.1.23', '203.0.113.1', 'm=audio 1 RTP/AVP 0\r\n', 'a=rtcp:', '\u0000', '\u00ff']

function mutate (buf: Buffer, rnd: () => number): Buffer {
  let b = Buffer.from(buf)
  const n = 1 + Math.floor(rnd() * 4)
  for (let k = 0; k < n; k++) {
    const at = Math.floor(rnd() * (b.length + 1))
    switch (Math.floor(rnd() * 5)) {
      case 0: if (b.length > 0) b[Math.min(at, b.length - 1)] ^= 1 << Math.floor(rnd() * 8); break
      case 1: b = b.subarray(0, at); break
      case 2: { const len = Math.floor(rnd() * 64); b = Buffer.concat([b.subarray(0, at), b.subarray(at, at + len), b.subarray(at)]); break }
      case 3: b = Buffer.concat([b.subarray(0, at), Buffer.from(TOKENS[Math.floor(rnd() * TOKENS.length)], 'latin1'), b.subarray(at)]); break
      default: { const len = Math.floor(rnd() * 16); b = Buffer.concat([b.subarray(0, at), b.subarray(at + len)]) }
    }
  }
  return b
}

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
      r = rewriteDatagram(input, direction, makeCtx())
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
