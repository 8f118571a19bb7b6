// Mappings never outlive their call: sipalg ends unanswered/abandoned calls by timeout, and if
// sipalg itself dies the kernel expires every element on its own.

import t from 'tap'
import { Lab } from '../lab/lab.js'
import { startSipalg } from '../lab/sipalg.js'

const invite = (callId: string, rtp: number): string => {
  const body = `v=0\r\no=- 1 1 IN IP4 10.0.1.23\r\ns=-\r\nc=IN IP4 10.0.1.23\r\nt=0 0\r\nm=audio ${rtp} RTP/AVP 0\r\n`
  return `INVITE sip:bob@203.0.113.9 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.1.23:5060;branch=z9hG4bK-${callId}\r\n` +
    `From: <sip:alice@10.0.1.23>;tag=${callId}\r\nTo: <sip:bob@203.0.113.9>\r\nCall-ID: ${callId}\r\nCSeq: 1 INVITE\r\n` +
    `Contact: <sip:alice@10.0.1.23:5060>\r\nContent-Type: application/sdp\r\nContent-Length: ${body.length}\r\n\r\n${body}`
}

const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }

async function until (what: () => Promise<boolean>, ms: number): Promise<boolean> {
  const end = Date.now() + ms
  while (Date.now() < end) { if (await what()) return true; await sleep(200) }
  return await what()
}

t.test('abandoned calls and a dead sipalg leave no mapping behind', async t => {
  const lab = await Lab.up({ forwardPolicy: 'drop' })
  t.teardown(async () => { await lab.down() })
  await t.test('an INVITE nobody answers: sipalg removes its mappings after the ring timeout', async t => {
    // Kernel element lifetime 60 s: only sipalg's own timeout can remove them within the test.
    const alg = await startSipalg(lab, { config: 'timeouts: { ring: 2, element: 60, signalling: 3 }\n' })
    t.teardown(async () => { await alg.stop() })
    await lab.sendUdp('a', '203.0.113.9', 5060, 1, invite('abandoned-1', 4000), 5060)
    t.equal((await alg.elements('any_dnat')).length, 2, 'RTP and RTCP mapped while ringing')
    t.equal((await alg.status()).calls.length, 1)
    t.ok(await until(async () => (await alg.elements('any_dnat')).length === 0, 5000), 'removed after ~2 s')
    t.ok(await until(async () => /"reason":"no answer"/.test(alg.log()), 2000), 'logged as "no answer"')
    t.equal((await alg.status()).calls.length, 0)
  })

  await t.test('sipalg killed with -9 while a call rings: the kernel expires the elements by itself', async t => {
    const alg = await startSipalg(lab, { config: 'timeouts: { element: 4, signalling: 4 }\n' })
    await lab.sendUdp('a', '203.0.113.9', 5060, 1, invite('abandoned-2', 4100), 5060)
    t.equal((await alg.elements('any_dnat')).length, 2)
    await alg.stop('SIGKILL')
    t.equal((await alg.elements('any_dnat')).length, 2, 'still there right after the kill')
    t.ok(await until(async () => (await alg.elements('any_dnat')).length === 0 && (await alg.elements('src_nat')).length === 0, 7000),
      'gone within the element timeout (4 s) with nobody to remove them')
  })
})
