#!/usr/bin/env bash
# sipalg's iptables rules (spec §2).
#
#   sipalg-rules.sh install   [--queue N] [--workers W] [--sip-ports 5060,5080] [--fail-closed] [--media-mark MARK/MASK]
#                             [--first-packet-mark MARK/MASK] [--print]
#   sipalg-rules.sh uninstall
#   sipalg-rules.sh status    (prints sipalg's rules; exit 0 when installed, 1 when not)
#
# install: sipalg's own chain SIPALG in the filter table, jumped to from the top of FORWARD:
#   -A SIPALG -p udp --dport P -j NFQUEUE --queue-num N --queue-bypass   (each SIP port P)
#   -A SIPALG -p udp --sport P -j NFQUEUE --queue-num N --queue-bypass
#   -A SIPALG -p udp -m mark --mark FPMARK -m conntrack --ctstate NEW -j NFQUEUE --queue-num N --queue-bypass
#                                                      (the first packet of a new flow to a media port
#                                                       open to anyone: sipalg's nft table marks it, sipalg
#                                                       latches onto it or cuts it later; --first-packet-mark)
#   -A SIPALG -m connmark --mark MARK/MASK -j ACCEPT   (media flows sipalg's nft table DNATs carry this
#                                                       ct mark, so they pass a FORWARD policy DROP)
# and its chain SIPALG_TCP, jumped to from the top of INPUT, for SIP over TCP (the splice of `sipalg run`):
#   -A SIPALG_TCP -m mark --mark 0x5a10/0xffff -j ACCEPT   (connections its tproxy rule diverts to the
#                                     gateway, and the replies to its transparent legs, carry this fwmark:
#                                     they are delivered locally, so an INPUT policy DROP must let them in;
#                                     they never cross FORWARD, and the splice's own legs leave by OUTPUT)
# --workers W (W > 1, `sipalg run --workers W`): every --queue-num N above is --queue-balance N:N+W-1, one
# queue per worker; the kernel picks the queue by a hash of the addresses (docs/workers.md).
# Every rule carries "-m comment --comment sipalg". --queue-bypass = fail-open: with nothing bound to the
# queue SIP passes untouched; --fail-closed leaves it out, so SIP is dropped while sipalg is not running.
# Installing again replaces the chain's content in one iptables-restore transaction (same options = the
# same rules, no duplicates). uninstall removes the jump(s) and the chain, nothing else; it is a no-op when
# they are absent. Exit codes: 0 ok, 64 usage, 69 iptables failed.
# install --print writes the iptables-restore text install would apply to stdout and changes nothing;
# install --print --nft writes what an operator's own `table inet filter { chain forward { policy
# drop; ... } }` needs for sipalg (a pure-nftables gateway, README "Firewall reloads").
# IPTABLES / IPTABLES_RESTORE override the binaries (e.g. iptables-legacy).
# IPv6: install and uninstall do the same with ip6tables when it exists (IPv6 phones, README "IPv6"):
# the same chains, rules and comment tag, in ip6tables' filter table. IP6TABLES / IP6TABLES_RESTORE
# override those binaries; with only IPTABLES overridden, ip6tables is left alone. --print shows the
# IPv4 text (IPTABLES=ip6tables ... install --print shows IPv6's, which is the same).
set -euo pipefail

IPT=${IPTABLES:-iptables}
IPT_RESTORE=${IPTABLES_RESTORE:-${IPT}-restore}
CHAIN=SIPALG
TCP_CHAIN=SIPALG_TCP
# The fwmark of src/netfilter/tproxy.ts (DEFAULT_TPROXY).
TCP_MARK=0x5a10/0xffff
COMMENT=sipalg

usage() {
  echo "usage: sipalg-rules.sh install [--queue N] [--sip-ports 5060,5080] [--fail-closed] [--media-mark 0x5a100000/0xffff0000] [--first-packet-mark 0x5a200000/0xffff0000] [--print]" >&2
  echo "       sipalg-rules.sh uninstall | status" >&2
  exit 64
}
bad() { echo "sipalg-rules.sh: invalid value for $1: $2 ($3); e.g. $4" >&2; exit 64; }
fail() { echo "sipalg-rules.sh: iptables failed on $1: $2" >&2; exit 69; }

[ $# -ge 1 ] || usage
cmd=$1; shift

queue=0 workers=1 ports=5060 fail_closed=0 mark=0x5a100000/0xffff0000 fpmark=0x5a200000/0xffff0000 print=0 nft=0
while [ $# -gt 0 ]; do
  case $1 in
    --queue|--workers|--sip-ports|--media-mark|--first-packet-mark)
      [ $# -ge 2 ] || bad "$1" "(missing)" "a value is required" "$1 VALUE"
      case $1 in --queue) queue=$2 ;; --workers) workers=$2 ;; --sip-ports) ports=$2 ;; --media-mark) mark=$2 ;; --first-packet-mark) fpmark=$2 ;; esac
      shift 2 ;;
    --queue=*) queue=${1#*=}; shift ;;
    --workers=*) workers=${1#*=}; shift ;;
    --sip-ports=*) ports=${1#*=}; shift ;;
    --media-mark=*) mark=${1#*=}; shift ;;
    --first-packet-mark=*) fpmark=${1#*=}; shift ;;
    --fail-closed) fail_closed=1; shift ;;
    --print) print=1; shift ;;
    --nft) nft=1; shift ;;
    -h|--help) usage ;;
    *) echo "sipalg-rules.sh: unknown argument $1" >&2; usage ;;
  esac
done

# ---- validation
[[ $queue =~ ^[0-9]{1,5}$ ]] && [ "$queue" -le 65535 ] || bad --queue "$queue" "a queue number 0-65535" "--queue 0"
[[ $workers =~ ^[0-9]{1,2}$ ]] && [ "$workers" -ge 1 ] && [ "$workers" -le 64 ] && [ $((queue + workers - 1)) -le 65535 ] ||
  bad --workers "$workers" "a number of workers 1-64 (queues from --queue on, up to 65535)" "--workers 2"
# One queue, or one per worker: the iptables target's options and the nft statement's queue number(s).
if [ "$workers" -gt 1 ]; then
  ipt_queue="--queue-balance $queue:$((queue + workers - 1))" nft_queue="$queue-$((queue + workers - 1))"
else
  ipt_queue="--queue-num $queue" nft_queue=$queue
fi
IFS=, read -r -a port_list <<<"$ports"
[ ${#port_list[@]} -gt 0 ] || bad --sip-ports "$ports" "a comma-separated list of UDP ports" "--sip-ports 5060,5080"
for p in "${port_list[@]}"; do
  [[ $p =~ ^[0-9]{1,5}$ ]] && [ "$p" -ge 1 ] && [ "$p" -le 65535 ] ||
    bad --sip-ports "$ports" "a comma-separated list of ports 1-65535" "--sip-ports 5060,5080"
done
num='(0x[0-9a-fA-F]{1,8}|[0-9]{1,10})'
[[ $mark =~ ^$num(/$num)?$ ]] || bad --media-mark "$mark" "MARK[/MASK], 32-bit" "--media-mark 0x5a100000/0xffff0000"
[[ $mark == */* ]] || mark="$mark/0xffffffff"
[[ $fpmark =~ ^$num(/$num)?$ ]] || bad --first-packet-mark "$fpmark" "MARK[/MASK], 32-bit" "--first-packet-mark 0x5a200000/0xffff0000"
[[ $fpmark == */* ]] || fpmark="$fpmark/0xffffffff"
[ "$nft" = 0 ] || { [ "$print" = 1 ] && [ "$cmd" = install ]; } || bad --nft "(alone)" "it only goes with install --print" "install --print --nft"

command -v "$IPT" >/dev/null 2>&1 || fail "$IPT" "command not found"

chain_exists() { "$IPT" -w -t filter -n -L "$CHAIN" >/dev/null 2>&1; }
# The jump, exactly as install writes it.
JUMP=(-m comment --comment "$COMMENT" -j "$CHAIN")
TCP_JUMP=(-m comment --comment "$COMMENT" -j "$TCP_CHAIN")

rules_text() {
  local p bypass=" --queue-bypass"
  [ "$fail_closed" = 1 ] && bypass=""
  for p in "${port_list[@]}"; do
    echo "-A $CHAIN -p udp -m udp --dport $p -m comment --comment $COMMENT -j NFQUEUE $ipt_queue$bypass"
    echo "-A $CHAIN -p udp -m udp --sport $p -m comment --comment $COMMENT -j NFQUEUE $ipt_queue$bypass"
  done
  echo "-A $CHAIN -p udp -m mark --mark $fpmark -m conntrack --ctstate NEW -m comment --comment $COMMENT -j NFQUEUE $ipt_queue$bypass"
  echo "-A $CHAIN -m connmark --mark $mark -m comment --comment $COMMENT -j ACCEPT"
}

nft_text() {
  local set=$ports bypass=" bypass"
  [ ${#port_list[@]} -gt 1 ] && set="{ ${ports//,/, } }"
  [ "$fail_closed" = 1 ] && bypass=""
  echo "# sipalg: the media flows its table translates (by ct mark), first in the forward chain"
  echo "ct mark and ${mark#*/} == ${mark%/*} accept"
  echo "# sipalg: SIP out (queued by \"sipalg rules install\"); wan0 = your outside interface"
  echo "oifname \"wan0\" udp dport $set accept"
  echo "# sipalg: SIP over TCP, in your input chain (connections its splice takes are delivered locally)"
  echo "meta mark and ${TCP_MARK#*/} == ${TCP_MARK%/*} accept"
  echo "# IPv6 phones: in an inet table these lines cover IPv6 too (sipalg's table ip6 marks its pinholes)"
  echo "# or queue SIP here instead of \"sipalg rules install\" (kernels with nft_queue):"
  echo "# udp dport $set queue num $nft_queue$bypass"
  echo "# udp sport $set queue num $nft_queue$bypass"
  echo "# meta mark and ${fpmark#*/} == ${fpmark%/*} ct state new queue num $nft_queue$bypass"
}

install() {
  if [ "$nft" = 1 ]; then nft_text; return 0; fi
  local first txt
  # Our jump must be the first rule of FORWARD; keep it if it already is, else (re)insert it there.
  first=$("$IPT" -w -t filter -S FORWARD 2>/dev/null | sed -n '2p' || true)
  txt="*filter"$'\n'
  # With --noflush, declaring an existing chain flushes it: its content is replaced atomically.
  txt+=":$CHAIN - [0:0]"$'\n'
  txt+="$(rules_text)"$'\n'
  txt+=":$TCP_CHAIN - [0:0]"$'\n'
  txt+="-A $TCP_CHAIN -m mark --mark $TCP_MARK -m comment --comment $COMMENT -j ACCEPT"$'\n'
  if ! "$IPT" -w -t filter -C INPUT "${TCP_JUMP[@]}" >/dev/null 2>&1; then
    txt+="-I INPUT 1 -m comment --comment $COMMENT -j $TCP_CHAIN"$'\n'
  fi
  if [ "$first" != "-A FORWARD -m comment --comment $COMMENT -j $CHAIN" ]; then
    if [ "$print" = 1 ] && "$IPT" -w -t filter -C FORWARD "${JUMP[@]}" >/dev/null 2>&1; then
      echo "# install first deletes the jump(s) to $CHAIN further down FORWARD: $IPT -D FORWARD ${JUMP[*]}"
    fi
    while [ "$print" = 0 ] && "$IPT" -w -t filter -C FORWARD "${JUMP[@]}" >/dev/null 2>&1; do
      "$IPT" -w -t filter -D FORWARD "${JUMP[@]}" || fail "FORWARD" "cannot remove the old jump to $CHAIN"
    done
    txt+="-I FORWARD 1 -m comment --comment $COMMENT -j $CHAIN"$'\n'
  fi
  txt+="COMMIT"$'\n'
  if [ "$print" = 1 ]; then printf '%s' "$txt"; return 0; fi
  local err
  if ! err=$("$IPT_RESTORE" -w --noflush <<<"$txt" 2>&1); then
    fail "install of chain $CHAIN" "$err"
  fi
  echo "sipalg rules installed: chain $CHAIN (filter, first in FORWARD), queue $nft_queue, SIP ports ${ports}," \
       "$([ "$fail_closed" = 1 ] && echo "fail-closed" || echo "fail-open (--queue-bypass)"), media ct mark $mark"
}

uninstall() {
  local n=0
  while "$IPT" -w -t filter -C INPUT "${TCP_JUMP[@]}" >/dev/null 2>&1; do
    "$IPT" -w -t filter -D INPUT "${TCP_JUMP[@]}" || fail "INPUT" "cannot remove the jump to $TCP_CHAIN"
  done
  if "$IPT" -w -t filter -n -L "$TCP_CHAIN" >/dev/null 2>&1; then
    "$IPT" -w -t filter -F "$TCP_CHAIN" && "$IPT" -w -t filter -X "$TCP_CHAIN" || fail "chain $TCP_CHAIN" "cannot delete it"
  fi
  while "$IPT" -w -t filter -C FORWARD "${JUMP[@]}" >/dev/null 2>&1; do
    "$IPT" -w -t filter -D FORWARD "${JUMP[@]}" || fail "FORWARD" "cannot remove the jump to $CHAIN"
    n=$((n + 1))
    [ $n -lt 100 ] || fail "FORWARD" "jump to $CHAIN keeps coming back"
  done
  if chain_exists; then
    "$IPT" -w -t filter -F "$CHAIN" || fail "chain $CHAIN" "cannot flush it"
    local err
    if ! err=$("$IPT" -w -t filter -X "$CHAIN" 2>&1); then
      fail "chain $CHAIN" "cannot delete it ($err); is it still referenced by a rule sipalg did not add? ($IPT -S | grep $CHAIN)"
    fi
    echo "sipalg rules removed"
  else
    echo "sipalg rules not installed; nothing to remove"
  fi
}

status() {
  if chain_exists; then
    "$IPT" -w -t filter -S FORWARD | grep -F -- "-j $CHAIN" || echo "(no jump from FORWARD to $CHAIN)"
    "$IPT" -w -t filter -S "$CHAIN"
    return 0
  fi
  echo "sipalg rules not installed"
  return 1
}

# The same command for IPv6 (ip6tables), when there is one to use; its messages are prefixed "ip6tables: ".
ipv6_too() {
  [ "$print" = 0 ] || return 0
  [ -z "${IPTABLES:-}" ] || [ -n "${IP6TABLES:-}" ] || return 0
  local ip6t=${IP6TABLES:-ip6tables}
  command -v "$ip6t" >/dev/null 2>&1 || return 0
  local out rc=0
  out=$(IPT=$ip6t; IPT_RESTORE=${IP6TABLES_RESTORE:-${ip6t}-restore}; "$1" 2>&1) || rc=$?
  [ -z "$out" ] || sed 's/^/ip6tables: /' <<<"$out"
  return $rc
}

case $cmd in
  install) install; ipv6_too install ;;
  uninstall) uninstall; ipv6_too uninstall ;;
  status) status ;;
  *) usage ;;
esac
