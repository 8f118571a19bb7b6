// systemd's service notifications (systemd/sipalg.service: Type=notify, WatchdogSec): READY once
// sipalg processes the queue, STOPPING at a stop, and the watchdog ping from the event loop. The
// ping proves the loop turns: a sipalg stuck in a busy loop — the one failure a restart cannot
// notice by itself, and the one that matters when the unit runs it at a real-time priority — stops
// pinging, and systemd kills and restarts it (the restarted sipalg takes the calls over).
// Only the main process talks to systemd: a worker's liveness is its supervisor's business
// (src/workers/supervisor.ts).

import type { Logger } from 'pino'
import { logCoded } from '../log.js'
import { loadNative } from '../netfilter/native.js'

export interface NotifyEnv {
  NOTIFY_SOCKET?: string
  WATCHDOG_USEC?: string
  WATCHDOG_PID?: string
}

export interface Notifier {
  ready: (status: string) => void
  stopping: () => void
  /** Ends the watchdog pings (at exit). */
  close: () => void
}

/**
 * The watchdog interval systemd asked for (half its WatchdogSec, as sd_watchdog_enabled advises),
 * or null when there is none or it is meant for another process.
 */
export function watchdogIntervalMs (env: NotifyEnv, pid: number): number | null {
  const usec = Number(env.WATCHDOG_USEC)
  if (!Number.isFinite(usec) || usec <= 0) return null
  if (env.WATCHDOG_PID !== undefined && env.WATCHDOG_PID !== '' && Number(env.WATCHDOG_PID) !== pid) return null
  return Math.max(1, Math.floor(usec / 2000))
}

/** A notifier when systemd started this process with a notification socket, else null. */
export function systemdNotifier (env: NotifyEnv, pid: number, send: (socket: string, text: string) => void,
  onError: (what: string, e: Error) => void): Notifier | null {
  const socket = env.NOTIFY_SOCKET
  if (socket === undefined || socket === '') return null
  const failed = new Set<string>()
  const say = (text: string): void => {
    try {
      send(socket, text)
    } catch (e) {
      // Once per kind: a watchdog ping that fails every few seconds would flood the log.
      const what = text.split(/[=\n]/)[0]
      if (!failed.has(what)) onError(what, e as Error)
      failed.add(what)
    }
  }
  const every = watchdogIntervalMs(env, pid)
  const timer = every === null ? null : setInterval(() => { say('WATCHDOG=1') }, every)
  timer?.unref()
  return {
    ready: status => { say(`READY=1\nSTATUS=${status}\nMAINPID=${pid}`) },
    stopping: () => { say('STOPPING=1') },
    close: () => { if (timer !== null) clearInterval(timer) }
  }
}

/** The notifier of this process (null outside systemd), sending through the addon, failures logged as E322. */
export function startNotifier (log: Logger): Notifier | null {
  return systemdNotifier(process.env, process.pid, (socket, text) => { loadNative().sdNotify(socket, text) },
    (what, e) => { logCoded(log, 'warn', 'E322_SYSTEMD_NOTIFY_FAILED', { what, why: e.message }) })
}
