// Configuration: defaults, the YAML file, then command-line flags (every flag is also a key).
// Validation names the key and the fix (errors from the catalogue).

import { readFileSync } from 'node:fs'
import { parse as parseYaml } from 'yaml'
import { SipalgError } from './errors.js'
import { insideMatcher, ipv4ToNumber, parseCidr, type Cidr } from './rewrite/cidr.js'
import { parsePortRange } from './media/ports.js'

export interface Config {
  public: string | null
  inside: string[]
  outsideIf: string | null
  insideIf: string | null
  queue: number
  sipPorts: number[]
  mediaPorts: string
  firewall: boolean
  failClosed: boolean
  /** What happens to datagrams on a SIP port that are not SIP: pass or drop. */
  malformed: 'pass' | 'drop'
  logLevel: string
  readyFile: string | null
  /** Unix socket `sipalg status` talks to; default /run/sipalg/<table>-<queue>.sock. */
  controlSocket: string | null
  /** Call state for a restarted sipalg; default /run/sipalg/<table>-<queue>.state.json. */
  stateFile: string | null
  /** Prometheus metrics on 127.0.0.1:<port>; 0 = off. */
  metricsPort: number
  table: string
  rewriteFromTo: boolean
  rewriteIce: boolean
  trustedInsideProxies: string[]
  inboundSipFrom: 'registrar' | 'any'
  mediaLatching: boolean
  /** Turn on net.netfilter.nf_conntrack_acct so `sipalg status` shows per-call traffic. */
  conntrackAccounting: boolean
  timeouts: { ring: number, call: number, signalling: number, registrationGrace: number, element: number }
  limits: { maxCalls: number, callsPerHost: number, callsPerSecond: number, callsPerSecondPerHost: number }
  queueMaxLen: number
  queueRcvbufBytes: number
}

export const defaults: Config = {
  public: null,
  inside: ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16'],
  outsideIf: null,
  insideIf: null,
  queue: 0,
  sipPorts: [5060],
  mediaPorts: '20000-29999',
  firewall: false,
  failClosed: false,
  malformed: 'pass',
  logLevel: 'info',
  readyFile: null,
  controlSocket: null,
  stateFile: null,
  metricsPort: 0,
  table: 'sipalg',
  rewriteFromTo: false,
  rewriteIce: false,
  trustedInsideProxies: [],
  inboundSipFrom: 'registrar',
  mediaLatching: false,
  conntrackAccounting: true,
  timeouts: { ring: 180, call: 7200, signalling: 300, registrationGrace: 60, element: 600 },
  limits: { maxCalls: 10000, callsPerHost: 200, callsPerSecond: 2000, callsPerSecondPerHost: 50 },
  queueMaxLen: 16384,
  queueRcvbufBytes: 32 * 1024 * 1024
}

// snake_case keys in YAML (and --kebab-case flags) map onto the camelCase fields above.
const camel = (k: string): string => k.replace(/[-_]([a-z])/g, (_, c: string) => c.toUpperCase())

export const isIpv4 = (s: string): boolean => ipv4ToNumber(s) !== null

function bad (key: string, why: string, example: string): SipalgError {
  return new SipalgError('E103_CONFIG_KEY', { key, why, example })
}

function merge (target: Record<string, unknown>, src: Record<string, unknown>, path: string): void {
  for (const [rawKey, value] of Object.entries(src)) {
    const key = camel(rawKey)
    const where = path === '' ? rawKey : `${path}.${rawKey}`
    if (!(key in target)) throw bad(where, 'is not a known setting', 'see sipalg.example.yaml')
    const cur = target[key]
    if (cur !== null && typeof cur === 'object' && !Array.isArray(cur)) {
      if (value === null || typeof value !== 'object' || Array.isArray(value)) throw bad(where, 'must be a section', `${rawKey}: { ... }`)
      merge(cur as Record<string, unknown>, value as Record<string, unknown>, where)
    } else {
      target[key] = value
    }
  }
}

export function loadConfigFile (path: string): Record<string, unknown> {
  let text: string
  try { text = readFileSync(path, 'utf8') } catch (e) { throw new SipalgError('E102_CONFIG_READ', { path, why: (e as Error).message }) }
  let doc: unknown
  try { doc = parseYaml(text) } catch (e) { throw new SipalgError('E102_CONFIG_READ', { path, why: (e as Error).message.split('\n')[0] }) }
  if (doc === null || doc === undefined) return {}
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new SipalgError('E102_CONFIG_READ', { path, why: 'top level must be a mapping of keys' })
  return doc as Record<string, unknown>
}

/** Defaults ← file ← flags, then validated. */
export function buildConfig (layers: Array<Record<string, unknown>>): Config {
  const cfg = structuredClone(defaults) as unknown as Record<string, unknown>
  for (const layer of layers) merge(cfg, layer, '')
  return validate(cfg as unknown as Config)
}

function asList (v: unknown): unknown[] { return Array.isArray(v) ? v : String(v).split(',').map(s => s.trim()).filter(s => s !== '') }

function int (key: string, v: unknown, lo: number, hi: number, example: string): number {
  const n = typeof v === 'number' ? v : Number(String(v))
  if (!Number.isInteger(n) || n < lo || n > hi) throw bad(key, `must be a whole number from ${lo} to ${hi} (got ${String(v)})`, example)
  return n
}

function bool (key: string, v: unknown): boolean {
  if (typeof v === 'boolean') return v
  if (v === 'true' || v === '1' || v === 'yes') return true
  if (v === 'false' || v === '0' || v === 'no') return false
  throw bad(key, `must be true or false (got ${String(v)})`, `${key}: true`)
}

export function validate (c: Config): Config {
  if (c.public !== null && !isIpv4(String(c.public))) throw bad('public', `must be an IPv4 address (got ${String(c.public)})`, 'public: 203.0.113.1')
  c.inside = asList(c.inside).map(String)
  for (const n of c.inside) {
    if (parseCidr(n) === null) throw bad('inside', `has "${n}", not a network like 10.0.1.0/24`, 'inside: [10.0.1.0/24]')
  }
  c.queue = int('queue', c.queue, 0, 65535, 'queue: 1')
  c.metricsPort = int('metrics_port', c.metricsPort, 0, 65535, 'metrics_port: 9260')
  c.sipPorts = asList(c.sipPorts).map(p => int('sip_ports', p, 1, 65535, 'sip_ports: [5060, 5080]'))
  try { parsePortRange(String(c.mediaPorts)) } catch (e) { throw bad('media_ports', (e as Error).message, 'media_ports: 20000-29999') }
  c.mediaPorts = String(c.mediaPorts)
  for (const k of ['firewall', 'failClosed', 'rewriteFromTo', 'rewriteIce', 'mediaLatching', 'conntrackAccounting'] as const) c[k] = bool(k, c[k])
  // Latching needs the first media source from conntrack before locking the pinhole to it; until
  // sipalg reads that, it refuses the option rather than silently opening media to anyone.
  if (c.mediaLatching) throw bad('media_latching', 'is not supported yet (media is accepted only from the SDP address)', 'media_latching: false')
  if (c.malformed !== 'pass' && c.malformed !== 'drop') throw bad('malformed', 'must be pass or drop', 'malformed: pass')
  if (c.inboundSipFrom !== 'registrar' && c.inboundSipFrom !== 'any') throw bad('inbound_sip_from', 'must be registrar or any', 'inbound_sip_from: registrar')
  c.trustedInsideProxies = asList(c.trustedInsideProxies).map(String)
  for (const ip of c.trustedInsideProxies) if (!isIpv4(ip)) throw bad('trusted_inside_proxies', `has "${ip}", not an IPv4 address`, 'trusted_inside_proxies: [10.0.1.5]')
  for (const k of Object.keys(c.timeouts) as Array<keyof Config['timeouts']>) {
    c.timeouts[k] = Number(c.timeouts[k])
    if (!(c.timeouts[k] > 0) || c.timeouts[k] > 86400 * 7) throw bad(`timeouts.${k}`, 'must be seconds, above 0', `timeouts: { ${k}: 60 }`)
  }
  for (const k of Object.keys(c.limits) as Array<keyof Config['limits']>) c.limits[k] = int(`limits.${k}`, c.limits[k], 1, 10_000_000, `limits: { ${k}: 100 }`)
  c.queueMaxLen = int('queue_max_len', c.queueMaxLen, 64, 1 << 20, 'queue_max_len: 16384')
  c.queueRcvbufBytes = int('queue_rcvbuf_bytes', c.queueRcvbufBytes, 1 << 16, 1 << 30, 'queue_rcvbuf_bytes: 33554432')
  if (!/^[A-Za-z][A-Za-z0-9_]{0,31}$/.test(c.table)) throw bad('table', 'must be a short nftables identifier', 'table: sipalg')
  return c
}

export function insideOf (c: Config): (ip: string) => boolean {
  return insideMatcher(c.inside.map(n => parseCidr(n)).filter((n): n is Cidr => n !== null))
}
