#!/usr/bin/env bash
# Real Prometheus (issue 13): Debian's prometheus scrapes kvgated and four
# priced podsim pods every second and evaluates scripts/prometheus/
# kvgate.rules.yml; a fixed two-tenant workload runs through kvgated with
# half the traffic on a canary arm; then the recording rules, read back
# through Prometheus's HTTP API, must give /admin/report's figures per
# (model, tenant, class, arm):
#
#   hit rate, cost per million tokens   equal to 1e-6 relative: the rules
#       are ratios of the raw lifetime counters, and the counters and the
#       report are fed the same numbers from the same requests
#       (route.c gw_request_done), so once Prometheus has scraped after the
#       last request the ratio is the report's exactly
#   TTFT p99   agrees as far as the buckets allow: both histograms hold
#       the same TTFTs and pick the same rank (ceil(0.99 n)), so the exact
#       order statistic x lies in one Prometheus bucket (lo, hi];
#       histogram_quantile interpolates within it, so the rule is in
#       [lo, hi] (checked: equal to that interpolation over the raw buckets,
#       1e-9), and the report gives x to 2.5% (core/loghist.h), so its p99
#       is in [lo / 1.025, hi x 1.025]. vLLM's bounds make that a factor
#       of 1.3 to 2.5 (0.06-0.08 s, 0.1-0.25 s) wide.
#
# Also: promtool accepts the rules; the Grafana dashboard is JSON and every
# name its queries use is a recorded rule or a metric kvgated or the pods
# expose. Skips (77) without prometheus.
. "$(dirname "$0")/lib.sh"
# the load generator is the client, not under test: build/'s when the
# sanitizer build (KVG_BUILD=build-asan) has none
LOADGEN=$BUILD/loadgen
[ -x $LOADGEN ] || LOADGEN=build/loadgen
[ -x $BUILD/kvgated ] && [ -x $LOADGEN ] || skip_all "$BUILD/kvgated or $LOADGEN not built"
command -v prometheus >/dev/null && command -v promtool >/dev/null ||
    skip_all "prometheus / promtool not installed (Debian package prometheus; make deps)"
d=$E2E_TMP
RULES=scripts/prometheus/kvgate.rules.yml
DASH=scripts/grafana/kvgate-dashboard.json
N=120 # requests

check "promtool check rules $RULES" promtool check rules $RULES

start_podsim --pods 4 || setup_failed "podsim"
jq -n --argjson p "$PODSIM_PORT" '{
    pods: [range(4) as $i | {url: "http://127.0.0.1:\($p + $i)", name: "pod-\($i)",
                             cost_per_hour: (2 + $i), max_num_seqs: 64}],
    policy: {mode: "prefix-aware", baseline: "round-robin", canary_percent: 50}}' >$d/cfg.json
GW_PORT=$(free_port_range 2); GW_ADMIN=$((GW_PORT + 1))
$BUILD/kvgated --no-bpf --config $d/cfg.json --listen 127.0.0.1:$GW_PORT --admin 127.0.0.1:$GW_ADMIN \
    --workers 1 --access-log "" >$d/kvgated.log 2>&1 &
E2E_PIDS+=($!)
wait_until 10 gw_pods_healthy "$GW_ADMIN" 4 || setup_failed "kvgated: $(cat $d/kvgated.log)"

prom_config $d/prometheus.yml $RULES 127.0.0.1:$GW_ADMIN \
    $(for i in 0 1 2 3; do echo 127.0.0.1:$((PODSIM_PORT + i)); done)
check "promtool check config" promtool check config $d/prometheus.yml
mkdir $d/tsdb
prom_start $d/prometheus.yml $d/tsdb $d/prometheus.log || setup_failed "prometheus did not start"
E2E_PIDS+=($PROM_PID)
q() { prom_query $PROM_PORT "$1"; }
targets_up() {
    local n; n=$(q 'sum(up)' | jq '.[1]'); echo "targets up: ${n:-none} of 5"; [ "${n:-0}" = 5 ]
}
check "Prometheus scrapes kvgated and the 4 pods" wait_until 15 targets_up

# the workload: N requests, 2 tenants (a tenant per system prompt), open
# loop at 40/s; canary_percent 50 puts about half of each tenant's on the
# canary arm (prefix-aware) and the rest on the baseline (round-robin)
$LOADGEN --target http://127.0.0.1:$GW_PORT --tenants 2 --workload shared-prefix \
    --groups 4 --prompts-per-group 40 --system-len 1024 --question-len 32 --output-len 16 \
    --rate 40 --requests $N --seed 5 --quiet >$d/loadgen.out 2>&1
lrc=$?
check "loadgen ran ($N requests)" bash -c "[ $lrc = 0 ] || { cat $d/loadgen.out; false; }"

report() { curl -s "http://127.0.0.1:$GW_ADMIN/admin/report"; }
report_done() {
    local n; n=$(report | jq '[.rows[].requests] | add'); echo "report: ${n:-none} of $N"; [ "$n" = $N ]
}
check "the report counts all $N" wait_until 10 report_done
# the last request is in the counters (gw_metrics_request runs before the
# report's record); now two scrapes after T0, then a rule evaluation after
# the second
T0=$(date +%s.%N)
report >$d/report.json
scraped_twice() {
    local t; t=$(q 'min(timestamp(kvgate_cost_total))' | jq '.[1]')
    echo "kvgated's last scrape at ${t:-none}, want > T0 + 1 = $T0 + 1"
    awk -v t="${t:-0}" -v t0="$T0" 'BEGIN{exit !(t > t0 + 1)}' && T1=$t
}
check "two scrapes of kvgated after the last request" wait_until 10 scraped_twice
evaluated() {
    local r t
    for r in kvgate:hit_rate:ratio kvgate:cost_per_million_tokens kvgate:ttft_seconds:p99; do
        t=$(q "min(timestamp($r))" | jq '.[1]')
        echo "$r evaluated at ${t:-none}, want > $T1"
        awk -v t="${t:-0}" -v t1="${T1:-9e99}" 'BEGIN{exit !(t > t1)}' || return 1
    done
}
check "the rules evaluated after that scrape" wait_until 10 evaluated
q kvgate:hit_rate:ratio >$d/hit.txt
q kvgate:cost_per_million_tokens >$d/cpm.txt
q kvgate:ttft_seconds:p99 >$d/p99.txt
q 'sum by (le, model, tenant, class, arm) (kvgate_time_to_first_token_seconds_bucket)' >$d/buckets.txt
jq -c '.rows[] | {tenant, class, arm, requests, prompt_tokens, cached_tokens, hit_rate, cost_per_million_tokens, ttft_p99_ms}' $d/report.json

# compare.py WHAT: the rule's series against the report's rows
cat >$d/compare.py <<'PY'
import json, math, sys
what, d = sys.argv[1], sys.argv[2]
rows = {(r["model"], r["tenant"], r["class"], r["arm"]): r for r in json.load(open(d + "/report.json"))["rows"]}
def series(f):
    out = {}
    for line in open(f"{d}/{f}"):
        m, v = json.loads(line)
        out[(m.get("model"), m.get("tenant"), m.get("class"), m.get("arm"), m.get("le"))] = v
    return out
bad = 0
def fail(msg):
    global bad
    bad += 1
    print("MISMATCH", msg)
if what == "rows":
    tenants = {k[1] for k in rows}; arms = {k[3] for k in rows}
    print("rows:", sorted(rows))
    ok = tenants == {"tenant-0", "tenant-1"} and arms == {"canary", "baseline"} and len(rows) == 4
    # every row charged (priced pods), so the cost comparison is not empty
    ok = ok and all(r["requests"] > 0 and r["errors"] == 0 and (r["cost_per_million_tokens"] or 0) > 0
                    for r in rows.values())
    sys.exit(0 if ok else 1)
if what in ("hit", "cpm"):
    key = "hit_rate" if what == "hit" else "cost_per_million_tokens"
    got = {k[:4]: v for k, v in series(what + ".txt").items()}
    want = {k: r[key] for k, r in rows.items() if r[key] is not None}
    if set(got) != set(want):
        fail(f"series {sorted(got)} vs rows {sorted(want)}")
    for k in want:
        g, w = got.get(k), want[k]
        if what == "hit": # the report's integers too, not only its printed ratio
            r = rows[k]
            exact = r["cached_tokens"] / r["prompt_tokens"]
            if abs(exact - w) > 1e-9 * max(1, exact):
                fail(f"{k}: report hit_rate {w} vs its tokens {exact}")
        rel = abs(g - w) / abs(w) if w else abs(g)
        print(f"{k[1]} {k[3]}: rule {g!r} report {w!r} rel {rel:.2e}")
        if g is None or rel > 1e-6:
            fail(f"{k}: rule {g} report {w}")
if what == "p99":
    got = {k[:4]: v for k, v in series("p99.txt").items()}
    b = {}
    for k, v in series("buckets.txt").items():
        b.setdefault(k[:4], []).append((float(k[4]), v))
    if set(got) != set(rows):
        fail(f"series {sorted(got)} vs rows {sorted(rows)}")
    for k, r in rows.items():
        bk = sorted(b.get(k, []))
        n = bk[-1][1] if bk else 0
        if n != r["requests"]:
            fail(f"{k}: histogram count {n}, report requests {r['requests']}")
            continue
        rank = 0.99 * n
        i = next(j for j, (le, c) in enumerate(bk) if c >= rank)
        hi, cum = bk[i]
        lo, prev = (bk[i - 1] if i else (0.0, 0.0))
        interp = lo + (hi - lo) * (rank - prev) / (cum - prev)
        g, rep = got.get(k), r["ttft_p99_ms"] / 1000
        print(f"{k[1]} {k[3]}: bucket ({lo}, {hi}]; rule {g!r} (interpolated {interp!r}); report {rep!r}")
        if g is None or not (lo <= g <= hi) or abs(g - interp) > 1e-9 * hi:
            fail(f"{k}: rule {g} not the interpolation {interp} in ({lo}, {hi}]")
        if not (lo / 1.025 <= rep <= hi * 1.025):
            fail(f"{k}: report p99 {rep} s outside ({lo}, {hi}] +- 2.5%")
sys.exit(1 if bad else 0)
PY
check "report: 2 tenants x 2 arms (canary, baseline), no errors, each charged a cost" $PY $d/compare.py rows $d
check "kvgate:hit_rate:ratio = the report's hit_rate (1e-6 relative) per row" $PY $d/compare.py hit $d
check "kvgate:cost_per_million_tokens = the report's (1e-6 relative) per row" $PY $d/compare.py cpm $d
check "kvgate:ttft_seconds:p99 in the bucket of the report's p99 (+-2.5%)" $PY $d/compare.py p99 $d
# the 5-minute rules: the same series, figures in range (not equal: rate()
# extrapolates each series to the window's edges by its own samples)
recent_rules() {
    local a b
    a=$(q 'kvgate:hit_rate:ratio_rate5m' | jq -sc 'map(.[0] | {tenant, arm}) | sort')
    b=$(q 'kvgate:hit_rate:ratio' | jq -sc 'map(.[0] | {tenant, arm}) | sort')
    echo "5m: $a"; echo "lifetime: $b"
    [ "$a" = "$b" ] && [ "$a" != "[]" ] || return 1
    q 'kvgate:hit_rate:ratio_rate5m' | jq -se 'all(.[1] > 0 and .[1] <= 1)' &&
        q 'kvgate:cost_per_million_tokens:rate5m' | jq -se 'length == 4 and all(.[1] > 0)' &&
        q 'kvgate:ttft_seconds:p99_rate5m' | jq -se 'length == 4 and all(.[1] > 0)'
}
check "the _rate5m rules: the same series as the lifetime ones, in range" wait_until 5 recent_rules
canary_half() {
    local v; v=$(q kvgate:canary_share:ratio_rate5m | jq '.[1]')
    echo "canary share ${v:-none}"; awk -v v="${v:-0}" 'BEGIN{exit !(v > 0.25 && v < 0.75)}'
}
check "kvgate:canary_share:ratio_rate5m about a half" canary_half
busy_recorded() {
    local v; v=$(q kvgate:pool_busy:ratio_rate5m | jq '.[1]')
    echo "pool busy ${v:-none}"; awk -v v="${v:--1}" 'BEGIN{exit !(v > 0 && v <= 1)}'
}
check "kvgate:pool_busy:ratio_rate5m in (0, 1]" busy_recorded

# The dashboard: JSON, and every name in its queries is a recorded rule or
# a metric on kvgated's or a pod's page
curl -s "http://127.0.0.1:$GW_ADMIN/metrics" "http://127.0.0.1:$PODSIM_PORT/metrics" |
    awk '/^# TYPE / {print $3} /^[a-z]/ {sub(/[{ ].*/, ""); print}' | sort -u >$d/names.txt
grep -Eo 'record: *[a-z_:0-9]+' $RULES | awk '{print $2}' >>$d/names.txt
check "$DASH is JSON (schemaVersion, a Prometheus datasource variable)" \
    jq -e '.schemaVersion >= 36 and ([.templating.list[] | select(.type == "datasource" and .query == "prometheus")] | length == 1) and (.panels | length >= 6)' $DASH
dash_names() {
    local ok=0 n
    # the metric names in the exprs: ours (kvgate...), the pods' (vllm:...)
    for n in $(jq -r '.. | .expr? // empty' $DASH | grep -Eo '[a-zA-Z_:][a-zA-Z0-9_:]*' | sort -u); do
        case $n in kvgate*|vllm:*|up) ;; *) continue ;; esac
        if grep -qx -- "$n" $d/names.txt || grep -qx -- "${n%_bucket}" $d/names.txt || grep -qx -- "${n%_count}" $d/names.txt; then
            echo "ok $n"
        else
            echo "UNKNOWN $n"; ok=1
        fi
    done
    return $ok
}
check "every name the dashboard queries is a rule or an exposed metric" dash_names
finish
