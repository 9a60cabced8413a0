#!/usr/bin/env python3
"""clients: the hostile tier's client-side checks, one subcommand each.

  clients.py h1raw PORT FILE          send FILE's bytes as is, print what comes back
  clients.py h2mixed PORT MODEL       one slow stream and one bad-head stream on one
                                      h2 connection: both answered, no GOAWAY
Each exits 0 when the check holds and prints what it saw either way.
"""
import json
import socket
import sys
import time

sys.path.insert(0, __import__("os").path.dirname(__file__))
import h2raw  # noqa: E402


def chat(model, text, stream=True):
    return json.dumps({"model": model, "messages": [{"role": "user", "content": text}],
                       "max_tokens": 8, "stream": stream}).encode()


def h1raw(port, path):
    data = open(path, "rb").read()
    s = socket.create_connection(("127.0.0.1", int(port)), timeout=5)
    s.sendall(data)
    out = b""
    try:
        while True:
            d = s.recv(65536)
            if not d:
                break
            out += d
    except socket.timeout:
        pass
    sys.stdout.buffer.write(out)
    return 0


def h2mixed(port, model):
    c = h2raw.Conn(int(port))
    c.request(1, "POST", "/v1/chat/completions", chat(model, "MODE:slow=0.1"))
    time.sleep(0.3)
    c.request(3, "POST", "/v1/chat/completions", chat(model, "MODE:badcr"))
    c.pump(15, until=lambda c: {1, 3} <= c.ended or c.goaway or 1 in c.resets)
    print("status", c.status, "ended", sorted(c.ended), "goaway", c.goaway, "resets", c.resets)
    print("hdrs3", c.headers.get(3))
    b1, b3 = c.body.get(1, b""), c.body.get(3, b"")
    print("body1 tail", b1[-60:], "body3", b3[:200])
    ok = (c.goaway is None and c.status.get(1) == 200 and b1.endswith(b"data: [DONE]\n\n") and
          c.status.get(3) == 502 and b'"code":502' in b3 and
          not any("Injected" in (k + v) for k, v in c.headers.get(3, [])))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(globals()[sys.argv[1]](*sys.argv[2:]))
