#!/usr/bin/env bash
# sipalg lab (spec §1): a NAT gateway and four phones, each in its own network namespace.
#
#   lab.sh up   RUNID [--forward-policy accept|drop]
#   lab.sh down RUNID
#   lab.sh names RUNID            # prints "role namespace" per line
#
#  phone A  10.0.1.23 ─┐                                          ┌─ phone B 203.0.113.9
#  phone A2 10.0.1.24 ─┴─ [lan0 10.0.1.1 | sipalg-RUNID-gw | 203.0.113.1 wan0] ─┴─ phone C 203.0.113.10
#
# Namespaces: sipalg-RUNID-{gw,a,a2,b,c}. lan0/wan0 are bridges inside the gateway namespace with one veth
# port per phone (pa, pa2, pb, pc); each phone has eth0. Every veth is created directly inside the
# namespaces, so nothing is ever created or changed in the root namespace. Inside phones route by default
# via 10.0.1.1; outside phones have NO default route (a leaked 10.x address is unreachable, as on the
# Internet). Gateway: ip_forward=1, bridge-nf-call-iptables=0 (both in the gw namespace only),
# nat POSTROUTING -o wan0 -j MASQUERADE, FORWARD policy ACCEPT or (--forward-policy drop) DROP +
# ESTABLISHED,RELATED + lan0->wan0 accepted (a typical home/office gateway).
# IPv6 (documentation prefix only, inside the namespaces): inside 2001:db8:1::/64 (A ::23, A2 ::24,
# gateway ::1), outside 2001:db8:2::/64 (B ::9, C ::10, gateway ::1; outside phones route the inside
# /64 via the gateway: IPv6 is routed, not NATed). Addresses are "nodad" (usable at once), IPv6
# forwarding is on in the gateway namespace only, ip6tables FORWARD follows --forward-policy.
# "down" is idempotent; "up" first removes leftovers of the same RUNID, and removes everything it built
# if any step fails.
set -euo pipefail

usage() { echo "usage: $0 up RUNID [--forward-policy accept|drop] | down RUNID | names RUNID" >&2; exit 64; }

[ $# -ge 2 ] || usage
cmd=$1 runid=$2
shift 2
# The run id ends up in namespace names: keep it short and harmless.
[[ $runid =~ ^[A-Za-z0-9]{1,24}$ ]] || { echo "lab.sh: bad RUNID '$runid' (1-24 letters/digits)" >&2; exit 64; }

ROLES=(gw a a2 b c)
ns() { echo "sipalg-$runid-$1"; }
GW=$(ns gw)

down() {
  local r n
  for r in "${ROLES[@]}"; do
    n=$(ns "$r")
    if ip netns list | awk '{print $1}' | grep -qx -- "$n"; then
      ip netns del "$n" 2>/dev/null || true
    fi
  done
  return 0
}

# phone ROLE IP IP6 BRIDGE PORTNAME [GATEWAY_IP]
phone() {
  local role=$1 ip=$2 ip6=$3 br=$4 port=$5 via=${6:-}
  local n; n=$(ns "$role")
  ip netns add "$n"
  ip -n "$n" link set lo up
  ip link add eth0 netns "$n" type veth peer name "$port" netns "$GW"
  ip -n "$GW" link set "$port" master "$br"
  ip -n "$GW" link set "$port" up
  ip -n "$n" addr add "$ip/24" dev eth0
  ip netns exec "$n" sysctl -qw net.ipv6.conf.eth0.accept_ra=0
  ip -n "$n" addr add "$ip6/64" dev eth0 nodad
  ip -n "$n" link set eth0 up
  if [ -n "$via" ]; then
    ip -n "$n" route add default via "$via"
    ip -n "$n" -6 route add default via 2001:db8:1::1
  else
    ip -n "$n" -6 route add 2001:db8:1::/64 via 2001:db8:2::1
  fi
}

up() {
  local policy=accept
  while [ $# -gt 0 ]; do
    case $1 in
      --forward-policy) policy=${2:-}; shift 2 || usage ;;
      --forward-policy=*) policy=${1#*=}; shift ;;
      *) usage ;;
    esac
  done
  case $policy in accept|drop) ;; *) echo "lab.sh: --forward-policy must be accept or drop" >&2; exit 64 ;; esac

  down
  trap 'rc=$?; if [ $rc -ne 0 ]; then echo "lab.sh: up failed, removing $runid" >&2; down; fi' EXIT

  ip netns add "$GW"
  ip -n "$GW" link set lo up
  ip -n "$GW" link add lan0 type bridge
  ip -n "$GW" link add wan0 type bridge
  ip -n "$GW" addr add 10.0.1.1/24 dev lan0
  ip -n "$GW" addr add 203.0.113.1/24 dev wan0
  ip -n "$GW" addr add 2001:db8:1::1/64 dev lan0 nodad
  ip -n "$GW" addr add 2001:db8:2::1/64 dev wan0 nodad
  ip -n "$GW" link set lan0 up
  ip -n "$GW" link set wan0 up
  ip netns exec "$GW" sysctl -qw net.ipv4.ip_forward=1
  ip netns exec "$GW" sysctl -qw net.ipv6.conf.all.forwarding=1
  # Routed traffic only: bridged frames between ports must not walk through iptables.
  if [ -e /proc/sys/net/bridge/bridge-nf-call-iptables ]; then
    ip netns exec "$GW" sh -c 'echo 0 > /proc/sys/net/bridge/bridge-nf-call-iptables' 2>/dev/null || true
    ip netns exec "$GW" sh -c 'echo 0 > /proc/sys/net/bridge/bridge-nf-call-ip6tables' 2>/dev/null || true
  fi

  phone a  10.0.1.23    2001:db8:1::23 lan0 pa  10.0.1.1
  phone a2 10.0.1.24    2001:db8:1::24 lan0 pa2 10.0.1.1
  phone b  203.0.113.9  2001:db8:2::9  wan0 pb
  phone c  203.0.113.10 2001:db8:2::10 wan0 pc

  ip netns exec "$GW" iptables -w -t nat -A POSTROUTING -o wan0 -j MASQUERADE
  if [ "$policy" = drop ]; then
    ip netns exec "$GW" iptables -w -P FORWARD DROP
    ip netns exec "$GW" iptables -w -A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
    ip netns exec "$GW" iptables -w -A FORWARD -i lan0 -o wan0 -j ACCEPT
    ip netns exec "$GW" ip6tables -w -P FORWARD DROP
    ip netns exec "$GW" ip6tables -w -A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
    ip netns exec "$GW" ip6tables -w -A FORWARD -i lan0 -o wan0 -j ACCEPT
  else
    ip netns exec "$GW" iptables -w -P FORWARD ACCEPT
  fi
  # Wait for the bridge ports to forward (no STP: immediate, but the links come up asynchronously).
  local i
  for i in $(seq 1 50); do
    if ! ip -n "$GW" -br link show type veth | grep -qv 'UP'; then break; fi
    sleep 0.05
  done
  trap - EXIT
  for r in "${ROLES[@]}"; do echo "$r $(ns "$r")"; done
}

case $cmd in
  up) up "$@" ;;
  down) [ $# -eq 0 ] || usage; down ;;
  names) for r in "${ROLES[@]}"; do echo "$r $(ns "$r")"; done ;;
  *) usage ;;
esac
