// The HEP keys: hep (udp://HOST:PORT), hep_id, hep_password, in sipalg.yaml and as run flags.

import t from 'tap'
import { buildConfig, defaults } from '../../src/config.js'
import { flagsToConfig } from '../../src/cli/args.js'
import { command, parseCommand } from '../../src/cli/commands.js'
import { SipalgError } from '../../src/errors.js'
import { hepUrl } from '../../src/validate.js'

function refused (f: () => unknown): SipalgError {
  try { f() } catch (e) { if (e instanceof SipalgError) return e; throw e }
  throw new Error('accepted')
}

t.test('off unless configured', async t => {
  t.equal(defaults.hep, null)
  t.equal(buildConfig([]).hep, null)
  t.equal(buildConfig([{ hep: '' }]).hep, null, 'an empty value is off too')
})

t.test('the file', async t => {
  const c = buildConfig([{ hep: 'udp://127.0.0.1:9060 ', hep_id: 7, hep_password: 12345 }])
  t.same([c.hep, c.hepId, c.hepPassword], ['udp://127.0.0.1:9060', 7, '12345'])
  t.equal(buildConfig([{ hep: 'udp://homer.example.org:9060' }]).hep, 'udp://homer.example.org:9060', 'a host name')
  const e = refused(() => buildConfig([{ hep: 'tcp://127.0.0.1:9060' }]))
  t.equal(e.code, 'E103_CONFIG_KEY')
  t.match(e.message, 'config key "hep" has "tcp://127.0.0.1:9060", not udp://HOST:PORT; e.g. hep: udp://127.0.0.1:9060')
  t.match(refused(() => buildConfig([{ hep_id: 4294967296 }])).message, 'config key "hep_id"')
  t.match(refused(() => buildConfig([{ hep: 'udp://127.0.0.1:0' }])).message, 'has no UDP port')
  t.match(refused(() => buildConfig([{ hep: 'udp://300.1.2.3:9060' }])).message, 'has no valid IPv4 address')
  t.equal(buildConfig([{ hep: 'udp://[2001:db8::5]:9060' }]).hep, 'udp://[2001:db8::5]:9060', 'an IPv6 collector, bracketed')
  t.match(refused(() => buildConfig([{ hep: 'udp://[2001:db8::1::2]:9060' }])).message, 'has no valid IPv6 address in its brackets')
  t.match(refused(() => buildConfig([{ hep: 'udp://2001:db8::5:9060' }])).message, 'not udp://HOST:PORT')
  t.same(hepUrl('udp://[2001:DB8:0::5]:9060'), { ok: true, value: { host: '2001:db8::5', port: 9060 } }, 'the socket gets the bare literal')
})

t.test('the flags', async t => {
  const args = parseCommand('run', ['--hep', 'udp://127.0.0.1:9060', '--hep-id', '2002', '--hep-password', 'k'])
  const c = buildConfig([flagsToConfig(args, command('run'))])
  t.same([c.hep, c.hepId, c.hepPassword], ['udp://127.0.0.1:9060', 2002, 'k'])
  const e = refused(() => parseCommand('run', ['--hep', '127.0.0.1:9060']))
  t.equal(e.code, 'E101_BAD_FLAG')
  t.match(e.message, 'invalid value for --hep: 127.0.0.1:9060 (not udp://HOST:PORT); e.g. --hep udp://127.0.0.1:9060')
  t.same(hepUrl('udp://10.0.1.1:9060'), { ok: true, value: { host: '10.0.1.1', port: 9060 } })
})
