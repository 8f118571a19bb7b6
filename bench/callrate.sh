# Part 2 (sourced by run.sh): call rate through the lab gateway. sipp UAC in A, UAS in B, no RTP, rising
# rate in short steps until a step has a failed call or sipp reaches less than 90% of the asked rate.
# callrate_run PATTERN MODE -> prints the highest achieved calls/s with 0 failures; step records -> $RES
CALL_RATES=${CALL_RATES:-"50 100 200 400 700 1000 1500 2000 3000 4000 5000"}
STEP_SECONDS=${STEP_SECONDS:-2}

sipp_uas_start() {
  ip netns exec "$NS_B" sipp -sn uas -i 203.0.113.9 -p 5060 -nostdin -timeout 600s >/dev/null 2>&1 &
  UAS_PID=$!
  sleep 0.4
}

# sipp_step PATTERN RATE CALLS -> "ok achieved failed successful"
sipp_step() {
  local pattern=$1 rate=$2 calls=$3 scr="$WORK/scr.txt" rc
  local args=(-sf bench/sipp/uac-percall.xml -t u1 -p 5060)
  [ "$pattern" = same ] && args=(-sf bench/sipp/uac-samemedia.xml -t un -max_socket 4000)
  rm -f "$scr"
  ip netns exec "$NS_A" timeout 25 sipp 203.0.113.9:5060 "${args[@]}" -i 10.0.1.23 -mp 20000 \
    -r "$rate" -m "$calls" -l 20000 -recv_timeout 2000 -timeout 15s -nostdin \
    -trace_screen -screen_file "$scr" >/dev/null 2>&1
  rc=$?
  local ok fail rt
  ok=$(awk -F'|' '/Successful call/ {gsub(/ /,"",$3); print $3}' "$scr" 2>/dev/null | tail -1)
  fail=$(awk -F'|' '/Failed call/ {gsub(/ /,"",$3); print $3}' "$scr" 2>/dev/null | tail -1)
  rt=$(awk -F'|' '/Call Rate/ {gsub(/ cps| /,"",$3); print $3}' "$scr" 2>/dev/null | tail -1)
  echo "$rc ${rt:-0} ${fail:-0} ${ok:-0}"
}

callrate_run() {
  local pattern=$1 mode=$2 best=0 r
  gw_mode "$mode" || { echo 0; return; }
  sipp_uas_start
  for r in $CALL_RATES; do
    local calls=$(( r * STEP_SECONDS ))
    read -r rc rt fail ok < <(sipp_step "$pattern" "$r" "$calls")
    local clean=false
    if [ "$rc" = 0 ] && [ "$fail" = 0 ] && [ "$ok" = "$calls" ] && awk -v a="$rt" -v r="$r" 'BEGIN{exit !(a >= 0.9*r)}'; then clean=true; fi
    local extra=""
    if [ "$mode" = sipalg ]; then extra=$(sipalg_status | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{try{const j=JSON.parse(s);const q=j.queue||{};console.log(JSON.stringify({lat:j.latencyUs,enobufs:q.enobufs,failOpen:q.failOpenBypassesInferred,qdrop:(q.kernel||{}).queueDropped,mappings:j.mappings,refused:Object.fromEntries(Object.entries(j.counters||{}).filter(([k])=>k.startsWith("refused")||k.includes("fail")))}))}catch{console.log("{}")}})'); fi
    echo "{\"part\":\"callrate\",\"pattern\":\"$pattern\",\"mode\":\"$mode\",\"rate\":$r,\"calls\":$calls,\"achieved\":$rt,\"ok\":$ok,\"failed\":$fail,\"rc\":$rc,\"clean\":$clean${extra:+,\"sipalg\":$extra}}" >>"$RES"
    log "callrate $pattern $mode r=$r achieved=$rt ok=$ok failed=$fail rc=$rc clean=$clean"
    if [ "$clean" != true ]; then break; fi
    best=$(awk -v a="$rt" 'BEGIN{printf "%d", a}')
    in_gw conntrack -F >/dev/null 2>&1 || true
    sleep 0.3
  done
  bg_kill "$UAS_PID"
  echo "{\"part\":\"callrate_best\",\"pattern\":\"$pattern\",\"mode\":\"$mode\",\"best\":$best}" >>"$RES"
}
