// The README's /etc/nftables.conf for a pure-nftables gateway (forward policy drop, nothing new
// let through but what sipalg negotiated), loaded as the file is (flush ruleset included) while
// sipalg runs, as `systemctl restart nftables` would: without sipalg's ct-mark line a call gets
// no audio; with it, sipalg puts its table and queue rules back and calls are rewritten with audio
// both ways. The lines are exactly what `sipalg rules install --print --nft` prints.

import t from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { Lab } from '../lab/lab.js'
import { runCall } from '../lab/sip.js'
import { CLI, ROOT, startSipalg } from '../lab/sipalg.js'
import { msUntil, queueRulesBack } from './heal.js'

const readme = readFileSync(join(ROOT, 'README.md'), 'utf8')
const conf = /<!-- nftables-conf -->\n```\n([\s\S]*?)```\n<!-- \/nftables-conf -->/.exec(readme)?.[1] ?? ''

t.test('README nftables.conf on a lab gateway', async t => {
  t.match(conf, /^#!\/usr\/sbin\/nft -f\nflush ruleset\n/, 'the README has the example')
  const lab = await Lab.up({ forwardPolicy: 'drop' })
  t.teardown(async () => { await lab.down() })

  const printed = await lab.sh('gw', 'node', [CLI, 'rules', 'install', '--print', '--nft'])
  const printedLines = printed.trim().split('\n')
  t.equal(printedLines.length, 11)
  t.ok(printedLines.every(l => conf.includes(`    ${l}\n`)), 'the README carries exactly what rules install --print --nft prints')
  const markLine = printedLines.find(l => l.startsWith('ct mark')) ?? 'none'
  const alg = await startSipalg(lab, { args: ['--firewall'] })
  t.teardown(async () => { await alg.stop() })
  const reload = async (text: string): Promise<void> => {
    const load = await lab.exec('gw', 'nft', ['-f', '-'], { input: text })
    t.equal(load.code, 0, load.stderr)
    t.ok(await msUntil(async () => (await lab.exec('gw', 'nft', ['list', 'chain', 'ip', 'sipalg', 'pre'])).code === 0 && await queueRulesBack(lab)) >= 0,
      'sipalg put its table and its queue rules back after the flush')
  }

  await reload(conf.replace(`    ${markLine}\n`, ''))
  const silent = await runCall(lab, { durationMs: 1000 })
  t.ok(silent.rtpAtA + silent.rtpAtB < 5, `without the ct-mark line the operator's policy drop stops the media (${silent.rtpAtA}/${silent.rtpAtB})`)

  await reload(conf)
  const r = await runCall(lab, { durationMs: 2000 })
  t.ok(r.ok, `the call completes (exit A=${String(r.exitA)} B=${String(r.exitB)})`)
  t.match(r.inviteSeenByB, /^c=IN IP4 203\.0\.113\.1$/m, 'rewritten by sipalg (SIP went through the queue)')
  t.ok(r.rtpAtA > 50 && r.rtpAtB > 50, `audio both ways through policy drop (${r.rtpAtA}/${r.rtpAtB})`)
  t.equal((await alg.status()).counters.ruleset_healed, 4, 'two reloads, each repaired the table and the queue rules')
})
