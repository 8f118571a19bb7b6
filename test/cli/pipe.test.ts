// `sipalg trace --json … | head -n 1`: the reader takes one line and goes away; the rest of the
// output meets a closed pipe (EPIPE). The command must end quietly with 0, not a stack trace.

import t from 'tap'
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const CLI = new URL('../../dist/src/cli/main.js', import.meta.url).pathname

/** The editcap fixture with its packet blocks repeated: a capture whose --json output is megabytes. */
function bigCapture (copies: number): Buffer {
  const real = readFileSync(new URL('../fixtures/pcap/call-ether.pcapng', import.meta.url))
  let off = 0
  const headers: Buffer[] = []
  // Section header and interface description first (types 0x0a0d0d0a and 1), then the packets.
  while ([0x0a0d0d0a, 1].includes(real.readUInt32LE(off))) {
    const len = real.readUInt32LE(off + 4)
    headers.push(real.subarray(off, off + len))
    off += len
  }
  return Buffer.concat([...headers, ...Array<Buffer>(copies).fill(real.subarray(off))])
}

const dir = mkdtempSync(join(tmpdir(), 'sipalg-pipe-test-'))
t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
const file = join(dir, 'many.pcapng')
writeFileSync(file, bigCapture(3000))

/** Runs the CLI, reads its first line and closes the pipe, as `head -n 1` does. */
async function firstLineThenClose (args: string[]): Promise<{ line: string, code: number | null, signal: string | null, stderr: string }> {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  let stderr = ''
  child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d })
  const line = await new Promise<string>(resolve => {
    let buf = ''
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      buf += d
      const nl = buf.indexOf('\n')
      if (nl >= 0) { child.stdout.destroy(); resolve(buf.slice(0, nl)) }
    })
  })
  const [code, signal] = await new Promise<[number | null, string | null]>(resolve => child.on('close', (c, s) => resolve([c, s])))
  return { line, code, signal, stderr }
}

t.test('a reader that goes away ends the command quietly with 0', async t => {
  for (let i = 0; i < 3; i++) {
    const r = await firstLineThenClose(['trace', '--pcap', file, '--public', '203.0.113.1', '--json'])
    t.match(JSON.parse(r.line), { method: 'INVITE', direction: 'outbound' }, 'the first line was written')
    t.equal(r.stderr, '', 'no stack trace, nothing on stderr')
    t.equal(r.code, 0)
    t.equal(r.signal, null)
  }
  const ladder = await firstLineThenClose(['trace', '--pcap', file, '--public', '203.0.113.1'])
  t.equal(ladder.code, 0, 'the ladder too')
  t.equal(ladder.stderr, '')
})
