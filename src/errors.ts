// One catalogue of every error a person can see. Codes are stable: scripts and docs refer to them.
// Each entry says what went wrong and what to do about it.

export interface CatalogueEntry {
  readonly message: (d: Record<string, unknown>) => string
  readonly exitCode: number
}

const entry = (exitCode: number, message: (d: Record<string, unknown>) => string): CatalogueEntry =>
  ({ exitCode, message })

export const catalogue = {
  // --- usage and configuration (E1xx)
  E100_USAGE: entry(64, d => d.command === undefined
    ? `${d.detail}. Run "sipalg help" for the commands and flags.`
    : `${d.detail}. Run "sipalg help ${d.command}" for its flags.`),
  E101_BAD_FLAG: entry(64, d => `invalid value for ${d.flag}: ${d.value} (${d.why}); e.g. ${d.example}`),
  E102_CONFIG_READ: entry(78, d => `cannot read config file ${d.path}: ${d.why}; fix the path or drop --config`),
  E103_CONFIG_KEY: entry(78, d => `config key "${d.key}" ${d.why}; e.g. ${d.example}`),
  E104_NO_PUBLIC_ADDRESS: entry(78, d =>
    `no public address: interface ${d.iface} has no IPv4 address; set --public or public: in sipalg.yaml`),
  E105_NOT_SIP: entry(3, d => `input is not a SIP message: ${d.why}; give "sipalg rewrite" one SIP request or response on stdin`),
  E106_OUTPUT: entry(74, d => `cannot write to ${d.stream}: ${d.why}; check the file or device it goes to (disk full?)`),
  E107_PORT_IN_USE: entry(78, d =>
    `${d.key} ${d.port} cannot be bound (${d.why}); stop what listens there (ss -ltnp 'sport = :${d.port}') or set ${d.key}: to a free port (0 turns it off)`),
  E108_PATH_UNUSABLE: entry(73, d =>
    `${d.key} ${d.path} cannot be written (${d.why}); create its directory or set ${d.key}: to a writable path`),

  // --- privileges and host support (E2xx)
  E200_NOT_ROOT: entry(77, d => `${d.what} needs root (CAP_NET_ADMIN); run it with sudo or as root`),
  E201_NATIVE_MISSING: entry(69, d =>
    `the native addon is not built (${d.why}); run "make build" (needs libnetfilter-queue-dev, libnftnl-dev, libmnl-dev)`),
  E202_QUEUE_BUSY: entry(75, d =>
    `nfqueue ${d.queue} is already bound by another process; stop it or set queue: ${Number(d.queue) + 1} in sipalg.yaml`),
  E203_QUEUE_BIND: entry(69, d =>
    `cannot bind nfqueue ${d.queue}: ${d.why}; check that nfnetlink_queue is available ("sipalg doctor")`),
  E204_NFT: entry(69, d => `nftables refused ${d.what}: ${d.why}; run "sipalg doctor" to check nf_tables support`),
  E205_IPTABLES: entry(69, d => `iptables failed on ${d.what}: ${d.why}; is the iptables package installed?`),
  E206_KERNEL_HELPER: entry(78, () =>
    `the kernel's SIP helper (nf_conntrack_sip) is attached to SIP traffic here and would rewrite every message twice; ` +
    `remove its "CT --helper sip" rule or nft "ct helper" object`),
  E207_TRANSPARENT_SOCKET: entry(69, d =>
    `cannot ${d.what}: ${d.why}; a listener needs a free port and CAP_NET_ADMIN, an upstream leg a route to its destination`),
  E208_POLICY_ROUTING: entry(69, d =>
    `policy routing for SIP over TCP failed on "${d.what}": ${d.why}; is iproute2 installed, and is the rule preference or route table taken by something else?`),
  E209_NFTABLES_CONF_FLUSHES: entry(0, d =>
    `${d.path} starts with "flush ruleset" and has no sipalg rules: reloading it ("systemctl restart nftables") removes sipalg's queue rules ` +
    `and media accept until sipalg puts them back (within a second); add the rules from README "Firewall reloads" to ${d.path}`),

  // --- running daemon (E3xx)
  E300_DAEMON_DOWN: entry(69, d => `sipalg is not running (no control socket at ${d.path}); start it with "sipalg run"`),
  E301_ALREADY_RUNNING: entry(75, d =>
    `another sipalg answers on control socket ${d.path}; stop it, or give this one its own --control-socket, --table and --queue`),
  E302_STATE_CORRUPT: entry(0, d =>
    `state file ${d.path} cannot be used (${d.why}); starting without the saved calls (moved to ${d.movedTo}); calls in progress keep their kernel mappings until they expire; if it happens again, report it with that file`),
  E303_TABLE_HEALED: entry(0, d =>
    `nft table ${d.family} ${d.table} was ${d.what} by someone else (a firewall reload?); re-created it with ${d.elements} mappings of live calls and registrations; to avoid the gap, add sipalg's rules to your firewall config (README "Firewall reloads")`),
  E304_QUEUE_RULES_HEALED: entry(0, d =>
    `sipalg's queue rules (${d.family === 'ip6' ? 'ip6tables' : 'iptables'} chain SIPALG and its jump from FORWARD) were ${d.what}; re-installed them. Add them to your firewall's own config (README "Firewall reloads") so a reload keeps them`),
  E305_HEAL_FAILED: entry(0, d => `could not put back ${d.what}: ${d.why}; SIP may pass unrewritten until it works; sipalg retries every 250 ms`),
  E306_RELOAD_FAILED: entry(0, d => `config reload failed (${d.why}); keeping the running config; fix the file and send SIGHUP again`),
  E307_INTERNAL: entry(70, d =>
    `internal error (${d.why}); this is a sipalg bug: report it with this line and "sipalg doctor" output (SIPALG_DEBUG=1 prints the stack)`),
  E308_STATE_SAVE: entry(0, d =>
    `could not save call state to ${d.path} (${d.why}); a restarted sipalg would not take over calls in progress: free disk space or set state_file:`),
  E309_MAP_REFUSED: entry(0, d =>
    `the kernel refused a change to map ${d.map} (${d.why}); that call's media may not pass: check "nft list table ip ${d.table ?? 'sipalg'}" and "sipalg doctor"`),
  E310_CONNTRACK: entry(0, d =>
    `conntrack ${d.what} failed (${d.why}); ${d.effect}: check that nf_conntrack_netlink is loaded ("sipalg doctor")`),
  E311_CALL_LIMIT: entry(0, d =>
    `call refused by limit ${d.limit}; its message passed without a media mapping (no audio): raise the limit in sipalg.yaml if the host is legitimate`),
  E312_NOT_SIP: entry(0, d =>
    `not SIP on a SIP port (${d.why}); passed or dropped as the malformed: setting says; if a device speaks another protocol on this port, remove the port from sip_ports`),
  E313_HEP_UNREACHABLE: entry(0, d =>
    `HEP copies are not reaching the collector ${d.hep} (${d.why}); SIP is unaffected (counted in hep_errors); check the collector is up and reachable, or remove hep: from the config`),
  E314_STORE: entry(0, d =>
    `state store ${d.store}: ${d.what} failed (${d.why}); the other gateway's copy of the calls lags until it works (retried, nothing lost while sipalg runs): check that redis-server runs there and the sync link is up`),
  E315_LATCH_REFUSED: entry(0, d =>
    `a packet from ${d.source} to open media port ${d.publicPort} is not the stream's RTP; dropped, the port stays open for the real far end: check the source if it repeats (media_latching: signalling or off admits only known addresses)`),
  E316_TCP_FRAMING: entry(0, d =>
    `SIP/TCP connection ${d.phone} <-> ${d.far} broke SIP framing (${d.why}); both legs closed, the phone reconnects: if a device sends messages this large, raise tcp_limits (max_header_bytes, max_body_bytes)`),
  E317_TCP_REFUSED: entry(0, d =>
    `SIP/TCP connection from ${d.src} refused (${d.why}); if the host is legitimate, raise tcp_limits (connections, connections_per_host)`),
  E318_WORKER_DIED_RESTARTING: entry(0, d =>
    `worker ${d.worker} (queue ${d.queue}) exited (code ${d.exitCode}, signal ${d.signal}); restarting it in ${d.delayMs} ms, it takes over its calls from the kernel and its state file; if it keeps dying, check the log lines before this one and report the crash`),
  E319_WORKERS_WITH_STATE_STORE: entry(78, d =>
    `workers: ${d.workers} cannot share a state_store (a gateway pair replicates one process's state); set workers: 1 with state_store, or remove state_store`),
  E320_TCP_LISTEN_PORT_IN_USE: entry(78, d =>
    `tcp_listen_port ${d.port} cannot be bound (${d.why}); SIP over TCP is diverted to that port: stop what listens there (ss -ltnp 'sport = :${d.port}'), set tcp_listen_port: to a free port, or tcp: false to leave SIP over TCP unspliced`),
  E321_SDP_MIXED_FAMILIES: entry(0, d =>
    `the far end's SDP for call ${d.callId} offers media of the other address family than the phone ${d.phone} (${d.addresses}: ANAT or a dual-stack offer); passed as written, no pinhole for those streams: if the call has no audio, check that both ends offer the phone's family`),
  E322_SYSTEMD_NOTIFY_FAILED: entry(0, d =>
    `could not tell systemd "${d.what}" on $NOTIFY_SOCKET (${d.why}); with Type=notify systemd will think sipalg did not start or hangs and restart it: check that the unit's NotifyAccess is main, or run it with Type=simple and no WatchdogSec`),
  E323_WORKER_HUNG_KILLED: entry(0, d =>
    `worker ${d.worker} (queue ${d.queue}) has not answered for ${d.silentMs} ms (its event loop is stuck); killed so that it restarts and takes over its calls: report the log lines before this one`),
} as const

export type ErrorCode = keyof typeof catalogue

/** The short, stable form of a code ("E303") that log lines carry in their `code` field. */
export const shortCode = (code: ErrorCode): string => code.slice(0, 4)

export class SipalgError extends Error {
  readonly code: ErrorCode
  readonly exitCode: number
  readonly details: Record<string, unknown>
  constructor (code: ErrorCode, details: Record<string, unknown> = {}) {
    const e = catalogue[code]
    super(e.message(details))
    this.code = code
    this.exitCode = e.exitCode
    this.details = details
  }

  /** The line a person reads: stable code first so it can be searched for. */
  override toString (): string {
    return `sipalg: ${this.code.slice(0, 4)}: ${this.message}`
  }
}
