// The ruleset watch's decisions without a kernel: what counts as sipalg's table being gone or
// changed, which iptables rules are sipalg's, what it re-sends and re-installs, and that each
// repair is logged once with its code.

import t from 'tap'
import { pino } from 'pino'
import { Writable } from 'node:stream'
import { inflateSync } from 'node:zlib'
import { MappingTable, type MapOp } from '../../src/media/mappings.js'
import type { NativeRule } from '../../src/netfilter/native.js'
import { table6Script, tableScript, DEFAULT_MARK } from '../../src/netfilter/table.js'
import { DEFAULT_TPROXY, divertScript } from '../../src/netfilter/tproxy.js'
import { RulesetWatch, declaredMaps, diagnoseTable, expectedRuleCounts, queueRulesRestore, queueRulesSeen, replayOps } from '../../src/netfilter/watch.js'
import type { Family } from '../../src/netfilter/table.js'

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
  const divert = divertScript({ family: 'ip', table: 'sipalg', sipPorts: [5060], listenPort: 50600, ...DEFAULT_TPROXY })
  const withDivert = (): NativeRule[] => [...ownRules(), rule('tcp_divert'), rule('tcp_divert'), rule('tcp_divert')]
  let own = ownRules()
  let created = 0
  const w = new RulesetWatch({
    table: 'sipalg', queue: 0, script, createTable: () => { created++; own = withDivert() }, rules: table => (table === 'sipalg' ? own : []),
    kernel: { apply: () => {} }, entries: () => [], log: pino({ level: 'silent' }), onHeal: () => {}
  })
  w.check()
  t.equal(created, 0, 'before it is expected, its absence is no fault')
  w.expectAlso('ip', divert)
  own = withDivert()
  w.check()
  t.equal(created, 0, 'intact with the chain')
  own = ownRules()
  w.check()
  t.equal(created, 1, 'the chain deleted on its own: the table (and with it the chain) is put back')
  t.equal(w.status().tableHeals, 1)
})

t.test('the IPv6 divert chain is expected in table ip6: deleted alone, it heals that table, not IPv4\'s', async t => {
  const divert6 = divertScript({ family: 'ip6', table: 'sipalg', sipPorts: [5060], listenPort: 50600, ...DEFAULT_TPROXY })
  const own6 = [rule('media_mark'), rule('media_mark')]
  let six = [...own6, rule('tcp_divert'), rule('tcp_divert'), rule('tcp_divert')]
  const created: string[] = []
  const w = new RulesetWatch({
    table: 'sipalg', queue: 0, script, createTable: () => { created.push('ip') }, rules: table => (table === 'sipalg' ? ownRules() : []),
    ipv6: { script: 'add rule ip6 sipalg media_mark a\nadd rule ip6 sipalg media_mark b\n', createTable: () => { created.push('ip6'); six = [...own6, rule('tcp_divert'), rule('tcp_divert'), rule('tcp_divert')] }, rules: table => (table === 'sipalg' ? six : []) },
    kernel: { apply: () => {} }, entries: () => [], log: pino({ level: 'silent' }), onHeal: () => {}
  })
  w.expectAlso('ip6', divert6)
  w.check()
  t.same(created, [], 'both tables intact')
  six = own6
  w.check()
  t.same(created, ['ip6'], 'the IPv6 chain deleted alone: table ip6 is put back, the IPv4 table left alone')
  w.check()
  t.same(created, ['ip6'], 'and stays healed')
})

// IPv6: the rules of `table ip6 sipalg` and of ip6tables-nft's `ip6 filter` as the kernel dumped them
// over sipalg's ip6 socket (NftMaps.open('sipalg', 6).rules) in a lab namespace, after createTable6
// (outside wan0), `sipalg-rules.sh install` and the operator's `ip6tables -A FORWARD -p udp --dport 5060
// -j ACCEPT`: chain and netlink payload (hex) per rule, deflated.
const DUMP6 = JSON.parse(inflateSync(Buffer.from(
  'eNrtWktv1DAQ/i859+DHeJxwq0CgSgiqUsShqqrEm6CKVkKFG+K/M37k/diw221Z6pGyWSfOzMSe75uxd38lP26/53dfk1dXV8l9ubnNb+7zh2' +
  '/JScJyZgVZQZ+cMS0x0ww5GtTuTkWHoA4bVAiYIVcVfedaYOHuGzokGwrkQE8BPQpeL8v82erRgLzuyMHrZ2k4s+BPGp4L3WTdDmeUuLEOCtN5' +
  'vtN/oI/x1PvJgz9a0zuWY8drESzo07U9DSN/F+yBCffDGQWNK5DVjEZYkSvr/Pbt1k1wbew4atzVVk/aua5G+v14TY0jW+lPPd9DvTvNMx/Z29' +
  'O/Nh6V78dDXwn9+bAxrjOK8orioI7Tv5+P1LWhvb2jHbFshz+WHTmwIwbvI/p2mGjsBH5wFiostNLtvFt9m8aPDEtMqY9BJbEzUuP3U4+GN/lc' +
  'eKtI5vDGmcpXvRfMv1dyffI0jK3cdRwzOZq9mFxHJo9M/oKZfMiwbMSwbAvD1h9FOx8e14FdI7PuyKzXJ0l1e/ezfHBl8aez89P37yYIFpEG2x' +
  'AElPaPF16RkpApBhwM6AVitXGyB4EeHbC2lhSP5j8G/6WBQIjcPZc348tpfCUGIuX2vugEskSbGC2cSg0jIFmfubUzSrBRXpSIIQFS3GgXM54R' +
  'eE2App9Ie/EqxpeHpbXlAirStGWFXmkd9EJJBrlSoOwxilfZ4x/e+uJKyEOxm5wpG18667HIelEi6/2nrAczrCcVUO8jYL0dF/NyaO/ZFscsLB' +
  'AOszhmU4tjQYuOTd2eYVtT6yk7bFta1FCMc2oVk9thMp+OsyhTwjtjuJ3FYnaMErPjU2bH2a1kY9EGoSxeQKVk/R8VahbtbWNPbH25rCXbLaIm' +
  'S0RWiHLMrFDjpa4qshCNbhvYam/idqq68V9FR/+g+umwwc3l6/M1jFCNGUFVCkAqtsAMWqR7/Zj0z9SfS5vTh6g/azaLzBUlMteAuc4+nH++XE' +
  'NauVcCGZSK2YqJLZFVloVyJYIuyjGBDlaCbuYfF02SGoKy8rLZlvwdKN9+vPhyevFmDSyDGUColKAygCsBMAvLIksjLKMcYS40K2GZzuTCoJen' +
  'M7CcWaUfFo5mZrFfuKo1/u2haR/wB8AjLd2uf/8BpmJJvg==', 'base64')).toString()) as Record<'sipalg' | 'filter', Array<[string, string]>>
const dump6 = (table: 'sipalg' | 'filter'): NativeRule[] => DUMP6[table].map(([chain, hex]) => ({ chain, raw: Buffer.from(hex, 'hex') }))
const unhooked6 = (): NativeRule[] => dump6('filter').filter(r => !(r.chain === 'FORWARD' && r.raw.includes('sipalg')))
const script6 = table6Script({ table: 'sipalg', publicIp: '203.0.113.1', outsideIf: 'wan0', mark: DEFAULT_MARK })
// `ip6tables -S SIPALG` on the same gateway.
const installed6 = '-N SIPALG\n' +
  '-A SIPALG -p udp -m udp --dport 5060 -m comment --comment sipalg -j NFQUEUE --queue-num 0 --queue-bypass\n' +
  '-A SIPALG -p udp -m udp --sport 5060 -m comment --comment sipalg -j NFQUEUE --queue-num 0 --queue-bypass\n' +
  '-A SIPALG -p udp -m mark --mark 0x5a200000/0xffff0000 -m conntrack --ctstate NEW -m comment --comment sipalg -j NFQUEUE --queue-num 0 --queue-bypass\n' +
  '-A SIPALG -m connmark --mark 0x5a100000/0xffff0000 -m comment --comment sipalg -j ACCEPT'
const v4Pinhole = { ip: '203.0.113.9', port: 20000 }
const v6Pinhole = (port: number): { ip: string, dst: string, port: number } => ({ ip: '2001:db8:2::b', dst: '2001:db8:1::a', port })
const phone6 = (port: number): { ip: string, port: number } => ({ ip: '2001:db8:1::a', port })

t.test('the kernel\'s IPv6 dumps: table ip6 intact, its queue rules found, the operator\'s own rule not taken for one', async t => {
  t.same(Object.fromEntries(expectedRuleCounts(script6)), { media_mark: 2 })
  t.equal(diagnoseTable(dump6('sipalg'), expectedRuleCounts(script6)), null, 'intact')
  t.equal(diagnoseTable(dump6('sipalg').slice(1), expectedRuleCounts(script6)), 'flushed or changed', 'one of its two rules gone')
  t.same(queueRulesSeen(dump6('filter')), { chainRules: 4, jump: true })
  t.equal(unhooked6().filter(r => r.chain === 'FORWARD').length, 1, 'the operator\'s SIP accept stays in FORWARD')
  t.same(queueRulesSeen(unhooked6()), { chainRules: 4, jump: false }, '`ip6tables -D FORWARD ... -j SIPALG`: the jump is gone')
})

t.test('declaredMaps: each family\'s table takes back only its own maps', async t => {
  t.same([...declaredMaps(script)], ['any_dnat', 'peer_dnat', 'src_nat', 'latch_dnat'])
  t.same([...declaredMaps(script6)], ['pinhole6', 'media6'])
  const m = new MappingTable(() => 0)
  m.set('peer_dnat', v4Pinhole, { ip: '10.0.1.23', port: 16000 }, 60_000, 'v4 call')
  m.set('pinhole6', v6Pinhole(16000), phone6(16000), 60_000, 'v6 call')
  m.set('media6', phone6(16000), phone6(16000), 60_000, 'v6 call')
  t.same(replayOps(m.all(), 0, declaredMaps(script6)).map(o => o.map), ['pinhole6', 'media6'])
  t.same(replayOps(m.all(), 0, declaredMaps(script)).map(o => o.map), ['peer_dnat'])
  t.equal(replayOps(m.all(), 0).length, 3, 'no filter: every entry')
})

t.test('IPv6 alone: table ip6 deleted and the ip6tables jump removed are healed in one check, IPv4 untouched', async t => {
  let logs = ''
  const log = pino({ base: undefined }, new Writable({ write (c, _e, cb) { logs += String(c); cb() } }))
  let own6 = dump6('sipalg')
  let filter6 = dump6('filter')
  const created: Family[] = []
  const applied: MapOp[][] = []
  const ran: Array<{ cmd: string, input?: string }> = []
  const heals: string[] = []
  const maps = new MappingTable()
  maps.set('peer_dnat', v4Pinhole, { ip: '10.0.1.23', port: 16000 }, 60_000, 'v4 call')
  maps.set('pinhole6', v6Pinhole(16000), phone6(16000), 60_000, 'v6 call')
  maps.set('pinhole6', v6Pinhole(16001), phone6(16001), 60_000, 'v6 call')
  maps.takePending()
  const w = new RulesetWatch({
    table: 'sipalg',
    queue: 0,
    script,
    createTable: () => { created.push('ip') },
    rules: table => (table === 'sipalg' ? ownRules() : queueRules()),
    ipv6: { script: script6, createTable: () => { created.push('ip6'); own6 = dump6('sipalg') }, rules: table => (table === 'sipalg' ? own6 : filter6) },
    kernel: { apply: ops => { applied.push(ops) } },
    entries: () => maps.all(),
    log,
    onHeal: (what, family) => { heals.push(`${family} ${what}`) },
    run: (cmd, _args, input) => {
      ran.push({ cmd, input })
      if (cmd === 'iptables') return { ok: true, out: installed }
      if (cmd === 'ip6tables') return { ok: true, out: installed6 }
      if (cmd === 'ip6tables-restore') filter6 = dump6('filter')
      return { ok: true, out: '' }
    }
  })
  t.same(ran.map(r => r.cmd), ['iptables', 'ip6tables'], 'the installed rules of both families learnt at start')
  w.check()
  t.equal(created.length + heals.length + applied.length, 0, 'nothing to do while intact')

  own6 = []
  filter6 = unhooked6()
  w.check()
  t.same(created, ['ip6'], 'only table ip6 re-created')
  t.same(applied.map(ops => ops.map(o => [o.op, o.map, o.key.port])), [[['add', 'pinhole6', 16000], ['add', 'pinhole6', 16001]]],
    'its two live pinholes re-sent, nothing of IPv4')
  const restores = ran.filter(r => r.cmd.endsWith('-restore'))
  t.same(restores.map(r => r.cmd), ['ip6tables-restore'], 'ip6tables-restore only')
  t.equal(restores[0]?.input, queueRulesRestore(installed6.split('\n').slice(1), true), 'the installed IPv6 rules and the jump')
  t.same(heals, ['ip6 table', 'ip6 queue_rules'])
  t.match(logs, /"code":"E303","family":"ip6".*"elements":2.*E303: nft table ip6 sipalg was deleted by someone else/)
  t.match(logs, /"code":"E304","family":"ip6".*E304: sipalg's queue rules \(ip6tables chain SIPALG and its jump from FORWARD\) were unhooked from FORWARD/)
  t.notMatch(logs, /"family":"ip"[,}]/, 'no IPv4 repair')
  t.match(w.status(), { tableHeals: 1, queueRuleHeals: 1, queueRulesWatched: true, lastHeal: { what: 'ip6 queue_rules' } })

  w.check()
  t.equal(heals.length, 2, 'healed: nothing more to do')
  filter6 = []
  w.check()
  t.match(logs, /E304: sipalg's queue rules \(ip6tables .* were removed/, '`ip6tables -F`: chain content and jump back')
  t.equal(w.status().queueRuleHeals, 2)
})
