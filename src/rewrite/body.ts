// Where the SDP is, and keeping Content-Length true after the body changed.
import { parseSdp, type ParsedSdp } from '../sdp/parse.js'
import type { RewriteRun } from './run.js'

export interface LocatedSdp { sdp: ParsedSdp, start: number, end: number, declared: number | undefined }

/**
 * The SDP body, when the message has one whose extent is unambiguous. A bad or oversized
 * Content-Length leaves the body's end unknown, so the body is then not touched (§5).
 */
export function locateSdp (run: RewriteRun): LocatedSdp | undefined {
  const msg = run.msg
  const available = msg.raw.length - msg.bodyStart
  if (available === 0) return undefined
  const typeField = msg.firstField('content-type')
  const type = typeField === undefined ? undefined : msg.text.slice(typeField.valueStart, typeField.valueEnd)
  if (type !== undefined) {
    const semi = type.indexOf(';')
    if ((semi < 0 ? type : type.slice(0, semi)).trim().toLowerCase() !== 'application/sdp') return undefined
  } else if (!msg.text.startsWith('v=', msg.bodyStart)) return undefined
  let lengthFields = 0
  for (const f of msg.fields) if (f.name === 'content-length') lengthFields++
  if (lengthFields > 1) {
    run.leave('malformed', 'several Content-Length headers; body left as written')
    return undefined
  }
  const declared = msg.contentLength
  if (declared === 'bad') {
    run.leave('malformed', 'Content-Length is not a number; body left as written')
    return undefined
  }
  if (declared !== undefined && declared > available) {
    run.leave('malformed', `Content-Length ${declared} exceeds the ${available} body bytes; body left as written`)
    return undefined
  }
  // Bytes past a smaller Content-Length are not part of the message (RFC 3261 §18.3); kept as is.
  const end = msg.bodyStart + (declared ?? available)
  return { sdp: parseSdp(msg.text, msg.bodyStart, end), start: msg.bodyStart, end, declared }
}

/** Rewrite (or add) Content-Length to match the edited body; its form (l: or long) is kept. */
export function fixContentLength (run: RewriteRun, body: LocatedSdp): void {
  const delta = run.editor.deltaWithin(body.start, body.end)
  if (delta === 0) return
  const length = body.end - body.start + delta
  const field = run.msg.firstField('content-length')
  if (field !== undefined) {
    const before = run.msg.text.slice(field.valueStart, field.valueEnd)
    run.edit(field.valueStart, field.valueEnd, String(length), 'Content-Length', before, String(length))
  } else {
    run.edit(run.msg.headerEnd, run.msg.headerEnd, `Content-Length: ${length}${run.msg.eol}`, 'Content-Length', '', String(length))
  }
}
