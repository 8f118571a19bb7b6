// Configuration: defaults, then the layers the CLI read (the YAML file, src/cli/config-file.ts, then
// command-line flags: every flag is also a key), merged and validated. Pure: no file access here.
// Validation names the key and the fix (errors from the catalogue), with the checks of src/validate.ts
// that the flags use too.

import { SipalgError } from './errors.js'
import { insideMatcher, parseCidr, type Cidr } from './rewrite/cidr.js'
import * as check from './validate.js'
import type { LatchMode } from './media/latch.js'

export interface Config {
  public: string | null
  inside: string[]
  outsideIf: string | null
  insideIf: string | null
  queue: number
  /** sipalg processes, one queue each from `queue` on (docs/workers.md): auto = one per core. */
  workers: 'auto' | number
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
  /** Where the state lives: unset = the state file; redis://host:port/db for a gateway pair (src/store). */
  stateStore: string | null
  /** Prometheus metrics on 127.0.0.1:<port>; 0 = off. */
  metricsPort: number
  table: string
  rewriteFromTo: boolean
  rewriteIce: boolean
  trustedInsideProxies: string[]
  inboundSipFrom: 'registrar' | 'any'
  /** Media from where the far end really sends it (src/media/latch.ts): off, first, signalling. */
  mediaLatching: LatchMode
  /** Turn on net.netfilter.nf_conntrack_acct so `sipalg status` shows per-call traffic. */
  conntrackAccounting: boolean
  timeouts: { ring: number, call: number, signalling: number, registrationGrace: number, element: number, latch: number }
  limits: { maxCalls: number, callsPerHost: number, callsPerSecond: number, callsPerSecondPerHost: number }
  queueMaxLen: number
  queueRcvbufBytes: number
  /** HEP3 collector (Homer, sngrep -L) every SIP message is copied to, as it arrived and as it left; null = off. */
  hep: string | null
  /** HEP capture agent id: tells this gateway's messages apart in Homer. */
  hepId: number
  /** HEP auth key, when the collector wants one. */
  hepPassword: string | null
  /** SIP over TCP through the transparent splice (src/tcp/splice.ts, docs/tcp-splice.md). */
  tcp: boolean
  /** A TCP stream on a SIP port that does not start as SIP: spliced unparsed, or reset. */
  tcpNonSip: 'pass' | 'reset'
  /** Local port of the transparent listener the tproxy rule diverts to. */
  tcpListenPort: number
  /** idle seconds, connect timeout ms, header/body bytes of one message */
  tcpLimits: { connections: number, connectionsPerHost: number, idle: number, connectTimeout: number, maxHeaderBytes: number, maxBodyBytes: number }
}

export const defaults: Config = {
  public: null,
  inside: ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16'],
  outsideIf: null,
  insideIf: null,
  queue: 0,
  workers: 1,
  sipPorts: [5060],
  mediaPorts: '20000-29999',
  firewall: false,
  failClosed: false,
  malformed: 'pass',
  logLevel: 'info',
  readyFile: null,
  controlSocket: null,
  stateFile: null,
  stateStore: null,
  metricsPort: 0,
  table: 'sipalg',
  rewriteFromTo: false,
  rewriteIce: false,
  trustedInsideProxies: [],
  inboundSipFrom: 'registrar',
  mediaLatching: 'off',
  conntrackAccounting: true,
  timeouts: { ring: 180, call: 7200, signalling: 300, registrationGrace: 60, element: 600, latch: 10 },
  limits: { maxCalls: 10000, callsPerHost: 200, callsPerSecond: 2000, callsPerSecondPerHost: 50 },
  queueMaxLen: 16384,
  queueRcvbufBytes: 32 * 1024 * 1024,
  hep: null,
  hepId: 2001,
  hepPassword: null,
  tcp: true,
  tcpNonSip: 'pass',
  tcpListenPort: 50600,
  tcpLimits: { connections: 20000, connectionsPerHost: 64, idle: 3600, connectTimeout: 5000, maxHeaderBytes: 16384, maxBodyBytes: 65536 }
}

/**
 * What each config key that is not also a `sipalg run` flag means (a flag's key is described by its
 * help in src/cli/commands.ts): with the flags' help, the one source of sipalg.yaml(5) (src/cli/man.ts).
 */
export const KEY_HELP: Readonly<Record<string, string>> = {
  trusted_inside_proxies: 'inside PBXs (IPv4 addresses) allowed to name other inside hosts in their SDP',
  'timeouts.ring': 'seconds an INVITE may wait for a final answer',
  'timeouts.call': 'seconds an established call may go without any SIP (long: calls on hold are quiet)',
  'timeouts.signalling': 'seconds a phone\'s public SIP port stays mapped without traffic',
  'timeouts.registration_grace': 'seconds registration mappings outlive the expiry the registrar granted',
  'timeouts.element': 'seconds a kernel map element lives between refreshes (bounds what is left if sipalg dies)',
  'timeouts.latch': 'seconds a stream stays open to a latch after the far end\'s media is known and after the answer (media_latching: first)',
  'limits.max_calls': 'calls tracked at once; more get no media mapping (their SIP passes)',
  'limits.calls_per_host': 'calls at once from one inside phone',
  'limits.calls_per_second': 'new calls per second, all phones together',
  'limits.calls_per_second_per_host': 'new calls per second from one inside phone',
  queue_max_len: 'packets the kernel holds for the NFQUEUE before it fails open (or drops, with fail_closed)',
  queue_rcvbuf_bytes: 'receive buffer of the NFQUEUE socket, in bytes',
  'tcp_limits.connections': 'SIP/TCP connections through the splice at once, in total; more are reset',
  'tcp_limits.connections_per_host': 'SIP/TCP connections at once from one inside host; more are reset',
  'tcp_limits.idle': 'seconds a SIP/TCP connection may go without a byte either way before it is closed',
  'tcp_limits.connect_timeout': 'milliseconds the far leg of a SIP/TCP connection has to come up before the phone\'s leg is reset',
  'tcp_limits.max_header_bytes': 'header bytes of one SIP/TCP message without an end of headers before both legs are closed',
  'tcp_limits.max_body_bytes': 'largest declared Content-Length of one SIP/TCP message; more closes both legs'
}

// snake_case keys in YAML (and --kebab-case flags) map onto the camelCase fields above.
const camel = (k: string): string => k.replace(/[-_]([a-z])/g, (_, c: string) => c.toUpperCase())
const snake = (k: string): string => k.replace(/[A-Z]/g, c => `_${c.toLowerCase()}`)

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

/** Defaults ← file ← flags, then validated. */
export function buildConfig (layers: Array<Record<string, unknown>>): Config {
  const cfg = structuredClone(defaults) as unknown as Record<string, unknown>
  for (const layer of layers) merge(cfg, layer, '')
  return validate(cfg as unknown as Config)
}

function asList (v: unknown): unknown[] { return Array.isArray(v) ? v : String(v).split(',').map(s => s.trim()).filter(s => s !== '') }

/** One check of src/validate.ts on a config value (YAML gives numbers and booleans, flags strings). */
function checked<T> (key: string, v: unknown, r: (text: string) => check.Checked<T>): T {
  const res = r(String(v))
  if (res.ok) return res.value
  throw bad(key, `has "${String(v)}", ${res.why}`, yamlExample(key, res.example))
}

/** "limits.max_calls" + "100" → "limits: { max_calls: 100 }": what to write in sipalg.yaml. */
function yamlExample (key: string, value: string): string {
  const dot = key.indexOf('.')
  return dot < 0 ? `${key}: ${value}` : `${key.slice(0, dot)}: { ${key.slice(dot + 1)}: ${value} }`
}

const int = (key: string, v: unknown, lo: number, hi: number, example: string): number =>
  checked(key, v, t => check.integer(t, lo, hi, example))

export function validate (c: Config): Config {
  if (c.public !== null) c.public = checked('public', c.public, check.ipv4)
  c.inside = asList(c.inside).map(n => checked('inside', n, check.cidr))
  c.queue = checked('queue', c.queue, check.queue)
  c.workers = checked('workers', c.workers, check.workers)
  c.metricsPort = int('metrics_port', c.metricsPort, 0, 65535, '9260')
  c.sipPorts = asList(c.sipPorts).map(p => checked('sip_ports', p, check.port))
  const media = checked('media_ports', c.mediaPorts, check.portRange)
  c.mediaPorts = String(c.mediaPorts).trim()
  if (typeof c.workers === 'number') checkWorkersFit(c.workers, media, c.queue)
  for (const k of ['firewall', 'failClosed', 'rewriteFromTo', 'rewriteIce', 'conntrackAccounting'] as const) {
    c[k] = checked(snake(k), c[k], check.boolean)
  }
  c.mediaLatching = checked('media_latching', c.mediaLatching, t => check.choice(t, ['off', 'first', 'signalling'] as const))
  c.malformed = checked('malformed', c.malformed, t => check.choice(t, ['pass', 'drop'] as const))
  c.inboundSipFrom = checked('inbound_sip_from', c.inboundSipFrom, t => check.choice(t, ['registrar', 'any'] as const))
  c.trustedInsideProxies = asList(c.trustedInsideProxies).map(ip => checked('trusted_inside_proxies', ip, check.ipv4))
  for (const k of Object.keys(c.timeouts) as Array<keyof Config['timeouts']>) {
    c.timeouts[k] = Number(c.timeouts[k])
    if (!(c.timeouts[k] > 0) || c.timeouts[k] > 86400 * 7) throw bad(`timeouts.${snake(k)}`, 'must be seconds, above 0', yamlExample(`timeouts.${snake(k)}`, '60'))
  }
  for (const k of Object.keys(c.limits) as Array<keyof Config['limits']>) c.limits[k] = int(`limits.${snake(k)}`, c.limits[k], 1, 10_000_000, '100')
  c.queueMaxLen = int('queue_max_len', c.queueMaxLen, 64, 1 << 20, '16384')
  c.queueRcvbufBytes = int('queue_rcvbuf_bytes', c.queueRcvbufBytes, 1 << 16, 1 << 30, '33554432')
  c.table = checked('table', c.table, check.identifier)
  if (c.hep === '') c.hep = null
  if (c.hep !== null) c.hep = checked('hep', c.hep, check.hepUrlText)
  c.hepId = int('hep_id', c.hepId, 0, 0xffffffff, '2001')
  if (c.hepPassword !== null) c.hepPassword = String(c.hepPassword)
  validateTcp(c)
  return c
}

/** Each worker reads its own queue and hands out its own slice of the media range (src/workers/shard.ts). */
export function checkWorkersFit (n: number, media: check.PortRange, queue: number): void {
  if (n <= 1) return
  if (queue + n - 1 > 65535) throw bad('workers', `needs queues ${queue}-${queue + n - 1}, past 65535`, 'queue: 0')
  const pairs = Math.floor((media.hi - (media.lo + (media.lo % 2)) + 1) / 2)
  if (pairs < 2 * n) throw bad('media_ports', `holds ${pairs} RTP/RTCP pairs, fewer than two for each of ${n} workers`, 'media_ports: 20000-29999')
}

function validateTcp (c: Config): void {
  c.tcp = checked('tcp', c.tcp, check.boolean)
  c.tcpNonSip = checked('tcp_non_sip', c.tcpNonSip, t => check.choice(t, ['pass', 'reset'] as const))
  c.tcpListenPort = checked('tcp_listen_port', c.tcpListenPort, check.port)
  const l = c.tcpLimits
  l.connections = int('tcp_limits.connections', l.connections, 1, 1_000_000, '20000')
  l.connectionsPerHost = int('tcp_limits.connections_per_host', l.connectionsPerHost, 1, 1_000_000, '64')
  l.idle = int('tcp_limits.idle', l.idle, 1, 86400 * 7, '3600')
  l.connectTimeout = int('tcp_limits.connect_timeout', l.connectTimeout, 100, 120_000, '5000')
  l.maxHeaderBytes = int('tcp_limits.max_header_bytes', l.maxHeaderBytes, 1024, 1 << 20, '16384')
  l.maxBodyBytes = int('tcp_limits.max_body_bytes', l.maxBodyBytes, 0, 1 << 24, '65536')
}

export function insideOf (c: Config): (ip: string) => boolean {
  return insideMatcher(c.inside.map(n => parseCidr(n)).filter((n): n is Cidr => n !== null))
}
