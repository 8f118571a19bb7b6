// Where the SDP is, and keeping Content-Length true after the body changed.
import { parseSdp, summarizeSdp, type ParsedSdp } from '../sdp/parse.js'
import type { HeaderField, SipMessage } from '../sip/message.js'
import type { SdpSummary } from '../sdp/types.js'
import type { RewriteRun } from './run.js'

export interface LocatedSdp { sdp: ParsedSdp, start: number, end: number, lengthFields: HeaderField[] }

/**
 * The SDP body within the message's framing (rewriteMessage has already refused a message whose
 * framing is invalid). Bytes past a smaller Content-Length are no part of the message (RFC 3261
 * 18.3: a receiver discards them), so they are neither read nor changed, only kept.
 */
export function locateSdp (run: RewriteRun): LocatedSdp | undefined {
  return locateSdpIn(run.msg, detail => { run.note(detail) })
}

/** The SDP of a message that is read, never rewritten (an IPv6 phone's: src/alg.ts). */
export function sdpSummaryOf (msg: SipMessage): SdpSummary | undefined {
  const body = locateSdpIn(msg, () => {})
  return body === undefined ? undefined : summarizeSdp(body.sdp)
}

const SDP_TYPE = 'application/sdp'

/** Whether a Content-Type value text[start,end) is application/sdp (any case, parameters ignored). */
function isSdpType (text: string, start: number, end: number): boolean {
  // The value as nearly everyone writes it, compared in place; anything else the long way.
  if (end - start === SDP_TYPE.length && text.startsWith(SDP_TYPE, start)) return true
  const type = text.slice(start, end)
  const semi = type.indexOf(';')
  return (semi < 0 ? type : type.slice(0, semi)).trim().toLowerCase() === SDP_TYPE
}

function locateSdpIn (msg: SipMessage, note: (detail: string) => void): LocatedSdp | undefined {
  const framing = msg.framing
  if (!framing.ok || framing.bodyEnd === msg.bodyStart) return undefined
  const typeField = msg.firstField('content-type')
  if (typeField !== undefined) {
    if (!isSdpType(msg.text, typeField.valueStart, typeField.valueEnd)) return undefined
  } else if (!msg.text.startsWith('v=', msg.bodyStart)) return undefined
  const end = framing.bodyEnd
  if (end < msg.raw.length) note(`${msg.raw.length - end} bytes past Content-Length kept as written`)
  return { sdp: parseSdp(msg.text, msg.bodyStart, end), start: msg.bodyStart, end, lengthFields: framing.lengthFields }
}

/**
 * Content-Length follows the edited body, in every copy and in the form written (l: or long).
 * Without one the datagram frames the body (UDP), so none is added.
 */
export function fixContentLength (run: RewriteRun, body: LocatedSdp): void {
  const delta = run.editor.deltaWithin(body.start, body.end)
  if (delta === 0) return
  const length = String(body.end - body.start + delta)
  for (const field of body.lengthFields) {
    run.edit(field.valueStart, field.valueEnd, length, 'Content-Length', run.msg.text.slice(field.valueStart, field.valueEnd), length)
  }
}
