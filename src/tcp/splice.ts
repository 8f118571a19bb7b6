// The SIP/TCP splice (docs/tcp-splice.md): every connection src/netfilter/tproxy.ts diverts to the
// transparent listener is ended here and opened again towards its original destination. Each
// direction is cut into messages by a framer (src/sip/framer.ts); each message goes through the same
// Alg path as a UDP datagram (Alg.processMessage), and the kernel changes it relies on are applied
// before its rewritten bytes are written to the other leg (`beforeWrite`, the rule run.ts keeps for
// UDP verdicts). Keep-alives pass untouched.
//
// Who sees which address:
// - outbound (phone inside → far end): the phone's connection already looks like the far end's (tproxy
//   keeps the destination); the upstream leg is bound to the gateway's public address and the phone's
//   public signalling port, the one the rewritten Via/Contact advertise.
// - inbound (far end → a registered phone's public port, DNATed to the phone by the registration's
//   peer_dnat/any_dnat element before the divert): the upstream leg to the phone is transparent,
//   bound to the far end's own address, so the phone sees its registrar.
//
// Both legs share a fate: FIN crosses as FIN, an error or RST as RST, an unreachable far end resets
// the phone's leg; a framing error or an idle connection closes both.
import type { Socket } from 'node:net'
import type { Logger } from 'pino'
import type { MessageLeg } from '../alg.js'
import type { Direction, Endpoint } from '../rewrite/types.js'
import { FramingError, SipStreamFramer, type FramerLimits, type FrameUnit } from '../sip/framer.js'
import { OncePerMinute } from '../once-per-minute.js'
import { shortCode } from '../errors.js'
import type { UpstreamOptions } from '../netfilter/transparent.js'
import type { ConnectionStatus } from '../status.js'
export type { ConnectionStatus }

/** What the splice needs of the ALG core. */
export interface SpliceCore {
  processMessage: (bytes: Buffer, leg: MessageLeg) => Buffer
  /** The phone's public signalling port (the outbound upstream leg binds it); null when none is free. */
  publicPort: (phone: Endpoint) => number | null
  counters: { inc: (name: string, by?: number) => void }
}

export interface SpliceLimits extends FramerLimits {
  connections: number
  connectionsPerHost: number
  /** ms without a byte either way before both legs are closed */
  idleMs: number
  /** ms the upstream leg may take to come up */
  connectTimeoutMs: number
}

export interface SpliceOptions {
  core: SpliceCore
  isInside: (ip: string) => boolean
  publicIp: string
  limits: SpliceLimits
  /** A stream whose first bytes are not SIP: spliced unparsed, or reset. */
  nonSip: 'pass' | 'reset'
  /** Apply the kernel changes a message about to be written relies on. */
  beforeWrite: () => void
  /** The addon's connectUpstream (src/netfilter/transparent.ts); tests give a plain net.connect. */
  connect: (o: UpstreamOptions) => Socket
  log: Logger
  now?: () => number
}

/** One line of `sipalg status`. */

/** Errors of a connect that never came up (the far end's leg). */
const CONNECT_FAILED = new Set(['ECONNREFUSED', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH'])

const ep = (e: Endpoint): string => `${e.ip}:${e.port}`

/** Server bytes held while the phone's first bytes are not yet known to be SIP or not. */
const MAX_HELD_BYTES = 16 * 1024

class Connection {
  readonly startedAt: number
  messagesOut = 0
  messagesIn = 0
  notSip = false
  private closed = false
  /** data from the far end that came before the phone's stream was known to be SIP */
  private held: Buffer[] | null = []
  private heldBytes = 0
  private readonly fromPhone: SipStreamFramer
  private readonly fromFar: SipStreamFramer

  constructor (private readonly splice: TcpSplice, readonly leg: Omit<MessageLeg, 'direction'> & { direction: Direction | 'transit' },
    private readonly phoneSock: Socket, private readonly farSock: Socket, now: number) {
    this.startedAt = now
    const limits = splice.opts.limits
    this.fromPhone = new SipStreamFramer(limits)
    this.fromFar = new SipStreamFramer(limits)
    // Between two inside hosts (or two outside ones) there is nothing to translate: bytes as they come.
    if (leg.direction === 'transit') { this.notSip = true; this.held = null }
    // The originator of the connection decides whether it is SIP: the accepted leg.
    const originator = this.leg.direction === 'inbound' ? farSock : phoneSock
    const answerer = originator === phoneSock ? farSock : phoneSock
    originator.on('data', (b: Buffer) => { this.fromOriginator(b, originator === phoneSock) })
    answerer.on('data', (b: Buffer) => { this.fromAnswerer(b, answerer === phoneSock) })
    // The leg sipalg opened: the phone's inbound, the far end's otherwise.
    const opened = this.leg.direction === 'inbound' ? phoneSock : farSock
    for (const [s, other] of [[phoneSock, farSock], [farSock, phoneSock]] as const) {
      // A FIN crosses as a FIN: the other direction stays open (both sockets are half-open capable).
      s.on('end', () => { if (!other.destroyed) other.end() })
      s.on('error', (e: NodeJS.ErrnoException) => { this.abort(s === opened && CONNECT_FAILED.has(e.code ?? '') ? 'tcp_upstream_failed' : 'tcp_reset', e) })
      s.on('close', () => { this.closedOne() })
    }
    phoneSock.setTimeout(limits.idleMs, () => { this.abort('tcp_idle_closed') })
  }

  private fromOriginator (b: Buffer, isPhone: boolean): void {
    if (this.notSip) { this.write(isPhone, [b]); return }
    const framer = isPhone ? this.fromPhone : this.fromFar
    this.deliver(framer.push(b), isPhone)
    if (this.held !== null && framer.verdict !== 'start') {
      const held = this.held
      this.held = null
      for (const h of held) this.fromAnswerer(h, !isPhone)
    }
  }

  private fromAnswerer (b: Buffer, isPhone: boolean): void {
    if (this.held !== null) {
      this.heldBytes += b.length
      if (this.heldBytes > MAX_HELD_BYTES) { this.framingError(new FramingError('header-too-long', 'the answering side sent before the caller said anything')); return }
      this.held.push(b)
      return
    }
    if (this.notSip) { this.write(isPhone, [b]); return }
    this.deliver((isPhone ? this.fromPhone : this.fromFar).push(b), isPhone)
  }

  /** Framed units of one direction: messages through the ALG, then the kernel changes, then the writes. */
  private deliver (units: FrameUnit[], fromPhone: boolean): void {
    const out: Buffer[] = []
    const counters = this.splice.opts.core.counters
    for (const u of units) {
      if (u.kind === 'error') { this.framingError(u.error); return }
      if (u.kind === 'keepalive') { counters.inc('tcp_keepalives'); out.push(u.bytes); continue }
      if (u.kind === 'not-sip') {
        if (!this.notSip && !this.becomeNotSip()) return
        out.push(u.bytes)
        continue
      }
      const direction: Direction = fromPhone ? 'outbound' : 'inbound'
      if (fromPhone) this.messagesOut++; else this.messagesIn++
      out.push(this.splice.opts.core.processMessage(u.bytes, { ...this.leg, direction }))
    }
    if (out.length === 0) return
    this.splice.opts.beforeWrite()
    this.write(fromPhone, out)
  }

  private write (fromPhone: boolean, chunks: Buffer[]): void {
    const to = fromPhone ? this.farSock : this.phoneSock
    if (to.destroyed || !to.writable) return
    for (const c of chunks) to.write(c)
  }

  /** The first bytes are not SIP: the whole connection is spliced unparsed, or reset. Whether it goes on. */
  private becomeNotSip (): boolean {
    const s = this.splice
    s.opts.core.counters.inc('tcp_not_sip')
    if (s.opts.nonSip === 'reset') {
      s.refused('not-sip', this.leg.direction === 'inbound' ? this.leg.far.ip : this.leg.phone.ip, 'the stream did not start with a SIP request or status line; tcp_non_sip: reset')
      this.abort()
      return false
    }
    this.notSip = true
    return true
  }

  private framingError (e: FramingError): void {
    const s = this.splice
    s.opts.core.counters.inc('tcp_framing_errors')
    const src = this.leg.direction === 'inbound' ? this.leg.far.ip : this.leg.phone.ip
    if (s.once.first(`tcp-framing ${src}`)) {
      s.opts.log.warn({ code: shortCode('E316_TCP_FRAMING'), phone: ep(this.leg.phone), far: ep(this.leg.far), why: e.message },
        'SIP/TCP framing broken; both legs closed (logged once per source per minute)')
    }
    this.abort()
  }

  /** Both legs reset (counted under `counter` when given). */
  abort (counter?: string, e?: NodeJS.ErrnoException): void {
    if (this.closed) return
    this.closed = true
    if (counter !== undefined) this.splice.opts.core.counters.inc(counter)
    if (e !== undefined) this.splice.opts.log.debug({ phone: ep(this.leg.phone), far: ep(this.leg.far), err: e.code ?? e.message }, 'SIP/TCP leg failed; the other one is reset')
    for (const s of [this.phoneSock, this.farSock]) if (!s.destroyed) s.resetAndDestroy()
  }

  private closedOne (): void {
    if (this.phoneSock.destroyed && this.farSock.destroyed) this.splice.forget(this)
    else if (!this.closed) {
      // One leg is gone. If its FIN was passed on, the other finishes its own close; otherwise it
      // has nowhere to send and goes too.
      const other = this.phoneSock.destroyed ? this.farSock : this.phoneSock
      if (!other.writableEnded) other.destroy()
    }
  }

  status (now: number): ConnectionStatus {
    return {
      direction: this.leg.direction,
      phone: ep(this.leg.phone),
      far: ep(this.leg.far),
      ageSeconds: Math.round((now - this.startedAt) / 1000),
      messagesOut: this.messagesOut,
      messagesIn: this.messagesIn,
      notSip: this.notSip
    }
  }
}

export class TcpSplice {
  readonly once: OncePerMinute
  private readonly live = new Set<Connection>()
  private readonly perHost = new Map<string, number>()
  private readonly hostOf = new Map<Connection, string>()
  private readonly now: () => number

  constructor (readonly opts: SpliceOptions) {
    this.now = opts.now ?? Date.now
    this.once = new OncePerMinute(this.now)
  }

  get size (): number { return this.live.size }

  /** An accepted (diverted) connection: its local address is the original destination. */
  accept (sock: Socket): void {
    const remote = { ip: sock.remoteAddress ?? '', port: sock.remotePort ?? 0 }
    const local = { ip: sock.localAddress ?? '', port: sock.localPort ?? 0 }
    if (remote.ip === '' || local.ip === '') { sock.destroy(); return }
    // IPv4-mapped forms never appear on the AF_INET listener, but tests may use a dual-stack one.
    remote.ip = remote.ip.replace(/^::ffff:/, '')
    local.ip = local.ip.replace(/^::ffff:/, '')
    const { isInside, limits, core } = this.opts
    const remoteInside = isInside(remote.ip)
    const direction: Direction | 'transit' = remoteInside === isInside(local.ip) ? 'transit' : remoteInside ? 'outbound' : 'inbound'
    const phone = direction === 'inbound' ? local : remote
    const far = direction === 'inbound' ? remote : local
    const host = phone.ip
    core.counters.inc('tcp_connections')
    if (this.live.size >= limits.connections) return this.refuse(sock, 'limit_total', host, `${limits.connections} connections in total`)
    if ((this.perHost.get(host) ?? 0) >= limits.connectionsPerHost) return this.refuse(sock, 'limit_host', host, `${limits.connectionsPerHost} connections from ${host}`)
    let upstream: Socket | null
    try {
      upstream = this.open(direction, phone, far)
    } catch (e) {
      return this.refuse(sock, 'upstream', host, (e as Error).message)
    }
    if (upstream === null) return this.refuse(sock, 'signalling', host, 'no public signalling port free')
    sock.on('error', () => { /* handled by the Connection; never an uncaught error */ })
    // Inbound, the accepted socket is the far end's and the upstream leg goes to the phone.
    const [phoneSock, farSock] = direction === 'inbound' ? [upstream, sock] : [sock, upstream]
    const conn = new Connection(this, { phone, far, transport: 'tcp', direction }, phoneSock, farSock, this.now())
    this.live.add(conn)
    this.hostOf.set(conn, host)
    this.perHost.set(host, (this.perHost.get(host) ?? 0) + 1)
  }

  /** The other leg, its connect under way; null when the phone has no public port to bind. */
  private open (direction: Direction | 'transit', phone: Endpoint, far: Endpoint): Socket | null {
    const { connect, limits, core, publicIp } = this.opts
    const connectTimeoutMs = limits.connectTimeoutMs
    if (direction === 'outbound') {
      const port = core.publicPort(phone)
      if (port === null) return null
      try {
        return connect({ to: far, from: { ip: publicIp, port }, connectTimeoutMs })
      } catch {
        // The port is taken on the gateway itself (a local listener): any port still carries the
        // connection; its responses come back on it whatever the Via says.
        core.counters.inc('tcp_upstream_port_fallback')
        return connect({ to: far, from: { ip: publicIp, port: 0 }, connectTimeoutMs })
      }
    }
    // Inbound, and inside → inside: transparent, so the answering side sees the caller's own address
    // (an ephemeral port: the caller's own would collide in conntrack with the DNATed connection).
    return connect({ to: direction === 'inbound' ? phone : far, from: { ip: direction === 'inbound' ? far.ip : phone.ip, port: 0 }, transparent: true, connectTimeoutMs })
  }

  private refuse (sock: Socket, why: string, host: string, detail: string): void {
    this.refused(why, host, detail)
    sock.on('error', () => {})
    sock.resetAndDestroy()
  }

  refused (why: string, host: string, detail: string): void {
    this.opts.core.counters.inc(`tcp_refused_${why.replace(/-/g, '_')}`)
    if (this.once.first(`tcp-refused ${host}`)) {
      this.opts.log.warn({ code: shortCode('E317_TCP_REFUSED'), src: host, why: detail }, 'SIP/TCP connection refused (logged once per source per minute)')
    }
  }

  forget (c: Connection): void {
    if (!this.live.delete(c)) return
    const host = this.hostOf.get(c) ?? ''
    this.hostOf.delete(c)
    const n = (this.perHost.get(host) ?? 1) - 1
    if (n <= 0) this.perHost.delete(host); else this.perHost.set(host, n)
  }

  status (): ConnectionStatus[] {
    const now = this.now()
    return [...this.live].map(c => c.status(now))
  }

  /** sipalg stopping: every leg is reset (the phones reconnect; media stays in the kernel). */
  closeAll (): void {
    for (const c of this.live) c.abort()
  }
}
