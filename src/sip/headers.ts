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
