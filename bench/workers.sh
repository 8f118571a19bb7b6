# Part 6 (sourced by run.sh): 1 worker vs N workers in the same run (docs/workers.md). The same steps
# as parts 2b and 2 (sipthru_step, callrate_run) against `sipalg run --workers W` with the queue rules
# balanced over W queues, W = 1 then WORKERS_N (default: the cores); the kernel helper's figures of
# parts 2b/2 in the same run are the baseline. Plus the hop between workers alone (dist/bench/handoff.js).
# The one-phone steps (10.0.1.23, one far host) have one owner whatever W is: they show the cost of
# the extra queue and of the handoff, not a spread of the load. The multi-phone step does: one phone
# per worker's shard, each its own sipp placing calls at rate/W, all at once, the same steps against
# the kernel helper and 1 worker as baselines.
WORKERS_N=${WORKERS_N:-$(nproc)}

# The inside addresses, one owned by each of W workers (src/workers/shard.ts's hash): A's own first,
# then the first free ones from 10.0.1.25 up (added to A's namespace by workers_phones_up).
workers_phone_ips() {
  node -e '
    import("./dist/src/workers/shard.js").then(({ ownerOfIp }) => {
      const n = Number(process.argv[1]); const ips = ["10.0.1.23"]; const taken = new Set([ownerOfIp(ips[0], n)])
      for (let h = 25; h < 250 && taken.size < n; h++) { const ip = `10.0.1.${h}`; const o = ownerOfIp(ip, n); if (!taken.has(o)) { taken.add(o); ips.push(ip) } }
      console.log(ips.join(" "))
    })' "$1"
}

# multi_step RATE IPS...: one sipp per address at RATE/count each, concurrently; prints "rc achieved failed ok" summed.
multi_step() {
  local rate=$1; shift
  local n=$# each i=0 ip pids=() rc=0
  each=$(( (rate + n - 1) / n ))
  for ip in "$@"; do
    ip netns exec "$NS_A" timeout 25 sipp 203.0.113.9:5060 -sf bench/sipp/uac-percall.xml -t u1 -p 5060 -i "$ip" -mp $(( 20000 + i * 4000 )) \
      -r "$each" -m $(( each * STEP_SECONDS )) -l 20000 -recv_timeout 2000 -timeout 15s -nostdin \
      -trace_screen -screen_file "$WORK/multi-$i.txt" >/dev/null 2>&1 &
    pids+=($!); i=$((i + 1))
  done
  BG_PIDS+=("${pids[@]}")
  local p; for p in "${pids[@]}"; do wait "$p" || rc=$?; done
  local ok=0 fail=0 rt=0 f
  for f in "$WORK"/multi-*.txt; do
    ok=$(( ok + $(awk -F'|' '/Successful call/ {gsub(/ /,"",$3); v=$3} END {print v+0}' "$f") ))
    fail=$(( fail + $(awk -F'|' '/Failed call/ {gsub(/ /,"",$3); v=$3} END {print v+0}' "$f") ))
    rt=$(awk -v a="$rt" -v b="$(awk -F'|' '/Call Rate/ {gsub(/ cps| /,"",$3); v=$3} END {print v+0}' "$f")" 'BEGIN{print a + b}')
  done
  rm -f "$WORK"/multi-*.txt
  echo "$rc $rt $fail $ok"
}

# multi_run MODE W: the steps of CALL_RATES (total over all phones) until one fails; W phones.
multi_run() {
  local mode=$1 w=$2 best=0 r ips
  ips=$(workers_phone_ips "$WORKERS_N")
  gw_mode "$mode" || return 0
  sipp_uas_start
  for r in $CALL_RATES; do
    local n; n=$(wc -w <<<"$ips")
    local calls=$(( ( (r + n - 1) / n ) * n * STEP_SECONDS ))
    # shellcheck disable=SC2086
    read -r rc rt fail ok < <(multi_step "$r" $ips)
    local clean=false
    if [ "$rc" = 0 ] && [ "$fail" = 0 ] && [ "$ok" = "$calls" ] && awk -v a="$rt" -v r="$r" 'BEGIN{exit !(a >= 0.9*r)}'; then clean=true; fi
    # What the daemon saw: each worker's handoffs and calls, the counters that mean trouble.
    local extra=""
    [ "$mode" = sipalg ] && extra=$(sipalg_status | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{try{const j=JSON.parse(s);console.log(JSON.stringify({workers:(j.workers??[]).map(x=>({calls:x.calls,packets:x.packets,handoff:x.handoff&&{sent:x.handoff.sent,failed:x.handoff.failed,served:x.handoff.served}})),queue:{failOpen:j.queue?.failOpenBypassesInferred,enobufs:j.queue?.enobufs},counters:Object.fromEntries(Object.entries(j.counters??{}).filter(([k])=>/refused|fail|malformed|dropped|calls_/.test(k)))}))}catch{console.log("{}")}})')
    echo "{\"part\":\"workers_multi\",\"mode\":\"$mode\",\"workers\":$w,\"phones\":$n,\"rate\":$r,\"calls\":$calls,\"achieved\":$rt,\"ok\":$ok,\"failed\":$fail,\"rc\":$rc,\"clean\":$clean${extra:+,\"sipalg\":$extra}}" >>"$RES"
    log "multi-phone $mode workers=$w phones=$n r=$r achieved=$rt ok=$ok failed=$fail rc=$rc clean=$clean"
    [ "$clean" = true ] || break
    best=$(awk -v a="$rt" 'BEGIN{printf "%d", a}')
    in_gw conntrack -F >/dev/null 2>&1 || true
    sleep 0.3
  done
  bg_kill "$UAS_PID"
  echo "{\"part\":\"workers_multi_best\",\"mode\":\"$mode\",\"workers\":$w,\"phones\":$(wc -w <<<"$ips"),\"best\":$best}" >>"$RES"
}

workers_phones_up() {
  local ip
  for ip in $(workers_phone_ips "$WORKERS_N"); do
    [ "$ip" = 10.0.1.23 ] || ip -n "$NS_A" addr add "$ip/24" dev eth0 2>/dev/null || true
  done
}

# workers_tag PART W FROM_LINE: the records callrate_run/sipthru wrote since FROM_LINE, renamed PART and tagged with W.
workers_tag() {
  local part=$1 w=$2 from=$3 tmp="$WORK/workers.tmp"
  head -n "$from" "$RES" >"$tmp"
  tail -n +"$((from + 1))" "$RES" | node -e '
    const [part, w] = process.argv.slice(1)
    let s = ""; process.stdin.on("data", d => { s += d }).on("end", () => {
      for (const l of s.split("\n")) { if (l.trim() === "") continue; const r = JSON.parse(l); r.part = part + (r.part.endsWith("_best") ? "_best" : ""); r.workers = Number(w); console.log(JSON.stringify(r)) }
    })' "$part" "$w" >>"$tmp"
  mv "$tmp" "$RES"
}

workers_run() {
  local w rate rec from
  log "part 6: the hop between workers alone"
  timeout 120 node dist/bench/handoff.js "${HANDOFF_PACKETS:-20000}" >>"$RES" || log "handoff bench failed"
  PAYLOAD=$(sipthru_payload)
  for w in 1 "$WORKERS_N"; do
    export SIPALG_RUN_FLAGS="--workers $w"
    if [ "$w" -gt 1 ]; then export SIPALG_QUEUE_TARGET="--queue-balance 0:$((w - 1))"; else unset SIPALG_QUEUE_TARGET; fi
    log "part 6: SIP datagrams through sipalg with $w worker(s)"
    if gw_mode sipalg; then
      local best=0
      for rate in $SIPTHRU_RATES; do
        rec=$(sipthru_step sipalg "$rate")
        echo "$rec" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const r=JSON.parse(s);r.part="workers_sipthru";r.workers=Number(process.argv[1]);console.log(JSON.stringify(r))})' "$w" >>"$RES"
        log "workers=$w sipthru r=$rate $rec"
        grep -q '"clean":true' <<<"$rec" || break
        best=$rate
      done
      echo "{\"part\":\"workers_sipthru_best\",\"workers\":$w,\"best\":$best,\"handoff\":$(sipalg_status | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{try{console.log(JSON.stringify((JSON.parse(s).workers??[]).map(x=>x.handoff)))}catch{console.log("null")}})')}" >>"$RES"
    fi
    log "part 6: call rate through sipalg with $w worker(s)"
    from=$(wc -l <"$RES")
    callrate_run percall sipalg
    workers_tag workers_callrate "$w" "$from"
    log "part 6: call rate from one phone per worker's shard, sipalg with $w worker(s)"
    workers_phones_up
    multi_run sipalg "$w"
  done
  unset SIPALG_RUN_FLAGS SIPALG_QUEUE_TARGET
  log "part 6: call rate from the same phones, kernel SIP helper"
  multi_run helper 0
  gw_reset
}
