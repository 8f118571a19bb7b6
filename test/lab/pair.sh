#!/usr/bin/env bash
# The two-gateway lab (docs/ha.md): two sipalg gateways sharing the inside and outside segments,
# keepalived moving the inside (10.0.1.1) and public (203.0.113.1) addresses, conntrackd (FTFW) and
# redis-server on the sync link.
#
#   pair.sh up   RUNID DIR     # builds it; configs, pid files and sockets of the daemons in DIR
#   pair.sh down RUNID DIR     # kills what `up` started (by the PIDs in DIR) and removes it all
#
#  phone A 10.0.1.23 ─ lan ─┬─ g1 lan0 10.0.1.2  wan0 203.0.113.2  sync0 198.51.100.1 ─┬─ wan ─ phone B 203.0.113.9
#                           └─ g2 lan0 10.0.1.3  wan0 203.0.113.3  sync0 198.51.100.2 ─┘
#                              VIPs 10.0.1.1, 203.0.113.1 (keepalived)   store 198.51.100.10 (redis) on sync
#
# Namespaces sipalg-RUNID-{sw,g1,g2,a,b,store}. The three segments are bridges in sw; every veth is
# created inside the namespaces. Each gateway SNATs to the public VIP (not MASQUERADE, which would
# pick the node's own address after a failover). keepalived: VRRPv3, advert_int 0.1, g1 priority 150, g2
# 100. Daemons run in the foreground with their own pid files, in the background of this script.
set -euo pipefail

usage() { echo "usage: $0 up|down RUNID DIR" >&2; exit 64; }
[ $# -eq 3 ] || usage
cmd=$1 runid=$2 dir=$3
[[ $runid =~ ^[A-Za-z0-9]{1,24}$ ]] || { echo "pair.sh: bad RUNID '$runid'" >&2; exit 64; }
ROLES=(sw g1 g2 a b store)
ns() { echo "sipalg-$runid-$1"; }
SW=$(ns sw)

down() {
  local f pid r i pids=()
  for f in "$dir"/*.pid; do
    [ -e "$f" ] || continue
    pid=$(cat "$f" 2>/dev/null || true)
    if [[ $pid =~ ^[0-9]+$ ]]; then pids+=("$pid"); kill "$pid" 2>/dev/null || true; fi
  done
  # keepalived takes its time to leave: what is still there after 2 s is killed.
  for i in $(seq 1 20); do
    alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ $alive -eq 0 ] && break
    sleep 0.1
  done
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  for r in "${ROLES[@]}"; do ip netns del "$(ns "$r")" 2>/dev/null || true; done
  return 0
}

# port NS IFNAME BRIDGE: a veth from NS into a bridge of the switch namespace.
port() {
  local n=$1 ifname=$2 br=$3 peer="${4}"
  ip link add "$ifname" netns "$n" type veth peer name "$peer" netns "$SW"
  ip -n "$SW" link set "$peer" master "$br" up
  ip -n "$n" link set "$ifname" up
}

gateway() {
  local g=$1 last=$2 prio=$3 other=$4
  local n; n=$(ns "$g")
  ip netns add "$n"
  ip -n "$n" link set lo up
  port "$n" lan0 lan "${g}l"
  port "$n" wan0 wan "${g}w"
  port "$n" sync0 sync "${g}s"
  ip -n "$n" addr add "10.0.1.$last/24" dev lan0
  ip -n "$n" addr add "203.0.113.$last/24" dev wan0
  ip -n "$n" addr add "198.51.100.$((last - 1))/24" dev sync0
  ip netns exec "$n" sysctl -qw net.ipv4.ip_forward=1
  ip netns exec "$n" iptables -w -t nat -A POSTROUTING -o wan0 -j SNAT --to-source 203.0.113.1
  cat > "$dir/$g-keepalived.conf" <<EOF
global_defs {
  router_id sipalg-$g
  # Sub-second advert_int needs VRRPv3 (v2 counts whole seconds: a 3 s failover).
  vrrp_version 3
  enable_script_security
  script_user root
}
vrrp_sync_group gateway {
  group { outside inside }
}
vrrp_instance outside {
  state BACKUP
  interface wan0
  virtual_router_id 51
  priority $prio
  advert_int 0.1
  virtual_ipaddress { 203.0.113.1/24 dev wan0 }
}
vrrp_instance inside {
  state BACKUP
  interface lan0
  virtual_router_id 52
  priority $prio
  advert_int 0.1
  virtual_ipaddress { 10.0.1.1/24 dev lan0 }
}
EOF
  cat > "$dir/$g-conntrackd.conf" <<EOF
Sync {
  Mode FTFW {
    DisableExternalCache on
  }
  UDP {
    IPv4_address 198.51.100.$((last - 1))
    IPv4_Destination_Address 198.51.100.$((other - 1))
    Port 3780
    Interface sync0
    Checksum on
  }
}
General {
  HashSize 8192
  HashLimit 65536
  LogFile $dir/$g-conntrackd.log
  LockFile $dir/$g-conntrackd.lock
  UNIX {
    Path $dir/$g-conntrackd.sock
  }
  NetlinkBufferSize 2097152
  NetlinkBufferSizeMaxGrowth 8388608
  Filter From Userspace {
    Protocol Accept { TCP UDP }
    Address Ignore {
      IPv4_address 127.0.0.1
      IPv4_address 198.51.100.0/24
    }
  }
}
EOF
  ip netns exec "$n" keepalived -n -l -D -P -f "$dir/$g-keepalived.conf" -p "$dir/$g-keepalived.pid" -r "$dir/$g-vrrp.pid" \
    > "$dir/$g-keepalived.log" 2>&1 &
  echo $! > "$dir/$g-keepalived-main.pid"
  ip netns exec "$n" conntrackd -C "$dir/$g-conntrackd.conf" > "$dir/$g-conntrackd.out" 2>&1 &
  echo $! > "$dir/$g-conntrackd.pid"
}

phone() {
  local role=$1 ip=$2 br=$3 via=${4:-}
  local n; n=$(ns "$role")
  ip netns add "$n"
  ip -n "$n" link set lo up
  port "$n" eth0 "$br" "p$role"
  ip -n "$n" addr add "$ip/24" dev eth0
  if [ -n "$via" ]; then ip -n "$n" route add default via "$via"; fi
}

up() {
  mkdir -p "$dir"
  down
  trap 'rc=$?; if [ $rc -ne 0 ]; then echo "pair.sh: up failed, removing $runid" >&2; down; fi' EXIT
  ip netns add "$SW"
  for br in lan wan sync; do ip -n "$SW" link add "$br" type bridge; ip -n "$SW" link set "$br" up; done
  if [ -e /proc/sys/net/bridge/bridge-nf-call-iptables ]; then
    ip netns exec "$SW" sh -c 'echo 0 > /proc/sys/net/bridge/bridge-nf-call-iptables' 2>/dev/null || true
  fi
  phone a 10.0.1.23 lan 10.0.1.1
  phone b 203.0.113.9 wan
  phone store 198.51.100.10 sync
  cat > "$dir/redis.conf" <<EOF
bind 198.51.100.10
port 6379
protected-mode no
pidfile $dir/redis.pid
dir $dir
save ""
appendonly no
daemonize no
loglevel warning
notify-keyspace-events ""
EOF
  ip netns exec "$(ns store)" redis-server "$dir/redis.conf" > "$dir/redis.log" 2>&1 &
  echo $! > "$dir/redis.pid"
  gateway g1 2 150 3
  gateway g2 3 100 2
  trap - EXIT
}

case $cmd in
  up) up ;;
  down) down; rm -rf "$dir" ;;
  *) usage ;;
esac
