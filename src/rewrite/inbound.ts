// Inbound (outside → inside phone): undo what outbound wrote, for addresses naming one of our
// signalling mappings. The far end's SDP is read, never changed.
import type { UriHostPort } from '../sip/uri.js'
import { locateUriHost } from '../sip/uri.js'
import { parseNameAddr } from '../sip/address.js'
import { defaultViaPort } from '../sip/via.js'
import { summarizeSdp } from '../sdp/parse.js'
import { locateSdp } from './body.js'
import { type RewriteRun, formatHostPort } from './run.js'

type Handler = (run: RewriteRun) => void

function restoreTarget (run: RewriteRun, target: UriHostPort | undefined, field: string): void {
  if (target === undefined || target.port === null || target.host !== run.ctx.publicIp) return
  const defaultPort = target.scheme === 'sips' ? 5061 : 5060
  const publicPort = target.port ?? defaultPort
  const phone = run.ctx.lookupSignalling(publicPort)
  if (phone === null) { run.note(`${field} names ${run.ctx.publicIp}:${publicPort}, which is no mapping of ours`); return }
  const after = formatHostPort(phone.ip, phone.port, target.port !== undefined, defaultPort)
  run.edit(target.hostStart, target.hostPortEnd, after, field, run.msg.text.slice(target.hostStart, target.hostPortEnd), after)
}

function restoreRequestUri (run: RewriteRun): void {
  const { msg } = run
  if (msg.isRequest) restoreTarget(run, locateUriHost(msg.text, msg.requestUriStart, msg.requestUriEnd), 'Request-URI')
}

function restoreTo (run: RewriteRun): void {
  restoreTarget(run, run.msg.to?.target, 'To')
}

/** From names our mapping only in responses to a request whose From we rewrote (rewrite_from_to). */
function restoreFrom (run: RewriteRun): void {
  if (run.ctx.rewriteFromTo === true && !run.msg.isRequest) restoreTarget(run, run.msg.from?.target, 'From')
}

/** A response's top Via is the one outbound rewrote: give the phone back its own sent-by. */
function restoreResponseVia (run: RewriteRun): void {
  const { msg, ctx } = run
  const via = msg.topVia
  if (msg.isRequest || via === undefined || via.port === null || via.host !== ctx.publicIp) return
  const defaultPort = defaultViaPort(via.transport)
  const publicPort = via.port ?? defaultPort
  const phone = ctx.lookupSignalling(publicPort)
  if (phone === null) { run.note(`Via names ${ctx.publicIp}:${publicPort}, which is no mapping of ours`); return }
  const after = formatHostPort(phone.ip, phone.port, via.port !== undefined, defaultPort)
  run.edit(via.sentByStart, via.sentByEnd, after, 'Via', msg.text.slice(via.sentByStart, via.sentByEnd), after)
  // The far end filled in what it saw (our public side); the phone should see its own side.
  for (const p of via.params) {
    if (p.name === 'received' && p.value === ctx.publicIp) {
      run.edit(p.valueStart, p.valueEnd, phone.ip, 'Via received', ctx.publicIp, phone.ip)
    } else if (p.name === 'rport' && p.value === String(publicPort)) {
      run.edit(p.valueStart, p.valueEnd, String(phone.port), 'Via rport', p.value, String(phone.port))
    }
  }
}

/**
 * Route (in-dialog requests) and Record-Route (echoed in responses) entries naming one of our public
 * mappings are what outbound wrote for an inside proxy: give it its own address back, so it
 * recognises its entries.
 */
function restoreRoutes (run: RewriteRun): void {
  for (const name of ['route', 'record-route']) {
    for (const r of run.msg.valueRanges(name)) {
      restoreTarget(run, parseNameAddr(run.msg.text, r)?.target, name === 'route' ? 'Route' : 'Record-Route')
    }
  }
}

function readSdp (run: RewriteRun): void {
  const body = locateSdp(run)
  if (body !== undefined) run.sdp = summarizeSdp(body.sdp)
}

const INBOUND_HANDLERS: readonly Handler[] = [restoreRequestUri, restoreResponseVia, restoreRoutes, restoreFrom, restoreTo, readSdp]

export function rewriteInbound (run: RewriteRun): void {
  for (const handler of INBOUND_HANDLERS) handler(run)
}
