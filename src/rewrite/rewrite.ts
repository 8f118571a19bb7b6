// Entry points of the pure rewrite engine. No I/O, no state between calls: every side effect
// (choosing ports, installing mappings) happens in the caller's callbacks.
import { classifyDatagram, parseSip, type SipMessage } from '../sip/message.js'
import { rewriteInbound } from './inbound.js'
import { rewriteOutbound } from './outbound.js'
import { RewriteRun } from './run.js'
import type { Direction, RewriteContext, RewriteResult } from './types.js'

/** Rewrite one parsed message (spec §3). Never throws: a failure returns the input untouched. */
export function rewriteMessage (msg: SipMessage, direction: Direction, ctx: RewriteContext): RewriteResult {
  try {
    const run = new RewriteRun(msg, ctx)
    if (direction === 'outbound') rewriteOutbound(run)
    else rewriteInbound(run)
    return run.finish(direction)
  } catch (err) {
    return unchanged(msg.raw, 'malformed', `rewrite failed: ${(err as Error)?.message ?? String(err)}`)
  }
}

/** Triage, parse and rewrite one datagram: keepalives and non-SIP come back untouched. */
export function rewriteDatagram (buf: Buffer, direction: Direction, ctx: RewriteContext): RewriteResult {
  const kind = classifyDatagram(buf)
  if (kind === 'keepalive') return unchanged(buf, 'keepalive', 'keepalive')
  if (kind === 'not-sip') return unchanged(buf, 'not-sip', 'start line is not SIP')
  const parsed = parseSip(buf)
  if (!parsed.ok) return unchanged(buf, 'not-sip', parsed.reason)
  return rewriteMessage(parsed.msg, direction, ctx)
}

function unchanged (bytes: Buffer, leftAlone: RewriteResult['leftAlone'], detail: string): RewriteResult {
  return { bytes, changed: false, leftAlone, detail, changes: [], media: [] }
}
