// Operating signals: SIGHUP re-reads the config live (no call dropped), SIGTERM stops sipalg but
// leaves the kernel mappings, so a call in progress keeps its audio.

import t from 'tap'
import { rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Lab } from '../lab/lab.js'
import { runCall } from '../lab/sip.js'
import { startSipalg } from '../lab/sipalg.js'

const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }

t.test('SIGHUP and SIGTERM', async t => {
  const lab = await Lab.up({ forwardPolicy: 'drop' })
  t.teardown(async () => { await lab.down() })
  const alg = await startSipalg(lab, { config: 'malformed: pass\n' })
  const config = join(alg.dir, 'sipalg.yaml')

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
    t.ok((await alg.elements('peer_dnat')).length > 0, 'the kernel mappings stay')
    const r = await call
    // 3 s of 30 ms packets ≈ 100 each way; audio cut at SIGTERM would give ~30.
    t.ok(r.rtpAtA > 80 && r.rtpAtB > 80, `audio both ways to the end (${r.rtpAtA}/${r.rtpAtB})`)
    await alg.stop()
  })
})
