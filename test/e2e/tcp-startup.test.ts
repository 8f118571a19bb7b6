// SIP over TCP at start (issue 11): a taken transparent listener port ends `sipalg run` with E320
// before anything is set up (no nft table, no bound queue, no policy routing); another
// tcp_listen_port starts it as usual, and its interception diverts to that port.
import t from 'tap'
import { mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Lab } from '../lab/lab.js'
import { CLI, startSipalg } from '../lab/sipalg.js'

t.test('a taken tcp_listen_port is a catalogue error, not a crash', async t => {
  const lab = await Lab.up()
  t.teardown(async () => { await lab.down() })
  const dir = mkdtempSync(join(tmpdir(), `sipalg-${lab.runId}-tcpstart-`))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  const rulesBefore = await lab.sh('gw', 'ip', ['-4', 'rule'])
  const holder = lab.spawn('gw', 'node', ['-e', "require('net').createServer().listen(50600, '127.0.0.1', () => console.log('up'))"], { stdio: ['ignore', 'pipe', 'inherit'] })
  t.teardown(async () => { await lab.stop(holder) })
  await new Promise(resolve => holder.stdout?.once('data', resolve))

  const r = await lab.exec('gw', 'node', [CLI, 'run', '--public', '203.0.113.1', '--inside', '10.0.1.0/24', '--outside-if', 'wan0',
    '--control-socket', join(dir, 'control.sock'), '--ready-file', join(dir, 'ready'), '--state-file', join(dir, 'state.json')], { timeoutMs: 15_000 })
  t.equal(r.code, 78, 'exit code 78')
  t.match(r.stderr, /^sipalg: E320: tcp_listen_port 50600 cannot be bound \(EADDRINUSE\);.*set tcp_listen_port: to a free port, or tcp: false/m)
  t.notMatch(r.stderr, /unexpected error|\n\s+at /, 'no stack trace')
  t.not((await lab.exec('gw', 'nft', ['list', 'table', 'ip', 'sipalg'])).code, 0, 'no nft table was created')
  t.equal((await lab.exec('gw', 'cat', ['/proc/net/netfilter/nfnetlink_queue'])).stdout.trim(), '', 'no queue is bound')
  t.equal(await lab.sh('gw', 'ip', ['-4', 'rule']), rulesBefore, 'no policy routing rule')
  t.same(readdirSync(dir), [], 'nothing written')

  const alg = await startSipalg(lab, { rules: false, args: ['--tcp-listen-port', '50601'] })
  t.teardown(async () => { await alg.stop() })
  t.match(await lab.sh('gw', 'nft', ['list', 'chain', 'ip', 'sipalg', 'tcp_divert']), /tproxy to :50601/, 'another port: sipalg runs and diverts there')
})
