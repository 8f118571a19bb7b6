import t from 'tap'
import { buildConfig } from '../src/config.js'
import { SipalgError } from '../src/errors.js'
import { flagsToConfig } from '../src/cli/args.js'
import { loadConfigFile } from '../src/cli/config-file.js'
import { command, parseCommand } from '../src/cli/commands.js'
import { runConfig } from '../src/cli/run.js'

t.test('the example config loads and flags win over it', async t => {
  const file = loadConfigFile(new URL('../sipalg.example.yaml', import.meta.url).pathname)
  const args = parseCommand('run', ['--media-ports', '30000-30999', '--inside', '10.9.0.0/16', '--firewall', '--log-level', 'warn'])
  const cfg = buildConfig([file, flagsToConfig(args, command('run'))])
  t.equal(cfg.public, '203.0.113.1')
  t.equal(cfg.mediaPorts, '30000-30999')
  t.same(cfg.inside, ['10.9.0.0/16'])
  t.equal(cfg.firewall, true)
  t.equal(cfg.timeouts.registrationGrace, 60)
  t.equal(cfg.logLevel, 'warn', '--log-level is the log_level key')
})

t.test('runConfig: typed flags reach the config; --config and --pretty are not keys', async t => {
  const example = new URL('../sipalg.example.yaml', import.meta.url).pathname
  const { cfg, pretty } = runConfig(['--config', example, '--queue', '7', '--sip-ports', '5060,5080', '--inside', '10.0.1.0/24,10.0.2.0/24',
    '--inside', '10.0.3.0/24', '--firewall=no', '--conntrack-accounting=0', '--pretty'])
  t.equal(cfg.queue, 7)
  t.same(cfg.sipPorts, [5060, 5080])
  t.same(cfg.inside, ['10.0.1.0/24', '10.0.2.0/24', '10.0.3.0/24'], 'repeatable, and commas too')
  t.equal(cfg.firewall, false, '--firewall=no is false')
  t.equal(cfg.conntrackAccounting, false)
  t.equal(pretty, true)
  t.throws(() => runConfig(['--config', '/nonexistent/sipalg.yaml', '--public', '203.0.113.1']), { code: 'E102_CONFIG_READ' })
})

t.test('errors name the key and show a fix', async t => {
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{ publik: '1.2.3.4' }, /"publik" is not a known setting/],
    [{ public: '300.1.1.1' }, /"public" has "300.1.1.1", not an IPv4 address; e\.g\. public: 203\.0\.113\.1/],
    [{ inside: ['10.0.1.0/33'] }, /"inside" has "10.0.1.0\/33", not an IPv4 or IPv6 network/],
    [{ inside: '10.0.1.0/24, nope' }, /"inside" has "nope"/],
    [{ queue: 70000 }, /"queue" has "70000", not an NFQUEUE number 0-65535/],
    [{ queue: 'abc' }, /"queue" has "abc"/],
    [{ metrics_port: 1.5 }, /"metrics_port" has "1.5", not a whole number from 0 to 65535/],
    [{ sip_ports: [5060, 0] }, /"sip_ports" has "0", not a UDP port/],
    [{ media_ports: '5000' }, /"media_ports" has "5000", not a range like 20000-29999/],
    [{ media_ports: '80-1000' }, /"media_ports" has "80-1000", must lie within 1024-65535/],
    [{ media_ports: '20000-20002' }, /at least two RTP\/RTCP port pairs/],
    [{ firewall: 'maybe' }, /"firewall" has "maybe", not true\/false, yes\/no or 1\/0/],
    [{ fail_closed: 'nope' }, /"fail_closed" has "nope"/],
    [{ trusted_inside_proxies: ['10.0.1.5', '10.0.1'] }, /"trusted_inside_proxies" has "10.0.1"/],
    [{ limits: { max_calls: 0 } }, /"limits.max_calls" has "0".*e\.g\. limits: \{ max_calls: 100 \}/],
    [{ table: '1abc' }, /"table" has "1abc", not a short nftables identifier/],
    [{ malformed: 'eat' }, /must be one of pass, drop/],
    [{ timeouts: { ring: -1 } }, /"timeouts.ring" must be seconds/],
    [{ timeouts: 5 }, /"timeouts" must be a section/],
    [{ inbound_sip_from: 'everyone' }, /must be one of registrar, any/]
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

t.test('config booleans take the same words as flags', async t => {
  for (const [v, want] of [['yes', true], ['no', false], ['1', true], ['0', false], [true, true], ['false', false]] as const) {
    t.equal(buildConfig([{ firewall: v }]).firewall, want, String(v))
  }
  t.equal(buildConfig([{ media_ports: '1024-1027' }]).mediaPorts, '1024-1027', 'the smallest range: two pairs')
})

t.test('--log-level is accepted by every command', async t => {
  const { spawnSync } = await import('node:child_process')
  const cli = new URL('../dist/src/cli/main.js', import.meta.url).pathname
  const r = spawnSync(process.execPath, [cli, 'status', '--log-level', 'debug', '--socket', '/nonexistent/sipalg.sock'], { encoding: 'utf8' })
  t.match(r.stderr, /E300/, 'status got past its flags (no daemon there)')
  const w = spawnSync(process.execPath, [cli, 'rewrite', '--public', '203.0.113.1', '--log-level=warn'], { input: 'not sip', encoding: 'utf8' })
  t.equal(w.status, 3, 'rewrite too (exit 3: not SIP)')
})

t.test('media_latching: off (default), first or signalling; anything else is E103 naming the choices', async t => {
  t.equal(buildConfig([]).mediaLatching, 'off')
  t.equal(buildConfig([{ media_latching: 'first' }]).mediaLatching, 'first')
  t.equal(buildConfig([{ media_latching: 'signalling', timeouts: { latch: 5 } }]).timeouts.latch, 5)
  t.equal(buildConfig([]).timeouts.latch, 10)
  t.throws(() => buildConfig([{ media_latching: true }]), { code: 'E103_CONFIG_KEY', message: /media_latching.*must be one of off, first, signalling/ })
})
