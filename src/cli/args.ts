// A small, strict flag parser shared by every subcommand: --name value, --name=value, booleans,
// repeatable flags. Unknown flags are an error that names the flag (no silent typos).

import { SipalgError } from '../errors.js'

export interface FlagSpec {
  booleans?: string[]
  values?: string[]
  repeatable?: string[]
}

export interface ParsedArgs {
  positional: string[]
  flags: Record<string, string | boolean | string[]>
}

export function parseArgs (argv: string[], spec: FlagSpec): ParsedArgs {
  const booleans = new Set(spec.booleans ?? [])
  const values = new Set([...(spec.values ?? []), ...(spec.repeatable ?? [])])
  const repeatable = new Set(spec.repeatable ?? [])
  const out: ParsedArgs = { positional: [], flags: {} }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (!a.startsWith('--') || a === '--') { out.positional.push(a); continue }
    const eq = a.indexOf('=')
    const name = a.slice(2, eq < 0 ? undefined : eq)
    if (booleans.has(name)) {
      out.flags[name] = eq < 0 ? true : a.slice(eq + 1) !== 'false'
      continue
    }
    if (!values.has(name)) throw new SipalgError('E100_USAGE', { detail: `unknown flag --${name}` })
    let v: string | undefined
    if (eq >= 0) v = a.slice(eq + 1)
    else { v = argv[i + 1]; i++ }
    if (v === undefined) throw new SipalgError('E100_USAGE', { detail: `--${name} needs a value` })
    if (repeatable.has(name)) {
      const prev = out.flags[name]
      out.flags[name] = Array.isArray(prev) ? [...prev, v] : [v]
    } else out.flags[name] = v
  }
  return out
}

/** Flags → config keys: --media-ports → media_ports (every flag is also a config key). */
export function flagsToConfig (flags: ParsedArgs['flags'], skip: string[] = []): Record<string, unknown> {
  const layer: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(flags)) {
    if (skip.includes(k)) continue
    layer[k.replace(/-/g, '_')] = v
  }
  return layer
}
