// The VIP watch (src/netfilter/addrwatch.ts): `ip -o` lines parsed, and in a namespace of the
// test's own with a veth wan0, adding and removing the public address is seen within 100 ms
// each time (the latency is printed: it is the role-change delay of a gateway pair).
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { AddressWatch, parseAddressLine } from '../../src/netfilter/addrwatch.js'
import { newRunId } from '../lab/lab.js'

t.test('ip -o lines', async t => {
  t.same(parseAddressLine('3: wan0    inet 203.0.113.1/32 scope global wan0\\       valid_lft forever preferred_lft forever'),
    { deleted: false, iface: 'wan0', address: '203.0.113.1' })
  t.same(parseAddressLine('Deleted 3: wan0    inet 203.0.113.1/32 scope global wan0\\       valid_lft forever preferred_lft forever'),
    { deleted: true, iface: 'wan0', address: '203.0.113.1' })
  t.same(parseAddressLine('4: wan0@if5    inet 203.0.113.2/24 brd 203.0.113.255 scope global wan0'),
    { deleted: false, iface: 'wan0', address: '203.0.113.2' }, 'a veth end')
  t.equal(parseAddressLine('3: wan0    link/ether 02:00:00:00:00:01 brd ff:ff:ff:ff:ff:ff'), null)
  t.equal(parseAddressLine(''), null)
})

t.test('the VIP coming and going is seen within 100 ms', async t => {
  const ns = `sipalg-${newRunId()}-vip`
  const ip = (...args: string[]): void => {
    const r = spawnSync('ip', ['-n', ns, ...args], { encoding: 'utf8' })
    if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr}`)
  }
  if (spawnSync('ip', ['netns', 'add', ns]).status !== 0) throw new Error('ip netns add failed')
  t.teardown(() => { spawnSync('ip', ['netns', 'del', ns]) })
  ip('link', 'add', 'wan0', 'type', 'veth', 'peer', 'name', 'wan0p')
  ip('link', 'set', 'wan0', 'up')
  ip('addr', 'add', '203.0.113.2/24', 'dev', 'wan0')

  let changed: { held: boolean, at: bigint } | null = null
  const watch = new AddressWatch({ iface: 'wan0', address: '203.0.113.1', ipArgs: ['-n', ns], onChange: held => { changed = { held, at: process.hrtime.bigint() } } })
  t.teardown(() => { watch.stop() })
  t.equal(watch.held, false, 'not held at start')
  await new Promise(resolve => setTimeout(resolve, 300))
  const delays: number[] = []
  for (let i = 0; i < 6; i++) {
    const want = i % 2 === 0
    changed = null
    // The command blocks this process until it returned, the event waits in the pipe meanwhile:
    // timed from its return, the delay is sipalg's own (the kernel sends the event at once).
    ip('addr', want ? 'add' : 'del', '203.0.113.1/32', 'dev', 'wan0')
    const t0 = process.hrtime.bigint()
    const until = Date.now() + 1000
    while (changed === null && Date.now() < until) await new Promise(resolve => setTimeout(resolve, 1))
    const c = changed as { held: boolean, at: bigint } | null
    t.equal(c?.held, want, want ? 'gained' : 'lost')
    if (c !== null) delays.push(Number(c.at - t0) / 1e6)
  }
  t.comment(`address event seen after ${delays.map(d => d.toFixed(1)).join(', ')} ms (after the ip command returned)`)
  t.ok(delays.length === 6 && Math.max(...delays) < 100, 'each within 100 ms')
  t.equal(watch.held, false)
})
