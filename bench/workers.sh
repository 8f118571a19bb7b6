# Part 6 (sourced by run.sh): 1 worker vs N workers in the same run (docs/workers.md). The same steps
# as parts 2b and 2 (sipthru_step, callrate_run) against `sipalg run --workers W` with the queue rules
# balanced over W queues, W = 1 then WORKERS_N (default: the cores); the kernel helper's figures of
# parts 2b/2 in the same run are the baseline. Plus the hop between workers alone (dist/bench/handoff.js).
# Every step here has one phone (10.0.1.23) and one far host: one owner does all the ALG work whatever
# W is, so these rows show the cost of the extra queue and of the handoff, not a spread of the load.
WORKERS_N=${WORKERS_N:-$(nproc)}

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
  done
  unset SIPALG_RUN_FLAGS SIPALG_QUEUE_TARGET
  gw_reset
}
