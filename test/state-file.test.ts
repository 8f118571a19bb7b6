// The call state file of `sipalg run` (src/cli/state-file.ts): written atomically, read back, and a
// missing or broken file is a fresh start.
import t from 'tap'
import { mkdtempSync, readdirSync, rmSync, writeFileSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { loadState, saveState } from '../src/cli/state-file.js'

t.test('save, load, broken or missing files', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'sipalg-state-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  const path = join(dir, 'run', 'sipalg-0.state.json')
  const state = { version: 1 as const, savedAt: 5, calls: [], registrations: [] }
  saveState(path, state)
  t.same(loadState(path), state)
  t.same(readdirSync(join(dir, 'run')), ['sipalg-0.state.json'], 'no temp file left')
  t.equal(statSync(path).mode & 0o777, 0o600, 'readable by root only')
  writeFileSync(path, '{"version":1,"calls":')
  t.equal(loadState(path), null, 'a torn file')
  t.equal(loadState(join(dir, 'nothing.json')), null, 'no file')
})
