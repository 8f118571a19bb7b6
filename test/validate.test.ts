// src/validate.ts: the checks both the flags and the config file use. Each refusal says why and
// gives an example that passes the same check.

import t from 'tap'
import * as check from '../src/validate.js'

const value = <T>(r: check.Checked<T>): T | 'refused' => r.ok ? r.value : 'refused'

t.test('IPv4 addresses and networks', async t => {
  for (const ok of ['0.0.0.0', '10.0.1.23', '203.0.113.1', '255.255.255.255']) t.equal(value(check.ipv4(ok)), ok)
  for (const bad of ['', '1.2.3', '1.2.3.4.5', '256.1.1.1', '010.0.0.1', '1.2.3.4 ', 'a.b.c.d', '::1', '1..2.3']) {
    t.equal(value(check.ipv4(bad)), 'refused', JSON.stringify(bad))
  }
  t.equal(value(check.cidr('10.0.1.0/24')), '10.0.1.0/24')
  t.equal(value(check.cidr('10.0.1.23')), '10.0.1.23', 'a bare address is /32')
  for (const bad of ['10.0.1.0/33', '10.0.1.0/', '10.0.1/24', '10.0.1.0/2a']) t.equal(value(check.cidr(bad)), 'refused', bad)
})

t.test('ports, port lists, queues, whole numbers', async t => {
  t.equal(value(check.port('5060')), 5060)
  for (const bad of ['0', '65536', '-1', '50 60', '5060.0', '0x13c4', '']) t.equal(value(check.port(bad)), 'refused', bad)
  t.same(value(check.portList('5060, 5080')), [5060, 5080])
  t.equal(value(check.portList('5060,')), 'refused')
  t.equal(value(check.queue('0')), 0)
  t.equal(value(check.queue('65535')), 65535)
  t.equal(value(check.queue('abc')), 'refused')
  t.equal(value(check.queue('65536')), 'refused')
  t.equal(value(check.integer('007', 0, 10, '1')), 7)
  t.equal(value(check.integer('11', 0, 10, '1')), 'refused')
})

t.test('the media port range: within 1024-65535, at least two RTP/RTCP pairs', async t => {
  t.same(value(check.portRange('20000-29999')), { lo: 20000, hi: 29999 })
  t.same(value(check.portRange(' 1024-1027 ')), { lo: 1024, hi: 1027 }, 'two pairs: 1024/1025 and 1026/1027')
  t.same(value(check.portRange('1025-1029')), { lo: 1025, hi: 1029 }, 'odd start: 1026/1027 and 1028/1029')
  t.equal(value(check.portRange('1025-1028')), 'refused', 'odd start leaves one pair')
  t.equal(value(check.portRange('1024-1026')), 'refused')
  t.equal(value(check.portRange('1000-2000')), 'refused', 'privileged ports')
  t.equal(value(check.portRange('60000-70000')), 'refused')
  t.equal(value(check.portRange('30000-20000')), 'refused')
  t.equal(value(check.portRange('20000')), 'refused')
  t.same(check.parsePortRange('20000-20003'), { lo: 20000, hi: 20003 })
  t.throws(() => check.parsePortRange('5000'), { name: 'ValidationError', message: 'media port range "5000": not a range like 20000-29999' })
})

t.test('booleans: true/false, yes/no, 1/0, nothing else', async t => {
  for (const [text, want] of [['true', true], ['TRUE', true], ['yes', true], ['1', true], ['false', false], ['no', false], ['0', false]] as const) {
    t.equal(value(check.boolean(text)), want, text)
  }
  for (const bad of ['', 'on', 'off', 'y', '2', 'maybe']) t.equal(value(check.boolean(bad)), 'refused', JSON.stringify(bad))
})

t.test('choices, identifiers, marks', async t => {
  t.equal(value(check.choice('drop', ['pass', 'drop'])), 'drop')
  t.equal(value(check.choice('Drop', ['pass', 'drop'])), 'refused')
  t.equal(value(check.identifier('sipalg_2')), 'sipalg_2')
  for (const bad of ['2sipalg', 'sip-alg', '', 'a'.repeat(33)]) t.equal(value(check.identifier(bad)), 'refused', bad)
  t.equal(value(check.markMask('0x5a100000/0xffff0000')), '0x5a100000/0xffff0000')
  t.equal(value(check.markMask('42')), '42')
  for (const bad of ['0x1/0x1ffffffff', '4294967296', '0x', 'mark']) t.equal(value(check.markMask(bad)), 'refused', bad)
})

t.test('every refusal has a why and an example that passes the same check', async t => {
  const checks: Array<[(s: string) => check.Checked<unknown>, string]> = [
    [check.ipv4, 'x'], [check.cidr, 'x'], [check.port, 'x'], [check.portList, 'x'], [check.queue, 'x'],
    [check.portRange, 'x'], [check.boolean, 'x'], [check.identifier, '1'], [check.markMask, 'x'],
    [s => check.choice(s, ['pass', 'drop']), 'x'], [s => check.integer(s, 0, 9, '3'), 'x']
  ]
  for (const [c, bad] of checks) {
    const r = c(bad)
    t.equal(r.ok, false)
    if (!r.ok) {
      t.ok(r.why.length > 5, r.why)
      t.equal(c(r.example).ok, true, `example ${r.example} passes`)
    }
  }
})
