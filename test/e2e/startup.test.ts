// Startup failures an operator meets in the first week: a metrics port already taken, a control
// socket or ready file that cannot be written, a corrupt state file. Each ends `sipalg run` with a
// catalogue code before anything is set up: no nft table, no bound queue, no socket left behind.

import t from 'tap'
import type { Test } from 'tap'
import { mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Lab } from '../lab/lab.js'
import { CLI, startSipalg } from '../lab/sipalg.js'

t.test('startup checks', async t => {
  const lab = await Lab.up()
  t.teardown(async () => { await lab.down() })
  const dir = mkdtempSync(join(tmpdir(), `sipalg-${lab.runId}-startup-`))
  const base = ['run', '--public', '203.0.113.1', '--inside', '10.0.1.0/24', '--outside-if', 'wan0']
  const paths = (name: string): string[] => {
    mkdirSync(join(dir, name))
    return ['--control-socket', join(dir, name, 'control.sock'), '--ready-file', join(dir, name, 'ready'),
      '--state-file', join(dir, name, 'state.json')]
  }
  // A file where a directory should be: even root cannot create anything under it.
  const aFile = join(dir, 'a-file')
  writeFileSync(aFile, 'x')

  const nothingLeft = async (t: Test, name: string): Promise<void> => {
    t.not((await lab.exec('gw', 'nft', ['list', 'table', 'ip', 'sipalg'])).code, 0, 'no nft table was created')
    const bound = (await lab.exec('gw', 'cat', ['/proc/net/netfilter/nfnetlink_queue'])).stdout.trim()
    t.equal(bound, '', 'no queue is bound')
    t.same(readdirSync(join(dir, name)).filter(f => f !== 'state.json.corrupt'), [], 'nothing written in its directory')
  }
  const failsWith = async (t: Test, name: string, extra: string[], code: RegExp, exit: number): Promise<void> => {
    const r = await lab.exec('gw', 'node', [CLI, ...base, ...paths(name), ...extra], { timeoutMs: 15_000 })
    t.equal(r.code, exit, `exit code ${exit}`)
    t.match(r.stderr, code)
    t.notMatch(r.stderr, /unexpected error|\n\s+at /, 'no stack trace')
    await nothingLeft(t, name)
  }

  await t.test('metrics port already in use', async t => {
    const holder = lab.spawn('gw', 'node', ['-e', "require('net').createServer().listen(9464, '127.0.0.1', () => console.log('up'))"], { stdio: ['ignore', 'pipe', 'inherit'] })
    t.teardown(async () => { await lab.stop(holder) })
    await new Promise(resolve => holder.stdout?.once('data', resolve))
    await failsWith(t, 'metrics', ['--metrics-port', '9464'], /^sipalg: E107: metrics_port 9464 cannot be bound \(EADDRINUSE\).*set metrics_port: to a free port/m, 78)
  })

  await t.test('control socket under a path that cannot be a directory', async t => {
    await failsWith(t, 'socket', ['--control-socket', join(aFile, 'sub', 'control.sock')],
      /^sipalg: E108: control_socket .*a-file\/sub\/control\.sock cannot be written \(ENOTDIR\)/m, 73)
  })

  await t.test('ready file that cannot be written', async t => {
    await failsWith(t, 'ready', ['--ready-file', join(aFile, 'ready')], /^sipalg: E108: ready_file .* cannot be written \(ENOTDIR\); create its directory or set ready_file:/m, 73)
    await failsWith(t, 'ready-dir', ['--ready-file', dir], /^sipalg: E108: ready_file .* \(EISDIR\)/m, 73)
  })

  await t.test('state file in a directory that cannot exist', async t => {
    await failsWith(t, 'state', ['--state-file', join(aFile, 'state.json')], /^sipalg: E108: state_file .*\(ENOTDIR\)/m, 73)
  })

  await t.test('a second sipalg on a live control socket or a busy queue does not start', async t => {
    const first = await startSipalg(lab, { rules: false, args: ['--queue', '3'] })
    t.teardown(async () => { await first.stop() })
    const r = await lab.exec('gw', 'node', [CLI, ...base, '--queue', '4', '--table', 'other', '--control-socket', first.socket,
      '--state-file', join(dir, 'second.json')], { timeoutMs: 15_000 })
    t.equal(r.code, 75)
    t.match(r.stderr, /^sipalg: E301: another sipalg answers on control socket/m)
    t.not((await lab.exec('gw', 'nft', ['list', 'table', 'ip', 'other'])).code, 0, 'the second made no table')
    t.equal((await first.status()).calls.length, 0, 'the first still answers on its socket')
    const busy = await lab.exec('gw', 'node', [CLI, ...base, ...paths('busy'), '--queue', '3', '--table', 'other'], { timeoutMs: 15_000 })
    t.equal(busy.code, 75)
    t.match(busy.stderr, /^sipalg: E202: nfqueue 3 is already bound by another process/m)
    t.not((await lab.exec('gw', 'nft', ['list', 'table', 'ip', 'other'])).code, 0, 'a busy queue: no table made either')
  })

  await t.test('a corrupt state file: warning E302, moved aside, sipalg starts fresh', async t => {
    const state = join(dir, 'corrupt-state.json')
    writeFileSync(state, '{"version":1,"calls":[{"callId":')
    const alg = await startSipalg(lab, { rules: false, args: ['--state-file', state] })
    t.teardown(async () => { await alg.stop() })
    t.match(alg.log(), /"code":"E302".*E302: state file .*corrupt-state\.json cannot be used \(Unexpected end of JSON input\); starting without the saved calls \(moved to .*corrupt-state\.json\.corrupt\)/)
    t.ok(readdirSync(dir).includes('corrupt-state.json.corrupt'), 'the corrupt file is kept for a look')
    t.equal((await alg.status()).calls.length, 0)
  })

  await t.test('an unreadable state file (a directory in its place): E302, sipalg starts fresh', async t => {
    const state = join(dir, 'dir-state.json')
    mkdirSync(state)
    const alg = await startSipalg(lab, { rules: false, args: ['--state-file', state] })
    t.teardown(async () => { await alg.stop() })
    t.match(alg.log(), /"code":"E302".*dir-state\.json cannot be used \(EISDIR\)/)
    t.ok(readdirSync(dir).includes('dir-state.json.corrupt'), 'moved aside')
  })
})
