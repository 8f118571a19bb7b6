// sipalg killed with -9 in the middle of a call: the call keeps its audio (the kernel holds the
// mappings), new SIP passes untouched (fail-open), and a restarted sipalg takes the call over so
// its BYE still removes every mapping.

import t from 'tap'
import { existsSync, mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Lab } from '../lab/lab.js'
import { runCall } from '../lab/sip.js'
import { startSipalg } from '../lab/sipalg.js'

const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }

t.test('kill -9 mid-call, restart, BYE', async t => {
  const lab = await Lab.up({ forwardPolicy: 'drop' })
  t.teardown(async () => { await lab.down() })
  const state = join(mkdtempSync(join(tmpdir(), 'sipalg-restart-')), 'state.json')
  const first = await startSipalg(lab, { args: ['--state-file', state] })

  // Long enough that the BYE comes after the restart even on a loaded machine.
  const call = runCall(lab, { durationMs: 10000 })
  let answered = false
  for (let i = 0; i < 80 && !answered; i++) {
    answered = (await first.elements('peer_dnat')).some(e => /^203\.0\.113\.9 \. 2\d{4} : 10\.0\.1\.23 \. 1\d{4}$/.test(e))
    if (!answered) await sleep(100)
  }
  t.ok(answered, 'call answered, media narrowed to B')
  // The state is saved within a second of a change: wait until the file holds the answered call.
  for (let i = 0; i < 100 && !(existsSync(state) && readFileSync(state, 'utf8').includes('"confirmed"')); i++) await sleep(100)
  await first.stop('SIGKILL')
  const atKill = Date.now()

  // While sipalg is dead, a new call's SIP passes untouched (fail-open).
  const meanwhile = await runCall(lab, { from: 'a2', to: 'c', durationMs: 300, flushConntrack: false })
  t.ok(meanwhile.ok, 'a new call connects while sipalg is down')
  t.match(meanwhile.inviteSeenByB, /c=IN IP4 10\.0\.1\.24/, 'its SIP was not rewritten (fail-open)')

  const second = await startSipalg(lab, { args: ['--state-file', state], rules: false })
  t.teardown(async () => { await second.stop() })
  const taken = (await second.status()).calls.length
  t.equal(taken, 1, `the restarted sipalg took the call over${taken === 1 ? '' : `\n${second.log()}`}`)
  t.match(second.log(), /took over the calls and registrations/)

  const r = await call
  t.ok(r.ok, `the call ends normally (exit A=${String(r.exitA)} B=${String(r.exitB)})`)
  t.ok(Date.now() - atKill > 2000, 'the call went on for seconds after the kill')
  // sipp's audio (236 packets, ~7 s) plays on; audio stopping at the kill would give ~60.
  t.ok(r.rtpAtA > 120, `B's audio kept reaching A through the kill and restart (${r.rtpAtA})`)
  t.ok(r.rtpAtB > 120, `A's audio kept reaching B (${r.rtpAtB})`)
  t.same(await second.elements('any_dnat'), [], 'the BYE removed the media mappings')
  t.same((await second.elements('peer_dnat')).filter(e => / : 10\.0\.1\.23 /.test(e)), [], 'no pinhole toward A left')
  t.equal((await second.status()).calls.length, 0)
})
