// Byte-preserving SIP message model. The datagram is read once as latin1 (one char per byte),
// the header lines are indexed once, and everything else (Via, Contact, tags) is parsed lazily
// from those offsets. Nothing here re-serializes: edits go through ByteEditor.
import { parseNameAddr, type NameAddr } from './address.js'
import { canonicalHeaderName, canonicalHeaderNameAt, isListHeader } from './headers.js'
import { type Range, HT, SP, paramValue, skipLws, splitList, trimEnd } from './text.js'
import { type Via, parseVia } from './via.js'

export interface HeaderField {
  /** Canonical lower-case long name ("v" → "via"). */
  name: string
  /** Value range; spans continuation lines when the header is folded. */
  valueStart: number
  valueEnd: number
  /** Offset just past this field's last line terminator. */
  lineEnd: number
}

export interface ContactEntry {
  /** "Contact: *" (unregister all). */
  star: boolean
  uri: string
  /** expires= parameter of this entry. */
  expires: number | undefined
  address: NameAddr | undefined
}

/** The body's extent, or why it cannot be known. */
export type Framing =
  | { ok: true, declared: number | undefined, bodyEnd: number, lengthFields: HeaderField[] }
  | { ok: false, problem: string }

export type ParseResult = { ok: true, msg: SipMessage } | { ok: false, reason: string }

class NotSip extends Error {}

interface StartLine {
  isRequest: boolean
  method: string
  requestUriStart: number
  requestUriEnd: number
  statusCode: number
  reasonPhrase: string
  lineEnd: number
  eol: '\r\n' | '\n'
}

// RFC 3261 token characters, used for the method name.
const TOKEN = (() => {
  const t = new Uint8Array(128)
  for (const c of 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`\'~') t[c.charCodeAt(0)] = 1
  return t
})()

/**
 * The start line must begin at offset 0: SIP text found later in a datagram (an HTTP body sent to
 * port 5060, the NAT-slipstreaming trick) is not SIP. Throws NotSip with the reason.
 */
function parseStartLine (text: string): StartLine {
  const nl = text.indexOf('\n')
  if (nl < 0) throw new NotSip('no complete start line')
  const crlf = nl > 0 && text.charCodeAt(nl - 1) === 0x0d
  const end = crlf ? nl - 1 : nl
  const eol = crlf ? '\r\n' : '\n'
  if (text.startsWith('SIP/2.0 ')) {
    if (end < 11) throw new NotSip('truncated status line')
    const code = Number(text.slice(8, 11))
    if (!/^[1-6]\d\d$/.test(text.slice(8, 11)) || (end > 11 && text.charCodeAt(11) !== SP)) throw new NotSip('bad status code')
    return {
      isRequest: false, method: '', requestUriStart: 0, requestUriEnd: 0,
      statusCode: code, reasonPhrase: text.slice(Math.min(12, end), end), lineEnd: nl + 1, eol
    }
  }
  let i = 0
  while (i < end && text.charCodeAt(i) < 128 && TOKEN[text.charCodeAt(i)] === 1) i++
  if (i === 0 || i >= end || text.charCodeAt(i) !== SP) throw new NotSip('start line is neither a SIP request nor a status line')
  const method = text.slice(0, i)
  const uriStart = i + 1
  const uriEnd = text.indexOf(' ', uriStart)
  if (uriEnd < 0 || uriEnd >= end || uriEnd === uriStart) throw new NotSip('request line has no Request-URI')
  if (text.slice(uriEnd + 1, end) !== 'SIP/2.0') throw new NotSip('request line does not end in SIP/2.0')
  const colon = text.indexOf(':', uriStart)
  if (colon < 0 || colon >= uriEnd) throw new NotSip('Request-URI has no scheme')
  return {
    isRequest: true, method, requestUriStart: uriStart, requestUriEnd: uriEnd,
    statusCode: 0, reasonPhrase: '', lineEnd: nl + 1, eol
  }
}

export class SipMessage {
  readonly raw: Buffer
  /** raw as latin1: text offsets are byte offsets. */
  readonly text: string
  readonly isRequest: boolean
  readonly method: string
  readonly requestUriStart: number
  readonly requestUriEnd: number
  readonly statusCode: number
  readonly reasonPhrase: string
  /** Line terminator of the start line; used for anything the rewriter has to add. */
  readonly eol: '\r\n' | '\n'
  readonly fields: HeaderField[] = []
  /** Offset of the blank line that ends the headers. */
  readonly headerEnd: number
  readonly bodyStart: number

  private cachedVia: Via | undefined | null = null
  private cachedContacts: ContactEntry[] | null = null
  private cachedFraming: Framing | null = null

  constructor (raw: Buffer) {
    this.raw = raw
    const text = this.text = raw.toString('latin1')
    const start = parseStartLine(text)
    this.isRequest = start.isRequest
    this.method = start.method
    this.requestUriStart = start.requestUriStart
    this.requestUriEnd = start.requestUriEnd
    this.statusCode = start.statusCode
    this.reasonPhrase = start.reasonPhrase
    this.eol = start.eol

    let pos = start.lineEnd
    let headerEnd = -1
    let bodyStart = -1
    const len = text.length
    while (pos < len) {
      let nl = text.indexOf('\n', pos)
      if (nl < 0) nl = len // last line without terminator: still a line, but no blank line follows
      const contentEnd = nl > pos && text.charCodeAt(nl - 1) === 0x0d ? nl - 1 : nl
      if (contentEnd === pos) { // blank line
        headerEnd = pos
        bodyStart = Math.min(nl + 1, len)
        break
      }
      const first = text.charCodeAt(pos)
      if (first === SP || first === HT) { // folded continuation of the previous header
        const prev = this.fields[this.fields.length - 1]
        if (prev === undefined) throw new NotSip('continuation line before any header')
        prev.valueEnd = trimEnd(text, prev.valueStart, contentEnd)
        prev.lineEnd = nl + 1
      } else {
        const colon = text.indexOf(':', pos)
        if (colon < 0 || colon > contentEnd) throw new NotSip('header line without colon')
        const nameEnd = trimEnd(text, pos, colon)
        for (let k = pos; k < nameEnd; k++) {
          const c = text.charCodeAt(k)
          if (c >= 128 || TOKEN[c] !== 1) throw new NotSip('bad header name')
        }
        if (nameEnd === pos) throw new NotSip('empty header name')
        const valueStart = skipLws(text, colon + 1, contentEnd)
        this.fields.push({
          name: canonicalHeaderNameAt(text, pos, nameEnd), valueStart,
          valueEnd: trimEnd(text, valueStart, contentEnd), lineEnd: nl + 1
        })
      }
      pos = nl + 1
    }
    if (headerEnd < 0) throw new NotSip('no blank line after the headers')
    const nul = raw.indexOf(0)
    if (nul >= 0 && nul < headerEnd && !nulsAreQuotedPairs(text, start.lineEnd, headerEnd)) throw new NotSip('NUL byte in the headers outside a quoted string')
    this.headerEnd = headerEnd
    this.bodyStart = bodyStart
  }

  /** The bytes after the blank line, past Content-Length included (see `framing`). */
  get body (): Buffer { return this.raw.subarray(this.bodyStart) }

  firstField (canonical: string): HeaderField | undefined {
    for (const f of this.fields) if (f.name === canonical) return f
    return undefined
  }

  /** Value ranges of a header across all its lines, split at commas for list headers. */
  valueRanges (name: string): Range[] {
    const canonical = canonicalHeaderName(name)
    const list = isListHeader(canonical)
    const out: Range[] = []
    for (const f of this.fields) {
      if (f.name !== canonical) continue
      if (list) for (const r of splitList(this.text, f.valueStart, f.valueEnd)) out.push(r)
      else out.push({ start: f.valueStart, end: f.valueEnd })
    }
    return out
  }

  /** valueRanges(name)[0] without splitting the header's other lines (the top Via of many). */
  firstValueRange (name: string): Range | undefined {
    const canonical = canonicalHeaderName(name)
    const list = isListHeader(canonical)
    for (const f of this.fields) {
      if (f.name !== canonical) continue
      if (!list) return { start: f.valueStart, end: f.valueEnd }
      const first = splitList(this.text, f.valueStart, f.valueEnd)[0]
      if (first !== undefined) return first
    }
    return undefined
  }

  /** First value of a header (long or compact name), folding collapsed to one space. */
  header (name: string): string | undefined {
    const r = this.firstValueRange(name)
    return r === undefined ? undefined : this.valueText(r)
  }

  private valueText (r: Range): string {
    const s = this.text.slice(r.start, r.end)
    return s.includes('\n') ? s.replace(/\r?\n[ \t]+/g, ' ') : s
  }

  get callId (): string | undefined { return this.header('call-id') }

  get fromTag (): string | undefined { return this.tagOf('from') }
  get toTag (): string | undefined { return this.tagOf('to') }

  private tagOf (name: string): string | undefined {
    const r = this.firstValueRange(name)
    if (r === undefined) return undefined
    const a = parseNameAddr(this.text, r)
    const tag = a === undefined ? undefined : paramValue(a.params, 'tag')
    return typeof tag === 'string' ? tag : undefined
  }

  get from (): NameAddr | undefined { return this.nameAddrOf('from') }
  get to (): NameAddr | undefined { return this.nameAddrOf('to') }

  private nameAddrOf (name: string): NameAddr | undefined {
    const r = this.firstValueRange(name)
    return r === undefined ? undefined : parseNameAddr(this.text, r)
  }

  get cseq (): { seq: number, method: string } | undefined {
    const v = this.header('cseq')
    const m = v === undefined ? null : /^(\d{1,10})\s+([A-Za-z0-9\-.!%*_+`'~]+)$/.exec(v)
    if (m === null) return undefined
    return { seq: Number(m[1]), method: m[2] }
  }

  /** Declared Content-Length: undefined when absent, 'bad' when the framing is invalid. */
  get contentLength (): number | 'bad' | undefined {
    const f = this.framing
    return f.ok ? f.declared : 'bad'
  }

  /**
   * Where the body ends. Over UDP the datagram frames the message, so a missing Content-Length
   * means "the rest of the datagram". A Content-Length that is not a number, disagrees with another
   * one, or promises more bytes than arrived leaves the message's extent unknown: nothing in it can
   * be rewritten safely (see rewriteMessage in src/rewrite/rewrite.ts).
   */
  get framing (): Framing {
    if (this.cachedFraming === null) this.cachedFraming = this.readFraming()
    return this.cachedFraming
  }

  private readFraming (): Framing {
    const lengthFields: HeaderField[] = []
    let declared: number | undefined
    for (const f of this.fields) {
      if (f.name !== 'content-length') continue
      const value = this.text.slice(f.valueStart, f.valueEnd)
      if (!/^\d{1,9}$/.test(value)) return { ok: false, problem: `Content-Length "${value.slice(0, 20)}" is not a length` }
      const n = Number(value)
      // The same value twice (a proxy that appended a copy) still frames the message; two values do not.
      if (declared !== undefined && n !== declared) return { ok: false, problem: `Content-Length ${declared} and ${n} disagree` }
      declared = n
      lengthFields.push(f)
    }
    const available = this.raw.length - this.bodyStart
    if (declared === undefined) return { ok: true, declared, bodyEnd: this.raw.length, lengthFields }
    if (declared > available) return { ok: false, problem: `Content-Length ${declared} exceeds the ${available} body bytes that arrived` }
    return { ok: true, declared, bodyEnd: this.bodyStart + declared, lengthFields }
  }

  get expires (): number | undefined {
    const v = this.header('expires')
    return v !== undefined && /^\d{1,10}$/.test(v) ? Number(v) : undefined
  }

  get topVia (): Via | undefined {
    if (this.cachedVia === null) {
      const r = this.firstValueRange('via')
      this.cachedVia = r === undefined ? undefined : parseVia(this.text, r)
    }
    return this.cachedVia
  }

  get contacts (): ContactEntry[] {
    if (this.cachedContacts === null) {
      this.cachedContacts = []
      for (const r of this.valueRanges('contact')) {
        if (this.text.slice(r.start, r.end) === '*') {
          this.cachedContacts.push({ star: true, uri: '*', expires: undefined, address: undefined })
          continue
        }
        const a = parseNameAddr(this.text, r)
        if (a === undefined) continue
        const exp = paramValue(a.params, 'expires')
        this.cachedContacts.push({
          star: false,
          uri: a.uri,
          expires: typeof exp === 'string' && /^\d{1,10}$/.test(exp) ? Number(exp) : undefined,
          address: a
        })
      }
    }
    return this.cachedContacts
  }
}

/** Parse a datagram as SIP. Never throws: any failure, expected or not, is { ok: false }. */
export function parseSip (buf: Buffer): ParseResult {
  try {
    if (buf.length === 0) return { ok: false, reason: 'empty datagram' }
    return { ok: true, msg: new SipMessage(buf) }
  } catch (err) {
    return { ok: false, reason: err instanceof NotSip ? err.message : `parser error: ${(err as Error)?.message ?? String(err)}` }
  }
}

/**
 * RFC 3261's quoted-pair lets a quoted string carry any byte but CR and LF, NUL included (RFC 4475's
 * "intmeth" message has one in a display name). A NUL anywhere else in the headers is no SIP.
 */
function nulsAreQuotedPairs (text: string, start: number, end: number): boolean {
  let inQuote = false
  for (let i = start; i < end; i++) {
    const c = text.charCodeAt(i)
    if (c === 0x0a) {
      // A new header line (not a folded continuation) starts outside any quoted string.
      const next = text.charCodeAt(i + 1)
      if (next !== SP && next !== HT) inQuote = false
    } else if (inQuote) {
      if (c === 0x5c) i++
      else if (c === 0x22) inQuote = false
      else if (c === 0) return false
    } else if (c === 0x22) inQuote = true
    else if (c === 0) return false
  }
  return true
}

const STUN_MAGIC_COOKIE = 0x2112a442

export type DatagramKind = 'sip' | 'keepalive' | 'not-sip'

/** Cheap triage before parsing: keepalives (RFC 5626 CRLF, STUN) pass untouched. */
export function classifyDatagram (buf: Buffer): DatagramKind {
  const n = buf.length
  if ((n === 2 || n === 4) && buf[0] === 0x0d && buf[1] === 0x0a && (n === 2 || (buf[2] === 0x0d && buf[3] === 0x0a))) return 'keepalive'
  if (n >= 20 && (buf[0] & 0xc0) === 0 && buf.readUInt32BE(4) === STUN_MAGIC_COOKIE && buf.readUInt16BE(2) + 20 === n) return 'keepalive'
  if (n === 0) return 'not-sip'
  try {
    // Only the first line is needed to tell; decode at most that much.
    let nl = buf.indexOf(0x0a)
    if (nl < 0) return 'not-sip'
    if (nl > 8192) nl = 8192
    parseStartLine(buf.toString('latin1', 0, nl + 1))
    return 'sip'
  } catch {
    return 'not-sip'
  }
}
