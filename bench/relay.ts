// Part 4 baseline: the seed's design — a userspace UDP relay in Node (one per call) forwarding media.
// Usage: node dist/bench/relay.js IN_IP IN_PORT OUT_IP OUT_PORT DST_IP DST_PORT SECONDS
// Prints {"relayed":N} when SECONDS have passed (bounded).
import { createSocket } from 'node:dgram'

const [inIp, inPort, outIp, outPort, dstIp, dstPort, seconds] = process.argv.slice(2)
const inside = createSocket({ type: 'udp4', recvBufferSize: 16 << 20 })
const outside = createSocket({ type: 'udp4', sendBufferSize: 16 << 20 })
let relayed = 0
const port = Number(dstPort)
inside.on('message', msg => { outside.send(msg, port, dstIp); relayed++ })
outside.bind(Number(outPort), outIp, () => {
  inside.bind(Number(inPort), inIp, () => { console.log('listening') })
})
setTimeout(() => {
  console.log(JSON.stringify({ relayed }))
  inside.close(); outside.close()
}, Number(seconds) * 1000)
