import t from 'tap'
import { buildConfig, loadConfigFile } from '../src/config.js'
import { SipalgError } from '../src/errors.js'
import { parseArgs, flagsToConfig } from '../src/cli/args.js'
import { RUN_FLAGS } from '../src/cli/run.js'

t.test('the example config loads and flags win over it', async t => {
  const file = loadConfigFile(new URL('../sipalg.example.yaml', import.meta.url).pathname)
  const { flags } = parseArgs(['--media-ports', '30000-30999', '--inside', '10.9.0.0/16', '--firewall'], RUN_FLAGS)
  const cfg = buildConfig([file, flagsToConfig(flags)])
  t.equal(cfg.public, '203.0.113.1')
  t.equal(cfg.mediaPorts, '30000-30999')
  t.same(cfg.inside, ['10.9.0.0/16'])
  t.equal(cfg.firewall, true)
  t.equal(cfg.timeouts.registrationGrace, 60)
})

t.test('errors name the key and show a fix', async t => {
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{ publik: '1.2.3.4' }, /"publik" is not a known setting/],
    [{ public: '300.1.1.1' }, /"public" must be an IPv4 address/],
    [{ inside: ['10.0.1.0/33'] }, /"inside" has "10.0.1.0\/33"/],
    [{ queue: 70000 }, /"queue" must be a whole number from 0 to 65535/],
    [{ media_ports: '5000' }, /"media_ports"/],
    [{ timeouts: { ring: -1 } }, /"timeouts.ring" must be seconds/],
    [{ timeouts: 5 }, /"timeouts" must be a section/],
    [{ inbound_sip_from: 'everyone' }, /registrar or any/]
  ]
  for (const [layer, re] of cases) {
    try {
      buildConfig([layer])
      t.fail(`accepted ${JSON.stringify(layer)}`)
    } catch (e) {
      t.ok(e instanceof SipalgError && e.code === 'E103_CONFIG_KEY', JSON.stringify(layer))
      t.match((e as Error).message, re)
      t.match((e as Error).message, /e\.g\. /, 'says what to write instead')
    }
  }
})

t.test('unknown flags are refused by name', async t => {
  t.throws(() => parseArgs(['--pubic', '1.2.3.4'], RUN_FLAGS), /unknown flag --pubic/)
  t.throws(() => parseArgs(['--public'], RUN_FLAGS), /--public needs a value/)
})

t.test('--log-level is accepted by every command', async t => {
  const { spawnSync } = await import('node:child_process')
  const cli = new URL('../dist/src/cli/main.js', import.meta.url).pathname
  const r = spawnSync(process.execPath, [cli, 'status', '--log-level', 'debug', '--socket', '/nonexistent/sipalg.sock'], { encoding: 'utf8' })
  t.match(r.stderr, /E300/, 'status got past its flags (no daemon there)')
  const w = spawnSync(process.execPath, [cli, 'rewrite', '--public', '203.0.113.1', '--log-level=warn'], { input: 'not sip', encoding: 'utf8' })
  t.equal(w.status, 3, 'rewrite too (exit 3: not SIP)')
})
