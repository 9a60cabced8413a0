#!/usr/bin/env bash
# Reads or changes the XDP guard's limits (kvg_xdp_cfg, struct kvg_xdp_cfg
# in bpf/kvgate.h). The guard reads them on every packet: a change applies
# to the next packet, no reload.
#
#   scripts/bpf-config.sh [--pin-dir DIR]                      # show
#   scripts/bpf-config.sh [--pin-dir DIR] [--rate N] [--burst N]
#       [--limit on|off] [--fragments drop|pass] [--port P]
#       [--v4-prefix N] [--v6-prefix N] [--defaults]
#
#   --rate N        new connections (SYN without ACK) per second per source
#   --burst N       connections at once after a quiet spell (bucket depth)
#   --limit on|off  the SYN limiter (off: SYNs only counted)
#   --fragments     TCP inside IP fragments: drop (default) or pass
#   --port P        TCP to this port tail-calls kvg_xdp_progs[0] (steering); 0 none
#   --v4-prefix N   IPv4 sources share a bucket per /N (32)
#   --v6-prefix N   IPv6 sources share a bucket per /N (64)
#   --defaults      start from the compiled defaults, not the current entry
#
# Unset fields keep their current values (the compiled defaults while the
# entry was never written). The write is one command:
#   bpftool map update pinned DIR/maps/kvg_xdp_cfg key 0 0 0 0 value hex <32 bytes>
# (version u32, flags u32, rate u32, burst u32, port u16 big-endian,
#  v4 prefix u8, v6 prefix u8, 12 zero bytes; integers little-endian).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=/sys/fs/bpf/kvgate
rate= burst= limit= frags= port= p4= p6= defaults=0 change=0
die() { echo "bpf-config: $*" >&2; exit 1; }
while [ $# -gt 0 ]; do
    case $1 in
    --pin-dir) dir=${2:?}; shift 2 ;;
    --rate) rate=${2:?}; change=1; shift 2 ;;
    --burst) burst=${2:?}; change=1; shift 2 ;;
    --limit) limit=${2:?}; change=1; shift 2 ;;
    --fragments) frags=${2:?}; change=1; shift 2 ;;
    --port) port=${2:?}; change=1; shift 2 ;;
    --v4-prefix) p4=${2:?}; change=1; shift 2 ;;
    --v6-prefix) p6=${2:?}; change=1; shift 2 ;;
    --defaults) defaults=1; change=1; shift ;;
    -h|--help) sed -n '2,/^set /s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) die "unknown argument $1 (--help)" ;;
    esac
done
map=$dir/maps/kvg_xdp_cfg
[ -e "$map" ] || die "no $map (scripts/bpf-load.sh, or a running kvgated, pins it)"
num() { [[ $2 =~ ^[0-9]+$ ]] && [ "$2" -le "$3" ] || die "$1: expected 0..$3, got '$2'"; }

# the compiled defaults, from the contract header (one source of truth)
def() { sed -n "s/^#define $1 \([0-9]*\).*/\1/p" "$root/bpf/kvgate.h"; }
D_RATE=$(def KVG_XDP_SYN_RATE_DEFAULT) D_BURST=$(def KVG_XDP_SYN_BURST_DEFAULT)
D_P4=$(def KVG_XDP_V4_PREFIX_DEFAULT) D_P6=$(def KVG_XDP_V6_PREFIX_DEFAULT)
cur=$(bpftool map lookup pinned "$map" key 0 0 0 0 -j | jq -c '.formatted.value')
if [ "$(jq .version <<<"$cur")" = 0 ] || [ $defaults = 1 ]; then
    c_flags=3 c_rate=$D_RATE c_burst=$D_BURST c_port=0 c_p4=$D_P4 c_p6=$D_P6 src="compiled defaults"
else
    c_flags=$(jq .flags <<<"$cur") c_rate=$(jq .syn_rate <<<"$cur") c_burst=$(jq .syn_burst <<<"$cur")
    c_port=$(( ($(jq .gw_port <<<"$cur") & 0xff) << 8 | $(jq .gw_port <<<"$cur") >> 8 ))
    c_p4=$(jq .v4_prefix <<<"$cur") c_p6=$(jq .v6_prefix <<<"$cur") src="set by an operator"
fi
show() {
    printf 'limiter %s, rate %s/s, burst %s, fragments %s, steering port %s, v4 /%s, v6 /%s (%s)\n' \
        "$( (( $1 & 1 )) && echo on || echo off)" "$2" "$3" "$( (( $1 & 2 )) && echo drop || echo pass)" \
        "$4" "$5" "$6" "$7"
}
if [ $change = 0 ]; then
    show "$c_flags" "$c_rate" "$c_burst" "$c_port" "$c_p4" "$c_p6" "$src"
    exit 0
fi
[ "$(id -u)" = 0 ] || die "needs root"
[ -n "$rate" ] && { num --rate "$rate" 4294967295; c_rate=$rate; }
[ -n "$burst" ] && { num --burst "$burst" 4294967295; c_burst=$burst; }
[ -n "$port" ] && { num --port "$port" 65535; c_port=$port; }
[ -n "$p4" ] && { num --v4-prefix "$p4" 32; c_p4=$p4; }
[ -n "$p6" ] && { num --v6-prefix "$p6" 128; c_p6=$p6; }
case $limit in on) c_flags=$((c_flags | 1)) ;; off) c_flags=$((c_flags & ~1)) ;; "") ;;
    *) die "--limit: on or off" ;; esac
case $frags in drop) c_flags=$((c_flags | 2)) ;; pass) c_flags=$((c_flags & ~2)) ;; "") ;;
    *) die "--fragments: drop or pass" ;; esac
le32() { printf '%02x %02x %02x %02x' $(($1 & 255)) $(($1 >> 8 & 255)) $(($1 >> 16 & 255)) $(($1 >> 24 & 255)); }
val="$(le32 1) $(le32 $c_flags) $(le32 $c_rate) $(le32 $c_burst)"
val="$val $(printf '%02x %02x %02x %02x' $((c_port >> 8)) $((c_port & 255)) "$c_p4" "$c_p6")"
val="$val 00 00 00 00 00 00 00 00 00 00 00 00"
# shellcheck disable=SC2086
bpftool map update pinned "$map" key 0 0 0 0 value hex $val
show "$c_flags" "$c_rate" "$c_burst" "$c_port" "$c_p4" "$c_p6" "written"
