#!/usr/bin/env node
// sipalg command line: one table of subcommands; every error a person sees comes from the
// catalogue in src/errors.ts with a stable code and what to do about it.

import { SipalgError } from '../errors.js'

const HELP = `sipalg — transparent SIP ALG for Linux NAT gateways

  sipalg run --public 203.0.113.1 --inside 10.0.1.0/24 --outside-if wan0 [--inside-if lan0]
             [--queue 0] [--media-ports 20000-29999] [--firewall] [--config sipalg.yaml]
             [--ready-file PATH] [--log-level info] [--pretty]
  sipalg rules install|uninstall [--queue 0] [--sip-ports 5060] [--fail-closed] [--print [--nft]]
  sipalg rewrite --public 203.0.113.1 [--direction outbound|inbound] [--inside 10.0.1.0/24]
             [--media-ports 20000-29999] [--source 10.0.1.23] [--explain]  < message
  sipalg status [--json] [--watch] [--socket PATH]
  sipalg trace [--socket PATH] [--json] [--call CALL-ID]    live ladder of the SIP sipalg handles
  sipalg trace --pcap FILE --public 203.0.113.1 [--inside 10.0.1.0/24] [--sip-ports 5060]
             [--media-ports 20000-29999] [--json] [--call CALL-ID]   what sipalg would do to a capture
  sipalg doctor
`

type Command = (argv: string[]) => Promise<number>

const commands: Record<string, Command> = {
  run: async argv => await (await import('./run.js')).runDaemon(argv),
  rules: async argv => await (await import('./rules.js')).runRules(argv),
  rewrite: async argv => await (await import('./rewrite.js')).runRewrite(argv,
    { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr }),
  status: async argv => await (await import('./status.js')).runStatus(argv),
  trace: async argv => await (await import('./trace.js')).runTrace(argv),
  doctor: async argv => await (await import('./doctor.js')).runDoctor(argv),
  help: async () => { process.stdout.write(HELP); return 0 }
}

/**
 * `--log-level` is accepted by every command (scripts pass it uniformly); only the daemon (and
 * doctor, which checks the daemon's flags) has logs, so the others drop it here.
 */
function withoutLogLevel (argv: string[]): string[] {
  const out: string[] = []
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--log-level') { i++; continue }
    if (argv[i].startsWith('--log-level=')) continue
    out.push(argv[i])
  }
  return out
}

async function main (argv: string[]): Promise<number> {
  const [name, ...all] = argv
  const rest = name === 'run' || name === 'doctor' ? all : withoutLogLevel(all)
  const cmd = commands[name ?? 'help'] ?? commands[name?.replace(/^--/, '') ?? '']
  if (cmd === undefined) throw new SipalgError('E100_USAGE', { detail: `unknown command "${name}"` })
  return await cmd(rest)
}

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
