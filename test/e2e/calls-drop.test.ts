import t from 'tap'
import { callSuite } from './calls.js'

t.test('calls through sipalg, gateway FORWARD policy DROP', async t => { await callSuite(t, 'drop') })
