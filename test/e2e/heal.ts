// Shared by the self-healing tests (heal-*.test.ts): a call in progress while someone reloads the
// gateway's firewall, and what must still be true about it afterwards.

import type { Test } from 'tap'
import { Lab } from '../lab/lab.js'
import { addressesIn, privateAddresses, runCall, type CallResult } from '../lab/sip.js'
import { startSipalg, type Sipalg } from '../lab/sipalg.js'

export const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }

/**
 * The operator's own ruleset as Debian's /etc/nftables.conf would hold it: loaded with `nft -f`, it
 * replaces everything (sipalg's table and iptables-nft's tables too) in one transaction, as
 * `systemctl restart nftables` does. Masquerade out of wan0, forward policy drop with only
 * established traffic and LAN → WAN let through.
 */
export const OPERATOR_NFTABLES_CONF = `flush ruleset
table inet filter {
  chain input { type filter hook input priority filter; policy accept; }
  chain forward {
    type filter hook forward priority filter; policy drop;
    ct state established,related accept
    iifname "lan0" oifname "wan0" accept
  }
  chain output { type filter hook output priority filter; policy accept; }
}
table inet nat {
  chain postrouting { type nat hook postrouting priority srcnat; policy accept; oifname "wan0" masquerade; }
}
`

/** Waits until the call is answered and its media narrowed to B (a pinhole toward A exists). */
export async function waitAnswered (alg: Sipalg): Promise<boolean> {
  for (let i = 0; i < 80; i++) {
    if ((await alg.elements('peer_dnat')).some(e => /^203\.0\.113\.9 \. 2\d{4} : 10\.0\.1\.23 \. 1\d{4}$/.test(e))) return true
    await sleep(100)
  }
  return false
}

/**
 * A lab gateway with FORWARD policy drop, sipalg in firewall mode, and a 6 s call (≈ 200 RTP
 * packets each way) answered and a second into its media: ready for someone to reload the firewall.
 */
export async function midCall (t: Test): Promise<{ lab: Lab, alg: Sipalg, call: Promise<CallResult> }> {
  const lab = await Lab.up({ forwardPolicy: 'drop' })
  t.teardown(async () => { await lab.down() })
  const alg = await startSipalg(lab, { args: ['--firewall'] })
  t.teardown(async () => { await alg.stop() })
  const call = runCall(lab, { durationMs: 6000 })
  t.ok(await waitAnswered(alg), 'call answered')
  await sleep(1000)
  return { lab, alg, call }
}

/** Polls (every 10 ms, at most 5 s) until `probe` succeeds; returns the ms it took, or -1. */
export async function msUntil (probe: () => Promise<boolean>): Promise<number> {
  const t0 = Date.now()
  while (Date.now() - t0 < 5000) {
    if (await probe()) return Date.now() - t0
    await sleep(10)
  }
  return -1
}

/** sipalg's queue rules are in place (the chain and the jump to it). */
export async function queueRulesBack (lab: Lab): Promise<boolean> {
  const r = await lab.exec('gw', 'iptables', ['-w', '-t', 'filter', '-S'])
  return /-A FORWARD .*-j SIPALG/.test(r.stdout) && /-A SIPALG .*NFQUEUE/.test(r.stdout)
}

/** Private addresses where they break routing (From/To/Call-ID keep them unless rewrite_from_to). */
const routing = (msg: string): string[] => {
  const a = addressesIn(msg)
  return privateAddresses([...a.via, ...a.contact, ...a.c, ...a.o].join(' '))
}

/** A call kept at least `minPackets` of RTP each way and its BYE was rewritten. */
export function assertCallKept (t: Test, r: CallResult, minPackets: number): void {
  t.ok(r.ok, `the call ends normally (exit A=${String(r.exitA)} B=${String(r.exitB)})`)
  t.ok(r.rtpAtA >= minPackets, `B's audio reached A all through the call (${r.rtpAtA} ≥ ${minPackets})`)
  t.ok(r.rtpAtB >= minPackets, `A's audio reached B all through the call (${r.rtpAtB} ≥ ${minPackets})`)
  t.match(r.byeSeenByB, /^BYE /, 'B got the BYE')
  t.same(routing(r.byeSeenByB), [], 'the BYE reaching B has no private Via or Contact (still rewritten)')
}

/** The next call, with nobody touching sipalg: rewritten, audio both ways. */
export async function assertNextCallWorks (t: Test, lab: Lab): Promise<void> {
  const next = await runCall(lab, { durationMs: 1500 })
  t.ok(next.ok, 'the next call connects')
  t.match(next.inviteSeenByB, /^INVITE /)
  t.same(routing(next.inviteSeenByB), [], 'the next INVITE is rewritten (Via, Contact, SDP)')
  t.ok(next.rtpAtA > 25 && next.rtpAtB > 25, `the next call has audio both ways (${next.rtpAtA}/${next.rtpAtB})`)
}
