#!/usr/bin/env bash
# Runs one libFuzzer target for a few seconds over its seed corpus (and the
# crash-regression inputs in tests/fuzz/corpus/<name>/), then prints the
# summary line. A crash, leak or sanitizer report is a failure.
set -u
bin=$1; secs=${2:-20}
name=$(basename "$bin")
seeds="tests/fuzz/corpus/${name#fuzz_}"
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
[ -d "$seeds" ] && cp -r "$seeds"/. "$work"/ 2>/dev/null
if "$bin" -max_total_time="$secs" -rss_limit_mb=1024 -artifact_prefix="$work/" "$work" >"$work/log" 2>&1; then
    grep -E '^#[0-9]+.*DONE' "$work/log" | tail -1
    echo "1 passed, 0 failed"
else
    tail -40 "$work/log"
    for a in "$work"/crash-* "$work"/leak-* "$work"/timeout-*; do
        [ -f "$a" ] && { echo "artifact: $a"; xxd "$a" | head -20; }
    done
    echo "0 passed, 1 failed"
fi
