// The standby's follower (src/store/follower.ts): store changes become kernel elements at once,
// replaced and removed as the active node's are, a resync removes what the store lost, and what it
// hands over at promotion is what the active node last wrote. The kernel here refuses what nft
// refuses (an add over an element with other data, a delete of a missing one).
import t from 'tap'
import type { KernelMaps, MapOp } from '../../src/media/mappings.js'
import { Follower } from '../../src/store/follower.js'
import type { StoreChange, StoredElement } from '../../src/store/store.js'

class StrictKernel implements KernelMaps {
  readonly elements = new Map<string, string>()
  apply (ops: MapOp[]): void {
    const next = new Map(this.elements)
    for (const o of ops) {
      const id = `${o.map} ${o.key.ip ?? ''}.${o.key.port}`
      if (o.op === 'delete') { if (!next.delete(id)) throw new Error(`no ${id}`) } else {
        const data = `${o.data?.ip ?? ''}.${o.data?.port ?? 0} ${String(o.timeoutMs)}`
        if (next.has(id)) throw new Error(`exists ${id}`)
        next.set(id, data)
      }
    }
    this.elements.clear()
    for (const [k, v] of next) this.elements.set(k, v)
  }
}

const NOW = 1_000_000
const el = (port: number, data: number, ttl = 60_000): StoredElement =>
  ({ map: 'any_dnat', key: { port }, data: { ip: '10.0.1.23', port: data }, expiresAt: NOW + ttl })
const change = (over: Partial<StoreChange>): StoreChange => ({ at: NOW, calls: {}, registrations: {}, elements: {}, ...over })

t.test('elements follow the store; the state is handed over', async t => {
  const kernel = new StrictKernel()
  const f = new Follower(kernel, [], () => NOW)
  f.apply(change({ elements: { 'any_dnat|20000': el(20000, 4000), 'any_dnat|20001': el(20001, 4001) }, calls: { c1: JSON.stringify({ key: 'c1' }) } }))
  t.same([...kernel.elements], [['any_dnat .20000', '10.0.1.23.4000 60000'], ['any_dnat .20001', '10.0.1.23.4001 60000']], 'installed with the time left')
  f.apply(change({ elements: { 'any_dnat|20000': el(20000, 4002, 30_000) } }))
  t.equal(kernel.elements.get('any_dnat .20000'), '10.0.1.23.4002 30000', 'replaced: new data, new timeout')
  f.apply(change({ elements: { 'any_dnat|20001': null }, calls: { c1: null, c2: JSON.stringify({ key: 'c2' }) } }))
  t.equal(kernel.elements.has('any_dnat .20001'), false, 'removed')
  t.same(f.stored().state.calls, [{ key: 'c2' }], 'the calls to take over')
  t.equal(f.refused, 0)

  kernel.elements.delete('any_dnat .20000') // expired in the kernel before the store said so
  f.apply(change({ elements: { 'any_dnat|20000': el(20000, 4003) } }))
  t.equal(kernel.elements.get('any_dnat .20000'), '10.0.1.23.4003 60000', 'a replacement of an element already gone still lands')
  f.apply(change({ elements: { 'any_dnat|20002': el(20002, 4004, -1) } }))
  t.equal(kernel.elements.has('any_dnat .20002'), false, 'an element already expired is not installed')

  f.resync({ state: { version: 1, savedAt: NOW, calls: [], registrations: [] }, elements: [el(20005, 4005)] })
  t.same([...kernel.elements.keys()], ['any_dnat .20005'], 'a resync removes what the store no longer has')
  t.equal(f.callCount, 0)
  t.equal(f.elementCount, 1)

  // A node back after a failure: what its kernel kept from before goes unless the store has it.
  const back = new StrictKernel()
  back.apply([{ op: 'add', map: 'any_dnat', key: { port: 20007 }, data: { ip: '10.0.1.23', port: 4007 }, timeoutMs: 60_000 }])
  new Follower(back, [el(20007, 4007)], () => NOW).resync({ state: { version: 1, savedAt: NOW, calls: [], registrations: [] }, elements: [el(20005, 4005)] })
  t.same([...back.elements.keys()], ['any_dnat .20005'], 'elements left in the kernel from before are removed')
})
