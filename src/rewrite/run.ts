// State of one rewrite: the editor, the change log and the mapping decisions, shared by the
// per-header handlers so each handler stays a few lines long.
import { ByteEditor, insertInOrder } from '../sip/editor.js'
import type { SipMessage } from '../sip/message.js'
import type {
  Change, Direction, Endpoint, LeftAloneReason, MediaMapping, RewriteContext, RewriteResult, SdpSummary
} from './types.js'

/** How an address in a message relates to the sender. */
export type AddressClass = 'map' | 'public' | 'other-inside'

interface PositionedChange extends Change { at: number }

export class RewriteRun {
  readonly msg: SipMessage
  readonly ctx: RewriteContext
  readonly editor: ByteEditor
  readonly media: MediaMapping[] = []
  signalling: { private: Endpoint, publicPort: number } | undefined
  sdp: SdpSummary | undefined
  private readonly changes: PositionedChange[] = []
  private readonly notes: string[] = []
  private leftAlone: LeftAloneReason | undefined
  private readonly asked: Array<Endpoint & { publicPort: number | null }> = []
  private otherInsideSeen: Set<string> | undefined

  constructor (msg: SipMessage, ctx: RewriteContext) {
    this.msg = msg
    this.ctx = ctx
    this.editor = new ByteEditor(msg.raw)
  }

  /**
   * Only the sender's own address is mapped: an inside host naming *another* inside host must not
   * get a mapping opened toward it (a phone could otherwise open the gateway toward any inside host
   * by writing its address into SDP), unless the sender is a trusted inside proxy.
   */
  classify (ip: string): AddressClass {
    // The same address appears five or six times in a typical INVITE: ask isInside once.
    if (ip === this.lastIp) return this.lastClass
    this.lastIp = ip
    this.lastClass = this.classifyUncached(ip)
    return this.lastClass
  }

  private lastIp = ''
  private lastClass: AddressClass = 'public'

  private classifyUncached (ip: string): AddressClass {
    // IPv6 is never rewritten: an inside IPv6 host is reachable as it is (nothing to NAT), so a
    // bracketed host or an IP6 SDP address stays as written even when it is inside.
    if (ip === '0.0.0.0' || ip.includes(':') || !this.ctx.isInside(ip)) return 'public'
    if (ip === this.ctx.phone.ip || this.ctx.trustedProxy === true) return 'map'
    this.otherInsideSeen ??= new Set()
    if (!this.otherInsideSeen.has(ip)) {
      this.otherInsideSeen.add(ip)
      this.note(`${ip} is another inside host than the sender ${this.ctx.phone.ip}; left as written`)
    }
    return 'other-inside'
  }

  get namedOtherInsideHost (): boolean { return this.otherInsideSeen !== undefined }

  /** Public signalling port for a private endpoint, asked once per endpoint per message. */
  publicPortFor (priv: Endpoint): number | null {
    // Via and Contact name the same endpoint in nearly every message: a short list, no key strings.
    for (const a of this.asked) if (a.ip === priv.ip && a.port === priv.port) return a.publicPort
    let port = this.ctx.mapSignalling(priv)
    if (port !== null && !isPort(port)) port = null
    this.asked.push({ ip: priv.ip, port: priv.port, publicPort: port })
    if (port === null) this.leave('refused', `signalling mapping for ${priv.ip}:${priv.port} refused`)
    else this.signalling ??= { private: { ip: priv.ip, port: priv.port }, publicPort: port }
    return port
  }

  /** Replace raw[start,end) and log the change; before/after are what a person reads. */
  edit (start: number, end: number, text: string, field: string, before: string, after: string): boolean {
    if (end > start && end - start === text.length && this.msg.text.startsWith(text, start)) return false // no-op
    if (!this.editor.replace(start, end, text)) {
      this.note(`${field}: overlapping edit skipped`)
      return false
    }
    // In message order as they come, equal positions in the order made.
    insertInOrder(this.changes, { field, before, after, at: start }, (a, b) => a.at > b.at)
    return true
  }

  note (detail: string): void { this.notes.push(detail) }

  /** Record why (part of) the message was left alone; the first reason wins. */
  leave (reason: LeftAloneReason, detail: string): void {
    this.leftAlone ??= reason
    this.note(detail)
  }

  finish (direction: Direction): RewriteResult {
    const bytes = this.editor.serialize(this.msg.text)
    const changed = bytes !== this.msg.raw
    let leftAlone = this.leftAlone
    if (leftAlone === undefined && !changed) {
      if (this.namedOtherInsideHost) leftAlone = 'refused'
      else leftAlone = direction === 'outbound' ? 'already-public' : 'no-private-address'
    }
    const changes = this.changes.map(c => ({ field: c.field, before: c.before, after: c.after }))
    const result: RewriteResult = { bytes, changed, changes, media: this.media }
    if (leftAlone !== undefined) result.leftAlone = leftAlone
    if (this.notes.length > 0) result.detail = this.notes.join('; ')
    if (this.signalling !== undefined) result.signalling = this.signalling
    if (this.sdp !== undefined) result.sdp = this.sdp
    return result
  }
}

export function isPort (n: unknown): n is number {
  return typeof n === 'number' && Number.isInteger(n) && n > 0 && n <= 65535
}

/** host[:port]; the port is omitted only when the original omitted it and it is the default. */
export function formatHostPort (ip: string, port: number, originalHadPort: boolean, defaultPort: number): string {
  return originalHadPort || port !== defaultPort ? `${ip}:${port}` : ip
}
