// systemd notifications: what sipalg tells systemd and when (src/cli/systemd.ts), and the addon's
// datagram really reaching a unix socket the way systemd's $NOTIFY_SOCKET receives it.

import t from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { systemdNotifier, watchdogIntervalMs } from '../../src/cli/systemd.js'
import { loadNative } from '../../src/netfilter/native.js'
import { notifySocket } from '../lab/notify.js'

const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }

t.test('the watchdog interval is half of WatchdogSec, and only for the process systemd watches', async t => {
  t.equal(watchdogIntervalMs({ WATCHDOG_USEC: '10000000' }, 7), 5000)
  t.equal(watchdogIntervalMs({ WATCHDOG_USEC: '10000000', WATCHDOG_PID: '7' }, 7), 5000)
  t.equal(watchdogIntervalMs({ WATCHDOG_USEC: '10000000', WATCHDOG_PID: '8' }, 7), null, 'another process\'s watchdog')
  t.equal(watchdogIntervalMs({}, 7), null)
  t.equal(watchdogIntervalMs({ WATCHDOG_USEC: 'soon' }, 7), null)
})

t.test('outside systemd there is no notifier', async t => {
  t.equal(systemdNotifier({}, 7, () => { t.fail('sent') }, () => {}), null)
  t.equal(systemdNotifier({ NOTIFY_SOCKET: '' }, 7, () => { t.fail('sent') }, () => {}), null)
})

t.test('READY with a status, watchdog pings, STOPPING; a failing socket is reported once per kind', async t => {
  const sent: string[] = []
  let broken = false
  const errors: string[] = []
  const n = systemdNotifier({ NOTIFY_SOCKET: '/run/systemd/notify', WATCHDOG_USEC: '20000' }, 7, (socket, text) => {
    t.equal(socket, '/run/systemd/notify')
    if (broken) throw new Error('ECONNREFUSED')
    sent.push(text)
  }, what => { errors.push(what) })
  if (n === null) throw new Error('no notifier')
  n.ready('processing queue 0')
  t.equal(sent[0], 'READY=1\nSTATUS=processing queue 0\nMAINPID=7')
  await sleep(60)
  t.ok(sent.filter(s => s === 'WATCHDOG=1').length >= 2, 'pinged every 10 ms')
  broken = true
  await sleep(50)
  n.stopping()
  t.same(errors, ['WATCHDOG', 'STOPPING'], 'each kind of failure once')
  broken = false
  n.stopping()
  n.close()
  const last = sent.length
  await sleep(40)
  t.equal(sent.length, last, 'no ping after close')
  t.equal(sent.at(-1), 'STOPPING=1')
})

t.test('the addon sends the datagram to a socket path and to an abstract name', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'sipalg-notify-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  const native = loadNative()
  for (const address of [join(dir, 'notify'), `@sipalg-notify-test-${process.pid}`]) {
    const socket = await notifySocket(address)
    t.teardown(socket.close)
    t.equal(native.sdNotify(address, 'READY=1\nSTATUS=test'), true)
    native.sdNotify(address, 'WATCHDOG=1')
    await socket.until(2)
    t.same(socket.messages.map(m => m.text), ['READY=1\nSTATUS=test', 'WATCHDOG=1'], address)
  }
  t.throws(() => native.sdNotify(join(dir, 'nobody'), 'READY=1'), /sdNotify: sendto/, 'nobody listening: an error, no crash')
  t.throws(() => native.sdNotify('relative', 'READY=1'), /absolute path/)
  t.throws(() => native.sdNotify(join(dir, 'x'), ''), /1\.\.510 bytes/)
})
