// The SIP/TCP part of `sipalg run`: the interception (src/netfilter/tproxy.ts), the transparent
// listener and the splice (src/tcp/splice.ts), started after the table exists and taken away on stop.
// sipalg owns the interception: what it added at start it removes at stop (`sipalg rules uninstall`
// removes it too, after a crash).
import type { Server } from 'node:net'
import type { Logger } from 'pino'
import type { Alg } from '../alg.js'
import { insideOf, type Config } from '../config.js'
import { DEFAULT_TPROXY, divertScript, installInterception, removeInterception, type TproxySpec } from '../netfilter/tproxy.js'
import { connectUpstream, listenTransparent } from '../netfilter/transparent.js'
import { TcpSplice, type ConnectionStatus } from './splice.js'
import { shortCode } from '../errors.js'

export interface TcpService {
  connections: () => ConnectionStatus[]
  /** The nft commands of the divert chain (for the ruleset watch to check it is still there). */
  divertScript: string
  /** Puts the interception back (after sipalg's table was removed by someone else and re-created). */
  reinstall: () => void
  stop: () => void
}

export function tproxySpec (cfg: Config): TproxySpec {
  return { table: cfg.table, sipPorts: cfg.sipPorts, listenPort: cfg.tcpListenPort, ...DEFAULT_TPROXY }
}

/** Starts SIP over TCP; `beforeWrite` applies the kernel changes a message about to be written relies on. */
/** `algOf`: the daemon's current Alg (a gateway pair's role change replaces it, src/cli/role.ts). */
export async function startTcp (cfg: Config, algOf: () => Alg, log: Logger, beforeWrite: () => void): Promise<TcpService> {
  const spec = tproxySpec(cfg)
  const l = cfg.tcpLimits
  const splice = new TcpSplice({
    core: { processMessage: (b, leg) => algOf().processMessage(b, leg), publicPort: p => algOf().signalling.allocateAndInstall(p), counters: { inc: (name, by) => { algOf().counters.inc(name, by) } } },
    isInside: insideOf(cfg),
    publicIp: cfg.public as string,
    limits: { connections: l.connections, connectionsPerHost: l.connectionsPerHost, idleMs: l.idle * 1000, connectTimeoutMs: l.connectTimeout, maxHeaderBytes: l.maxHeaderBytes, maxBodyBytes: l.maxBodyBytes },
    nonSip: cfg.tcpNonSip,
    beforeWrite,
    connect: connectUpstream,
    log
  })
  // The listener first: the interception then never diverts to a port nobody accepts on.
  const server: Server = await listenTransparent({ port: cfg.tcpListenPort }, s => { splice.accept(s) })
  server.on('error', e => { log.warn({ code: shortCode('E207_TRANSPARENT_SOCKET'), err: e.message }, 'SIP/TCP listener error') })
  let record
  try {
    record = installInterception(spec)
  } catch (e) {
    server.close()
    throw e
  }
  log.info({ ports: cfg.sipPorts, listen: cfg.tcpListenPort }, 'SIP over TCP spliced')
  return {
    connections: () => splice.status(),
    divertScript: divertScript(spec),
    reinstall: () => {
      try { installInterception(spec) } catch (e) { log.warn({ code: shortCode('E305_HEAL_FAILED'), what: 'the SIP/TCP interception', err: (e as Error).message }, 'could not put back the SIP/TCP interception') }
    },
    stop: () => {
      // Legs drop (the phones reconnect); media of live calls stays in the kernel.
      server.close()
      splice.closeAll()
      try { removeInterception(spec, record) } catch (e) { log.warn({ code: shortCode('E208_POLICY_ROUTING'), err: (e as Error).message }, 'could not remove the SIP/TCP interception') }
    }
  }
}
