// Part 5 of bench/run.sh: mapping install/remove latency (kernel-acked) through sipalg's netlink writer
// (NftMaps.apply) with 10 / 1,000 / 10,000 elements already in the maps, against a fresh `nft -f -`
// process per batch and a persistent `nft -i`, measured in the same invocation. A call's mapping = one
// batch of 2 adds (src_nat + peer_dnat, as sipalg installs a stream), removal = one batch of 2 deletes.
// Runs as root inside a private netns (run.sh: sipalg-<runid>-nft). Prints JSON lines.
import { spawn, spawnSync } from 'node:child_process'
import { NftMaps, addrPortKey, portKey, type NftOp } from '../src/netfilter/nftmaps.js'

const TABLE = 'sipalgbench'
const SIZES = (process.env.NFT_SIZES ?? '10 1000 10000').split(/\s+/).map(Number)
const ITER = Number(process.env.NFT_ITER ?? 400)
const PROC_ITER = Number(process.env.NFT_PROC_ITER ?? 10)
const INTERACTIVE_ITER = Number(process.env.NFT_I_ITER ?? 100)
const PACED_ITER = Number(process.env.NFT_PACED_ITER ?? 100)

function nft (input: string): void {
  const r = spawnSync('nft', ['-f', '-'], { input, encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`nft: ${r.stderr}`)
}

// It creates a table and fills it: only inside the namespace run.sh made, never in the root one.
const here = spawnSync('ip', ['netns', 'identify', String(process.pid)], { encoding: 'utf8' }).stdout?.trim() ?? ''
if (!/^sipalg-[A-Za-z0-9]+-nft$/.test(here)) {
  console.error(`bench/nftmaps: run it from bench/run.sh (inside sipalg-<run id>-nft), not in "${here || 'root'}"`)
  process.exit(64)
}

function createTable (): void {
  spawnSync('nft', ['delete', 'table', 'ip', TABLE])
  nft([
    `add table ip ${TABLE}`,
    `add map ip ${TABLE} any_dnat { type inet_service : ipv4_addr . inet_service; flags timeout; }`,
    `add map ip ${TABLE} peer_dnat { type ipv4_addr . inet_service : ipv4_addr . inet_service; flags timeout; }`,
    `add map ip ${TABLE} src_nat { type ipv4_addr . inet_service : inet_service; flags timeout; }`, ''
  ].join('\n'))
}

const ip = (i: number, net = 10): string => `${net}.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`
const pct = (xs: number[], q: number): number => {
  const s = [...xs].sort((a, b) => a - b)
  return Math.round(s[Math.min(s.length - 1, Math.floor(q * s.length))] * 10) / 10
}
const us = (t0: bigint): number => Number(process.hrtime.bigint() - t0) / 1000

function fill (maps: NftMaps, n: number): void {
  for (let i = 0; i < n; i += 1000) {
    const ops: NftOp[] = []
    for (let j = i; j < Math.min(n, i + 1000); j++) {
      ops.push({ op: 'add', map: 'src_nat', key: addrPortKey(ip(j + 1), 5060), data: portKey(20000 + (j % 40000)), timeoutMs: 600_000 })
      ops.push({ op: 'add', map: 'peer_dnat', key: addrPortKey(ip(j + 1, 198), 7000), data: addrPortKey(ip(j + 1), 4000), timeoutMs: 600_000 })
    }
    maps.apply(ops)
  }
}

function elem (i: number): { src: string, peer: string, srcDel: string, peerDel: string } {
  const a = ip(i, 172); const f = ip(i, 192)
  return {
    src: `${a} . 4000 timeout 60s : ${20000 + (i % 40000)}`,
    peer: `${f} . 7000 timeout 60s : ${a} . 4000`,
    srcDel: `${a} . 4000`,
    peerDel: `${f} . 7000`
  }
}

/** A call's mapping as sipalg installs a stream (src_nat + peer_dnat), and its removal. */
function callOps (i: number, phoneNet: number, farNet: number): { add: NftOp[], del: NftOp[] } {
  const a = ip(i + 1, phoneNet); const f = ip(i + 1, farNet)
  return {
    add: [
      { op: 'add', map: 'src_nat', key: addrPortKey(a, 4000), data: portKey(20000 + (i % 40000)), timeoutMs: 60_000 },
      { op: 'add', map: 'peer_dnat', key: addrPortKey(f, 7000), data: addrPortKey(a, 4000), timeoutMs: 60_000 }
    ],
    del: [
      { op: 'delete', map: 'src_nat', key: addrPortKey(a, 4000) },
      { op: 'delete', map: 'peer_dnat', key: addrPortKey(f, 7000) }
    ]
  }
}

/** µs one kernel-acked batch takes. */
function timed (maps: NftMaps, ops: NftOp[]): number {
  const t0 = process.hrtime.bigint()
  maps.apply(ops)
  return us(t0)
}

async function interactive (iter: number, base: number): Promise<{ add: number[], del: number[] }> {
  const p = spawn('nft', ['-i'], { stdio: ['pipe', 'pipe', 'pipe'] })
  let buf = ''
  let waiting: (() => void) | null = null
  const onData = (d: Buffer): void => {
    buf += d.toString()
    if (buf.includes('sync-marker') && waiting !== null) { const w = waiting; waiting = null; buf = ''; w() }
  }
  p.stdout.on('data', onData); p.stderr.on('data', onData)
  const run = async (line: string): Promise<number> => {
    const t0 = process.hrtime.bigint()
    await new Promise<void>(resolve => { waiting = resolve; p.stdin.write(`${line}\nsync-marker\n`) })
    return us(t0)
  }
  const add: number[] = []; const del: number[] = []
  for (let i = 0; i < iter; i++) {
    const e = elem(base + i)
    add.push(await run(`add element ip ${TABLE} src_nat { ${e.src} }; add element ip ${TABLE} peer_dnat { ${e.peer} }`))
    del.push(await run(`delete element ip ${TABLE} src_nat { ${e.srcDel} }; delete element ip ${TABLE} peer_dnat { ${e.peerDel} }`))
  }
  p.stdin.end()
  p.kill()
  return { add, del }
}

async function main (): Promise<void> {
  for (const n of SIZES) {
    createTable()
    const maps = NftMaps.open(TABLE)
    const tf = process.hrtime.bigint()
    fill(maps, n)
    const fillMs = us(tf) / 1000
    const add: number[] = []; const del: number[] = []
    for (let i = 0; i < ITER; i++) {
      const call = callOps(i, 172, 192)
      add.push(timed(maps, call.add))
      del.push(timed(maps, call.del))
    }
    // The same batches one every 10 ms, the process idle in between, as a gateway at 100 calls/s
    // issues them: what an idle gap costs the kernel's commit (warm back-to-back figures above).
    const iadd: number[] = []; const idel: number[] = []
    const idle = async (): Promise<void> => { await new Promise(resolve => setTimeout(resolve, 10)) }
    for (let i = 0; i < PACED_ITER; i++) {
      const call = callOps(i, 173, 193)
      await idle()
      iadd.push(timed(maps, call.add))
      await idle()
      idel.push(timed(maps, call.del))
    }
    maps.close()
    const padd: number[] = []; const pdel: number[] = []
    for (let i = 0; i < PROC_ITER; i++) {
      const e = elem(100_000 + i)
      let t0 = process.hrtime.bigint()
      nft(`add element ip ${TABLE} src_nat { ${e.src} }\nadd element ip ${TABLE} peer_dnat { ${e.peer} }\n`)
      padd.push(us(t0))
      t0 = process.hrtime.bigint()
      nft(`delete element ip ${TABLE} src_nat { ${e.srcDel} }\ndelete element ip ${TABLE} peer_dnat { ${e.peerDel} }\n`)
      pdel.push(us(t0))
    }
    const ia = await interactive(INTERACTIVE_ITER, 200_000)
    const row = (way: string, a: number[], d: number[]): string => JSON.stringify({
      part: 'nftmaps', elements: n, way, iterations: a.length,
      addP50: pct(a, 0.5), addP99: pct(a, 0.99), delP50: pct(d, 0.5), delP99: pct(d, 0.99), ...(way === 'netlink' ? { fillMs: Math.round(fillMs) } : {})
    })
    console.log(row('netlink', add, del))
    console.log(row('netlink paced', iadd, idel))
    console.log(row('nft -f process', padd, pdel))
    console.log(row('nft -i', ia.add, ia.del))
  }
  spawnSync('nft', ['delete', 'table', 'ip', TABLE])
}

main().catch(e => { console.error(e); process.exit(1) })
