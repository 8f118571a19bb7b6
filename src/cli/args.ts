// The flag parser every subcommand's flags go through, driven by the command table in
// src/cli/commands.ts: --name value, --name=value, booleans, repeatable flags. Unknown flags and
// commands are E100 (usage); a value its flag's check refuses is E101, naming the flag, the value,
// why, and an example (checks from src/validate.ts, the ones the config file uses too).

import { SipalgError } from '../errors.js'
import * as check from '../validate.js'

export type FlagValue = string | number | boolean | string[] | number[]

/** What a flag's value is: its check and the word its help shows for it. */
export interface FlagKind {
  placeholder: string
  parse: (text: string) => check.Checked<FlagValue>
}

const anyText = (text: string): check.Checked<string> =>
  text === '' ? { ok: false, why: 'is empty', example: 'a value' } : { ok: true, value: text }

/** A comma-separated list of networks; a repeatable flag collects every occurrence. */
function cidrList (text: string): check.Checked<string[]> {
  const out: string[] = []
  for (const part of text.split(',')) {
    const r = check.cidr(part.trim())
    if (!r.ok) return r
    out.push(r.value)
  }
  return { ok: true, value: out }
}

export const KINDS = {
  boolean: { placeholder: '', parse: check.boolean },
  text: { placeholder: 'TEXT', parse: anyText },
  path: { placeholder: 'PATH', parse: anyText },
  iface: { placeholder: 'IFACE', parse: anyText },
  ipv4: { placeholder: 'IP', parse: check.ipv4 },
  cidr: { placeholder: 'CIDR', parse: cidrList },
  ports: { placeholder: 'PORT[,PORT]', parse: check.portList },
  range: { placeholder: 'LO-HI', parse: (t: string) => { const r = check.portRange(t); return r.ok ? { ok: true, value: t.trim() } : r } },
  queue: { placeholder: 'N', parse: check.queue },
  workers: { placeholder: 'auto|N', parse: check.workers },
  portOrOff: { placeholder: 'PORT', parse: (t: string) => check.integer(t, 0, 65535, '9260') },
  table: { placeholder: 'NAME', parse: check.identifier },
  mark: { placeholder: 'MARK[/MASK]', parse: check.markMask },
  url: { placeholder: 'udp://HOST:PORT', parse: check.hepUrlText },
  uint32: { placeholder: 'N', parse: (t: string) => check.integer(t, 0, 0xffffffff, '2001') }
} satisfies Record<string, FlagKind>

export type KindName = keyof typeof KINDS

export interface FlagDef {
  /** Without the leading "--". */
  name: string
  kind: KindName
  /** For a flag with a fixed set of values (the kind is text then). */
  choices?: readonly string[]
  /** What applies when the flag is not given, as written on the command line (shown in help). */
  default?: string
  repeatable?: boolean
  help: string
  /** `run`: a flag that is not also a config key (--config, --pretty). */
  notConfig?: boolean
}

export interface CommandSpec {
  name: string
  flags: readonly FlagDef[]
  /** How many positional arguments the command takes: [min, max]. */
  positionals: readonly [number, number]
  /** What follows the command name in its usage line, besides the flags. */
  args: string
}

export interface ParsedArgs {
  positional: string[]
  /** The flags given, checked and typed by their kind; defaults are not filled in (see flagOr). */
  flags: Record<string, FlagValue>
}

const usage = (cmd: CommandSpec, detail: string): SipalgError =>
  new SipalgError('E100_USAGE', { detail: `sipalg ${cmd.name}: ${detail}`, command: cmd.name })

function checkValue (def: FlagDef, text: string): FlagValue {
  const r = def.choices !== undefined ? check.choice(text, def.choices) : KINDS[def.kind].parse(text)
  if (r.ok) return r.value
  throw new SipalgError('E101_BAD_FLAG', { flag: `--${def.name}`, value: text === '' ? '""' : text, why: r.why, example: `--${def.name} ${r.example}` })
}

export function parseArgs (argv: readonly string[], cmd: CommandSpec): ParsedArgs {
  const byName = new Map(cmd.flags.map(f => [f.name, f]))
  const out: ParsedArgs = { positional: [], flags: {} }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (a === '--') { out.positional.push(...argv.slice(i + 1)); break }
    if (a === '-h') { out.flags.help = true; continue }
    if (!a.startsWith('-') || a === '-') { out.positional.push(a); continue }
    const eq = a.indexOf('=')
    const name = a.startsWith('--') ? a.slice(2, eq < 0 ? undefined : eq) : a
    const def = byName.get(name)
    if (def === undefined) throw usage(cmd, `unknown flag ${a.startsWith('--') ? `--${name}` : a}`)
    let text: string | undefined
    if (eq >= 0) text = a.slice(eq + 1)
    else if (def.kind !== 'boolean') {
      text = argv[i + 1]
      // "--public --inside x": the value is missing, not "--inside".
      if (text === undefined || (text.startsWith('--') && text.length > 2)) throw usage(cmd, `--${name} needs a value`)
      i++
    }
    const value = text === undefined ? true : checkValue(def, text)
    const prev = out.flags[name]
    // A repeatable flag adds up; any other given twice keeps the last (a script appends overrides).
    out.flags[name] = def.repeatable === true && Array.isArray(prev) && Array.isArray(value) ? [...prev, ...value] as FlagValue : value
  }
  const [min, max] = cmd.positionals
  if (out.positional.length > max) throw usage(cmd, `unexpected argument "${out.positional[max]}"`)
  if (out.positional.length < min) throw usage(cmd, `needs ${cmd.args}`)
  return out
}

/** A flag's value as given, else its default from the table (checked like a given one). */
export function flagOr (args: ParsedArgs, cmd: CommandSpec, name: string): FlagValue | undefined {
  const given = args.flags[name]
  if (given !== undefined) return given
  const def = cmd.flags.find(f => f.name === name)
  if (def === undefined) throw new SipalgError('E307_INTERNAL', { why: `no flag --${name} in the table of sipalg ${cmd.name}` })
  if (def.default === undefined) return def.kind === 'boolean' ? false : undefined
  return checkValue(def, def.default)
}

/** Flags → config keys: --media-ports → media_ports (every `run` flag is also a config key). */
export function flagsToConfig (args: ParsedArgs, cmd: CommandSpec): Record<string, unknown> {
  const layer: Record<string, unknown> = {}
  for (const def of cmd.flags) {
    const v = args.flags[def.name]
    if (v === undefined || def.notConfig === true) continue
    layer[def.name.replace(/-/g, '_')] = v
  }
  return layer
}
