// `sipalg doctor` in a namespace of its own: all good on this host, then a queue someone else holds
// and the kernel's own SIP helper attached are each reported with their fix.

import t from 'tap'
import { spawn, spawnSync } from 'node:child_process'
import { CLI } from './lab/sipalg.js'

const ns = `sipalg-${Math.random().toString(16).slice(2, 8)}${process.pid}-doc`
const inNs = (cmd: string, args: string[]): { code: number | null, out: string } => {
  const r = spawnSync('ip', ['netns', 'exec', ns, cmd, ...args], { encoding: 'utf8', timeout: 20_000 })
  return { code: r.status, out: `${r.stdout}${r.stderr}` }
}

t.test('doctor', async t => {
  spawnSync('ip', ['netns', 'add', ns])
  t.teardown(() => { spawnSync('ip', ['netns', 'del', ns]) })

  const good = inNs('node', [CLI, 'doctor', '--public', '203.0.113.1', '--queue', '3'])
  t.equal(good.code, 0, good.out)
  t.match(good.out, /ok\s+queue free\s+nfqueue 3 can be bound/)
  t.match(good.out, /ok\s+kernel SIP helper\s+not attached/)
  t.match(good.out, /ok\s+kernel SIP helper on TCP\s+not attached/)

  // Another process holds queue 3.
  const holder = spawn('ip', ['netns', 'exec', ns, 'node', '-e',
    `import(${JSON.stringify(CLI.replace(/cli\/main\.js$/, 'netfilter/queue.js'))}).then(m => { m.PacketQueue.open({ queue: 3 }); console.log('bound'); setTimeout(() => process.exit(0), 8000) })`])
  t.teardown(() => { holder.kill() })
  await new Promise<void>(resolve => holder.stdout.on('data', (d: Buffer) => { if (d.toString().includes('bound')) resolve() }))
  inNs('iptables', ['-t', 'raw', '-A', 'PREROUTING', '-p', 'udp', '--dport', '5060', '-j', 'CT', '--helper', 'sip'])
  const bad = inNs('node', [CLI, 'doctor', '--public', '203.0.113.1', '--queue', '3'])
  t.equal(bad.code, 1)
  t.match(bad.out, /FAIL\s+queue free\s+nfqueue 3 is already bound by another process; stop it or set queue: 4/)
  t.match(bad.out, /FAIL\s+kernel SIP helper[\s\S]*fix: the kernel's SIP helper \(nf_conntrack_sip\) is attached/)
  t.match(bad.out, /ok\s+kernel SIP helper on TCP\s+not attached/, 'attached to UDP only')
  inNs('iptables', ['-t', 'raw', '-A', 'PREROUTING', '-p', 'tcp', '--dport', '5060', '-j', 'CT', '--helper', 'sip'])
  t.match(inNs('node', [CLI, 'doctor', '--public', '203.0.113.1', '--queue', '4']).out, /FAIL\s+kernel SIP helper on TCP/)
})

t.test('doctor: an nftables.conf that flushes the ruleset without sipalg\'s lines is a warning (E209)', async t => {
  const { mkdtempSync, writeFileSync, readFileSync } = await import('node:fs')
  const { tmpdir } = await import('node:os')
  const { join } = await import('node:path')
  const dir = mkdtempSync(join(tmpdir(), 'sipalg-doctor-'))
  // In a namespace of its own: doctor binds a queue for a moment.
  const ns2 = `${ns}2`
  spawnSync('ip', ['netns', 'add', ns2])
  t.teardown(() => { spawnSync('ip', ['netns', 'del', ns2]) })
  const readme = readFileSync(join(import.meta.dirname, '..', 'README.md'), 'utf8')
  const tested = /<!-- nftables-conf -->\n```\n([\s\S]*?)```/.exec(readme)?.[1] ?? ''
  const doctorWith = (conf: string): { code: number | null, out: string } => {
    const path = join(dir, 'nftables.conf')
    writeFileSync(path, conf)
    const r = spawnSync('ip', ['netns', 'exec', ns2, 'node', CLI, 'doctor', '--public', '203.0.113.1'], { encoding: 'utf8', timeout: 20_000, env: { ...process.env, SIPALG_NFTABLES_CONF: path } })
    return { code: r.status, out: `${r.stdout}${r.stderr}` }
  }
  const debian = '#!/usr/sbin/nft -f\n\nflush ruleset\n\ntable inet filter {\n  chain forward { type filter hook forward priority filter; policy drop; }\n}\n'
  const warned = doctorWith(debian)
  t.match(warned.out, /WARN\s+nftables\.conf\s+.*nftables\.conf starts with "flush ruleset"\n\s+fix: E209: .*add the rules from README "Firewall reloads"/)
  t.notMatch(warned.out, /FAIL\s+nftables\.conf/, 'a warning, not a failure')
  t.match(doctorWith(tested).out, /ok\s+nftables\.conf\s+.*flushes the ruleset and accepts sipalg's media/, 'the README example passes')
  t.match(doctorWith('table inet filter {}\n').out, /ok\s+nftables\.conf\s+.*does not flush the ruleset/)
})
