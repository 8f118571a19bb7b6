// SIP over TCP with real phones (issue 11), FORWARD policy DROP: baresip phones alice (A, inside),
// carol (A2, inside) and bob (C, outside) registered over TCP to kamailio (B, registrar + proxy,
// udp+tcp, test/e2e/fixtures/kamailio-tcp.cfg). alice calls bob (inside → outside) and bob calls
// alice (outside → inside, kamailio opens a NEW connection to alice's registered Contact) and carol
// (kamailio reuses her registration connection: fix_nated_register), audio both ways each time.
// Kamailio's own log of every message it received is the far end's view: no private address, and
// alice's refreshes and un-REGISTER arrive on her registration's connection.
import t, { type Test as Tap } from 'tap'
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { ChildProcess } from 'node:child_process'
import { ADDR, Lab } from '../lab/lab.js'
import { startSipalg, ROOT, type Sipalg } from '../lab/sipalg.js'
import { tcpdump, waitUdpListening } from '../lab/sip.js'
import { leaked, sleep, sources, type Packet } from './flows.js'

const KAMAILIO_CFG = join(ROOT, 'test', 'e2e', 'fixtures', 'kamailio-tcp.cfg')
const RTP = { lo: 10000, hi: 10020 }
type PhoneRole = 'a' | 'a2' | 'c'

/** One message kamailio received, as its config logs it ("KAM-RX <what> <proto> <src> conid=<n>"). */
interface Received { what: string, src: string, conid: string, text: string }

function received (log: string): Received[] {
  return [...log.matchAll(/KAM-RX (.+?) tcp (\S+) conid=(\d+)[^\n]*\n([\s\S]*?)\nKAM-END/g)]
    .map(m => ({ what: m[1], src: m[2], conid: m[3], text: m[4] }))
}

/** A headless baresip (sine source, no sound device) with a console on 127.0.0.1:5555 in its namespace. */
function baresipDir (root: string, user: string, ip: string, regint: number): string {
  const dir = join(root, user)
  mkdirSync(dir)
  writeFileSync(join(dir, 'config'), [
    'poll_method epoll', `sip_listen ${ip}:5060`, 'module_path /usr/lib/baresip/modules',
    'module g711.so', 'module ausine.so', 'module aubridge.so', 'module cons.so', 'module_app account.so', 'module_app menu.so',
    'cons_listen 127.0.0.1:5555', 'audio_source ausine,440', 'audio_player aubridge,nil', 'audio_alert aubridge,nil',
    // One channel tears the call down in this baresip (1.0.0).
    'ausrc_srate 48000', 'ausrc_channels 2', `rtp_ports ${RTP.lo}-${RTP.hi}`, 'answermode auto', ''
  ].join('\n'))
  writeFileSync(join(dir, 'accounts'), `<sip:${user}@${ADDR.b};transport=tcp>;regint=${regint};answermode=auto;audio_codecs=PCMA/8000\n`)
  return dir
}

interface Phone { child: ChildProcess, log: () => string, say: (cmd: string) => Promise<void> }

async function until (what: string, cond: () => boolean | Promise<boolean>, ms = 8000): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(100)
  }
}

const srcIp = (p: Packet): string => p.src.split('.').slice(0, 4).join('.')

t.test('baresip phones over TCP through kamailio, both directions', async t => {
  const lab = await Lab.up({ forwardPolicy: 'drop' })
  t.teardown(async () => { await lab.down() })
  const dir = mkdtempSync(join(tmpdir(), `sipalg-kam-${lab.runId}-`))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  const alg: Sipalg = await startSipalg(lab)
  t.teardown(async () => { await alg.stop() })

  // Kamailio in the foreground with its own pid file and runtime dir; the lab kills it by PID.
  const kamDir = join(dir, 'kamailio')
  mkdirSync(kamDir)
  const kam = lab.spawn('b', 'kamailio', ['-DD', '-E', '-f', KAMAILIO_CFG, '-P', join(kamDir, 'kamailio.pid'), '-Y', kamDir, '-m', '32', '-M', '4'])
  let kamLog = ''
  kam.stdout?.on('data', (c: Buffer) => { kamLog += c.toString() })
  kam.stderr?.on('data', (c: Buffer) => { kamLog += c.toString() })
  t.teardown(async () => { await lab.stop(kam) })
  await waitUdpListening(lab, 'b', ADDR.b, 5060, 'tcp')

  // Everything reaching kamailio, seen on B's link.
  const atB = tcpdump(lab, 'b', 'tcp port 5060')
  await atB.ready

  const phone = (role: PhoneRole, user: string, regint: number): Phone => {
    const ip = ADDR[role]
    const child = lab.spawn(role, 'baresip', ['-f', baresipDir(dir, user, ip, regint), '-t', '55'])
    let log = ''
    child.stdout?.on('data', (c: Buffer) => { log += c.toString() })
    child.stderr?.on('data', (c: Buffer) => { log += c.toString() })
    return {
      child,
      log: () => log,
      say: async cmd => { await lab.sendUdp(role, '127.0.0.1', 5555, 1, cmd + '\n') }
    }
  }
  const alice = phone('a', 'alice', 5)
  const carol = phone('a2', 'carol', 60)
  const bob = phone('c', 'bob', 60)
  for (const [name, p] of [['alice', alice], ['carol', carol], ['bob', bob]] as const) {
    await until(`${name} registered`, () => /\{0\/TCP\/v4\} 200 OK/.test(p.log()))
  }
  const regs = (await alg.status()).registrations as Array<{ phone: string, publicPort: number }>
  t.same(regs.map(r => r.phone).sort(), ['10.0.1.23:5060', '10.0.1.24:5060'], 'both inside phones\' registrations are tracked at their listening Contact')
  // Whoever registers first gets public port 5060, the other the next one.
  const alicePort = regs.find(r => r.phone === '10.0.1.23:5060')?.publicPort ?? 0

  /** A call from one phone to a user: established at both ends, audio received at both (RTP counted at the inside phone and at bob), hung up. */
  const call = async (from: Phone, to: Phone, user: string, inside: PhoneRole): Promise<{ atInside: Packet[], atBob: Packet[], connections: Array<{ direction: string, phone: string }> }> => {
    const marks = [from.log().length, to.log().length]
    const capInside = tcpdump(lab, inside, `udp and dst host ${ADDR[inside]} and portrange ${RTP.lo}-${RTP.hi}`)
    const capBob = tcpdump(lab, 'c', `udp and dst host ${ADDR.c} and portrange ${RTP.lo}-${RTP.hi}`)
    await Promise.all([capInside.ready, capBob.ready])
    await from.say(`/dial sip:${user}@${ADDR.b};transport=tcp`)
    // baresip's status line, "audio=<sent>/<received> (bit/s)", once the call is up: both phones hear something.
    const hears = (p: Phone, mark: number): boolean => {
      const since = p.log().slice(mark)
      const rx = [...since.matchAll(/audio=\d+\/(\d+)/g)].at(-1)?.[1]
      return since.includes('Call established') && Number(rx ?? 0) > 0
    }
    await until(`${user}'s call has audio both ways`, () => hears(from, marks[0]) && hears(to, marks[1]))
    const connections = (await alg.status() as unknown as { tcpConnections: Array<{ direction: string, phone: string }> }).tcpConnections
    await from.say('/hangup')
    await until('the call ended at sipalg', async () => (await alg.status()).calls.every(c => c.state !== 'confirmed'))
    return { atInside: parse(await capInside.stop()), atBob: parse(await capBob.stop()), connections }
  }
  /** Both ends' RTP: the inside phone hears bob's own address, bob hears only the gateway's public one. */
  const audioBothWays = (t: Tap, r: { atInside: Packet[], atBob: Packet[] }, who: string): void => {
    t.ok(r.atInside.length > 20, `RTP from bob reached ${who} (${r.atInside.length})`)
    t.same([...new Set(r.atInside.map(srcIp))], [ADDR.c], `${who} sees bob's own address (${JSON.stringify(sources(r.atInside))})`)
    t.ok(r.atBob.length > 20, `RTP from ${who} reached bob (${r.atBob.length})`)
    t.same([...new Set(r.atBob.map(srcIp))], [ADDR.gwPublic], `bob sees only the gateway's public address (${JSON.stringify(sources(r.atBob))})`)
  }
  const parse = (lines: string[]): Packet[] => lines.flatMap(l => {
    const m = /^(\S+) IP (\S+) > (\S+?)\.(\d+):/.exec(l)
    return m === null ? [] : [{ t: Number(m[1].replace(/:/g, '')), src: m[2], dst: m[3], dport: Number(m[4]) }]
  })

  await t.test('alice (inside) calls bob (outside)', async t => {
    audioBothWays(t, await call(alice, bob, 'bob', 'a'), 'alice')
  })

  await t.test('bob calls alice: kamailio opens a new connection to her registered Contact', async t => {
    const conns = new Set(received(kamLog).map(m => m.conid))
    const r = await call(bob, alice, 'alice', 'a')
    audioBothWays(t, r, 'alice')
    const answers = received(kamLog).filter(m => m.src === `${ADDR.gwPublic}:${alicePort}` && /^reply 200/.test(m.what))
    t.ok(answers.some(m => !conns.has(m.conid)), `alice answered on a connection kamailio opened to her Contact 203.0.113.1:${alicePort}`)
    t.ok(r.connections.some(c => c.direction === 'inbound' && c.phone === '10.0.1.23:5060'), `sipalg spliced it inbound to her listening port (${JSON.stringify(r.connections)})`)
  })

  await t.test('bob calls carol: kamailio reuses her registration connection', async t => {
    const carolConn = received(kamLog).find(m => m.what === 'REGISTER' && m.text.includes('sip:carol@'))?.conid
    audioBothWays(t, await call(bob, carol, 'carol', 'a2'), 'carol')
    const fromCarol = received(kamLog).filter(m => /^reply 200/.test(m.what) && m.text.includes('sip:carol@'))
    t.ok(fromCarol.length > 0 && fromCarol.every(m => m.conid === carolConn), `carol's 200 came on her registration connection ${carolConn ?? '?'}`)
  })

  await t.test('alice\'s refreshes and un-REGISTER come on her registration connection', async t => {
    const aliceRegs = (): Received[] => received(kamLog).filter(m => m.what === 'REGISTER' && m.text.includes('sip:alice@'))
    await until('a refresh from alice', () => aliceRegs().length >= 2)
    await alice.say('/quit')
    await until('alice\'s un-REGISTER', () => aliceRegs().some(m => /;expires=0\b|^Expires: 0\b/m.test(m.text)))
    const all = aliceRegs()
    t.ok(all.length >= 3, `initial REGISTER, refresh(es), un-REGISTER (${all.length})`)
    t.equal(new Set(all.map(m => m.conid)).size, 1, 'all on one connection')
    t.equal(new Set(all.map(m => m.src)).size, 1, `from one public address and port (${all[0]?.src ?? ''})`)
    for (const m of all) {
      t.match(m.text, new RegExp(`^Via: SIP/2\\.0/TCP 203\\.0\\.113\\.1:${alicePort};`, 'm'), 'the Via names the public address')
      t.match(m.text, new RegExp(`^Contact: <sip:alice-[^@]+@203\\.0\\.113\\.1:${alicePort};transport=tcp>`, 'm'), 'the Contact names her public listening port')
    }
    await until('sipalg dropped alice\'s registration', async () => !((await alg.status()).registrations as Array<{ phone: string }>).some(r => r.phone === '10.0.1.23:5060'))
  })

  const msgs = received(kamLog)
  t.ok(msgs.length > 20, `kamailio received ${msgs.length} messages`)
  for (const m of msgs) t.same(leaked(m.text), [], `no private address at kamailio: ${m.what} from ${m.src}`)
  const sipAtB = parse(await atB.stop())
  t.same([...new Set(sipAtB.map(srcIp))].sort(), [ADDR.gwPublic, ADDR.c].sort(), 'into B: only the gateway\'s public address and bob')
  const st = await alg.status()
  t.equal(st.counters.tcp_framing_errors, undefined, 'no framing error')
  t.equal(alg.child.exitCode, null, 'sipalg still running')
  t.comment(`counters ${JSON.stringify(Object.fromEntries(Object.entries(st.counters).filter(([k]) => k.startsWith('tcp'))))}`)
})
