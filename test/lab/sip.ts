// SIP calls with RTP between lab phones, using the sipp scenarios in ./sipp.
//
//   const r = await runCall(lab, { from: 'a', to: 'b', rtp: true, byeFrom: 'a' })
//   t.ok(r.ok); t.notMatch(r.inviteSeenByB, /10\.0\.1\./); t.ok(r.rtpAtA > 0)
//
// The caller (inside phone, sipp UAC) sends INVITE with SDP (c= its own address, m= a per-call port),
// gets 100/180/200, ACKs, plays /usr/share/sip-tester/g711a.pcap (RTP, 30 ms packets) and then either
// sends BYE after `durationMs` or waits for the callee's BYE. The callee (sipp UAS) answers with SDP,
// plays the same pcap towards the c=/m= it was offered, and sends BYE after `durationMs` or waits.
// RTP is counted where it ARRIVES: tcpdump on each phone's eth0 (inbound only, UDP to the phone's own
// address and media port range), started before the call and stopped by PID after it.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { ChildProcess } from 'node:child_process'
import { addrOf, type Lab, type Role } from './lab.js'

export const SIPP_DIR = join(dirname(fileURLToPath(import.meta.url)), 'sipp')
export const PCAP = '/usr/share/sip-tester/g711a.pcap'

/** Base media port (sipp -mp) per phone; a call uses base..base+999. */
export const MEDIA_BASE: Record<Exclude<Role, 'gw'>, number> = { a: 16000, a2: 17000, b: 26000, c: 27000 }

export interface CallOptions {
  /** Calling phone (sipp UAC). Default 'a'. */
  from?: Exclude<Role, 'gw'>
  /** Called phone (sipp UAS). Default 'b'. */
  to?: Exclude<Role, 'gw'>
  /** Play RTP both ways. Default true. */
  rtp?: boolean
  /** Who hangs up. Default 'a' (the caller). */
  byeFrom?: 'a' | 'b'
  /** Time between ACK and BYE (ms), i.e. roughly how long RTP plays; 30 ms per packet. Default 2000. */
  durationMs?: number
  /** Address the caller sends the INVITE (and ACK/BYE) to. Default: the callee's address. */
  target?: string
  /** SIP port the callee listens on (and the caller targets). Default 5060. */
  toPort?: number
  /** Caller's local SIP port. Default 5060. */
  fromPort?: number
  /** sipp -mp for each side (default MEDIA_BASE[role]). */
  fromMediaBase?: number
  toMediaBase?: number
  /** Flush the gateway's conntrack before the call (lab-notes). Default true. */
  flushConntrack?: boolean
  /** Overall limit for the call (ms); sipp gets it as -timeout too. Default durationMs + 15,000. */
  timeoutMs?: number
  /** Keep the work directory (sipp logs, scenarios) instead of deleting it. Default false. */
  keepLogs?: boolean
}

export interface SipMessage { direction: 'sent' | 'received', text: string }

export interface CallResult {
  /** Both sipp instances exited 0: 200 OK, ACK and BYE/200 completed. */
  ok: boolean
  exitA: number | null
  exitB: number | null
  /** Every SIP message the callee received, raw, in order, separated by a blank line and "----". */
  messagesSeenByB: string
  /** Same for the caller. */
  messagesSeenByA: string
  /** The messages the callee received, parsed from its sipp -trace_msg log. */
  receivedByB: string[]
  receivedByA: string[]
  /** First INVITE / ACK / BYE the callee received ('' if none). */
  inviteSeenByB: string
  ackSeenByB: string
  byeSeenByB: string
  /** The 200 OK (to the INVITE) the caller received ('' if none). */
  okSeenByA: string
  /** RTP packets that arrived at the caller / callee (tcpdump on their eth0, inbound). */
  rtpAtA: number
  rtpAtB: number
  /** "ip.port" sources of those packets, with counts. */
  rtpSourcesAtA: Record<string, number>
  rtpSourcesAtB: Record<string, number>
  /** sipp stdout+stderr of each side (statistics screen, RTP send errors like "Network is unreachable"). */
  logA: string
  logB: string
  /** Work directory (deleted unless keepLogs). */
  dir: string
}

/** Splits a sipp -trace_msg log into messages. */
export function parseSippMessages (log: string): SipMessage[] {
  const out: SipMessage[] = []
  const blocks = log.split(/^-{10,} .*$/m)
  for (const b of blocks) {
    const m = /^\s*(?:UDP|TCP|TLS|SCTP) message (received|sent)[^\n]*\n/m.exec(b)
    if (m === null) continue
    const text = b.slice((m.index ?? 0) + m[0].length).replace(/^\n+/, '').replace(/\s+$/, '') + '\n'
    out.push({ direction: m[1] === 'sent' ? 'sent' : 'received', text })
  }
  return out
}

/** Start line of a SIP message, e.g. "INVITE sip:..." or "SIP/2.0 200 OK". */
export function startLine (msg: string): string {
  return (msg.split(/\r?\n/, 1)[0] ?? '').trim()
}

/** The addresses a far end would use: Via sent-by, Contact URIs, SDP c=/o=/m=. */
export function addressesIn (msg: string): { via: string[], contact: string[], c: string[], o: string[], m: string[] } {
  const lines = msg.split(/\r?\n/)
  const pick = (re: RegExp): string[] => lines.flatMap(l => { const x = re.exec(l); return x === null ? [] : [x[1] ?? ''] })
  return {
    via: pick(/^(?:Via|v)\s*:\s*SIP\/2\.0\/\w+\s+([^;\s]+)/i),
    contact: pick(/^(?:Contact|m)\s*:\s*(.*)$/i).map(s => s.trim()),
    c: pick(/^c=IN IP4 (\S+)/),
    o: pick(/^o=\S+ \S+ \S+ IN IP4 (\S+)/),
    m: pick(/^m=(\S+ \d+)/),
  }
}

/** Every 10.x / 172.16-31.x / 192.168.x address in a text. */
export function privateAddresses (text: string): string[] {
  const re = /\b(10\.\d{1,3}\.\d{1,3}\.\d{1,3}|172\.(?:1[6-9]|2\d|3[01])\.\d{1,3}\.\d{1,3}|192\.168\.\d{1,3}\.\d{1,3})\b/g
  return [...new Set(text.match(re) ?? [])]
}

export interface Capture {
  /** Resolves once tcpdump is listening. */
  ready: Promise<void>
  /** Stops tcpdump (SIGINT, by PID) and returns the packets it printed: "src.port > dst.port" strings. */
  stop: () => Promise<string[]>
}

/** tcpdump on `role`'s eth0, one direction (default inbound), with a filter: its output lines once stopped. */
export function tcpdump (lab: Lab, role: Exclude<Role, 'gw'>, filter: string,
  opts: { direction?: 'in' | 'out', extraArgs?: string[] } = {}): { ready: Promise<void>, lines: () => string[], stop: () => Promise<string[]> } {
  const p: ChildProcess = lab.spawn(role, 'tcpdump', ['-i', 'eth0', '-nn', '-l', '-q', ...(opts.extraArgs ?? []), '-Q', opts.direction ?? 'in', filter])
  let out = ''
  let err = ''
  p.stdout?.setEncoding('utf8').on('data', (d: string) => { out += d })
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`tcpdump in ${lab.ns(role)} not listening: ${err}`)), 10_000)
    p.stderr?.setEncoding('utf8').on('data', (d: string) => {
      err += d
      if (err.includes('listening on')) { clearTimeout(timer); resolve() }
    })
    p.on('exit', () => { clearTimeout(timer); reject(new Error(`tcpdump in ${lab.ns(role)} exited: ${err}`)) })
  })
  ready.catch(() => { /* reported by whoever awaits it */ })
  return {
    ready,
    /** What it printed so far (tcpdump -l writes a line per packet as it sees it). */
    lines: () => out.split('\n').filter(l => l !== ''),
    stop: async () => {
      await lab.stop(p, 'SIGINT', 3000)
      return out.split('\n')
    }
  }
}

/** Counts inbound UDP packets to `role`'s own address with destination port in [lo, hi] on its eth0. */
export function captureUdp (lab: Lab, role: Exclude<Role, 'gw'>, lo: number, hi: number): Capture {
  const dump = tcpdump(lab, role, `udp and dst host ${addrOf(role)} and dst portrange ${lo}-${hi}`)
  return {
    ready: dump.ready,
    stop: async () => (await dump.stop()).flatMap(l => {
      const m = /\sIP (\S+) > (\S+?):/.exec(l)
      return m === null ? [] : [`${m[1]} > ${m[2]}`]
    })
  }
}

function countSources (pkts: string[]): Record<string, number> {
  const r: Record<string, number> = {}
  for (const p of pkts) { const src = p.split(' > ')[0] ?? ''; r[src] = (r[src] ?? 0) + 1 }
  return r
}

/** Scenario text, optionally without the RTP player. */
async function scenario (dir: string, name: string, rtp: boolean): Promise<string> {
  const src = join(SIPP_DIR, name)
  if (rtp) return src
  const text = (await readFile(src, 'utf8')).replace(/^.*play_pcap_audio.*\n/m, '')
  const dst = join(dir, name)
  await writeFile(dst, text)
  return dst
}

/** A sipp process's exit code and (the last 20 kB of) its output; killed by PID after limitMs. */
export function sippResult (p: ChildProcess, limitMs: number, lab: Lab): Promise<{ code: number | null, log: string }> {
  let log = ''
  p.stdout?.setEncoding('utf8').on('data', (d: string) => { log = (log + d).slice(-20_000) })
  p.stderr?.setEncoding('utf8').on('data', (d: string) => { log = (log + d).slice(-20_000) })
  return new Promise((resolve) => {
    const timer = setTimeout(() => { void lab.stop(p, 'SIGKILL') }, limitMs)
    p.on('exit', (code) => { clearTimeout(timer); resolve({ code, log }) })
    p.on('error', (e) => { clearTimeout(timer); resolve({ code: 127, log: log + String(e) }) })
  })
}

/** Runs one call between two lab phones and reports what each side received. */
export async function runCall (lab: Lab, opts: CallOptions = {}): Promise<CallResult> {
  const from = opts.from ?? 'a'
  const to = opts.to ?? 'b'
  const rtp = opts.rtp ?? true
  const byeFrom = opts.byeFrom ?? 'a'
  const durationMs = opts.durationMs ?? 2000
  const toPort = opts.toPort ?? 5060
  const fromPort = opts.fromPort ?? 5060
  const target = opts.target ?? addrOf(to)
  const mpA = opts.fromMediaBase ?? MEDIA_BASE[from]
  const mpB = opts.toMediaBase ?? MEDIA_BASE[to]
  const limitMs = opts.timeoutMs ?? durationMs + 15_000
  const sippTimeout = `${Math.ceil(limitMs / 1000)}s`
  const dir = await mkdtemp(join(tmpdir(), `sipalg-call-${lab.runId}-`))
  try {
    if (opts.flushConntrack ?? true) await lab.flushConntrack()
    const uas = await scenario(dir, byeFrom === 'b' ? 'uas-bye.xml' : 'uas-wait-bye.xml', rtp)
    const uac = await scenario(dir, byeFrom === 'a' ? 'uac-bye.xml' : 'uac-wait-bye.xml', rtp)

    const capA = captureUdp(lab, from, mpA, mpA + 999)
    const capB = captureUdp(lab, to, mpB, mpB + 999)
    try {
      await Promise.all([capA.ready, capB.ready])
    } catch (e) {
      await Promise.all([capA.stop(), capB.stop()])
      throw e
    }

    const common = ['-m', '1', '-nostdin', '-timeout', sippTimeout, '-timeout_error', '-max_retrans', '5', '-trace_msg']
    const bArgs = ['-sf', uas, '-i', addrOf(to), '-p', String(toPort), '-mi', addrOf(to), '-mp', String(mpB),
      ...common, '-message_file', join(dir, 'b.msg'), '-trace_err', '-error_file', join(dir, 'b.err')]
    if (byeFrom === 'b') bArgs.push('-d', String(durationMs))
    const pB = lab.spawn(to, 'sipp', bArgs, { cwd: dir })
    const resB = sippResult(pB, limitMs + 5000, lab)
    await waitUdpListening(lab, to, addrOf(to), toPort)

    const aArgs = [`${target}:${toPort}`, '-sf', uac, '-i', addrOf(from), '-p', String(fromPort), '-mi', addrOf(from),
      '-mp', String(mpA), ...common, '-message_file', join(dir, 'a.msg'), '-trace_err', '-error_file', join(dir, 'a.err')]
    if (byeFrom === 'a') aArgs.push('-d', String(durationMs))
    const pA = lab.spawn(from, 'sipp', aArgs, { cwd: dir })
    const resA = sippResult(pA, limitMs + 5000, lab)

    const [ra, rb] = await Promise.all([resA, resB])
    // RTP still in flight when the BYE went out: give it a moment to land.
    await new Promise(resolve => setTimeout(resolve, 200))
    const [pktsA, pktsB] = await Promise.all([capA.stop(), capB.stop()])

    const readLog = async (f: string): Promise<string> => { try { return await readFile(join(dir, f), 'utf8') } catch { return '' } }
    const msgsA = parseSippMessages(await readLog('a.msg'))
    const msgsB = parseSippMessages(await readLog('b.msg'))
    const receivedByA = msgsA.filter(m => m.direction === 'received').map(m => m.text)
    const receivedByB = msgsB.filter(m => m.direction === 'received').map(m => m.text)
    const first = (list: string[], re: RegExp): string => list.find(m => re.test(startLine(m))) ?? ''
    return {
      ok: ra.code === 0 && rb.code === 0,
      exitA: ra.code,
      exitB: rb.code,
      messagesSeenByB: receivedByB.join('\n----\n'),
      messagesSeenByA: receivedByA.join('\n----\n'),
      receivedByA,
      receivedByB,
      inviteSeenByB: first(receivedByB, /^INVITE /),
      ackSeenByB: first(receivedByB, /^ACK /),
      byeSeenByB: first(receivedByB, /^BYE /),
      okSeenByA: receivedByA.find(m => /^SIP\/2\.0 200 /.test(startLine(m)) && /^CSeq:\s*\d+ INVITE/im.test(m)) ?? '',
      rtpAtA: pktsA.length,
      rtpAtB: pktsB.length,
      rtpSourcesAtA: countSources(pktsA),
      rtpSourcesAtB: countSources(pktsB),
      logA: ra.log + (await readLog('a.err')),
      logB: rb.log + (await readLog('b.err')),
      dir,
    }
  } finally {
    if (!(opts.keepLogs ?? false)) await rm(dir, { recursive: true, force: true })
  }
}

/** Waits (≤ 5 s) until something listens on udp (or tcp) ip:port in the role's namespace. */
export async function waitUdpListening (lab: Lab, role: Role, ip: string, port: number, proto: 'udp' | 'tcp' = 'udp'): Promise<void> {
  const deadline = Date.now() + 5000
  while (Date.now() < deadline) {
    const r = await lab.exec(role, 'ss', [proto === 'udp' ? '-Hlnu' : '-Hlnt', 'src', `${ip}:${port}`], { timeoutMs: 3000 })
    if (r.code === 0 && r.stdout.trim() !== '') return
    await new Promise(resolve => setTimeout(resolve, 50))
  }
  throw new Error(`nothing listening on ${proto} ${ip}:${port} in ${lab.ns(role)}`)
}
