import t from 'tap'
import { MappingTable, applyOps, type MapOp } from '../../src/media/mappings.js'
import { MediaPortPool, SignallingPortPool } from '../../src/media/ports.js'
import { parsePortRange } from '../../src/validate.js'

t.test('set, refresh, replace, release', async t => {
  let now = 1000
  const m = new MappingTable(() => now)
  m.set('src_nat', { ip: '10.0.1.23', port: 4000 }, { port: 20000 }, 60_000, 'c1')
  t.same(m.takePending(), [{ op: 'add', map: 'src_nat', key: { ip: '10.0.1.23', port: 4000 }, data: { port: 20000 }, timeoutMs: 60_000 }])
  now += 1000
  m.set('src_nat', { ip: '10.0.1.23', port: 4000 }, { port: 20000 }, 60_000, 'c1')
  t.same(m.takePending(), [], 'young unchanged element is not re-sent')
  now += 20_000
  m.set('src_nat', { ip: '10.0.1.23', port: 4000 }, { port: 20000 }, 60_000, 'c1')
  t.same(m.takePending().map(o => o.op), ['delete', 'add'], 'older element is refreshed by replacing it (a re-add keeps the old expiry)')
  m.set('src_nat', { ip: '10.0.1.23', port: 4000 }, { port: 20002 }, 60_000, 'c2')
  t.same(m.takePending().map(o => o.op), ['delete', 'add'], 'other data: delete then add in one batch')
  m.set('src_nat', { ip: '10.0.1.23', port: 4000 }, { port: 20002 }, 60_000, 'c3')
  m.takePending()
  m.release('src_nat', { ip: '10.0.1.23', port: 4000 }, 'c2')
  t.same(m.takePending(), [], 'another owner still relies on it')
  m.release('src_nat', { ip: '10.0.1.23', port: 4000 }, 'c3')
  t.same(m.takePending().map(o => o.op), ['delete'])
  m.release('src_nat', { ip: '10.0.1.23', port: 4000 }, 'c3')
  t.same(m.takePending(), [], 'releasing twice sends nothing')
})

t.test('expired elements are never deleted (the kernel dropped them already)', async t => {
  let now = 0
  const m = new MappingTable(() => now)
  m.set('any_dnat', { port: 20000 }, { ip: '10.0.1.23', port: 4000 }, 5000, 'c1')
  m.takePending()
  now = 10_000
  m.release('any_dnat', { port: 20000 }, 'c1')
  t.same(m.takePending(), [])
  m.set('any_dnat', { port: 20000 }, { ip: '10.0.1.24', port: 4000 }, 5000, 'c2')
  t.same(m.takePending().map(o => o.op), ['add'], 'no delete of an expired element')
  now = 20_000
  t.equal(m.sweep().length, 1)
  t.equal(m.size, 0)
})

t.test('applyOps falls back op by op when the kernel refuses a batch', async t => {
  const kernel = new Map<string, string>()
  const calls: MapOp[][] = []
  const fake = {
    apply (ops: MapOp[]) {
      calls.push(ops)
      const next = new Map(kernel)
      for (const o of ops) {
        const k = `${o.map}|${o.key.ip ?? ''}|${o.key.port}`
        if (o.op === 'delete') { if (!next.delete(k)) throw new Error('ENOENT') } else {
          const d = JSON.stringify(o.data)
          if (next.has(k) && next.get(k) !== d) throw new Error('EEXIST')
          next.set(k, d)
        }
      }
      kernel.clear(); for (const [k, v] of next) kernel.set(k, v)
    }
  }
  kernel.set('any_dnat||20002', JSON.stringify({ ip: '10.0.1.9', port: 1 }))
  const failed = applyOps(fake, [
    { op: 'delete', map: 'any_dnat', key: { port: 20000 } }, // already gone
    { op: 'add', map: 'any_dnat', key: { port: 20002 }, data: { ip: '10.0.1.23', port: 4000 }, timeoutMs: 1 }, // stale other data
    { op: 'add', map: 'any_dnat', key: { port: 20004 }, data: { ip: '10.0.1.23', port: 4002 }, timeoutMs: 1 }
  ])
  t.same(failed, [])
  t.equal(kernel.get('any_dnat||20002'), JSON.stringify({ ip: '10.0.1.23', port: 4000 }))
  t.ok(kernel.has('any_dnat||20004'))
  t.ok(calls.length > 1, 'the whole batch was refused first')
})

t.test('media port pool: even pairs, least recently freed reused last', async t => {
  const p = new MediaPortPool(20001, 20009)
  t.same([p.take(), p.take(), p.take(), p.take()], [20002, 20004, 20006, 20008])
  t.equal(p.take(), null, 'exhausted')
  p.release(20004); p.release(20002)
  t.equal(p.take(), 20004)
  t.equal(p.take(), 20002)
  t.throws(() => parsePortRange('30000-20000'))
  t.same(parsePortRange('20000-29999'), { lo: 20000, hi: 29999 })
  const q = new MediaPortPool(20000, 20010)
  t.ok(q.claim(20005)); t.notOk(q.claim(20004), 'pair already claimed')
  t.not(q.take(), 20004)
})

t.test('signalling ports: same number first, next free for a second phone', async t => {
  const s = new SignallingPortPool(p => p >= 20000 && p <= 29999)
  t.equal(s.take(5060), 5060)
  t.equal(s.take(5060), 5061)
  t.equal(s.take(19999), 19999)
  t.equal(s.take(19999), 30000, 'skips the media range')
})
