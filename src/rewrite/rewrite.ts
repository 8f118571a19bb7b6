// Entry points of the pure rewrite engine. No I/O, no state between calls: every side effect
// (choosing ports, installing mappings) happens in the caller's callbacks.
import type { SipMessage } from '../sip/message.js'
import { rewriteInbound } from './inbound.js'
import { rewriteOutbound } from './outbound.js'
import { RewriteRun } from './run.js'
import type { Direction, RewriteContext, RewriteResult } from './types.js'

/**
 * Rewrite one parsed message: outbound.ts and inbound.ts hold the per-field handlers. Never throws:
 * a failure returns the input untouched, so SIP keeps flowing even past a bug here.
 */
export function rewriteMessage (msg: SipMessage, direction: Direction, ctx: RewriteContext): RewriteResult {
  // A message whose extent is unknown is passed as it came: rewriting its headers while its
  // Content-Length stays wrong would only hand the far end a differently broken message.
  const framing = msg.framing
  if (!framing.ok) return unchanged(msg.raw, 'malformed', framing.problem)
  try {
    const run = new RewriteRun(msg, ctx)
    if (direction === 'outbound') rewriteOutbound(run)
    else rewriteInbound(run)
    return run.finish(direction)
  } catch (err) {
    return unchanged(msg.raw, 'malformed', `rewrite failed: ${(err as Error)?.message ?? String(err)}`)
  }
}

function unchanged (bytes: Buffer, leftAlone: RewriteResult['leftAlone'], detail: string): RewriteResult {
  return { bytes, changed: false, leftAlone, detail, changes: [], media: [] }
}
