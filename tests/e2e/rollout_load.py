#!/usr/bin/env python3
"""Two tenants' streamed chat traffic for tests/e2e/gateway_rollout.sh.

  rollout_load.py PORT SECONDS STOPFILE

chat: 6 conversations (x-session-id each), every one with its own long
system prompt and a history that grows by a turn per request: a router
that keeps a conversation on the pod holding its history saves the
history's prefill on every turn.
batch: 6 workers of a batch job (adapter batch-lora, no session), each
request a document of its own and a question: nothing to gain from any
pod's cache, only from its load.

Runs until SECONDS pass or STOPFILE exists; prints one line per tenant:
requests, errors."""
import http.client
import json
import os
import random
import sys
import threading
import time

port, seconds, stopfile = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
deadline = time.time() + seconds
counts = {"chat": [0, 0], "batch": [0, 0]}
lock = threading.Lock()


def words(rng, n):
    return " ".join("w%05d" % rng.randrange(100000) for _ in range(n))


def ask(conn, tenant, session, messages, max_tokens, model="meta-llama/Llama-3.1-8B-Instruct"):
    body = json.dumps({"model": model, "messages": messages,
                       "stream": True, "max_tokens": max_tokens, "ignore_eos": True})
    headers = {"content-type": "application/json", "x-gateway-inference-fairness-id": tenant}
    if session:
        headers["x-session-id"] = session
    conn.request("POST", "/v1/chat/completions", body, headers)
    r = conn.getresponse()
    data = r.read()
    ok = r.status == 200 and b"[DONE]" in data
    with lock:
        counts[tenant][0] += 1
        counts[tenant][1] += not ok
    return ok


def running():
    return time.time() < deadline and not os.path.exists(stopfile)


def chat(i):
    rng = random.Random(100 + i)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    msgs = [{"role": "system", "content": words(rng, 1500)}]
    while running():
        msgs.append({"role": "user", "content": words(rng, 60)})
        try:
            ask(conn, "chat", "chat-%d" % i, msgs, 8)
        except (OSError, http.client.HTTPException):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        msgs.append({"role": "assistant", "content": words(rng, 8)})
        if len(msgs) > 30:
            msgs = msgs[:1]


def batch(i):
    rng = random.Random(200 + i)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    while running():
        # a document of its own per request, no session: no pod has an
        # edge for it but its load
        msgs = [{"role": "system", "content": words(rng, 400)},
                {"role": "user", "content": words(rng, 30)}]
        try:
            ask(conn, "batch", "", msgs, 12, model="batch-lora")
        except (OSError, http.client.HTTPException):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)


threads = [threading.Thread(target=chat, args=(i,)) for i in range(6)]
threads += [threading.Thread(target=batch, args=(i,)) for i in range(6)]
for t in threads:
    t.start()
for t in threads:
    t.join()
for k, (n, e) in counts.items():
    print("%s: %d requests, %d errors" % (k, n, e))
