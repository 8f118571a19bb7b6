// The ruleset watch's decisions without a kernel: what counts as sipalg's table being gone or
// changed, which iptables rules are sipalg's, what it re-sends and re-installs, and that each
// repair is logged once with its code.

import t from 'tap'
import { pino } from 'pino'
import { Writable } from 'node:stream'
import { MappingTable, type MapOp } from '../../src/media/mappings.js'
import type { NativeRule } from '../../src/netfilter/native.js'
import { tableScript, DEFAULT_MARK } from '../../src/netfilter/table.js'
import { DEFAULT_TPROXY, divertScript } from '../../src/netfilter/tproxy.js'
import { RulesetWatch, diagnoseTable, expectedRuleCounts, queueRulesRestore, queueRulesSeen, replayOps } from '../../src/netfilter/watch.js'

const script = tableScript({ table: 'sipalg', publicIp: '203.0.113.1', outsideIf: 'wan0', mark: DEFAULT_MARK })
const rule = (chain: string, text = 'x'): NativeRule => ({ chain, raw: Buffer.from(text) })
const ownRules = (): NativeRule[] => [rule('media_mark'), rule('pre'), rule('pre'), rule('pre'), rule('post')]
const queueRules = (): NativeRule[] => [rule('SIPALG', 'sipalg'), rule('SIPALG', 'sipalg'), rule('SIPALG', 'sipalg'), rule('FORWARD', 'sipalg'), rule('FORWARD', 'operator')]

t.test('expected rules come from the table script itself', async t => {
  t.same(Object.fromEntries(expectedRuleCounts(script)), { media_mark: 1, pre: 3, post: 1 })
  const withMedia = tableScript({ table: 'sipalg', publicIp: '203.0.113.1', outsideIf: 'wan0', mark: DEFAULT_MARK, mediaPorts: { lo: 20000, hi: 29999 } })
  t.same(Object.fromEntries(expectedRuleCounts(withMedia)), { media_mark: 1, pre: 4, post: 1 }, 'the first-packet mark rule counts too')
})

t.test('diagnoseTable', async t => {
  const want = expectedRuleCounts(script)
  t.equal(diagnoseTable(ownRules(), want), null, 'intact')
  t.equal(diagnoseTable([], want), 'deleted', 'no rules at all: the table is gone (or every chain flushed)')
  t.equal(diagnoseTable(ownRules().filter(r => r.chain !== 'pre'), want), 'flushed or changed', 'one chain flushed')
  t.equal(diagnoseTable([...ownRules(), rule('post')], want), 'flushed or changed', 'a rule added')
})

t.test('queueRulesSeen counts only rules carrying the sipalg comment', async t => {
  t.same(queueRulesSeen(queueRules()), { chainRules: 3, jump: true })
  t.same(queueRulesSeen(queueRules().filter(r => r.chain !== 'FORWARD')), { chainRules: 3, jump: false })
  t.same(queueRulesSeen([rule('FORWARD', 'operator')]), { chainRules: 0, jump: false })
})

t.test('replayOps re-sends live entries with the time they have left', async t => {
  let now = 10_000
  const m = new MappingTable(() => now)
  m.set('src_nat', { ip: '10.0.1.23', port: 16000 }, { port: 20000 }, 60_000, 'call')
  m.set('any_dnat', { port: 20000 }, { ip: '10.0.1.23', port: 16000 }, 5_000, 'call')
  now += 6_000
  t.same(replayOps(m.all(), now), [{ op: 'add', map: 'src_nat', key: { ip: '10.0.1.23', port: 16000 }, data: { port: 20000 }, timeoutMs: 54_000 }],
    'an expired entry is not re-sent')
})

t.test('queueRulesRestore', async t => {
  const lines = ['-A SIPALG -p udp -m udp --dport 5060 -m comment --comment sipalg -j NFQUEUE --queue-num 0 --queue-bypass']
  t.equal(queueRulesRestore(lines, true), `*filter\n:SIPALG - [0:0]\n${lines[0]}\n-I FORWARD 1 -m comment --comment sipalg -j SIPALG\nCOMMIT\n`)
  t.notMatch(queueRulesRestore(lines, false), /FORWARD/, 'the jump is only added when it is gone')
})

const installed = '-N SIPALG\n-A SIPALG -p udp -m udp --dport 5060 -j NFQUEUE --queue-num 0 --queue-bypass\n' +
  '-A SIPALG -p udp -m udp --sport 5060 -j NFQUEUE --queue-num 0 --queue-bypass\n-A SIPALG -j ACCEPT'

t.test('RulesetWatch heals, logs once per event, and retries a failed repair quietly', async t => {
  let logs = ''
  const log = pino({ base: undefined }, new Writable({ write (c, _e, cb) { logs += String(c); cb() } }))
  let own = ownRules()
  let filter = queueRules()
  const applied: MapOp[][] = []
  const ran: Array<{ cmd: string, input?: string }> = []
  let created = 0
  let createFails = false
  let heals = 0
  const maps = new MappingTable()
  maps.set('peer_dnat', { ip: '203.0.113.9', port: 20000 }, { ip: '10.0.1.23', port: 16000 }, 60_000, 'call')
  maps.takePending()
  const w = new RulesetWatch({
    table: 'sipalg',
    queue: 0,
    script,
    createTable: () => { if (createFails) throw new Error('nft: Operation not permitted'); created++; own = ownRules() },
    rules: table => (table === 'sipalg' ? own : filter),
    kernel: { apply: ops => { applied.push(ops) } },
    entries: () => maps.all(),
    log,
    onHeal: () => { heals++ },
    run: (cmd, _args, input) => {
      ran.push({ cmd, input })
      if (cmd === 'iptables') return { ok: true, out: installed }
      filter = queueRules()
      return { ok: true, out: '' }
    }
  })
  t.equal(w.status().queueRulesWatched, true, 'queue rules found at start are watched')
  w.check()
  t.equal(created + heals + applied.length, 0, 'nothing to do while intact')

  own = []
  filter = [rule('FORWARD', 'operator')]
  w.check()
  t.equal(created, 1, 'table re-created')
  t.same(applied[0]?.map(o => o.map), ['peer_dnat'], 'the live mapping re-sent')
  const restore = ran.find(r => r.cmd === 'iptables-restore')
  t.match(restore?.input ?? '', /^\*filter\n:SIPALG - \[0:0\]\n-A SIPALG -p udp -m udp --dport 5060 -j NFQUEUE --queue-num 0 --queue-bypass\n(.*\n){2}-I FORWARD 1 /, 'the installed rules re-applied with the jump')
  t.equal(heals, 2)
  t.match(logs, /"code":"E303".*was deleted by someone else.*with 1 mappings/)
  t.match(logs, /"code":"E304".*were removed/)
  t.equal(w.status().lastHeal?.what, 'queue_rules')

  own = []
  createFails = true
  w.check()
  w.check()
  t.equal((logs.match(/"code":"E305"/g) ?? []).length, 1, 'a failing repair is logged once')
  createFails = false
  w.check()
  t.equal(created, 2, 'and retried until it works')
  t.equal(w.status().tableHeals, 2)
})

t.test('queue rules of another instance\'s queue are left alone', async t => {
  const w = new RulesetWatch({
    table: 'sipalg2', queue: 1, script, createTable: () => {}, rules: table => (table === 'sipalg2' ? ownRules() : table === 'filter' ? queueRules() : []),
    kernel: { apply: () => {} }, entries: () => [], log: pino({ level: 'silent' }), onHeal: () => { t.fail('nothing to heal') },
    run: () => ({ ok: true, out: installed })
  })
  t.equal(w.status().queueRulesWatched, false, 'SIPALG queues to 0, this sipalg reads queue 1')
})

t.test('balanced queue rules (workers) are watched by the sipalg on their first queue only', async t => {
  const balanced = installed.replaceAll('--queue-num 0', '--queue-balance 0:1')
  const watched = (queue: number): boolean => new RulesetWatch({
    table: 'sipalg', queue, script, createTable: () => {}, rules: table => (table === 'sipalg' ? ownRules() : table === 'filter' ? queueRules() : []),
    kernel: { apply: () => {} }, entries: () => [], log: pino({ level: 'silent' }), onHeal: () => {},
    run: () => ({ ok: true, out: balanced })
  }).status().queueRulesWatched
  t.equal(watched(0), true, 'worker 0 reads queue 0: it keeps the rules for all')
  t.equal(watched(1), false, 'queue 1 is inside the run but not its start')
})

t.test('queue rules not installed at start are left alone', async t => {
  const w = new RulesetWatch({
    table: 'sipalg', queue: 0, script, createTable: () => {}, rules: table => (table === 'sipalg' ? ownRules() : []),
    kernel: { apply: () => {} }, entries: () => [], log: pino({ level: 'silent' }), onHeal: () => { t.fail('nothing to heal') },
    run: () => { t.fail('no iptables'); return { ok: false, out: '' } }
  })
  w.check()
  t.equal(w.status().queueRulesWatched, false)
})

t.test('the SIP/TCP divert chain, expected once SIP over TCP is up: deleted alone, it heals the table', async t => {
  const divert = divertScript({ table: 'sipalg', sipPorts: [5060], listenPort: 50600, ...DEFAULT_TPROXY })
  const withDivert = (): NativeRule[] => [...ownRules(), rule('tcp_divert'), rule('tcp_divert'), rule('tcp_divert')]
  let own = ownRules()
  let created = 0
  const w = new RulesetWatch({
    table: 'sipalg', queue: 0, script, createTable: () => { created++; own = withDivert() }, rules: table => (table === 'sipalg' ? own : []),
    kernel: { apply: () => {} }, entries: () => [], log: pino({ level: 'silent' }), onHeal: () => {}
  })
  w.check()
  t.equal(created, 0, 'before it is expected, its absence is no fault')
  w.expectAlso(divert)
  own = withDivert()
  w.check()
  t.equal(created, 0, 'intact with the chain')
  own = ownRules()
  w.check()
  t.equal(created, 1, 'the chain deleted on its own: the table (and with it the chain) is put back')
  t.equal(w.status().tableHeals, 1)
})
