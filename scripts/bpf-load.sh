#!/usr/bin/env bash
# Loads kvgate's XDP guard and its maps with bpftool, as an operator does
# without kvgated (then `kvgated --bpf-pinned DIR` uses them), optionally
# attaches the guard to an interface, and shows what is loaded.
#
#   scripts/bpf-load.sh [--pin-dir DIR] [--obj FILE] [--iface IF]
#                       [--mode auto|native|generic] [--netns NS]
#   scripts/bpf-load.sh attach --iface IF [--mode M] [--netns NS] [--pin-dir DIR]
#   scripts/bpf-load.sh show [--pin-dir DIR] [--netns NS]
#
# The commands it runs, in order (DIR = /sys/fs/bpf/kvgate by default):
#   mount -t bpf bpf /sys/fs/bpf                       # only when not mounted
#   bpftool prog loadall build/bpf/xdp_guard.bpf.o DIR pinmaps DIR/maps
#   bpftool prog load build/bpf/splice.bpf.o DIR/splice_verdict \
#       map name kvg_pods pinned DIR/maps/kvg_pods ...     # every map it shares
#   bpftool prog attach pinned DIR/splice_verdict stream_verdict pinned DIR/maps/kvg_sock
#   ip link set dev IF xdpdrv pinned DIR/xdp_guard     # native; xdpgeneric for generic
#   bpftool map dump pinned DIR/maps/kvg_pods          # show: the pod table, the
#                                                      # splice's counters and flows, etc.,
#                                                      # and each bypass entry attached here:
#                                                      # its counters and spliced flows
#                                                      # (bpftool map dump id N)
# --netns NS runs the `ip link` step as `nsenter --net=/run/netns/NS ip ...`:
# `ip -n NS` / `ip netns exec NS` remount /sys, and the bpffs under it with
# the pins would not be there.
# Limits: scripts/bpf-config.sh. Removal: scripts/bpf-unload.sh.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=/sys/fs/bpf/kvgate obj=$root/build/bpf/xdp_guard.bpf.o iface= mode=auto netns= cmd=load
die() { echo "bpf-load: $*" >&2; exit 1; }
case ${1:-} in show|attach) cmd=$1; shift ;; esac
while [ $# -gt 0 ]; do
    case $1 in
    --pin-dir) dir=${2:?}; shift 2 ;;
    --obj) obj=${2:?}; shift 2 ;;
    --iface) iface=${2:?}; shift 2 ;;
    --mode) mode=${2:?}; shift 2 ;;
    --netns) netns=${2:?}; shift 2 ;;
    -h|--help) sed -n '2,/^set /s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) die "unknown argument $1 (--help)" ;;
    esac
done
in_ns() { if [ -n "$netns" ]; then nsenter --net="/run/netns/$netns" "$@"; else "$@"; fi; }

# show_bypass: every bypass entry (kvg-bypassd's bp_entry, dpdk/README.md)
# attached in this network namespace: its configuration and the worker's
# heartbeat, its counters per reason, and who is spliced to which pod
# (kvg_bp_flows: client -> pod entries and pod -> client entries, addresses
# as the packet carries them, the pod's slot in kvg_pods, packets, bytes,
# requests XDP framed after the first). By map id: bpftool by name would
# also dump other namespaces' workers.
show_bypass() {
    local ids id name mid mname names
    ids=$(in_ns bpftool net show -j | jq -r '.[0].xdp[]?.id // empty')
    for id in $ids; do
        name=$(bpftool prog show id "$id" -j | jq -r .name)
        [ "$name" = bp_entry ] || continue
        echo "== bypass entry (program $id on $(in_ns bpftool net show -j | jq -r --argjson i "$id" '.[0].xdp[] | select(.id == $i) | .devname'))"
        names=$(sed -n "/#define KVG_BP_REASON_NAMES/,/^ *}/p" "$root/bpf/kvgate.h" | grep -o '"[a-z0-9_]*"' | tr -d '"' | jq -R . | jq -sc .)
        for mid in $(bpftool prog show id "$id" -j | jq -r '.map_ids[]?'); do
            mname=$(bpftool map show id "$mid" -j | jq -r .name)
            case $mname in
            kvg_bpe_cfg)
                # port (network order), source ports, heartbeat age
                bpftool map dump id "$mid" -j | jq -c --argjson now "$(python3 -c 'import time; print(time.monotonic_ns())')" \
                    '.[0].formatted.value | {port: ((.port % 256) * 256 + (.port / 256 | floor)),
                     src_ports: "\(.lo)-\(.hi)", worker_heartbeat: (if .alive_ns == 0 then "never"
                     else "written \((($now - .alive_ns) / 1e8 | floor) / 10) s ago" end)}' ;;
            kvg_bp_stats)
                echo "-- counters (kvg_bp_stats, all CPUs)"
                bpftool map dump id "$mid" -j | jq -r --argjson n "$names" \
                    '.[] | .formatted | select(.key < ($n|length)) |
                     "\(.key)\t\($n[.key])\t\([.values[].value.packets]|add) packets\t\([.values[].value.bytes]|add) bytes"' ;;
            kvg_bp_flows)
                echo "-- spliced flows (kvg_bp_flows: from -> to as received, rewritten to pod slot)"
                bpftool map dump id "$mid" -j | jq -r '
                    def ip: "\(. % 256).\((. / 256 | floor) % 256).\((. / 65536 | floor) % 256).\(. / 16777216 | floor)";
                    def port: (. % 256) * 256 + (. / 256 | floor);
                    .[] | .formatted | "\(.key.saddr | ip):\(.key.sport | port) -> \(.key.daddr | ip):\(.key.dport | port)  =>  \(.value.daddr | ip):\(.value.dport | port)  slot \(.value.pod_slot)  packets \(.value.packets)  bytes \(.value.bytes)  \(if .value.rq_state == 3 then "answer events" else "requests" end) \(.value.requests // .value[""].requests // .value[""].events)"' ;;
            esac
        done
    done
}

if [ $cmd = show ] && [ ! -e "$dir/xdp_guard" ] && [ ! -d "$dir/maps" ]; then
    show_bypass
    die "nothing loaded at $dir"
fi
if [ $cmd = show ]; then
    [ -e "$dir/xdp_guard" ] || [ -d "$dir/maps" ] || die "nothing loaded at $dir"
    echo "== program"
    bpftool prog show pinned "$dir/xdp_guard" 2>/dev/null || echo "(no $dir/xdp_guard)"
    echo "== XDP attachments (this network namespace)"
    bpftool net show | sed -n '/^xdp:/,/^tc:/p' | grep -v '^tc:' || true
    echo "== limits (kvg_xdp_cfg; version 0 = the program's compiled defaults)"
    bpftool map lookup pinned "$dir/maps/kvg_xdp_cfg" key 0 0 0 0 -j | jq -c '.formatted.value'
    # reasons MAP NAMES_MACRO UNIT: a per-CPU counter map, summed over CPUs,
    # each key named from bpf/kvgate.h
    reasons() {
        local names
        names=$(sed -n "/#define $2/,/^ *}/p" "$root/bpf/kvgate.h" | grep -o '"[a-z0-9_]*"' | tr -d '"' | jq -R . | jq -sc .)
        bpftool map dump pinned "$dir/maps/$1" -j | jq -r --argjson n "$names" --arg u "$3" \
            '.[] | .formatted | select(.key < ($n|length)) |
             "\(.key)\t\($n[.key])\t\([.values[].value[$u]]|add) \($u)\t\([.values[].value.bytes]|add) bytes"'
    }
    echo "== counters (kvg_xdp_stats, all CPUs)"
    reasons kvg_xdp_stats KVG_XDP_REASON_NAMES packets
    echo "== sources being limited (kvg_syn_bkt, dropped > 0)"
    bpftool map dump pinned "$dir/maps/kvg_syn_bkt" -j | jq -c '.[] | .formatted | select(.value.dropped > 0)'
    echo "== pod table (kvg_pods, slots in use)"
    bpftool map dump pinned "$dir/maps/kvg_pods" -j | jq -c '.[] | .formatted | select(.value.flags != 0)'
    if [ -e "$dir/maps/kvg_spl_stats" ]; then
        echo "== sockmap splice (program $dir/splice_verdict; kvg_spl_stats, all CPUs)"
        reasons kvg_spl_stats KVG_SPL_REASON_NAMES skbs
        echo "== spliced sockets now (kvg_flow_st: state 1 spliced, 2 handed up)"
        bpftool map dump pinned "$dir/maps/kvg_flow_st" -j | jq -c '.[] | .formatted'
    fi
    show_bypass
    exit 0
fi

[ "$(id -u)" = 0 ] || die "needs root"
if [ $cmd = load ]; then
    [ -f "$obj" ] || die "no $obj (build it: make bpf)"
    parent=$(dirname "$dir")
    if ! mountpoint -q "$parent"; then
        mkdir -p "$parent"
        mount -t bpf bpf "$parent"
    fi
    [ -e "$dir/xdp_guard" ] && die "already loaded at $dir (scripts/bpf-unload.sh --pin-dir $dir first)"
    mkdir -p "$dir"
    bpftool prog loadall "$obj" "$dir" pinmaps "$dir/maps"
    echo "bpf-load: loaded $obj; program $dir/xdp_guard, maps $dir/maps/"
    # the sockmap splice: the verdict, sharing the maps just pinned, attached
    # to kvg_sock (kvgated --bpf-pinned splices only when it finds it)
    sobj=$(dirname "$obj")/splice.bpf.o
    if [ -f "$sobj" ]; then
        maps=()
        for m in kvg_pods kvg_xdp_stats kvg_xdp_cfg kvg_syn_bkt kvg_xdp_progs kvg_sock \
                 kvg_flow_cfg kvg_flow_st kvg_spl_stats; do
            maps+=(map name $m pinned "$dir/maps/$m")
        done
        bpftool prog load "$sobj" "$dir/splice_verdict" "${maps[@]}"
        bpftool prog attach pinned "$dir/splice_verdict" stream_verdict pinned "$dir/maps/kvg_sock"
        echo "bpf-load: loaded $sobj; program $dir/splice_verdict attached to $dir/maps/kvg_sock"
    fi
else
    [ -n "$iface" ] || die "attach: --iface IF"
    [ -e "$dir/xdp_guard" ] || die "nothing loaded at $dir"
fi

if [ -n "$iface" ]; then
    case $mode in
    native) kinds=xdpdrv ;; generic) kinds=xdpgeneric ;; auto) kinds="xdpdrv xdpgeneric" ;;
    *) die "--mode: auto, native or generic" ;;
    esac
    for k in $kinds; do
        if in_ns ip link set dev "$iface" $k pinned "$dir/xdp_guard" 2>/dev/null; then
            echo "bpf-load: attached to $iface ($k${netns:+, netns $netns})"
            exit 0
        fi
    done
    in_ns ip link set dev "$iface" ${kinds##* } pinned "$dir/xdp_guard" # the error, once
    exit 1
fi
