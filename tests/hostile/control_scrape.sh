#!/usr/bin/env bash
# The control thread under pods with huge /metrics pages (issue 9,
# finding 11). Two fake pods serve a 16 MiB page (one with Content-Length,
# one chunked) next to two podsim pods, scraped every 50 ms:
#   - the podsim pods' metrics stay fresh (age under stale_ms, 200 ms)
#   - the big pages fail as too_large (scrape.max_page_bytes, 4 MiB), and
#     their pods stay healthy (a scrape failure is never a health failure)
#   - the podsim pods are scraped at (at least 75% of) their interval's rate
# Then two pods with 3.5 MiB pages (under the cap, ~8 ms to parse each)
# scraped every 10 ms, more parsing than the control thread has time for:
# the podsim pods are still scraped at (at least 75% of) their rate and stay
# fresh (the parse-time budget per round), and the big pages are still
# parsed now and then.
. "$(dirname "$0")/../e2e/lib.sh"
[ -x $BUILD/kvgated ] || skip_all "$BUILD/kvgated not built"
d=$E2E_TMP
start_podsim --pods 2 || setup_failed "podsim"
ok_scrapes() { # metrics-page pod
    awk -v k="kvgate_scrapes_total{pod=\"$2\",result=\"ok\"}" 'index($0, k" ")==1 {print int($2); f=1} END{if(!f) print 0}' $1
}
both_ready() { grep -q ready $d/big0.log && grep -q ready $d/big1.log; }
sims_scraped() {
    jq_true "$(curl -s http://127.0.0.1:$GA/admin/pods)" \
        '[.[] | select(.name == "sim0" or .name == "sim1") | .metrics_age_ms] | all(. != null)'
}
run_case() { # name page-bytes seconds interval-ms
    local P i
    P=$(free_port_range 4)
    /usr/bin/python3 tests/hostile/control_fakepod.py $P --page-bytes $2 >$d/big0.log 2>&1 &
    BIG0=$!; E2E_PIDS+=($BIG0)
    /usr/bin/python3 tests/hostile/control_fakepod.py $((P + 1)) --page-bytes $2 --chunked >$d/big1.log 2>&1 &
    BIG1=$!; E2E_PIDS+=($BIG1)
    wait_until 10 both_ready
    cat >$d/cfg.json <<J
{"listen":"127.0.0.1:$((P + 2))","workers":1,"access_log":"","admin":{"listen":"127.0.0.1:$((P + 3))"},
 "scrape":{"interval_ms":$4},
 "pods":[{"url":"http://127.0.0.1:$PODSIM_PORT","name":"sim0"},
         {"url":"http://127.0.0.1:$((PODSIM_PORT + 1))","name":"sim1"},
         {"url":"http://127.0.0.1:$P","name":"big0"},
         {"url":"http://127.0.0.1:$((P + 1))","name":"big1"}]}
J
    $BUILD/kvgated --no-bpf --config $d/cfg.json >$d/kv-$1.log 2>&1 &
    KVP=$!; E2E_PIDS+=($KVP)
    GA=$((P + 3))
    wait_http "http://127.0.0.1:$GA/health" || setup_failed "kvgated: $(cat $d/kv-$1.log)"
    # settled: the four pods healthy, both podsim pods scraped
    wait_until 10 gw_pods_healthy $GA 4
    wait_until 10 sims_scraped
    curl -s http://127.0.0.1:$GA/metrics >$d/metrics0-$1
    /usr/bin/python3 tests/hostile/control_adminwatch.py $GA $3 0.05 >$d/watch-$1.json
    curl -s http://127.0.0.1:$GA/metrics >$d/metrics-$1
    SIM_RATE=$(( ($(ok_scrapes $d/metrics-$1 sim0) - $(ok_scrapes $d/metrics0-$1 sim0)) * 100 * $4 / ($3 * 1000) ))
    curl -s http://127.0.0.1:$GA/admin/pods >$d/pods-$1.json
    kill $KVP $BIG0 $BIG1; wait $KVP $BIG0 $BIG1 2>/dev/null
    echo "$1: sim0 scraped at $SIM_RATE% of its interval's rate; $(cat $d/watch-$1.json)"
    grep '^kvgate_scrapes_total' $d/metrics-$1 | sed 's/^/    /'
}
fresh() { # case: podsim pods stale in under 5% of the samples
    jq -e '(.stale.sim0 + .stale.sim1) * 20 < 2 * .samples and .samples > 20' $d/watch-$1.json
}

run_case huge 16000000 4 50
check "16 MiB pages: the other pods' metrics stay fresh" fresh huge
check "16 MiB pages: the other pods are scraped at >= 75% of their rate" [ $SIM_RATE -ge 75 ]
check "16 MiB pages: scrapes fail as too_large" \
    grep -Eq '^kvgate_scrapes_total\{pod="big0",result="too_large"\} [1-9]' $d/metrics-huge
check "16 MiB chunked page: too_large as well" \
    grep -Eq '^kvgate_scrapes_total\{pod="big1",result="too_large"\} [1-9]' $d/metrics-huge
check "16 MiB pages: their pods stay healthy" jq -e '.unhealthy.big0 == 0 and .unhealthy.big1 == 0' $d/watch-huge.json

run_case large 3670016 4 10
check "3.5 MiB pages: the other pods' metrics stay fresh" fresh large
check "3.5 MiB pages: the other pods are scraped at >= 75% of their rate" [ $SIM_RATE -ge 75 ]
check "3.5 MiB pages: still parsed" \
    jq -e '[.[] | select(.name == "big0" or .name == "big1") | .metrics_age_ms] | all(. != null)' $d/pods-large.json
finish
