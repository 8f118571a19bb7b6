// `sipalg trace`: a ladder diagram of the SIP passing through the gateway.
//   live:   connects to the running daemon's control socket ("trace") and draws each message as
//           sipalg handles it — what it changed and the kernel mappings it added or removed;
//   --pcap: draws a capture offline, every message run through the rewrite engine with the same
//           dry-run context as `sipalg rewrite` (signalling keeps its port, media ports from
//           --media-ports): what sipalg would have done to a call recorded elsewhere.

import { readFileSync } from 'node:fs'
import { SipalgError } from '../errors.js'
import { flagOr, type ParsedArgs } from './args.js'
import { command, parseCommand } from './commands.js'
import { socketPath, streamControl } from './control.js'
import { dryRunContext, dryRunOptions, mediaAllocator, type DryRunOptions } from './rewrite.js'
import { insideMatcher } from '../rewrite/cidr.js'
import { rewriteMessage } from '../rewrite/rewrite.js'
import type { Direction, MediaGrant, MediaRequest } from '../rewrite/types.js'
import { classifyDatagram, parseSip } from '../sip/message.js'
import { parseUdp } from '../netfilter/packet.js'
import { Ladder, renderLadder, traceEvent, type TraceEvent, type TraceMapping } from '../trace/ladder.js'
import { PcapError, readPcap, type PcapPacket } from '../trace/pcap.js'
import { hostPort } from '../ip6.js'

export interface TraceIo {
  stdout: NodeJS.WritableStream
  stderr: NodeJS.WritableStream
}

export interface CaptureOptions extends DryRunOptions {
  sipPorts: number[]
}

export interface CaptureTrace {
  events: TraceEvent[]
  /** IPv4/UDP packets on a SIP port that were not between an inside and an outside address. */
  notCrossing: number
  /** Datagrams on a SIP port that were keepalives or not SIP. */
  notSip: number
}

/**
 * Runs every SIP message of a capture through the rewrite engine, as sipalg would have on the
 * gateway. Mappings are what the dry run hands out: the phone's signalling port the first time it
 * is seen, each media stream's RTP/RTCP ports (src_nat out, any_dnat in) when first offered, and
 * the call's media ports removed at its BYE. (The daemon also narrows any_dnat to the far end's
 * address once it answers: that needs the call state and shows in the live trace only.)
 */
export function traceCapture (packets: PcapPacket[], opts: CaptureOptions): CaptureTrace {
  const isInside = insideMatcher(opts.inside)
  const sipPorts = new Set(opts.sipPorts)
  const alloc = mediaAllocator(opts.mediaPorts)
  const grants = new Map<string, MediaGrant | null>()
  const signalling = new Set<string>()
  const callMedia = new Map<string, TraceMapping[]>()
  const out: CaptureTrace = { events: [], notCrossing: 0, notSip: 0 }
  for (const p of packets) {
    const parsed = parseUdp(p.ip)
    if (!parsed.ok) continue
    const u = parsed.udp
    if (!sipPorts.has(u.srcPort) && !sipPorts.has(u.dstPort)) continue
    const direction: Direction | null = isInside(u.src) && !isInside(u.dst)
      ? 'outbound'
      : isInside(u.dst) && !isInside(u.src) ? 'inbound' : null
    if (direction === null) { out.notCrossing++; continue }
    if (classifyDatagram(u.payload) !== 'sip') { out.notSip++; continue }
    const res = parseSip(u.payload)
    if (!res.ok) { out.notSip++; continue }
    const msg = res.msg
    const outbound = direction === 'outbound'
    const phone = outbound ? { ip: u.src, port: u.srcPort } : { ip: u.dst, port: u.dstPort }
    const far = outbound ? hostPort(u.dst, u.dstPort) : hostPort(u.src, u.srcPort)
    if (u.family === 6) {
      // IPv6 is never rewritten (src/alg.ts processIpv6); its pinholes need the call state the
      // daemon keeps, so they show in the live trace only.
      const r = { changes: [], detail: 'IPv6: passed as written; its pinholes show in the live trace only' }
      out.events.push(traceEvent(p.at, msg, direction, hostPort(phone.ip, phone.port), far, r, [], []))
      continue
    }
    const call = `${msg.callId ?? '-'}|${phone.ip}:${phone.port}`
    // The same private stream in the same call keeps its public ports (re-INVITE, UPDATE, ACK).
    const mapMedia = (req: MediaRequest): MediaGrant | null => {
      const k = `${call}|${req.ip}:${req.rtpPort}`
      if (!grants.has(k)) grants.set(k, alloc(req))
      return grants.get(k) ?? null
    }
    const r = rewriteMessage(msg, direction, dryRunContext({ ...opts, isInside }, phone, mapMedia))

    const added: TraceMapping[] = []
    let removed: TraceMapping[] = []
    if (r.signalling !== undefined) {
      const k = `${r.signalling.private.ip}:${r.signalling.private.port}`
      if (!signalling.has(k)) {
        signalling.add(k)
        added.push({ map: 'src_nat', key: r.signalling.private, data: { port: r.signalling.publicPort } })
      }
    }
    const media = callMedia.get(call) ?? []
    for (const m of r.media) {
      const ports: Array<[number, number]> = [[m.private.rtpPort, m.public.rtpPort]]
      if (m.private.rtcpPort !== null && m.public.rtcpPort !== null) ports.push([m.private.rtcpPort, m.public.rtcpPort])
      for (const [priv, pub] of ports) {
        if (media.some(x => x.map === 'any_dnat' && x.key.port === pub)) continue
        const pair: TraceMapping[] = [
          { map: 'src_nat', key: { ip: m.private.ip, port: priv }, data: { port: pub } },
          { map: 'any_dnat', key: { port: pub }, data: { ip: m.private.ip, port: priv } }
        ]
        added.push(...pair)
        media.push(...pair)
      }
    }
    if (media.length > 0) callMedia.set(call, media)
    if (msg.isRequest && msg.method === 'BYE') {
      removed = callMedia.get(call) ?? []
      callMedia.delete(call)
    }
    out.events.push(traceEvent(p.at, msg, direction, `${phone.ip}:${phone.port}`, far, r, added, removed))
  }
  return out
}

const matches = (e: TraceEvent, call: string | undefined): boolean => call === undefined || (e.callId ?? '').includes(call)

async function tracePcap (file: string, args: ParsedArgs, io: TraceIo): Promise<number> {
  const opts: CaptureOptions = { ...dryRunOptions(args, 'trace'), sipPorts: flagOr(args, command('trace'), 'sip-ports') as number[] }
  const flags = args.flags
  let buf: Buffer
  try { buf = readFileSync(file) } catch (e) {
    throw new SipalgError('E100_USAGE', { detail: `cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}` })
  }
  let packets: PcapPacket[]
  let truncated = false
  try {
    const pcap = readPcap(buf)
    packets = pcap.packets
    truncated = pcap.truncated
  } catch (e) {
    if (!(e instanceof PcapError)) throw e
    throw new SipalgError('E100_USAGE', { detail: `${file}: ${e.message}` })
  }
  const call = typeof flags.call === 'string' ? flags.call : undefined
  const t = traceCapture(packets, opts)
  const events = t.events.filter(e => matches(e, call))
  if (flags.json === true) {
    for (const e of events) io.stdout.write(JSON.stringify(e) + '\n')
  } else {
    io.stdout.write(renderLadder(events, { publicIp: opts.publicIp }))
  }
  if (events.length === 0) {
    io.stderr.write(`no SIP between the inside networks and the outside on ports ${opts.sipPorts.join(',')} in ${file}` +
      (t.notCrossing > 0 ? ` (${t.notCrossing} SIP packets did not cross inside↔outside: check --inside, or capture on the inside interface)` : '') + '\n')
  }
  if (truncated) io.stderr.write(`${file} ends inside a packet record (capture cut short); the last packet was skipped\n`)
  return 0
}

async function traceLive (args: ParsedArgs, io: TraceIo): Promise<number> {
  const flags = args.flags
  const path = socketPath(args, 'trace')
  const call = typeof flags.call === 'string' ? flags.call : undefined
  let ladder: Ladder | undefined
  const s = streamControl(path, 'trace', doc => {
    const d = doc as Partial<TraceEvent> & { trace?: string, publicIp?: string, lost?: number }
    if (d.trace === 'started') {
      if (flags.json === true) io.stdout.write(JSON.stringify(d) + '\n') // scripts: connected
      else {
        ladder = new Ladder({ publicIp: d.publicIp })
        io.stdout.write(ladder.header())
      }
      return
    }
    if (typeof d.lost === 'number') {
      io.stderr.write(`(${d.lost} messages not shown: this terminal could not keep up)\n`)
      return
    }
    const e = d as TraceEvent
    if (!matches(e, call)) return
    if (flags.json === true) io.stdout.write(JSON.stringify(e) + '\n')
    else io.stdout.write((ladder ??= new Ladder()).event(e))
  })
  const onSignal = (): void => { s.stop() }
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  try {
    await s.done
  } finally {
    process.removeListener('SIGINT', onSignal)
    process.removeListener('SIGTERM', onSignal)
  }
  return 0
}

export async function runTrace (argv: string[], io: TraceIo = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  const args = parseCommand('trace', argv)
  if (typeof args.flags.pcap === 'string') return await tracePcap(args.flags.pcap, args, io)
  return await traceLive(args, io)
}
