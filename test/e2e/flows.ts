// Shared runner for the SIP flow tests (issue 4): any set of sipp peers in the lab (servers first,
// then clients), RTP counted where it arrives with its destination port, every SIP message each
// peer received. The scenarios live in test/lab/sipp/.

import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { isAbsolute, join } from 'node:path'
import type { ChildProcess } from 'node:child_process'
import { addrOf, type Lab, type Role } from '../lab/lab.js'
import { MEDIA_BASE, SIPP_DIR, parseSippMessages, privateAddresses, startLine, sippResult, tcpdump, waitUdpListening } from '../lab/sip.js'

export type Phone = Exclude<Role, 'gw'>

export interface Peer {
  /** Label in the result (default: the role). */
  name?: string
  role: Phone
  /** Scenario file in test/lab/sipp (or an absolute path). */
  scenario: string
  /** Local SIP port (default 5060). */
  port?: number
  /** Local address (default the role's address); a second address on the same phone for forking. */
  ip?: string
  /** sipp -mp (default MEDIA_BASE[role]). */
  mediaBase?: number
  /** "ip:port" to send to: makes this peer a client, started after every server listens. */
  remote?: string
  /** -key name value. */
  keys?: Record<string, string>
  /** sipp -d (ms). */
  durationMs?: number
  /** Client started this long after the servers are up (ms). */
  delayMs?: number
  /** SIP over TCP (sipp -t t1: one connection); default UDP. */
  transport?: 'tcp'
}

export interface Packet { t: number, src: string, dst: string, dport: number }

export interface PeerResult {
  code: number | null
  received: string[]
  sent: string[]
  /** Received messages with their arrival time (epoch seconds, sipp's trace clock). */
  timed: Array<{ t: number, text: string }>
  log: string
}

export interface FlowResult {
  ok: boolean
  peers: Record<string, PeerResult>
  /** RTP/UDP packets that arrived at each phone in its media range (tcpdump inbound on eth0). */
  rtp: Record<string, Packet[]>
  describe: () => string
}

export const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }

/** Counts packets, optionally only those to one destination port or from one source "ip.port". */
export function count (pkts: Packet[] | undefined, f: { dport?: number, src?: string } = {}): number {
  return (pkts ?? []).filter(p => (f.dport === undefined || p.dport === f.dport) && (f.src === undefined || p.src === f.src)).length
}

export function sources (pkts: Packet[] | undefined): Record<string, number> {
  const r: Record<string, number> = {}
  for (const p of pkts ?? []) r[p.src] = (r[p.src] ?? 0) + 1
  return r
}

/** Private addresses in a message apart from From/To/Call-ID (kept as written by spec §3). */
export function leaked (msg: string): string[] {
  return privateAddresses(msg.split(/\r?\n/).filter(l => !/^(From|To|Call-ID|f|t|i)\s*:/i.test(l)).join('\n'))
}

/** Messages whose start line matches. */
export const find = (msgs: string[] | undefined, re: RegExp): string[] => (msgs ?? []).filter(m => re.test(startLine(m)))

export const mPorts = (msg: string): number[] => [...msg.matchAll(/^m=\w+ (\d+)/gm)].map(m => Number(m[1]))

/** Received messages of a sipp -trace_msg log with the time in the separator line before each. */
export function timedReceived (log: string): Array<{ t: number, text: string }> {
  const out: Array<{ t: number, text: string }> = []
  const re = /^-{10,} (\d{4}-\d\d-\d\d)\s+(\d\d:\d\d:\d\d\.\d+)\s*\n\s*(?:UDP|TCP) message (received|sent)[^\n]*\n/gm
  const heads = [...log.matchAll(re)]
  for (let i = 0; i < heads.length; i++) {
    const h = heads[i]
    if (h[3] !== 'received') continue
    const end = i + 1 < heads.length ? heads[i + 1].index : log.length
    const text = log.slice((h.index ?? 0) + h[0].length, end).replace(/^\n+/, '').replace(/\s+$/, '') + '\n'
    out.push({ t: new Date(`${h[1]}T${(h[2] ?? '').slice(0, 12)}`).getTime() / 1000, text })
  }
  return out
}

function capture (lab: Lab, role: Phone, lo: number, hi: number): { ready: Promise<void>, stop: () => Promise<Packet[]> } {
  const ip = addrOf(role)
  const dump = tcpdump(lab, role, `udp and dst net ${ip.split('.').slice(0, 3).join('.')}.0/24 and dst portrange ${lo}-${hi}`, { extraArgs: ['-tt'] })
  return {
    ready: dump.ready,
    stop: async () => (await dump.stop()).flatMap(l => {
      const m = /^(\d+\.\d+)\s+IP (\S+) > (\S+?):/.exec(l)
      if (m === null) return []
      const dst = m[3] ?? ''
      return [{ t: Number(m[1]), src: m[2] ?? '', dst, dport: Number(dst.slice(dst.lastIndexOf('.') + 1)) }]
    })
  }
}

/** Runs the peers to completion (each sipp -m 1) and reports what happened. */
export async function runFlow (lab: Lab, peers: Peer[], opts: { timeoutMs?: number, flushConntrack?: boolean, captureRoles?: Phone[] } = {}): Promise<FlowResult> {
  const limitMs = opts.timeoutMs ?? 20_000
  const dir = await mkdtemp(join(tmpdir(), `sipalg-flow-${lab.runId}-`))
  try {
    if (opts.flushConntrack ?? true) await lab.flushConntrack()
    const roles = [...new Set([...peers.map(p => p.role), ...(opts.captureRoles ?? [])])]
    const caps = new Map(roles.map(r => [r, capture(lab, r, MEDIA_BASE[r], MEDIA_BASE[r] + 999)]))
    try {
      await Promise.all([...caps.values()].map(c => c.ready))
    } catch (e) {
      await Promise.all([...caps.values()].map(c => c.stop()))
      throw e
    }
    const names = peers.map(p => p.name ?? p.role)
    const start = (p: Peer, name: string): Promise<{ code: number | null, log: string }> => {
      const ip = p.ip ?? addrOf(p.role)
      const args = [...(p.remote === undefined ? [] : [p.remote]), '-sf', isAbsolute(p.scenario) ? p.scenario : join(SIPP_DIR, p.scenario), '-i', ip,
        '-p', String(p.port ?? 5060), '-mi', ip, '-mp', String(p.mediaBase ?? MEDIA_BASE[p.role]),
        '-m', '1', '-nostdin', '-timeout', `${Math.ceil(limitMs / 1000)}s`, '-timeout_error', '-max_retrans', '5',
        '-trace_msg', '-message_file', join(dir, `${name}.msg`), '-trace_err', '-error_file', join(dir, `${name}.err`)]
      for (const [k, v] of Object.entries(p.keys ?? {})) args.push('-key', k, v)
      if (p.durationMs !== undefined) args.push('-d', String(p.durationMs))
      if (p.transport === 'tcp') args.push('-t', 't1')
      return sippResult(lab.spawn(p.role, 'sipp', args, { cwd: dir }), limitMs + 5000, lab)
    }
    const runs: Array<Promise<{ code: number | null, log: string }>> = []
    for (let i = 0; i < peers.length; i++) {
      const p = peers[i]
      if (p.remote !== undefined) continue
      runs[i] = start(p, names[i])
      await waitUdpListening(lab, p.role, p.ip ?? addrOf(p.role), p.port ?? 5060, p.transport ?? 'udp')
    }
    for (let i = 0; i < peers.length; i++) {
      const p = peers[i]
      if (p.remote === undefined) continue
      if (p.delayMs !== undefined) await sleep(p.delayMs)
      runs[i] = start(p, names[i])
    }
    const done = await Promise.all(runs)
    await sleep(200)
    const rtp: Record<string, Packet[]> = {}
    for (const [r, c] of caps) rtp[r] = await c.stop()
    const readLog = async (f: string): Promise<string> => { try { return await readFile(join(dir, f), 'utf8') } catch { return '' } }
    const res: Record<string, PeerResult> = {}
    for (let i = 0; i < peers.length; i++) {
      const msgs = parseSippMessages(await readLog(`${names[i]}.msg`))
      res[names[i]] = {
        code: done[i].code,
        timed: timedReceived(await readLog(`${names[i]}.msg`)),
        received: msgs.filter(m => m.direction === 'received').map(m => m.text),
        sent: msgs.filter(m => m.direction === 'sent').map(m => m.text),
        log: done[i].log + (await readLog(`${names[i]}.err`))
      }
    }
    const ok = Object.values(res).every(r => r.code === 0)
    return {
      ok,
      peers: res,
      rtp,
      describe: () => Object.entries(res).map(([n, r]) =>
        `${n}: exit ${String(r.code)}; received ${r.received.map(startLine).join(' | ')}\n${r.log.slice(-800)}`).join('\n') +
        '\nrtp: ' + Object.entries(rtp).map(([r, p]) => `${r}=${p.length}`).join(' ')
    }
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}
