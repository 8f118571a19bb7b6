// The per-message decision of the dialog layer, as a method table in the shape of the kernel's
// SIP helper (net/netfilter/nf_conntrack_sip.c, sip_handlers[]): one request handler and one
// response handler per method. Requests are looked up by their method, responses by their CSeq
// method. A call's message takes the same steps around its handler (CallTable.messageSeen before:
// far signalling address and far SDP recorded; CallTable.messageDone after: the phone's SDP,
// streams retired when an offer/answer exchange completes, kernel elements updated).
//
// Offer/answer (RFC 3264) completes with: a 2xx to INVITE or UPDATE; an ACK carrying its sender's
// SDP (the answer to an offer in the 2xx: late offer); a PRACK carrying the first SDP its sender
// sends in the call (the answer to an offer in a reliable 1xx, RFC 3262); a 2xx to PRACK with SDP
// (the answer to an offer the PRACK made).

import type { CallTable, Call, SipFacts, Tracked } from './calls.js'
import type { RegistrationTable } from './registrations.js'
import type { SignallingUse } from '../media/signalling.js'

export interface Dialogs { calls: CallTable, registrations: RegistrationTable }

/** One message on its way through a handler. */
export interface Dispatch extends Dialogs {
  m: Tracked
  /** The message's call (undefined for REGISTER and for messages of no tracked call). */
  call: Call | undefined
  /** Whether the message's sender had sent SDP in this call before this message. */
  senderSentSdpBefore: boolean
}

/** A handler returns true when its message completes an offer/answer exchange. */
type Handler = (d: Dispatch) => boolean | undefined
interface SipHandlers { request?: Handler, response?: Handler }
type CallStep = (calls: CallTable, call: Call, d: Dispatch) => boolean | undefined

/** A call method's handler: runs on the message's call, nothing without one. */
const inCall = (step: CallStep): Handler => d => (d.call === undefined ? undefined : step(d.calls, d.call, d))

const isSuccess = (msg: SipFacts): boolean => msg.statusCode !== undefined && msg.statusCode >= 200 && msg.statusCode < 300
const carriesSdp = (d: Dispatch): boolean => (d.m.phoneSent ? d.m.phoneMedia.length > 0 : d.m.farSdp !== undefined)

// ---- The handlers (true: the message completes an offer/answer exchange) ----

/** Any request inside an established call shows it is alive: its timeout starts again. */
const keepAlive = inCall((calls, call) => { calls.keepAlive(call); return undefined })

/** 2xx: the answering dialog is confirmed. An error final ends a call still ringing (a failed re-INVITE leaves it). */
const inviteAnswered = inCall((calls, call, d) => {
  if (isSuccess(d.m.msg)) { calls.confirm(call, d.m); return true }
  const code = d.m.msg.statusCode ?? 0
  if (code >= 300 && call.state === 'early') calls.end(call, `final ${code}`)
  return undefined
})

/** An ACK with its sender's SDP answers an offer made in the 2xx (late offer). */
const ack = inCall((calls, call, d) => { calls.keepAlive(call); return carriesSdp(d) })

const bye = inCall((calls, call, d) => { calls.end(call, d.m.phoneSent ? 'bye from phone' : 'bye from far end'); return undefined })

/** The 487 (or a 2xx that crossed the CANCEL) settles the call; without one, the ring timeout does. */
const cancel = inCall((calls, call) => { calls.cancelled(call); calls.keepAlive(call); return undefined })

const answered = inCall((_calls, _call, d) => isSuccess(d.m.msg))

/** The first SDP a side sends in a PRACK answers the offer of a reliable 1xx (RFC 3262); later ones are offers. */
const prack = inCall((calls, call, d) => { calls.keepAlive(call); return carriesSdp(d) && !d.senderSentSdpBefore })

/** A 2xx to PRACK with SDP answers an offer the PRACK made. */
const prackAnswered = inCall((_calls, _call, d) => isSuccess(d.m.msg) && carriesSdp(d))

const registerSent: Handler = d => { if (d.m.phoneSent) d.registrations.requested(d.m); return undefined }
const registerAnswered: Handler = d => { if (!d.m.phoneSent) d.registrations.answered(d.m); return undefined }

/** Methods not listed: an in-dialog request keeps its call alive, a response changes nothing. */
const IN_DIALOG: SipHandlers = { request: keepAlive }

export const SIP_HANDLERS: Readonly<Record<string, SipHandlers>> = {
  // An initial INVITE began its call before the rewrite (isInitialInvite); a re-INVITE keeps it alive.
  INVITE: { request: keepAlive, response: inviteAnswered },
  ACK: { request: ack },
  BYE: { request: bye },
  CANCEL: { request: cancel },
  UPDATE: { request: keepAlive, response: answered },
  PRACK: { request: prack, response: prackAnswered },
  INFO: IN_DIALOG,
  OPTIONS: IN_DIALOG,
  MESSAGE: IN_DIALOG,
  REGISTER: { request: registerSent, response: registerAnswered }
}

const ended = (call: Call): boolean => call.state === 'ended'

/** A request that starts a call: an INVITE outside any dialog (no To tag). */
export function isInitialInvite (msg: SipFacts): boolean {
  return msg.isRequest && msg.method === 'INVITE' && msg.toTag === undefined
}

/** Runs one message (after the rewriter) through its method's handler and the call's steps around it. */
export function track (dialogs: Dialogs, call: Call | undefined, m: Tracked): void {
  const method = m.msg.isRequest ? m.msg.method : m.msg.cseq?.method
  const entry = (method === undefined ? undefined : SIP_HANDLERS[method]) ?? IN_DIALOG
  const handler = m.msg.isRequest ? entry.request : entry.response
  if (call === undefined || ended(call)) {
    handler?.({ calls: dialogs.calls, registrations: dialogs.registrations, m, call: undefined, senderSentSdpBefore: false })
    return
  }
  const senderSentSdpBefore = m.phoneSent ? call.phoneSdp !== null : call.farMedia.size > 0
  const stateBefore = call.state
  const farMediaChanged = dialogs.calls.messageSeen(call, m)
  const completes = handler?.({ calls: dialogs.calls, registrations: dialogs.registrations, m, call, senderSentSdpBefore }) === true
  if (ended(call)) return // BYE, or an error final while ringing
  dialogs.calls.messageDone(call, m, completes, farMediaChanged || call.state !== stateBefore)
}

/** Methods of INVITE dialogs: a port that carries only these serves calls, not a registered phone. */
const CALL_METHODS = new Set(['INVITE', 'ACK', 'BYE', 'CANCEL', 'PRACK', 'UPDATE', 'INFO', 'REFER'])

/**
 * What a message sent from a phone's port says about that port (src/media/signalling.ts): an
 * initial INVITE starts a call on it, other call methods serve a call, anything else (REGISTER,
 * OPTIONS pings, SUBSCRIBE/NOTIFY, MESSAGE) makes it a long-lived port.
 */
export function signallingUse (msg: SipFacts): SignallingUse {
  if (isInitialInvite(msg)) return 'call-start'
  const method = msg.isRequest ? msg.method : msg.cseq?.method
  return method !== undefined && CALL_METHODS.has(method) ? 'call' : 'long-lived'
}
