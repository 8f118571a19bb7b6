// Whether an interface holds an address (the VIP keepalived moves), seen from the kernel's netlink
// address events. Node has no netlink socket of its own, so `ip -o monitor address` runs as a
// child and each line it prints is one event ("Deleted " in front for a removal); the initial
// state comes from `ip -o addr show`. An event reaches sipalg within a few ms of the change
// (test/netfilter/addrwatch.test.ts measures it), where a poll would cost a getifaddrs dump per
// period for a delay of half the period. A child that dies is started again (and the state read
// again), so a missed event costs at most RESTART_MS.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { createInterface } from 'node:readline'

const RESTART_MS = 200

/** One `ip -o` address line: its interface, address, and whether it is a removal. */
export function parseAddressLine (line: string): { deleted: boolean, iface: string, address: string } | null {
  const m = /^(Deleted\s+)?\d+:\s+(\S+?)(?:@\S+)?\s+inet6?\s+([0-9a-fA-F.:]+)\//.exec(line)
  return m === null ? null : { deleted: m[1] !== undefined, iface: m[2], address: m[3] }
}

export interface AddressWatchOptions {
  iface: string
  address: string
  /** Called with the new state on each change (not for the initial one). */
  onChange: (held: boolean) => void
  /** `ip` arguments before the command, e.g. ['-n', 'ns'] (tests). */
  ipArgs?: string[]
}

export class AddressWatch {
  private child: ChildProcess | null = null
  private restartTimer: NodeJS.Timeout | null = null
  private stopped = false
  held: boolean

  constructor (private readonly opts: AddressWatchOptions) {
    this.held = this.read()
    this.startChild()
  }

  stop (): void {
    this.stopped = true
    if (this.restartTimer !== null) clearTimeout(this.restartTimer)
    this.child?.kill()
    this.child = null
  }

  /** The interface's addresses now, from `ip -o addr show dev <iface>`. */
  private read (): boolean {
    const r = spawnSync('ip', [...(this.opts.ipArgs ?? []), '-o', 'addr', 'show', 'dev', this.opts.iface], { encoding: 'utf8', timeout: 2000 })
    return (r.stdout ?? '').split('\n').some(l => parseAddressLine(l)?.address === this.opts.address)
  }

  private set (held: boolean): void {
    if (held === this.held) return
    this.held = held
    this.opts.onChange(held)
  }

  private startChild (): void {
    const child = spawn('ip', [...(this.opts.ipArgs ?? []), '-o', 'monitor', 'address', 'dev', this.opts.iface], { stdio: ['ignore', 'pipe', 'ignore'] })
    this.child = child
    child.on('error', () => {})
    // An address change between the read and the monitor's start would be missed: read once more.
    setTimeout(() => { if (!this.stopped && this.child === child) this.set(this.read()) }, 100).unref()
    createInterface({ input: child.stdout }).on('line', line => {
      const ev = parseAddressLine(line)
      if (ev !== null && ev.address === this.opts.address && ev.iface === this.opts.iface) this.set(!ev.deleted)
    })
    child.on('exit', () => {
      if (this.stopped || this.child !== child) return
      this.child = null
      this.restartTimer = setTimeout(() => {
        this.restartTimer = null
        if (this.stopped) return
        this.startChild()
        this.set(this.read())
      }, RESTART_MS)
    })
  }
}
