import t from 'tap'
import { buildUdp, parseUdp, withPayload } from '../../src/netfilter/packet.js'

// One's-complement sum over a range including its checksum field is 0xffff when it is right.
function sums (b: Buffer, start: number, end: number, init = 0): number {
  let acc = init
  for (let i = start; i < end; i += 2) acc += (b[i] << 8) | (i + 1 < end ? b[i + 1] : 0)
  while (acc > 0xffff) acc = (acc & 0xffff) + (acc >>> 16)
  return acc
}
function udpOk (p: Buffer): boolean {
  const ihl = (p[0] & 15) * 4
  const len = p.readUInt16BE(ihl + 4)
  const pseudo = sums(p, 12, 20) + 17 + len
  return sums(p, ihl, ihl + len, pseudo) === 0xffff
}

t.test('parse a built packet', async t => {
  const pkt = buildUdp('10.0.1.23', 5060, '203.0.113.9', 5060, Buffer.from('OPTIONS sip:x SIP/2.0\r\n\r\n'))
  const r = parseUdp(pkt)
  t.ok(r.ok)
  if (!r.ok) return
  t.equal(r.udp.src, '10.0.1.23')
  t.equal(r.udp.dst, '203.0.113.9')
  t.equal(r.udp.srcPort, 5060)
  t.equal(r.udp.payload.toString(), 'OPTIONS sip:x SIP/2.0\r\n\r\n')
  t.equal(sums(pkt, 0, 20), 0xffff, 'IP header checksum')
  t.ok(udpOk(pkt), 'UDP checksum')
})

t.test('new payload: lengths and checksums recomputed, odd lengths too', async t => {
  const pkt = buildUdp('10.0.1.23', 5060, '203.0.113.9', 5060, Buffer.from('short'))
  const r = parseUdp(pkt)
  if (!r.ok) return t.fail('parse')
  for (const size of [0, 1, 7, 500, 1499, 4000]) {
    const payload = Buffer.alloc(size, 0x41 + (size % 7))
    const out = withPayload(pkt, r.udp, payload)
    t.equal(out.length, 28 + size)
    t.equal(out.readUInt16BE(2), 28 + size, 'IP total length')
    t.equal(out.readUInt16BE(24), 8 + size, 'UDP length')
    t.equal(sums(out, 0, 20), 0xffff, `IP checksum for ${size}`)
    t.ok(udpOk(out), `UDP checksum for ${size}`)
    const back = parseUdp(out)
    t.ok(back.ok && back.udp.payload.equals(payload))
  }
})

t.test('rejects what is not a whole IPv4 UDP datagram', async t => {
  const good = buildUdp('10.0.1.23', 5060, '203.0.113.9', 5060, Buffer.from('x'))
  t.same(parseUdp(Buffer.alloc(10)), { ok: false, reason: 'short' })
  const v5 = Buffer.from(good); v5[0] = 0x55
  t.same(parseUdp(v5), { ok: false, reason: 'not-ipv4' })
  const tcp = Buffer.from(good); tcp[9] = 6
  t.same(parseUdp(tcp), { ok: false, reason: 'not-udp' })
  const frag = Buffer.from(good); frag.writeUInt16BE(0x2000, 6)
  t.same(parseUdp(frag), { ok: false, reason: 'fragment' })
  const lying = Buffer.from(good); lying.writeUInt16BE(5000, 2)
  t.same(parseUdp(lying), { ok: false, reason: 'bad-length' })
  const udpLie = Buffer.from(good); udpLie.writeUInt16BE(3, 24)
  t.same(parseUdp(udpLie), { ok: false, reason: 'bad-length' })
})
