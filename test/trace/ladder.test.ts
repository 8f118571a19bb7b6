// The ladder renderer: fixed events in, exact text out.

import t from 'tap'
import { Ladder, messageLabel, mappingText, renderLadder, type TraceEvent } from '../../src/trace/ladder.js'

const T = Date.UTC(2024, 0, 2, 3, 4, 5)
const base = { callId: 'c1@10.0.1.23', phone: '10.0.1.23:5060', far: '203.0.113.9:5060', changes: [], added: [], removed: [] }
const events: TraceEvent[] = [
  {
    ...base, at: T, direction: 'outbound', method: 'INVITE', cseqMethod: 'INVITE',
    changes: [{ field: 'Via', before: '10.0.1.23:5060', after: '203.0.113.1:5060' }, { field: 'c=', before: '10.0.1.23', after: '203.0.113.1' },
      { field: 'm=audio', before: '16000', after: '20000' }],
    added: [{ map: 'src_nat', key: { ip: '10.0.1.23', port: 16000 }, data: { port: 20000 } },
      { map: 'any_dnat', key: { port: 20000 }, data: { ip: '10.0.1.23', port: 16000 } }]
  },
  {
    ...base, at: T + 40, direction: 'inbound', status: 180, reason: 'Ringing', cseqMethod: 'INVITE',
    changes: [{ field: 'Via', before: '203.0.113.1:5060', after: '10.0.1.23:5060' }]
  },
  {
    ...base, callId: 'other', phone: '10.0.1.24:5060', far: '203.0.113.10:5060', at: T + 1500, direction: 'outbound',
    method: 'OPTIONS', cseqMethod: 'OPTIONS', leftAlone: 'already-public', detail: 'no private address'
  },
  {
    ...base, at: T + 2250, direction: 'outbound', method: 'BYE', cseqMethod: 'BYE',
    removed: [{ map: 'peer_dnat', key: { ip: '203.0.113.9', port: 20000 }, data: { ip: '10.0.1.23', port: 16000 } }]
  }
]

const EXPECTED = `      inside phone         gateway 203.0.113.1           far end
            │                       │                       │
── t=0 is 2024-01-02T03:04:05.000Z
── Call-ID c1@10.0.1.23   phone 10.0.1.23:5060   far end 203.0.113.9:5060
    +0.000  │                    INVITE                     │
            │──────────────────────>◆──────────────────────>│
            │   Via      10.0.1.23:5060 → 203.0.113.1:5060
            │   c=       10.0.1.23 → 203.0.113.1
            │   m=audio  16000 → 20000
            │   + src_nat   10.0.1.23:16000 → 203.0.113.1:20000
            │   + any_dnat  203.0.113.1:20000 → 10.0.1.23:16000 (from anyone)
            │                       │                       │
    +0.040  │             180 Ringing (INVITE)              │
            │<──────────────────────◆<──────────────────────│
            │   Via  203.0.113.1:5060 → 10.0.1.23:5060
            │                       │                       │
── Call-ID other   phone 10.0.1.24:5060   far end 203.0.113.10:5060
    +1.500  │                   OPTIONS                     │
            │──────────────────────>┼──────────────────────>│
            │   left alone: already-public (no private address)
            │                       │                       │
── Call-ID c1@10.0.1.23   phone 10.0.1.23:5060   far end 203.0.113.9:5060
    +2.250  │                     BYE                       │
            │──────────────────────>┼──────────────────────>│
            │   - peer_dnat 203.0.113.1:20000 → 10.0.1.23:16000 (from 203.0.113.9)
            │                       │                       │
`

t.test('a call, another phone in between, the BYE: exact ladder', async t => {
  t.equal(renderLadder(events, { publicIp: '203.0.113.1', lane: 24 }), EXPECTED)
})

t.test('the streaming renderer writes the same text event by event', async t => {
  const l = new Ladder({ publicIp: '203.0.113.1', lane: 24 })
  t.equal(l.header() + events.map(e => l.event(e)).join(''), EXPECTED)
})

t.test('labels and mappings', async t => {
  t.equal(messageLabel(events[0]), 'INVITE')
  t.equal(messageLabel(events[1]), '180 Ringing (INVITE)')
  t.equal(messageLabel({ ...base, at: 0, direction: 'inbound', status: 200 }), '200')
  t.equal(mappingText({ map: 'src_nat', key: { ip: '10.0.1.23', port: 5060 }, data: { port: 5062 } }, '203.0.113.1'),
    'src_nat   10.0.1.23:5060 → 203.0.113.1:5062')
  t.equal(mappingText({ map: 'any_dnat', key: { port: 20000 }, data: { ip: '10.0.1.23', port: 16000 } }),
    'any_dnat  public:20000 → 10.0.1.23:16000 (from anyone)')
})

t.test('default lane, no public address, an event without Call-ID', async t => {
  const out = renderLadder([{ ...base, callId: undefined, at: 0, direction: 'inbound', method: 'OPTIONS', changes: [{ field: 'Request-URI', before: '', after: 'x' }] }])
  t.equal(out.split('\n')[0], '      inside phone                       gateway                         far end')
  t.match(out, /── Call-ID \(none\)   phone 10\.0\.1\.23:5060/)
  t.match(out, /│   Request-URI  \(none\) → x\n/)
  t.match(out, /^ {12}│<─{30}◆<─{30}│$/m)
})
