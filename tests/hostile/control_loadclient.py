#!/usr/bin/env python3
"""Closed-loop chat requests for the hostile control tests.

  control_loadclient.py PORT THREADS REQUESTS [--timeout S] [--header 'k: v']
                        [--give-up N]

THREADS keep-alive connections share REQUESTS non-streaming chat
completions (max_tokens 1). A request with no answer within --timeout
seconds (default 5) counts as blocked, and its connection is replaced;
after --give-up blocked requests (default 16) the run stops and the
requests not sent count as blocked too. Prints one JSON line:
{"ok": n, "errors": n, "blocked": n, "seconds": s}.
"""
import argparse
import http.client
import json
import threading
import time

ap = argparse.ArgumentParser()
ap.add_argument("port", type=int)
ap.add_argument("threads", type=int)
ap.add_argument("requests", type=int)
ap.add_argument("--timeout", type=float, default=5.0)
ap.add_argument("--header", action="append", default=[])
ap.add_argument("--give-up", type=int, default=16)
ap.add_argument("--model", default="meta-llama/Llama-3.1-8B-Instruct")
a = ap.parse_args()

headers = {"content-type": "application/json"}
for h in a.header:
    k, v = h.split(":", 1)
    headers[k.strip()] = v.strip()
body = json.dumps({"model": a.model, "max_tokens": 1,
                   "messages": [{"role": "user", "content": "hello there"}]})
lock = threading.Lock()
st = {"left": a.requests, "ok": 0, "errors": 0, "blocked": 0}


def take():
    with lock:
        if st["left"] <= 0 or st["blocked"] >= a.give_up:
            return False
        st["left"] -= 1
        return True


def worker():
    conn = None
    while take():
        if conn is None:
            conn = http.client.HTTPConnection("127.0.0.1", a.port, timeout=a.timeout)
        try:
            conn.request("POST", "/v1/chat/completions", body, headers)
            r = conn.getresponse()
            r.read()
            with lock:
                st["ok" if r.status == 200 else "errors"] += 1
        except (TimeoutError, OSError, http.client.HTTPException) as e:
            with lock:
                st["blocked" if isinstance(e, TimeoutError) else "errors"] += 1
            conn.close()
            conn = None


t0 = time.monotonic()
ts = [threading.Thread(target=worker) for _ in range(a.threads)]
for t in ts:
    t.start()
for t in ts:
    t.join()
st["blocked"] += st["left"] if st["blocked"] >= a.give_up else 0
print(json.dumps({"ok": st["ok"], "errors": st["errors"], "blocked": st["blocked"],
                  "seconds": round(time.monotonic() - t0, 2)}))
