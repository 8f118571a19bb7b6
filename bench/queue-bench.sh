#!/usr/bin/env bash
# NFQUEUE throughput through the native binding: accept-with-new-payload (JS rewrite + checksum) for
# COUNT 500-byte UDP datagrams sent paced over loopback inside a private netns, at rising rates.
# Reports the highest rate with 0 loss (every datagram received rewritten, no overrun / id gap / ENOBUFS).
# Usage: bench/queue-bench.sh [COUNT=100000] [RATES="50000 75000 100000 125000 150000"]
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT=${1:-100000}
RATES=${2:-"50000 75000 100000 125000 150000"}
export POLICY=${POLICY:-rewrite}   # rewrite | accept
NATIVE_CSUM=${NATIVE_CSUM:-false} # true: lengths/checksums by fixIpv4Udp (C) instead of the JS helper
NS="sipalg-$(head -c4 /dev/urandom | od -An -tx1 | tr -d ' \n')-qb"
BIN=$(mktemp /tmp/sipalg-queue-udp.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  ip netns del "$NS" 2>/dev/null || true
  rm -f "$BIN"
}
trap cleanup EXIT
cc -O2 -o "$BIN" bench/queue-udp.c
[ -f dist/src/netfilter/queue.js ] || npx tsc -p tsconfig.json >/dev/null 2>&1 || true
ip netns add "$NS"
ip -n "$NS" link set lo up
ip netns exec "$NS" iptables -A OUTPUT -p udp --dport 7000 -j NFQUEUE --queue-num 7
best=0
for RATE in $RATES; do
  out=$(mktemp); rout=$(mktemp)
  ip netns exec "$NS" node test/netfilter/fixtures/queue-driver.mjs \
    "{\"mode\":\"consume\",\"queue\":7,\"policy\":\"$POLICY\",\"nativeCsum\":$NATIVE_CSUM,\"count\":$COUNT,\"seconds\":60}" >"$out" &
  CPID=$!; PIDS+=("$CPID")
  for i in $(seq 1 100); do grep -q ready "$out" && break; sleep 0.05; done
  ip netns exec "$NS" "$BIN" recv 7000 1500 90 >"$rout" &
  RPID=$!; PIDS+=("$RPID")
  for i in $(seq 1 100); do grep -q listening "$rout" && break; sleep 0.05; done
  sres=$(ip netns exec "$NS" "$BIN" send 7000 "$COUNT" 500 "$RATE")
  wait "$RPID" || true
  kill -TERM "$CPID" 2>/dev/null || true
  wait "$CPID" || true
  rres=$(grep received "$rout" || echo '{}')
  dres=$(grep '"done"' "$out" | head -1 || echo '{}')
  line=$(node -e '
    const [rate, count, s, r, d] = process.argv.slice(1); const S = JSON.parse(s), R = JSON.parse(r), D = JSON.parse(d)
    const st = D.stats ?? {}, k = st.kernel ?? {}
    const lost = Number(count) - (R.received ?? 0)
    const clean = lost === 0 && (process.env.POLICY === "accept" || R.rewritten === Number(count)) && !st.idGaps && !st.enobufs && !k.queueDropped && !k.userDropped
    console.log(JSON.stringify({ rate: +rate, sentIn: S.seconds, achievedPps: Math.round(S.sent / S.seconds), received: R.received, receiverPps: R.seconds ? Math.round(R.received / R.seconds) : null, rewritten: R.rewritten, lost,
      batches: st.batches, avgBatch: st.batches ? +(st.packets / st.batches).toFixed(1) : 0, maxBatch: st.maxBatchSeen, flushes: st.flushes,
      consumerCpuUsPerPkt: D.cpu?.usPerPacket, consumerCeilingPps: D.cpu?.usPerPacket ? Math.round(1e6 / D.cpu.usPerPacket) : null, enobufs: st.enobufs, idGaps: st.idGaps, queueDropped: k.queueDropped, userDropped: k.userDropped, clean }))' \
    "$RATE" "$COUNT" "$sres" "$rres" "$dres")
  echo "$line"
  if grep -q '"clean":true' <<<"$line"; then
    a=$(sed -nE 's/.*"achievedPps":([0-9]+).*/\1/p' <<<"$line"); [ "${a:-0}" -gt "$best" ] && best=$a
  fi
  rm -f "$out" "$rout"
  PIDS=()
done
echo "highest achieved sender rate with 0 loss (policy $POLICY, native checksums $NATIVE_CSUM, $COUNT x 500 B): $best pps (the sender shares the CPUs; see consumerCeilingPps)"
