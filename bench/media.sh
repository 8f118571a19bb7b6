# Part 4 (sourced by run.sh): RTP-sized datagrams (172 B UDP payload) from A 10.0.1.23:40000 to B
# 203.0.113.9:7000, sender unpaced for MEDIA_SECONDS, counted at B. Modes: plain kernel forwarding
# (MASQUERADE), sipalg's kernel mappings (a held sipp call whose SDP offered port 40000; the flow must
# leave with sipalg's public media port) and a Node userspace relay on the gateway (the seed design).
# Mode 'rules': plain forwarding plus sipalg's two iptables queue rules (isolates their per-packet cost).
# sipalg's queue packet counter is read before and after: it must not move.
MEDIA_SECONDS=${MEDIA_SECONDS:-2}
MEDIA_ROUNDS=${MEDIA_ROUNDS:-3}

media_blast() { # DST_IP DST_PORT -> receiver JSON, sender JSON on one line
  local r="$WORK/mrecv.txt" s="$WORK/msend.txt"
  : >"$r"
  ip netns exec "$NS_B" timeout 30 "$WORK/udpblast" recv 203.0.113.9 7000 500 $(( MEDIA_SECONDS + 8 )) >"$r" &
  local rp=$!
  for _ in $(seq 50); do grep -q listening "$r" && break; sleep 0.05; done
  ip netns exec "$NS_A" timeout 30 "$WORK/udpblast" send 10.0.1.23 40000 "$1" "$2" 172 0 "$MEDIA_SECONDS" 100000000 >"$s"
  wait "$rp"
  echo "$(grep received "$r" || echo '{}') $(cat "$s")"
}

media_run() {
  local round mode
  for round in $(seq "$MEDIA_ROUNDS"); do
    for mode in plain rules sipalg relay; do
      log "part 4: media, $mode (round $round)"
      local dst=203.0.113.9 dport=7000 extra='' uac='' relay=''
      if [ "$mode" = sipalg ]; then gw_mode sipalg || continue; else gw_mode plain; fi
      # Every mode holds the same sipp call during the blast, so sipp's own CPU use is in every figure.
      sipp_uas_start
      ip netns exec "$NS_A" timeout 40 sipp 203.0.113.9:5060 -sf bench/sipp/uac-hold.xml -t u1 -p 5060 -i 10.0.1.23 \
        -mp 50000 -d 30000 -m 1 -recv_timeout 5000 -timeout 35s -nostdin >/dev/null 2>&1 &
      uac=$!
      if [ "$mode" = sipalg ]; then
        local pub=''
        for _ in $(seq 50); do
          pub=$(sipalg_status | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{try{const j=JSON.parse(s);for(const c of j.calls)for(const m of c.media){const x=/10\.0\.1\.23:40000 → (\d+)/.exec(m);if(x&&c.state!=="ringing")console.log(x[1])}}catch{}})' | head -1)
          [ -n "$pub" ] && break; sleep 0.1
        done
        [ -n "$pub" ] || log "media: sipalg shows no media mapping for 10.0.1.23:40000"
        local q0; q0=$(sipalg_status | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{try{console.log(JSON.parse(s).queue.packets)}catch{console.log(-1)}})')
        extra=",\"publicPort\":\"${pub}\",\"queueBefore\":$q0"
      elif [ "$mode" = relay ]; then
        ip netns exec "$GW" timeout 40 node dist/bench/relay.js 10.0.1.1 30000 203.0.113.1 30002 203.0.113.9 7000 $(( MEDIA_SECONDS + 4 )) >"$WORK/relay.txt" &
        relay=$!
        for _ in $(seq 50); do grep -q listening "$WORK/relay.txt" && break; sleep 0.1; done
        dst=10.0.1.1; dport=30000
      elif [ "$mode" = rules ]; then
        # plain forwarding + sipalg's iptables queue rules only (no daemon, no table): isolates their cost
        in_gw iptables -w -N SIPALG
        in_gw iptables -w -I FORWARD -j SIPALG
        in_gw iptables -w -A SIPALG -p udp --dport 5060 -j NFQUEUE --queue-num 0 --queue-bypass
        in_gw iptables -w -A SIPALG -p udp --sport 5060 -j NFQUEUE --queue-num 0 --queue-bypass
      else
        sleep 0.5
      fi
      read -r recv send < <(media_blast "$dst" "$dport")
      if [ "$mode" = sipalg ]; then
        local q1; q1=$(sipalg_status | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{try{console.log(JSON.parse(s).queue.packets)}catch{console.log(-1)}})')
        extra="$extra,\"queueAfter\":$q1"
      fi
      bg_kill "$uac"; bg_kill "$UAS_PID"
      [ -n "$relay" ] && bg_kill "$relay"
      echo "{\"part\":\"media\",\"mode\":\"$mode\",\"round\":$round,\"recv\":${recv:-{\}},\"send\":${send:-{\}}$extra}" >>"$RES"
      tail -1 "$RES" >&2
    done
  done
}
