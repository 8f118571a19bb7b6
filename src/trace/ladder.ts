// `sipalg trace` rendering: SIP message events in, a ladder diagram out (sngrep style) — three
// columns, inside phone | gateway | far end, one arrow per message, and under each arrow what sipalg
// changed (before → after) and the kernel mappings it added or removed. Pure: no I/O, no clock.

import type { Change } from '../rewrite/types.js'

/** A kernel map element as sipalg's mirror holds it (src/media/mappings.ts). */
export interface TraceMapping {
  map: string
  key: { ip?: string, sport?: number, port: number }
  data?: { ip?: string, port: number }
}

/** One SIP message that passed through the gateway (one JSON line on the control socket). */
export interface TraceEvent {
  /** Milliseconds since the epoch (capture time for --pcap). */
  at: number
  callId?: string
  direction: 'outbound' | 'inbound'
  /** The inside phone and the far end, ip:port, as the gateway saw them (private side). */
  phone: string
  far: string
  /** Requests: the method. Responses: status code and reason phrase. */
  method?: string
  status?: number
  reason?: string
  /** CSeq method ("INVITE" for a 200 to the INVITE). */
  cseqMethod?: string
  changes: Change[]
  leftAlone?: string
  detail?: string
  /** Mappings this message made sipalg install / remove. */
  added: TraceMapping[]
  removed: TraceMapping[]
  /** Set for a message that crossed a SIP/TCP splice (src/tcp/splice.ts); absent = UDP. */
  transport?: 'tcp'
}

/** The fields of a SIP message a trace event carries (live from the daemon, or from a capture). */
export interface TracedMessage {
  callId?: string
  isRequest: boolean
  method: string
  statusCode: number
  reasonPhrase: string
  cseq?: { method: string }
}

export function traceEvent (at: number, msg: TracedMessage, direction: 'outbound' | 'inbound', phone: string, far: string,
  r: { changes: Change[], leftAlone?: string, detail?: string }, added: TraceMapping[], removed: TraceMapping[]): TraceEvent {
  return {
    at,
    callId: msg.callId,
    direction,
    phone,
    far,
    method: msg.isRequest ? msg.method : undefined,
    status: msg.isRequest ? undefined : msg.statusCode,
    reason: msg.isRequest ? undefined : msg.reasonPhrase,
    cseqMethod: msg.cseq?.method,
    changes: r.changes,
    leftAlone: r.leftAlone,
    detail: r.detail,
    added,
    removed
  }
}

export interface LadderOptions {
  /** The gateway's public address (column title and public side of mappings). */
  publicIp?: string
  /** Columns between two verticals (default 32). */
  lane?: number
}

/** INVITE · 180 Ringing (INVITE) · 200 OK (BYE); a SIP/TCP message ends in " /TCP". */
export function messageLabel (e: TraceEvent): string {
  const tcp = e.transport === 'tcp' ? ' /TCP' : ''
  if (e.method !== undefined) return e.method + tcp
  const status = `${e.status ?? '?'}${e.reason === undefined || e.reason === '' ? '' : ` ${e.reason}`}`
  return (e.cseqMethod === undefined ? status : `${status} (${e.cseqMethod})`) + tcp
}

const ep = (x: { ip?: string, port: number } | undefined, dflt = ''): string =>
  x === undefined ? '?' : `${x.ip ?? dflt}:${x.port}`

/** "src_nat  10.0.1.23:16000 → 203.0.113.1:20000" etc.: which way traffic is sent. */
export function mappingText (m: TraceMapping, publicIp = 'public'): string {
  switch (m.map) {
    case 'src_nat': return `src_nat   ${ep(m.key)} → ${publicIp}:${m.data?.port ?? '?'}`
    case 'any_dnat': return `any_dnat  ${publicIp}:${m.key.port} → ${ep(m.data)} (from anyone)`
    case 'peer_dnat': return `peer_dnat ${publicIp}:${m.key.port} → ${ep(m.data)} (from ${m.key.ip ?? '?'})`
    case 'latch_dnat': return `latch_dnat ${publicIp}:${m.key.port} → ${ep(m.data)} (from ${m.key.ip ?? '?'}:${m.key.sport ?? '?'}, latched)`
    default: return `${m.map} ${ep(m.key)} → ${ep(m.data)}`
  }
}

const GW_REWRITTEN = '◆'
const GW_UNTOUCHED = '┼'

/**
 * Renders events one at a time (the live trace writes each block as it comes). Times are seconds
 * since the first event this ladder saw; the header line after it names that instant.
 */
export class Ladder {
  private readonly lane: number
  private readonly gutter = 10
  private readonly publicIp: string | undefined
  private first: number | undefined
  private lastCall: string | undefined

  constructor (opts: LadderOptions = {}) {
    this.lane = Math.max(16, opts.lane ?? 32)
    this.publicIp = opts.publicIp
  }

  private get cols (): [number, number, number] {
    const p = this.gutter + 2
    return [p, p + this.lane, p + 2 * this.lane]
  }

  private blank (): string[] {
    const [p, g, f] = this.cols
    const a = Array.from({ length: f + 1 }, () => ' ')
    a[p] = a[g] = a[f] = '│'
    return a
  }

  private put (a: string[], at: number, text: string): void {
    for (let i = 0; i < text.length; i++) a[at + i] = text[i]
  }

  private line (a: string[]): string { return a.join('').trimEnd() }

  /** Column titles and the first verticals. */
  header (): string {
    const [p, g, f] = this.cols
    const titles = ['inside phone', this.publicIp === undefined ? 'gateway' : `gateway ${this.publicIp}`, 'far end']
    const a = Array.from({ length: f + 1 + 20 }, () => ' ')
    ;[p, g, f].forEach((c, i) => { this.put(a, Math.max(0, c - Math.floor(titles[i].length / 2)), titles[i]) })
    return `${this.line(a)}\n${this.line(this.blank())}\n`
  }

  /** The block for one event: call separator when the call changes, label, arrow, what changed. */
  event (e: TraceEvent): string {
    const [p, g, f] = this.cols
    const out: string[] = []
    const call = `${e.callId ?? '-'}|${e.phone}|${e.far}`
    if (this.first === undefined) {
      this.first = e.at
      out.push(`── t=0 is ${new Date(e.at).toISOString()}`)
    }
    if (call !== this.lastCall) {
      this.lastCall = call
      out.push(`── Call-ID ${e.callId ?? '(none)'}   phone ${e.phone}   far end ${e.far}`)
    }
    // Label centred over the arrow, time in the gutter.
    const label = messageLabel(e)
    const top = this.blank()
    this.put(top, 0, `+${((e.at - this.first) / 1000).toFixed(3)}`.padStart(this.gutter))
    this.put(top, Math.max(p + 2, Math.floor((p + f - label.length) / 2)), label)
    out.push(this.line(top))

    const arrow = this.blank()
    for (let i = p + 1; i < f; i++) arrow[i] = '─'
    if (e.direction === 'outbound') { arrow[g - 1] = '>'; arrow[f - 1] = '>' } else { arrow[g + 1] = '<'; arrow[p + 1] = '<' }
    arrow[g] = e.changes.length > 0 ? GW_REWRITTEN : GW_UNTOUCHED
    out.push(this.line(arrow))

    const detail = (text: string): void => {
      const a = this.blank().slice(0, p + 1)
      out.push(this.line(a) + '   ' + text)
    }
    const fw = Math.max(0, ...e.changes.map(c => c.field.length))
    for (const c of e.changes) detail(`${c.field.padEnd(fw)}  ${c.before === '' ? '(none)' : c.before} → ${c.after}`)
    if (e.leftAlone !== undefined) detail(`left alone: ${e.leftAlone}${e.detail === undefined ? '' : ` (${e.detail})`}`)
    for (const m of e.added) detail(`+ ${mappingText(m, this.publicIp)}`)
    for (const m of e.removed) detail(`- ${mappingText(m, this.publicIp)}`)
    out.push(this.line(this.blank()))
    return out.join('\n') + '\n'
  }
}

/** The whole ladder for a list of events. */
export function renderLadder (events: TraceEvent[], opts: LadderOptions = {}): string {
  const l = new Ladder(opts)
  return l.header() + events.map(e => l.event(e)).join('')
}
