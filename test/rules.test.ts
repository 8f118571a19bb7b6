// iptables/sipalg-rules.sh and `sipalg rules` (spec §2): exact install/uninstall in a scratch
// namespace, fail-open vs fail-closed and the media connmark accept through the lab gateway.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, mkdirSync, rmSync, copyFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Writable } from 'node:stream'
import { Lab, ADDR, newRunId, run } from './lab/lab.js'
import { captureUdp } from './lab/sip.js'
import { runRules, rulesArgs, rulesScriptPath } from '../src/cli/rules.js'
import { SipalgError } from '../src/errors.js'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
const SCRIPT = join(ROOT, 'iptables', 'sipalg-rules.sh')

// ---- a scratch namespace (not the lab) for the exact-diff tests
const NS = `sipalg-${newRunId()}-rules`
const cleanupNs = (): void => { spawnSync('ip', ['netns', 'del', NS], { stdio: 'ignore' }) }
process.on('exit', cleanupNs)
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => { cleanupNs(); process.kill(process.pid, sig) })
}

const inNs = (cmd: string, ...args: string[]) => run('ip', ['netns', 'exec', NS, cmd, ...args], { timeoutMs: 20_000 })
const script = (...args: string[]) => inNs('bash', SCRIPT, ...args)
/** iptables-save without the timestamp comments (and counters, which -c would add; we do not pass it). */
const save = async (): Promise<string> => {
  const r = await inNs('iptables-save')
  if (r.code !== 0) throw new Error(r.stderr)
  return r.stdout.split('\n').filter(l => !l.startsWith('#')).join('\n')
}
const sipalgRules = async (): Promise<string[]> => (await save()).split('\n').filter(l => /SIPALG/.test(l))

t.before(async () => {
  const r = await run('ip', ['netns', 'add', NS])
  if (r.code !== 0) throw new Error(`cannot create ${NS}: ${r.stderr}`)
  // Pre-existing, unrelated rules a real gateway would have.
  for (const args of [
    ['-P', 'FORWARD', 'DROP'],
    ['-A', 'FORWARD', '-m', 'conntrack', '--ctstate', 'ESTABLISHED,RELATED', '-j', 'ACCEPT'],
    ['-A', 'FORWARD', '-s', '192.0.2.0/24', '-j', 'DROP'],
    ['-N', 'CUSTOM'],
    ['-A', 'CUSTOM', '-p', 'tcp', '--dport', '22', '-j', 'ACCEPT'],
    ['-A', 'FORWARD', '-j', 'CUSTOM'],
    ['-t', 'nat', '-A', 'POSTROUTING', '-o', 'wan0', '-j', 'MASQUERADE'],
    ['-t', 'mangle', '-A', 'PREROUTING', '-p', 'udp', '--dport', '5060', '-j', 'MARK', '--set-mark', '7'],
  ]) {
    const x = await inNs('iptables', '-w', ...args)
    if (x.code !== 0) throw new Error(`iptables ${args.join(' ')}: ${x.stderr}`)
  }
})
t.teardown(cleanupNs)

t.test('install adds the SIPALG chain first in FORWARD; again = no change; uninstall restores exactly', async t => {
  const before = await save()
  const r = await script('install')
  t.equal(r.code, 0, r.stderr)
  const after1 = await save()
  t.same(await sipalgRules(), [
    ':SIPALG - [0:0]',
    ':SIPALG_TCP - [0:0]',
    '-A INPUT -m comment --comment sipalg -j SIPALG_TCP',
    '-A FORWARD -m comment --comment sipalg -j SIPALG',
    '-A SIPALG -p udp -m udp --dport 5060 -m comment --comment sipalg -j NFQUEUE --queue-num 0 --queue-bypass',
    '-A SIPALG -p udp -m udp --sport 5060 -m comment --comment sipalg -j NFQUEUE --queue-num 0 --queue-bypass',
    '-A SIPALG -p udp -m mark --mark 0x5a200000/0xffff0000 -m conntrack --ctstate NEW -m comment --comment sipalg -j NFQUEUE --queue-num 0 --queue-bypass',
    '-A SIPALG -m connmark --mark 0x5a100000/0xffff0000 -m comment --comment sipalg -j ACCEPT',
    // SIP over TCP: the splice's diverted connections are delivered locally (INPUT).
    '-A SIPALG_TCP -m mark --mark 0x5a10/0xffff -m comment --comment sipalg -j ACCEPT',
  ])
  const fwd = (await inNs('iptables', '-w', '-S', 'FORWARD')).stdout.split('\n')
  t.equal(fwd[1], '-A FORWARD -m comment --comment sipalg -j SIPALG', 'jump is the first FORWARD rule')
  // Everything else untouched: removing our lines gives the old ruleset back.
  t.equal(after1.split('\n').filter(l => !/SIPALG/.test(l)).join('\n'), before, 'nothing else changed')

  const r2 = await script('install')
  t.equal(r2.code, 0, r2.stderr)
  t.equal(await save(), after1, 'second install changes nothing')

  const u = await script('uninstall')
  t.equal(u.code, 0, u.stderr)
  t.equal(await save(), before, 'uninstall restores the previous iptables-save exactly')
  const u2 = await script('uninstall')
  t.equal(u2.code, 0, 'uninstall when absent is ok')
  t.match(u2.stdout, /not installed/)
  t.equal(await save(), before)
})

t.test('options: queue, several SIP ports, fail-closed, media mark; reinstall replaces', async t => {
  const before = await save()
  let r = await script('install', '--queue', '7', '--sip-ports', '5060,5080', '--media-mark', '0x1/0xff')
  t.equal(r.code, 0, r.stderr)
  t.same((await sipalgRules()).filter(l => l.startsWith('-A SIPALG ')), [
    '-A SIPALG -p udp -m udp --dport 5060 -m comment --comment sipalg -j NFQUEUE --queue-num 7 --queue-bypass',
    '-A SIPALG -p udp -m udp --sport 5060 -m comment --comment sipalg -j NFQUEUE --queue-num 7 --queue-bypass',
    '-A SIPALG -p udp -m udp --dport 5080 -m comment --comment sipalg -j NFQUEUE --queue-num 7 --queue-bypass',
    '-A SIPALG -p udp -m udp --sport 5080 -m comment --comment sipalg -j NFQUEUE --queue-num 7 --queue-bypass',
    '-A SIPALG -p udp -m mark --mark 0x5a200000/0xffff0000 -m conntrack --ctstate NEW -m comment --comment sipalg -j NFQUEUE --queue-num 7 --queue-bypass',
    '-A SIPALG -m connmark --mark 0x1/0xff -m comment --comment sipalg -j ACCEPT',
  ])
  r = await script('install', '--fail-closed')
  t.equal(r.code, 0, r.stderr)
  const rules = await sipalgRules()
  t.same(rules.filter(l => l.startsWith('-A SIPALG ')), [
    '-A SIPALG -p udp -m udp --dport 5060 -m comment --comment sipalg -j NFQUEUE --queue-num 0',
    '-A SIPALG -p udp -m udp --sport 5060 -m comment --comment sipalg -j NFQUEUE --queue-num 0',
    '-A SIPALG -p udp -m mark --mark 0x5a200000/0xffff0000 -m conntrack --ctstate NEW -m comment --comment sipalg -j NFQUEUE --queue-num 0',
    '-A SIPALG -m connmark --mark 0x5a100000/0xffff0000 -m comment --comment sipalg -j ACCEPT',
  ], 'reinstall replaced the chain content, no --queue-bypass')
  t.equal(rules.filter(l => l.startsWith('-A FORWARD')).length, 1, 'one jump')
  t.equal((await script('status')).code, 0, 'status: installed')
  t.equal((await script('uninstall')).code, 0)
  t.equal((await script('status')).code, 1, 'status: not installed')
  t.equal(await save(), before)
})

t.test('the jump is moved back to the top when another rule was inserted before it', async t => {
  const before = await save()
  t.equal((await script('install')).code, 0)
  t.equal((await inNs('iptables', '-w', '-I', 'FORWARD', '1', '-s', '198.51.100.7', '-j', 'DROP')).code, 0)
  t.equal((await script('install')).code, 0)
  const fwd = (await inNs('iptables', '-w', '-S', 'FORWARD')).stdout.split('\n')
  t.equal(fwd[1], '-A FORWARD -m comment --comment sipalg -j SIPALG')
  t.equal(fwd.filter(l => /SIPALG/.test(l)).length, 1)
  t.equal((await script('uninstall')).code, 0)
  t.equal((await inNs('iptables', '-w', '-D', 'FORWARD', '-s', '198.51.100.7', '-j', 'DROP')).code, 0)
  t.equal(await save(), before)
})

t.test('bad values are refused with exit 64 and change nothing', async t => {
  const before = await save()
  for (const args of [['--queue', '70000'], ['--sip-ports', '5060,x'], ['--sip-ports', '0'], ['--media-mark', 'zz'], ['--bogus']]) {
    const r = await script('install', ...args)
    t.equal(r.code, 64, `install ${args.join(' ')}`)
  }
  t.equal((await script('frobnicate')).code, 64)
  t.equal(await save(), before)
})

t.test('uninstall refuses to delete a chain someone else still references', async t => {
  t.equal((await script('install')).code, 0)
  t.equal((await inNs('iptables', '-w', '-A', 'CUSTOM', '-j', 'SIPALG')).code, 0)
  const r = await script('uninstall')
  t.equal(r.code, 69)
  t.match(r.stderr, /referenced/)
  t.equal((await inNs('iptables', '-w', '-D', 'CUSTOM', '-j', 'SIPALG')).code, 0)
  t.equal((await script('uninstall')).code, 0)
})

// ---- src/cli/rules.ts
class Sink extends Writable {
  text = ''
  override _write (chunk: Buffer, _enc: string, cb: () => void): void { this.text += chunk.toString(); cb() }
}

t.test('runRules: flags, root check, errors', async t => {
  t.same(rulesArgs(['install']), ['install'])
  t.same(rulesArgs(['install', '--queue', '3', '--sip-ports=5060,5080', '--fail-closed']),
    ['install', '--queue', '3', '--sip-ports', '5060,5080', '--fail-closed'])
  t.same(rulesArgs(['uninstall', '--queue', '0']), ['uninstall', '--queue', '0'])
  const code = (f: () => unknown): string => { try { f(); return 'none' } catch (e) { return e instanceof SipalgError ? e.code : String(e) } }
  t.equal(code(() => rulesArgs([])), 'E100_USAGE')
  t.equal(code(() => rulesArgs(['reinstall'])), 'E100_USAGE')
  t.equal(code(() => rulesArgs(['install', '--queue', '65536'])), 'E101_BAD_FLAG')
  t.equal(code(() => rulesArgs(['install', '--queue', '-1'])), 'E101_BAD_FLAG')
  t.equal(code(() => rulesArgs(['install', '--sip-ports', '5060,'])), 'E101_BAD_FLAG')
  t.equal(code(() => rulesArgs(['install', '--sip-ports', '70000'])), 'E101_BAD_FLAG')
  t.equal(code(() => rulesArgs(['install', '--media-mark', '0x1/0x1ffffffff'])), 'E101_BAD_FLAG')
  t.equal(code(() => rulesArgs(['install', '--nope'])), 'E100_USAGE')

  await t.rejects(runRules(['install'], { uid: 1000 }), { code: 'E200_NOT_ROOT', exitCode: 77 })
  const e = await runRules(['install'], { uid: 1000 }).catch((x: unknown) => x)
  t.match(String(e), /^sipalg: E200: sipalg rules install needs root/)
})

t.test('install --print: the exact text install applies, nothing applied; --print --nft', async t => {
  const code = (f: () => unknown): string => { try { f(); return 'none' } catch (e) { return e instanceof SipalgError ? e.code : String(e) } }
  t.same(rulesArgs(['install', '--print', '--nft', '--queue', '2']), ['install', '--queue', '2', '--print', '--nft'])
  t.equal(code(() => rulesArgs(['uninstall', '--print'])), 'E100_USAGE')
  t.equal(code(() => rulesArgs(['install', '--nft'])), 'E100_USAGE', '--nft only with --print')

  const before = await save()
  const out = new Sink()
  t.equal(await runRules(['install', '--print', '--sip-ports', '5060,5080'], { uid: 1000, prefix: ['ip', 'netns', 'exec', NS], stdout: out }), 0,
    'no root needed to look')
  t.equal(await save(), before, '--print changed nothing')
  t.match(out.text, /^\*filter\n:SIPALG - \[0:0\]\n-A SIPALG -p udp -m udp --dport 5060 -m comment --comment sipalg -j NFQUEUE --queue-num 0 --queue-bypass\n/)
  t.match(out.text, /\n-I FORWARD 1 -m comment --comment sipalg -j SIPALG\nCOMMIT\n$/)
  // What it prints is what install does: apply the text by hand and compare with a real install.
  const byHand = await run('ip', ['netns', 'exec', NS, 'iptables-restore', '-w', '--noflush'], { input: out.text })
  t.equal(byHand.code, 0, byHand.stderr)
  const applied = await sipalgRules()
  t.equal((await script('uninstall')).code, 0)
  t.equal((await script('install', '--sip-ports', '5060,5080')).code, 0)
  t.same(await sipalgRules(), applied, 'the printed text gives exactly the rules install makes')
  t.equal((await script('uninstall')).code, 0)
  t.equal(await save(), before)

  const nft = new Sink()
  await runRules(['install', '--print', '--nft', '--fail-closed'], { uid: 1000, prefix: ['ip', 'netns', 'exec', NS], stdout: nft })
  t.match(nft.text, /^ct mark and 0xffff0000 == 0x5a100000 accept$/m)
  t.match(nft.text, /^# udp dport 5060 queue num 0$/m, 'fail-closed: no bypass')
  t.match(nft.text, /^# meta mark and 0xffff0000 == 0x5a200000 ct state new queue num 0$/m, 'the first packets of new media flows too')
})

t.test('runRules finds the script from src/ and from dist/', async t => {
  t.equal(rulesScriptPath(), SCRIPT)
  const tmp = mkdtempSync(join(tmpdir(), 'sipalg-rules-path-'))
  t.teardown(() => rmSync(tmp, { recursive: true, force: true }))
  mkdirSync(join(tmp, 'iptables'))
  mkdirSync(join(tmp, 'dist', 'src', 'cli'), { recursive: true })
  copyFileSync(SCRIPT, join(tmp, 'iptables', 'sipalg-rules.sh'))
  t.equal(rulesScriptPath(join(tmp, 'dist', 'src', 'cli')), join(tmp, 'iptables', 'sipalg-rules.sh'))
  t.throws(() => rulesScriptPath('/'), { code: 'E205_IPTABLES' })
})

t.test('runRules installs and uninstalls in a namespace; iptables failure is E205', async t => {
  const before = await save()
  const out = new Sink()
  const prefix = ['ip', 'netns', 'exec', NS]
  t.equal(await runRules(['install', '--sip-ports', '5060,5080'], { uid: 0, prefix, stdout: out }), 0)
  t.match(out.text, /sipalg rules installed/)
  t.equal((await sipalgRules()).filter(l => /NFQUEUE/.test(l)).length, 5, 'two per SIP port, one for new media flows')
  t.equal(await runRules(['uninstall'], { uid: 0, prefix, stdout: out }), 0)
  t.equal(await save(), before)
  // A referenced chain cannot be removed: the script fails and runRules reports E205 with its reason.
  await runRules(['install'], { uid: 0, prefix, stdout: out })
  await inNs('iptables', '-w', '-A', 'CUSTOM', '-j', 'SIPALG')
  await t.rejects(runRules(['uninstall'], { uid: 0, prefix, stdout: out }), { code: 'E205_IPTABLES', exitCode: 69, message: /referenced/ })
  await inNs('iptables', '-w', '-D', 'CUSTOM', '-j', 'SIPALG')
  t.equal(await runRules(['uninstall'], { uid: 0, prefix, stdout: out }), 0)
  t.equal(await save(), before)
})

// ---- through the lab gateway: fail-open, fail-closed, media connmark
for (const policy of ['accept', 'drop'] as const) {
  t.test(`lab gateway, FORWARD policy ${policy}: SIP with nothing on the queue`, async t => {
    const lab = await Lab.up({ forwardPolicy: policy })
    t.teardown(() => lab.down())
    const gwScript = (...args: string[]) => lab.exec('gw', 'bash', [SCRIPT, ...args], { timeoutMs: 20_000 })
    const sipThrough = async (): Promise<number> => {
      await lab.flushConntrack()
      const cap = captureUdp(lab, 'b', 5060, 5060)
      await cap.ready
      const s = await lab.sendUdp('a', ADDR.b, 5060, 3, 'OPTIONS sip:b@203.0.113.9 SIP/2.0\r\n\r\n')
      t.equal(s.code, 0, s.stderr)
      await new Promise(resolve => setTimeout(resolve, 300))
      return (await cap.stop()).length
    }
    t.equal(await sipThrough(), 3, 'no rules: SIP passes')
    t.equal((await gwScript('install', '--queue', '0')).code, 0)
    t.equal(await sipThrough(), 3, 'fail-open (--queue-bypass): SIP passes untouched with nothing bound')
    t.equal((await gwScript('install', '--queue', '0', '--fail-closed')).code, 0)
    t.equal(await sipThrough(), 0, 'fail-closed: SIP is dropped')
    t.equal((await gwScript('uninstall')).code, 0)
    t.equal(await sipThrough(), 3, 'uninstalled: SIP passes again')
  })
}

t.test('lab gateway, FORWARD policy drop: inbound media passes only with the sipalg ct mark', async t => {
  const lab = await Lab.up({ forwardPolicy: 'drop' })
  t.teardown(() => lab.down())
  // Stand-in for sipalg's nft table: DNAT 203.0.113.1:20000 -> A:16000 and mark the flow's conntrack.
  const nft = `table ip sipalgtest {
    chain pre { type nat hook prerouting priority dstnat - 1; policy accept;
      iifname "wan0" ip daddr 203.0.113.1 udp dport 20000 ct mark set 0x5a100001 dnat to 10.0.1.23:16000; }
  }`
  t.equal((await lab.exec('gw', 'nft', ['-f', '-'], { input: nft })).code, 0)
  const mediaIn = async (): Promise<number> => {
    await lab.flushConntrack()
    const cap = captureUdp(lab, 'a', 16000, 16000)
    await cap.ready
    t.equal((await lab.sendUdp('b', ADDR.gwPublic, 20000, 3, 'rtp')).code, 0)
    await new Promise(resolve => setTimeout(resolve, 300))
    return (await cap.stop()).length
  }
  t.equal(await mediaIn(), 0, 'without sipalg rules the FORWARD DROP policy drops new inbound media')
  t.equal((await lab.exec('gw', 'bash', [SCRIPT, 'install'])).code, 0)
  t.equal(await mediaIn(), 3, 'with sipalg rules the marked flow is accepted')
  t.equal((await lab.exec('gw', 'bash', [SCRIPT, 'uninstall'])).code, 0)
  t.equal(await mediaIn(), 0)
})
