// The manual pages sipalg(8) and sipalg.yaml(5), written in roff from the same sources as the
// command line: the command table (src/cli/commands.ts: commands, flags, defaults, help), the config
// defaults and key descriptions (src/config.ts) and the error catalogue (src/errors.ts, for the exit
// statuses). So `sipalg <cmd> --help` and the man page cannot drift apart.
//
//   node dist/src/cli/man.js OUTDIR      writes OUTDIR/sipalg.8 and OUTDIR/sipalg.yaml.5 (make man)

import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { defaults, KEY_HELP } from '../config.js'
import { catalogue, SipalgError } from '../errors.js'
import type { FlagDef } from './args.js'
import { KINDS } from './args.js'
import { COMMANDS, command } from './commands.js'
import { packageVersion } from './version.js'

/** Text for roff: backslashes escaped, every non-ASCII character as a named Unicode escape. */
export function roffText (s: string): string {
  return s.replace(/\\/g, '\\e').replace(/-/g, '\\-')
    .replace(/[^\x00-\x7f]/gu, c => `\\[u${(c.codePointAt(0) ?? 0x3f).toString(16).toUpperCase().padStart(4, '0')}]`)
}

/** A text line must not start with a control character ("." or "'"). */
const guard = (s: string): string => /^[.']/.test(s) ? `\\&${s}` : s

/** Roff text as input lines of at most 80 bytes where words allow (man pages are read as source too). */
function line (s: string): string {
  const lead = /^\s*/.exec(s)?.[0] ?? ''
  const out: string[] = []
  let cur = lead
  for (const word of s.slice(lead.length).split(' ')) {
    if (cur.length > lead.length && cur.length + 1 + word.length > 80) { out.push(cur); cur = word } else cur = cur.length > lead.length ? `${cur} ${word}` : cur + word
  }
  out.push(cur)
  return out.map(guard).join('\n')
}

function header (name: string, section: number, date: string, version: string): string[] {
  return [`.TH ${name} ${section} "${date}" "sipalg ${version}" "${section === 8 ? 'System Manager\'s Manual' : 'File Formats Manual'}"`]
}

/** The date of the pages: SOURCE_DATE_EPOCH for reproducible packages, else today. */
function pageDate (): string {
  const epoch = Number(process.env.SOURCE_DATE_EPOCH)
  return new Date(Number.isFinite(epoch) && epoch > 0 ? epoch * 1000 : Date.now()).toISOString().slice(0, 10)
}

function flagItem (f: FlagDef): string[] {
  const placeholder = f.choices !== undefined ? f.choices.join('|') : KINDS[f.kind].placeholder
  const notes = [f.repeatable === true ? 'repeatable' : '', f.default !== undefined ? `default: ${f.default}` : ''].filter(n => n !== '')
  return ['.TP', placeholder === '' ? `.B ${roffText(`--${f.name}`)}` : `.BI ${roffText(`--${f.name}`)} " ${roffText(placeholder)}"`,
    line(roffText(f.help + (notes.length > 0 ? ` (${notes.join('; ')})` : '')))]
}

/** Lines kept as written: a break before each (an indented line breaks by itself). */
const paragraphs = (text: string): string[] =>
  text.split('\n').flatMap((l, i) => [...(i === 0 || /^\s/.test(l) ? [] : ['.br']), line(roffText(l))])

/** Exit statuses and the error codes that end with each, from the catalogue. */
function exitStatuses (): string[] {
  const byStatus = new Map<number, string[]>()
  for (const [code, e] of Object.entries(catalogue)) byStatus.set(e.exitCode, [...(byStatus.get(e.exitCode) ?? []), code])
  const rows: Array<[number, string]> = [[0, 'success'], ...[...byStatus].sort(([a], [b]) => a - b).map(([s, codes]): [number, string] => [s, codes.join(', ')]),
    [70, 'an unexpected internal error (please report it)']]
  return rows.flatMap(([s, what]) => ['.TP', `.B ${s}`, line(roffText(what))])
}

export function manSipalg8 (version = packageVersion(), date = pageDate()): string {
  const out = [
    ...header('SIPALG', 8, date, version),
    '.SH NAME',
    'sipalg \\- transparent SIP application\\-level gateway for Linux NAT gateways',
    '.SH SYNOPSIS',
    '.B sipalg',
    '.I command',
    '.RI [ flags ]',
    '.br',
    '.B sipalg \\-\\-version',
    '.br',
    '.B sipalg help',
    '.RI [ command ]',
    '.SH DESCRIPTION',
    line(roffText('sipalg runs on the Linux box that is the NAT router of a network of SIP phones. It takes the SIP datagrams the ' +
      'FORWARD chain sends to an NFQUEUE (sipalg rules install), rewrites the private addresses phones write into Via, ' +
      'Contact and SDP to the gateway\'s public ones (and back for replies), and installs a kernel DNAT/SNAT mapping ' +
      'for each negotiated media stream, so RTP flows through the kernel and never through sipalg.')),
    '.PP',
    line(roffText('Every flag of sipalg run is also a key of sipalg.yaml(5); flags win over the file. ' +
      'Boolean flags take no value, or =true/false/yes/no/1/0. Every command takes --help (or -h).')),
    '.SH COMMANDS'
  ]
  for (const c of COMMANDS.values()) {
    out.push(`.SS "${roffText(`sipalg ${c.name}${c.args === '' ? '' : ` ${c.args}`}`)}"`, line(roffText(c.summary)))
    if (c.details !== undefined) out.push('.PP', ...paragraphs(c.details))
    if (c.flags.length > 0) out.push('.PP', 'Flags:', '.RS', ...c.flags.flatMap(flagItem), '.RE')
  }
  out.push(
    '.SH SIGNALS',
    '.TP', '.B SIGHUP', line(roffText('sipalg run re-reads its configuration; timeouts, limits, rewrite and firewall options change live, for calls in progress too; the log names keys that need a restart.')),
    '.TP', '.B SIGTERM', line(roffText('sipalg run stops reading the queue and saves its call state; the kernel mappings stay, so calls keep their audio.')),
    '.SH FILES',
    '.TP', '.I /etc/sipalg/sipalg.yaml', 'the configuration, see', '.BR sipalg.yaml (5)',
    '.TP', '.I /run/sipalg/<table>\\-<queue>.sock', 'the control socket sipalg status and sipalg trace talk to',
    '.TP', '.I /run/sipalg/<table>\\-<queue>.state.json', 'call state kept across a restart',
    '.SH EXIT STATUS',
    ...exitStatuses(),
    '.SH SEE ALSO',
    '.BR sipalg.yaml (5),',
    '.BR sngrep (8),',
    '.BR iptables (8),',
    '.BR nft (8),',
    '.BR conntrack (8)'
  )
  return out.join('\n') + '\n'
}

export interface ConfigKeyDoc { key: string, help: string, default: string, flag?: string }

function shown (v: unknown): string {
  if (v === null) return 'unset'
  if (Array.isArray(v)) return `[${v.join(', ')}]`
  return String(v)
}

const snake = (k: string): string => k.replace(/[A-Z]/g, c => `_${c.toLowerCase()}`)

/** Every key of sipalg.yaml with its description and default: the flag's help, else KEY_HELP. */
export function configKeys (): ConfigKeyDoc[] {
  const flags = command('run').flags.filter(f => f.notConfig !== true && f.name !== 'help')
  const out: ConfigKeyDoc[] = []
  const walk = (obj: Record<string, unknown>, prefix: string): void => {
    for (const [k, v] of Object.entries(obj)) {
      const key = prefix + snake(k)
      if (v !== null && typeof v === 'object' && !Array.isArray(v)) { walk(v as Record<string, unknown>, `${key}.`); continue }
      const flag = prefix === '' ? flags.find(f => f.name === key.replace(/_/g, '-')) : undefined
      const help = flag?.help ?? KEY_HELP[key]
      if (help === undefined) throw new SipalgError('E307_INTERNAL', { why: `config key ${key} has no description: a run flag or KEY_HELP in src/config.ts` })
      out.push({ key, help, default: flag?.default ?? shown(v), flag: flag === undefined ? undefined : `--${flag.name}` })
    }
  }
  walk(defaults as unknown as Record<string, unknown>, '')
  return out
}

export function manSipalgYaml5 (example: string, version = packageVersion(), date = pageDate()): string {
  const out = [
    ...header('SIPALG.YAML', 5, date, version),
    '.SH NAME',
    'sipalg.yaml \\- configuration of sipalg(8)',
    '.SH SYNOPSIS',
    '.I /etc/sipalg/sipalg.yaml',
    '.SH DESCRIPTION',
    line(roffText('A YAML mapping read by sipalg run --config (and doctor). Keys are snake_case; sections (timeouts, limits) are ' +
      'mappings of their own. A key shown with a flag is also that flag of sipalg run (media_ports is --media-ports), and ' +
      'the flag wins over the file. Booleans are true/false, yes/no or 1/0; lists are YAML lists or comma-separated text. ' +
      'An unknown key or a bad value stops sipalg with an E103 error naming the key and an example.')),
    '.SH KEYS'
  ]
  let section = ''
  for (const k of configKeys()) {
    const dot = k.key.indexOf('.')
    const sec = dot < 0 ? '' : k.key.slice(0, dot)
    if (sec !== section) { out.push(`.SS ${sec}:`); section = sec }
    out.push('.TP', `.B ${roffText(dot < 0 ? k.key : k.key.slice(dot + 1))}`,
      line(roffText(`${k.help}. Default: ${k.default}.${k.flag === undefined ? '' : ` Flag: ${k.flag}.`}`)))
  }
  out.push('.SH EXAMPLE', '.nf', ...example.trimEnd().split('\n').map(l => line(roffText(l))), '.fi',
    '.SH SEE ALSO', '.BR sipalg (8)')
  return out.join('\n') + '\n'
}

/** The example configuration shipped next to dist/ (sipalg.example.yaml at the package root). */
export function exampleConfig (from: string = dirname(fileURLToPath(import.meta.url))): string {
  return readFileSync(join(from, '..', '..', '..', 'sipalg.example.yaml'), 'utf8')
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const dir = process.argv[2] ?? 'dist/man'
  mkdirSync(dir, { recursive: true })
  writeFileSync(join(dir, 'sipalg.8'), manSipalg8())
  writeFileSync(join(dir, 'sipalg.yaml.5'), manSipalgYaml5(exampleConfig()))
  process.stdout.write(`wrote ${join(dir, 'sipalg.8')} and ${join(dir, 'sipalg.yaml.5')}\n`)
}
