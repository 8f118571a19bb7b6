// The addon's TCP sockets for IPv6 (native/tcp.c via src/netfilter/transparent.ts), on loopback: an
// IPv6-only transparent listener shares its port with the IPv4 one, an upstream leg takes its family
// from the destination, and a source of the other family is refused. Needs root (IP_TRANSPARENT);
// the diverted path itself is the lab's (test/e2e/ipv6.test.ts "over TCP").
import t from 'tap'
import type { AddressInfo, Socket } from 'node:net'
import { connectUpstream, listenTransparent } from '../../src/netfilter/transparent.js'
import { nativeBuilt } from './fixtures/netns.js'

const skip = !nativeBuilt() ? 'native addon not built' : process.getuid?.() !== 0 ? 'needs root (IP_TRANSPARENT)' : false

t.test('IPv6 beside IPv4 on one port; upstream legs of either family', { skip }, async t => {
  const accepted: Socket[] = []
  const got = new Map<string, string>()
  const accept = (s: Socket): void => {
    accepted.push(s)
    s.on('data', b => { got.set(s.remoteAddress ?? '', (got.get(s.remoteAddress ?? '') ?? '') + b.toString()) })
  }
  const v6 = await listenTransparent({ port: 0, ip: '::' }, accept)
  const port = (v6.address() as AddressInfo).port
  t.equal((v6.address() as AddressInfo).family, 'IPv6')
  const v4 = await listenTransparent({ port }, accept)
  t.teardown(() => { for (const s of accepted) s.destroy(); v6.close(); v4.close() })
  t.equal((v4.address() as AddressInfo).port, port, 'the IPv4 listener takes the same port (the IPv6 one is IPv6 only)')

  const up6 = connectUpstream({ to: { ip: '::1', port }, from: { ip: '::1', port: 0 }, connectTimeoutMs: 1000 })
  const up4 = connectUpstream({ to: { ip: '127.0.0.1', port }, connectTimeoutMs: 1000 })
  t.teardown(() => { up6.destroy(); up4.destroy() })
  up6.write('six')
  up4.write('four')
  const until = Date.now() + 3000
  while (got.size < 2 && Date.now() < until) await new Promise(resolve => setTimeout(resolve, 20))
  t.same(Object.fromEntries(got), { '::1': 'six', '127.0.0.1': 'four' }, 'each family reached its own listener, no IPv4-mapped addresses')
  t.throws(() => connectUpstream({ to: { ip: '::1', port }, from: { ip: '127.0.0.1', port: 0 } }), /not of the destination's address family/)
  t.throws(() => connectUpstream({ to: { ip: '::', port } }), /a destination address and port are needed/)
  t.throws(() => connectUpstream({ to: { ip: '2001:db8::zz', port } }), /not an IPv6 address/)
})
