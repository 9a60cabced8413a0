# bench/report/lib.jq: aggregation shared by report.jq and report.sh.
# Input: bench/results/<name>/summary.json ({meta, runs}).

def median: sort | length as $n |
    if $n == 0 then null elif $n % 2 == 1 then .[($n - 1) / 2] else (.[$n / 2 - 1] + .[$n / 2]) / 2 end;

# the metrics the report shows, per run (loadgen summary: simulated ms)
def metrics($ts): {
    ttft_p50: .summary.ttft_ms.p50, ttft_p90: .summary.ttft_ms.p90, ttft_p99: .summary.ttft_ms.p99,
    itl_p50: .summary.itl_ms.p50, itl_p99: .summary.itl_ms.p99, tpot_p50: .summary.tpot_ms.p50,
    e2e_p50: .summary.e2e_ms.p50, e2e_p99: .summary.e2e_ms.p99,
    tok_s: .summary.output_tokens_per_s, req_s: .summary.requests_per_s,
    goodput: .summary.goodput.requests_per_s,
    hit: (if .summary.prefix.hit_rate == null then null else .summary.prefix.hit_rate * 100 end),
    ideal: (if .summary.prefix.ideal_hit_rate == null then null else .summary.prefix.ideal_hit_rate * 100 end),
    # the finite-cache ideal (one LRU of the fleet's KV blocks) and the hit
    # rate as a share of it, both in %
    finite: (if .summary.prefix.finite_ideal_hit_rate == null then null else .summary.prefix.finite_ideal_hit_rate * 100 end),
    hit_of_finite: (if .summary.prefix.hit_of_finite_ideal == null then null else .summary.prefix.hit_of_finite_ideal * 100 end),
    errors: ((.summary.requests.failed // 0) + (.summary.requests.not_sent // 0)),
    requests: .summary.requests.total,
    lag_p99_wall_ms: (if .summary.send_lag_ms.p99 == null then null else .summary.send_lag_ms.p99 * $ts end),
    stall_ms_wall: (.stall_ms_wall // null), attempts: (.attempts // 1),
    cpu: .cpu_cores.ours, machine: .cpu_cores.machine,
    mismatches: (.summary.prefix.prompt_token_mismatches // 0)
};

# one row per (scenario, rate, target): the median of each metric over repeats
def cells: (.meta.settings.time_scale) as $ts |
    [.runs | group_by([.scenario, .rate, .target])[] |
        (map(metrics($ts))) as $m |
        {scenario: .[0].scenario, rate: .[0].rate, target: .[0].target, repeats: length,
         error_kinds: (map(.summary.errors // {} | to_entries[]) | group_by(.key) | map({key: .[0].key, value: (map(.value) | add)}) | from_entries),
         kvgated: (map(.kvgated // {}) | .[0]),
         m: ($m[0] | keys_unsorted | map(. as $k | {key: $k, value: ($m | map(.[$k]) | map(select(. != null)) | median)}) | from_entries)}];

def cell($cells; $sc; $rate; $tgt): first($cells[] | select(.scenario == $sc and .rate == $rate and .target == $tgt)) // null;

# knee of a scenario: the first sweep rate at which nginx round-robin's TTFT
# p90 reaches 10x its value at the lightest rate; also the crossing
# interpolated linearly in log(TTFT p90) between the two sweep points around it
def knee($cells; $sc):
    [$cells[] | select(.scenario == $sc and .target == "nginx-rr" and .m.ttft_p90 != null)] | sort_by(.rate) as $rr |
    if ($rr | length) < 2 then {rate: null, interpolated: null, base_ttft_p90: ($rr[0].m.ttft_p90 // null), threshold: null}
    else ($rr[0].m.ttft_p90 * 10) as $th |
        ([range(1; $rr | length) | select($rr[.].m.ttft_p90 >= $th)] | first // null) as $i |
        {base_rate: $rr[0].rate, base_ttft_p90: $rr[0].m.ttft_p90, threshold: $th,
         rate: (if $i == null then null else $rr[$i].rate end),
         interpolated: (if $i == null then null else
             ($rr[$i - 1]) as $a | ($rr[$i]) as $b |
             if $b.m.ttft_p90 <= $a.m.ttft_p90 then $b.rate else
             ($a.rate + ($b.rate - $a.rate) * ((($th | log) - ($a.m.ttft_p90 | log)) / (($b.m.ttft_p90 | log) - ($a.m.ttft_p90 | log)))) end end)}
    end;

# the rate a scenario's targets are judged at: its knee; without one, the
# highest sweep rate at which neither kvgate prefix-aware nor the named
# baseline lost a request; without that, the highest rate
def ref_rate($cells; $sc; $base):
    knee($cells; $sc) as $k |
    if $k.rate != null then {rate: $k.rate, why: "knee"}
    else ([$cells[] | select(.scenario == $sc) | .rate] | unique) as $rates |
        ([$rates[] | . as $r | select(
            (cell($cells; $sc; $r; "kvgate-prefix").m.errors // 1) == 0 and
            (cell($cells; $sc; $r; $base).m.errors // 1) == 0)] | max) as $ok |
        if $ok != null then {rate: $ok, why: "no knee in the sweep: highest rate without errors"}
        else {rate: ($rates | max), why: "no knee and errors at every rate: highest rate"} end
    end;

def ratio($a; $b): if $a == null or $b == null or $b == 0 then null else $a / $b end;

# kvgated targets may run as N replicas on one port: kvgate-prefix-x3
def replicas: if test("^kvgate-.*-x[0-9]+$") then (capture("-x(?<n>[0-9]+)$").n | tonumber) else 1 end;
def base_target: sub("-x[0-9]+$"; "");

# results.csv: one row per (scenario, rate, target), medians over repeats
def csv_rows: cells as $c |
    ["scenario", "rate", "target", "replicas", "repeats", "ttft_p50_ms", "ttft_p90_ms", "ttft_p99_ms",
     "itl_p50_ms", "tpot_p50_ms", "e2e_p50_ms", "output_tok_s", "req_s", "goodput_req_s",
     "hit_rate_pct", "ideal_infinite_pct", "ideal_finite_pct", "hit_of_finite_pct", "errors"],
    ($c[] | .m as $m |
     [.scenario, .rate, .target, (.target | if startswith("kvgate-") then replicas else null end), .repeats,
      $m.ttft_p50, $m.ttft_p90, $m.ttft_p99, $m.itl_p50, $m.tpot_p50, $m.e2e_p50, $m.tok_s, $m.req_s,
      $m.goodput, $m.hit, $m.ideal, $m.finite, $m.hit_of_finite, $m.errors]) | @csv;
