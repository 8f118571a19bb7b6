// Issue 17, media latching: the far end's SDP names 203.0.113.9 (B) but its RTP leaves from
// 203.0.113.10 (C, a carrier's media server). With media_latching: first the phone hears C, and
// the stream is locked to C's address and port in the kernel; an intruder whose garbage reaches
// the port first does not win the latch, and gets nothing through after it; a re-INVITE moving the
// far media re-latches and cuts the old source. Without latching, and in firewall mode, C's RTP
// reaches nobody.

import t from 'tap'
import { Lab } from '../lab/lab.js'
import { runCall, type CallResult } from '../lab/sip.js'
import { startSipalg, type Sipalg } from '../lab/sipalg.js'
import { count, runFlow, sleep } from './flows.js'

const INTRUDER = '203.0.113.66'

/** RTP as a phone sends it: V=2, payload type 8 (PCMA, what B's SDP offers), 160 bytes of audio. */
const rtpHex = (pt = 8): string => Buffer.concat([Buffer.from([0x80, pt, 0, 1, 0, 0, 0, 160, 0x12, 0x34, 0xab, 0xcd]), Buffer.alloc(160, 0xd5)]).toString('hex')
const GARBAGE = Buffer.from('GET /rtp-probe HTTP/1.0\r\n\r\n').toString('hex')

/** `count` datagrams (hex payload) from bindIp:sport, 20 ms apart: a media source in a lab namespace. */
async function send (lab: Lab, role: 'a' | 'c', bindIp: string, sport: number, dst: string, dport: number, count: number, hex: string): Promise<void> {
  const js = `const s = require('node:dgram').createSocket('udp4'); const [ip, port, n, sport, hex, bind] = process.argv.slice(1);
    let i = 0; const b = Buffer.from(hex, 'hex');
    s.on('error', e => { console.error(String(e)); process.exit(1) });
    const next = () => { if (i++ >= Number(n)) { s.close(); return } b.writeUInt16BE(i, 2); s.send(b, Number(port), ip, () => setTimeout(next, 20)) };
    s.bind(Number(sport), bind, next);`
  const r = await lab.exec(role, process.execPath, ['-e', js, dst, String(dport), String(Math.min(count, 200)), String(sport), hex, bindIp], { timeoutMs: 15_000 })
  if (r.code !== 0) throw new Error(`sender on ${role} failed: ${r.stderr}`)
}

interface Media { phoneRtp: number, publicRtp: number, farRtp: number }

/** The call's media as sipalg status shows it, once the far end's SDP is known. */
async function media (alg: Sipalg): Promise<Media> {
  for (let i = 0; i < 80; i++) {
    const c = (await alg.status()).calls[0]
    const f = c?.flows[0] as { far: { ip: string, port: number } | null, publicPort?: number } | undefined
    const m = /10\.0\.1\.23:(\d+) → (\d+)/.exec(c?.media[0] ?? '')
    if (c?.state === 'confirmed' && f?.far !== null && f?.far !== undefined && m !== null) return { phoneRtp: Number(m[1]), publicRtp: Number(m[2]), farRtp: f.far.port }
    await sleep(100)
  }
  throw new Error('no confirmed call in sipalg status')
}

/** A silent call (sipp sends no RTP, but holds the media ports: the phone's RTP here leaves from another port of A, masqueraded); C and the intruder send to the public port. */
async function call (lab: Lab, alg: Sipalg, during: (m: Media) => Promise<void>): Promise<CallResult> {
  const r = runCall(lab, { rtp: false, durationMs: 12_000 })
  const m = await media(alg)
  await during(m)
  return await r
}

const fromHost = (r: CallResult, ip: string): number =>
  Object.entries(r.rtpSourcesAtA).filter(([k]) => k.startsWith(`${ip}.`)).reduce((n, [, v]) => n + v, 0)

t.test('media latching', async t => {
  const lab = await Lab.up()
  t.teardown(async () => { await lab.down() })
  await lab.sh('c', 'ip', ['addr', 'add', `${INTRUDER}/24`, 'dev', 'eth0'])

  await t.test('first: the phone hears the media server, both ways; garbage first does not win; nothing from the intruder after', async t => {
    const alg = await startSipalg(lab, { args: ['--media-latching', 'first'] })
    t.teardown(async () => { await alg.stop() })
    let statusLine = ''
    let latched: string[] = []
    const r = await call(lab, alg, async m => {
      await send(lab, 'c', INTRUDER, 40000, '203.0.113.1', m.publicRtp, 5, GARBAGE)
      t.match((await alg.status()).calls[0]?.media[0], /⇐ any \(latching/, 'garbage did not latch')
      await Promise.all([
        send(lab, 'c', '203.0.113.10', 27000, '203.0.113.1', m.publicRtp, 60, rtpHex()),
        send(lab, 'a', '10.0.1.23', m.phoneRtp + 500, '203.0.113.9', m.farRtp, 60, rtpHex())
      ])
      // An RTP-shaped packet from a third host, after the latch (before it, it could win: README).
      await send(lab, 'c', INTRUDER, 40002, '203.0.113.1', m.publicRtp, 20, rtpHex())
      statusLine = (await alg.status()).calls[0]?.media[0] ?? ''
      latched = await alg.elements('latch_dnat')
    })
    t.ok(r.ok, `call completes (exit A=${String(r.exitA)} B=${String(r.exitB)})`)
    t.ok(fromHost(r, '203.0.113.10') >= 50, `C's RTP reaches the phone (${JSON.stringify(r.rtpSourcesAtA)})`)
    t.ok(r.rtpAtB >= 50, `the phone's RTP reaches B (${r.rtpAtB})`)
    t.equal(fromHost(r, INTRUDER), 0, 'nothing from the intruder reached the phone')
    t.match(statusLine, /⇐ 203\.0\.113\.10:27000 \(latched\)/, 'sipalg status shows the latched source')
    t.equal(latched.length, 1, `one latch element in the kernel (${latched.join(' | ')})`)
    t.match(latched[0], /^203\.0\.113\.10 \. 27000 \. 2\d{4} : 10\.0\.1\.23 \. 1\d{4}$/)
    const st = await alg.status()
    t.ok((st.counters.media_latched ?? 0) >= 1, 'the latch is counted')
    t.ok((st.counters.media_latch_refused ?? 0) >= 1, 'the refused would-be latcher is counted')
    t.match(alg.log(), /"code":"E315".*203\.0\.113\.66:40000/, 'and logged with its code')
    t.match(alg.log(), /media latched/)
    if (!t.passing()) t.comment(alg.log().split('\n').filter(l => /latch|E3|media/.test(l)).join('\n'))
    t.same(await alg.elements('latch_dnat'), [], 'the BYE removes the latch')
  })

  await t.test('first: a re-INVITE moving the far media re-opens the latch; the new source wins, the old one is cut', async t => {
    const alg = await startSipalg(lab, { args: ['--media-latching', 'first'] })
    t.teardown(async () => { await alg.stop() })
    const flow = runFlow(lab, [
      { role: 'b', scenario: 'uas-move.xml' },
      { role: 'a', scenario: 'uac-move.xml', remote: '203.0.113.9:5060', durationMs: 8000 }
    ], { timeoutMs: 30_000 })
    const m = await media(alg)
    await send(lab, 'c', '203.0.113.10', 27000, '203.0.113.1', m.publicRtp, 40, rtpHex())
    const first = (await alg.status()).calls[0]?.media[0] ?? ''
    let reopened = ''
    for (let i = 0; i < 100 && !/latching/.test(reopened); i++) { await sleep(100); reopened = (await alg.status()).calls[0]?.media[0] ?? '' }
    await send(lab, 'c', '203.0.113.10', 27100, '203.0.113.1', m.publicRtp, 40, rtpHex())
    const second = (await alg.status()).calls[0]?.media[0] ?? ''
    const oldAgainAt = Date.now() / 1000
    await send(lab, 'c', '203.0.113.10', 27000, '203.0.113.1', m.publicRtp, 20, rtpHex())
    const r = await flow
    t.ok(r.ok, r.describe())
    t.match(first, /⇐ 203\.0\.113\.10:27000 \(latched\)/, 'latched onto the first source')
    t.match(reopened, new RegExp(`→ ${m.publicRtp} ⇐ any \\(latching`), 'the re-INVITE re-opened the same stream\'s latch')
    t.match(second, /⇐ 203\.0\.113\.10:27100 \(latched\)/, 'latched onto the new source')
    t.ok(count(r.rtp.a, { src: '203.0.113.10.27100' }) >= 35, `the new source reaches the phone (${count(r.rtp.a, { src: '203.0.113.10.27100' })})`)
    const old = (r.rtp.a ?? []).filter(p => p.src === '203.0.113.10.27000')
    t.ok(old.filter(p => p.t < oldAgainAt).length >= 35, `the old source reached the phone before the move (${old.length})`)
    t.equal(old.filter(p => p.t >= oldAgainAt).length, 0, 'and not after the new latch')
    t.ok(((await alg.status()).counters.conntrack_deleted ?? 0) >= 1, 'its flow was deleted from conntrack')
  })

  for (const mode of [[], ['--firewall']]) {
    await t.test(`off${mode.length > 0 ? ', firewall mode' : ''}: the media server's RTP reaches nobody; the phone's still reaches B`, async t => {
      const alg = await startSipalg(lab, { args: mode })
      t.teardown(async () => { await alg.stop() })
      const r = await call(lab, alg, async m => {
        await sleep(1000)
        await Promise.all([
          send(lab, 'c', '203.0.113.10', 27000, '203.0.113.1', m.publicRtp, 40, rtpHex()),
          send(lab, 'a', '10.0.1.23', m.phoneRtp + 500, '203.0.113.9', m.farRtp, 40, rtpHex())
        ])
      })
      t.ok(r.ok, `call completes (exit A=${String(r.exitA)} B=${String(r.exitB)})`)
      t.equal(fromHost(r, '203.0.113.10'), 0, `nothing from C (${JSON.stringify(r.rtpSourcesAtA)})`)
      t.ok(r.rtpAtB >= 30, `A → B (${r.rtpAtB})`)
    })
  }
})
