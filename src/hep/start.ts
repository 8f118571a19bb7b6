// Wires the HEP export into the daemon (src/cli/run.ts): one sender per `hep` config key, fed by the
// ALG's onSip, its counters in the ALG's (so `sipalg status` and the metrics show hep_sent and
// hep_errors), its trouble in the log at most once a minute.

import type { Logger } from 'pino'
import type { Alg } from '../alg.js'
import type { Config } from '../config.js'
import { HepSender } from './sender.js'
import { shortCode } from '../errors.js'

/** `algOf`: the daemon's current Alg; `attach` wires a new one (a gateway pair's role change replaces it). */
export function startHep (cfg: Config, algOf: () => Alg, log: Logger): { sender: HepSender, attach: (alg: Alg) => void } | null {
  if (cfg.hep === null) return null
  const sender = new HepSender({
    url: cfg.hep,
    captureId: cfg.hepId,
    authKey: cfg.hepPassword,
    counters: { inc: (name: string, by?: number) => { algOf().counters.inc(name, by) } },
    warn: why => { log.warn({ code: shortCode('E313_HEP_UNREACHABLE'), hep: cfg.hep, why }, 'HEP copies are not reaching the collector (SIP is unaffected; counted in hep_errors; logged once a minute)') }
  })
  const attach = (alg: Alg): void => {
    alg.onSip = hop => { sender.send(hop) }
    // A new Alg (role change) starts its counters afresh: an idle exporter still shows as 0.
    alg.counters.inc('hep_sent', 0)
    alg.counters.inc('hep_errors', 0)
  }
  attach(algOf())
  log.info({ hep: cfg.hep, hepId: cfg.hepId }, 'copying SIP to the HEP collector')
  return { sender, attach }
}
