// pcapng, the default format of Wireshark and dumpcap. Three fixtures written by Wireshark 4.0's
// own tools: dumpcap-lo.pcapng, a live `dumpcap -i lo -f "udp port 5060"` of an INVITE and its 200 OK
// sent between lab addresses in a network namespace (Ethernet, nanoseconds, interface options
// if_name/if_filter/if_os, an Interface Statistics Block at the end; the OS and CPU strings were
// overwritten with "(removed)" of the same length); and two that editcap converted from a classic
// capture of such a call (`editcap -F pcapng in.pcap out.pcapng`): call-ether.pcapng (Ethernet,
// microseconds) and call-sll2-ns.pcapng (Linux cooked v2, if_tsresol 9: nanoseconds). The byte orders, block kinds and options editcap does not write here
// (big-endian sections, Simple Packet Blocks, if_tsoffset, power-of-two resolutions) are built block
// by block below, in the layout the format defines.

import t from 'tap'
import { readFileSync } from 'node:fs'
import { Writable } from 'node:stream'
import { buildUdp } from '../../src/netfilter/packet.js'
import { LINKTYPE, PcapError, readPcap } from '../../src/trace/pcap.js'
import { runTrace } from '../../src/cli/trace.js'

const fixture = (name: string): Buffer => readFileSync(new URL(`../fixtures/pcap/${name}`, import.meta.url))
const T0 = 1_700_000_000

t.test('dumpcap\'s live capture: options skipped, statistics block ignored, nanoseconds', async t => {
  const p = readPcap(fixture('dumpcap-lo.pcapng'))
  t.equal(p.linkType, LINKTYPE.ETHERNET)
  t.equal(p.truncated, false)
  t.equal(p.skipped, 0, 'the statistics block is no packet')
  // 20:05:03.630527413 and .681323422 UTC (capinfos), to within what a double of milliseconds
  // since 1970 can hold (a quarter of a microsecond).
  const want = [1796155503630.527413, 1796155503681.323422]
  p.packets.forEach((x, i) => t.ok(Math.abs(x.at - want[i]) < 0.0005, `${x.at} is ${want[i]} to the microsecond`))
  t.match(p.packets[0].ip.subarray(28).toString('latin1'), /^INVITE sip:service@203\.0\.113\.9:5060 SIP\/2\.0\r\n/)
  t.match(p.packets[1].ip.subarray(28).toString('latin1'), /^SIP\/2\.0 200 OK\r\n/)
})

t.test('editcap\'s pcapng, Ethernet and microseconds', async t => {
  const p = readPcap(fixture('call-ether.pcapng'))
  t.equal(p.linkType, LINKTYPE.ETHERNET)
  t.equal(p.truncated, false)
  t.equal(p.skipped, 0)
  t.same(p.packets.map(x => x.at), [T0 * 1000, T0 * 1000 + 250])
  t.match(p.packets[0].ip.subarray(28).toString('latin1'), /^INVITE sip:service@203\.0\.113\.9:5060 SIP\/2\.0\r\n/)
  t.match(p.packets[1].ip.subarray(28).toString('latin1'), /^SIP\/2\.0 200 OK\r\n/)
})

t.test('editcap\'s pcapng, Linux cooked v2 and nanoseconds (if_tsresol 9)', async t => {
  const p = readPcap(fixture('call-sll2-ns.pcapng'))
  t.equal(p.linkType, LINKTYPE.LINUX_SLL2)
  t.equal(p.packets.length, 2)
  t.ok(Math.abs(p.packets[1].at - (T0 * 1000 + 250.000123)) < 0.001, 'the nanoseconds are read as nanoseconds')
  t.equal(p.packets[0].ip[0] >> 4, 4, 'the IPv4 header, past the 20-byte SLL2 header')
})

function sink (): { stream: Writable, text: () => string } {
  let s = ''
  return { stream: new Writable({ write (c, _e, cb) { s += String(c); cb() } }), text: () => s }
}

t.test('sipalg trace --pcap draws a pcapng capture', async t => {
  const out = sink()
  const err = sink()
  const file = new URL('../fixtures/pcap/call-ether.pcapng', import.meta.url).pathname
  const code = await runTrace(['--pcap', file, '--public', '203.0.113.1', '--inside', '10.0.1.0/24', '--json'], { stdout: out.stream, stderr: err.stream })
  t.equal(code, 0)
  t.equal(err.text(), '')
  const events = out.text().trim().split('\n').map(l => JSON.parse(l) as { method?: string, status?: number, direction: string })
  t.same(events.map(e => [e.method ?? e.status, e.direction]), [['INVITE', 'outbound'], [200, 'inbound']])
})

// --- blocks built by hand, either byte order

interface Order { le: boolean }
const u16 = (o: Order, v: number): Buffer => { const b = Buffer.alloc(2); if (o.le) b.writeUInt16LE(v); else b.writeUInt16BE(v); return b }
const u32 = (o: Order, v: number): Buffer => { const b = Buffer.alloc(4); if (o.le) b.writeUInt32LE(v); else b.writeUInt32BE(v); return b }
const pad4 = (b: Buffer): Buffer => Buffer.concat([b, Buffer.alloc((4 - (b.length % 4)) % 4)])

/** type, total length, body (padded to 32 bits), total length. */
function block (o: Order, type: number, body: Buffer): Buffer {
  const padded = pad4(body)
  return Buffer.concat([u32(o, type), u32(o, padded.length + 12), padded, u32(o, padded.length + 12)])
}
const option = (o: Order, code: number, value: Buffer): Buffer => Buffer.concat([u16(o, code), u16(o, value.length), pad4(value)])
const endOfOptions = (o: Order): Buffer => Buffer.concat([u16(o, 0), u16(o, 0)])

const shb = (o: Order): Buffer => block(o, 0x0a0d0d0a, Buffer.concat([u32(o, 0x1a2b3c4d), u16(o, 1), u16(o, 0), Buffer.alloc(8, 0xff)]))
const idb = (o: Order, linkType: number, options: Buffer[] = [], snapLen = 0): Buffer =>
  block(o, 1, Buffer.concat([u16(o, linkType), u16(o, 0), u32(o, snapLen), ...options, ...(options.length > 0 ? [endOfOptions(o)] : [])]))
const epb = (o: Order, iface: number, ts: bigint, data: Buffer): Buffer =>
  block(o, 6, Buffer.concat([u32(o, iface), u32(o, Number(ts >> 32n)), u32(o, Number(ts & 0xffffffffn)), u32(o, data.length), u32(o, data.length), data]))
const spb = (o: Order, data: Buffer): Buffer => block(o, 3, Buffer.concat([u32(o, data.length), data]))
const tsoffset = (o: Order, seconds: number): Buffer => option(o, 14, o.le ? Buffer.concat([u32(o, seconds), u32(o, 0)]) : Buffer.concat([u32(o, 0), u32(o, seconds)]))

const invite = buildUdp('10.0.1.23', 5060, '203.0.113.9', 5060, Buffer.from('INVITE sip:service@203.0.113.9 SIP/2.0\r\nContent-Length: 0\r\n\r\n'))
const bye = buildUdp('10.0.1.23', 5060, '203.0.113.9', 5060, Buffer.from('BYE sip:service@203.0.113.9 SIP/2.0\r\nContent-Length: 0\r\n\r\n'))
const BE = { le: false }
const LE = { le: true }

t.test('big-endian section: raw IP, microseconds by default, a Simple Packet Block shares the last time', async t => {
  const file = Buffer.concat([shb(BE), idb(BE, LINKTYPE.RAW), epb(BE, 0, BigInt(T0) * 1_000_000n + 5000n, invite), spb(BE, bye)])
  const p = readPcap(file)
  t.equal(p.linkType, LINKTYPE.RAW)
  t.same(p.packets.map(x => x.at), [T0 * 1000 + 5, T0 * 1000 + 5])
  t.ok(p.packets[0].ip.equals(invite))
  t.ok(p.packets[1].ip.equals(bye))
})

t.test('if_tsresol as a power of two, if_tsoffset, two interfaces, a second section in the other order', async t => {
  const first = Buffer.concat([
    shb(BE),
    idb(BE, LINKTYPE.ETHERNET),
    idb(BE, LINKTYPE.RAW, [option(BE, 9, Buffer.from([0x80 | 10])), tsoffset(BE, T0)]), // 1/1024 s, from T0
    block(BE, 4, Buffer.alloc(8)), // name resolution: nothing to draw
    epb(BE, 1, 512n, invite) // half a second after T0
  ])
  const second = Buffer.concat([shb(LE), idb(LE, LINKTYPE.LINUX_SLL), block(LE, 5, Buffer.alloc(12)),
    epb(LE, 0, BigInt(T0 + 1) * 1_000_000n, Buffer.concat([Buffer.from('00000001000600000000000008000800', 'hex'), bye]))])
  const p = readPcap(Buffer.concat([first, second]))
  t.equal(p.linkType, LINKTYPE.ETHERNET, 'the first interface\'s')
  t.same(p.packets.map(x => x.at), [T0 * 1000 + 500, (T0 + 1) * 1000])
  t.ok(p.packets[1].ip.equals(bye), 'the second section\'s interface 0 is Linux cooked, not the first section\'s')
})

t.test('what is skipped, what is cut short, what is corrupt', async t => {
  const arp = Buffer.concat([Buffer.from('ffffffffffff020000000002', 'hex'), Buffer.from('0806', 'hex'), Buffer.alloc(28)])
  const skipped = readPcap(Buffer.concat([shb(LE), idb(LE, LINKTYPE.ETHERNET), epb(LE, 0, 0n, arp), epb(LE, 7, 0n, invite)]))
  t.equal(skipped.packets.length, 0)
  t.equal(skipped.skipped, 2, 'not IPv4, and an interface that was never described')
  const whole = Buffer.concat([shb(LE), idb(LE, LINKTYPE.RAW), epb(LE, 0, 0n, invite), epb(LE, 0, 0n, bye)])
  const cut = readPcap(whole.subarray(0, whole.length - 10))
  t.equal(cut.truncated, true)
  t.equal(cut.packets.length, 1, 'the packets before the cut are kept')
  const snap = readPcap(Buffer.concat([shb(LE), idb(LE, LINKTYPE.RAW, [], 40), spb(LE, invite)]))
  t.equal(snap.packets[0].ip.length, 40, 'a Simple Packet Block holds at most the snap length')
  const badLength = Buffer.from(whole)
  badLength.writeUInt32LE(13, shb(LE).length + 4)
  t.throws(() => readPcap(badLength), new PcapError('pcapng block at byte 28 has an impossible length 13 (corrupt file)'))
  const disagree = Buffer.from(whole)
  disagree.writeUInt32LE(8, shb(LE).length + idb(LE, LINKTYPE.RAW).length - 4)
  t.throws(() => readPcap(disagree), { message: /its two lengths differ/ })
  const noMagic = Buffer.from(whole)
  noMagic.writeUInt32LE(0x12345678, 8)
  t.throws(() => readPcap(noMagic), { message: /no byte-order magic/ })
  t.throws(() => readPcap(Buffer.concat([shb(LE), idb(LE, LINKTYPE.RAW, [option(LE, 9, Buffer.from([19]))])])), { message: /if_tsresol 19/ })
})
