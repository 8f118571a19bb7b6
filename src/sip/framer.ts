// SIP over TCP arrives as a byte stream: a message may span segments, several may share one. This
// framer turns the stream of one direction of a connection back into whole messages, cut by
// Content-Length after the header block (RFC 3261 18.3: on a stream transport a missing
// Content-Length means an empty body), and passes CRLF / CRLFCRLF keep-alives (RFC 5626) between
// messages through as their own units, untouched.
//
// Guards: the first bytes of a stream must be a SIP start line, or the whole stream is declared
// not-SIP and never parsed again (a SIP-looking message later in an HTTP stream must open nothing);
// header bytes without an end and declared body sizes are capped, and a breach is a FramingError after
// which the stream cannot be trusted (the splice closes both legs).
//
// Units are subarrays of the bytes pushed (no copy when a chunk holds whole messages); a partial
// message is kept and joined with the next chunk.
import { classifyDatagram } from './message.js'

export interface FramerLimits {
  /** bytes of start line + headers allowed before the empty line that ends them */
  maxHeaderBytes: number
  /** largest Content-Length accepted */
  maxBodyBytes: number
}

export const DEFAULT_FRAMER_LIMITS: FramerLimits = { maxHeaderBytes: 16 * 1024, maxBodyBytes: 64 * 1024 }

export type FramingErrorCode = 'header-too-long' | 'body-too-long' | 'bad-content-length' | 'bad-start-line'

export class FramingError extends Error {
  readonly code: FramingErrorCode
  constructor (code: FramingErrorCode, detail: string) {
    super(`${code}: ${detail}`)
    this.code = code
  }
}

export type FrameUnit =
  /** one whole SIP message: bytes = headers (with the empty line) + body */
  | { kind: 'message', bytes: Buffer, headerLength: number, bodyLength: number }
  /** CR/LF bytes between messages, to pass on unchanged */
  | { kind: 'keepalive', bytes: Buffer }
  /** the stream did not start as SIP: these bytes and all later ones are to be passed on unparsed */
  | { kind: 'not-sip', bytes: Buffer }
  /** the stream broke a framing rule; nothing more comes out of this framer */
  | { kind: 'error', error: FramingError }

const CR = 0x0d
const LF = 0x0a

type State = 'start' | 'sip' | 'not-sip' | 'failed'

export class SipStreamFramer {
  private readonly limits: FramerLimits
  private buf: Buffer = Buffer.alloc(0)
  private state: State = 'start'
  /** where the search for the end of the current header block resumes */
  private scanFrom = 0
  /** header length and body length of the message at buf[0], once its headers are complete */
  private pending: { headerLength: number, bodyLength: number } | null = null
  /** the start line of the message at the scan position has been checked already */
  private startLineOk = false

  constructor (limits: Partial<FramerLimits> = {}) {
    this.limits = { ...DEFAULT_FRAMER_LIMITS, ...limits }
  }

  /** Bytes held back waiting for the rest of a message. */
  get buffered (): number { return this.buf.length }

  /** 'sip' once a first start line was seen, 'not-sip' / 'failed' are final. */
  get verdict (): State { return this.state }

  /** Feed the next chunk of the stream; returns the units it completed, in stream order. */
  push (chunk: Buffer): FrameUnit[] {
    if (this.state === 'failed') return []
    if (this.state === 'not-sip') return chunk.length > 0 ? [{ kind: 'not-sip', bytes: chunk }] : []
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk])
    const out: FrameUnit[] = []
    let at = 0
    for (;;) {
      const n = this.next(at, out)
      if (n === 0) break
      at += n
    }
    this.buf = this.buf.subarray(at)
    this.scanFrom = Math.max(0, this.scanFrom - at)
    if (this.state !== 'sip' && this.state !== 'start') this.buf = Buffer.alloc(0)
    return out
  }

  /** Emits at most one unit starting at buf[at]; returns the bytes it consumed (0: need more). */
  private next (at: number, out: FrameUnit[]): number {
    const b = this.buf
    if (at >= b.length) return 0
    if (this.pending === null) {
      let k = at
      while (k < b.length && (b[k] === CR || b[k] === LF)) k++
      if (k > at) {
        out.push({ kind: 'keepalive', bytes: b.subarray(at, k) })
        this.scanFrom = k
        return k - at
      }
      const headers = this.findHeaderEnd(at)
      if (headers === 'need-more') return 0
      if (headers instanceof FramingError) return this.fail(out, headers, b.length - at)
      if (headers === 'not-sip') {
        out.push({ kind: 'not-sip', bytes: b.subarray(at) })
        this.state = 'not-sip'
        return b.length - at
      }
      this.pending = headers
    }
    const { headerLength, bodyLength } = this.pending
    const total = headerLength + bodyLength
    if (b.length - at < total) return 0
    out.push({ kind: 'message', bytes: b.subarray(at, at + total), headerLength, bodyLength })
    this.pending = null
    this.startLineOk = false
    this.scanFrom = at + total
    return total
  }

  private fail (out: FrameUnit[], error: FramingError, rest: number): number {
    out.push({ kind: 'error', error })
    this.state = 'failed'
    return rest
  }

  /**
   * For the message starting at buf[at]: its header length and declared body length, 'need-more',
   * 'not-sip' (first message of the stream only) or a FramingError.
   */
  private findHeaderEnd (at: number): { headerLength: number, bodyLength: number } | 'need-more' | 'not-sip' | FramingError {
    const b = this.buf
    const firstLf = b.indexOf(LF, at)
    const lineEnd = firstLf < 0 ? b.length : firstLf
    // The start line is checked as soon as it is complete, before any header is waited for, and a
    // beginning that no start line has (binary, TLS) is refused before its line ends.
    if (!couldStartSip(b, at, lineEnd)) {
      if (this.state === 'start') return 'not-sip'
      return new FramingError('bad-start-line', JSON.stringify(b.toString('latin1', at, Math.min(lineEnd, at + 60))))
    }
    if (firstLf < 0 || lineEnd - at > this.limits.maxHeaderBytes) {
      if (lineEnd - at <= this.limits.maxHeaderBytes) return 'need-more'
      if (this.state === 'start') return 'not-sip'
      return new FramingError('header-too-long', `start line longer than ${this.limits.maxHeaderBytes} bytes`)
    }
    if (!this.startLineOk && classifyDatagram(b.subarray(at, firstLf + 1)) !== 'sip') {
      if (this.state === 'start') return 'not-sip'
      return new FramingError('bad-start-line', JSON.stringify(b.toString('latin1', at, Math.min(firstLf, at + 60))))
    }
    this.state = 'sip'
    this.startLineOk = true
    // End of headers: a line terminator followed by an empty line (CRLF CRLF, or bare LFs as some
    // phones write them, which src/sip/message.ts accepts as well).
    let i = Math.max(this.scanFrom, firstLf)
    for (;;) {
      i = b.indexOf(LF, i)
      if (i < 0 || i - at >= this.limits.maxHeaderBytes) {
        const seen = (i < 0 ? b.length : i) - at
        if (seen >= this.limits.maxHeaderBytes) {
          return new FramingError('header-too-long', `no end of headers within ${this.limits.maxHeaderBytes} bytes`)
        }
        // Resume a few bytes back: the terminator may be split across chunks.
        this.scanFrom = Math.max(at, b.length - 3)
        return 'need-more'
      }
      if (i + 1 < b.length && b[i + 1] === LF) return this.withBody(at, i + 2)
      if (i + 2 < b.length && b[i + 1] === CR && b[i + 2] === LF) return this.withBody(at, i + 3)
      if (i + 2 >= b.length && (i + 1 >= b.length || b[i + 1] === CR)) {
        this.scanFrom = i
        return 'need-more'
      }
      i++
    }
  }

  private withBody (at: number, bodyStart: number): { headerLength: number, bodyLength: number } | FramingError {
    const bodyLength = declaredLength(this.buf.toString('latin1', at, bodyStart))
    if (bodyLength instanceof FramingError) return bodyLength
    if (bodyLength > this.limits.maxBodyBytes) {
      return new FramingError('body-too-long', `Content-Length ${bodyLength} over the limit of ${this.limits.maxBodyBytes}`)
    }
    return { headerLength: bodyStart - at, bodyLength }
  }
}

const MAX_METHOD = 32

/** RFC 3261 token characters (a method name). */
function isTokenChar (c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) ||
    c === 0x2d || c === 0x2e || c === 0x21 || c === 0x25 || c === 0x2a || c === 0x5f || c === 0x2b ||
    c === 0x60 || c === 0x27 || c === 0x7e
}

/** Whether b[at, end) can still be the beginning of a request line (`METHOD SP`) or status line. */
function couldStartSip (b: Buffer, at: number, end: number): boolean {
  const status = 'SIP/2.0 '
  let k = 0
  while (k < status.length && at + k < end && b[at + k] === status.charCodeAt(k)) k++
  if (k === status.length || at + k === end) return true
  let i = at
  while (i < end && i - at <= MAX_METHOD && isTokenChar(b[i])) i++
  if (i === end) return i - at <= MAX_METHOD
  return i > at && i - at <= MAX_METHOD && b[i] === 0x20
}

const LENGTH_HEADER = /^(?:content-length|l)[ \t]*:(.*)$/gim

/** The Content-Length (or compact `l`) of a header block; 0 when absent; duplicates must agree. */
export function declaredLength (headers: string): number | FramingError {
  let found: number | undefined
  // Folded header values (a line starting with SP/HT continues the previous one) are joined first.
  const text = /\n[ \t]/.test(headers) ? headers.replace(/\r?\n[ \t]+/g, ' ') : headers
  // The start line cannot match: it has no colon right after a header name.
  for (const m of text.matchAll(LENGTH_HEADER)) {
    const value = m[1].trim()
    if (!/^\d{1,10}$/.test(value)) return new FramingError('bad-content-length', JSON.stringify(value.slice(0, 40)))
    const n = Number(value)
    if (found !== undefined && found !== n) return new FramingError('bad-content-length', `${found} and ${n} both declared`)
    found = n
  }
  return found ?? 0
}
