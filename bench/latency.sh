# Part 3 (sourced by run.sh): time each SIP packet takes through the gateway, measured on the wire: tcpdump
# (nanosecond timestamps, same kernel clock) on the gateway's lan0 and wan0, messages matched by
# Call-ID + CSeq + method/status; added latency = figure with sipalg − figure with plain NAT (same run).
LAT_SECONDS=${LAT_SECONDS:-3}
latency_run() { # MODE RATE
  local mode=$1 rate=$2 d="$WORK/lat-$1-$2" caps=()
  mkdir -p "$d"
  gw_mode "${mode%-rt}" || return 0
  # sipalg-rt: the daemon (all its threads) as systemd/sipalg.service runs it, SCHED_RR priority 5;
  # sipalg: at normal priority, as a hand-started daemon runs. The difference is the part of the
  # transit spent waiting for a CPU (plain NAT and the helper run in softirq, never wait).
  if [ "$mode" = sipalg-rt ]; then chrt -a -r -p 5 "$SIPALG_PID" >/dev/null || log "chrt failed"; fi
  sipp_uas_start
  local ifc
  for ifc in lan0 wan0; do
    ip netns exec "$GW" timeout 40 tcpdump -i "$ifc" -Q in -B 32768 -s 2048 --time-stamp-precision nano -w "$d/$ifc-in.pcap" -U 'udp port 5060' 2>/dev/null &
    caps+=($!)
    ip netns exec "$GW" timeout 40 tcpdump -i "$ifc" -Q out -B 32768 -s 2048 --time-stamp-precision nano -w "$d/$ifc-out.pcap" -U 'udp port 5060' 2>/dev/null &
    caps+=($!)
  done
  BG_PIDS+=("${caps[@]}")
  sleep 1
  read -r rc rt fail ok < <(sipp_step percall "$rate" $(( rate * LAT_SECONDS )))
  sleep 0.5
  local st='{}'
  [ "${mode%-rt}" = sipalg ] && st=$(sipalg_status)
  bg_kill "${caps[@]}"
  bg_kill "$UAS_PID"
  node dist/bench/wirelat.js "$mode" "$rate" "$d" "$rt" "$fail" <<<"$st" >>"$RES" || log "wirelat failed"
  tail -1 "$RES" >&2
}
