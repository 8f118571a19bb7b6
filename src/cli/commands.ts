// The command table: every subcommand's summary, arguments and flags (kind, default, repeatable,
// help text) in one place. The parser (src/cli/args.ts), `sipalg help`, `sipalg help <cmd>`,
// `sipalg <cmd> --help` and `-h` are all produced from it, so a flag cannot exist without its help.

import { defaults } from '../config.js'
import { SipalgError } from '../errors.js'
import { PRIVATE_NETWORKS } from '../rewrite/cidr.js'
import { parseArgs, type CommandSpec, type FlagDef, KINDS, type ParsedArgs } from './args.js'

export type CommandName = 'run' | 'rules' | 'rewrite' | 'status' | 'trace' | 'doctor' | 'version' | 'help'

export interface CommandDef extends CommandSpec {
  name: CommandName
  summary: string
  /** Paragraphs shown under the usage line of `sipalg help <cmd>`. */
  details?: string
  /** The command's entry point, loaded on first use (the daemon's modules are heavy). */
  load: () => Promise<(argv: string[]) => Promise<number>>
}

const stdio = { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr }

/** Accepted by every command: scripts pass them uniformly. */
const COMMON: readonly FlagDef[] = [
  { name: 'log-level', kind: 'text', choices: ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'], default: defaults.logLevel, help: 'log level (only run and doctor log; the others accept it and ignore it)' },
  { name: 'help', kind: 'boolean', help: 'this help (also -h, and "sipalg help <command>")', notConfig: true }
]

const socketFlags: readonly FlagDef[] = [
  { name: 'socket', kind: 'path', help: 'the daemon\'s control socket, if run was given --control-socket', default: '/run/sipalg/<table>-<queue>.sock' },
  { name: 'queue', kind: 'queue', default: String(defaults.queue), help: 'the daemon\'s queue, to find its socket' },
  { name: 'table', kind: 'table', default: defaults.table, help: 'the daemon\'s nftables table, to find its socket' }
]

const publicFlag = (help: string): FlagDef => ({ name: 'public', kind: 'ipv4', help })
const insideFlag: FlagDef = { name: 'inside', kind: 'cidr', repeatable: true, default: PRIVATE_NETWORKS.join(','), help: 'the networks behind the NAT (repeat it, or separate with commas)' }
const mediaPortsFlag: FlagDef = { name: 'media-ports', kind: 'range', default: defaults.mediaPorts, help: 'public RTP/RTCP ports, within 1024-65535, at least two pairs' }
const workersFlag: FlagDef = { name: 'workers', kind: 'workers', default: String(defaults.workers), help: '' }
const sipPortsFlag: FlagDef = { name: 'sip-ports', kind: 'ports', default: defaults.sipPorts.join(','), help: 'UDP ports carrying SIP' }

/** `run` and `doctor` (which checks what `run` would do with the same flags). */
const RUN_FLAGS: readonly FlagDef[] = [
  publicFlag('the gateway\'s public IPv4 address (default: the primary IPv4 of --outside-if)'),
  { ...insideFlag, default: defaults.inside.join(',') },
  { name: 'outside-if', kind: 'iface', help: 'outside interface: scopes the NAT chains, gives the public address' },
  { name: 'inside-if', kind: 'iface', help: 'inside interface' },
  { name: 'queue', kind: 'queue', default: String(defaults.queue), help: 'NFQUEUE number (as in rules install --queue)' },
  { ...workersFlag, help: 'sipalg processes, one NFQUEUE each from --queue on: auto = one per core (as in rules install --workers; docs/workers.md)' },
  { ...sipPortsFlag, help: 'UDP ports carrying SIP (as in rules install --sip-ports)' },
  mediaPortsFlag,
  { name: 'firewall', kind: 'boolean', default: String(defaults.firewall), help: 'inbound media only from the far end\'s SDP address' },
  { name: 'fail-closed', kind: 'boolean', default: String(defaults.failClosed), help: 'drop non-SIP on SIP ports (with rules install --fail-closed)' },
  { name: 'malformed', kind: 'text', choices: ['pass', 'drop'], default: defaults.malformed, help: 'what happens to datagrams on a SIP port that are not SIP' },
  { name: 'rewrite-from-to', kind: 'boolean', default: String(defaults.rewriteFromTo), help: 'also rewrite From/To (breaks digest auth on most registrars)' },
  { name: 'rewrite-ice', kind: 'boolean', default: String(defaults.rewriteIce), help: 'also rewrite SDP carrying ICE candidates' },
  { name: 'media-latching', kind: 'text', choices: ['off', 'first', 'signalling'], default: defaults.mediaLatching, help: 'inbound media also from where the far end really sends it (README "Media latching")' },
  { name: 'conntrack-accounting', kind: 'boolean', default: String(defaults.conntrackAccounting), help: 'count each call\'s RTP packets (net.netfilter.nf_conntrack_acct)' },
  { name: 'inbound-sip-from', kind: 'text', choices: ['registrar', 'any'], default: defaults.inboundSipFrom, help: 'who may send new SIP to a registered phone' },
  { name: 'table', kind: 'table', default: defaults.table, help: 'the nftables table sipalg creates' },
  // SIP over TCP (src/tcp): its limits are in the file (tcp_limits:).
  { name: 'tcp', kind: 'boolean', default: String(defaults.tcp), help: 'splice SIP over TCP on the SIP ports (false: TCP passes untouched)' },
  { name: 'tcp-listen-port', kind: 'text', default: String(defaults.tcpListenPort), help: 'local port of the transparent listener (a second sipalg on the host needs its own)' },
  { name: 'tcp-non-sip', kind: 'text', choices: ['pass', 'reset'], default: defaults.tcpNonSip, help: 'a TCP stream on a SIP port that does not start as SIP' },
  { name: 'control-socket', kind: 'path', default: '/run/sipalg/<table>-<queue>.sock', help: 'where sipalg status and trace find the daemon' },
  { name: 'state-file', kind: 'path', default: '/run/sipalg/<table>-<queue>.state.json', help: 'call state kept across a restart' },
  { name: 'state-store', kind: 'text', help: 'redis://HOST:PORT/DB: state shared by a gateway pair (docs/ha.md); default the state file' },
  { name: 'metrics-port', kind: 'portOrOff', default: String(defaults.metricsPort), help: 'Prometheus text on 127.0.0.1:PORT/metrics; 0 = off' },
  { name: 'ready-file', kind: 'path', help: 'created once the queue is bound and the table is in place' },
  { name: 'hep', kind: 'url', help: 'copy every SIP message, as it arrived and as it left, to this HEP3 collector (Homer, sngrep -L); off when unset' },
  { name: 'hep-id', kind: 'uint32', default: String(defaults.hepId), help: 'HEP capture agent id of this gateway' },
  { name: 'hep-password', kind: 'text', help: 'HEP auth key, if the collector wants one (better in sipalg.yaml: flags show in ps)' },
  { name: 'config', kind: 'path', help: 'a sipalg.yaml; flags win over it', notConfig: true },
  { name: 'pretty', kind: 'boolean', help: 'logs for people instead of JSON', notConfig: true }
]

const OWN_FLAGS: readonly CommandDef[] = [
  {
    name: 'run',
    summary: 'the daemon: rewrite the SIP on the NFQUEUE and keep the kernel\'s media mappings',
    args: '',
    positionals: [0, 0],
    flags: RUN_FLAGS,
    details: 'Every flag but --config and --pretty is also a key of sipalg.yaml (--media-ports is media_ports).',
    load: async () => (await import('./run.js')).runDaemon
  },
  {
    name: 'rules',
    summary: 'add or remove sipalg\'s iptables chain that sends SIP to the queue',
    args: 'install|uninstall',
    positionals: [1, 1],
    flags: [
      { name: 'queue', kind: 'queue', default: String(defaults.queue), help: 'NFQUEUE number (as in run --queue)' },
      { ...workersFlag, help: 'spread SIP over this many queues from --queue on (--queue-balance), auto = one per core (as in run --workers)' },
      { ...sipPortsFlag, help: 'UDP ports carrying SIP (as in run --sip-ports)' },
      { name: 'fail-closed', kind: 'boolean', help: 'drop SIP while sipalg is not running (default: pass it untouched)' },
      { name: 'media-mark', kind: 'mark', default: '0x5a100000/0xffff0000', help: 'ct mark of the flows sipalg translated (accepted in FORWARD)' },
      { name: 'first-packet-mark', kind: 'mark', default: '0x5a200000/0xffff0000', help: 'packet mark of a new media flow sipalg wants to see (queued: media latching)' },
      { name: 'print', kind: 'boolean', help: 'with install: print the exact iptables-restore text it would apply, apply nothing (no root needed)', notConfig: true },
      { name: 'nft', kind: 'boolean', help: 'with install --print: print the lines an operator\'s own nftables forward chain needs instead', notConfig: true }
    ],
    load: async () => (await import('./rules.js')).runRules
  },
  {
    name: 'rewrite',
    summary: 'the rewrite engine offline: one SIP message on stdin, the rewritten bytes on stdout',
    args: '[flags] < message.sip > rewritten.sip',
    positionals: [0, 0],
    flags: [
      publicFlag('the gateway\'s public IPv4 address (required)'),
      { name: 'direction', kind: 'text', choices: ['outbound', 'inbound'], default: 'outbound', help: 'outbound: from an inside phone; inbound: from the outside to one' },
      insideFlag,
      { ...mediaPortsFlag, help: 'public media ports handed out, first even port first' },
      { name: 'source', kind: 'ipv4', help: 'the inside phone\'s address (default: taken from the message, see below)' },
      { name: 'rewrite-from-to', kind: 'boolean', help: 'also rewrite From/To' },
      { name: 'rewrite-ice', kind: 'boolean', help: 'also rewrite SDP carrying ICE candidates' },
      { name: 'explain', kind: 'boolean', help: 'what changed, one line per field, on stderr' }
    ],
    details: 'The phone (only its own addresses are rewritten) is --source, or else the one the message names:\n' +
      '  outbound request: the top Via\'s sent-by, else the Contact host;\n' +
      '  outbound response: the Contact host (the top Via is the far end\'s);\n' +
      '  inbound request: the Request-URI host, else the To host, when it is inside;\n' +
      '  inbound response: the top Via\'s sent-by, when it is inside.\n' +
      'When the message names no such address (an inbound message sent to the public address names only\n' +
      'that), only the daemon\'s mappings know the phone: give --source. Exit 0, 3 (not SIP) or 64 (usage).',
    load: async () => { const m = await import('./rewrite.js'); return async argv => await m.runRewrite(argv, stdio) }
  },
  {
    name: 'status',
    summary: 'what the running daemon is doing: calls, registrations, mappings, counters',
    args: '',
    positionals: [0, 0],
    flags: [
      { name: 'json', kind: 'boolean', help: 'one JSON document, for scripts' },
      { name: 'watch', kind: 'boolean', help: 'refresh every second' },
      ...socketFlags
    ],
    load: async () => (await import('./status.js')).runStatus
  },
  {
    name: 'trace',
    summary: 'a ladder diagram of the SIP the daemon handles, or (--pcap) of what it would do to a capture',
    args: '',
    positionals: [0, 0],
    flags: [
      { name: 'json', kind: 'boolean', help: 'one event per line, for scripts' },
      { name: 'call', kind: 'text', help: 'only Call-IDs containing TEXT' },
      ...socketFlags,
      { name: 'pcap', kind: 'path', help: 'draw a capture offline instead (pcap or pcapng, e.g. tcpdump -w, dumpcap)' },
      publicFlag('with --pcap: the gateway\'s public IPv4 address (required)'),
      { ...insideFlag, help: 'with --pcap: the networks behind the NAT (the direction comes from them)' },
      { ...sipPortsFlag, help: 'with --pcap: UDP ports carrying SIP' },
      { ...mediaPortsFlag, help: 'with --pcap: public media ports handed out' }
    ],
    load: async () => (await import('./trace.js')).runTrace
  },
  {
    name: 'doctor',
    summary: 'check what this host needs (root, NFQUEUE, nft, queue free, public address, no kernel SIP helper)',
    args: '',
    positionals: [0, 0],
    flags: RUN_FLAGS,
    details: 'Takes the flags of sipalg run, and checks what run would do with them.',
    load: async () => (await import('./doctor.js')).runDoctor
  },
  {
    name: 'version',
    summary: 'the version of this sipalg (also sipalg --version)',
    args: '',
    positionals: [0, 0],
    flags: [],
    load: async () => (await import('./version.js')).runVersion
  },
  {
    name: 'help',
    summary: 'the commands, or one command\'s flags',
    args: '[COMMAND]',
    positionals: [0, 1],
    flags: [],
    load: async () => async argv => { process.stdout.write(helpText(parseCommand('help', argv).positional[0])); return 0 }
  }
]

const TABLE: readonly CommandDef[] = OWN_FLAGS.map(c => ({ ...c, flags: [...c.flags, ...COMMON] }))

export const COMMANDS: ReadonlyMap<string, CommandDef> = new Map(TABLE.map(c => [c.name, c]))

export function command (name: CommandName): CommandDef {
  return COMMANDS.get(name) as CommandDef
}

export function parseCommand (name: CommandName, argv: readonly string[]): ParsedArgs {
  return parseArgs(argv, command(name))
}

/** `-h`/`--help` anywhere before `--`: help is shown whatever else the line holds. */
export function wantsHelp (argv: readonly string[]): boolean {
  for (const a of argv) {
    if (a === '--') return false
    if (a === '-h' || a === '--help' || a === '--help=true') return true
  }
  return false
}

/** A short set of choices is the placeholder itself (outbound|inbound); a long one is listed in the help. */
const shortChoices = (f: FlagDef): boolean => f.choices !== undefined && f.choices.join('|').length <= 20

function flagLine (f: FlagDef): string {
  const placeholder = f.choices === undefined ? KINDS[f.kind].placeholder : shortChoices(f) ? f.choices.join('|') : 'WORD'
  return `--${f.name}${placeholder === '' ? '' : ` ${placeholder}`}`
}

function flagHelp (f: FlagDef, width: number): string {
  const notes = [
    f.choices !== undefined && !shortChoices(f) ? `one of ${f.choices.join(', ')}` : '',
    f.repeatable === true ? 'repeatable' : '',
    f.default !== undefined ? `default: ${f.default}` : ''
  ].filter(s => s !== '')
  return `  ${flagLine(f).padEnd(width)}  ${f.help}${notes.length > 0 ? ` (${notes.join('; ')})` : ''}\n`
}

/** `sipalg help` (no name) or `sipalg help <name>`; an unknown name is a usage error. */
export function helpText (name?: string): string {
  if (name === undefined) {
    const w = Math.max(...TABLE.map(c => c.name.length))
    return 'sipalg — transparent SIP ALG for Linux NAT gateways\n\n' +
      TABLE.map(c => `  sipalg ${c.name.padEnd(w)}  ${c.summary}\n`).join('') +
      '\n"sipalg help COMMAND" (or "sipalg COMMAND --help") shows a command\'s flags.\n' +
      'Boolean flags take no value, or =true/false/yes/no/1/0.\n'
  }
  const c = COMMANDS.get(name)
  if (c === undefined) throw unknownCommand(name)
  const w = Math.max(...c.flags.map(f => flagLine(f).length))
  const synopsis = c.args.includes('[flags]') ? c.args : `${c.args} [flags]`.trim()
  return `usage: sipalg ${c.name} ${synopsis}\n\n${c.summary}\n` +
    (c.details === undefined ? '' : `\n${c.details}\n`) +
    `\nflags:\n${c.flags.map(f => flagHelp(f, w)).join('')}` +
    (c.flags.some(f => f.kind === 'boolean') ? 'Boolean flags take no value, or =true/false/yes/no/1/0.\n' : '')
}

export const unknownCommand = (name: string): SipalgError =>
  new SipalgError('E100_USAGE', { detail: `unknown command "${name}"` })
