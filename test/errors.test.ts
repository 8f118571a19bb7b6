// Catalogue discipline: every code in src/errors.ts is unique, says what to do, and is documented
// in docs/errors.md; and nothing but catalogue errors reaches a person (checked in the sources,
// since a plain Error can only come from a `new Error` or an uncoded log line).

import t from 'tap'
import { readFileSync, readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { catalogue, SipalgError, type ErrorCode } from '../src/errors.js'

const ROOT = join(import.meta.dirname, '..')
const codes = Object.keys(catalogue) as ErrorCode[]
// Every detail a message uses renders as <name>, so a missing one shows instead of "undefined".
const details = new Proxy({}, { get: (_o, k) => `<${String(k)}>`, has: () => true }) as Record<string, unknown>

t.test('codes are unique, well-formed and grouped by family in ascending order', async t => {
  const numbers = codes.map(c => c.slice(0, 4))
  t.equal(new Set(numbers).size, numbers.length, 'no number used twice')
  for (const c of codes) t.match(c, /^E[123]\d\d_[A-Z0-9_]+$/, c)
  t.same([...numbers].sort(), numbers, 'listed in order: new codes go at the end of their family')
})

t.test('every message renders and says what to do', async t => {
  // A fix is an instruction or an example after the description: "...; run ...", "... Run ...", "...; e.g. ...".
  const fix = /[;:.] (?:e\.g\. |[^;]*\b(run|set|stop|check|add|remove|create|fix|give|free|raise|report|install|pass|use|start|is the)\b)/i
  for (const c of codes) {
    const text = new SipalgError(c, details).message
    t.notMatch(text, /undefined|\[object Object\]/, `${c} renders every detail`)
    t.match(text, fix, `${c} says what to do: ${text}`)
    const exit = catalogue[c].exitCode
    t.ok(exit === 0 || (exit >= 3 && exit <= 78), `${c} has an exit code (0 = logged, never ends sipalg)`)
  }
})

t.test('docs/errors.md documents every code and no other', async t => {
  const doc = readFileSync(join(ROOT, 'docs', 'errors.md'), 'utf8')
  const headings = [...doc.matchAll(/^### (E\d{3}) ([A-Z0-9_]+) \(([^)]*)\)$/gm)]
  t.same(headings.map(h => `${h[1]}_${h[2]}`), codes, 'one heading per code, in catalogue order')
  for (const h of headings) {
    const code = `${h[1]}_${h[2]}` as ErrorCode
    const exit = catalogue[code]?.exitCode
    if (exit !== undefined && exit !== 0) t.match(h[3], new RegExp(`exit ${exit}\\b`), `${code}: the documented exit code is the real one`)
  }
})

/** src/**\/*.ts with their text. */
function sources (dir = join(ROOT, 'src')): Array<{ file: string, text: string }> {
  return readdirSync(dir).flatMap(name => {
    const p = join(dir, name)
    if (statSync(p).isDirectory()) return sources(p)
    return p.endsWith('.ts') ? [{ file: p.slice(ROOT.length + 1), text: readFileSync(p, 'utf8') }] : []
  })
}

t.test('no plain Error reaches a person', async t => {
  // Programming errors only (a closed handle used, a malformed key built by sipalg itself): they
  // end up as E307 INTERNAL in main.ts or in Alg.process, never as a bare message.
  const allowed = new Set([
    'src/netfilter/queue.ts', 'src/netfilter/nftmaps.ts', 'src/netfilter/native.ts', 'src/alg.ts',
    'src/netfilter/conntrack.ts', 'src/netfilter/tproxy.ts',
    // A connect timeout is a socket error like ECONNREFUSED: the splice that owns the socket handles it.
    'src/netfilter/transparent.ts',
    // Checked inputs only (the config validates hep:); a bad one is a bug, caught by the sender.
    'src/hep/encode.ts', 'src/hep/sender.ts',
    // Thrown inside RulesetWatch.guard, which logs them as E305 HEAL_FAILED.
    'src/netfilter/watch.ts'
  ])
  for (const { file, text } of sources()) {
    const plain = text.split('\n').filter(l => /new (Type|Range)?Error\(/.test(l))
    if (plain.length === 0) continue
    t.ok(allowed.has(file), `${file} builds no plain Error for a person (${plain[0]?.trim()})`)
    if (file.startsWith('src/cli/')) t.fail(`${file}: the CLI throws only SipalgError`)
  }
  const main = readFileSync(join(ROOT, 'src', 'cli', 'main.ts'), 'utf8')
  t.match(main, /new SipalgError\('E307_INTERNAL'/, 'main.ts turns any other error into E307')
  t.same(main.split('\n').filter(l => /\.stack\b/.test(l) && !l.includes('SIPALG_DEBUG')), [], 'a stack trace only with SIPALG_DEBUG')
})

t.test('every warning and error the daemon logs carries a catalogue code', async t => {
  let seen = 0
  for (const { file, text } of sources()) {
    // A log call with its first argument, up to the message string.
    for (const m of text.matchAll(/\blog\.(warn|error|fatal)\((\{[^\n]*?\}), ['`]/g)) {
      seen++
      const code = /code: shortCode\((?:'(E\d{3}_[A-Z0-9_]+)'|e\.code)\)/.exec(m[2])
      t.ok(code, `${file}: log.${m[1]}(${m[2].slice(0, 60)}...) has a code`)
      if (code?.[1] !== undefined) t.ok(code[1] in catalogue, `${code[1]} is in the catalogue`)
    }
    for (const m of text.matchAll(/logCoded\([^,]+, '(\w+)', '(E\d{3}_[A-Z0-9_]+)'/g)) t.ok(m[2] in catalogue, `${file}: ${m[2]} is in the catalogue`)
  }
  t.ok(seen >= 5, `the check found the daemon's log calls (${seen})`)
})
