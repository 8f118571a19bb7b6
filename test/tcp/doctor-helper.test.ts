// sipalg doctor: the kernel's SIP helper is reported for UDP and for TCP separately.
import t from 'tap'
import { sipHelperAttached } from '../../src/cli/doctor.js'

t.test('iptables CT rules and nft helper rules/objects, by protocol', async t => {
  t.same(sipHelperAttached('', ''), { udp: false, tcp: false })
  t.same(sipHelperAttached('-A PREROUTING -p udp -m udp --dport 5060 -j CT --helper sip', ''), { udp: true, tcp: false })
  t.same(sipHelperAttached('-A PREROUTING -p tcp -m tcp --dport 5060 -j CT --helper sip', ''), { udp: false, tcp: true })
  t.same(sipHelperAttached('-A PREROUTING -j CT --helper sip', ''), { udp: true, tcp: true }, 'no protocol: both')
  t.same(sipHelperAttached('', '\t\tct helper sip-5060 {\n\t\ttype "sip" protocol tcp\n'), { udp: false, tcp: true })
  t.same(sipHelperAttached('', '\t\ttcp dport 5060 ct helper set "sip-5060"\n'), { udp: false, tcp: true })
  t.same(sipHelperAttached('', '\t\tudp dport 5060 ct helper set "sip-5060"\n'), { udp: true, tcp: false })
  t.same(sipHelperAttached('-A PREROUTING -p tcp --dport 80 -j CT --helper ftp', ''), { udp: false, tcp: false }, 'another helper')
})
