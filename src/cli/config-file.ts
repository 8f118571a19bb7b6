// Reading sipalg.yaml: the file and YAML side of the configuration, kept in the CLI shell so that
// src/config.ts (merge and validation, imported by the core) stays pure.

import { readFileSync } from 'node:fs'
import { parse as parseYaml } from 'yaml'
import { SipalgError } from '../errors.js'

/** The file's top-level mapping, unvalidated: a layer for buildConfig in src/config.ts. */
export function loadConfigFile (path: string): Record<string, unknown> {
  let text: string
  try { text = readFileSync(path, 'utf8') } catch (e) { throw new SipalgError('E102_CONFIG_READ', { path, why: (e as Error).message }) }
  let doc: unknown
  try { doc = parseYaml(text) } catch (e) { throw new SipalgError('E102_CONFIG_READ', { path, why: (e as Error).message.split('\n')[0] }) }
  if (doc === null || doc === undefined) return {}
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new SipalgError('E102_CONFIG_READ', { path, why: 'top level must be a mapping of keys' })
  return doc as Record<string, unknown>
}
