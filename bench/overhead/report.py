#!/usr/bin/env python3
"""bench/overhead/report.py RAW_DIR OUT_DIR: turns the raw records that
bench/overhead/run wrote (records.jsonl, decision.json, rss.json,
timescale.json, meta.json, <kvgated>.metrics) into OUT_DIR/overhead.md and
OUT_DIR/overhead.json. Every figure is a median over the repeats; ratios are
medians of the per-repeat ratios (both sides measured in the same repeat).
"""
import json
import math
import os
import re
import statistics
import sys

RATE_TARGET = 1.0     # requests/s >= 1.0 x nginx
ACCT_TOL = 0.03       # issue 13: accounting on / off within 3 % (req/s and CPU per request)
DECISION_TARGET = 5.0  # decision p99 <= 5 us at 64 pods


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x, nd=0, suffix=""):
    if x is None:
        return "-"
    if nd == 0:
        return f"{x:,.0f}{suffix}"
    return f"{x:,.{nd}f}{suffix}"


def size_name(b):
    return f"{b // 1024} KiB" if b % 1024 == 0 else f"{b} B"


def load(raw):
    recs = []
    with open(os.path.join(raw, "records.jsonl")) as f:
        for line in f:
            if line.strip():
                recs.append(json.loads(line))
    recs = merge_slices(recs)

    def opt(name, default):
        p = os.path.join(raw, name)
        if not os.path.exists(p):
            return default
        with open(p) as f:
            return json.load(f)
    return (recs, opt("meta.json", {}), opt("decision.json", None), opt("rss.json", []),
            opt("timescale.json", {}))


def merge_slices(recs):
    """One record per (size, mode, target, kind, rep): a saturation run is cut
    into slices (interleaved with the other targets'); their requests, time
    and CPU add up. Latency percentiles cannot be merged: the median of the
    slices' is kept (informational; the latency table uses the paced runs)."""
    groups = {}
    for r in recs:
        groups.setdefault((r["size"], r["mode"], r["target"], r["kind"], r["rep"]), []).append(r)
    out = []
    for key, g in groups.items():
        ok = [r for r in g if "requests" in r["wrk"]]
        if len(g) == 1 or not ok:
            g[0]["slices_failed"] = len(g) - len(ok)
            out.append(g[0])
            continue
        w = {"requests": sum(r["wrk"]["requests"] for r in ok),
             "duration_us": sum(r["wrk"]["duration_us"] for r in ok),
             "bytes": sum(r["wrk"]["bytes"] for r in ok),
             "errors": {k: sum(r["wrk"]["errors"][k] for r in ok) for k in ok[0]["wrk"]["errors"]},
             "lat_us": {k: statistics.median(r["wrk"]["lat_us"][k] for r in ok)
                        for k in ok[0]["wrk"]["lat_us"]}}
        c0 = ok[0]["cpu"]
        c = {"hz": c0["hz"]}
        for k in c0:
            if k == "hz":
                continue
            if k == "pods_ticks":
                c[k] = [sum(r["cpu"][k][i] for r in ok) for i in range(len(c0[k]))]
            else:
                c[k] = sum(r["cpu"].get(k, 0) for r in ok)
        m = dict(ok[0])
        m.update({"wrk": w, "cpu": c, "slices": len(ok), "slices_failed": len(g) - len(ok)})
        out.append(m)
    return out


def derive(r):
    """Per-record figures: rate, latency, CPU shares and CPU per request."""
    w, c = r["wrk"], r["cpu"]
    out = {"ok": "requests" in w}
    if not out["ok"]:
        out["error"] = w.get("failed", "wrk failed")
        return out
    dur = w["duration_us"] / 1e6
    n = w["requests"]
    hz, wall = c["hz"], max(c["wall_s"], 1e-3)
    pods = [t / hz for t in c["pods_ticks"]]
    busy, idle = c["machine_busy_ticks"], c["machine_idle_ticks"]
    out.update({
        "rps": n / dur if dur else 0,
        "requests": n,
        "errors": sum(w["errors"].values()),
        "p50_us": w["lat_us"]["p50"], "p90_us": w["lat_us"]["p90"],
        "p99_us": w["lat_us"]["p99"], "mean_us": w["lat_us"]["mean"],
        "pods_cores": sum(pods) / wall,
        "pod_max_core": max(pods) / wall if pods else 0,
        "proxy_cores": c["proxy_ticks"] / hz / wall,
        "wrk_cores": c["wrk_s"] / wall,
        "machine_busy": busy / (busy + idle) if busy + idle else None,
        "steal": c["machine_steal_ticks"] / (busy + idle) if busy + idle else None,
        "pods_us_req": sum(pods) / n * 1e6 if n else None,
        "proxy_us_req": c["proxy_ticks"] / hz / n * 1e6 if n else None,
        "proxy_user_us_req": c.get("proxy_user_ticks", 0) / hz / n * 1e6 if n else None,
        "proxy_sys_us_req": c.get("proxy_sys_ticks", 0) / hz / n * 1e6 if n else None,
        "wrk_us_req": c["wrk_s"] / n * 1e6 if n else None,
    })
    return out


def workers_of(t):
    m = re.search(r"-w(\d+)$", t)
    return int(m.group(1)) if m else None


def bottleneck(d, workers, npods, ncpu):
    """Which resource ran out, from the medians of one row."""
    why = []
    if d["pod_max_core"] is not None and d["pod_max_core"] >= 0.85:
        why.append(f"a pod thread ({d['pod_max_core'] * 100:.0f}% of a core)")
    if workers and d["proxy_cores"] >= 0.85 * workers:
        why.append(f"the proxy ({d['proxy_cores'] * 100:.0f}% of {workers} core(s))")
    if d["machine_busy"] is not None and d["machine_busy"] >= 0.9:
        shares = sorted([("pods", d["pods_cores"]), ("proxy", d["proxy_cores"]),
                         ("wrk", d["wrk_cores"])], key=lambda x: -x[1])
        why.append(f"the {ncpu} cores ({d['machine_busy'] * 100:.0f}% busy; largest share: "
                   f"{shares[0][0]})")
    if not why:
        why.append("nothing saturated (latency-bound)")
    return "; ".join(why)


def summarize(recs, meta):
    sizes = sorted({r["size"] for r in recs})
    modes = [m for m in ("plain", "stream", "nousage") if any(r["mode"] == m for r in recs)]
    order = []
    for r in recs:
        if r["target"] not in order:
            order.append(r["target"])
    order.sort(key=lambda t: (t != "direct", workers_of(t) or 0, not t.startswith("nginx")))
    reps = sorted({r["rep"] for r in recs})
    by = {}
    for r in recs:
        d = derive(r)
        d["start_first"] = r.get("start_first")  # OVH_ACCT_SWAP's start order (run)
        by[(r["size"], r["mode"], r["target"], r["kind"], r["rep"])] = d
    ncpu = meta.get("ncpu", 2)
    npods = meta.get("pods", 2)
    cells = []
    for size in sizes:
        for mode in modes:
            cell = {"size": size, "mode": mode, "sat": [], "lat": []}
            for t in order:
                sat = [by.get((size, mode, t, "sat", rep)) for rep in reps]
                sat = [d for d in sat if d and d["ok"]]
                lat = [by.get((size, mode, t, "lat", rep)) for rep in reps]
                lat = [d for d in lat if d and d["ok"]]
                w = workers_of(t)
                row = {"target": t, "workers": w, "repeats": len(sat)}
                keys = ["rps", "errors", "pods_cores", "pod_max_core", "proxy_cores",
                        "wrk_cores", "machine_busy", "steal", "pods_us_req", "proxy_us_req",
                        "proxy_user_us_req", "proxy_sys_us_req",
                        "wrk_us_req", "p50_us", "p99_us"]
                for k in keys:
                    row[k] = med([d[k] for d in sat])
                row["rps_min"] = min((d["rps"] for d in sat), default=None)
                row["rps_max"] = max((d["rps"] for d in sat), default=None)
                row["errors_total"] = sum(d["errors"] for d in sat)

                def ratio_to(other):
                    rs = []
                    for rep in reps:
                        a = by.get((size, mode, t, "sat", rep))
                        b = by.get((size, mode, other, "sat", rep))
                        if a and b and a["ok"] and b["ok"] and b["rps"]:
                            rs.append(a["rps"] / b["rps"])
                    return (med(rs), min(rs) if rs else None, max(rs) if rs else None)
                row["vs_direct"] = ratio_to("direct")[0]
                if t.startswith("kvgated"):
                    row["vs_nginx"], row["vs_nginx_min"], row["vs_nginx_max"] = \
                        ratio_to(f"nginx-w{w}")
                    # CPU efficiency: nginx's CPU per request / kvgated's, per
                    # repeat (the throughput ratio were the proxy alone the
                    # bottleneck)
                    cr = []
                    for rep in reps:
                        a = by.get((size, mode, t, "sat", rep))
                        b = by.get((size, mode, f"nginx-w{w}", "sat", rep))
                        if a and b and a["ok"] and b["ok"] and a["proxy_us_req"]:
                            cr.append(b["proxy_us_req"] / a["proxy_us_req"])
                    row["cpu_vs_nginx"] = med(cr)
                    if t.startswith("kvgated-w") and any(r["target"] == f"kvgated-base-w{w}" for r in recs):
                        # OVH_KVGATED_BASE: this build against another, same repeats
                        row["vs_base"], row["vs_base_min"], row["vs_base_max"] = \
                            ratio_to(f"kvgated-base-w{w}")
                    row["cpu_vs_nginx_min"] = min(cr) if cr else None
                    row["cpu_vs_nginx_max"] = max(cr) if cr else None
                    if t.startswith("kvgated-w") and any(r["target"] == f"kvgated-noacct-w{w}"
                                                         for r in recs):
                        # OVH_ACCT (issue 13): accounting on / off, same binary, per repeat
                        row["acct"] = acct_ratios(by, size, mode, t, f"kvgated-noacct-w{w}", reps)
                row["bottleneck"] = bottleneck(row, w, npods, ncpu) if sat else "-"
                cell["sat"].append(row)

                lrow = {"target": t, "workers": w, "repeats": len(lat)}
                for k in ["rps", "p50_us", "p90_us", "p99_us", "mean_us", "proxy_us_req",
                          "pods_us_req"]:
                    lrow[k] = med([d[k] for d in lat])
                lrow["errors_total"] = sum(d["errors"] for d in lat)
                for q in ("p50", "p99"):
                    diffs = []
                    for rep in reps:
                        a = by.get((size, mode, t, "lat", rep))
                        b = by.get((size, mode, "direct", "lat", rep))
                        if a and b and a["ok"] and b["ok"]:
                            diffs.append(a[f"{q}_us"] - b[f"{q}_us"])
                    lrow[f"added_{q}_us"] = med(diffs) if t != "direct" else None
                cell["lat"].append(lrow)
            cells.append(cell)
    return sizes, modes, order, cells


def by_start_order(per):
    """The per-repeat ratios split by which arm was started first
    (OVH_ACCT_SWAP alternates it): the median of each half, and from the
    two, what a bias of the first-started instance cancels to. With a
    factor f on whichever instance started first, the on-first median reads
    r * f and the off-first one r / f: balanced = sqrt(on_first * off_first)
    is r, bias = sqrt(on_first / off_first) is f."""
    out = {"by_start_order": {}}
    for key, want in (("on_first", True), ("off_first", False)):
        xs = [p for p in per if p.get("on_started_first") is want]
        rr = [p["rps_ratio"] for p in xs if p["rps_ratio"] is not None]
        cr = [p["cpu_ratio"] for p in xs if p["cpu_ratio"] is not None]
        out["by_start_order"][key] = {"repeats": len(xs), "rps_ratio": med(rr),
                                      "cpu_ratio": med(cr)}
    a, b = out["by_start_order"]["on_first"], out["by_start_order"]["off_first"]
    for k in ("rps_ratio", "cpu_ratio"):
        if a[k] and b[k]:
            out[f"{k}_balanced"] = math.sqrt(a[k] * b[k])
            out[f"{k}_start_bias"] = math.sqrt(a[k] / b[k])
        else:
            out[f"{k}_balanced"] = out[f"{k}_start_bias"] = None
    return out


def acct_ratios(by, size, mode, on, off, reps):
    """Accounting on / off per repeat: req/s on / off (>= 1 - ACCT_TOL is
    within target) and proxy CPU per request on / off (<= 1 + ACCT_TOL)."""
    rps, cpu, per = [], [], []
    for rep in reps:
        a = by.get((size, mode, on, "sat", rep))
        b = by.get((size, mode, off, "sat", rep))
        if not (a and b and a["ok"] and b["ok"]):
            continue
        x = a["rps"] / b["rps"] if b["rps"] else None
        y = a["proxy_us_req"] / b["proxy_us_req"] if a["proxy_us_req"] and b["proxy_us_req"] else None
        if x is not None:
            rps.append(x)
        if y is not None:
            cpu.append(y)
        per.append({"rep": rep, "rps_on": a["rps"], "rps_off": b["rps"],
                    "cpu_us_on": a["proxy_us_req"], "cpu_us_off": b["proxy_us_req"],
                    "rps_ratio": x, "cpu_ratio": y, "on_started_first": a.get("start_first")})
    out = {"repeats": per,
           "rps_ratio": med(rps), "rps_ratio_min": min(rps, default=None),
           "rps_ratio_max": max(rps, default=None),
           "cpu_ratio": med(cpu), "cpu_ratio_min": min(cpu, default=None),
           "cpu_ratio_max": max(cpu, default=None)}
    out.update(by_start_order(per))
    out["rps_met"] = out["rps_ratio"] is not None and out["rps_ratio"] >= 1 - ACCT_TOL
    out["cpu_met"] = out["cpu_ratio"] is not None and out["cpu_ratio"] <= 1 + ACCT_TOL
    return out


def prom_sum(text, family):
    """Sum of a family's samples by its `estimated` label ("true" / "false")."""
    out = {}
    for line in text.splitlines():
        m = re.match(r'^%s\{(.*)\} ([0-9.e+]+)$' % re.escape(family), line)
        if m:
            e = re.search(r'estimated="(\w+)"', m.group(1))
            k = e.group(1) if e else "-"
            out[k] = out.get(k, 0) + float(m.group(2))
    return out


def prom_hist(text, name):
    """(bucket bounds, cumulative counts) of one unlabelled histogram."""
    b = []
    for line in text.splitlines():
        m = re.match(r'^%s_bucket\{le="([^"]+)"\} ([0-9.e+]+)' % re.escape(name), line)
        if m:
            b.append((float("inf") if m.group(1) == "+Inf" else float(m.group(1)),
                      float(m.group(2))))
    return b


def hist_quantile(b, q):
    """Upper bound of the bucket holding quantile q (a Prometheus histogram
    cannot say more)."""
    if not b or b[-1][1] == 0:
        return None
    total = b[-1][1]
    for le, c in b:
        if c >= q * total:
            return le
    return None


def kvgated_metrics(raw, order):
    out = {}
    for t in order:
        p = os.path.join(raw, f"{t}.metrics")
        if not t.startswith("kvgated") or not os.path.exists(p):
            continue
        text = open(p).read()
        m = {}
        for name in ("kvgate_decision_seconds", "kvgate_gateway_added_seconds"):
            b = prom_hist(text, name)
            m[name] = {"count": b[-1][1] if b else 0,
                       "p50_le_s": hist_quantile(b, 0.5), "p90_le_s": hist_quantile(b, 0.9),
                       "p99_le_s": hist_quantile(b, 0.99)}
        st = {}
        for line in text.splitlines():
            mm = re.match(r'^kvgate_requests_total\{.*status="(\d+)"\} ([0-9.e+]+)', line)
            if mm:
                st[mm.group(1)] = st.get(mm.group(1), 0) + float(mm.group(2))
        m["requests_by_status"] = st
        for fam in ("kvgate_prompt_tokens_total", "kvgate_completion_tokens_total"):
            m[fam] = prom_sum(text, fam)
        for fam in ("kvgate_decisions_total", "kvgate_fallbacks_total"):
            m[fam] = {}
            for line in text.splitlines():
                mm = re.match(r'^%s\{(.*)\} ([0-9.e+]+)' % fam, line)
                if mm:
                    m[fam][mm.group(1)] = float(mm.group(2))
        out[t] = m
    return out


def cvn(r):
    if r.get("cpu_vs_nginx") is None:
        return "-"
    return f"{r['cpu_vs_nginx']:.2f} ({r['cpu_vs_nginx_min']:.2f}-{r['cpu_vs_nginx_max']:.2f})"


def pus(r):
    if not r.get("proxy_us_req"):
        return "-"
    return (f"{r['proxy_us_req']:.1f} ({r['proxy_user_us_req']:.0f}+"
            f"{r['proxy_sys_us_req']:.0f})")


def main():
    raw, outdir = sys.argv[1], sys.argv[2]
    recs, meta, dec, rss, ts = load(raw)
    sizes, modes, order, cells = summarize(recs, meta)
    kvm = kvgated_metrics(raw, order)
    workers = sorted({workers_of(t) for t in order if workers_of(t)})

    # ---- targets ----
    rate_targets = []
    for w in workers if any(t.startswith("nginx") for t in order) else []:
        for size in sizes:
            per_mode, cpu_mode = {}, {}
            for cell in cells:
                if cell["size"] != size:
                    continue
                for row in cell["sat"]:
                    if row["target"] == f"kvgated-w{w}":
                        per_mode[cell["mode"]] = row.get("vs_nginx")
                        cpu_mode[cell["mode"]] = row.get("cpu_vs_nginx")
            vals = [v for v in per_mode.values() if v is not None]
            met = bool(vals) and all(v >= RATE_TARGET for v in vals)
            cvals = [v for v in cpu_mode.values() if v is not None]
            rate_targets.append({"workers": w, "size": size, "ratios": per_mode, "met": met,
                                 "cpu_ratios": cpu_mode,
                                 "cpu_met": bool(cvals) and all(v >= RATE_TARGET for v in cvals)})
    acct_targets = []
    for cell in cells:
        for row in cell["sat"]:
            if row.get("acct"):
                a = row["acct"]
                acct_targets.append({"workers": row["workers"], "size": cell["size"],
                                     "mode": cell["mode"], **{k: v for k, v in a.items()
                                                              if k != "repeats"}})
    dec_target = None
    if dec:
        f64 = {f["caches"]: f for f in dec["fleets"] if f["pods"] == 64}
        if f64:
            hot = f64.get("hot", {}).get("decision_us", {}).get("p99")
            pol = f64.get("polluted", {}).get("decision_us", {}).get("p99")
            dec_target = {"pods": 64, "p99_us_hot": hot, "p99_us_polluted": pol,
                          "met_hot": hot is not None and hot <= DECISION_TARGET,
                          "met_polluted": pol is not None and pol <= DECISION_TARGET}

    # ---- time scale ----
    ts_out = {}
    for slack in ("50000", "1"):
        a, b = ts.get(f"slack{slack}_tokens16"), ts.get(f"slack{slack}_tokens256")
        if a is not None and b is not None:
            ts_out[slack] = {"p50_us_16_tokens": a, "p50_us_256_tokens": b,
                             "us_per_step": (b - a) / 240.0}
    step_model_us = 7.5 * 1000 * meta.get("time_scale", 0.001)  # 7.5 ms x scale, in us

    result = {"meta": meta, "cells": cells, "targets": {"rate_vs_nginx": rate_targets,
              "decision_p99_64_pods": dec_target, "accounting_on_off": acct_targets}, "decision": dec, "rss": rss,
              "time_scale_check": {"model_us_per_step": step_model_us, "measured": ts_out},
              "kvgated_metrics": kvm}
    os.makedirs(outdir, exist_ok=True)
    with open(os.path.join(outdir, "overhead.json"), "w") as f:
        json.dump(result, f, indent=1)

    # ---- markdown ----
    L = []
    add = L.append
    add("# Gateway overhead (issue 4)")
    add("")
    add(f"Run of `bench/overhead/run` at commit `{meta.get('commit', '?')}`"
        + (f" (+{meta['uncommitted_files']} uncommitted files under user/ and bench/)"
           if meta.get("uncommitted_files") else "") + ". "
        f"Every figure is a median over {meta.get('repeats', '?')} repeats; in each repeat "
        "the targets run back to back in a rotating order, so ratios compare runs made "
        "side by side.")
    add("")
    add("## Targets")
    add("")
    add("| target | result | |")
    add("| --- | --- | --- |")
    mode_name = {"plain": "non-streamed", "stream": "streamed, include_usage",
                 "nousage": "streamed, no usage (estimated)"}
    for t in acct_targets:
        def rr(v, lo, hi):
            return "-" if v is None else f"{v:.3f} ({lo:.3f}-{hi:.3f})"
        met = t["rps_met"] and t["cpu_met"]
        add(f"| accounting on / off within 3 %: req/s >= 0.97, kvgated CPU per request <= 1.03; "
            f"{size_name(t['size'])}, {mode_name.get(t['mode'], t['mode'])}, {t['workers']} worker(s) "
            f"| **{'met' if met else 'not met'}** (req/s {'met' if t['rps_met'] else 'not met'}, "
            f"CPU/req {'met' if t['cpu_met'] else 'not met'}) "
            f"| req/s on / off {rr(t['rps_ratio'], t['rps_ratio_min'], t['rps_ratio_max'])}; "
            f"CPU/req on / off {rr(t['cpu_ratio'], t['cpu_ratio_min'], t['cpu_ratio_max'])} |")
    for t in rate_targets:
        rs = ", ".join(f"{m} {fmt(v, 2)}x" for m, v in t["ratios"].items())
        add(f"| requests/s >= 1.0x nginx, {size_name(t['size'])}, {t['workers']} worker(s) "
            f"| **{'met' if t['met'] else 'not met'}** | measured req/s, kvgated / nginx: {rs} |")
    for t in rate_targets:
        rs = ", ".join(f"{m} {fmt(v, 2)}x" for m, v in t["cpu_ratios"].items())
        add(f"| (derived) proxy CPU per request, nginx / kvgated >= 1.0, {size_name(t['size'])}, "
            f"{t['workers']} worker(s) | {'met' if t['cpu_met'] else 'not met'} | {rs} |")
    if dec_target:
        add(f"| decision time p99 <= 5 us at 64 pods (hot caches) | "
            f"**{'met' if dec_target['met_hot'] else 'not met'}** | "
            f"p99 {fmt(dec_target['p99_us_hot'], 2)} us |")
        add(f"| decision time p99 <= 5 us at 64 pods (caches polluted between decisions) | "
            f"**{'met' if dec_target['met_polluted'] else 'not met'}** | "
            f"p99 {fmt(dec_target['p99_us_polluted'], 2)} us |")
    add("")

    add("## Saturation throughput")
    add("")
    add(f"`wrk -t2 -c{meta.get('conns', 64)}` (closed loop), {meta.get('sat_s', '?')} s per target and repeat "
        f"in {meta.get('slices', 1)} slices interleaved with the other targets', posting "
        f"{meta.get('bodies', 16)} distinct bodies in turn ({meta.get('groups', 4)} shared system "
        f"prompts), `max_tokens` {meta.get('max_tokens', 16)}, `ignore_eos`. Direct: one wrk "
        "thread per pod (-c/t connections each, the split a round-robin proxy makes). "
        "CPU columns: cores used during the run (sum over processes: 1.00 = one core busy "
        "the whole run) and CPU time per request; `vs nginx` = median of the per-repeat "
        "ratios kvgated / nginx with the same worker count (min-max in brackets); "
        "`CPU/req nginx / kvgated` = nginx's proxy CPU time per request over kvgated's, per "
        "repeat: the throughput ratio to expect where the proxy alone is the bottleneck "
        "(far steadier than req/s here, where wrk, proxy and pods share 2 cores).")
    add("")
    for cell in cells:
        add(f"### {size_name(cell['size'])} prompt body, "
            f"{ {'stream': 'streaming', 'nousage': 'streaming without include_usage'}.get(cell['mode'], 'non-streaming')}")
        add("")
        add("| target | req/s | min-max | vs nginx | vs direct | pods cores | proxy cores | wrk cores | machine busy | proxy us/req (user+sys) | CPU/req nginx / kvgated | pods us/req | errors | bottleneck |")
        add("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
        for r in cell["sat"]:
            vn = "-"
            if r.get("vs_nginx") is not None:
                vn = f"{r['vs_nginx']:.2f}x ({r['vs_nginx_min']:.2f}-{r['vs_nginx_max']:.2f})"
            add(f"| {r['target']} | {fmt(r['rps'])} | {fmt(r['rps_min'])}-{fmt(r['rps_max'])} | {vn} "
                f"| {fmt(r['vs_direct'], 2, 'x')} | {fmt(r['pods_cores'], 2)} | {fmt(r['proxy_cores'], 2)} "
                f"| {fmt(r['wrk_cores'], 2)} | {fmt((r['machine_busy'] or 0) * 100, 0, '%')} "
                f"| {pus(r)} | {cvn(r)} | {fmt(r['pods_us_req'], 1)} | {r['errors_total']} "
                f"| {r['bottleneck']} |")
        add("")
        for r in cell["sat"]:
            if r.get("vs_base") is not None:
                add(f"{r['target']} / kvgated-base-w{r['workers']} (OVH_KVGATED_BASE): "
                    f"{r['vs_base']:.2f}x ({r['vs_base_min']:.2f}-{r['vs_base_max']:.2f}) req/s")
                add("")

    if acct_targets:
        add("## Accounting on / off (issue 13)")
        add("")
        if meta.get("accounting_aa"):
            add("**A/A calibration run (OVH_ACCT_AA=1): both targets have accounting ON**; "
                "`off` below is a second, identical kvgated. Every ratio's distance from "
                "1.00 is the machine's noise, not accounting.")
            add("")
        add("The same kvgated binary twice, `kvgated-wN` with `{\"accounting\": {\"enabled\": "
            "true}}` and `kvgated-noacct-wN` with `false` (README, \"Token accounting\"), in the "
            "same repeats and rotation as every other target"
            + ("; the pair is restarted before each repeat, the arm started first alternating "
               "(OVH_ACCT_SWAP)" if meta.get("accounting_swap") else "")
            + ". Per repeat: req/s on / off and "
            "kvgated's CPU time per request (utime + stime of the process from /proc/PID/stat "
            "around each slice) on / off; the figure is the median of the per-repeat ratios, "
            "min-max in brackets. Target: req/s >= 0.97 and CPU per request <= 1.03.")
        add("")
        add("| body | mode | workers | req/s on | req/s off | req/s on / off | CPU us/req on | CPU us/req off | CPU/req on / off | per repeat (req/s; CPU) | verdict |")
        add("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |")
        for cell in cells:
            rows = {r["target"]: r for r in cell["sat"]}
            for r in cell["sat"]:
                a = r.get("acct")
                if not a:
                    continue
                off = rows.get(f"kvgated-noacct-w{r['workers']}", {})
                per = " ".join(f"{x['rps_ratio']:.3f};{x['cpu_ratio']:.3f}" for x in a["repeats"]
                               if x["rps_ratio"] is not None and x["cpu_ratio"] is not None)
                met = a["rps_met"] and a["cpu_met"]
                add(f"| {size_name(cell['size'])} | {mode_name.get(cell['mode'], cell['mode'])} "
                    f"| {r['workers']} | {fmt(r['rps'])} | {fmt(off.get('rps'))} "
                    f"| {a['rps_ratio']:.3f} ({a['rps_ratio_min']:.3f}-{a['rps_ratio_max']:.3f}) "
                    f"| {fmt(r['proxy_us_req'], 1)} | {fmt(off.get('proxy_us_req'), 1)} "
                    f"| {a['cpu_ratio']:.3f} ({a['cpu_ratio_min']:.3f}-{a['cpu_ratio_max']:.3f}) "
                    f"| {per} | {'met' if met else '**not met**'} |")
        add("")
        if any(r.get("acct", {}).get("by_start_order", {}).get("off_first", {}).get("repeats")
               for cell in cells for r in cell["sat"]):
            add("By start order (OVH_ACCT_SWAP: the pair is restarted before each repeat, the "
                "arm started first alternating): the medians of the per-repeat ratios of the "
                "repeats where the on arm started first and of those where the off arm did; "
                "`balanced` = sqrt(on-first x off-first), where a factor on the first-started "
                "instance cancels; `bias` = sqrt(on-first / off-first), that factor as measured "
                "(1.000: none).")
            add("")
            add("| body | mode | workers | repeats on first / off first | CPU/req on / off: on first | off first | balanced | bias | req/s on / off: on first | off first | balanced | bias |")
            add("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
            for cell in cells:
                for r in cell["sat"]:
                    a = r.get("acct")
                    if not a or "by_start_order" not in a:
                        continue
                    o, f = a["by_start_order"]["on_first"], a["by_start_order"]["off_first"]
                    add(f"| {size_name(cell['size'])} | {mode_name.get(cell['mode'], cell['mode'])} "
                        f"| {r['workers']} | {o['repeats']} / {f['repeats']} "
                        f"| {fmt(o['cpu_ratio'], 3)} | {fmt(f['cpu_ratio'], 3)} "
                        f"| {fmt(a['cpu_ratio_balanced'], 3)} | {fmt(a['cpu_ratio_start_bias'], 3)} "
                        f"| {fmt(o['rps_ratio'], 3)} | {fmt(f['rps_ratio'], 3)} "
                        f"| {fmt(a['rps_ratio_balanced'], 3)} | {fmt(a['rps_ratio_start_bias'], 3)} |")
            add("")
        tok = []
        for t, m in kvm.items():
            p = m.get("kvgate_prompt_tokens_total", {})
            c = m.get("kvgate_completion_tokens_total", {})
            tok.append(f"{t}: prompt {p.get('false', 0):,.0f} reported + {p.get('true', 0):,.0f} "
                       f"estimated, completion {c.get('false', 0):,.0f} + {c.get('true', 0):,.0f}")
        if tok:
            add("Token counters after the runs (each instance's /metrics; with accounting off "
                "there are none): " + "; ".join(tok) + ".")
            add("")

    add("## Added latency at a low, paced load")
    add("")
    add(f"`wrk -t2 -c2 -d{meta.get('lat_s', '?')}s`, each connection waiting "
        f"{meta.get('lat_delay_ms', 5)} ms before each request (about "
        f"{2000 // (meta.get('lat_delay_ms', 5) + 1)} requests/s, far below saturation); "
        "latency = request written to last response byte (for streaming: the whole SSE "
        "stream). Added = proxy minus direct in the same repeat, then the median over "
        "repeats. wrk's percentiles; at this rate the p99 rests on a few tens of samples "
        "per repeat.")
    add("")
    add("| body | mode | target | req/s | p50 us | p99 us | added p50 us | added p99 us | errors |")
    add("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for cell in cells:
        for r in cell["lat"]:
            add(f"| {size_name(cell['size'])} | {cell['mode']} | {r['target']} | {fmt(r['rps'])} "
                f"| {fmt(r['p50_us'])} | {fmt(r['p99_us'])} | {fmt(r['added_p50_us'])} "
                f"| {fmt(r['added_p99_us'])} | {r['errors_total']} |")
    add("")

    if dec:
        add("## Decision time (bench/micro/decision_bench.c)")
        add("")
        add(f"Prefix-index lookup + `policy_pick`, per request, on a synthetic fleet: "
            f"{dec['groups']} prompt groups, {dec['max_blocks']}-block fingerprints of "
            f"{dec['block_bytes']} B, index as kvgated sizes it ({dec['index_entries_max']:,} "
            f"entries, {dec['pod_capacity_blocks']:,} blocks a pod) populated by routing 30,000 "
            f"earlier requests through the same code; {dec['requests']:,} measured requests "
            f"(a quarter of that polluted), median over {dec['repeats']} repeats. `route` adds "
            "`pidx_insert` (on gw_route's path) and the snapshot reference. All in us.")
        add("")
        add("| pods | caches | decision p50 | p99 | p99.9 | mean | lookup p99 | pick p99 | insert p50 | insert p99 | route p99 | index entries | prefix hit | mean match (blocks) |")
        add("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for f_ in dec["fleets"]:
            d_ = f_["decision_us"]
            add(f"| {f_['pods']} | {f_['caches']} | {d_['p50']:.2f} | **{d_['p99']:.2f}** | {d_['p99.9']:.2f} "
                f"| {d_['mean']:.2f} | {f_['lookup_us']['p99']:.2f} | {f_['pick_us']['p99']:.2f} "
                f"| {f_['insert_us']['p50']:.2f} | {f_['insert_us']['p99']:.2f} | {f_['route_us']['p99']:.2f} "
                f"| {f_['index_entries']:,.0f} | {f_['hit_share'] * 100:.0f}% | {f_['mean_match_blocks']:.1f} |")
        add("")
        if dec.get("scan"):
            add("Body scan + fingerprint (bodyscan, fp_feed, fp_keys), the per-request work "
                "before the decision: " + "; ".join(
                    f"{s['bytes']:,} B: p50 {s['p50_us']:.2f} us, p99 {s['p99_us']:.2f} us "
                    f"({s['mb_per_s']:,.0f} MB/s)" for s in dec["scan"]) + ".")
            add("")

    if kvm:
        add("## kvgated's own view (its /metrics after the runs)")
        add("")
        add("Prometheus buckets: a quantile is the upper bound of its bucket. "
            "`decision` = gw_route (lookup, pick, index insert); `added` = end of the "
            "request body to the request written to the pod.")
        add("")
        add("| instance | requests by status | decision p50 / p90 / p99 <= | added p50 / p90 / p99 <= | fallbacks |")
        add("| --- | --- | --- | --- | --- |")
        for t, m in kvm.items():
            d_, a_ = m["kvgate_decision_seconds"], m["kvgate_gateway_added_seconds"]

            def us(x):
                return "-" if x is None else ("inf" if x == float("inf") else f"{x * 1e6:g} us")
            st = ", ".join(f"{k}: {v:,.0f}" for k, v in sorted(m["requests_by_status"].items()))
            fb = ", ".join(f"{k.split('=')[1].strip(chr(34))}: {v:,.0f}"
                           for k, v in m["kvgate_fallbacks_total"].items()) or "none"
            add(f"| {t} | {st} | {us(d_['p50_le_s'])} / {us(d_['p90_le_s'])} / {us(d_['p99_le_s'])} "
                f"| {us(a_['p50_le_s'])} / {us(a_['p90_le_s'])} / {us(a_['p99_le_s'])} | {fb} |")
        add("")
        add("Status 499: requests still in flight when wrk stopped at the end of a run "
            "(wrk closes its connections); nginx logs the same.")
        add("")

    if rss:
        add("## Memory under idle keep-alive connections")
        add("")
        add("`holdconns.py` opens the connections, sends one 1 KiB non-streaming request on "
            "each, reads the answer, then holds them idle. VmRSS from /proc (nginx: master + "
            "workers); `before` after a short warm-up, `after close` 1.5 s after the client "
            "closed everything.")
        add("")
        add("| server | workers | connections answered / asked | established (server side) | RSS before | RSS holding | RSS after close | bytes per connection |")
        add("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for r in rss:
            h = r.get("holder", {})
            add(f"| {r['target'].replace('rss-', '')} | {r['workers']} | {h.get('ok', '?')} / {r['conns']} "
                f"| {r['established_server_side']} | {r['rss_kb_before'] / 1024:.1f} MiB "
                f"| {r['rss_kb_holding'] / 1024:.1f} MiB | {r['rss_kb_after_close'] / 1024:.1f} MiB "
                f"| {r['bytes_per_conn']:,.0f} |")
        add("")

    add("## Time scale check (kvgate-podsim --time-scale 0.001)")
    add("")
    add(f"One connection straight to one pod, 16 and 256 output tokens: the slope is the "
        f"wall time of one simulated decode step; the model says 7.5 ms x 0.001 = "
        f"{step_model_us:.1f} us.")
    add("")
    add("| pod timer slack | p50, 16 tokens | p50, 256 tokens | us per step |")
    add("| --- | ---: | ---: | ---: |")
    for slack, v in ts_out.items():
        add(f"| {'50 us (default)' if slack == '50000' else '1 ns (used)'} | {v['p50_us_16_tokens']:,} us "
            f"| {v['p50_us_256_tokens']:,} us | {v['us_per_step']:.1f} |")
    add("")
    add("Each simulated step is one timer wake-up of podsim's event loop; at this scale "
        "the wake-up itself (and, with the default 50 us timer slack, the slack) is longer "
        "than the simulated step, so pods are slower than 0.001 x real time at low load. "
        "The run sets /proc/<pid>/timerslack_ns = 1 on the pods. Under load the steps "
        "batch many requests, so this bounds latency, not throughput.")
    add("")

    add("## Method")
    add("")
    add(f"- Pods: {meta.get('pods', 2)} `kvgate-podsim` processes of one pod each (podsim is one "
        "thread), `--time-scale 0.001`, `--max-model-len 65536`, `--kv-blocks 200000` so that "
        "every system prompt stays cached (no simulated prefill beyond the question).")
    add(f"- Bodies: chat completions of exactly 1,024 and 225,280 bytes, {meta.get('bodies', 16)} per "
        f"size and mode over {meta.get('groups', 4)} system prompts, `max_tokens` "
        f"{meta.get('max_tokens', 16)}, `ignore_eos`; streaming adds `stream: true` and "
        "`stream_options.include_usage`.")
    add("- kvgated: `--workers N`, `--pod` per pod, everything else default (prefix-aware, "
        "JSON access log on stdout, here appended to a file)." if meta.get("access_log", True) else
        "- kvgated: `--workers N`, `--pod` per pod, `--access-log \"\"`, everything else default.")
    add("- nginx: `worker_processes N`, upstream round-robin with `keepalive 256`, "
        "`proxy_http_version 1.1`, `proxy_buffering off`, request bodies buffered in memory "
        "(`client_body_buffer_size 512k`; kvgated also reads the whole body before routing), "
        + ("access log on (default format) to a file." if meta.get("access_log", True) else "access log off."))
    add("- Saturation: wrk (closed loop), Lua script `post.lua` with pre-formatted requests and "
        "no response callback. Latency: the same script with a per-connection delay.")
    add("- CPU: utime + stime from /proc/<pid>/stat of the pods and the proxy (nginx: master and "
        "workers) around each run, wrk's from /usr/bin/time, the machine's from /proc/stat. "
        "The bottleneck column names what ran out: a podsim thread near a full core, the proxy "
        "near its worker count, or the whole machine.")
    add("- Every process is started by the script on 127.0.0.1 ports from `free_port_range` and "
        "killed by PID on exit.")
    add("")
    add("## Machine")
    add("")
    add(f"- {meta.get('ncpu', '?')} x {meta.get('cpu', '?')}, kernel {meta.get('kernel', '?')}; "
        f"nginx {meta.get('nginx', '?')}, wrk {meta.get('wrk', '?')}.")
    add(f"- Load before: `{meta.get('load_before', '').strip()}`; after: "
        f"`{meta.get('load_after', '').strip()}`.")
    steal = med([d.get("steal") for c in cells for d in c["sat"]])
    if steal is not None:
        add(f"- Median CPU steal during the saturation runs: {steal * 100:.1f}%.")
    add("- Shared and noisy: absolute figures move between runs; the ratios are measured side "
        "by side. Client, proxy and pods share the same 2 cores, so every saturation row is "
        "CPU-bound and the proxy's CPU per request decides its throughput.")
    add("")
    with open(os.path.join(outdir, "overhead.md"), "w") as f:
        f.write("\n".join(L))


if __name__ == "__main__":
    main()
