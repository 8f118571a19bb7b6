#!/usr/bin/env bash
# sipalg failover demo (make demo-ha): builds the two-gateway lab of docs/ha.md (test/lab/pair.sh:
# keepalived, conntrackd, redis-server in namespaces), starts sipalg on both gateways (g1 active,
# g2 standby following the store), places a call with RTP both ways from phone A (inside,
# 10.0.1.23) to phone B (outside, 203.0.113.9), and kills g1 mid-call the hard way: its daemons and
# sipalg killed by PID, its links down. Then it prints the audio gap each phone heard, what g2 did
# with the BYE that ended the call, and the kernel mappings left on each gateway.
#
#   test/lab/demo-ha.sh [--keep-logs]
#
# Everything happens in namespaces sipalg-<run id>-*; they are removed on exit (also on Ctrl-C).
set -euo pipefail
cd "$(dirname "$0")/../.."
HERE=test/lab
PAIR="$HERE/pair.sh"
SIPALG="node dist/src/cli/main.js"

keep=0
while [ $# -gt 0 ]; do
  case $1 in
    --keep-logs) keep=1; shift ;;
    *) echo "usage: $0 [--keep-logs]" >&2; exit 64 ;;
  esac
done
for tool in keepalived conntrackd redis-server sipp tcpdump; do
  command -v "$tool" >/dev/null || { echo "$tool is missing: make deps installs it" >&2; exit 69; }
done

RUNID=ha$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')$$
ns() { echo "sipalg-$RUNID-$1"; }
WORK=$(mktemp -d /tmp/sipalg-demo-ha-XXXXXX)
LABDIR="$WORK/pair"
PIDS=()

cleanup() {
  local p f
  for f in "$WORK"/*.sipalg.pid; do [ -e "$f" ] && kill "$(cat "$f")" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  bash "$PAIR" down "$RUNID" "$LABDIR" || true
  if [ "$keep" = 1 ]; then echo "logs kept in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

now_ms() { date +%s%3N; }
# until_ok SECONDS COMMAND...: polls every 50 ms
until_ok() {
  local end=$(( $(now_ms) + $1 * 1000 )); shift
  until "$@" 2>/dev/null; do [ "$(now_ms)" -lt "$end" ] || return 1; sleep 0.05; done
}
holds_vip() { ip -n "$(ns "$1")" -o -4 addr show dev wan0 | grep -q ' 203\.0\.113\.1/'; }
# status G [JS expression over the status document d]: `sipalg status --json` on gateway G
status() { ip netns exec "$(ns "$1")" $SIPALG status --json --socket "$WORK/$1.sock" | node -e "
  const d = JSON.parse(require('fs').readFileSync(0, 'utf8')); console.log(String($2))"; }
role_is() { [ "$(status "$1" 'd.ha.role')" = "$2" ]; }
mirrors_call() { [ "$(status "$1" 'd.ha.mirrored?.calls ?? 0')" = 1 ]; }
no_calls() { [ "$(status "$1" 'd.calls.length')" = 0 ]; }
listening() { [ -n "$(ip netns exec "$(ns "$1")" ss -Hlnu src "$2")" ]; }

# maps G: sipalg's kernel map elements on gateway G, one "map  key -> value" per line
maps() {
  local m
  for m in src_nat any_dnat peer_dnat; do
    { ip netns exec "$(ns "$1")" nft list map ip sipalg "$m" 2>/dev/null | tr -d '\n\t'; echo; } |
      sed -n 's/.*elements = { *\([^}]*\)}.*/\1/p' | tr ',' '\n' |
      sed -E 's/ timeout [^ ]+ expires [^ ]+//; s/ +/ /g; s/^ //; s/ +$//; s/ \. /:/g; s/ : / -> /' | sed "s/^/$m  /"
  done
}

# start_sipalg G: rules and `sipalg run` on gateway G, sharing the store on the sync link
start_sipalg() {
  local g=$1 n; n=$(ns "$1")
  ip netns exec "$n" $SIPALG rules install --queue 0 >/dev/null
  # In a subshell that waits for it: the SIGKILL of g1's sipalg is then not reported as "Killed".
  ( ip netns exec "$n" $SIPALG run --public 203.0.113.1 --inside 10.0.1.0/24 --outside-if wan0 --inside-if lan0 \
      --state-store redis://198.51.100.10:6379/0 --media-ports 20000-20999 --state-file "$WORK/$g.state.json" \
      --ready-file "$WORK/$g.ready" --control-socket "$WORK/$g.sock" --log-level debug >"$WORK/$g.log" 2>&1 &
    echo $! >"$WORK/$g.sipalg.pid"; wait $! ) 2>/dev/null &
  PIDS+=("$!")
}

# largest_gap FILE: the longest silence (ms) between two packets of a `tcpdump -tt` capture, and the packet count
largest_gap() {
  awk '/ IP / { t = $1 * 1000; if (n++ && t - last > gap) gap = t - last; last = t }
       END { printf "%d ms (%d packets)", gap + 0.5, n }' "$1"
}

echo "building the two-gateway lab $RUNID (keepalived, conntrackd, redis-server)"
bash "$PAIR" up "$RUNID" "$LABDIR" >/dev/null
until_ok 10 holds_vip g1 || { echo "keepalived gave g1 no VIP:"; cat "$LABDIR/g1-keepalived.log"; exit 1; }
start_sipalg g1
start_sipalg g2
until_ok 15 test -e "$WORK/g1.ready" && until_ok 15 test -e "$WORK/g2.ready" ||
  { echo "sipalg did not start:"; cat "$WORK/g1.log" "$WORK/g2.log"; exit 1; }
echo "   g1: $(status g1 'd.ha.role') (holds 10.0.1.1 and 203.0.113.1)   g2: $(status g2 'd.ha.role') (follows the store on 198.51.100.10)"

# ---- the call: RTP that ARRIVES at each phone is captured with its time
ip netns exec "$(ns a)" tcpdump -tt -i eth0 -nn -l -q -Q in "udp and dst host 10.0.1.23 and dst portrange 16000-16999" \
  >"$WORK/rtp-at-a.txt" 2>"$WORK/tcpdump-a.err" &
TA=$!; PIDS+=("$TA")
ip netns exec "$(ns b)" tcpdump -tt -i eth0 -nn -l -q -Q in "udp and dst host 203.0.113.9 and dst portrange 26000-26999" \
  >"$WORK/rtp-at-b.txt" 2>"$WORK/tcpdump-b.err" &
TB=$!; PIDS+=("$TB")
until_ok 5 grep -q 'listening on' "$WORK/tcpdump-a.err" && until_ok 5 grep -q 'listening on' "$WORK/tcpdump-b.err" ||
  { echo "tcpdump did not start" >&2; exit 1; }
( cd "$WORK" && exec ip netns exec "$(ns b)" sipp -sf "$OLDPWD/$HERE/sipp/uas-wait-bye.xml" -i 203.0.113.9 -p 5060 \
    -mi 203.0.113.9 -mp 26000 -m 1 -nostdin -timeout 30s -timeout_error -max_retrans 5 \
    -trace_msg -message_file "$WORK/b.msg" >"$WORK/b.out" 2>&1 ) &
SB=$!; PIDS+=("$SB")
until_ok 5 listening b 203.0.113.9:5060
( cd "$WORK" && exec ip netns exec "$(ns a)" sipp 203.0.113.9:5060 -sf "$OLDPWD/$HERE/sipp/uac-bye.xml" -i 10.0.1.23 -p 5060 \
    -mi 10.0.1.23 -mp 16000 -d 6000 -m 1 -nostdin -timeout 30s -timeout_error -max_retrans 5 \
    -trace_msg -message_file "$WORK/a.msg" >"$WORK/a.out" 2>&1 ) &
SA=$!; PIDS+=("$SA")
echo
echo "== call A 10.0.1.23 -> B 203.0.113.9 through g1, 6 s of audio both ways, A hangs up"
until_ok 10 mirrors_call g2 || { echo "g2 never mirrored the call"; exit 1; }
echo "   answered; g2 mirrors it: $(status g2 '`${d.ha.mirrored.calls} call, ${d.ha.mirrored.elements} kernel elements, replication lag ${d.ha.store.lagMs} ms`')"
sleep 1

# ---- g1 dies: keepalived (its parent frozen first, so it cannot start a new VRRP child), conntrackd
# and sipalg killed by PID, then its links down
echo
echo "== g1 fails hard 1 s into the audio: keepalived, conntrackd, sipalg killed (SIGKILL), links down"
FAILED_AT=$(now_ms)
kill -STOP "$(cat "$LABDIR/g1-keepalived-main.pid")" 2>/dev/null || true
for f in "$LABDIR/g1-vrrp.pid" "$LABDIR/g1-keepalived-main.pid" "$LABDIR/g1-conntrackd.pid" "$WORK/g1.sipalg.pid"; do
  kill -KILL "$(cat "$f")" 2>/dev/null || true
done
for dev in wan0 lan0 sync0; do ip -n "$(ns g1)" link set "$dev" down; done
until_ok 5 holds_vip g2 || { echo "g2 never took the VIPs"; exit 1; }
echo "   g2 holds the VIPs $(( $(now_ms) - FAILED_AT )) ms after the failure"
until_ok 3 role_is g2 active || { echo "sipalg on g2 did not become active"; exit 1; }
echo "   sipalg on g2: $(status g2 '`${d.ha.role}, took over in ${d.ha.lastChange.takeoverMs} ms`')"

set +e
wait "$SA"; RC_A=$?
wait "$SB"; RC_B=$?
set -e
sleep 0.2
kill -INT "$TA" "$TB" 2>/dev/null || true
wait "$TA" "$TB" 2>/dev/null || true
until_ok 3 no_calls g2 || true

echo
echo "== the media gap each phone heard"
echo "   at A (B -> A audio): $(largest_gap "$WORK/rtp-at-a.txt")"
echo "   at B (A -> B audio): $(largest_gap "$WORK/rtp-at-b.txt")"
if [ "$RC_A" = 0 ] && [ "$RC_B" = 0 ]; then echo "   the call ended normally (BYE/200) on both phones"; else echo "   the call FAILED (sipp exit A=$RC_A B=$RC_B)"; fi

echo
echo "== what g2 did with the BYE (from its log)"
node -e '
  const lines = require("fs").readFileSync(process.argv[1], "utf8").split("\n").filter(Boolean)
  const out = { role: [], sip: [], ended: [] }
  for (const l of lines) {
    let j; try { j = JSON.parse(l) } catch { continue }
    if (j.msg === "sip" && /BYE/.test(j.message))
      out.sip.push(`   ${j.direction.padEnd(8)} ${j.message.padEnd(10)} rewritten: ${j.changes?.length ? j.changes.join(", ") : "(nothing)"}`)
    else if (j.msg === "call ended") out.ended.push(`   the call ended on g2 (${j.reason ?? "?"}): its media mappings removed, ${j.callId}`)
    else if (j.msg?.startsWith("this gateway holds the public address")) out.role.push(`   role change: ${j.msg} (${j.calls} call, took over in ${j.takeoverMs} ms)`)
  }
  console.log([...out.role, ...out.sip, ...out.ended].join("\n"))' "$WORK/g2.log"
echo "   the BYE as B received it:"
awk '/^----------/ { inmsg = 0 } /message received/ { inmsg = 1; next } inmsg' "$WORK/b.msg" |
  awk '/^[[:space:]]*BYE / { on = 1 } on && /^[[:space:]]*$/ { exit } on' | grep -E '^ *(BYE|Via|Contact)' | tr -d '\r' | sed 's/^ */     /'

echo
echo "== kernel mappings left after the call (src_nat: phone -> public port; peer_dnat: far end:public port -> phone)"
echo "   g2, active now (the phone's signalling mapping stays until it is idle, as on one gateway):"
maps g2 | sed 's/^/     /'
echo "   g1, dead with its links down (a sipalg that starts there again follows the store and drops them):"
maps g1 | sed 's/^/     /'
