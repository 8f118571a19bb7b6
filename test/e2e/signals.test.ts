// Operating signals: SIGHUP re-reads the config live (no call dropped), SIGTERM stops sipalg but
// leaves the kernel mappings, so a call in progress keeps its audio. Under systemd (Type=notify):
// READY once the queue is processed, watchdog pings only while the event loop turns, STOPPING.

import t from 'tap'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Lab } from '../lab/lab.js'
import { runCall } from '../lab/sip.js'
import { startSipalg } from '../lab/sipalg.js'
import { notifySocket } from '../lab/notify.js'

const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }

t.test('SIGHUP and SIGTERM', async t => {
  const lab = await Lab.up({ forwardPolicy: 'drop' })
  t.teardown(async () => { await lab.down() })
  // systemd's socket, as a path (the gateway's namespace shares the file system).
  const dir = mkdtempSync(join(tmpdir(), `sipalg-${lab.runId}-notify-`))
  const systemd = await notifySocket(join(dir, 'notify'))
  t.teardown(() => { systemd.close(); rmSync(dir, { recursive: true, force: true }) })
  const alg = await startSipalg(lab, { config: 'malformed: pass\n', env: { NOTIFY_SOCKET: join(dir, 'notify'), WATCHDOG_USEC: '200000' } })
  const config = join(alg.dir, 'sipalg.yaml')

  await t.test('systemd: READY once ready, then watchdog pings from the event loop, none while it is stopped', async t => {
    await systemd.until(3)
    t.match(systemd.messages[0].text, /^READY=1\nSTATUS=processing queue 0\nMAINPID=\d+$/, 'READY first, with a status')
    t.ok(systemd.messages.slice(1).every(m => m.text === 'WATCHDOG=1'), 'then pings')
    // A stuck loop, as systemd would see it: the process exists but pings nothing.
    alg.child.kill('SIGSTOP')
    await sleep(200)
    const before = systemd.messages.length
    await sleep(500)
    t.equal(systemd.messages.length, before, 'no ping from a stopped process')
    alg.child.kill('SIGCONT')
    await systemd.until(before + 2)
    t.equal(systemd.messages.at(-1)?.text, 'WATCHDOG=1', 'pings again once it runs')
  })

  await t.test('SIGHUP: a changed setting applies at once, a restart-only one is named', async t => {
    await lab.sendUdp('a', '203.0.113.9', 5060, 3, 'not sip at all', 5060)
    t.equal((await alg.status()).counters.dropped ?? 0, 0, 'junk passes with malformed: pass')
    writeFileSync(config, 'malformed: drop\nmedia_ports: 30000-30999\n')
    alg.child.kill('SIGHUP')
    for (let i = 0; i < 30 && !/config reloaded/.test(alg.log()); i++) await sleep(100)
    t.match(alg.log(), /"needRestart":\["mediaPorts"\].*config reloaded; some changes need a restart/)
    await lab.sendUdp('a', '203.0.113.9', 5060, 3, 'not sip at all', 5060)
    t.equal((await alg.status()).counters.dropped, 3, 'junk dropped after the reload')
    writeFileSync(config, 'malformed: sideways\n')
    alg.child.kill('SIGHUP')
    for (let i = 0; i < 30 && !/config reload failed/.test(alg.log()); i++) await sleep(100)
    t.match(alg.log(), /"code":"E103".*E103.*malformed.*config reload failed; keeping the running config/)
    t.equal(alg.child.exitCode, null, 'a bad config does not stop sipalg')
    rmSync(config)
    alg.child.kill('SIGHUP')
    for (let i = 0; i < 30 && !/"code":"E102"/.test(alg.log()); i++) await sleep(100)
    t.match(alg.log(), /"code":"E102".*cannot read config file.*config reload failed; keeping the running config/, 'a vanished config file: E102, kept running')
    await lab.sendUdp('a', '203.0.113.9', 5060, 3, 'not sip at all', 5060)
    t.equal((await alg.status()).counters.dropped, 6, 'the running config (malformed: drop) is still in force')
    writeFileSync(config, 'malformed: pass\n')
  })

  await t.test('SIGTERM mid-call: sipalg exits cleanly, the call keeps its audio', async t => {
    const call = runCall(lab, { durationMs: 3000 })
    for (let i = 0; i < 60 && !(await alg.elements('peer_dnat')).some(e => / : 10\.0\.1\.23 \. 1\d{4}$/.test(e)); i++) await sleep(100)
    await sleep(500)
    alg.child.kill('SIGTERM')
    for (let i = 0; i < 50 && alg.child.exitCode === null; i++) await sleep(100)
    t.equal(alg.child.exitCode, 0, 'exit code 0')
    t.match(alg.log(), /sipalg stopped; kernel mappings left to expire/)
    t.equal(systemd.messages.filter(m => m.text === 'STOPPING=1').length, 1, 'systemd told it stops')
    t.notOk(/E322/.test(alg.log()), 'no notification failed')
    t.ok((await alg.elements('peer_dnat')).length > 0, 'the kernel mappings stay')
    const r = await call
    // 3 s of 30 ms packets ≈ 100 each way; audio cut at SIGTERM would give ~30.
    t.ok(r.rtpAtA > 80 && r.rtpAtB > 80, `audio both ways to the end (${r.rtpAtA}/${r.rtpAtB})`)
    await alg.stop()
  })
})
