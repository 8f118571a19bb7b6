import t from 'tap'
import { canonicalIpv6, formatIpv6, ipv6Bytes, ipv6FromBytes, parseIpv6 } from '../src/ip6.js'
import { insideMatcher, parseCidr, type Cidr } from '../src/rewrite/cidr.js'

t.test('IPv6 literals: canonical form (RFC 5952)', async t => {
  t.equal(canonicalIpv6('2001:DB8:0001:0000:0000:0000:0000:0023'), '2001:db8:1::23')
  t.equal(canonicalIpv6('2001:db8:0:0:1:0:0:1'), '2001:db8::1:0:0:1', 'the first of two equal zero runs')
  t.equal(canonicalIpv6('2001:db8:0:1:1:1:1:1'), '2001:db8:0:1:1:1:1:1', 'one zero group is not compressed')
  t.equal(canonicalIpv6('::'), '::')
  t.equal(canonicalIpv6('::1'), '::1')
  t.equal(canonicalIpv6('fe80::'), 'fe80::')
  t.equal(canonicalIpv6('::ffff:192.0.2.1'), '::ffff:c000:201', 'dotted tail read as two groups')
  t.same(parseIpv6('1:2:3:4:5:6:7:8'), [1, 2, 3, 4, 5, 6, 7, 8])
})

t.test('what is not an IPv6 literal', async t => {
  for (const bad of ['', ':', '1:2:3:4:5:6:7', '1:2:3:4:5:6:7:8:9', '2001:db8::1::2', 'fe80::1%eth0', 'fe80::1%25eth0',
    '[2001:db8::1]', '2001:db8::g', '12345::', '::1.2.3', '::256.1.1.1', '::01.1.1.1', '1:2:3:4:5:6:7::8', ' ::1', 'x'.repeat(60)]) {
    t.equal(parseIpv6(bad), null, JSON.stringify(bad))
  }
})

t.test('bytes round trip', async t => {
  const b = ipv6Bytes('2001:db8:2::9')
  t.equal(b?.toString('hex'), '20010db8000200000000000000000009')
  t.equal(ipv6FromBytes(b as Buffer, 0), '2001:db8:2::9')
  t.equal(formatIpv6([0, 0, 0, 0, 0, 0, 0, 0]), '::')
  t.equal(ipv6Bytes('nope'), null)
})

t.test('IPv6 inside networks next to IPv4 ones', async t => {
  const nets = ['10.0.1.0/24', '2001:db8:1::/64', '2001:db8:3:8000::/49'].map(n => parseCidr(n) as Cidr)
  const inside = insideMatcher(nets)
  t.ok(inside('10.0.1.23'))
  t.ok(inside('2001:db8:1::23'))
  t.ok(inside('2001:DB8:1:0:ffff::1'), 'any text form')
  t.notOk(inside('2001:db8:2::9'))
  t.ok(inside('2001:db8:3:8000::1'))
  t.notOk(inside('2001:db8:3:7fff::1'), 'a prefix that ends mid-group')
  t.notOk(inside('fe80::1%eth0'), 'a zone id is never inside')
  t.equal(parseCidr('2001:db8::/129'), null)
  t.equal(parseCidr('2001:db8::1::/64'), null)
  t.equal(parseCidr('2001:db8:1::/64')?.toString(), '2001:db8:1::/64')
  t.notOk(insideMatcher([parseCidr('10.0.0.0/8') as Cidr])('2001:db8:1::23'), 'IPv4 networks hold no IPv6 address')
})
