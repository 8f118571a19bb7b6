// pino JSON logs by default (one line per call event, per message only at debug); --pretty for people.

import { pino, type Logger } from 'pino'
import { SipalgError, shortCode, type ErrorCode } from './errors.js'

export function createLogger (level: string, pretty: boolean): Logger {
  if (!pretty) return pino({ level, base: { name: 'sipalg' } })
  return pino({
    level,
    base: undefined,
    transport: { target: 'pino-pretty', options: { colorize: process.stderr.isTTY, destination: 2, ignore: 'pid,hostname' } }
  })
}

/**
 * A catalogue entry that is logged rather than ending sipalg (a healed ruleset, a corrupt state
 * file): the stable code goes in the line's `code` field and at the start of its message.
 */
export function logCoded (log: Logger, level: 'warn' | 'error' | 'info', code: ErrorCode, details: Record<string, unknown> = {}): void {
  const e = new SipalgError(code, details)
  log[level]({ code: shortCode(code), ...details }, `${shortCode(code)}: ${e.message}`)
}
