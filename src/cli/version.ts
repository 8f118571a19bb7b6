// `sipalg version` (also `sipalg --version`): the version in the package.json of this installation,
// found above this module (the checkout, or /usr/lib/sipalg in the Debian package).

import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseCommand } from './commands.js'

export function packageVersion (from: string = dirname(fileURLToPath(import.meta.url))): string {
  for (let dir = from, i = 0; i < 6; i++, dir = dirname(dir)) {
    const file = join(dir, 'package.json')
    if (!existsSync(file)) continue
    const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: string, version?: string }
    if (pkg.name === 'sipalg' && typeof pkg.version === 'string') return pkg.version
  }
  return 'unknown'
}

export async function runVersion (argv: string[]): Promise<number> {
  parseCommand('version', argv)
  process.stdout.write(`sipalg ${packageVersion()}\n`)
  return 0
}
