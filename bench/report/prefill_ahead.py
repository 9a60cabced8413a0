#!/usr/bin/env python3
"""prefill_ahead: how much prefill each request found ahead of it at the
pod kvgated chose, from a bench run's access logs (issue 11's replica
diagnostics).

For every answered request (start = ts - e2e_ms, kvgated's wall clock),
the uncached prompt tokens (prompt_tokens - cached_tokens) of the requests
that were at the same pod between their start and their first token when
it started: the prefill queued ahead of it there. Printed per run and
target (replicas' logs merged), with the least of that over all pods at
the same moment, so a reader sees how often and by how much a choice
landed behind prefill that another pod did not have.

    bench/report/prefill_ahead.py DIR [TARGET...]
DIR: a bench/run --out directory (its raw/<scenario>/*.access.log);
TARGET: kvgated targets (default every kvgate-* found).
"""
import glob
import json
import os
import re
import statistics
import sys


def load(files):
    reqs = []
    for f in files:
        with open(f) as fh:
            for line in fh:
                d = json.loads(line)
                if not d.get("pod") or d.get("status") != 200 or d.get("ttft_ms", -1) < 0:
                    continue
                start = d["ts"] - d["e2e_ms"] / 1000.0
                unc = max(0, d.get("prompt_tokens", 0) - d.get("cached_tokens", 0))
                reqs.append((start, d["pod"], unc, d["ttft_ms"] / 1000.0))
    reqs.sort()
    return reqs


def quantile(a, q):
    a = sorted(a)
    return a[int(q * (len(a) - 1))] if a else 0


def analyse(reqs):
    pods = sorted({r[1] for r in reqs})
    ahead, least, behind = [], [], 0
    for i, (s, pod, _, _) in enumerate(reqs):
        load = dict.fromkeys(pods, 0)
        for s2, pod2, unc2, ttft2 in reqs[max(0, i - 500):i]:
            if s2 <= s < s2 + ttft2:
                load[pod2] += unc2
        ahead.append(load[pod])
        least.append(min(load.values()))
        behind += load[pod] > 0
    n = len(reqs)
    return (f"requests {n}, behind prefill at the chosen pod {100 * behind / max(1, n):.1f}%, "
            f"prefill tokens ahead mean {statistics.mean(ahead) if n else 0:.0f} "
            f"(p50 {quantile(ahead, .5)}, p90 {quantile(ahead, .9)}), "
            f"at the least loaded pod mean {statistics.mean(least) if n else 0:.0f}")


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    d = sys.argv[1]
    logs = glob.glob(os.path.join(d, "raw", "*", "*.access.log"))
    runs = {}
    for f in logs:
        m = re.match(r"(.*)-(n\d+)-(kvgate-[^.]+)(\.r\d+)?\.access\.log$", os.path.basename(f))
        if m:
            runs.setdefault((os.path.basename(os.path.dirname(f)), m.group(1), m.group(2), m.group(3)), []).append(f)
    want = set(sys.argv[2:])
    for key in sorted(runs):
        if want and key[3] not in want:
            continue
        print(" ".join(key), analyse(load(runs[key])))


if __name__ == "__main__":
    main()
