// The control socket's streaming commands (what `sipalg trace` rides on), without a daemon.

import t from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { askControl, serveControl, streamControl, type StreamClient } from '../../src/cli/control.js'

const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }

t.test('a stream stays open, carries one document per line, ends when the server closes', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'sipalg-control-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  const path = join(dir, 'c.sock')
  const clients: StreamClient[] = []
  let closed = 0
  const ctl = serveControl(path, { status: () => ({ ok: true }) }, {
    trace: c => { clients.push(c); c.send({ trace: 'started' }); c.onClose(() => { closed++ }) }
  })
  await sleep(50)
  t.same(await askControl(path, 'status'), { ok: true }, 'one-shot commands unchanged')
  t.same(await askControl(path, 'nope'), { error: 'unknown command' })

  const got: unknown[] = []
  const s = streamControl(path, 'trace', d => got.push(d))
  for (let i = 0; i < 50 && clients.length === 0; i++) await sleep(20)
  await sleep(2500) // longer than the one-shot 2 s timeout: a stream is not cut
  clients[0].send({ n: 1 })
  clients[0].send({ n: 2, text: 'with\nnewline' })
  await sleep(50)
  t.same(got, [{ trace: 'started' }, { n: 1 }, { n: 2, text: 'with\nnewline' }])
  ctl.close()
  await s.done
  await sleep(20)
  t.equal(closed, 1, 'the server saw the stream end')

  const second = streamControl(path, 'trace', () => {})
  await t.rejects(second.done, { code: 'E300_DAEMON_DOWN' }, 'no daemon: E300')
})

t.test('the client stopping ends the stream on the server side', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'sipalg-control-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  const path = join(dir, 'c.sock')
  let closed = false
  const ctl = serveControl(path, {}, { trace: c => { c.send({ hi: 1 }); c.onClose(() => { closed = true }) } })
  t.teardown(() => { ctl.close() })
  await sleep(50)
  let first: unknown
  const s = streamControl(path, 'trace', d => { first ??= d })
  for (let i = 0; i < 50 && first === undefined; i++) await sleep(20)
  s.stop()
  await s.done
  for (let i = 0; i < 50 && !closed; i++) await sleep(20)
  t.same(first, { hi: 1 })
  t.ok(closed)
})
