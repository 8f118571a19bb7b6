// sipalg(8) and sipalg.yaml(5) are generated from the command table and the config defaults
// (src/cli/man.ts): every command, flag and key is in them, with its help, and both render
// without a warning (mandoc lint and groff), as man -l shows them.

import t from 'tap'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { defaults, KEY_HELP } from '../../src/config.js'
import { COMMANDS } from '../../src/cli/commands.js'
import { configKeys, exampleConfig, manSipalg8, manSipalgYaml5, roffText } from '../../src/cli/man.js'

const dir = mkdtempSync(join(tmpdir(), 'sipalg-man-'))
t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
const page8 = join(dir, 'sipalg.8')
const page5 = join(dir, 'sipalg.yaml.5')
writeFileSync(page8, manSipalg8('9.9.9', '2026-12-01'))
writeFileSync(page5, manSipalgYaml5(exampleConfig(join(import.meta.dirname, '..', '..', 'dist', 'src', 'cli')), '9.9.9', '2026-12-01'))

const run = (cmd: string, args: string[]): { code: number | null, out: string, err: string } => {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env: { ...process.env, MANWIDTH: '200', MAN_KEEP_FORMATTING: '', LC_ALL: 'C.UTF-8' } })
  return { code: r.status, out: r.stdout, err: r.stderr }
}

/** The page as a reader sees it: rendered, one line per paragraph-ish, dashes as typed. */
function rendered (file: string): string {
  const r = run('man', ['-l', '-P', 'cat', file])
  if (r.code !== 0) throw new Error(`man -l ${file}: ${r.err}`)
  // man's own hyphenation and justification, undone: words and single spaces.
  return r.out.replace(/\u2010\n\s*/g, '').replace(/[\u2212\u2010]/g, '-').replace(/\s+/g, ' ')
}

t.test('sipalg(8): every command and flag, with its help', async t => {
  const text = rendered(page8)
  t.match(text, /SIPALG\(8\)/)
  t.match(text, 'sipalg 9.9.9')
  for (const c of COMMANDS.values()) {
    t.match(text, `sipalg ${c.name}`, `command ${c.name}`)
    t.match(text, c.summary.replace(/\s+/g, ' '), `${c.name}: its summary`)
    for (const f of c.flags) {
      t.match(text, `--${f.name}`, `${c.name} --${f.name}`)
      t.match(text, f.help.replace(/\s+/g, ' '), `${c.name} --${f.name}: its help`)
    }
  }
  t.match(text, /EXIT STATUS .*\b64 E100_USAGE, E101_BAD_FLAG\b/, 'exit statuses from the error catalogue')
})

t.test('sipalg.yaml(5): every key with its description and default', async t => {
  const text = rendered(page5)
  const keys = configKeys()
  const flat = (o: Record<string, unknown>): number => Object.values(o).reduce<number>((n, v) => n + (v !== null && typeof v === 'object' && !Array.isArray(v) ? flat(v as Record<string, unknown>) : 1), 0)
  t.equal(keys.length, flat(defaults as unknown as Record<string, unknown>), 'one entry per config key')
  for (const k of keys) {
    t.match(text, k.key.split('.').pop() as string, k.key)
    t.match(text, `${k.help}. Default: ${k.default}.`.replace(/\s+/g, ' '), `${k.key}: description and default`)
  }
  t.match(text, /SIPALG\.YAML\(5\)/)
  t.match(text, 'hep: udp://', 'the example configuration, with the HEP keys')
  for (const k of Object.keys(KEY_HELP)) t.ok(keys.some(c => c.key === k && c.flag === undefined), `${k}: described once (not also a flag)`)
})

t.test('the README\'s configuration reference names every key', async t => {
  const readme = readFileSync(join(import.meta.dirname, '..', '..', 'README.md'), 'utf8')
  const table = readme.slice(readme.indexOf('## Configuration reference'), readme.indexOf('## Troubleshooting'))
  for (const k of configKeys()) t.match(table, `\`${k.key}\``, k.key)
})

t.test('the pages render without a warning', async t => {
  const lint = run('mandoc', ['-T', 'lint', '-W', 'warning', page8, page5])
  t.equal(lint.out + lint.err, '', 'mandoc -T lint: no warnings')
  t.equal(lint.code, 0)
  const groff = run('groff', ['-man', '-Tutf8', '-ww', '-z', page8, page5])
  t.equal(groff.err, '', 'groff -ww: no warnings')
  t.equal(groff.code, 0)
  for (const f of [page8, page5]) {
    for (const l of readFileSync(f, 'utf8').split('\n')) if (!/^[.']/.test(l) && l.length > 80 && l.includes(' ')) t.fail(`input line over 80 bytes: ${l}`)
  }
})

t.test('roff escapes', async t => {
  t.equal(roffText('--a\\b'), '\\-\\-a\\eb')
  t.equal(roffText('ports → phone ≤ 5 µs'), 'ports \\[u2192] phone \\[u2264] 5 \\[u00B5]s')
})
