# Part 2b (sourced by run.sh): SIP datagrams through the gateway, no calls — the queue path alone.
# A (10.0.1.23:5060) sends the same ~500-byte OPTIONS (private Via and Contact, so sipalg rewrites
# every one) to B 203.0.113.9:5060 at paced rising rates, SIPTHRU_COUNT datagrams per step; B counts
# what arrived, and how many arrived rewritten. A step passes with 0 loss (every datagram arrived;
# for sipalg every one rewritten, and no fail-open bypass). Modes: plain NAT, kernel SIP helper, sipalg.
SIPTHRU_COUNT=${SIPTHRU_COUNT:-60000}
SIPTHRU_RATES=${SIPTHRU_RATES:-"20000 40000 60000 75000 90000 110000"}

sipthru_payload() {
  local f="$WORK/options.sip" pad
  pad=$(printf 'x%.0s' $(seq 1 150))
  printf 'OPTIONS sip:bob@203.0.113.9 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.1.23:5060;branch=z9hG4bK-bench;rport\r\nMax-Forwards: 70\r\nFrom: <sip:alice@example.net>;tag=bench\r\nTo: <sip:bob@example.net>\r\nCall-ID: sipthru@bench\r\nCSeq: 1 OPTIONS\r\nContact: <sip:alice@10.0.1.23:5060>\r\nAccept: application/sdp\r\nUser-Agent: sipalg-bench %s\r\nContent-Length: 0\r\n\r\n' "$pad" >"$f"
  echo "$f"
}

sipthru_step() { # MODE RATE -> JSON record
  local mode=$1 rate=$2 r="$WORK/srecv.txt" s="$WORK/ssend.txt" q0=0 q1=0 st0 st1
  : >"$r"
  in_gw conntrack -F >/dev/null 2>&1 || true
  ip netns exec "$NS_B" timeout 60 "$WORK/udpblast" recv 203.0.113.9 5060 700 40 "203.0.113.1:5060;branch" >"$r" &
  local rp=$!
  for _ in $(seq 50); do grep -q listening "$r" && break; sleep 0.05; done
  [ "$mode" = sipalg ] && st0=$(sipalg_status)
  ip netns exec "$NS_A" timeout 60 "$WORK/udpblast" send 10.0.1.23 5060 203.0.113.9 5060 0 "$rate" 30 "$SIPTHRU_COUNT" "$PAYLOAD" >"$s"
  wait "$rp"
  [ "$mode" = sipalg ] && st1=$(sipalg_status)
  node -e '
    const [mode, rate, count, recv, sent, st0, st1] = process.argv.slice(1)
    const r = JSON.parse(recv || "{}"), s = JSON.parse(sent || "{}")
    const q = t => { try { return JSON.parse(t).queue ?? {} } catch { return {} } }
    const a = q(st0), b = q(st1)
    const lat = (() => { try { return JSON.parse(st1).latencyUs } catch { return null } })()
    const bypass = (b.failOpenBypassesInferred ?? 0) - (a.failOpenBypassesInferred ?? 0)
    const enobufs = (b.enobufs ?? 0) - (a.enobufs ?? 0)
    const lost = Number(count) - (r.received ?? 0)
    const clean = lost === 0 && (mode !== "sipalg" || (r.matched === r.received && bypass === 0 && enobufs === 0))
    console.log(JSON.stringify({ part: "sipthru", mode, rate: Number(rate), sent: s.sent, received: r.received, rewritten: r.matched,
      achieved: r.pps, lost, bypass, enobufs, clean, latencyUs: mode === "sipalg" ? lat : undefined }))
  ' "$mode" "$rate" "$SIPTHRU_COUNT" "$(grep received "$r" || true)" "$(grep sent "$s" || true)" "${st0:-}" "${st1:-}"
}

sipthru_run() {
  PAYLOAD=$(sipthru_payload)
  local mode rate rec
  for mode in plain helper sipalg; do
    gw_mode "$mode" || continue
    local best=0
    for rate in $SIPTHRU_RATES; do
      rec=$(sipthru_step "$mode" "$rate")
      echo "$rec" >>"$RES"
      log "sipthru $mode r=$rate $rec"
      grep -q '"clean":true' <<<"$rec" || break
      best=$rate
    done
    echo "{\"part\":\"sipthru_best\",\"mode\":\"$mode\",\"best\":$best}" >>"$RES"
  done
  gw_reset
}
