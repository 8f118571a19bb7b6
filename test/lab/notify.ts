// A stand-in for systemd's notification socket: a python3 process bound to a unix datagram socket
// (a path, or @name in the abstract namespace — per network namespace), printing each datagram it
// receives with the time it came. Node cannot bind a unix datagram socket itself.

import { spawn, type ChildProcess } from 'node:child_process'

export interface NotifySocket {
  /** Every datagram so far, in order, with its arrival (ms since the epoch). */
  messages: Array<{ at: number, text: string }>
  /** Resolves once at least n datagrams came (rejects after timeoutMs). */
  until: (n: number, timeoutMs?: number) => Promise<void>
  close: () => void
}

const RECEIVER = `
import json, socket, sys, time
a = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind('\\0' + a[1:] if a.startswith('@') else a)
print('ready', flush=True)
while True:
    text = s.recv(4096).decode()
    print(json.dumps({'at': time.time() * 1000, 'text': text}), flush=True)
`

/** Binds the socket (optionally through `exec`, e.g. ip netns exec) and resolves once it listens. */
export async function notifySocket (address: string, exec: string[] = []): Promise<NotifySocket> {
  const cmd = [...exec, 'python3', '-c', RECEIVER, address]
  const child: ChildProcess = spawn(cmd[0], cmd.slice(1), { stdio: ['ignore', 'pipe', 'inherit'] })
  const messages: NotifySocket['messages'] = []
  let buf = ''
  let listening: () => void = () => {}
  const ready = new Promise<void>((resolve, reject) => {
    listening = resolve
    child.once('exit', code => { reject(new Error(`notify receiver exited (${String(code)}) before listening`)) })
  })
  child.stdout?.setEncoding('utf8').on('data', (d: string) => {
    buf += d
    const lines = buf.split('\n')
    buf = lines.pop() ?? ''
    for (const l of lines) {
      if (l === 'ready') listening()
      else if (l !== '') messages.push(JSON.parse(l) as { at: number, text: string })
    }
  })
  await ready
  return {
    messages,
    until: async (n, timeoutMs = 5000) => {
      const end = Date.now() + timeoutMs
      while (messages.length < n) {
        if (Date.now() > end) throw new Error(`${messages.length} of ${n} notifications in ${timeoutMs} ms`)
        await new Promise(resolve => setTimeout(resolve, 10))
      }
    },
    close: () => { child.kill() }
  }
}
