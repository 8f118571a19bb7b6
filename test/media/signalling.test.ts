// SignallingTable (src/media/signalling.ts): the phone's public signalling port, installed before
// the verdict, found both ways, adopted after a restart, freed when its SNAT element expired.
import t from 'tap'
import { MappingTable } from '../../src/media/mappings.js'
import { SignallingTable } from '../../src/media/signalling.js'

const phone = { ip: '10.0.1.23', port: 5060 }
const other = { ip: '10.0.1.24', port: 5060 }

t.test('allocateAndInstall: own port number first, the next free for a second phone; SNAT before the verdict', async t => {
  let now = 0
  const maps = new MappingTable(() => now)
  const s = new SignallingTable(maps, 300_000, p => p >= 20000 && p <= 29999)
  t.equal(s.allocateAndInstall(phone), 5060)
  t.ok(maps.mustPrecedeVerdict, 'the message advertises this port')
  t.same(maps.takePending(), [{ op: 'add', map: 'src_nat', key: phone, data: { port: 5060 }, timeoutMs: 300_000 }])
  t.equal(s.allocateAndInstall(other), 5061)
  maps.takePending()
  now += 1000
  t.equal(s.allocateAndInstall(phone), 5060, 'the same phone keeps its port')
  t.same(maps.takePending(), [], 'a young element is not re-sent')
  t.same(s.lookupPublic(5061), other)
  t.equal(s.lookupPrivate(other), 5061)
  t.equal(s.lookupPublic(5099), null)
  t.equal(s.lookupPrivate({ ip: '10.0.1.99', port: 5060 }), null)
})

t.test('expired: the port is freed only once the SNAT element is gone; adopt claims a port once', async t => {
  let now = 0
  const maps = new MappingTable(() => now)
  const s = new SignallingTable(maps, 1000, () => false)
  s.allocateAndInstall(phone)
  s.expired(phone)
  t.equal(s.lookupPrivate(phone), 5060, 'still mapped: nothing freed')
  now = 2000
  maps.sweep()
  s.expired(phone)
  t.equal(s.lookupPrivate(phone), null)
  t.equal(s.lookupPublic(5060), null)
  s.expired(phone)
  s.adopt(other, 5070)
  t.same(s.lookupPublic(5070), other)
  s.adopt(phone, 5070)
  t.same(s.lookupPublic(5070), other, 'a port already held is not adopted twice')
  t.equal(s.allocateAndInstall({ ip: '10.0.1.25', port: 5070 }), 5071, 'an adopted port is taken')
})
