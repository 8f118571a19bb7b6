// The command table (src/cli/commands.ts): one parser and one help for every command, checked
// values refused with E101 naming the flag, unknown commands and flags with E100.

import t from 'tap'
import { spawnSync } from 'node:child_process'
import { SipalgError } from '../../src/errors.js'
import { flagOr } from '../../src/cli/args.js'
import { COMMANDS, command, helpText, parseCommand, type CommandName } from '../../src/cli/commands.js'

const CLI = new URL('../../dist/src/cli/main.js', import.meta.url).pathname
const sipalg = (...args: string[]): { code: number | null, out: string, err: string } => {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', input: '' })
  return { code: r.status, out: r.stdout, err: r.stderr }
}

function refused (f: () => unknown): SipalgError {
  try { f() } catch (e) { if (e instanceof SipalgError) return e; throw e }
  throw new Error('accepted')
}

t.test('every command has one help, reached four ways', async t => {
  const names = [...COMMANDS.keys()]
  t.same(names, ['run', 'rules', 'rewrite', 'status', 'trace', 'doctor', 'version', 'help'])
  for (const name of names) {
    const text = helpText(name)
    const ways = name === 'help' ? [['help', 'help']] : [[name, '--help'], [name, '-h'], ['help', name]]
    for (const way of ways) {
      const r = sipalg(...way)
      t.equal(r.code, 0, `sipalg ${way.join(' ')}: ${r.err}`)
      t.equal(r.out, text, `sipalg ${way.join(' ')} prints the table's help`)
    }
    for (const f of command(name as CommandName).flags) t.match(text, `--${f.name}`, `${name} --help lists --${f.name}`)
    t.match(text, /--log-level/, '--log-level everywhere')
  }
  t.equal(sipalg('status', '--queue', 'abc', '--help').out, helpText('status'), 'help wins over a bad value')
  t.match(helpText('rules'), /^usage: sipalg rules install\|uninstall \[flags\]/)
  t.match(helpText('rewrite'), /--inside CIDR +the networks behind the NAT .*\(repeatable; default: 10\.0\.0\.0\/8,172\.16\.0\.0\/12,192\.168\.0\.0\/16\)/)
  const overview = sipalg()
  t.equal(overview.code, 0)
  t.equal(overview.out, helpText(), 'sipalg alone prints the overview')
  t.equal(sipalg('--help').out, helpText())
  for (const name of names) t.match(overview.out, `sipalg ${name} `)
})

t.test('unknown commands and flags: E100, exit 64', async t => {
  const r = sipalg('bogus')
  t.equal(r.code, 64)
  t.equal(r.err, 'sipalg: E100: unknown command "bogus". Run "sipalg help" for the commands and flags.\n')
  t.equal(sipalg('help', 'bogus').code, 64)
  const flag = sipalg('status', '--jsn')
  t.equal(flag.code, 64)
  t.equal(flag.err, 'sipalg: E100: sipalg status: unknown flag --jsn. Run "sipalg help status" for its flags.\n')
  t.equal(refused(() => parseCommand('trace', ['-x'])).code, 'E100_USAGE')
  t.match(refused(() => parseCommand('run', ['--public'])).message, '--public needs a value')
  t.match(refused(() => parseCommand('run', ['--public', '--inside', '10.0.1.0/24'])).message, '--public needs a value')
  t.equal(parseCommand('status', ['--queue', '1', '--queue', '2']).flags.queue, 2, 'a flag given twice: the last one wins')
  t.match(refused(() => parseCommand('status', ['--watch', 'no'])).message, 'unexpected argument "no"', 'a boolean takes its value after =')
  t.match(refused(() => parseCommand('rules', [])).message, 'sipalg rules: needs install|uninstall')
  t.match(refused(() => parseCommand('rules', ['install', 'now'])).message, 'unexpected argument "now"')
})

t.test('bad values: E101 with the flag, the value, why and an example', async t => {
  const r = sipalg('status', '--queue', 'abc')
  t.equal(r.code, 64)
  t.equal(r.err, 'sipalg: E101: invalid value for --queue: abc (not an NFQUEUE number 0-65535); e.g. --queue 0\n', 'not sipalg-NaN.sock')
  const cases: Array<[CommandName, string[], string]> = [
    ['status', ['--watch=maybe'], 'invalid value for --watch: maybe (not true/false, yes/no or 1/0); e.g. --watch true'],
    ['status', ['--table', 'sip-alg'], 'invalid value for --table: sip-alg'],
    ['run', ['--public', '203.0.113.256'], 'invalid value for --public: 203.0.113.256 (not an IPv4 address); e.g. --public 203.0.113.1'],
    ['run', ['--inside', '10.0.1.0/24,10.0.2.0/40'], 'invalid value for --inside: 10.0.1.0/24,10.0.2.0/40 (not an IPv4 or IPv6 network); e.g. --inside 10.0.1.0/24'],
    ['run', ['--sip-ports', '5060,65536'], 'invalid value for --sip-ports: 5060,65536'],
    ['run', ['--media-ports', '20000'], 'invalid value for --media-ports: 20000 (not a range like 20000-29999)'],
    ['run', ['--metrics-port', '-1'], 'invalid value for --metrics-port: -1'],
    ['run', ['--malformed', 'eat'], 'invalid value for --malformed: eat (must be one of pass, drop); e.g. --malformed pass'],
    ['run', ['--log-level', 'loud'], 'invalid value for --log-level: loud'],
    ['run', ['--queue='], 'invalid value for --queue: ""'],
    ['rules', ['install', '--media-mark', '0x1/0x1ffffffff'], 'invalid value for --media-mark'],
    ['trace', ['--public', '1.2.3'], 'invalid value for --public: 1.2.3']
  ]
  for (const [name, argv, message] of cases) {
    const e = refused(() => parseCommand(name, argv))
    t.equal(e.code, 'E101_BAD_FLAG', `${name} ${argv.join(' ')}`)
    t.match(e.message, message)
  }
})

t.test('values come typed; booleans take true/false/yes/no/1/0 or nothing; defaults from the table', async t => {
  const a = parseCommand('status', ['--watch=no', '--json', '--queue', '3'])
  t.same(a.flags, { watch: false, json: true, queue: 3 })
  for (const [word, want] of [['true', true], ['yes', true], ['1', true], ['false', false], ['no', false], ['0', false], ['YES', true]] as const) {
    t.equal(parseCommand('status', [`--watch=${word}`]).flags.watch, want, `--watch=${word}`)
  }
  const run = parseCommand('run', ['--inside', '10.0.1.0/24, 10.0.2.0/24', '--inside=10.0.3.0/24', '--sip-ports', '5060,5080'])
  t.same(run.flags.inside, ['10.0.1.0/24', '10.0.2.0/24', '10.0.3.0/24'])
  t.same(run.flags['sip-ports'], [5060, 5080])
  const none = parseCommand('trace', [])
  t.same(none.flags, {}, 'defaults are not filled in (a config file sits between them and the flags)')
  t.same(flagOr(none, command('trace'), 'inside'), ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16'])
  t.equal(flagOr(none, command('trace'), 'queue'), 0)
  t.equal(flagOr(none, command('trace'), 'json'), false)
  t.same(parseCommand('help', ['--', '--public']).positional, ['--public'], 'after --, nothing is a flag')
})
