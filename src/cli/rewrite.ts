// `sipalg rewrite`: the rewrite engine offline. One raw SIP message on stdin, the rewritten bytes
// on stdout, and with --explain what changed on stderr. No root, no kernel state: signalling keeps
// its port and media ports come deterministically from --media-ports.
import { SipalgError } from '../errors.js'
import { classifyDatagram, parseSip } from '../sip/message.js'
import type { SipMessage } from '../sip/message.js'
import { locateUriHost } from '../sip/uri.js'
import { type Cidr, insideMatcher, parseCidr } from '../rewrite/cidr.js'
import { parsePortRange, type PortRange } from '../validate.js'
import { flagOr, type ParsedArgs } from './args.js'
import { command, parseCommand } from './commands.js'
import { rewriteMessage } from '../rewrite/rewrite.js'
import type { Direction, Endpoint, MediaGrant, MediaRequest, RewriteContext, RewriteResult } from '../rewrite/types.js'

export interface RewriteIo {
  stdin: NodeJS.ReadableStream
  stdout: NodeJS.WritableStream
  stderr: NodeJS.WritableStream
}

/** The offline dry run's settings, shared by `sipalg rewrite` and `sipalg trace --pcap`. */
export interface DryRunOptions {
  publicIp: string
  inside: Cidr[]
  mediaPorts: PortRange
  rewriteFromTo: boolean
  rewriteIce: boolean
}

/** --public (required), --inside, --media-ports and the rewrite switches, checked by the command table. */
export function dryRunOptions (args: ParsedArgs, cmd: 'rewrite' | 'trace'): DryRunOptions {
  const def = command(cmd)
  const publicIp = args.flags.public
  if (typeof publicIp !== 'string') {
    throw new SipalgError('E100_USAGE', { detail: `sipalg ${cmd}${cmd === 'trace' ? ' --pcap' : ''} needs --public (the gateway's public IPv4 address)` })
  }
  return {
    publicIp,
    inside: (flagOr(args, def, 'inside') as string[]).map(n => parseCidr(n) as Cidr),
    mediaPorts: parsePortRange(flagOr(args, def, 'media-ports') as string),
    rewriteFromTo: args.flags['rewrite-from-to'] === true,
    rewriteIce: args.flags['rewrite-ice'] === true
  }
}

/** Media ports as a real gateway would hand them out: even RTP, RTCP = RTP + 1, in order. */
export function mediaAllocator (range: PortRange): (req: MediaRequest) => MediaGrant | null {
  let next = range.lo % 2 === 0 ? range.lo : range.lo + 1
  return req => {
    if (next + 1 > range.hi) return null
    const rtpPort = next
    next += 2
    return { rtpPort, rtcpPort: req.rtcpPort === null ? null : rtpPort + 1 }
  }
}

async function readAll (stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of stream) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk, 'latin1') : chunk)
  return Buffer.concat(chunks)
}

export function explainLines (result: RewriteResult): string[] {
  const lines = result.changes.map(c => `${c.field}: ${c.before === '' ? '(none)' : c.before} → ${c.after}`)
  if (lines.length === 0) lines.push('no changes')
  if (result.leftAlone !== undefined) lines.push(`left alone: ${result.leftAlone}${result.detail === undefined ? '' : ` (${result.detail})`}`)
  else if (result.detail !== undefined) lines.push(`note: ${result.detail}`)
  return lines
}

/**
 * The context of an offline rewrite (`sipalg rewrite`, `sipalg trace --pcap`): no kernel state, the
 * phone keeps its signalling port on the public side, media ports come from mapMedia.
 */
export function dryRunContext (opts: { publicIp: string, isInside: (ip: string) => boolean, rewriteFromTo: boolean, rewriteIce: boolean },
  phone: Endpoint, mapMedia: (req: MediaRequest) => MediaGrant | null): RewriteContext {
  return {
    publicIp: opts.publicIp,
    isInside: opts.isInside,
    phone,
    rewriteFromTo: opts.rewriteFromTo,
    rewriteIce: opts.rewriteIce,
    mapSignalling: priv => priv.port, // dry run: the public port is the private one
    mapMedia,
    lookupSignalling: publicPort => ({ ip: phone.ip, port: publicPort })
  }
}

/**
 * The phone of an offline rewrite when --source is not given: the address the message itself names
 * for it (the rule `sipalg help rewrite` states), or null when it names none.
 */
export function phoneOf (msg: SipMessage, direction: Direction, isInside: (ip: string) => boolean): Endpoint | null {
  const via = msg.topVia
  const fromVia = via === undefined ? null : { ip: via.host, port: typeof via.port === 'number' ? via.port : 5060 }
  const target = (t: { host: string, port?: number | null } | undefined): Endpoint | null =>
    t === undefined ? null : { ip: t.host, port: typeof t.port === 'number' ? t.port : 5060 }
  const contact = target(msg.contacts.find(c => c.address?.target !== undefined)?.address?.target)
  if (direction === 'outbound') {
    // A phone's request names it in the top Via; in its responses the top Via is the far end's.
    return msg.isRequest ? fromVia ?? contact : contact
  }
  const inside = (e: Endpoint | null): Endpoint | null => e !== null && isInside(e.ip) ? e : null
  if (!msg.isRequest) return inside(fromVia)
  const ruri = locateUriHost(msg.text, msg.requestUriStart, msg.requestUriEnd)
  return inside(target(ruri)) ?? inside(target(msg.to?.target))
}

export async function runRewrite (argv: string[], io: RewriteIo): Promise<number> {
  let args: ParsedArgs
  let opts: DryRunOptions
  try {
    args = parseCommand('rewrite', argv)
    opts = dryRunOptions(args, 'rewrite')
  } catch (err) {
    if (!(err instanceof SipalgError)) throw err
    io.stderr.write(`${err.toString()}\n`)
    return err.exitCode
  }
  const direction = flagOr(args, command('rewrite'), 'direction') as Direction

  const input = await readAll(io.stdin)
  const kind = classifyDatagram(input)
  const parsed = kind === 'sip' ? parseSip(input) : { ok: false as const, reason: kind === 'keepalive' ? 'a keepalive (CRLF or STUN), not a message' : 'the start line is not a SIP request or status line' }
  if (!parsed.ok) {
    io.stderr.write(`${new SipalgError('E105_NOT_SIP', { why: parsed.reason }).toString()}\n`)
    return 3
  }
  const msg = parsed.msg
  const isInside = insideMatcher(opts.inside)
  const source = args.flags.source
  const named = phoneOf(msg, direction, isInside)
  const phone = typeof source !== 'string' ? named : { ip: source, port: named?.ip === source ? named.port : 5060 }
  if (phone === null) {
    const err = new SipalgError('E100_USAGE', {
      detail: `the message names no ${direction === 'inbound' ? 'inside ' : ''}address for the phone (see "sipalg help rewrite"); give --source, e.g. --source 10.0.1.23`
    })
    io.stderr.write(`${err.toString()}\n`)
    return err.exitCode
  }
  const ctx = dryRunContext({ ...opts, isInside }, phone, mediaAllocator(opts.mediaPorts))
  const result = rewriteMessage(msg, direction, ctx)
  io.stdout.write(result.bytes)
  if (args.flags.explain === true) io.stderr.write(explainLines(result).join('\n') + '\n')
  return 0
}
