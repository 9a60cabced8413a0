#!/usr/bin/env python3
"""Hostile admin clients for tests/hostile/control_admin.sh.

  control_slowclients.py PORT N SECONDS [--report FILE]

Opens N connections to 127.0.0.1:PORT, each sending the first byte of a
request head ("G") at once and then one more byte every 0.5 s (a slowloris:
the head never completes). Runs for SECONDS, then writes to FILE (or
stdout) how many connections the server closed and how long the first of
them lasted, as JSON.
"""
import json
import socket
import sys
import time

port, n, secs = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
report = sys.argv[5] if len(sys.argv) > 5 and sys.argv[4] == "--report" else None
head = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 4096
conns = []
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.setblocking(False)
    try:
        s.send(head[:1])
    except OSError:
        pass
    conns.append({"s": s, "t0": time.monotonic(), "off": 1, "closed": None})
print("open", flush=True)
end = time.monotonic() + secs
while time.monotonic() < end:
    time.sleep(0.5)
    for c in conns:
        if c["closed"] is not None:
            continue
        try:
            if c["s"].recv(4096, socket.MSG_DONTWAIT) == b"":
                c["closed"] = time.monotonic() - c["t0"]
                continue
        except BlockingIOError:
            pass
        except OSError:
            c["closed"] = time.monotonic() - c["t0"]
            continue
        try:
            c["s"].send(head[c["off"]:c["off"] + 1])
            c["off"] = (c["off"] + 1) % len(head)
        except OSError:
            c["closed"] = time.monotonic() - c["t0"]
closed = [c["closed"] for c in conns if c["closed"] is not None]
out = {"open": n, "closed": len(closed), "first_closed_s": min(closed) if closed else None}
text = json.dumps(out)
if report:
    with open(report, "w") as f:
        f.write(text + "\n")
else:
    print(text)
