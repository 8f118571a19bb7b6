# Part 6 (sourced by run.sh): SIP over TCP through the splice (docs/tcp-splice.md) next to plain NAT
# forwarding of the same TCP traffic, same run. One connection from A 10.0.1.23 to B 203.0.113.9 carries
# ~1 KB MESSAGEs with the phone's private Via/Contact, each answered by a 200 OK (bench/tcpsip.ts).
# 'pipeline': TCP_MSGS requests, at most TCP_WINDOW unanswered; 'rtt': TCP_RTTS requests one at a time.
# Paths: plain = the gateway without sipalg (port 5060 NAT-forwarded); splice = sipalg running, port
# 5060 diverted to its transparent listener; beside = sipalg running, port 5070 (not a SIP port),
# NAT-forwarded as before. The daemon's CPU time (utime + stime) is read around each splice run.
TCP_MSGS=${TCP_MSGS:-20000}
TCP_WINDOW=${TCP_WINDOW:-32}
TCP_RTTS=${TCP_RTTS:-2000}
TCP_ROUNDS=${TCP_ROUNDS:-3}

proc_cpu_ms() { # PID -> utime + stime in ms
  awk -v hz="$(getconf CLK_TCK)" '{ print int(($14 + $15) * 1000 / hz) }' "/proc/$1/stat" 2>/dev/null || echo 0
}

tcp_client() { # PATH ROUND KIND PORT: one measurement, one jsonl record
  local path=$1 round=$2 kind=$3 port=$4 out cpu0=0 cpu1=0 n
  [ "$path" = splice ] && cpu0=$(proc_cpu_ms "$SIPALG_PID")
  if [ "$kind" = pipeline ]; then n=$TCP_MSGS; out=$(ip netns exec "$NS_A" timeout 60 node dist/bench/tcpsip.js pipeline 203.0.113.9 "$port" "$n" "$TCP_WINDOW")
  else n=$TCP_RTTS; out=$(ip netns exec "$NS_A" timeout 60 node dist/bench/tcpsip.js rtt 203.0.113.9 "$port" "$n"); fi
  [ "$path" = splice ] && cpu1=$(proc_cpu_ms "$SIPALG_PID")
  [[ $out == \{* ]] || out='{}'
  echo "{\"part\":\"tcp\",\"path\":\"$path\",\"round\":$round,\"kind\":\"$kind\",\"window\":$TCP_WINDOW,\"daemonCpuMs\":$(( cpu1 - cpu0 )),\"result\":$out}" >>"$RES"
  tail -1 "$RES" >&2
}

tcp_run() {
  [ -f dist/bench/tcpsip.js ] || { log "part 6: dist/bench/tcpsip.js missing (npx tsc -p tsconfig.json)"; return 0; }
  ip netns exec "$NS_B" timeout 300 node dist/bench/tcpsip.js server 203.0.113.9 5060 5070 280 >"$WORK/tcpsrv.txt" 2>&1 &
  local srv=$! round kind
  BG_PIDS+=("$srv")
  for _ in $(seq 100); do grep -q listening "$WORK/tcpsrv.txt" && break; sleep 0.05; done
  for round in $(seq "$TCP_ROUNDS"); do
    log "part 6: SIP/TCP, plain NAT (round $round)"
    gw_mode plain
    for kind in pipeline rtt; do tcp_client plain "$round" "$kind" 5060; done
    log "part 6: SIP/TCP, through the splice and beside it (round $round)"
    gw_mode sipalg || continue
    for kind in pipeline rtt; do tcp_client splice "$round" "$kind" 5060; tcp_client beside "$round" "$kind" 5070; done
  done
  gw_reset
  bg_kill "$srv"
  # What the server got: on the splice path every request's Via names the public address.
  grep '^{' "$WORK/tcpsrv.txt" | sed 's/^{/{"part":"tcp_server",/' >>"$RES"
}
