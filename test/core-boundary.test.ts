// The core (src/alg.ts and everything it imports) does no I/O of its own: no fs, no yaml, nothing
// of the CLI. Those belong to the shell (src/cli). Read from the import lines of the sources.
import t from 'tap'
import { readFileSync } from 'node:fs'
import { dirname, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..')

t.test('the core imports no fs, yaml or cli module', async t => {
  const seen = new Set<string>()
  const offences: string[] = []
  const walk = (file: string): void => {
    if (seen.has(file)) return
    seen.add(file)
    const name = relative(ROOT, file)
    for (const m of readFileSync(file, 'utf8').matchAll(/^import [^\n]* from '([^']+)'/gm)) {
      const spec = m[1]
      if (spec.startsWith('.')) {
        const target = resolve(dirname(file), spec.replace(/\.js$/, '.ts'))
        if (relative(ROOT, target).startsWith('src/cli/')) offences.push(`${name} imports ${spec}`)
        walk(target)
      } else if (/^(node:)?(fs|fs\/promises|net|http|child_process)$|^yaml$/.test(spec)) {
        offences.push(`${name} imports ${spec}`)
      }
    }
  }
  walk(resolve(ROOT, 'src/alg.ts'))
  t.ok(seen.size > 20, `followed the imports (${seen.size} files)`)
  t.ok(seen.has(resolve(ROOT, 'src/dialog/state.ts')), 'the saved-state document is part of the core')
  t.same(offences, [])
})
