// Interception of SIP over TCP for the splice (docs/tcp-splice.md): a TCP stream cannot be rewritten
// packet by packet, so each connection to a SIP port is diverted to sipalg's transparent listener
// (src/netfilter/transparent.ts) and re-originated.
//
// Three pieces, all owned by sipalg and removed exactly:
// - chain `tcp_divert` in sipalg's own table, a prerouting *filter* chain at priority dstnat + 10, so
//   a DNAT made first (an inbound connection to a registered phone's public mapping) is already
//   applied and the accepted socket's local address is the phone. (iptables' TPROXY runs before DNAT
//   and such connections are reset instead.) Two rules: packets of a connection that already has a
//   transparent socket here (the accepted phone legs, and replies to transparent upstream legs) are
//   marked so they are delivered locally; new TCP connections to the SIP ports are sent to the
//   listener with `tproxy` and marked the same way. Packets to the gateway's own addresses are left
//   alone (a SIP server on the gateway itself keeps working).
// - `ip rule fwmark MARK lookup TABLE` and `ip route local 0.0.0.0/0 dev lo table TABLE`: without them
//   a marked packet is forwarded instead of delivered to the listener.
// The splice's own upstream legs leave through OUTPUT, which this chain never sees.
// IPv6 (an IPv6 inside prefix) has the same three pieces of its own, `family: 'ip6'`: the chain in
// `table ip6 <table>`, `ip -6 rule` and `local ::/0`; each family is installed and removed alone.
import { spawnSync } from 'node:child_process'
import { SipalgError } from '../errors.js'
import { nft, type Family } from './table.js'

export interface TproxySpec {
  /** IPv4 (`table ip`, `ip -4`) or IPv6 (`table ip6`, `ip -6`) */
  family: Family
  /** sipalg's nft table (`table <family> NAME`), created if missing */
  table: string
  /** TCP destination ports that carry SIP */
  sipPorts: number[]
  /** the transparent listener's port */
  listenPort: number
  /** fwmark (value/mask) that routes diverted packets to the local table */
  mark: { value: number, mask: number }
  /** routing table number holding the local default route */
  routeTable: number
  /** preference of the ip rule (identifies it for removal) */
  rulePref: number
}

export const DIVERT_CHAIN = 'tcp_divert'

/** Defaults that stay clear of the ct mark in src/netfilter/table.ts (high 16 bits). */
export const DEFAULT_TPROXY = { mark: { value: 0x5a10, mask: 0xffff }, routeTable: 5060, rulePref: 5060 } as const

/** What installInterception() found already there (left alone by removal) and what it added. */
export interface InterceptionRecord {
  /** the table did not exist: removal deletes it again when nothing else is in it */
  tableAdded: boolean
  chainAdded: boolean
  ruleAdded: boolean
  routeAdded: boolean
}

const hex = (n: number): string => '0x' + (n >>> 0).toString(16)

export function divertScript (s: TproxySpec): string {
  const t = `${s.family} ${s.table}`
  const keep = hex(~s.mark.mask >>> 0)
  const mark = `meta mark set meta mark and ${keep} or ${hex(s.mark.value)}`
  const ports = s.sipPorts.join(', ')
  return [
    `add table ${t}`,
    `add chain ${t} ${DIVERT_CHAIN} { type filter hook prerouting priority dstnat + 10; policy accept; }`,
    `flush chain ${t} ${DIVERT_CHAIN}`,
    // wildcard 0: a connected socket only. The listener is transparent too and bound to any address,
    // so without it a reply to any forwarded connection whose port is the listen port (a phone's
    // ephemeral port 50600) was taken in and reset (test/netfilter/tproxy.test.ts).
    `add rule ${t} ${DIVERT_CHAIN} meta l4proto tcp socket transparent 1 socket wildcard 0 ${mark} accept`,
    `add rule ${t} ${DIVERT_CHAIN} fib daddr type local return`,
    `add rule ${t} ${DIVERT_CHAIN} tcp dport { ${ports} } tproxy ${s.family} to :${s.listenPort} ${mark} accept`,
    ''
  ].join('\n')
}

/** `ip args` (IPv6: `ip -6 args`; IPv4's are what they always were). */
const ipArgs = (s: TproxySpec, args: string[]): string[] => s.family === 'ip6' ? ['-6', ...args] : args

function ip (s: TproxySpec, args: string[]): { ok: boolean, out: string } {
  const r = spawnSync('ip', ipArgs(s, args), { encoding: 'utf8' })
  if (r.error !== undefined) return { ok: false, out: r.error.message }
  return { ok: r.status === 0, out: `${r.stdout}${r.stderr}`.trim() }
}

function ipOrThrow (s: TproxySpec, args: string[]): void {
  const r = ip(s, args)
  if (!r.ok) throw new SipalgError('E208_POLICY_ROUTING', { what: `ip ${ipArgs(s, args).join(' ')}`, why: r.out })
}

const ruleArgs = (s: TproxySpec): string[] =>
  ['fwmark', `${hex(s.mark.value)}/${hex(s.mark.mask)}`, 'lookup', String(s.routeTable), 'pref', String(s.rulePref)]
const routeArgs = (s: TproxySpec): string[] => ['local', s.family === 'ip6' ? '::/0' : '0.0.0.0/0', 'dev', 'lo', 'table', String(s.routeTable)]

interface IpRuleJson { priority?: number, fwmark?: string, fwmask?: string, table?: string }
interface IpRouteJson { type?: string, dst?: string, dev?: string }

/** Our ip rule is present (same preference, mark and table). */
function hasRule (s: TproxySpec): boolean {
  const r = ip(s, ['-j', 'rule', 'show', 'pref', String(s.rulePref)])
  if (!r.ok || r.out === '') return false
  const rules = JSON.parse(r.out) as IpRuleJson[]
  return rules.some(x => Number(x.fwmark) === s.mark.value && Number(x.fwmask ?? '0xffffffff') === s.mark.mask &&
    x.table === String(s.routeTable))
}

/** Our local default route is present in the route table. */
function hasRoute (s: TproxySpec): boolean {
  const r = ip(s, ['-j', 'route', 'show', 'table', String(s.routeTable)])
  if (!r.ok || r.out === '') return false
  const routes = JSON.parse(r.out) as IpRouteJson[]
  return routes.some(x => x.type === 'local' && x.dst === 'default' && x.dev === 'lo')
}

function hasChain (s: TproxySpec): boolean {
  return nft(['list', 'chain', s.family, s.table, DIVERT_CHAIN]).ok
}

/** Throws a TypeError for ports or a mark that cannot work (called by installInterception first). */
export function checkTproxySpec (s: TproxySpec): void {
  const port = (p: number): boolean => Number.isInteger(p) && p > 0 && p < 65536
  if (s.sipPorts.length === 0 || !s.sipPorts.every(port) || !port(s.listenPort)) {
    throw new TypeError(`tproxy: bad ports ${s.sipPorts.join(',')} -> ${s.listenPort}`)
  }
  if (s.mark.value === 0 || (s.mark.value & ~s.mark.mask) !== 0) throw new TypeError('tproxy: the mark must be non-zero and inside its mask')
}

/**
 * Divert TCP to the SIP ports to the listener (chain, ip rule, route; each only if missing). Returns
 * what it added. Throws E204 (nft) or E208 (ip); on failure whatever it added is taken away again.
 */
export function installInterception (s: TproxySpec): InterceptionRecord {
  checkTproxySpec(s)
  const rec: InterceptionRecord = {
    tableAdded: !nft(['list', 'table', s.family, s.table]).ok, chainAdded: !hasChain(s), ruleAdded: false, routeAdded: false
  }
  try {
    const r = nft(['-f', '-'], divertScript(s))
    if (!r.ok) throw new SipalgError('E204_NFT', { what: `creating chain ${s.family} ${s.table} ${DIVERT_CHAIN}`, why: r.out })
    if (!hasRoute(s)) { ipOrThrow(s, ['route', 'add', ...routeArgs(s)]); rec.routeAdded = true }
    if (!hasRule(s)) { ipOrThrow(s, ['rule', 'add', ...ruleArgs(s)]); rec.ruleAdded = true }
  } catch (err) {
    removeInterception(s, rec)
    throw err
  }
  return rec
}

/**
 * Take the interception away. With a record: only what that install added. Without one (another
 * process installed it, e.g. `sipalg rules uninstall` after `sipalg run`): sipalg's chain, rule and
 * route as the spec names them, whichever are present. Never touches anything else in the route table.
 */
export function removeInterception (s: TproxySpec, rec?: InterceptionRecord): void {
  const all = rec === undefined
  const failures: string[] = []
  if ((all || rec.ruleAdded) && hasRule(s)) {
    const r = ip(s, ['rule', 'del', ...ruleArgs(s)])
    if (!r.ok) failures.push(`ip rule del: ${r.out}`)
  }
  if ((all || rec.routeAdded) && hasRoute(s)) {
    const r = ip(s, ['route', 'del', ...routeArgs(s)])
    if (!r.ok) failures.push(`ip route del: ${r.out}`)
  }
  if ((all || rec.chainAdded) && hasChain(s)) {
    const r = nft(['delete', 'chain', s.family, s.table, DIVERT_CHAIN])
    if (!r.ok) failures.push(`nft delete chain: ${r.out}`)
  }
  if (rec?.tableAdded === true) {
    const left = nft(['list', 'table', s.family, s.table])
    if (left.ok && !/\b(chain|map|set|flowtable|counter|quota|limit|ct helper)\b/.test(left.out)) {
      const r = nft(['delete', 'table', s.family, s.table])
      if (!r.ok) failures.push(`nft delete table: ${r.out}`)
    }
  }
  if (failures.length > 0) {
    throw new SipalgError('E208_POLICY_ROUTING', { what: `removing the SIP/TCP interception (${s.family})`, why: failures.join('; ') })
  }
}
