// Reads a tap log (the tap reporter's output) and prints one line per failed assertion, and one per
// failed file, so the last lines of a CI log say what failed and where (test/run.sh prints them just
// before its summary line; a CI report often keeps only the tail).
import { readFileSync } from 'node:fs'

const lines = readFileSync(process.argv[2], 'utf8').split('\n')
const notOk = /^(\s*)not ok \d+ - (.*?)(?: # time=[\d.]+m?s)?$/
const out = []
const subtests = [] // [indent, name] of the open "# Subtest:" lines

for (let i = 0; i < lines.length; i++) {
  const line = lines[i]
  const sub = /^(\s*)# Subtest: (.*)$/.exec(line)
  if (sub) {
    while (subtests.length > 0 && subtests[subtests.length - 1][0] >= sub[1].length) subtests.pop()
    subtests.push([sub[1].length, sub[2]])
    continue
  }
  const m = notOk.exec(line)
  if (!m || /# (TODO|SKIP)\b/.test(m[2])) continue
  const indent = m[1].length
  // A subtest's own "not ok" follows its children's lines (deeper indent): its failed leaves say more.
  let prev = i - 1
  while (prev >= 0 && lines[prev].trim() === '') prev--
  const isParent = prev >= 0 && /^\s*/.exec(lines[prev])[0].length > indent
  if (isParent && indent > 0) continue
  let file = ''
  let lineNo = ''
  let reason = ''
  if (lines[i + 1]?.trim() === '---') {
    for (let j = i + 2; j < lines.length && lines[j].trim() !== '...'; j++) {
      const kv = /^\s*(fileName|lineNumber|signal|exitCode|message|code): (.*)$/.exec(lines[j])
      if (!kv) continue
      if (kv[1] === 'fileName' && !file) file = kv[2]
      else if (kv[1] === 'lineNumber' && !lineNo) lineNo = kv[2]
      else if (kv[1] !== 'fileName' && kv[1] !== 'lineNumber' && !reason) reason = `${kv[1]}: ${kv[2]}`
    }
  }
  const parents = subtests.filter(([at]) => at < indent).map(([, name]) => name)
  if (indent === 0) out.push(`FAILED FILE ${m[2]}${reason ? ` (${reason})` : ''}`)
  else if (file) out.push(`FAILED ${file}:${lineNo} ${parents.slice(1).join(' > ')} > ${m[2]}`.slice(0, 300))
  else if (reason) out.push(`FAILED ${parents.join(' > ')} > ${m[2]} (${reason})`.slice(0, 300))
}
if (out.length > 0) console.log(out.slice(0, 16).join('\n') + (out.length > 16 ? `\n… and ${out.length - 16} more` : ''))
