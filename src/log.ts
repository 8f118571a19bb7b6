// pino JSON logs by default (one line per call event, per message only at debug); --pretty for people.

import { pino, type Logger } from 'pino'

export function createLogger (level: string, pretty: boolean): Logger {
  if (!pretty) return pino({ level, base: { name: 'sipalg' } })
  return pino({
    level,
    base: undefined,
    transport: { target: 'pino-pretty', options: { colorize: process.stderr.isTTY, destination: 2, ignore: 'pid,hostname' } }
  })
}
