// The systemd unit: ordered after nftables.service without being tied to it (the reasons are in
// the unit's comments), its runtime directory kept across restarts so call state survives.

import t from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'

const unit = readFileSync(join(import.meta.dirname, '..', 'systemd', 'sipalg.service'), 'utf8')
/** key → values of a section, comments dropped. */
const section = (name: string): Map<string, string[]> => {
  const body = new RegExp(`^\\[${name}\\]\\n([\\s\\S]*?)(?=^\\[|(?![\\s\\S]))`, 'm').exec(unit)?.[1] ?? ''
  const m = new Map<string, string[]>()
  for (const line of body.split('\n')) {
    const kv = /^(\w+)=(.*)$/.exec(line)
    if (kv !== null) m.set(kv[1], [...(m.get(kv[1]) ?? []), kv[2]])
  }
  return m
}

t.test('unit ordering and lifetime', async t => {
  const u = section('Unit')
  const s = section('Service')
  t.ok((u.get('After') ?? []).join(' ').split(/\s+/).includes('nftables.service'), 'After=nftables.service')
  for (const k of ['PartOf', 'ReloadPropagatedFrom', 'Requires', 'BindsTo']) t.notOk(u.has(k), `no ${k}: sipalg heals its rules itself`)
  t.ok(u.has('StartLimitBurst') && !s.has('StartLimitBurst'), 'start limits in [Unit], where systemd reads them')
  t.same(s.get('RuntimeDirectory'), ['sipalg'], '/run/sipalg for the control socket and state')
  t.same(s.get('RuntimeDirectoryPreserve'), ['yes'], 'the call state survives a restart')
  t.match(unit, /# Deliberately no PartOf=nftables\.service/, 'the choice is explained')
})

t.test('readiness, watchdog and scheduling', async t => {
  const s = section('Service')
  t.same(s.get('Type'), ['notify'], 'READY=1 once the queue is processed (src/cli/systemd.ts)')
  t.same(s.get('NotifyAccess'), ['main'], 'only the main process (the supervisor with workers) notifies')
  t.match(s.get('WatchdogSec')?.[0] ?? '', /^\d+s$/, 'a stuck event loop is killed and restarted')
  t.same(s.get('Restart'), ['on-failure'], 'a watchdog kill counts as a failure: restarted')
  t.same(s.get('CPUSchedulingPolicy'), ['rr'], 'real-time round-robin: the queue waits less for a CPU')
  const prio = Number(s.get('CPUSchedulingPriority')?.[0])
  t.ok(prio >= 1 && prio < 50, `priority ${prio}: below the kernel's threaded interrupts (50)`)
  t.match(unit, /CPUSchedulingPolicy=other/, 'how to turn it off is written beside it')
})

