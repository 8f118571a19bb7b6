// RateLimiter (src/media/limits.ts): each limit refuses in its turn; per-second counts roll over.
import t from 'tap'
import { RateLimiter } from '../../src/media/limits.js'

t.test('concurrent calls: gateway-wide, then per host; a call that ends frees its slot', async t => {
  const l = new RateLimiter({ maxCalls: 3, callsPerHost: 2, callsPerSecond: 100, callsPerSecondPerHost: 100 }, () => 0)
  t.equal(l.admit('10.0.1.23', 0), null)
  l.started('10.0.1.23'); l.started('10.0.1.23')
  t.equal(l.admit('10.0.1.23', 2), 'calls_per_host')
  t.equal(l.admit('10.0.1.24', 2), null)
  t.equal(l.admit('10.0.1.24', 3), 'max_calls')
  l.ended('10.0.1.23')
  t.equal(l.admit('10.0.1.23', 1), null)
  l.ended('10.0.1.23'); l.ended('10.0.1.23')
  t.equal(l.admit('10.0.1.23', 0), null, 'ending more than started never goes negative')
})

t.test('new calls per second: gateway-wide and per host, counted per wall-clock second', async t => {
  let now = 5_000
  const l = new RateLimiter({ maxCalls: 100, callsPerHost: 100, callsPerSecond: 3, callsPerSecondPerHost: 2 }, () => now)
  l.started('10.0.1.23'); l.started('10.0.1.23')
  t.equal(l.admit('10.0.1.23', 2), 'calls_per_second_per_host')
  t.equal(l.admit('10.0.1.24', 2), null)
  l.started('10.0.1.24')
  t.equal(l.admit('10.0.1.25', 3), 'calls_per_second')
  now += 1000
  t.equal(l.admit('10.0.1.23', 3), null, 'a new second')
})
