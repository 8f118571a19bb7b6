// Opens the store `state_store` names (src/store/store.ts): the state file unless a Redis URL is given.

import type { Logger } from 'pino'
import { shortCode } from '../errors.js'
import { FileStore } from './file.js'
import { RedisStore } from './redis.js'
import { parseStoreLocation, type StateStore } from './store.js'

export function openStore (value: string | null, statePath: string, table: string, log: Logger): StateStore {
  const where = parseStoreLocation(value, statePath)
  if (where.kind === 'file') {
    return new FileStore(where.path, e => {
      log.warn({ code: shortCode('E308_STATE_SAVE'), err: e.message, path: where.path }, 'could not save call state')
    })
  }
  const { kind: _, ...at } = where
  const store: RedisStore = new RedisStore(at, table, {
    writeFailed: (e, pending) => { log.warn({ code: shortCode('E314_STORE'), err: e.message, pending, store: store.name }, 'state store writes failing; retrying') },
    writeRecovered: downMs => { log.info({ downMs, store: store.name }, 'state store writes work again; pending changes written') }
  })
  return store
}
