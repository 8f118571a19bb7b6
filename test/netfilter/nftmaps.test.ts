import t from 'tap'
import { portKey, addrPortKey, addrPortPortKey, addrKey, decodeKey } from '../../src/netfilter/nftmaps.js'
import { Netns, ensureCompiled, nativeBuilt } from './fixtures/netns.js'

t.test('key encoders', async t => {
  t.same([...portKey(20000)], [0x4e, 0x20])
  t.same([...addrPortKey('10.0.1.23', 4000)], [10, 0, 1, 23, 0x0f, 0xa0, 0, 0])
  t.same([...addrKey('203.0.113.9')], [203, 0, 113, 9])
  t.same(decodeKey(addrPortKey('203.0.113.9', 5060)), { ip: '203.0.113.9', port: 5060 })
  t.same(decodeKey(portKey(1)), { port: 1 })
  // latch_dnat: ipv4_addr . inet_service . inet_service, each part padded to 4 bytes.
  t.same([...addrPortPortKey('203.0.113.10', 27000, 20000)], [203, 0, 113, 10, 0x69, 0x78, 0, 0, 0x4e, 0x20, 0, 0])
  t.same(decodeKey(addrPortPortKey('203.0.113.10', 27000, 20000)), { ip: '203.0.113.10', sport: 27000, port: 20000 })
  t.throws(() => portKey(70000))
  t.throws(() => addrPortKey('10.0.1', 1))
})

t.test('nft maps over netlink in a private namespace', { skip: nativeBuilt() ? false : 'native addon not built (make native)' }, async t => {
  ensureCompiled()
  const ns = new Netns('m')
  t.teardown(() => ns.destroy())

  t.test('semantics', async t => {
    const r = await ns.driver('nft-driver.mjs', { mode: 'semantics' }).until(o => 'listAfterAdd' in o) as any
    t.equal(r.missingTable.code, 'E204_NFT', 'missing table → E204')
    t.match(r.missingTable.message, /no_such_table.*does not exist/)
    t.same(r.listAfterAdd.map((e: any) => [e.key, e.data, e.timeoutMs]), [[{ port: 20000 }, { ip: '10.0.1.23', port: 4000 }, 30000]], 'add with timeout, list shows it')
    t.ok(r.listAfterAdd[0].expiresMs > 25000 && r.listAfterAdd[0].expiresMs <= 30000, 'expiresMs')
    t.match(r.nftListAfterAdd, /20000 timeout 30s expires .* : 10\.0\.1\.23 \. 4000/, 'nft sees the same element')
    t.equal(r.sameAgain, null, 'same key + same data: ok')
    t.equal(r.eexist.code, 'E204_NFT')
    t.equal(r.eexist.errno, 17, 'EEXIST on other data')
    t.match(r.eexist.message, /File exists/)
    t.equal(r.replace, null, 'delete + add in one batch')
    t.same(r.listAfterReplace.map((e: any) => e.data), [{ ip: '10.0.1.24', port: 4002 }], 'replaced')
    t.equal(r.deleteMissing.errno, 2, 'ENOENT on deleting a missing element')
    t.equal(r.deleteMissing.opIndex, 1, 'names the failing op')
    t.same(r.listAfterAbort.map((e: any) => e.key.port), [20000], 'batch aborted: the add before it was not applied')
    t.equal(r.peer, null)
    t.equal(r.srcNat, null)
    t.same(r.listPeer.map((e: any) => [e.key, e.data]), [[{ ip: '203.0.113.9', port: 5060 }, { ip: '10.0.1.23', port: 5060 }]])
    t.same(r.listSrc.map((e: any) => [e.key, e.data, e.expiresMs]), [[{ ip: '10.0.1.23', port: 5060 }, { port: 5062 }, null]])
    t.equal(r.missingMap.errno, 2, 'missing map → ENOENT')
    t.equal(r.badKeyLen.errno, 22, 'wrong key size → EINVAL')
    t.equal(r.beforeExpiry, true)
    t.equal(r.expired, true, 'element with a 1 s timeout expired by itself')
    t.equal(r.ctMissing, 0, 'deleteConntrack of a missing entry → 0 deleted, no error')
    t.match(r.useAfterClose.message, /closed/)
  })

  t.test('apply latency at 10 / 1,000 / 10,000 elements (printed, not asserted)', async t => {
    const r = await ns.driver('nft-driver.mjs', { mode: 'latency', table: 'lat', sizes: [10, 1000, 10000], iters: 2000 })
      .until(o => 'latency' in o, 240_000) as any
    for (const l of r.latency) t.comment(`nft apply (${l.opsPerBatch}) at ${l.elements} elements: p50 ${l.p50us} µs, p99 ${l.p99us} µs, max ${l.maxus} µs`)
    t.comment(`list of ${r.listAllCount} elements: ${r.listAllMs.toFixed(1)} ms`)
    t.equal(r.latency.length, 3)
    t.ok(r.listAllCount >= 10000, 'list sees all 10,000+ elements')
  })
})
