// `sipalg rewrite`: the rewrite engine offline. One raw SIP message on stdin, the rewritten bytes
// on stdout, and with --explain what changed on stderr. No root, no kernel state: signalling keeps
// its port and media ports come deterministically from --media-ports.
import { SipalgError } from '../errors.js'
import { classifyDatagram, parseSip } from '../sip/message.js'
import { isIPv4 } from '../sip/text.js'
import { type Cidr, PRIVATE_NETWORKS, insideMatcher, parseCidr } from '../rewrite/cidr.js'
import { rewriteMessage } from '../rewrite/rewrite.js'
import type { Direction, Endpoint, MediaGrant, MediaRequest, RewriteContext, RewriteResult } from '../rewrite/types.js'

export interface RewriteIo {
  stdin: NodeJS.ReadableStream
  stdout: NodeJS.WritableStream
  stderr: NodeJS.WritableStream
}

interface RewriteOptions {
  direction: Direction
  publicIp: string
  inside: Cidr[]
  mediaPorts: { first: number, last: number }
  source: string | undefined
  rewriteFromTo: boolean
  rewriteIce: boolean
  explain: boolean
}

const USAGE = `usage: sipalg rewrite --public IP [--direction outbound|inbound] [--inside CIDR]... [--media-ports LO-HI]
                      [--source IP] [--rewrite-from-to] [--rewrite-ice] [--explain]  < message.sip > rewritten.sip
`

function badFlag (flag: string, value: string, why: string, example: string): SipalgError {
  return new SipalgError('E101_BAD_FLAG', { flag, value, why, example })
}

function parseFlags (argv: string[]): RewriteOptions | 'help' {
  let publicIp: string | undefined
  const insideTexts: string[] = []
  const opts: Omit<RewriteOptions, 'publicIp' | 'inside'> = {
    direction: 'outbound', mediaPorts: { first: 20000, last: 29999 }, source: undefined,
    rewriteFromTo: false, rewriteIce: false, explain: false
  }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]
    const eq = arg.indexOf('=')
    const flag = arg.startsWith('--') && eq > 0 ? arg.slice(0, eq) : arg
    const inline = arg.startsWith('--') && eq > 0 ? arg.slice(eq + 1) : undefined
    const value = (): string => {
      if (inline !== undefined) return inline
      const v = argv[++i]
      if (v === undefined) throw new SipalgError('E100_USAGE', { detail: `${flag} needs a value` })
      return v
    }
    switch (flag) {
      case '--help': case '-h': return 'help'
      case '--explain': opts.explain = true; break
      case '--rewrite-from-to': opts.rewriteFromTo = true; break
      case '--rewrite-ice': opts.rewriteIce = true; break
      case '--direction': {
        const v = value()
        if (v !== 'outbound' && v !== 'inbound') throw badFlag(flag, v, 'must be outbound or inbound', '--direction inbound')
        opts.direction = v
        break
      }
      case '--public': {
        const v = value()
        if (!isIPv4(v)) throw badFlag(flag, v, 'not an IPv4 address', '--public 203.0.113.1')
        publicIp = v
        break
      }
      case '--source': {
        const v = value()
        if (!isIPv4(v)) throw badFlag(flag, v, 'not an IPv4 address', '--source 10.0.1.23')
        opts.source = v
        break
      }
      case '--inside': {
        const v = value()
        for (const part of v.split(',')) {
          if (parseCidr(part.trim()) === null) throw badFlag(flag, v, 'not an IPv4 network', '--inside 10.0.1.0/24')
          insideTexts.push(part.trim())
        }
        break
      }
      case '--media-ports': {
        const v = value()
        const m = /^(\d{1,5})-(\d{1,5})$/.exec(v)
        const first = m === null ? NaN : Number(m[1])
        const last = m === null ? NaN : Number(m[2])
        if (!(first >= 1 && last <= 65535 && last - first >= 1)) throw badFlag(flag, v, 'not a port range with room for RTP and RTCP', '--media-ports 20000-29999')
        opts.mediaPorts = { first, last }
        break
      }
      default:
        throw new SipalgError('E100_USAGE', { detail: `unknown flag "${arg}" for sipalg rewrite` })
    }
  }
  if (publicIp === undefined) throw new SipalgError('E100_USAGE', { detail: 'sipalg rewrite needs --public (the gateway\'s public IPv4 address)' })
  const inside = (insideTexts.length > 0 ? insideTexts : PRIVATE_NETWORKS).map(n => parseCidr(n) as Cidr)
  return { ...opts, publicIp, inside }
}

/** Media ports as a real gateway would hand them out: even RTP, RTCP = RTP + 1, in order. */
export function mediaAllocator (range: { first: number, last: number }): (req: MediaRequest) => MediaGrant | null {
  let next = range.first % 2 === 0 ? range.first : range.first + 1
  return req => {
    if (next + 1 > range.last) return null
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

export async function runRewrite (argv: string[], io: RewriteIo): Promise<number> {
  let opts: RewriteOptions | 'help'
  try {
    opts = parseFlags(argv)
  } catch (err) {
    if (!(err instanceof SipalgError)) throw err
    io.stderr.write(`${err.toString()}\n`)
    return err.exitCode
  }
  if (opts === 'help') { io.stdout.write(USAGE); return 0 }

  const input = await readAll(io.stdin)
  const kind = classifyDatagram(input)
  const parsed = kind === 'sip' ? parseSip(input) : { ok: false as const, reason: kind === 'keepalive' ? 'a keepalive (CRLF or STUN), not a message' : 'the start line is not a SIP request or status line' }
  if (!parsed.ok) {
    io.stderr.write(`${new SipalgError('E105_NOT_SIP', { why: parsed.reason }).toString()}\n`)
    return 3
  }
  const msg = parsed.msg

  const via = msg.topVia
  // A phone's request names it in the top Via; in its responses the top Via is the far end's, so
  // the phone is the one in Contact.
  const contactHost = msg.contacts.find(c => c.address?.target !== undefined)?.address?.target?.host
  const defaultSource = msg.isRequest ? via?.host : contactHost ?? via?.host
  const sourceIp = opts.source ?? (opts.direction === 'outbound' ? defaultSource : undefined)
  if (sourceIp === undefined) {
    const err = new SipalgError('E100_USAGE', { detail: opts.direction === 'inbound' ? 'inbound needs --source (the inside phone\'s address)' : 'no Via to take the sender from; give --source' })
    io.stderr.write(`${err.toString()}\n`)
    return err.exitCode
  }
  const peer: Endpoint = { ip: sourceIp, port: sourceIp === via?.host && typeof via?.port === 'number' ? via.port : 5060 }
  const ctx = dryRunContext({ ...opts, isInside: insideMatcher(opts.inside) }, peer, mediaAllocator(opts.mediaPorts))
  const result = rewriteMessage(msg, opts.direction, ctx)
  io.stdout.write(result.bytes)
  if (opts.explain) io.stderr.write(explainLines(result).join('\n') + '\n')
  return 0
}
