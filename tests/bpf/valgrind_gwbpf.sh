#!/usr/bin/env bash
# test_gwbpf (kvgated's BPF loader, user/gateway/bpf.c) under valgrind:
# its own checks, plus no memory errors and no leaks. valgrind 3.19's
# false reports about bpf(2) attributes and libbpf's netlink parsing are
# suppressed (tests/bpf/valgrind.supp says why). Skipped (77) without
# root, valgrind or the built test.
cd "$(dirname "$0")/../.."
[ "$(id -u)" = 0 ] || { echo "skipped: needs root to load BPF programs"; exit 77; }
command -v valgrind >/dev/null || { echo "skipped: valgrind not installed"; exit 77; }
[ -x build/tests/bpf/test_gwbpf ] || { echo "skipped: build/tests/bpf/test_gwbpf not built"; exit 77; }
log=$(mktemp)
trap 'rm -f "$log"' EXIT
valgrind -q --suppressions=tests/bpf/valgrind.supp --leak-check=full \
    --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect \
    --error-exitcode=9 build/tests/bpf/test_gwbpf >"$log" 2>&1
rc=$?
# valgrind's notes about bpf commands and syscalls it does not model are noise
grep -vE 'unhandled eBPF command|unhandled amd64-linux syscall|You may be able|README_MISSING|Nevertheless we|it at http' "$log"
if [ $rc = 77 ]; then exit 77; fi
if [ $rc = 9 ]; then echo "FAIL valgrind found memory errors or leaks"; echo "0 passed, 1 failed"; exit 1; fi
exit $rc
