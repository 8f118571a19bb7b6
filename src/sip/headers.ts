// Header names: SIP allows one-letter compact forms (RFC 3261 §7.3.3 and later RFCs) and is
// case-insensitive, so every lookup goes through one canonical lower-case long name.

const COMPACT_FORMS: Record<string, string> = {
  a: 'accept-contact',
  b: 'referred-by',
  c: 'content-type',
  d: 'request-disposition',
  e: 'content-encoding',
  f: 'from',
  i: 'call-id',
  j: 'reject-contact',
  k: 'supported',
  l: 'content-length',
  m: 'contact',
  n: 'identity-info',
  o: 'event',
  r: 'refer-to',
  s: 'subject',
  t: 'to',
  u: 'allow-events',
  v: 'via',
  x: 'session-expires',
  y: 'identity'
}

/** Lower-case long form of a header name, whichever form was written. */
export function canonicalHeaderName (name: string): string {
  let canonical = seenNames.get(name)
  if (canonical === undefined) {
    const lower = name.toLowerCase()
    canonical = lower.length === 1 ? COMPACT_FORMS[lower] ?? lower : lower
    // Names repeat from message to message; remembering them saves a lower-casing per header.
    if (seenNames.size < 4096) seenNames.set(name, canonical)
  }
  return canonical
}

const seenNames = new Map<string, string>()

/** Names as phones and proxies write them, by length: matched in place, without a slice or a hash. */
const AS_WRITTEN: ReadonlyArray<ReadonlyArray<readonly [string, string]>> = (() => {
  const names = ['Via', 'From', 'To', 'Call-ID', 'CSeq', 'Contact', 'Content-Type', 'Content-Length', 'Max-Forwards',
    'User-Agent', 'Allow', 'Supported', 'Record-Route', 'Route', 'Expires', 'Server', 'Allow-Events', 'Session-Expires',
    'Min-SE', 'Require', 'Accept', 'Authorization', 'Proxy-Authorization', 'WWW-Authenticate', 'Event', 'Date', 'Reason',
    'P-Asserted-Identity', 'Privacy', 'RSeq', 'RAck', 'v', 'f', 't', 'i', 'm', 'l', 'c', 'k']
  const byLength: Array<Array<readonly [string, string]>> = []
  for (const n of names) (byLength[n.length] ??= []).push([n, canonicalHeaderName(n)])
  return byLength
})()

/** canonicalHeaderName of text[start,end), for names written the usual way without allocating. */
export function canonicalHeaderNameAt (text: string, start: number, end: number): string {
  const candidates = AS_WRITTEN[end - start]
  if (candidates !== undefined) for (const [written, canonical] of candidates) if (text.startsWith(written, start)) return canonical
  return canonicalHeaderName(text.slice(start, end))
}

// Only these headers are comma-separated lists. Others (auth challenges, Date, User-Agent...)
// contain commas that are not separators, so splitting them would corrupt their values.
const LIST_HEADERS = new Set([
  'via', 'contact', 'route', 'record-route', 'path', 'service-route', 'allow', 'supported',
  'require', 'proxy-require', 'unsupported', 'accept', 'accept-encoding', 'accept-language',
  'allow-events', 'content-encoding', 'in-reply-to', 'alert-info', 'call-info', 'error-info',
  'p-asserted-identity', 'p-preferred-identity', 'accept-contact', 'reject-contact',
  'request-disposition', 'security-client', 'security-server', 'security-verify', 'reason'
])

export function isListHeader (canonicalName: string): boolean {
  return LIST_HEADERS.has(canonicalName)
}
