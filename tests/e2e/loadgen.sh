#!/usr/bin/env bash
# The benchmark's load generator against podsim: its TTFT agrees with the
# pods' own histograms, cached tokens add up, multi-turn and faults behave.
exec "$(dirname "$0")/../../bench/check_loadgen.sh"
