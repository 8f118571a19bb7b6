// The dialog layer driven as the ALG drives it, without the packet path: real SIP text through the
// real parser and rewriter (so the phone's media mappings and the far SDP are what they would be),
// then the method table. Phone 10.0.1.23:5060 behind 203.0.113.1, far end 203.0.113.9.
import { MappingTable, type MapOp } from '../../src/media/mappings.js'
import { MediaPortPool } from '../../src/media/ports.js'
import { CallTable, type Call, type CallPolicy, type FarStream, type SeenFlow, type Stream } from '../../src/dialog/calls.js'
import { RegistrationTable, type Registration } from '../../src/dialog/registrations.js'
import { isInitialInvite, track } from '../../src/dialog/methods.js'
import { rewriteMessage } from '../../src/rewrite/rewrite.js'
import type { Endpoint } from '../../src/rewrite/types.js'
import { makeCtx, parsed } from '../fixtures/helpers.js'

export const A = '10.0.1.23'; export const B = '203.0.113.9'; export const C = '203.0.113.10'; export const PUB = '203.0.113.1'
export const PHONE: Endpoint = { ip: A, port: 5060 }

const crlf = (s: string): string => s.replace(/\r?\n/g, '\r\n')

export const sdp = (ip: string, port: number, extra = ''): string => `v=0
o=- 1 1 IN IP4 ${ip}
s=-
c=IN IP4 ${ip}
t=0 0
m=audio ${port} RTP/AVP 0 8
a=rtpmap:0 PCMU/8000
${extra}`

export interface Msg {
  /** Request method, or a response status line tail ("200 OK"). */
  start: string
  cseq: string
  callId?: string
  fromTag?: string
  /** undefined: no To tag (an initial request). */
  toTag?: string
  body?: string
  /** The phone sends it (else the far end). */
  phoneSent: boolean
  extra?: string
}

/** A SIP message in the shape phones and proxies send; Via and Contact on the sender's side. */
export function sipText (m: Msg): string {
  const callId = m.callId ?? 'call-1@10.0.1.23'
  const isResponse = /^\d{3} /.test(m.start)
  const sender = m.phoneSent ? `${A}:5060` : `${B}:5060`
  const uri = m.phoneSent ? `sip:bob@${B}:5060` : `sip:alice@${PUB}:5060`
  const body = m.body === undefined ? '' : crlf(m.body)
  return crlf(`${isResponse ? `SIP/2.0 ${m.start}` : `${m.start} ${uri} SIP/2.0`}
Via: SIP/2.0/UDP ${isResponse ? (m.phoneSent ? `${B}:5060` : `${PUB}:5060`) : sender};branch=z9hG4bK-${m.cseq.replace(' ', '-')}-${callId};rport
Max-Forwards: 70
From: <sip:alice@sip.example.net>;tag=${m.fromTag ?? 'a1'}
To: <sip:bob@sip.example.net>${m.toTag === undefined ? '' : `;tag=${m.toTag}`}
Call-ID: ${callId}
CSeq: ${m.cseq}
Contact: <sip:${m.phoneSent ? 'alice' : 'bob'}@${sender}>
${m.extra ?? ''}${body === '' ? '' : 'Content-Type: application/sdp\n'}Content-Length: ${Buffer.byteLength(body)}

`) + body
}

const opText = (o: MapOp): string =>
  `${o.op} ${o.map} ${o.key.ip === undefined ? '' : o.key.ip + '.'}${o.key.sport === undefined ? '' : `${o.key.sport}.`}${o.key.port}${o.data === undefined ? '' : ' : ' + (o.data.ip === undefined ? '' : o.data.ip + '.') + o.data.port}`

export class Harness {
  clock = { now: 1_000_000 }
  readonly maps = new MappingTable(() => this.clock.now)
  readonly ports = new MediaPortPool(20000, 20099)
  readonly policy: CallPolicy
  readonly ended: Array<[string, string]> = []
  readonly started: string[] = []
  readonly streamsDropped: Array<{ stream: Stream, far: FarStream[] }> = []
  readonly forksDropped: Array<{ stream: Stream, far: FarStream[] }> = []
  /** Flows a narrowed pinhole no longer allows, as "ip:port>publicPort". */
  readonly flowsCut: string[] = []
  readonly registered: Registration[] = []
  readonly unregistered: string[] = []
  readonly calls: CallTable
  readonly registrations: RegistrationTable

  constructor (policy: Partial<CallPolicy> = {}, reg: { graceMs?: number, inboundFromAny?: boolean } = {}) {
    this.policy = { ringMs: 30_000, callMs: 600_000, elementMs: 60_000, farAddressUsable: ip => !ip.startsWith('10.'), ...policy }
    const now = (): number => this.clock.now
    this.calls = new CallTable(this.maps, this.ports, this.policy, {
      onStart: c => { this.started.push(c.callId) },
      onEnd: (c, reason) => { this.ended.push([c.callId, reason]) },
      onStreamDropped: (_c, stream, far) => { this.streamsDropped.push({ stream, far }) },
      onForkDropped: (_c, stream, far) => { this.forksDropped.push({ stream, far }) },
      onFlowsNarrowed: (_c, _s, flows: SeenFlow[]) => { for (const f of flows) this.flowsCut.push(`${f.ip}:${f.port}>${f.publicPort}`) }
    }, now)
    this.registrations = new RegistrationTable(this.maps, { graceMs: reg.graceMs ?? 10_000, inboundFromAny: reg.inboundFromAny ?? false }, PUB, {
      onRegistered: r => { this.registered.push(r) },
      onUnregistered: (p, registrar) => { this.unregistered.push(`${p.ip}:${p.port} ${registrar}`) }
    }, now)
  }

  /** One message through parser, rewriter and method table; the ops it queued, as text. */
  deliver (m: Msg | string, phoneSent?: boolean): { ops: string[], first: boolean, call: Call | undefined, out: string } {
    const text = typeof m === 'string' ? m : sipText(m)
    const fromPhone = typeof m === 'string' ? phoneSent === true : m.phoneSent
    const msg = parsed(text)
    let call = this.calls.find(msg.callId, PHONE)
    if (call === undefined && msg.callId !== undefined && isInitialInvite(msg)) call = this.calls.begin(msg.callId, PHONE, 5060, fromPhone)
    const c = call
    const ctx = makeCtx({ publicIp: PUB, mapMedia: r => (c === undefined ? null : this.calls.grantMedia(c, r)) })
    const r = rewriteMessage(msg, fromPhone ? 'outbound' : 'inbound', ctx)
    track(this, call, { msg, phoneSent: fromPhone, phone: PHONE, phonePublicPort: 5060, farIp: B, phoneMedia: r.media, farSdp: fromPhone ? undefined : r.sdp })
    const first = this.maps.mustPrecedeVerdict
    return { ops: this.maps.takePending().map(opText).sort(), first, call, out: r.bytes.toString('latin1') }
  }

  call (callId = 'call-1@10.0.1.23'): Call | undefined { return this.calls.find(callId, PHONE) }

  /** Live mirror elements as text. */
  elements (): string[] {
    return [...this.maps.all()].map(e => opText({ op: 'add', map: e.map, key: e.key, data: e.data }).slice(4)).sort()
  }
}
