#!/usr/bin/env bash
# sipalg demo (make demo): builds the lab, places a call from phone A (inside, 10.0.1.23) to phone B
# (outside, 203.0.113.9) through plain NAT and prints what went wrong; then starts
# sipalg on the gateway, installs its rules, places the same call and prints what changed — ending
# with the ladder of that call as `sipalg trace` drew it live, and the plain-NAT call (captured with
# tcpdump -w on the gateway) as `sipalg trace --pcap` says sipalg would have rewritten it. Last, one
# IPv6 call A 2001:db8:1::23 -> B 2001:db8:2::9 (nothing rewritten, only pinholes opened).
#
#   test/lab/demo.sh [--forward-policy accept|drop] [--duration MS] [--keep-logs]
#
# Everything happens in namespaces sipalg-<run id>-*; they are removed on exit (also on Ctrl-C).
set -euo pipefail
cd "$(dirname "$0")/../.."
HERE=test/lab
LAB="$HERE/lab.sh"

policy=drop duration=3000 keep=0
while [ $# -gt 0 ]; do
  case $1 in
    --forward-policy) policy=${2:?}; shift 2 ;;
    --duration) duration=${2:?}; shift 2 ;;
    --keep-logs) keep=1; shift ;;
    *) echo "usage: $0 [--forward-policy accept|drop] [--duration MS] [--keep-logs]" >&2; exit 64 ;;
  esac
done
[[ $duration =~ ^[0-9]+$ ]] && [ "$duration" -le 7000 ] || { echo "--duration: 0-7000 ms" >&2; exit 64; }

RUNID=demo$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')$$
GW=sipalg-$RUNID-gw A=sipalg-$RUNID-a B=sipalg-$RUNID-b
WORK=$(mktemp -d /tmp/sipalg-demo-XXXXXX)
PIDS=()

cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  bash "$LAB" down "$RUNID" || true
  if [ "$keep" = 1 ]; then echo "logs kept in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Remove a PID from PIDS once it has been waited for.
forget() { local p keep_pids=(); for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep_pids+=("$p"); done; PIDS=("${keep_pids[@]}"); }

# wait_for FILE PATTERN: up to 5 s
wait_for() { local i; for i in $(seq 1 100); do grep -q -- "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done; return 1; }

# run_call LABEL: one call A -> B with RTP both ways, A hangs up after $duration ms. Logs in $WORK/LABEL.
run_call() {
  local label=$1 d="$WORK/$1" ta tb sa sb rc_a rc_b
  mkdir -p "$d"
  ip netns exec "$GW" conntrack -F >/dev/null 2>&1 || true
  ip netns exec "$GW" conntrack -F expect >/dev/null 2>&1 || true
  # RTP that ARRIVES at each phone (inbound on its eth0, to its own address and media port range).
  ip netns exec "$A" tcpdump -i eth0 -nn -l -q -Q in "udp and dst host 10.0.1.23 and dst portrange 16000-16999" \
    >"$d/rtp-at-a.txt" 2>"$d/tcpdump-a.err" &
  ta=$!; PIDS+=("$ta")
  ip netns exec "$B" tcpdump -i eth0 -nn -l -q -Q in "udp and dst host 203.0.113.9 and dst portrange 26000-26999" \
    >"$d/rtp-at-b.txt" 2>"$d/tcpdump-b.err" &
  tb=$!; PIDS+=("$tb")
  wait_for "$d/tcpdump-a.err" 'listening on' && wait_for "$d/tcpdump-b.err" 'listening on' ||
    { echo "tcpdump did not start" >&2; return 1; }

  ( cd "$d" && exec ip netns exec "$B" sipp -sf "$OLDPWD/$HERE/sipp/uas-wait-bye.xml" -i 203.0.113.9 -p 5060 \
      -mi 203.0.113.9 -mp 26000 -m 1 -nostdin -timeout 30s -timeout_error -max_retrans 5 \
      -trace_msg -message_file "$d/b.msg" >"$d/b.out" 2>&1 ) &
  sb=$!; PIDS+=("$sb")
  local i; for i in $(seq 1 100); do
    [ -n "$(ip netns exec "$B" ss -Hlnu src 203.0.113.9:5060)" ] && break; sleep 0.05
  done
  set +e
  ( cd "$d" && exec ip netns exec "$A" sipp 203.0.113.9:5060 -sf "$OLDPWD/$HERE/sipp/uac-bye.xml" -i 10.0.1.23 -p 5060 \
      -mi 10.0.1.23 -mp 16000 -d "$duration" -m 1 -nostdin -timeout 30s -timeout_error -max_retrans 5 \
      -trace_msg -message_file "$d/a.msg" >"$d/a.out" 2>&1 ) &
  sa=$!; PIDS+=("$sa")   # in the background + wait, so Ctrl-C/TERM run the cleanup trap at once
  wait "$sa"; rc_a=$?; forget "$sa"
  wait "$sb"; rc_b=$?; forget "$sb"
  set -e
  sleep 0.2
  kill -INT "$ta" "$tb" 2>/dev/null || true
  wait "$ta" 2>/dev/null || true; forget "$ta"
  wait "$tb" 2>/dev/null || true; forget "$tb"
  echo "$rc_a" >"$d/rc-a"; echo "$rc_b" >"$d/rc-b"
}

# first_received FILE START: the first message received in a sipp -trace_msg log whose start line begins with START
first_received() {
  awk -v start="$2" '
    /^----------/ { if (found) exit; inmsg = 0; next }
    /message received/ { inmsg = 1; first = 1; next }
    inmsg && first && /^[[:space:]]*$/ { next }
    inmsg && first { first = 0; if (index($0, start) == 1) found = 1; else { inmsg = 0; next } }
    found { sub(/\r$/, ""); print }
  ' "$1"
}

# summary LABEL: human summary of run_call LABEL (reused for the plain-NAT run and the sipalg run)
summary() {
  local label=$1 d="$WORK/$1" rc_a rc_b rtp_a rtp_b invite result
  rc_a=$(cat "$d/rc-a"); rc_b=$(cat "$d/rc-b")
  rtp_a=$(grep -c ' > ' "$d/rtp-at-a.txt" || true)
  rtp_b=$(grep -c ' > ' "$d/rtp-at-b.txt" || true)
  invite=$(first_received "$d/b.msg" INVITE)
  if [ "$rc_a" = 0 ] && [ "$rc_b" = 0 ]; then result="connected (200 OK, ACK, BYE/200)"; else result="FAILED (sipp exit A=$rc_a B=$rc_b)"; fi
  echo
  echo "== $label"
  echo "   call A 10.0.1.23 -> B 203.0.113.9: $result"
  echo "   RTP packets that arrived at A: $rtp_a   (sent by B)"
  echo "   RTP packets that arrived at B: $rtp_b   (sent by A; from $(awk '/ > / {print $3}' "$d/rtp-at-b.txt" | sort -u | paste -sd' '))"
  echo "   what B saw in the INVITE:"
  grep -E '^(Via|v|Contact|m) *:' <<<"$invite" | sed 's/^/     /' || true
  grep -E '^(c|o|m)=' <<<"$invite" | sed 's/^/     /' || true
  # From/To and Call-ID are identity, left as written (spec §3); everything that routes is checked.
  if grep -vE '^(From|To|Call-ID|f|t|i) *:' <<<"$invite" | grep -qE '(^|[^0-9])10\.[0-9]+\.[0-9]+\.[0-9]+'; then
    echo "   -> B was told a private address: its replies/audio to 10.0.1.23 cannot be routed$(grep -q 'Network is unreachable' "$d/b.out" && echo ' (B: "Network is unreachable")')"
  else
    echo "   -> no private address reached B"
  fi
  if [ "$rtp_a" -gt 0 ] && [ "$rtp_b" -gt 0 ]; then echo "   -> two-way audio"; else echo "   -> ONE-WAY or no audio"; fi
}

echo "building lab $RUNID (FORWARD policy $policy)"
bash "$LAB" up "$RUNID" --forward-policy "$policy" >/dev/null

# ---- 1. plain NAT, no sipalg (SIP captured on the gateway's inside interface for sipalg trace --pcap)
ip netns exec "$GW" tcpdump -i lan0 -nn -U --immediate-mode -w "$WORK/plain-nat.pcap" "udp port 5060" 2>"$WORK/tcpdump-gw.err" &
TD=$!; PIDS+=("$TD")
wait_for "$WORK/tcpdump-gw.err" 'listening on' || { echo "tcpdump on the gateway did not start" >&2; exit 1; }
run_call plain-nat
kill -INT "$TD" 2>/dev/null || true; wait "$TD" 2>/dev/null || true; forget "$TD"
summary plain-nat

# maps: sipalg's kernel map elements, one "map  key -> value" per line
maps() {
  local m
  for m in src_nat any_dnat peer_dnat; do
    { ip netns exec "$GW" nft list map ip sipalg "$m" 2>/dev/null | tr -d '\n\t'; echo; } | sed -n 's/.*elements = { *\([^}]*\)}.*/\1/p' |
      tr ',' '\n' | sed -E 's/ timeout [^ ]+ expires [^ ]+//; s/ +/ /g; s/^ //; s/ \. /:/g; s/ : / -> /' | sed "s/^/$m  /"
  done
}

# ---- 2. with sipalg on the gateway
SIPALG="node dist/src/cli/main.js"
ready="$WORK/sipalg.ready" sock="$WORK/sipalg.sock"
ip netns exec "$GW" $SIPALG rules install --queue 0 >/dev/null
ip netns exec "$GW" $SIPALG run --public 203.0.113.1 --inside 10.0.1.0/24 --inside 2001:db8:1::/64 --outside-if wan0 --inside-if lan0 \
  --ready-file "$ready" --control-socket "$sock" --state-file "$WORK/state.json" --log-level debug >"$WORK/sipalg.log" 2>&1 &
SIPALG_PID=$!; PIDS+=("$SIPALG_PID")
for i in $(seq 1 100); do [ -e "$ready" ] && break; sleep 0.1; done
[ -e "$ready" ] || { echo "sipalg did not start:"; cat "$WORK/sipalg.log"; exit 1; }

# Print the media mappings while the call is up (sampled once, mid-call).
( sleep "$(awk -v d="$duration" 'BEGIN { printf "%.1f", d / 2000 + 0.5 }')"
  maps >"$WORK/mid-call-maps.txt" ) &
PIDS+=("$!")
# A live `sipalg trace` client, connected before the call, records the ladder as sipalg draws it.
ip netns exec "$GW" $SIPALG trace --socket "$sock" >"$WORK/trace.txt" 2>"$WORK/trace.err" &
TR=$!; PIDS+=("$TR")
wait_for "$WORK/trace.txt" 'inside phone' || { echo "sipalg trace did not connect:"; cat "$WORK/trace.err"; exit 1; }
run_call with-sipalg
sleep 0.2
kill -INT "$TR" 2>/dev/null || true; wait "$TR" 2>/dev/null || true; forget "$TR"
summary with-sipalg

echo
echo "== what sipalg did (from its log)"
node -e '
  const lines = require("fs").readFileSync(process.argv[1], "utf8").split("\n").filter(Boolean)
  for (const l of lines) {
    let j; try { j = JSON.parse(l) } catch { continue }
    if (j.msg === "sip" && j.changes?.length) console.log(`   ${j.direction.padEnd(8)} ${j.message.padEnd(18)} ${j.changes.join(", ")}`)
    else if (j.msg === "sip") console.log(`   ${j.direction.padEnd(8)} ${j.message.padEnd(18)} (unchanged${j.leftAlone ? ": " + j.leftAlone : ""})`)
    else if (j.msg === "call started" || j.msg === "call ended") console.log(`   ${j.msg}: ${j.callId}${j.reason ? " (" + j.reason + ")" : ""}`)
  }' "$WORK/sipalg.log"
echo "   kernel mappings during the call (src_nat: phone -> public port; peer_dnat: far end:public port -> phone):"
sed 's/^/     /' "$WORK/mid-call-maps.txt"
echo "   kernel mappings after the BYE (the phone's signalling mapping stays until it is idle):"
maps | sed 's/^/     /'
ip netns exec "$GW" $SIPALG status --socket "$sock" | sed -n '/^Counters/,/^$/p' | sed 's/^/   /'

echo
echo "== the call with sipalg, as 'sipalg trace' drew it live (◆ = sipalg rewrote the message, ┼ = passed as is)"
sed 's/^/   /' "$WORK/trace.txt"
echo
echo "== the plain-NAT call from section 1, as sipalg would have rewritten it:"
echo "   sipalg trace --pcap plain-nat.pcap --public 203.0.113.1 --inside 10.0.1.0/24  (tcpdump -w on the gateway's lan0)"
$SIPALG trace --pcap "$WORK/plain-nat.pcap" --public 203.0.113.1 --inside 10.0.1.0/24 | sed 's/^/   /'

# ---- 3. one IPv6 call through the same sipalg: nothing to rewrite, only the negotiated media let in
pinholes6() {
  { ip netns exec "$GW" nft list set ip6 sipalg pinhole6 2>/dev/null | tr -d '\n\t'; echo; } | sed -n 's/.*elements = { *\([^}]*\)}.*/\1/p' |
    tr ',' '\n' | sed -E 's/ timeout [^ ]+ expires [^ ]+//; s/ +/ /g; s/^ //' | sed 's/^/     pinhole6  /'
}
echo
echo "== IPv6: call A 2001:db8:1::23 -> B 2001:db8:2::9 (no NAT; the gateway's IPv6 forward policy: $policy)"
ip netns exec "$B" node "$HERE/udp-phone.mjs" uas 2001:db8:2::9 26000 >"$WORK/ipv6-b.json" 2>&1 &
P6B=$!; PIDS+=("$P6B")
sleep 0.3
( for i in $(seq 1 30); do sleep 0.1; pinholes6 >"$WORK/ipv6-pinholes.txt"; [ -s "$WORK/ipv6-pinholes.txt" ] && break; done ) &
PIDS+=("$!")
ip netns exec "$A" node "$HERE/udp-phone.mjs" uac 2001:db8:1::23 16000 2001:db8:2::9 2000 >"$WORK/ipv6-a.json" 2>&1 || true
wait "$P6B" 2>/dev/null || true; forget "$P6B"
node -e '
  const [a, b] = process.argv.slice(1).map(f => { try { return JSON.parse(require("fs").readFileSync(f, "utf8")) } catch { return { ok: false, rtpIn: 0 } } })
  console.log(`   call: ${a.ok && b.ok ? "connected (200 OK, ACK, BYE/200)" : "FAILED"}`)
  console.log(`   RTP packets that arrived at A: ${a.rtpIn}   (sent by B)`)
  console.log(`   RTP packets that arrived at B: ${b.rtpIn}   (sent by A)`)
  console.log(`   -> ${a.rtpIn > 0 && b.rtpIn > 0 ? "two-way audio" : "ONE-WAY or no audio"}; SDP passed as written (c=IN IP6 ${a.farMedia?.ip ?? "?"})`)
' "$WORK/ipv6-a.json" "$WORK/ipv6-b.json"
echo "   kernel pinholes during the call (far address . phone address . phone port):"
cat "$WORK/ipv6-pinholes.txt"
echo "   after the BYE: $(pinholes6 | grep -c pinhole6 || true) pinholes left"
