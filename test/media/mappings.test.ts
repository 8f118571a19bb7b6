// MappingTable (src/media/mappings.ts): the kernel maps' mirror — set/release/refresh/sweep, which
// changes must precede a verdict, the net change a trace shows, and the kernel batch fallback.
import t from 'tap'
import { MappingTable, applyOps, netChanges, type MapOp } from '../../src/media/mappings.js'

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
  t.equal(m.sweep().length, 0, 'swept once')
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

t.test('mustPrecedeVerdict: new elements and new data when asked; refreshes, removals and young repeats never', async t => {
  let now = 0
  const m = new MappingTable(() => now)
  m.set('any_dnat', { port: 20000 }, { ip: '10.0.1.23', port: 4000 }, 60_000, 'c1')
  t.notOk(m.mustPrecedeVerdict, 'not asked')
  m.takePending()
  m.set('src_nat', { ip: '10.0.1.23', port: 4000 }, { port: 20000 }, 60_000, 'c1', true)
  t.ok(m.mustPrecedeVerdict, 'a new element a released packet relies on')
  m.takePending()
  t.notOk(m.mustPrecedeVerdict, 'cleared with the ops')
  now = 20_000
  m.set('src_nat', { ip: '10.0.1.23', port: 4000 }, { port: 20000 }, 60_000, 'c1', true)
  t.same(m.takePending().map(o => o.op), ['delete', 'add'])
  m.set('src_nat', { ip: '10.0.1.23', port: 4000 }, { port: 20000 }, 60_000, 'c1', true)
  t.notOk(m.mustPrecedeVerdict, 'a refresh of what the kernel holds is not urgent')
  m.set('src_nat', { ip: '10.0.1.23', port: 4000 }, { port: 20002 }, 60_000, 'c2', true)
  t.ok(m.mustPrecedeVerdict, 'new data is')
  m.takePending()
  m.release('src_nat', { ip: '10.0.1.23', port: 4000 }, 'c2')
  t.notOk(m.mustPrecedeVerdict, 'a removal is not')
  m.takePending()
  m.set('any_dnat', { port: 20010 }, { ip: '10.0.1.23', port: 4010 }, 1500, 'c3')
  now += 1000
  m.takePending()
  m.set('any_dnat', { port: 20010 }, { ip: '10.0.1.23', port: 4010 }, 60_000, 'c3', true)
  t.ok(m.mustPrecedeVerdict, 'a refresh of an element about to expire in the kernel is')
})

t.test('netChanges: what a message changed, net', async t => {
  let now = 0
  const m = new MappingTable(() => now)
  const k = { ip: '203.0.113.9', port: 20000 }
  m.set('any_dnat', { port: 20000 }, { ip: '10.0.1.23', port: 4000 }, 60_000, 'c1')
  m.set('src_nat', { ip: '10.0.1.23', port: 4000 }, { port: 20000 }, 60_000, 'c1')
  m.takePending()
  now = 20_000
  const from = m.pendingCount
  m.set('src_nat', { ip: '10.0.1.23', port: 4000 }, { port: 20000 }, 60_000, 'c1') // refresh
  m.release('any_dnat', { port: 20000 }, 'c1')
  m.set('peer_dnat', k, { ip: '10.0.1.23', port: 4000 }, 60_000, 'c1')
  m.set('peer_dnat', { ip: '203.0.113.10', port: 20000 }, { ip: '10.0.1.23', port: 4000 }, 60_000, 'c1')
  m.release('peer_dnat', { ip: '203.0.113.10', port: 20000 }, 'c1') // added and removed again
  t.equal(m.pendingSince(from).length, 6)
  t.same(netChanges(m.pendingSince(from)), {
    added: [{ map: 'peer_dnat', key: k, data: { ip: '10.0.1.23', port: 4000 } }],
    removed: [{ map: 'any_dnat', key: { port: 20000 }, data: { ip: '10.0.1.23', port: 4000 } }]
  })
  m.set('src_nat', { ip: '10.0.1.23', port: 4000 }, { port: 20002 }, 60_000, 'c2')
  t.same(netChanges(m.pendingSince(from + 6)).added, [{ map: 'src_nat', key: { ip: '10.0.1.23', port: 4000 }, data: { port: 20002 } }], 'new data: shown as added')
  t.same(netChanges([]), { added: [], removed: [] })
})

t.test('adopt, disownShared, get/all skip expired, sweep', async t => {
  let now = 0
  const m = new MappingTable(() => now)
  m.adopt('src_nat', { ip: '10.0.1.23', port: 4000 }, { port: 20000 }, 5000, 60_000, 'adopted')
  m.adopt('src_nat', { ip: '10.0.1.23', port: 4002 }, { port: 20002 }, 50_000, 60_000, 'adopted')
  t.same(m.takePending(), [], 'adoption sends nothing')
  m.set('src_nat', { ip: '10.0.1.23', port: 4000 }, { port: 20000 }, 60_000, 'call')
  m.disownShared('adopted')
  t.same([...(m.get('src_nat', { ip: '10.0.1.23', port: 4000 })?.owners ?? [])], ['call'])
  t.same([...(m.get('src_nat', { ip: '10.0.1.23', port: 4002 })?.owners ?? [])], ['adopted'], 'unclaimed stays adopted')
  now = 55_000
  t.equal(m.get('src_nat', { ip: '10.0.1.23', port: 4002 }), undefined)
  t.equal([...m.all()].length, 1)
  t.same(m.sweep().map(e => e.key.port), [4002])
  t.equal(m.release('src_nat', { ip: '10.0.1.9', port: 1 }, 'x'), undefined, 'releasing an unknown element')
})

t.test('applyOps: one batch when the kernel takes it; a failed add reported', async t => {
  const batches: MapOp[][] = []
  const ok = { apply (ops: MapOp[]) { batches.push(ops) } }
  t.same(applyOps(ok, []), [])
  t.equal(batches.length, 0, 'nothing to send: no batch')
  const ops: MapOp[] = [{ op: 'add', map: 'any_dnat', key: { port: 1 }, data: { ip: '10.0.1.23', port: 2 }, timeoutMs: 1 }]
  t.same(applyOps(ok, ops), [])
  t.equal(batches.length, 1)
  const refuse = { apply () { throw new Error('ENOSPC') } }
  const failed = applyOps(refuse, [{ op: 'delete', map: 'any_dnat', key: { port: 3 } }, ...ops])
  t.same(failed.map(f => [f.op.key.port, f.error.message]), [[1, 'ENOSPC']], 'a delete that fails alone is what we wanted; the add is reported')
})
