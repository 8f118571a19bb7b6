// Port pools (src/media/ports.ts): media pairs from the configured range, least recently freed
// reused last; signalling ports outside the media range.
import t from 'tap'
import { MediaPortPool, SignallingPortPool } from '../../src/media/ports.js'

t.test('media pool: even pairs, exhaustion, reuse order, claim, contains', async t => {
  const p = new MediaPortPool(20001, 20009)
  t.same([p.take(), p.take(), p.take(), p.take()], [20002, 20004, 20006, 20008])
  t.equal(p.take(), null, 'exhausted')
  t.equal(p.inUse, 4)
  p.release(20004); p.release(20002); p.release(20003)
  t.equal(p.inUse, 2, 'an odd port releases its pair; a free pair twice is nothing')
  t.equal(p.take(), 20004)
  t.equal(p.take(), 20002)
  const q = new MediaPortPool(20000, 20010)
  t.ok(q.claim(20005), 'the pair of an RTCP port')
  t.notOk(q.claim(20004), 'pair already claimed')
  t.notOk(q.claim(30000), 'outside the range')
  t.not(q.take(), 20004)
  t.ok(q.contains(20010)); t.notOk(q.contains(20011)); t.notOk(q.contains(19999))
})

t.test('media pool: a long run of takes and releases stays correct (the free list is compacted)', async t => {
  const p = new MediaPortPool(20000, 29999)
  const held: number[] = []
  for (let i = 0; i < 20_000; i++) {
    const port = p.take()
    if (port === null) throw new Error('exhausted')
    held.push(port)
    if (held.length > 10) p.release(held.shift() as number)
  }
  t.equal(p.inUse, 10)
  t.equal(new Set(held).size, 10)
  t.notOk(p.claim(held[0]), 'a held pair cannot be claimed')
  p.release(held[0])
  t.ok(p.claim(held[0]), 'once released it can')
})

t.test('signalling pool: same number first, next free for a second phone, never in the media range', async t => {
  const s = new SignallingPortPool(p => p >= 20000 && p <= 29999)
  t.equal(s.take(5060), 5060)
  t.equal(s.take(5060), 5061)
  t.equal(s.take(19999), 19999)
  t.equal(s.take(19999), 30000, 'skips the media range')
  t.equal(s.take(65535), 65535)
  t.equal(s.take(65535), 1024, 'wraps around above 1024')
  t.notOk(s.claim(5060)); t.ok(s.claim(5070))
  s.release(5060)
  t.equal(s.take(5060), 5060)
  const full = new SignallingPortPool(() => true)
  t.equal(full.take(5060), null, 'nothing free')
})
