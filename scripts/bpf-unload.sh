#!/usr/bin/env bash
# Detaches kvgate's XDP guard and removes its pins (program and maps).
#
#   scripts/bpf-unload.sh [--pin-dir DIR] [--iface IF] [--netns NS]
#
# The commands (DIR = /sys/fs/bpf/kvgate by default):
#   ip link set dev IF xdp off            # --iface: native and generic (xdpdrv/xdpgeneric off)
#   rm -r DIR                             # the pins; a map or program no longer pinned,
#                                         # attached or held by a process is freed
# Run it while kvgated is stopped: kvgated holds the maps while it runs (and
# would keep writing the pod table into them). An XDP attachment that is
# not removed keeps the program (and its maps) alive after the pins go.
set -euo pipefail
dir=/sys/fs/bpf/kvgate iface= netns=
die() { echo "bpf-unload: $*" >&2; exit 1; }
while [ $# -gt 0 ]; do
    case $1 in
    --pin-dir) dir=${2:?}; shift 2 ;;
    --iface) iface=${2:?}; shift 2 ;;
    --netns) netns=${2:?}; shift 2 ;;
    -h|--help) sed -n '2,/^set /s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) die "unknown argument $1 (--help)" ;;
    esac
done
[ "$(id -u)" = 0 ] || die "needs root"
in_ns() { if [ -n "$netns" ]; then nsenter --net="/run/netns/$netns" "$@"; else "$@"; fi; }
if [ -n "$iface" ]; then
    in_ns ip link set dev "$iface" xdpdrv off 2>/dev/null || true
    in_ns ip link set dev "$iface" xdpgeneric off 2>/dev/null || true
    echo "bpf-unload: XDP off on $iface"
fi
if [ -d "$dir" ]; then
    # rm -r only on bpffs: a mistyped --pin-dir must not delete real files
    [ "$(stat -f -c %T "$dir")" = bpf_fs ] || die "$dir is not on bpffs"
    rm -r "$dir"
    echo "bpf-unload: removed $dir"
fi
