// End to end in the lab (test/lab): the SIP/TCP interception and the transparent sockets the splice
// stands on, with a plain byte splice in the gateway (fixtures/splice-driver.mjs), phones running
// fixtures/tcp-peer.mjs. FORWARD policy DROP: spliced connections never cross FORWARD.
import t from 'tap'
import { resolve } from 'node:path'
import { ADDR, Lab } from '../lab/lab.js'
import { Driver, ensureCompiled, fixtures, nativeBuilt } from './fixtures/netns.js'
import { DEFAULT_TPROXY, checkTproxySpec, divertScript } from '../../src/netfilter/tproxy.js'

const peer = resolve(fixtures, 'tcp-peer.mjs')

t.test('the divert chain: after dstnat, established transparent sockets first, own addresses left alone', async t => {
  const script = divertScript({ family: 'ip', table: 'sipalg', sipPorts: [5060, 5080], listenPort: 50600, ...DEFAULT_TPROXY })
  const rules = script.split('\n').filter(l => l.startsWith('add rule'))
  t.match(script, /type filter hook prerouting priority dstnat \+ 10;/)
  t.match(rules[0], /socket transparent 1 socket wildcard 0 meta mark set meta mark and 0xffff0000 or 0x5a10 accept$/)
  t.match(rules[1], /fib daddr type local return$/)
  t.match(rules[2], /tcp dport \{ 5060, 5080 \} tproxy ip to :50600 meta mark set .* accept$/)
  const script6 = divertScript({ family: 'ip6', table: 'sipalg', sipPorts: [5060], listenPort: 50600, ...DEFAULT_TPROXY })
  t.same(script6.split('\n').map(l => l.replace(/^(add|flush) (table|chain|rule) ip6 sipalg ?/, '')), [
    '',
    'tcp_divert { type filter hook prerouting priority dstnat + 10; policy accept; }',
    'tcp_divert',
    'tcp_divert meta l4proto tcp socket transparent 1 socket wildcard 0 meta mark set meta mark and 0xffff0000 or 0x5a10 accept',
    'tcp_divert fib daddr type local return',
    'tcp_divert tcp dport { 5060 } tproxy ip6 to :50600 meta mark set meta mark and 0xffff0000 or 0x5a10 accept',
    ''
  ], 'IPv6: the same three rules in table ip6, tproxy ip6 (the mark and route table are the same numbers, in ip -6)')
  t.equal(script6.replace(/ip6 /g, 'ip '), script.replace('5060, 5080', '5060'), 'and nothing else differs from IPv4\'s')
  const bad = { family: 'ip' as const, table: 'sipalg', listenPort: 50600, ...DEFAULT_TPROXY }
  t.throws(() => checkTproxySpec({ ...bad, sipPorts: [] }), /bad ports/)
  t.throws(() => checkTproxySpec({ ...bad, sipPorts: [70000] }), /bad ports/)
  t.throws(() => checkTproxySpec({ ...bad, sipPorts: [5060], mark: { value: 0x10000, mask: 0xffff } }), /inside its mask/)
})

t.test('SIP over TCP through a transparent splice', { skip: nativeBuilt() ? false : 'native addon not built' }, async t => {
  ensureCompiled()
  const lab = await Lab.up({ forwardPolicy: 'drop' })
  t.teardown(() => lab.down())

  const gwState = async (): Promise<string> =>
    (await Promise.all([['nft', '-s', 'list', 'ruleset'], ['ip', '-4', 'rule'], ['ip', '-4', 'route', 'show', 'table', 'all']]
      .map(([cmd, ...args]) => lab.sh('gw', cmd, args)))).join('\n----\n')
  const client = async (role: 'a' | 'a2' | 'b', cfg: Record<string, unknown>): Promise<Record<string, any>> => {
    const out = await lab.sh(role, process.execPath, [peer, JSON.stringify({ mode: 'client', ...cfg })], { timeoutMs: 15_000 })
    return JSON.parse(out.trim().split('\n').pop() ?? '{}')
  }
  const server = async (role: 'a' | 'b', ports: number[]): Promise<Driver> => {
    const d = new Driver(lab.spawn(role, process.execPath, [peer, JSON.stringify({ mode: 'server', ports })]))
    for (const port of ports) await d.until(o => o.ready === true && o.port === port, 10_000)
    return d
  }

  // What an operator's port forward would do: the gateway's public 5060 goes to phone A. The splice
  // must see it after this DNAT (its chain runs at dstnat + 10).
  await lab.sh('gw', 'nft', ['-f', '-'], {
    input: 'table ip labfwd {\n chain pre { type nat hook prerouting priority dstnat; policy accept;\n' +
      `  iifname "wan0" ip daddr ${ADDR.gwPublic} tcp dport 5060 dnat to ${ADDR.a}:5060\n }\n}\n`
  })
  const before = await gwState()

  const farEnd = await server('b', [5060, 5070])
  const phone = await server('a', [5060])
  const child = lab.spawn('gw', process.execPath, [resolve(fixtures, 'splice-driver.mjs'), JSON.stringify({ listenPort: 50600, sipPorts: [5060, 5062], connectTimeoutMs: 1000, publicIp: ADDR.gwPublic })],
    { stdio: ['pipe', 'pipe', 'pipe'] })
  const splice = new Driver(child)
  const ready = await splice.ready(15_000)
  t.same(ready.rec, { tableAdded: true, chainAdded: true, ruleAdded: true, routeAdded: true }, 'installed all three pieces')
  t.match(ready.second, { code: 'E207_TRANSPARENT_SOCKET', message: /0\.0\.0\.0:50600: Address already in use/ }, 'a taken port is E207')
  t.match(await lab.sh('gw', 'nft', ['list', 'chain', 'ip', 'sipalg', 'tcp_divert']), /priority dstnat \+ 10[\s\S]*tcp dport \{ 5060, 5062 \} tproxy to :50600/)

  await t.test('outbound: the listener sees the original destination, the far end the public address', async t => {
    // Phone A2 calls from its own 5060 (A listens there, for the inbound case below).
    const r = await client('a2', { scenario: 'echo-fin', ip: ADDR.b, port: 5060, localPort: 5060 })
    t.equal(r.got, 'helloafter-fin', 'bytes both ways; the phone\'s FIN reached the far end, whose answer and FIN came back')
    t.equal(r.ended, true)
    const acc = await splice.until(o => o.event === 'accepted' && (o.remote as any).ip === ADDR.a2)
    t.same(acc.local, { ip: ADDR.b, port: 5060 }, 'accepted socket\'s local address = original destination')
    const conn = await farEnd.until(o => o.event === 'conn' && o.port === 5060)
    t.equal(conn.remote, ADDR.gwPublic, 'the far end sees the gateway\'s public address')
    t.equal(conn.remotePort, 5060, 'and the port the upstream leg bound: the phone\'s own 5060 here')
  })

  await t.test('a forwarded connection whose port is the listen port is not taken in', async t => {
    // 50600 is in the ephemeral range: a phone's connection to anything from it must cross untouched.
    const r = await client('a2', { scenario: 'echo-fin', ip: ADDR.b, port: 5070, localPort: 50600 })
    t.equal(r.got, 'helloafter-fin', 'plain NAT both ways, the listener never saw the replies')
    t.notOk(r.timedOut)
  })

  await t.test('a FIN from the far end crosses too', async t => {
    const r = await client('a', { scenario: 'far-fin', ip: ADDR.b, port: 5060 })
    t.equal(r.got, 'closing')
    t.equal(r.ended, true, 'the phone got the far end\'s FIN')
    t.equal(r.error, null)
  })

  await t.test('an unreachable far end resets the phone\'s leg', async t => {
    const r = await client('a', { scenario: 'refused', ip: ADDR.c, port: 5060 })
    // Reset, not refused: the gateway accepted the phone's connection first. (On a loaded machine
    // the reset can arrive before the client's loop saw its connect complete: then it never says
    // "connected", but the error is still the reset.)
    t.equal(r.error, 'ECONNRESET', 'the phone\'s leg is reset (accepted, then reset; not ECONNREFUSED)')
    const e = await splice.until(o => o.event === 'upstream-error')
    t.equal(e.code, 'ECONNREFUSED')
  })

  await t.test('a far end that never answers: the phone\'s leg is reset at the connect timeout', async t => {
    await lab.sh('c', 'nft', ['add table ip blackhole; add chain ip blackhole in { type filter hook input priority 0; }; add rule ip blackhole in tcp dport 5062 drop'])
    const t0 = Date.now()
    const r = await client('a', { scenario: 'refused', ip: ADDR.c, port: 5062 })
    t.equal(r.connected, true)
    t.equal(r.error, 'ECONNRESET')
    const e = await splice.until(o => o.event === 'upstream-error' && o.code === 'ETIMEDOUT')
    t.ok(e, 'upstream gave up with ETIMEDOUT')
    t.ok(Date.now() - t0 < 8000, 'within seconds, not the kernel\'s two minutes')
  })

  await t.test('connections to the gateway\'s own address are not diverted', async t => {
    const r = await client('a', { scenario: 'refused', ip: ADDR.gwInside, port: 5060 })
    t.equal(r.connected, false, 'nothing listens on the gateway\'s 5060, and the splice did not accept it')
    t.equal(r.error, 'ECONNREFUSED')
  })

  await t.test('inbound: after the DNAT the accepted socket is the phone\'s, the phone sees the far end\'s own address', async t => {
    const r = await client('b', { scenario: 'echo-fin', ip: ADDR.gwPublic, port: 5060 })
    t.equal(r.got, 'helloafter-fin')
    const acc = await splice.until(o => o.event === 'accepted' && (o.remote as any).ip === ADDR.b)
    t.same(acc.local, { ip: ADDR.a, port: 5060 }, 'local address = the DNAT target')
    const conn = await phone.until(o => o.event === 'conn')
    t.equal(conn.remote, ADDR.b, 'transparent upstream: the phone sees 203.0.113.9, not the gateway')
  })

  await t.test('cost against plain NAT forwarding, same run (printed; loose bound)', async t => {
    const bench = async (port: number): Promise<{ setupUs: number, rttUs: number }> => {
      const out = await lab.sh('a', process.execPath, [peer, JSON.stringify({ mode: 'bench', ip: ADDR.b, port, conns: 200, rtts: 1000 })], { timeoutMs: 60_000 })
      return JSON.parse(out.trim().split('\n').pop() ?? '{}')
    }
    const rounds = []
    for (let i = 0; i < 2; i++) rounds.push({ nat: await bench(5070), splice: await bench(5060) })
    for (const [i, r] of rounds.entries()) {
      t.comment(`round ${i + 1}: connect + first 1 KB round trip: plain NAT ${r.nat.setupUs.toFixed(0)} µs, splice ${r.splice.setupUs.toFixed(0)} µs ` +
        `(${(r.splice.setupUs / r.nat.setupUs).toFixed(2)}x); 1 KB round trip: plain NAT ${r.nat.rttUs.toFixed(0)} µs, splice ${r.splice.rttUs.toFixed(0)} µs ` +
        `(${(r.splice.rttUs / r.nat.rttUs).toFixed(2)}x, +${(r.splice.rttUs - r.nat.rttUs).toFixed(0)} µs)`)
    }
    const last = rounds[rounds.length - 1]
    t.ok(last.splice.rttUs > 0 && last.nat.rttUs > 0)
    t.ok(last.splice.rttUs < last.nat.rttUs * 50, 'the splice adds microseconds to a round trip, not milliseconds per KB')
  })

  await t.test('removing the interception leaves the gateway as it was', async t => {
    child.stdin?.write('remove\n')
    await splice.until(o => o.removed === true, 10_000)
    t.equal(await gwState(), before)
  })
})
