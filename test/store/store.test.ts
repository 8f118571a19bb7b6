// Both state stores behind one interface (src/store): what is written is what a takeover loads,
// an ended call goes from the store, a write that fails is counted and retried until it lands.
// Then what only Redis does: kernel elements with their expiry, a follower seeing each change in
// order with its lag, a new writer removing what ended while no one wrote. The Redis store runs
// against a redis-server of the test's own in a namespace (test/lab/redis.ts).
import t from 'tap'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { snapshot } from '../../src/dialog/state.js'
import type { MapOp } from '../../src/media/mappings.js'
import { FileStore } from '../../src/store/file.js'
import { RedisStore } from '../../src/store/redis.js'
import { parseStoreLocation, type StateStore, type StoreChange, type StoredState } from '../../src/store/store.js'
import { LabRedis } from '../lab/redis.js'
import { A, B, Harness, PUB, sdp } from '../dialog/harness.js'

const crlf = (s: string): string => s.replace(/\n/g, '\r\n')

/** A phone registered and in a call (INVITE, 200 OK), as the gateway's tables hold it. */
function gateway (): Harness {
  const h = new Harness()
  h.deliver({ start: 'INVITE', cseq: '1 INVITE', body: sdp(A, 4000), phoneSent: true })
  h.deliver({ start: '200 OK', cseq: '1 INVITE', toTag: 'b1', body: sdp(B, 6000), phoneSent: false })
  h.deliver(crlf(`REGISTER sip:sip.example.net SIP/2.0\nVia: SIP/2.0/UDP ${A}:5060;branch=z9hG4bK-s1\nFrom: <sip:1001@sip.example.net>;tag=s1\nTo: <sip:1001@sip.example.net>\nCall-ID: reg-s1\nCSeq: 1 REGISTER\nContact: <sip:1001@${A}:5060>\nContent-Length: 0\n\n`), true)
  h.deliver(crlf(`SIP/2.0 200 OK\nVia: SIP/2.0/UDP ${PUB}:5060;branch=z9hG4bK-s1\nFrom: <sip:1001@sip.example.net>;tag=s1\nTo: <sip:1001@sip.example.net>;tag=r\nCall-ID: reg-s1\nCSeq: 1 REGISTER\nContact: <sip:1001@${PUB}:5060>;expires=300\nContent-Length: 0\n\n`), false)
  return h
}

const stateOf = (h: Harness): ReturnType<typeof snapshot> => snapshot(h.calls.values(), h.registrations.values(), h.clock.now)
/** The gateway's kernel elements as the ops that installed them. */
const opsOf = (h: Harness): MapOp[] => [...h.maps.all()].map(e => ({ op: 'add', map: e.map, key: e.key, data: e.data, timeoutMs: 60_000 }))

async function until (what: string, ok: () => boolean | Promise<boolean>, ms = 5000): Promise<void> {
  const end = Date.now() + ms
  while (!await ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 20))
  }
}

interface Subject {
  store: StateStore
  /** Makes the store unusable / usable again. */
  breakIt: () => Promise<void>
  fixIt: () => Promise<void>
  /** Waits until nothing is pending (writes landed). */
  settled: () => Promise<void>
  done: () => Promise<void>
}

const subjects: Record<string, () => Promise<Subject>> = {
  file: async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sipalg-store-'))
    const path = join(dir, 'run', 'state.json')
    const store = new FileStore(path, () => {})
    return {
      store,
      // A regular file where the state file's directory should be: every write fails (ENOTDIR).
      breakIt: async () => { rmSync(join(dir, 'run'), { recursive: true, force: true }); writeFileSync(join(dir, 'run'), 'x') },
      fixIt: async () => { rmSync(join(dir, 'run'), { force: true }) },
      settled: async () => { await until('file written', () => store.stats().pending === 0, 3000) },
      done: async () => { await store.close(); rmSync(dir, { recursive: true, force: true }) }
    }
  },
  redis: async () => {
    const server = await LabRedis.start()
    const loc = parseStoreLocation(server.url, '')
    if (loc.kind !== 'redis' || !('path' in loc)) throw new Error('not a socket location')
    const store = new RedisStore(loc, 'test', { writeFailed: () => {}, writeRecovered: () => {} })
    return {
      store,
      breakIt: async () => { await server.down() },
      fixIt: async () => { await server.up() },
      settled: async () => { await until('redis written', () => store.stats().pending === 0) },
      done: async () => { await store.close(); await server.stop() }
    }
  }
}

for (const [kind, open] of Object.entries(subjects)) {
  t.test(`${kind} store: written, loaded, ended, failing and retried`, async t => {
    const s = await open()
    t.teardown(s.done)
    t.equal(await s.store.load(), null, 'an empty store: a fresh start')
    const h = gateway()
    s.store.writeState(stateOf(h))
    await s.settled()
    const loaded = await s.store.load() as StoredState
    t.same(loaded.state.calls, stateOf(h).calls, 'the call as the tables hold it')
    t.same(loaded.state.registrations, stateOf(h).registrations, 'the registration')

    h.deliver({ start: 'BYE', cseq: '2 BYE', toTag: 'b1', phoneSent: true })
    t.equal(h.calls.values().next().done, true, 'the BYE ended the call')
    await s.breakIt()
    s.store.writeState(stateOf(h))
    await until('a failed write', () => s.store.stats().writesFailed > 0, 3000)
    t.ok(s.store.stats().pending > 0, 'the change is still pending')
    await s.fixIt()
    await s.settled()
    const after = await s.store.load() as StoredState
    t.same(after.state.calls, [], 'the ended call is gone once the store works again')
    t.equal(after.state.registrations.length, 1, 'the registration stays')
  })
}

t.test('redis store: elements, following, a new writer', async t => {
  const server = await LabRedis.start()
  t.teardown(async () => { await server.stop() })
  const loc = parseStoreLocation(server.url, '')
  if (loc.kind !== 'redis') throw new Error('not redis')
  const { kind: _, ...at } = loc
  const noEvents = { writeFailed: () => {}, writeRecovered: () => {} }
  const active = new RedisStore(at, 'pair', noEvents)
  const standby = new RedisStore(at, 'pair', noEvents)
  t.teardown(async () => { await active.close(); await standby.close() })

  const changes: StoreChange[] = []
  const resyncs: StoredState[] = []
  await standby.follow(c => { changes.push(c) }, s => { resyncs.push(s) })
  t.equal(resyncs.length, 1, 'following starts with a full read')
  t.same(resyncs[0].elements, [], 'of an empty store')

  const h = gateway()
  const now = Date.now()
  const ops = opsOf(h)
  t.ok(ops.length >= 3, 'signalling and media elements')
  active.writeOps(ops, now)
  active.writeState(stateOf(h))
  await until('the standby saw the call', () => changes.some(c => Object.keys(c.calls).length > 0))
  const seen = Object.assign({}, ...changes.map(c => c.elements)) as StoreChange['elements']
  t.equal(Object.keys(seen).length, ops.length, 'every element reached the standby')
  const lag = standby.stats().lagMs
  t.ok(lag !== null && lag < 200, `replication lag ${String(lag)} ms`)

  const loaded = await standby.load() as StoredState
  t.equal(loaded.elements.length, ops.length, 'elements are in the store')
  t.equal(loaded.elements[0].expiresAt, now + 60_000, 'with their absolute expiry')

  // The BYE: the call and its media elements go; the standby hears of each.
  const media = ops.filter(o => o.map !== 'src_nat' || o.data?.port !== 5060)
  active.writeOps(media.map(o => ({ op: 'delete', map: o.map, key: o.key })), Date.now())
  h.deliver({ start: 'BYE', cseq: '2 BYE', toTag: 'b1', phoneSent: true })
  active.writeState(stateOf(h))
  await until('the standby saw the BYE', () => changes.some(c => Object.values(c.calls).includes(null)))
  t.equal((await standby.load() as StoredState).elements.length, ops.length - media.length, 'the media elements are gone')

  // A call that ended while no one wrote: the next writer takes over what is there and removes it.
  const stale = gateway()
  active.writeState(stateOf(stale))
  await until('written', () => active.stats().pending === 0)
  await active.close()
  const next = new RedisStore(at, 'pair', noEvents)
  t.teardown(async () => { await next.close() })
  const base = await next.load()
  t.equal(base?.state.calls.length, 1, 'the new writer finds the stale call')
  next.becomeWriter(base)
  next.writeState(snapshot([], stale.registrations.values(), Date.now()))
  await until('written', () => next.stats().pending === 0 && next.stats().writes > 0)
  t.same((await next.load() as StoredState).state.calls, [], 'and removes it with its first write')
})

t.test('state_store locations', async t => {
  t.same(parseStoreLocation(null, '/run/s.json'), { kind: 'file', path: '/run/s.json' })
  t.same(parseStoreLocation('redis://198.51.100.10:6380/2', ''), { kind: 'redis', host: '198.51.100.10', port: 6380, db: 2 })
  t.same(parseStoreLocation('redis://198.51.100.10', ''), { kind: 'redis', host: '198.51.100.10', port: 6379, db: 0 })
  t.same(parseStoreLocation('redis+unix:///run/redis/r.sock?db=1', ''), { kind: 'redis', path: '/run/redis/r.sock', db: 1 })
  t.throws(() => parseStoreLocation('redis://198.51.100.10/16', ''), /E103|state_store/)
  t.throws(() => parseStoreLocation('http://x', ''), /state_store/)
  t.throws(() => parseStoreLocation('not a url', ''), /state_store/)
})
