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
//   public signalling port, the one the rewritten Via/Contact advertise. It is opened only once the
//   phone's first bytes show whether the stream is SIP: a stream that is not takes no signalling port
//   (any port), a connection that never says anything opens nothing upstream.
// - inbound (far end → a registered phone's public port, DNATed to the phone by the registration's
//   peer_dnat/any_dnat element before the divert): the upstream leg to the phone is transparent,
//   bound to the far end's own address, so the phone sees its registrar.
// - IPv6 (firewall mode, nothing is NATed): transparent both ways, so neither side sees the gateway.
//   Outbound the far leg is bound to the phone's own address (an ephemeral port: its own would be the
//   accepted connection's 4-tuple, one conntrack entry for two connections), inbound to the far end's.
//   The messages take the IPv6 datagram's path in the ALG: read for pinholes, never rewritten.
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
import { looksIpv6 } from '../ip6.js'
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
  /** outbound, before the far leg exists: the phone's keep-alives, written once it does */
  private unsent: Buffer[] = []
  private unsentBytes = 0
  private readonly fromPhone: SipStreamFramer
  private readonly fromFar: SipStreamFramer

  /** `farSock` null: an outbound connection whose far leg waits for the phone's first bytes (TcpSplice.dial). */
  constructor (private readonly splice: TcpSplice, readonly leg: Omit<MessageLeg, 'direction'> & { direction: Direction | 'transit' },
    private readonly phoneSock: Socket, private farSock: Socket | null, now: number) {
    this.startedAt = now
    const limits = splice.opts.limits
    this.fromPhone = new SipStreamFramer(limits)
    this.fromFar = new SipStreamFramer(limits)
    // Between two inside hosts (or two outside ones) there is nothing to translate: bytes as they come.
    if (leg.direction === 'transit') { this.notSip = true; this.held = null }
    this.wire(phoneSock, true)
    if (farSock !== null) this.wire(farSock, false)
    phoneSock.setTimeout(limits.idleMs, () => { this.abort('tcp_idle_closed') })
  }

  private wire (s: Socket, isPhone: boolean): void {
    // The originator of the connection (the accepted leg) decides whether it is SIP.
    const originator = (this.leg.direction === 'inbound') !== isPhone
    s.on('data', (b: Buffer) => { if (originator) this.fromOriginator(b, isPhone); else this.fromAnswerer(b, isPhone) })
    // A FIN crosses as a FIN: the other direction stays open (both sockets are half-open capable).
    // A phone that ends before its far leg exists has sent nothing worth a connection.
    s.on('end', () => { const other = isPhone ? this.farSock : this.phoneSock; if (other === null) s.end(); else if (!other.destroyed) other.end() })
    // The leg sipalg opened: the phone's inbound, the far end's otherwise.
    const opened = originator === false
    s.on('error', (e: NodeJS.ErrnoException) => { this.abort(opened && CONNECT_FAILED.has(e.code ?? '') ? 'tcp_upstream_failed' : 'tcp_reset', e) })
    s.on('close', () => { this.closedOne() })
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
    if (fromPhone && this.farSock === null && !this.dial(chunks)) return
    const to = fromPhone ? this.farSock : this.phoneSock
    if (to === null || to.destroyed || !to.writable) return
    // One write per read, not per message: a socket write is a syscall (pipelined messages come many to a read).
    to.write(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks))
  }

  /**
   * Outbound: the far leg, once the phone's stream is known to be SIP or not. Until then (only
   * keep-alives so far) the chunks wait, bounded. False: nothing to write to (yet, or ever).
   */
  private dial (chunks: Buffer[]): boolean {
    if (!this.notSip && this.fromPhone.verdict === 'start') {
      for (const c of chunks) { this.unsent.push(c); this.unsentBytes += c.length }
      if (this.unsentBytes > MAX_HELD_BYTES) this.framingError(new FramingError('header-too-long', 'keep-alives without a message'))
      return false
    }
    const far = this.splice.dial(this, !this.notSip)
    if (far === null) return false
    this.farSock = far
    this.wire(far, false)
    if (this.unsent.length > 0) chunks.unshift(...this.unsent.splice(0))
    return true
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
    for (const s of [this.phoneSock, this.farSock]) if (s !== null && !s.destroyed) s.resetAndDestroy()
  }

  private closedOne (): void {
    if (this.phoneSock.destroyed && (this.farSock === null || this.farSock.destroyed)) this.splice.forget(this)
    else if (!this.closed) {
      // One leg is gone. If its FIN was passed on, the other finishes its own close; otherwise it
      // has nowhere to send and goes too.
      const other = this.phoneSock.destroyed ? this.farSock : this.phoneSock
      if (other !== null && !other.writableEnded) other.destroy()
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
    // Outbound, the far leg waits for the phone's first bytes (dial); the others are opened now.
    let upstream: Socket | null = null
    if (direction !== 'outbound') {
      try {
        upstream = this.openTransparent(direction, phone, far)
      } catch (e) {
        return this.refuse(sock, 'upstream', host, (e as Error).message)
      }
    }
    sock.on('error', () => { /* handled by the Connection; never an uncaught error */ })
    // Inbound, the accepted socket is the far end's and the upstream leg goes to the phone.
    const [phoneSock, farSock] = direction === 'inbound' ? [upstream as Socket, sock] : [sock, upstream]
    const conn = new Connection(this, { phone, far, transport: 'tcp', direction }, phoneSock, farSock, this.now())
    this.live.add(conn)
    this.hostOf.set(conn, host)
    this.perHost.set(host, (this.perHost.get(host) ?? 0) + 1)
  }

  /**
   * Outbound: the far leg, its connect under way, once the phone's first bytes are known. A SIP
   * stream binds the phone's public signalling port (the one its rewritten Via/Contact advertise);
   * any other stream takes any port and no mapping. An IPv6 phone's leg is transparent from the
   * phone's own address instead (nothing to map). Null (the connection is reset, counted) when no
   * signalling port is free or the socket cannot be made.
   */
  dial (c: Connection, sip: boolean): Socket | null {
    const { connect, limits, core, publicIp } = this.opts
    const { phone, far } = c.leg
    const connectTimeoutMs = limits.connectTimeoutMs
    const ipv6 = looksIpv6(phone.ip)
    const port = ipv6 || !sip ? 0 : core.publicPort(phone)
    if (port === null) { this.refused('signalling', phone.ip, 'no public signalling port free'); c.abort(); return null }
    try {
      if (ipv6) return this.openTransparent('outbound', phone, far)
      try {
        return connect({ to: far, from: { ip: publicIp, port }, connectTimeoutMs })
      } catch (e) {
        if (port === 0) throw e
        // The port is taken on the gateway itself (a local listener): any port still carries the
        // connection; its responses come back on it whatever the Via says.
        core.counters.inc('tcp_upstream_port_fallback')
        return connect({ to: far, from: { ip: publicIp, port: 0 }, connectTimeoutMs })
      }
    } catch (e) {
      this.refused('upstream', phone.ip, (e as Error).message)
      c.abort()
      return null
    }
  }

  /** Inbound, inside → inside, and an IPv6 phone's outbound: the other leg, transparent, its connect under way. */
  private openTransparent (direction: Direction | 'transit', phone: Endpoint, far: Endpoint): Socket {
    const { connect, limits } = this.opts
    // The answering side sees the caller's own address (an ephemeral port: the caller's own would
    // collide in conntrack with the DNATed connection, or for IPv6 be the accepted one's very tuple).
    return connect({ to: direction === 'inbound' ? phone : far, from: { ip: direction === 'inbound' ? far.ip : phone.ip, port: 0 }, transparent: true, connectTimeoutMs: limits.connectTimeoutMs })
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
