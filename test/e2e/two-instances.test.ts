// Two sipalgs on one gateway, side by side: queue 0 / table sipalg for SIP on 5060, queue 1 /
// table sipalg2 for SIP on 5080, each with its own media ports, control socket, state file and
// metrics port. Each handles only its own call; killed and restarted mid-call, each takes over
// only its own call (its own state file, its own table's mappings) and nothing is shared.

import t from 'tap'
import { existsSync, readFileSync } from 'node:fs'
import { Lab } from '../lab/lab.js'
import { runCall } from '../lab/sip.js'
import { startSipalg, type Sipalg } from '../lab/sipalg.js'
import { assertCallKept, sleep } from './heal.js'

t.test('two instances on queues 0 and 1', async t => {
  const lab = await Lab.up({ forwardPolicy: 'drop' })
  t.teardown(async () => { await lab.down() })
  // Instance 2's queue rules, by hand (sipalg rules install manages one chain per host: instance 1's).
  for (const dir of ['--dport', '--sport']) {
    await lab.sh('gw', 'iptables', ['-w', '-I', 'FORWARD', '1', '-p', 'udp', dir, '5080', '-j', 'NFQUEUE', '--queue-num', '1', '--queue-bypass'])
  }
  const one = ['--queue', '0', '--table', 'sipalg', '--sip-ports', '5060', '--media-ports', '20000-24999', '--metrics-port', '9501']
  const two = ['--queue', '1', '--table', 'sipalg2', '--sip-ports', '5080', '--media-ports', '25000-29999', '--metrics-port', '9502', '--tcp-listen-port', '50601']
  // The rules are instance 1's; they stay as they are while both restart at once.
  const start = async (args: string[], statePath?: string, rules = true): Promise<Sipalg> =>
    await startSipalg(lab, { args: statePath === undefined ? args : [...args, '--state-file', statePath], ruleArgs: ['--queue', '0', '--sip-ports', '5060'], rules })
  let a = await start(one)
  let b = await start(two)
  t.teardown(async () => { await a.stop(); await b.stop() })
  t.not(a.socket, b.socket, 'own control sockets')

  // A calls B on 5060 (instance 1), A2 calls C on 5080 (instance 2), at the same time.
  const call1 = runCall(lab, { from: 'a', to: 'b', durationMs: 20_000 })
  await sleep(300)
  const call2 = runCall(lab, { from: 'a2', to: 'c', fromPort: 5080, toPort: 5080, durationMs: 20_000, flushConntrack: false })
  for (let i = 0; i < 80; i++) {
    if ((await a.elements('peer_dnat')).length > 0 && (await b.elements('peer_dnat')).length > 0) break
    await sleep(100)
  }
  const s1 = await a.status()
  const s2 = await b.status()
  t.same(s1.calls.map(c => c.phone.split(':')[0]), ['10.0.1.23'], 'instance 1 has only A\'s call')
  t.same(s2.calls.map(c => c.phone.split(':')[0]), ['10.0.1.24'], 'instance 2 has only A2\'s call')
  const media1 = (await a.elements('peer_dnat')).filter(e => / : \S+ \. 1\d{4}$/.test(e))
  const media2 = (await b.elements('peer_dnat')).filter(e => / : \S+ \. 1\d{4}$/.test(e))
  t.ok(media1.length > 0 && media1.every(e => /^203\.0\.113\.9 \. 2[0-4]\d{3} : 10\.0\.1\.23 \. 16\d{3}$/.test(e)), `table sipalg: A's media only, in instance 1's ports (${media1.join(', ')})`)
  t.ok(media2.length > 0 && media2.every(e => /^203\.0\.113\.10 \. 2[5-9]\d{3} : 10\.0\.1\.24 \. 17\d{3}$/.test(e)), `table sipalg2: A2's media only, in instance 2's ports (${media2.join(', ')})`)

  // Both die mid-call and come back on their own state files.
  // The state is saved within a second of a change: wait until each file holds its answered call.
  const stateOf = (alg: Sipalg): string => `${alg.dir}/state.json`
  const saved = (alg: Sipalg): boolean => existsSync(stateOf(alg)) && readFileSync(stateOf(alg), 'utf8').includes('"confirmed"')
  for (let i = 0; i < 100 && !(saved(a) && saved(b)); i++) await sleep(100)
  const saved1 = readFileSync(stateOf(a), 'utf8')
  const saved2 = readFileSync(stateOf(b), 'utf8')
  t.match(saved1, /10\.0\.1\.23/)
  t.notMatch(saved1, /10\.0\.1\.24/, 'instance 1 saved only its own call')
  t.notMatch(saved2, /10\.0\.1\.23/, 'instance 2 saved only its own call')
  const keep = async (alg: Sipalg): Promise<string> => {
    const copy = `${alg.dir}.state.json`
    await lab.sh('gw', 'cp', [stateOf(alg), copy])
    await alg.stop('SIGKILL')
    return copy
  }
  const st1 = await keep(a)
  const st2 = await keep(b)
  ;[a, b] = await Promise.all([start(one, st1), start(two, st2, false)])
  // What each took over is read from its log, not its status: on a loaded machine a call may
  // already have ended by the time the status is asked (each call's own BYE is checked below).
  t.equal(await takenOver(a), 1, 'restarted instance 1 took over one call')
  t.equal(await takenOver(b), 1, 'restarted instance 2 took over one call')
  t.ok((await a.status()).calls.every(c => c.phone.startsWith('10.0.1.23:')), 'restarted instance 1 has only A\'s call')
  t.ok((await b.status()).calls.every(c => c.phone.startsWith('10.0.1.24:')), 'restarted instance 2 has only A2\'s call')

  const [r1, r2] = await Promise.all([call1, call2])
  // sipp plays the whole g711a.pcap (236 packets, 7 s) within the 20 s call (on a CI machine busy
  // with another lab both restarts once outlasted a 15 s one); a restart that cut the audio for a
  // second would cost 30+.
  assertCallKept(t, r1, 220)
  assertCallKept(t, r2, 220)
  t.same(await a.elements('any_dnat'), [], 'instance 1\'s BYE cleaned its table')
  t.same((await b.elements('peer_dnat')).filter(e => / : 10\.0\.1\.24 /.test(e)), [], 'instance 2\'s BYE cleaned its table')
  t.equal((await a.status()).calls.length + (await b.status()).calls.length, 0)
})

/** The number of calls a restarted sipalg logged it took over (its log reaches the pipe a little after it is ready). */
async function takenOver (alg: Sipalg): Promise<number | undefined> {
  for (let i = 0; i < 50; i++) {
    const line = alg.log().split('\n').find(l => l.includes('took over the calls'))
    if (line !== undefined) return (JSON.parse(line) as { calls: number }).calls
    await sleep(100)
  }
  return undefined
}
