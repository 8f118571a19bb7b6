// sipalg trace --pcap: a capture written here byte by byte (libpcap global header + records, the
// way tcpdump -w writes them) with a real-shaped call, drawn as the ladder of what sipalg would do.

import t from 'tap'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { buildUdp, buildUdp6 } from '../../src/netfilter/packet.js'
import { ipv6Bytes } from '../../src/ip6.js'
import { readPcap } from '../../src/trace/pcap.js'
import { runTrace } from '../../src/cli/trace.js'

const A = '10.0.1.23'
const B = '203.0.113.9'

const sdp = (ip: string, port: number): string =>
  `v=0\r\no=user1 53655765 2353687637 IN IP4 ${ip}\r\ns=-\r\nc=IN IP4 ${ip}\r\nt=0 0\r\nm=audio ${port} RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n`

const sip = (head: string, body = ''): Buffer => Buffer.from(
  head.replace(/\n/g, '\r\n') + (body === '' ? 'Content-Length: 0\r\n\r\n' : `Content-Type: application/sdp\r\nContent-Length: ${body.length}\r\n\r\n${body}`))

const CALL = '1-4242@10.0.1.23'
const invite = sip(`INVITE sip:service@${B}:5060 SIP/2.0
Via: SIP/2.0/UDP ${A}:5060;branch=z9hG4bK-4242-1-0
From: sipp <sip:sipp@${A}:5060>;tag=4242SIPpTag001
To: service <sip:service@${B}:5060>
Call-ID: ${CALL}
CSeq: 1 INVITE
Contact: sip:sipp@${A}:5060
Max-Forwards: 70
`, sdp(A, 16000))
// B answers the rewritten INVITE: it echoes the public Via and talks to the public address.
const ok = sip(`SIP/2.0 200 OK
Via: SIP/2.0/UDP 203.0.113.1:5060;branch=z9hG4bK-4242-1-0;received=203.0.113.1
From: sipp <sip:sipp@${A}:5060>;tag=4242SIPpTag001
To: service <sip:service@${B}:5060>;tag=99SIPpTag012
Call-ID: ${CALL}
CSeq: 1 INVITE
Contact: <sip:${B}:5060;transport=UDP>
`, sdp(B, 26000))
const ack = sip(`ACK sip:${B}:5060;transport=UDP SIP/2.0
Via: SIP/2.0/UDP ${A}:5060;branch=z9hG4bK-4242-5-0
From: sipp <sip:sipp@${A}:5060>;tag=4242SIPpTag001
To: service <sip:service@${B}:5060>;tag=99SIPpTag012
Call-ID: ${CALL}
CSeq: 1 ACK
Contact: sip:sipp@${A}:5060
Max-Forwards: 70
`)

/** An Ethernet II frame around an IPv4 packet. */
const ether = (ip: Buffer): Buffer => Buffer.concat([Buffer.from('0200000000010200000000020800', 'hex'), ip])

/** libpcap: 24-byte global header (magic, v2.4, snaplen, link type) + (16-byte header, frame) per packet. */
function pcapFile (linkType: number, frames: Array<{ sec: number, usec: number, frame: Buffer }>, bigEndian = false): Buffer {
  const w32 = (b: Buffer, v: number, off: number): void => { if (bigEndian) b.writeUInt32BE(v, off); else b.writeUInt32LE(v, off) }
  const w16 = (b: Buffer, v: number, off: number): void => { if (bigEndian) b.writeUInt16BE(v, off); else b.writeUInt16LE(v, off) }
  const head = Buffer.alloc(24)
  w32(head, 0xa1b2c3d4, 0); w16(head, 2, 4); w16(head, 4, 6); w32(head, 262144, 16); w32(head, linkType, 20)
  const parts: Buffer[] = [head]
  for (const f of frames) {
    const rec = Buffer.alloc(16)
    w32(rec, f.sec, 0); w32(rec, f.usec, 4); w32(rec, f.frame.length, 8); w32(rec, f.frame.length, 12)
    parts.push(rec, f.frame)
  }
  return Buffer.concat(parts)
}

const T0 = 1_700_000_000
const packets = [
  { sec: T0, usec: 0, ip: buildUdp(A, 5060, B, 5060, invite) },
  // RTP on other ports and an ARP-ish non-IP frame: skipped.
  { sec: T0, usec: 100_000, ip: buildUdp(A, 16000, B, 26000, Buffer.alloc(172)) },
  { sec: T0, usec: 250_000, ip: buildUdp(B, 5060, A, 5060, ok) },
  { sec: T0, usec: 260_000, ip: buildUdp(A, 5060, B, 5060, ack) }
]

function sink (): { stream: Writable, text: () => string } {
  let s = ''
  return { stream: new Writable({ write (c, _e, cb) { s += String(c); cb() } }), text: () => s }
}

const dir = mkdtempSync(join(tmpdir(), 'sipalg-trace-test-'))
t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })

async function trace (file: string, extra: string[] = []): Promise<{ code: number, out: string, err: string }> {
  const out = sink()
  const err = sink()
  const code = await runTrace(['--pcap', file, '--public', '203.0.113.1', '--inside', '10.0.1.0/24', ...extra], { stdout: out.stream, stderr: err.stream })
  return { code, out: out.text(), err: err.text() }
}

t.test('Ethernet capture of INVITE/200/ACK: the ladder shows what sipalg would rewrite', async t => {
  const file = join(dir, 'call.pcap')
  const frames = packets.map(p => ({ sec: p.sec, usec: p.usec, frame: ether(p.ip) }))
  frames.splice(1, 0, { sec: T0, usec: 50_000, frame: Buffer.from('ffffffffffff0200000000020806' + '00'.repeat(28), 'hex') })
  writeFileSync(file, pcapFile(1, frames))
  const r = await trace(file)
  t.equal(r.code, 0)
  t.equal(r.err, '')
  const out = r.out
  t.comment('\n' + out)
  t.match(out, /inside phone\s+gateway 203\.0\.113\.1\s+far end/)
  t.match(out, `── Call-ID ${CALL}   phone 10.0.1.23:5060   far end 203.0.113.9:5060`)
  const blocks = out.split(/\n(?=\s+\+\d+\.\d{3})/)
  const inv = blocks.find(b => /^\s+\+0\.000\s.*INVITE/.test(b)) ?? ''
  t.match(inv, /│─+>◆─+>│/, 'INVITE: rewritten on its way out')
  t.match(inv, /Via\s+10\.0\.1\.23:5060 → 203\.0\.113\.1:5060/)
  t.match(inv, /Contact\s+10\.0\.1\.23:5060 → 203\.0\.113\.1:5060/)
  t.match(inv, /c=\s+10\.0\.1\.23 → 203\.0\.113\.1/)
  t.match(inv, /m=audio\s+16000 → 20000/)
  t.match(inv, /\+ src_nat   10\.0\.1\.23:5060 → 203\.0\.113\.1:5060/, 'signalling mapping')
  t.match(inv, /\+ any_dnat  203\.0\.113\.1:20000 → 10\.0\.1\.23:16000 \(from anyone\)/, 'RTP mapping')
  t.match(inv, /\+ any_dnat  203\.0\.113\.1:20001 → 10\.0\.1\.23:16001/, 'RTCP mapping')
  const okBlock = blocks.find(b => /200 OK \(INVITE\)/.test(b)) ?? ''
  t.match(okBlock, /^\s+\+0\.250\s/)
  t.match(okBlock, /│<─+◆<─+│/, 'the 200 comes in from the far end, rewritten')
  t.match(okBlock, /Via\s+203\.0\.113\.1:5060 → 10\.0\.1\.23:5060/, 'Via restored to the phone\'s own')
  const ackBlock = blocks.find(b => /\sACK\s/.test(b)) ?? ''
  t.match(ackBlock, /^\s+\+0\.260\s/)
  t.match(ackBlock, /Via\s+10\.0\.1\.23:5060 → 203\.0\.113\.1:5060/)
  t.notMatch(ackBlock, /src_nat/, 'the signalling mapping is made once')
  t.equal(out.match(/^\s+\+[\d.]+\s+│/gm)?.length, 3, 'three arrows: RTP and the non-IP frame drew none')
})

t.test('--json: one event per SIP message', async t => {
  const file = join(dir, 'raw.pcap')
  writeFileSync(file, pcapFile(101, packets.map(p => ({ sec: p.sec, usec: p.usec, frame: p.ip })), true))
  const r = await trace(file, ['--json'])
  const events = r.out.trim().split('\n').map(l => JSON.parse(l))
  t.same(events.map(e => e.method ?? `${e.status} ${e.cseqMethod}`), ['INVITE', '200 INVITE', 'ACK'])
  t.same(events.map(e => e.direction), ['outbound', 'inbound', 'outbound'])
  t.equal(events[1].at, T0 * 1000 + 250)
})

t.test('Linux cooked (tcpdump -i any) capture, BYE removes the call\'s media mappings', async t => {
  const bye = sip(`BYE sip:${B}:5060;transport=UDP SIP/2.0
Via: SIP/2.0/UDP ${A}:5060;branch=z9hG4bK-4242-7-0
From: sipp <sip:sipp@${A}:5060>;tag=4242SIPpTag001
To: service <sip:service@${B}:5060>;tag=99SIPpTag012
Call-ID: ${CALL}
CSeq: 2 BYE
Contact: sip:sipp@${A}:5060
Max-Forwards: 70
`)
  const sll = (ip: Buffer): Buffer => { const h = Buffer.alloc(16); h.writeUInt16BE(0x0800, 14); return Buffer.concat([h, ip]) }
  const file = join(dir, 'sll.pcap')
  const all = [...packets, { sec: T0 + 2, usec: 0, ip: buildUdp(A, 5060, B, 5060, bye) }]
  writeFileSync(file, pcapFile(113, all.map(p => ({ sec: p.sec, usec: p.usec, frame: sll(p.ip) }))))
  const r = await trace(file)
  const byeBlock = r.out.slice(r.out.indexOf('+2.000'))
  t.match(byeBlock, /BYE/)
  t.match(byeBlock, /- any_dnat  203\.0\.113\.1:20000 → 10\.0\.1\.23:16000/)
  t.match(byeBlock, /- src_nat   10\.0\.1\.23:16001 → 203\.0\.113\.1:20001/)
})

t.test('not a capture, no --public: errors from the catalogue', async t => {
  const bad = join(dir, 'bad.pcap')
  writeFileSync(bad, 'hello, this is not a capture at all')
  await t.rejects(trace(bad), { code: 'E100_USAGE', message: /not a pcap or pcapng capture/ })
  await t.rejects(runTrace(['--pcap', bad]), { code: 'E100_USAGE', message: /needs --public/ })
  await t.rejects(trace(join(dir, 'missing.pcap')), { message: /cannot read .*ENOENT/ })
  const empty = join(dir, 'empty.pcap')
  writeFileSync(empty, pcapFile(1, []))
  const r = await trace(empty)
  t.equal(r.code, 0)
  t.match(r.err, /no SIP between the inside networks and the outside/)
})

t.test('IPv6 in a capture: Ethernet 0x86dd and raw IPv6 frames read, the message drawn as passed as written', async t => {
  const A6 = '2001:db8:1::23'
  const B6 = '2001:db8:2::9'
  const inv6 = sip(`INVITE sip:bob@[${B6}]:5060 SIP/2.0
Via: SIP/2.0/UDP [${A6}]:5060;branch=z9hG4bK-v6-1
From: <sip:alice@[${A6}]>;tag=v6a
To: <sip:bob@[${B6}]>
Call-ID: v6call@example.com
CSeq: 1 INVITE
Contact: <sip:alice@[${A6}]:5060>
Max-Forwards: 70
`, `v=0\r\no=- 1 1 IN IP6 ${A6}\r\ns=-\r\nc=IN IP6 ${A6}\r\nt=0 0\r\nm=audio 16000 RTP/AVP 0\r\n`)
  const ip6 = buildUdp6(ipv6Bytes(A6) as Buffer, 5060, ipv6Bytes(B6) as Buffer, 5060, inv6)
  const eth6 = Buffer.concat([Buffer.from('02000000000102000000000286dd', 'hex'), ip6])
  const file = join(dir, 'v6.pcap')
  writeFileSync(file, pcapFile(1, [{ sec: T0, usec: 0, frame: eth6 }, { sec: T0, usec: 1000, frame: ether(packets[0].ip) }]))
  t.equal(readPcap(readFileSync(file)).packets.length, 2, 'both families read')
  const r = await trace(file, ['--inside', '2001:db8:1::/64'])
  t.equal(r.code, 0)
  t.match(r.out, `── Call-ID v6call@example.com   phone [${A6}]:5060   far end [${B6}]:5060`)
  const v6block = r.out.slice(r.out.indexOf('v6call'), r.out.indexOf(`Call-ID ${CALL}`))
  t.match(v6block, /│─+>┼─+>│/, 'drawn as passed as it came (┼)')
  t.notMatch(v6block, /src_nat|any_dnat|→/, 'no rewrite, no IPv4 mapping')
  const json = (await trace(file, ['--inside', '2001:db8:1::/64', '--json'])).out.trim().split('\n').map(l => JSON.parse(l))
  t.match(json[0], { callId: 'v6call@example.com', direction: 'outbound', detail: /IPv6: passed as written/ })
  t.match(r.out, `── Call-ID ${CALL}`, 'the IPv4 call beside it as before')
  const raw6 = join(dir, 'v6raw.pcap')
  writeFileSync(raw6, pcapFile(229, [{ sec: T0, usec: 0, frame: ip6 }]))
  t.equal(readPcap(readFileSync(raw6)).packets.length, 1, 'LINKTYPE_IPV6')
  writeFileSync(raw6, pcapFile(101, [{ sec: T0, usec: 0, frame: ip6 }]))
  t.equal(readPcap(readFileSync(raw6)).packets.length, 1, 'raw IP holding IPv6')
  const loop6 = Buffer.concat([Buffer.from([30, 0, 0, 0]), ip6])
  writeFileSync(raw6, pcapFile(0, [{ sec: T0, usec: 0, frame: loop6 }]))
  t.equal(readPcap(readFileSync(raw6)).packets.length, 1, 'BSD loopback, AF_INET6 of macOS')
})
