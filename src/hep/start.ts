// Wires the HEP export into the daemon (src/cli/run.ts): one sender per `hep` config key, fed by the
// ALG's onSip, its counters in the ALG's (so `sipalg status` and the metrics show hep_sent and
// hep_errors), its trouble in the log at most once a minute.

import type { Logger } from 'pino'
import type { Alg } from '../alg.js'
import type { Config } from '../config.js'
import { HepSender } from './sender.js'
import { shortCode } from '../errors.js'

export function startHep (cfg: Config, alg: Alg, log: Logger): HepSender | null {
  if (cfg.hep === null) return null
  const sender = new HepSender({
    url: cfg.hep,
    captureId: cfg.hepId,
    authKey: cfg.hepPassword,
    counters: alg.counters,
    warn: why => { log.warn({ code: shortCode('E313_HEP_UNREACHABLE'), hep: cfg.hep, why }, 'HEP copies are not reaching the collector (SIP is unaffected; counted in hep_errors; logged once a minute)') }
  })
  alg.onSip = hop => { sender.send(hop) }
  log.info({ hep: cfg.hep, hepId: cfg.hepId }, 'copying SIP to the HEP collector')
  return sender
}
