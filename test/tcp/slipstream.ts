// The slipstream probe of the SIP/TCP tests: an HTTP POST whose body is a real-shaped REGISTER
// from an inside phone. Parsed as SIP it would ask for a registration mapping; it must open nothing.
const crlf = (s: string): string => s.replace(/\n/g, '\r\n')

export function postCarryingRegister (phone: string, far: string, port: number): string {
  const reg = crlf(`REGISTER sip:${far} SIP/2.0
Via: SIP/2.0/TCP ${phone}:${port};branch=z9hG4bK-slip
From: <sip:alice@${far}>;tag=s1
To: <sip:alice@${far}>
Call-ID: slip-1
CSeq: 1 REGISTER
Contact: <sip:alice@${phone}:${port};transport=tcp>
Expires: 3600
Content-Length: 0

`)
  return crlf(`POST /sip HTTP/1.1
Host: ${far}
Content-Type: text/plain
Content-Length: ${reg.length}

`) + reg
}
