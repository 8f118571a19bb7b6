# Shared helpers for bench/*.sh (sourced). Everything runs inside namespaces sipalg-$RUNID-*; nothing
# touches the root namespace. Every background process is started as `ip netns exec NS cmd &` and its PID
# recorded in BG_PIDS so cleanup kills exactly those.
: "${RUNID:?}" "${WORK:?}"
GW=sipalg-$RUNID-gw NS_A=sipalg-$RUNID-a NS_B=sipalg-$RUNID-b NS_NFT=sipalg-$RUNID-nft
SOCK=$WORK/sipalg.sock READY=$WORK/sipalg.ready
BG_PIDS=()
SIPALG_PID=""
log() { echo "[bench $(date +%T)] $*" >&2; }
in_gw() { ip netns exec "$GW" "$@"; }

bg_kill() { # PID...: TERM, then wait at most 3 s, then KILL
  local p
  for p in "$@"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "$@"; do
    for _ in $(seq 30); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
}

# C helper: paced/unpaced UDP sender bound to a given source, counting receiver (recvmmsg).
build_udpblast() {
  cat > "$WORK/udpblast.c" <<'CEOF'
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }
/* send SRCIP SRCPORT DSTIP DSTPORT SIZE RATE(0=max) SECONDS MAXCOUNT [PAYLOAD_FILE] | recv IP PORT IDLE_MS MAX_SECONDS [MATCH]
 * With PAYLOAD_FILE the datagrams carry that file (SIZE is ignored); with MATCH the receiver also counts
 * the datagrams that contain that text (e.g. a rewritten address). */
int main(int argc, char **argv) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0), one = 1, big = 16 << 20;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (argc >= 10 && !strcmp(argv[1], "send")) {
    struct sockaddr_in s = { .sin_family = AF_INET, .sin_port = htons(atoi(argv[3])) }, d = { .sin_family = AF_INET, .sin_port = htons(atoi(argv[5])) };
    inet_pton(AF_INET, argv[2], &s.sin_addr); inet_pton(AF_INET, argv[4], &d.sin_addr);
    if (bind(fd, (void *)&s, sizeof s) < 0) { perror("bind"); return 1; }
    if (connect(fd, (void *)&d, sizeof d) < 0) { perror("connect"); return 1; }
    setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof big);
    int size = atoi(argv[6]); double rate = atof(argv[7]), secs = atof(argv[8]); long max = atol(argv[9]), sent = 0;
    char buf[2048] = {0}; buf[0] = 0x80; buf[1] = 8;
    if (argc >= 11) { FILE *f = fopen(argv[10], "rb"); if (!f) { perror("payload"); return 1; } size = (int)fread(buf, 1, sizeof buf, f); fclose(f); }
    struct mmsghdr m[32]; struct iovec v[32];
    for (int i = 0; i < 32; i++) { v[i].iov_base = buf; v[i].iov_len = size; memset(&m[i], 0, sizeof m[i]); m[i].msg_hdr.msg_iov = &v[i]; m[i].msg_hdr.msg_iovlen = 1; }
    double t0 = now(), end = t0 + secs;
    while (sent < max) {
      double t = now(); if (t >= end) break;
      long want = 32;
      if (rate > 0) { long due = (long)((t - t0) * rate) + 1 - sent; if (due <= 0) { struct timespec ts = { 0, 200000 }; nanosleep(&ts, NULL); continue; } if (due < want) want = due; }
      if (want > max - sent) want = max - sent;
      int n = sendmmsg(fd, m, want, 0);
      if (n < 0) { if (errno == ENOBUFS || errno == EAGAIN || errno == EPERM || errno == ECONNREFUSED) continue; perror("sendmmsg"); return 1; }
      sent += n;
    }
    printf("{\"sent\":%ld,\"seconds\":%.4f}\n", sent, now() - t0);
    return 0;
  }
  if (argc >= 6 && !strcmp(argv[1], "recv")) {
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(atoi(argv[3])) };
    inet_pton(AF_INET, argv[2], &a.sin_addr);
    setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof big);
    if (bind(fd, (void *)&a, sizeof a) < 0) { perror("bind"); return 1; }
    printf("listening\n"); fflush(stdout);
    int idle = atoi(argv[4]); double maxs = atof(argv[5]), t0 = now(), first = 0, last = 0; long got = 0, matched = 0;
    const char *match = argc >= 7 ? argv[6] : NULL;
    static char bufs[64][2048]; struct mmsghdr m[64]; struct iovec v[64]; struct sockaddr_in from[64];
    char src[64] = "";
    struct pollfd p = { .fd = fd, .events = POLLIN };
    while (now() - t0 < maxs) {
      for (int i = 0; i < 64; i++) { v[i].iov_base = bufs[i]; v[i].iov_len = sizeof bufs[i]; memset(&m[i], 0, sizeof m[i]); m[i].msg_hdr.msg_iov = &v[i]; m[i].msg_hdr.msg_iovlen = 1; m[i].msg_hdr.msg_name = &from[i]; m[i].msg_hdr.msg_namelen = sizeof from[i]; }
      int r = poll(&p, 1, got ? idle : 1000);
      if (r == 0) { if (got) break; else continue; }
      int n = recvmmsg(fd, m, 64, MSG_DONTWAIT, NULL);
      if (n <= 0) continue;
      if (!got) { first = now(); snprintf(src, sizeof src, "%s:%d", inet_ntoa(from[0].sin_addr), ntohs(from[0].sin_port)); }
      if (match) for (int i = 0; i < n; i++) if (memmem(bufs[i], m[i].msg_len, match, strlen(match))) matched++;
      got += n; last = now();
    }
    double span = last - first;
    printf("{\"received\":%ld,\"matched\":%ld,\"seconds\":%.4f,\"pps\":%.0f,\"from\":\"%s\"}\n", got, matched, span, span > 0 ? got / span : 0, src);
    return 0;
  }
  fprintf(stderr, "usage: see source\n"); return 2;
}
CEOF
  cc -O2 -o "$WORK/udpblast" "$WORK/udpblast.c"
}

# Gateway modes: exactly one of plain NAT, kernel SIP helper, sipalg is active at a time.
gw_reset() {
  if [ -n "$SIPALG_PID" ]; then bg_kill "$SIPALG_PID"; SIPALG_PID=""; fi
  in_gw iptables -w -t raw -D PREROUTING -p udp --dport 5060 -j CT --helper sip 2>/dev/null || true
  if in_gw iptables -w -n -L SIPALG >/dev/null 2>&1; then
    in_gw iptables -w -D FORWARD -j SIPALG 2>/dev/null || true
    in_gw iptables -w -F SIPALG; in_gw iptables -w -X SIPALG
  fi
  in_gw nft delete table ip sipalg 2>/dev/null || true
  in_gw conntrack -F >/dev/null 2>&1 || true
  in_gw conntrack -F expect >/dev/null 2>&1 || true
}

gw_mode() { # plain | helper | sipalg [extra run flags]
  local mode=$1; shift
  gw_reset
  case $mode in
    plain) ;;
    helper) in_gw iptables -w -t raw -A PREROUTING -p udp --dport 5060 -j CT --helper sip ;;
    sipalg)
      in_gw iptables -w -N SIPALG
      in_gw iptables -w -I FORWARD -j SIPALG
      # SIPALG_QUEUE_TARGET / SIPALG_RUN_FLAGS: bench/workers.sh runs the same steps with N workers.
      in_gw iptables -w -A SIPALG -p udp --dport 5060 -j NFQUEUE ${SIPALG_QUEUE_TARGET:---queue-num 0} --queue-bypass
      in_gw iptables -w -A SIPALG -p udp --sport 5060 -j NFQUEUE ${SIPALG_QUEUE_TARGET:---queue-num 0} --queue-bypass
      # The bench is a PBX trunk: the per-host abuse limits (default 200 calls, 50 new/s per host) are raised.
      cat > "$WORK/sipalg.yaml" <<'YEOF'
limits:
  max_calls: 1000000
  calls_per_host: 1000000
  calls_per_second: 1000000
  calls_per_second_per_host: 1000000
YEOF
      rm -f "$READY"
      ip netns exec "$GW" node ${SIPALG_NODE_FLAGS:-} dist/src/cli/main.js run --config "$WORK/sipalg.yaml" \
        --public 203.0.113.1 --inside 10.0.1.0/24 --outside-if wan0 --inside-if lan0 --ready-file "$READY" \
        --control-socket "$SOCK" --state-file "$WORK/state.json" --log-level warn ${SIPALG_RUN_FLAGS:-} "$@" >>"$WORK/sipalg.log" 2>&1 &
      SIPALG_PID=$!
      local i; for i in $(seq 100); do [ -f "$READY" ] && break; kill -0 "$SIPALG_PID" 2>/dev/null || break; sleep 0.1; done
      if [ ! -f "$READY" ]; then log "sipalg did not start:"; tail -5 "$WORK/sipalg.log" >&2; return 1; fi ;;
    *) return 64 ;;
  esac
}

sipalg_status() { in_gw node dist/src/cli/main.js status --socket "$SOCK" --json 2>/dev/null || echo '{}'; }
