#!/usr/bin/env python3
"""clients: the hostile tier's client-side checks, one subcommand each.

  clients.py h1raw PORT FILE          send FILE's bytes as is, print what comes back
  clients.py h2mixed PORT MODEL       one slow stream and one bad-head stream on one
                                      h2 connection: both answered, no GOAWAY
  clients.py slowreader PORT BODYFILE SECS  sends a request, reads nothing for SECS
                                      (4 KB receive buffer), then says whether the
                                      gateway closed the connection (JSON)
  clients.py h2stall PORT LONGBODY SHORTBODY SECS  stream 1's window never opens,
                                      stream 3's does: prints what each got (JSON)
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
    s = socket.create_connection(("127.0.0.1", int(port)), timeout=float(__import__("os").environ.get("H1RAW_TIMEOUT", "5")))
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


def slowreader(port, bodyfile, secs):
    body = open(bodyfile, "rb").read()
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", int(port)))
    s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: g\r\ncontent-type: application/json\r\n"
              b"content-length: %d\r\n\r\n" % len(body) + body)
    time.sleep(float(secs))
    closed, got = False, 0
    s.settimeout(2)
    try:
        while True:
            d = s.recv(1 << 20)
            if not d:
                closed = True
                break
            got += len(d)
    except ConnectionResetError:
        closed = True
    except socket.timeout:
        pass
    print(json.dumps({"closed": closed, "bytes": got}))
    return 0


def h2stall(port, longfile, shortfile, secs):
    # INITIAL_WINDOW_SIZE 0: no stream gets DATA until its WINDOW_UPDATE
    c = h2raw.Conn(int(port), settings=b"\x00\x04\x00\x00\x00\x00")
    c.request(1, "POST", "/v1/chat/completions", open(longfile, "rb").read())
    time.sleep(0.2)
    c.request(3, "POST", "/v1/chat/completions", open(shortfile, "rb").read())
    c.send(h2raw.frame(h2raw.WINDOW_UPDATE, 0, 3, (1 << 30).to_bytes(4, "big")))
    t0 = time.time()
    c.pump(float(secs), until=lambda c: 1 in c.resets and 3 in c.ended)
    print(json.dumps({"reset1": c.resets.get(1), "reset_after_s": round(time.time() - t0, 2),
                      "status3": c.status.get(3), "done3": c.body.get(3, b"").endswith(b"data: [DONE]\n\n"),
                      "goaway": c.goaway}))
    return 0


if __name__ == "__main__":
    sys.exit(globals()[sys.argv[1]](*sys.argv[2:]))
