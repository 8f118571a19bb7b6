#!/usr/bin/env node
// sipalg command line: the commands and their flags come from the table in src/cli/commands.ts;
// every error a person sees comes from the catalogue in src/errors.ts with a stable code and what
// to do about it.

import { SipalgError } from '../errors.js'
import { COMMANDS, helpText, unknownCommand, wantsHelp } from './commands.js'

/**
 * A reader that went away (`sipalg trace --json | head -n 1`) is not an error: the command ends
 * quietly with 0, as the rest of a pipeline expects. Any other failure to write is reported once.
 */
function endQuietlyOnClosedPipe (stream: NodeJS.WriteStream, name: string): void {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0)
    if (name !== 'stderr') process.stderr.write(`${new SipalgError('E106_OUTPUT', { stream: name, why: err.code ?? err.message }).toString()}\n`)
    process.exit(74)
  })
}

async function main (argv: string[]): Promise<number> {
  const [first, ...rest] = argv
  const name = first === undefined || first === '--help' || first === '-h' ? 'help' : first === '--version' || first === '-V' ? 'version' : first
  const cmd = COMMANDS.get(name)
  if (cmd === undefined) throw unknownCommand(name)
  if (name !== 'help' && wantsHelp(rest)) { process.stdout.write(helpText(name)); return 0 }
  return await (await cmd.load())(rest)
}

endQuietlyOnClosedPipe(process.stdout, 'stdout')
endQuietlyOnClosedPipe(process.stderr, 'stderr')
main(process.argv.slice(2)).then(code => { process.exitCode = code }, (err: unknown) => {
  if (err instanceof SipalgError) {
    process.stderr.write(`${err.toString()}\n`)
    process.exitCode = err.exitCode
  } else {
    // Never a bare stack trace: a bug still gets its catalogue code and what to do about it.
    const internal = new SipalgError('E307_INTERNAL', { why: err instanceof Error ? err.message : String(err) })
    process.stderr.write(`${internal.toString()}\n`)
    if (process.env.SIPALG_DEBUG !== undefined) process.stderr.write(`${(err as Error)?.stack ?? ''}\n`)
    process.exitCode = internal.exitCode
  }
})
