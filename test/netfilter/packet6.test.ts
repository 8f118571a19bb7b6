import t from 'tap'
import { buildUdp6, parseUdp, udp6Checksum, withPayload } from '../../src/netfilter/packet.js'
import { ipv6Bytes } from '../../src/ip6.js'

const A = ipv6Bytes('2001:db8:1::23') as Buffer
const B = ipv6Bytes('2001:db8:2::9') as Buffer
const payload = Buffer.from('INVITE sip:bob@[2001:db8:2::9] SIP/2.0\r\n\r\n')
const ext = (type: number, len8: number): { type: number, bytes: Buffer } => {
  const bytes = Buffer.alloc(len8 * 8)
  bytes[1] = len8 - 1
  return { type, bytes }
}

t.test('IPv6/UDP: addresses, ports, payload; checksum valid', async t => {
  const pkt = buildUdp6(A, 5060, B, 5062, payload)
  const r = parseUdp(pkt)
  t.ok(r.ok)
  if (!r.ok) return
  t.same({ src: r.udp.src, dst: r.udp.dst, sp: r.udp.srcPort, dp: r.udp.dstPort, family: r.udp.family }, { src: '2001:db8:1::23', dst: '2001:db8:2::9', sp: 5060, dp: 5062, family: 6 })
  t.ok(r.udp.payload.equals(payload))
  t.equal(udp6Checksum(pkt, 40), pkt.readUInt16BE(46), 'the checksum verifies')
})

t.test('extension headers are skipped by their lengths', async t => {
  const hop = ext(0, 1)
  const dest = ext(60, 2)
  const routing = ext(43, 1)
  const atomic = { type: 44, bytes: Buffer.alloc(8) }
  const pkt = buildUdp6(A, 5060, B, 5060, payload, [hop, dest, routing, atomic])
  const r = parseUdp(pkt)
  t.ok(r.ok && r.udp.payload.equals(payload) && r.udp.srcPort === 5060, 'through hop-by-hop, dest opts, routing, an atomic fragment')
  const auth = { type: 51, bytes: Buffer.alloc(16) }
  auth.bytes[1] = 2
  t.ok(parseUdp(buildUdp6(A, 5060, B, 5060, payload, [auth])).ok, 'through AH (length in 4-byte units)')
})

t.test('what is not a whole IPv6 UDP datagram', async t => {
  const frag = { type: 44, bytes: Buffer.alloc(8) }
  frag.bytes.writeUInt16BE(0x0001, 2)
  t.same(parseUdp(buildUdp6(A, 5060, B, 5060, payload, [frag])), { ok: false, reason: 'fragment' }, 'first fragment (more to come)')
  const later = { type: 44, bytes: Buffer.alloc(8) }
  later.bytes.writeUInt16BE(0x0100, 2)
  t.same(parseUdp(buildUdp6(A, 5060, B, 5060, payload, [later])), { ok: false, reason: 'fragment' }, 'a later fragment')
  const esp = buildUdp6(A, 5060, B, 5060, payload); esp[6] = 50
  t.same(parseUdp(esp), { ok: false, reason: 'not-udp' }, 'ESP hides the rest')
  const tcp = buildUdp6(A, 5060, B, 5060, payload); tcp[6] = 6
  t.same(parseUdp(tcp), { ok: false, reason: 'not-udp' })
  const loop = buildUdp6(A, 5060, B, 5060, payload, Array.from({ length: 9 }, () => ext(60, 1)))
  t.same(parseUdp(loop), { ok: false, reason: 'bad-extension' }, 'a chain of 9 extension headers is refused')
  const huge = buildUdp6(A, 5060, B, 5060, payload, [ext(0, 1)]); huge[41] = 255
  t.same(parseUdp(huge), { ok: false, reason: 'bad-length' }, 'a header length past the packet')
  const lying = buildUdp6(A, 5060, B, 5060, payload); lying.writeUInt16BE(5000, 4)
  t.same(parseUdp(lying), { ok: false, reason: 'bad-length' })
  const jumbo = buildUdp6(A, 5060, B, 5060, payload); jumbo.writeUInt16BE(0, 4)
  t.same(parseUdp(jumbo), { ok: false, reason: 'bad-length' })
  const udpLie = buildUdp6(A, 5060, B, 5060, payload); udpLie.writeUInt16BE(4, 44)
  t.same(parseUdp(udpLie), { ok: false, reason: 'bad-length' })
  t.same(parseUdp(buildUdp6(A, 5060, B, 5060, payload).subarray(0, 44)), { ok: false, reason: 'short' })
  for (let i = 0; i < 2000; i++) {
    const junk = Buffer.from(buildUdp6(A, 5060, B, 5060, payload, [ext(0, 1)]))
    junk[40 + (i % 16)] = (i * 37) & 0xff
    parseUdp(junk)
  }
  t.pass('2000 damaged headers parsed without a throw')
})

t.test('a new payload gets the IPv6 lengths and the mandatory UDP checksum', async t => {
  const pkt = buildUdp6(A, 5060, B, 5060, payload, [ext(0, 1)])
  const r = parseUdp(pkt)
  if (!r.ok) throw new Error('parse')
  const next = Buffer.from('SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n')
  const out = withPayload(pkt, r.udp, next, () => { throw new Error('the IPv4 fixer must not run on IPv6') })
  const back = parseUdp(out)
  t.ok(back.ok && back.udp.payload.equals(next))
  t.equal(out.readUInt16BE(4), out.length - 40, 'payload length')
  t.equal(udp6Checksum(out, 48), out.readUInt16BE(54), 'checksum recomputed')
  t.not(out.readUInt16BE(54), 0, 'never zero in IPv6')
})
