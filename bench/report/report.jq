# bench/report/report.jq: summary.json -> report.md (markdown on stdout).
# jq -r -L bench/report -f bench/report/report.jq --rawfile notes NOTES summary.json
include "lib";

def f($d): if . == null then "-" else (. * pow(10; $d) | round / pow(10; $d) | tostring) end;
def fx: if . == null then "-" else (if . >= 10 then f(1) elif . >= 1 then f(2) else f(3) end) + "x" end;
def pad: tostring;

def target_names: {
    "kvgate-prefix": "kvgated prefix-aware", "kvgate-least": "kvgated least-request",
    "kvgate-rr": "kvgated round-robin", "nginx-rr": "nginx round-robin",
    "nginx-lc": "nginx least_conn", "haproxy-lc": "HAProxy leastconn",
    "direct-rr": "direct to pods, round-robin",
    "kvgate-exact": "kvgated exact index", "kvgate-tokenload": "kvgated token-load",
    "kvgate-exact-tokenload": "kvgated token-load on the exact index"};
def tname: . as $t | base_target as $b | (target_names[$b] // $b) +
    (if $t != $b then " x\($t | replicas) replicas" else "" end);
def baselines: ["nginx-rr", "nginx-lc", "haproxy-lc"];

. as $root | cells as $cells | .meta as $meta | $meta.settings as $set |
($meta.scenarios | map({key: .name, value: .}) | from_entries) as $scen |
($set.targets) as $targets |

# ---- the targets (issue 4) ----
def verdict($ok): if $ok == null then "n/a" elif $ok then "**met**" else "**not met**" end;
def goal_rows:
  (if $scen["shared-prefix"] then
     ref_rate($cells; "shared-prefix"; "nginx-rr") as $r |
     cell($cells; "shared-prefix"; $r.rate; "kvgate-prefix") as $p |
     cell($cells; "shared-prefix"; $r.rate; "nginx-rr") as $b |
     ratio($p.m.tok_s; $b.m.tok_s) as $t | ratio($p.m.ttft_p50; $b.m.ttft_p50) as $q |
     ratio($p.m.itl_p50; $b.m.itl_p50) as $i | ratio($p.m.hit; $p.m.ideal) as $h |
     "| shared-prefix | output tokens/s, prefix-aware / nginx round-robin | >= 1.25x | \($t | fx) | \($r.rate) (\($r.why)) | \(verdict(if $t == null then null else $t >= 1.25 end)) |",
     "| shared-prefix | TTFT p50, prefix-aware / nginx round-robin | <= 0.05x | \($q | fx) | \($r.rate) | \(verdict(if $q == null then null else $q <= 0.05 end)) |",
     "| shared-prefix | ITL p50, prefix-aware / nginx round-robin | <= 0.30x | \($i | fx) | \($r.rate) | \(verdict(if $i == null then null else $i <= 0.30 end)) |",
     "| shared-prefix | prefix-aware hit rate / ideal hit rate | >= 90% | \(if $h == null then "-" else ($h * 100 | f(1)) + "% (\($p.m.hit | f(1))% of \($p.m.ideal | f(1))%)" end) | \($r.rate) | \(verdict(if $h == null then null else $h >= 0.9 end)) |"
   else "| shared-prefix | (not run) | | | | n/a |" end),
  (if $scen["multi-turn"] then
     ref_rate($cells; "multi-turn"; "nginx-rr") as $r |
     ratio(cell($cells; "multi-turn"; $r.rate; "kvgate-prefix").m.ttft_p50; cell($cells; "multi-turn"; $r.rate; "nginx-rr").m.ttft_p50) as $q |
     "| multi-turn | TTFT p50, prefix-aware / nginx round-robin | <= 0.2x | \($q | fx) | \($r.rate) (\($r.why)) | \(verdict(if $q == null then null else $q <= 0.2 end)) |"
   else "| multi-turn | (not run) | | | | n/a |" end),
  (if $scen["no-sharing"] then
     ref_rate($cells; "no-sharing"; "nginx-rr") as $r |
     cell($cells; "no-sharing"; $r.rate; "kvgate-prefix") as $p |
     [baselines[] as $b | cell($cells; "no-sharing"; $r.rate; $b) | select(. != null)] as $bs |
     ($bs | max_by(.m.tok_s)) as $bt | ($bs | min_by(.m.ttft_p90)) as $bq |
     ratio($p.m.tok_s; $bt.m.tok_s) as $t | ratio($p.m.ttft_p90; $bq.m.ttft_p90) as $q |
     "| no-sharing | output tokens/s, prefix-aware / best baseline (\($bt.target // "-" | tname)) | >= 0.95x | \($t | fx) | \($r.rate) (\($r.why)) | \(verdict(if $t == null then null else $t >= 0.95 end)) |",
     "| no-sharing | TTFT p90, prefix-aware / best baseline (\($bq.target // "-" | tname)) | <= 1.05x | \($q | fx) | \($r.rate) | \(verdict(if $q == null then null else $q <= 1.05 end)) |"
   else "| no-sharing | (not run) | | | | n/a |" end),
  (if $scen["hot-prefix"] then
     ref_rate($cells; "hot-prefix"; "nginx-lc") as $r |
     ratio(cell($cells; "hot-prefix"; $r.rate; "kvgate-prefix").m.ttft_p99; cell($cells; "hot-prefix"; $r.rate; "nginx-lc").m.ttft_p99) as $q |
     "| hot-prefix | TTFT p99, prefix-aware / nginx least_conn | <= 1.1x | \($q | fx) | \($r.rate) (\($r.why)) | \(verdict(if $q == null then null else $q <= 1.1 end)) |"
   else "| hot-prefix | (not run) | | | | n/a |" end);

# ---- issue 11 (token-exact routing): what today's runs show ----
def pct: if . == null then "-" else (. | f(1)) + "%" end;
def goal11_rows:
  def at($sc; $t): ref_rate($cells; $sc; "nginx-rr") as $r | {r: $r, c: cell($cells; $sc; $r.rate; $t)};
  def hit_row($sc):
    if $scen[$sc] then
      ([$targets[] | select(startswith("kvgate-"))] | map(select(base_target != "kvgate-rr" and base_target != "kvgate-least")))[] as $t |
      at($sc; $t) as $a | select($a.c != null) |
      "| \($sc) | hit rate / finite-cache ideal, \($t | tname) | >= 95% | \($a.c.m.hit_of_finite | pct) (\($a.c.m.hit | pct) of \($a.c.m.finite | pct); ideal ∞ \($a.c.m.ideal | pct)) | \($a.r.rate) (\($a.r.why)) | \(verdict(if $a.c.m.hit_of_finite == null then null else $a.c.m.hit_of_finite >= 95 end)) |"
    else "| \($sc) | (not run) | | | | n/a |" end;
  hit_row("cache-pressure"),
  (if $scen["cache-pressure"] then
     at("cache-pressure"; "kvgate-prefix") as $p | at("cache-pressure"; "nginx-rr") as $b |
     "| cache-pressure | output tokens/s, kvgated prefix-aware / nginx round-robin | reported (llm-d precise vs random: 1.97x) | \(ratio($p.c.m.tok_s; $b.c.m.tok_s) | fx) | \($p.r.rate) | n/a |",
     "| cache-pressure | TTFT p90, kvgated prefix-aware / nginx round-robin | reported | \(ratio($p.c.m.ttft_p90; $b.c.m.ttft_p90) | fx) | \($p.r.rate) | n/a |",
     (at("cache-pressure"; "kvgate-exact") as $e | select($e.c != null) |
      "| cache-pressure | TTFT p90, kvgated exact / approximate | <= 1x | \(ratio($e.c.m.ttft_p90; $p.c.m.ttft_p90) | fx) | \($e.r.rate) | \(verdict(ratio($e.c.m.ttft_p90; $p.c.m.ttft_p90) as $x | if $x == null then null else $x <= 1 end)) |",
      "| cache-pressure | output tokens/s, kvgated exact / approximate | >= 1x | \(ratio($e.c.m.tok_s; $p.c.m.tok_s) | fx) | \($e.r.rate) | \(verdict(ratio($e.c.m.tok_s; $p.c.m.tok_s) as $x | if $x == null then null else $x >= 1 end)) |",
      "| cache-pressure | output tokens/s, kvgated exact / nginx round-robin | reported (llm-d precise vs random: 1.97x) | \(ratio($e.c.m.tok_s; $b.c.m.tok_s) | fx) | \($e.r.rate) | n/a |")
   else empty end),
  hit_row("trace-mooncake"),
  (if $scen["multi-turn"] then
     ("kvgate-prefix", "kvgate-exact") as $t | at("multi-turn"; $t) as $p | select($p.c != null) |
     at("multi-turn"; "nginx-rr") as $b |
     ratio($p.c.m.ttft_p50; $b.c.m.ttft_p50) as $q |
     "| multi-turn | TTFT p50, \($t | tname) / nginx round-robin, at the knee | <= 0.2x | \($q | fx) | \($p.r.rate) (\($p.r.why)) | \(verdict(if $q == null or $p.r.why != "knee" then null else $q <= 0.2 end)) |"
   else "| multi-turn | (not run) | | | | n/a |" end),
  # N replicas against 1, wherever both ran
  ($meta.scenarios[].name as $sc | $targets[] | select(startswith("kvgate-") and replicas > 1) as $t |
   ($t | base_target) as $b | at($sc; $t) as $x | at($sc; $b) as $o | select($x.c != null and $o.c != null) |
   (if $x.c.m.hit == null or $o.c.m.hit == null then null else $o.c.m.hit - $x.c.m.hit end) as $d |
   ratio($x.c.m.ttft_p50; $o.c.m.ttft_p50) as $q |
   "| \($sc) | \($t | tname) vs 1: hit rate lost (points) | <= 2 (for the exact index) | \($d | f(1)) (\($x.c.m.hit | pct) vs \($o.c.m.hit | pct)) | \($x.r.rate) | \(verdict(if $d == null then null else $d <= 2 end)) |",
   "| \($sc) | \($t | tname) vs 1: TTFT p50 | <= 1.1x (for the exact index) | \($q | fx) | \($x.r.rate) | \(verdict(if $q == null then null else $q <= 1.1 end)) |");

# ---- per scenario ----
def scenario_section($sc):
  $scen[$sc] as $s |
  ([$cells[] | select(.scenario == $sc) | .rate] | unique) as $rates |
  knee($cells; $sc) as $k |
  (cell($cells; $sc; $k.base_rate; "nginx-rr").m // {}) as $km |
  (if ($km.lag_p99_wall_ms // 0) > 20 or ($km.stall_ms_wall // 0) > 100 then
     " **The lightest-rate nginx round-robin run was disturbed by the machine (send lag p99 \($km.lag_p99_wall_ms | f(1)) ms, stall \($km.stall_ms_wall | f(0)) ms wall): its TTFT p90, hence the knee, is unreliable.**"
   else "" end) as $kwarn |
  "## \($sc)", "",
  "\($s.desc). Rates in \($s.unit); \($s.duration_s) simulated s of arrivals per run; goodput SLO TTFT,TPOT = \($s.slo) ms.",
  "loadgen arguments: `\($s.args | join(" "))`" +
    (if ($s.rate_flag // "--rate") != "--rate" then " (the rate is passed as `\($s.rate_flag)`)" else "" end), "",
  (if $s.kv_blocks != null then
     "Pods: \($set.pods) x \($s.kv_blocks) KV blocks (\($s.kv_blocks * 16) tokens each; the fleet \($s.fleet_kv_blocks) blocks, \($s.fleet_kv_blocks * 16) tokens)\(if ($s.podsim_args // "") != "" then ", podsim `\($s.podsim_args)`" else "" end). Two ceilings next to every hit rate: **ideal ∞**, infinite cache and perfect routing; **ideal fin.**, perfect routing into the fleet's real KV (one LRU of its \($s.fleet_kv_blocks) blocks: bench/loadgen/ideal.h says why that bounds any router, and where not exactly); **hit/fin.** is the hit rate as a share of the finite ceiling.", ""
   else empty end),
  (if $k.rate != null then
     "Knee (nginx round-robin TTFT p90 reaches 10x its \($k.base_ttft_p90 | f(0)) ms at \($k.base_rate) \($s.unit), i.e. \($k.threshold | f(0)) ms): first sweep rate **\($k.rate)**, interpolated \($k.interpolated | f(1))." + $kwarn
   elif $k.threshold != null then
     "Knee: not reached in this sweep (nginx round-robin TTFT p90 stays below \($k.threshold | f(0)) ms, 10x its \($k.base_ttft_p90 | f(0)) ms at \($k.base_rate) \($s.unit))." + $kwarn
   else "Knee: needs nginx round-robin at two rates or more." end), "",
  "![TTFT p50](plots/\($sc)-ttft.png) ![ITL p50](plots/\($sc)-itl.png) ![output tokens/s](plots/\($sc)-tokps.png)", "",
  "| rate | target | TTFT p50 | p90 | p99 | ITL p50 | p99 | TPOT p50 | E2E p50 | p99 | out tok/s | req/s | goodput | hit % | ideal ∞ % | ideal fin. % | hit/fin. % | errors | lag p99 / stall (wall ms) | CPU ours / machine (cores) |",
  "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
  ($rates[] as $r | $targets[] as $t | cell($cells; $sc; $r; $t) | select(. != null) | .m as $m |
   "| \($r) | \($t | tname) | \($m.ttft_p50 | f(0)) | \($m.ttft_p90 | f(0)) | \($m.ttft_p99 | f(0)) | \($m.itl_p50 | f(1)) | \($m.itl_p99 | f(1)) | \($m.tpot_p50 | f(1)) | \($m.e2e_p50 | f(0)) | \($m.e2e_p99 | f(0)) | \($m.tok_s | f(0)) | \($m.req_s | f(1)) | \($m.goodput | f(1)) | \($m.hit | f(1)) | \($m.ideal | f(1)) | \($m.finite | f(1)) | \($m.hit_of_finite | f(1)) | \($m.errors)\(if (.error_kinds | length) > 0 then " (" + (.error_kinds | to_entries | map("\(.key) \(.value)") | join(", ")) + ")" else "" end) | \($m.lag_p99_wall_ms | f(1)) / \($m.stall_ms_wall | f(0))\(if $m.attempts > 1 then " (try \($m.attempts))" else "" end)\(if $m.lag_p99_wall_ms > 20 or $m.stall_ms_wall > 100 then " **!**" else "" end) | \($m.cpu | f(2)) / \($m.machine | f(2)) |"),
  "",
  "kvgated prefix-aware against each target at each rate (ratio < 1 is better for latencies, > 1 for throughput and hit rate):", "",
  "| rate | vs | out tok/s | TTFT p50 | TTFT p90 | TTFT p99 | ITL p50 | E2E p50 | hit rate |",
  "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
  ($rates[] as $r | cell($cells; $sc; $r; "kvgate-prefix") as $p | select($p != null) |
   $targets[] as $t | select($t != "kvgate-prefix") | cell($cells; $sc; $r; $t) | select(. != null) | .m as $b |
   "| \($r) | \($t | tname) | \(ratio($p.m.tok_s; $b.tok_s) | fx) | \(ratio($p.m.ttft_p50; $b.ttft_p50) | fx) | \(ratio($p.m.ttft_p90; $b.ttft_p90) | fx) | \(ratio($p.m.ttft_p99; $b.ttft_p99) | fx) | \(ratio($p.m.itl_p50; $b.itl_p50) | fx) | \(ratio($p.m.e2e_p50; $b.e2e_p50) | fx) | \(ratio($p.m.hit; $b.hit) | fx) |"),
  "",
  ([$targets[] | select(startswith("kvgate-"))]) as $kt |
  (if ($kt | length) > 0 and ([$cells[] | select(.scenario == $sc and .target == "nginx-rr")] | length) > 0 then
     "TTFT p50 of each kvgated target as a ratio of nginx round-robin's, at each rate (< 1: kvgated is faster):", "",
     "| rate | nginx round-robin TTFT p50 | " + ($kt | map(tname) | join(" | ")) + " |",
     "|---:|---:|" + ($kt | map("---:") | join("|")) + "|",
     ($rates[] as $r | cell($cells; $sc; $r; "nginx-rr") as $b | select($b != null) |
      "| \($r) | \($b.m.ttft_p50 | f(0)) ms | " +
      ($kt | map(. as $t | ratio(cell($cells; $sc; $r; $t).m.ttft_p50; $b.m.ttft_p50) | fx) | join(" | ")) + " |"),
     ""
   else empty end),
  "kvgated prefix-aware decisions (reason the pod won) and fallbacks, per rate:", "",
  ($rates[] as $r | cell($cells; $sc; $r; "kvgate-prefix") | select(. != null and .kvgated != null) |
   "- \($r): " + (.kvgated | to_entries | map(select(.key | test("mode=prefix-aware|fallbacks|retries"))) |
        map("\(.key | sub("kvgate_"; "") | sub("mode=prefix-aware,"; "")) \(.value)") | join(", "))),
  "";

# ---- the document ----
"# kvgate serving benchmark: \($meta.name)", "",
"Generated by `bench/report/report.sh` from `summary.json` (bench/run, \($meta.date), commit \($meta.git)). Raw per-request data: `raw/` (not committed).", "",
"## Machine and settings", "",
"| | |", "|---|---|",
"| machine | \($meta.machine.cores) cores (\($meta.machine.cpu)), \($meta.machine.memory), Linux \($meta.machine.kernel); shared with other work |",
"| pods | \($set.pods) kvgate-podsim pods in one process, profile `\($set.profile)`, \($set.kv_blocks) KV blocks of 16 tokens each (\($set.kv_blocks * 16) tokens) unless a scenario sets its own (" + ([$meta.scenarios[] | select(.kv_blocks != null) | "\(.name): \(.kv_blocks)"] | join(", ")) + "), max 256 seqs, 8192 batched tokens |",
"| time scale | \($set.time_scale) (wall = simulated x \($set.time_scale)); every figure below is in simulated time unless it says wall |",
"| targets | " + ($set.targets | map(tname) | join(", ")) + "; kvgated default configuration, \($set.proxy_workers) workers; nginx \($meta.versions.nginx) with \($set.proxy_workers) workers; HAProxy \($meta.versions.haproxy) with \($set.proxy_workers) threads |",
"| schedule | open-loop Poisson, seed \($set.seed) (repeat k: seed + k - 1), the same schedule through every target; per-request timeout \($set.timeout_s) s |",
"| repeats | \($set.repeats) (figures are medians over repeats; ratios always from runs side by side in one invocation) |",
"| wall time | \($meta.wall_s / 60 | f(1)) min for \($root.runs | length) runs |",
"| scenarios | " + ($meta.scenarios | map("\(.name): rates \(.rates | map(tostring) | join(", ")) \(.unit), \(.duration_s) s") | join("; ")) + " |",
"",
"Before each run: every pod idle, every pod's prefix cache dropped (`POST /pods/all/reset_prefix_cache`), and for kvgated a fresh process (cold prefix index) that has scraped every pod.", "",
"## Targets (issue 4)", "",
"| scenario | measure | target | measured | at rate | verdict |",
"|---|---|---|---:|---|---|",
goal_rows, "",
"## Issue 11 (token-exact routing): the bars, measured on today's targets", "",
"Issue 11 sets these bars for the exact index (`kvgate-exact`: prefix-aware on the pods' KV events, podsim's pseudo-tokenizer); rows show it next to the approximate index (`kvgate-prefix`) and any replica targets (`-xN`), where they ran. Hit rates are judged against the finite-cache ceiling.", "",
"| scenario | measure | target | measured | at rate | verdict |",
"|---|---|---|---:|---|---|",
goal11_rows, "",
"Knee: for each scenario, the first sweep rate at which nginx round-robin's TTFT p90 reaches 10x its value at the lightest rate (no interpolated rate is measured, so the targets are judged at that sweep point; the interpolated crossing is shown for reference). Without a knee in the sweep: the highest rate at which neither kvgated prefix-aware nor the baseline lost a request.", "",
"## Load-generation health", "",
([$cells[] | .m.cpu] | max) as $cmax | ([$cells[] | .m.machine] | max) as $mmax |
([$cells[] | .m.lag_p99_wall_ms] | max) as $lmax |
([$root.runs[] | .attempts // 1] | add - length) as $retries |
"Per run, bench/run records the CPU of its own processes (podsim + proxy + loadgen), the busy cores of the whole machine (other tenants included), loadgen's send lag, and the worst stall seen by a probe that asks pod 0 for /health every 50 ms (wall ms beyond the 50). A run with send lag p99 > 20 ms or a stall > 100 ms (wall) measured the machine, not the target, and was run again (twice at most, while the time budget allowed): \($retries) re-runs in this invocation.", "",
"Highest per-run figures: CPU of our processes \($cmax | f(2)) cores; whole machine \($mmax | f(2)) of \($meta.machine.cores) cores; send lag p99 \($lmax | f(1)) ms wall. Prompt-token mismatches (loadgen's tokenizer vs the pods'): \([$cells[] | .m.mismatches] | add).", "",
(if $cmax > 0.8 * $meta.machine.cores then "**WARNING**: our own processes used over 80% of the machine's cores in some runs: the load generation itself may have been the bottleneck." else "Our own processes stayed under \((($cmax / $meta.machine.cores) * 100 | f(0)))% of the machine's cores: the pods, proxies and load generator were not CPU-bound by themselves." end), "",
([$cells[] | select(.m.lag_p99_wall_ms > 5 or .m.stall_ms_wall > 100)] as $w |
 if ($w | length) == 0 then "Every run kept its schedule (send lag p99 <= 5 ms wall) and saw no stall over 100 ms."
 else "**WARNING**: \($w | length) runs saw send lag p99 > 5 ms or a stall > 100 ms of wall time (those over the re-run limits are marked **!** in the tables; their latencies include the host's own queueing): " +
     ($w | map("\(.scenario) \(.rate) \(.target) (lag p99 \(.m.lag_p99_wall_ms | f(1)), stall \(.m.stall_ms_wall | f(0)) ms, machine \(.m.machine | f(2)) cores)") | join("; ")) + "." end),
"",
(if $notes != "" then "## Analysis", "", $notes, "" else empty end),
($meta.scenarios[] | scenario_section(.name))
