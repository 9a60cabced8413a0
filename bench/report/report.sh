#!/usr/bin/env bash
# bench/report/report.sh DIR: DIR/summary.json (from bench/run) ->
#   DIR/report.md      settings, the issue's targets (met / not met), per
#                      scenario a table per rate of every target, ratios of
#                      kvgated prefix-aware to each, kvgated's decisions
#   DIR/results.csv    one row per (scenario, rate, target): latencies,
#                      throughput, hit rate, infinite- and finite-cache
#                      ideal, hit rate as % of the finite one
#   DIR/plots/*.png    per scenario: TTFT p50, ITL p50 and output tokens/s
#                      versus rate, one line per target (gnuplot)
# DIR/notes.md, when present, is included verbatim as the "Analysis" section
# (hand-written reading of a committed run). jq and gnuplot only.
set -euo pipefail
DIR=${1:?usage: bench/report/report.sh bench/results/NAME}
HERE=$(cd "$(dirname "$0")" && pwd)
[ -f "$DIR/summary.json" ] || { echo "report: no $DIR/summary.json" >&2; exit 1; }
NOTES=$DIR/notes.md
[ -f "$NOTES" ] || NOTES=/dev/null

jq -r -L "$HERE" --rawfile notes "$NOTES" -f "$HERE/report.jq" "$DIR/summary.json" >"$DIR/report.md.tmp"
mv "$DIR/report.md.tmp" "$DIR/report.md"
# the per-target table as CSV (medians over repeats): hit rate next to both ceilings
jq -r -L "$HERE" 'include "lib"; csv_rows' "$DIR/summary.json" >"$DIR/results.csv"

# ---- plots ----
if ! command -v gnuplot >/dev/null; then
    echo "report: gnuplot missing (scripts/deps.sh installs gnuplot-nox); no plots" >&2
    exit 0
fi
mkdir -p "$DIR/plots"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
term='pngcairo size 720,480 font ",10"'
gnuplot -e 'set terminal pngcairo' >/dev/null 2>&1 </dev/null || term='png size 720,480'
for sc in $(jq -r '.meta.scenarios[].name' "$DIR/summary.json"); do
    unit=$(jq -r --arg s "$sc" '.meta.scenarios[] | select(.name == $s) | .unit' "$DIR/summary.json")
    for metric in ttft_p50 itl_p50 tok_s; do
        # columns: rate, then one per target (median over repeats; "?" = missing)
        jq -r -L "$HERE" --arg s "$sc" --arg k "$metric" 'include "lib";
            . as $root | cells as $c | .meta.settings.targets as $t |
            ("rate " + ($t | join(" "))),
            ([$c[] | select(.scenario == $s) | .rate] | unique[] as $r |
             ([$r] + [$t[] as $x | (cell($c; $s; $r; $x).m[$k] // "?")]) | map(tostring) | join(" "))' \
            "$DIR/summary.json" >"$TMP/$sc-$metric.dat"
    done
    ntgt=$(jq '.meta.settings.targets | length' "$DIR/summary.json")
    plot() { # metric file-suffix title ylabel logscale
        gnuplot <<GP
set terminal $term
set output "$DIR/plots/$sc-$2.png"
set title "$sc: $3"
set xlabel "offered load ($unit)"
set ylabel "$4"
set key top left
set grid
set datafile missing "?"
$( [ "$5" = log ] && echo "set logscale y" )
plot for [i=2:$((ntgt + 1))] "$TMP/$sc-$1.dat" using 1:i with linespoints lw 2 pt 7 title columnheader(i)
GP
    }
    plot ttft_p50 ttft "TTFT p50 vs load" "TTFT p50 (ms, simulated)" log
    plot itl_p50 itl "ITL p50 vs load" "inter-token latency p50 (ms, simulated)" log
    plot tok_s tokps "output tokens/s vs load" "output tokens/s (simulated)" lin
done
