#!/usr/bin/env bash
# sipalg benchmarks (issue 6, spec §7): every figure next to baselines measured in the same invocation.
# Prints one table and writes it to bench/results/latest.md. Needs root (network namespaces), sipp, nft,
# iptables, conntrack, tcpdump, cc. All netfilter changes happen in namespaces sipalg-<runid>-*, removed
# on exit. Parts: PARTS="rewrite sipthru callrate latency media nftmaps workers tcp trunk" (default all; trunk runs
# TRUNK_SECONDS, default 180).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export RUNID=${RUNID:-bench$(head -c3 /dev/urandom | od -An -tx1 | tr -d ' \n')}
export WORK; WORK=$(mktemp -d /tmp/sipalg-bench.XXXXXX)
RES=$WORK/results.jsonl; : >"$RES"
PARTS=${PARTS:-"rewrite sipthru callrate latency media nftmaps workers tcp trunk"}
START=$(date +%s)
. bench/lib.sh
. bench/callrate.sh
. bench/sipthru.sh
. bench/latency.sh
. bench/media.sh
. bench/workers.sh
. bench/tcp.sh
. bench/trunk.sh

cleanup() {
  trap - EXIT INT TERM
  [ -n "$SIPALG_PID" ] && bg_kill "$SIPALG_PID"
  local p; for p in "${BG_PIDS[@]:-}"; do [ -n "$p" ] && bg_kill "$p"; done
  bash test/lab/lab.sh down "$RUNID" >/dev/null 2>&1 || true
  ip netns del "$NS_NFT" 2>/dev/null || true
  if [ -n "${KEEP_WORK:-}" ]; then echo "work dir kept: $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[ "$(id -u)" = 0 ] || { echo "bench/run.sh: needs root (network namespaces)" >&2; exit 1; }
[ -f dist/src/cli/main.js ] && [ -f dist/bench/rewrite.js ] && [ -f dist/bench/report.js ] || npx tsc -p tsconfig.json >/dev/null 2>&1 || true
ulimit -n 20000 2>/dev/null || true
build_udpblast
has() { [[ " $PARTS " == *" $1 "* ]]; }
NOTES=()

# The daemon creates its table with `nft -f`: check the script parses here before measuring, or every
# SIP packet would bypass a daemon that exited at start (fail-open) and the figures would mean nothing.
ip netns add "$NS_NFT"
script=$(node -e 'import("./dist/src/netfilter/table.js").then(m=>process.stdout.write(m.tableScript({table:"sipalg",publicIp:"203.0.113.1",outsideIf:"wan0",mark:m.DEFAULT_MARK})))')
ip netns exec "$NS_NFT" nft -c -f - <<<"$script" >/dev/null || { echo "bench: sipalg's table script does not parse on this nft" >&2; exit 1; }

if has rewrite; then
  log "part 1: rewrite engine"
  BENCH_SECONDS=${REWRITE_SECONDS:-1} timeout 60 node --expose-gc dist/bench/rewrite.js | tee "$WORK/rewrite.txt" >&2
  node -e '
    const lines = require("fs").readFileSync(process.argv[1], "utf8").split("\n")
    for (const l of lines) { const m = l.match(/^(INVITE \+ SDP|200 OK \+ SDP|ACK)\s+(\d+)\s+([\d,]+)\s+([\d.]+)\s+(\S+)/); if (m) console.log(JSON.stringify({ part: "rewrite", msg: m[1], bytes: +m[2], rate: +m[3].replace(/,/g, ""), allocB: m[5] === "n/a" ? null : +m[5].replace(/,/g, "") })) }
  ' "$WORK/rewrite.txt" >>"$RES"
  log "part 1b: the ALG packet path in JS"
  timeout 60 node dist/bench/alg.js --json >>"$RES" || log "alg bench failed"
fi

if has sipthru || has callrate || has latency || has media || has workers || has tcp || has trunk; then
  bash test/lab/lab.sh up "$RUNID" >/dev/null || { echo "lab up failed" >&2; exit 1; }
fi
if has sipthru; then
  log "part 2b: SIP datagrams through the gateway (queue path), plain / helper / sipalg"
  sipthru_run
fi
if has callrate; then
  for pattern in percall same; do
    for mode in plain helper sipalg; do
      log "part 2: call rate, $pattern media ports, $mode"
      callrate_run "$pattern" "$mode"
    done
  done
fi
if has latency; then
  for rate in ${LAT_RATES:-100 1000}; do
    for mode in plain helper sipalg sipalg-rt; do
      log "part 3: wire latency at $rate calls/s, $mode"
      latency_run "$mode" "$rate"
    done
  done
fi
if has media; then media_run; fi
if has workers; then workers_run; fi
if has tcp; then tcp_run; fi
if has trunk; then
  log "part 8: sustained trunk, $TRUNK_RATE calls/s for $TRUNK_SECONDS s, new source port per call"
  trunk_run
fi
gw_reset 2>/dev/null || true
if has nftmaps; then
  log "part 5: mapping install/remove latency"
  ip netns exec "$NS_NFT" env HOME="$WORK" timeout 180 node dist/bench/nftmaps.js >>"$RES" || log "nftmaps failed"
fi

for n in "${NOTES[@]:-}"; do [ -n "$n" ] && echo "{\"part\":\"note\",\"text\":$(node -e 'console.log(JSON.stringify(process.argv[1]))' "$n")}" >>"$RES"; done
echo "{\"part\":\"meta\",\"seconds\":$(( $(date +%s) - START )),\"date\":\"$(date -u +%FT%TZ)\",\"commit\":\"$(git rev-parse --short HEAD 2>/dev/null)\",\"kernel\":\"$(uname -r)\",\"cpus\":$(nproc)}" >>"$RES"
mkdir -p bench/results
cp "$RES" bench/results/latest.jsonl
node dist/bench/report.js "$RES" | tee bench/results/latest.md
