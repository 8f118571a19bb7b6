// The two sockets of the SIP/TCP splice that Node's `net` cannot make by itself (it has no setsockopt):
// a listener with IP_TRANSPARENT that accepts the connections src/netfilter/tproxy.ts diverts to it, and
// an upstream leg that may use a source address the gateway does not own. The addon (native/tcp.c)
// makes the socket; Node takes the fd over and from then on it is an ordinary net.Server / net.Socket.
// What Node can and cannot do with these fds, and what they cost: docs/tcp-splice.md.
import { Server, Socket } from 'node:net'
import { loadNative, toSipalgError } from './native.js'

export interface Endpoint { ip: string, port: number }

export interface TransparentListenOptions {
  /** local port the tproxy rule sends connections to */
  port: number
  /** default: any address (the tproxy rule names only the port) */
  ip?: string
  /** listen backlog, default 511 like Node's */
  backlog?: number
}

/**
 * A net.Server listening on a transparent socket. Each accepted socket's localAddress:localPort is the
 * connection's original destination (after any DNAT), remoteAddress:remotePort its real source.
 * Sockets are half-open capable (allowHalfOpen): a FIN from one side must cross the splice without
 * closing the other direction.
 * Throws E207 (port taken), E200 (no CAP_NET_ADMIN), E201 (addon missing).
 */
export async function listenTransparent (opts: TransparentListenOptions, onConnection?: (s: Socket) => void): Promise<Server> {
  const where = `${opts.ip ?? '0.0.0.0'}:${opts.port}`
  const fd = callNative(`listen for diverted SIP/TCP on ${where}`,
    n => n.tcpListen(opts.ip ?? null, opts.port, opts.backlog ?? 511, true))
  const server = new Server({ noDelay: true, allowHalfOpen: true }, onConnection)
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen({ fd }, () => { server.off('error', reject); resolve() })
  })
  return server
}

export interface UpstreamOptions {
  to: Endpoint
  /** source address and port (port 0: any); default the kernel's choice of both */
  from?: Endpoint
  /** bind `from` even when it is not an address of this host (IP_TRANSPARENT); its replies must be
   * routed back here, which the `socket transparent` rule of src/netfilter/tproxy.ts does */
  transparent?: boolean
  /** give up when the connection is not up after this many ms: 'error' with code ETIMEDOUT (without
   * it a far end that drops SYNs takes the kernel's ~2 minutes of SYN retries) */
  connectTimeoutMs?: number
}

/**
 * An upstream TCP leg whose connect() is already under way. Writes made now are held by Node until the
 * connection is up; a failed connect arrives as an 'error' event (ECONNREFUSED, ETIMEDOUT, EHOSTUNREACH).
 * Node emits no 'connect' for it, and write callbacks are no sign either (one can report success after
 * the connect failed); `remoteAddress` is: getpeername() answers only once the connection is up, so a
 * single check at the deadline is the connect timeout. Half-open capable like the accepted sockets.
 * Throws E207 when the socket cannot even be bound (e.g. a transparent source address already in use).
 */
export function connectUpstream (opts: UpstreamOptions): Socket {
  const from = opts.from ?? { ip: '', port: 0 }
  const fd = callNative(`open an upstream leg from ${from.ip || '*'}:${from.port} to ${opts.to.ip}:${opts.to.port}`,
    n => n.tcpConnect(from.ip || null, from.port, opts.to.ip, opts.to.port, opts.transparent === true))
  const sock = new Socket({ fd, readable: true, writable: true, allowHalfOpen: true })
  if (opts.connectTimeoutMs !== undefined) {
    const timer = setTimeout(() => {
      if (sock.remoteAddress !== undefined || sock.destroyed) return
      const err = Object.assign(new Error(`connect to ${opts.to.ip}:${opts.to.port} timed out after ${opts.connectTimeoutMs} ms`), { code: 'ETIMEDOUT' })
      sock.destroy(err)
    }, opts.connectTimeoutMs)
    timer.unref()
    sock.once('close', () => clearTimeout(timer))
  }
  return sock
}

function callNative (what: string, fn: (n: ReturnType<typeof loadNative>) => number): number {
  try {
    return fn(loadNative())
  } catch (err) {
    throw toSipalgError(err, { what })
  }
}
