#!/usr/bin/env python3
"""Watches kvgated's /admin/pods over ONE kept-alive admin connection (it
needs no new descriptor, so it works while kvgated is out of them).

  control_adminwatch.py ADMIN_PORT SECONDS [INTERVAL]

Every INTERVAL seconds (default 0.1) records each pod's "healthy" and
"metrics_age_ms". Prints one JSON line: {"samples": n, "errors": n,
"unhealthy": {pod: samples}, "stale": {pod: samples with age > 200 ms},
"max_age_ms": {pod: ms}}.
"""
import http.client
import json
import sys
import time

port, secs = int(sys.argv[1]), float(sys.argv[2])
step = float(sys.argv[3]) if len(sys.argv) > 3 else 0.1
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
out = {"samples": 0, "errors": 0, "unhealthy": {}, "stale": {}, "max_age_ms": {}}
end = time.monotonic() + secs
while time.monotonic() < end:
    try:
        conn.request("GET", "/admin/pods")
        pods = json.loads(conn.getresponse().read())
        out["samples"] += 1
        for p in pods:
            n = p["name"]
            out["unhealthy"].setdefault(n, 0)
            out["stale"].setdefault(n, 0)
            if not p["healthy"]:
                out["unhealthy"][n] += 1
            age = p["metrics_age_ms"]
            age = 1e9 if age is None else age
            if age > 200:
                out["stale"][n] += 1
            out["max_age_ms"][n] = max(out["max_age_ms"].get(n, 0), age)
    except Exception:
        out["errors"] += 1
        conn.close()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    time.sleep(step)
print(json.dumps(out))
