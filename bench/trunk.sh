# Part 6 (sourced by run.sh): a sustained PBX trunk. sipp in A places TRUNK_RATE calls/s for
# TRUNK_SECONDS, every call from a new source port (-t un) offering m=audio 6000, to the UAS in B,
# through sipalg. Each call's port needs a public signalling port; they must be freed as fast as
# the trunk opens them (src/media/signalling.ts) or the ~54k public ports run out and calls are
# refused (refused_signalling). Records the failed calls, the daemon's refusals, its mapped
# signalling ports and its RSS at the start, the middle and the end. A daemon that falls behind
# (the queue full: the kernel lets SIP pass without it, fail-open) misses BYEs: those calls stay
# until their timeouts and hold memory, so failures and RSS growth there are CPU, not ports.
TRUNK_RATE=${TRUNK_RATE:-500}
TRUNK_SECONDS=${TRUNK_SECONDS:-180}

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
# The daemon's refusals and mapped signalling ports, from its status document.
trunk_status() {
  sipalg_status | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{let j={};try{j=JSON.parse(s)}catch{}const c=j.counters??{},q=j.queue??{};console.log(JSON.stringify({refusedSignalling:c.refused_signalling??0,callsStarted:c.calls_started??0,callsEnded:c.calls_ended??0,activeCalls:(j.calls??[]).length,mappings:j.mappings??null,queue:{failOpen:q.failOpenBypassesInferred??null,total:(q.kernel??{}).queueTotal??null},lat:j.latencyUs??null}))})'
}

trunk_run() {
  local scr="$WORK/trunk-screen.txt" calls=$(( TRUNK_RATE * TRUNK_SECONDS ))
  gw_mode sipalg || return 0
  # sipp's per-call sockets take ephemeral ports: the whole unprivileged range (in A's namespace
  # only), so the trunk uses more distinct source ports than the ~54k public signalling ports.
  ip netns exec "$NS_A" sysctl -qw net.ipv4.ip_local_port_range="1024 65535" || log "could not widen A's port range"
  sipp_uas_start
  local rss0 rss1 rss2 mid end
  rss0=$(rss_kb "$SIPALG_PID")
  rm -f "$scr"
  ip netns exec "$NS_A" timeout $(( TRUNK_SECONDS + 60 )) sipp 203.0.113.9:5060 -sf bench/sipp/uac-samemedia.xml -t un -max_socket 4000 \
    -i 10.0.1.23 -mp 20000 -r "$TRUNK_RATE" -m "$calls" -l 20000 -recv_timeout 2000 -timeout "$(( TRUNK_SECONDS + 30 ))s" -nostdin \
    -trace_screen -screen_file "$scr" >/dev/null 2>&1 &
  local sp=$!
  BG_PIDS+=("$sp")
  sleep $(( TRUNK_SECONDS / 2 ))
  rss1=$(rss_kb "$SIPALG_PID")
  mid=$(trunk_status)
  wait "$sp"
  local rc=$?
  sleep 1
  rss2=$(rss_kb "$SIPALG_PID")
  end=$(trunk_status)
  local ok fail rt
  ok=$(awk -F'|' '/Successful call/ {gsub(/ /,"",$3); print $3}' "$scr" 2>/dev/null | tail -1)
  fail=$(awk -F'|' '/Failed call/ {gsub(/ /,"",$3); print $3}' "$scr" 2>/dev/null | tail -1)
  rt=$(awk -F'|' '/Call Rate/ {gsub(/ cps| /,"",$3); print $3}' "$scr" 2>/dev/null | tail -1)
  bg_kill "$UAS_PID"
  echo "{\"part\":\"trunk\",\"rate\":$TRUNK_RATE,\"seconds\":$TRUNK_SECONDS,\"calls\":$calls,\"ok\":${ok:-0},\"failed\":${fail:-0},\"achieved\":${rt:-0},\"rc\":$rc,\"rssKb\":[${rss0:-0},${rss1:-0},${rss2:-0}],\"mid\":${mid:-null},\"end\":${end:-null}}" >>"$RES"
  tail -1 "$RES" >&2
}
