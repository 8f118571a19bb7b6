// SignallingTable (src/media/signalling.ts): the phone's public signalling port, installed before
// the verdict, found both ways, adopted after a restart, freed when its SNAT element expired.
import t from 'tap'
import { MappingTable } from '../../src/media/mappings.js'
import { CALL_LINGER_MS, SignallingTable } from '../../src/media/signalling.js'

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

t.test('a call-only port lingers CALL_LINGER_MS after its last call; a long-lived one keeps the idle timeout', async t => {
  let now = 0
  const maps = new MappingTable(() => now)
  const s = new SignallingTable(maps, 300_000, () => false, () => now)
  const trunk = { ip: '10.0.1.30', port: 40000 }
  t.equal(s.allocateAndInstall(trunk, 'call-start'), 40000)
  t.same(maps.takePending().map(o => o.timeoutMs), [300_000], 'while a call may start: the idle timeout')
  s.callStarted(trunk)
  s.callStarted(trunk)
  s.callEnded(trunk)
  t.same(maps.takePending(), [], 'one call still lives on it')
  now += 20_000
  s.callEnded(trunk)
  t.same(maps.takePending(), [
    { op: 'delete', map: 'src_nat', key: trunk, was: { port: 40000 } },
    { op: 'add', map: 'src_nat', key: trunk, data: { port: 40000 }, timeoutMs: CALL_LINGER_MS }
  ], 'replaced with the linger timeout')
  t.notOk(maps.mustPrecedeVerdict, 'after the verdicts: the element is in the kernel')
  s.allocateAndInstall(trunk, 'call')
  now += CALL_LINGER_MS / 2
  s.allocateAndInstall(trunk, 'call')
  t.ok((maps.get('src_nat', trunk)?.expiresAt ?? 0) <= 20_000 + CALL_LINGER_MS + CALL_LINGER_MS / 2, 'a late BYE retransmission does not bring back the idle timeout')
  s.callEnded(trunk)
  now = 20_000 + CALL_LINGER_MS * 2 + 1
  maps.sweep()
  t.same(s.expired(trunk), { publicPort: 40000, remotes: [] }, 'freed (no far end named here)')
  t.equal(s.lookupPrivate(trunk), null, 'freed')
  t.equal(s.size, 0)

  s.allocateAndInstall(phone)
  s.allocateAndInstall(phone, 'call-start')
  s.callStarted(phone)
  maps.takePending()
  s.callEnded(phone)
  t.same(maps.takePending(), [], 'a long-lived port keeps its element')
})

t.test('expired: the far ends the port sent to come back with the freed port, at most four', async t => {
  let now = 0
  const maps = new MappingTable(() => now)
  const s = new SignallingTable(maps, 1000, () => false)
  const sbc = { ip: '203.0.113.9', port: 5060 }
  s.allocateAndInstall(phone, 'call-start', sbc)
  s.allocateAndInstall(phone, 'call', sbc)
  for (let p = 5070; p < 5076; p++) s.allocateAndInstall(phone, 'long-lived', { ip: '203.0.113.10', port: p })
  t.equal(s.expired(phone), null, 'still mapped')
  now = CALL_LINGER_MS + 1
  maps.sweep()
  t.same(s.expired(phone), { publicPort: 5060, remotes: [sbc, { ip: '203.0.113.10', port: 5070 }, { ip: '203.0.113.10', port: 5071 }, { ip: '203.0.113.10', port: 5072 }] }, 'each once, bounded')
  t.equal(s.expired(phone), null, 'freed once')
})

