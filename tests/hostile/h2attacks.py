#!/usr/bin/env python3
"""h2attacks: raw HTTP/2 attacks on kvgated for tests/hostile/h2_limits.sh.

  h2attacks.py hpack_bomb PORT MODEL STREAMS   each stream: one HEADERS frame of
        ~4 KB that indexes a 4 KB header once, then names it again ~4,000 times
        (16 MB decoded); then one normal request on the same connection
  h2attacks.py rapid_reset PORT MODEL STREAMS  HEADERS + DATA + RST_STREAM per
        stream, 10 streams per send
  h2attacks.py continuation PORT N   one header block in a HEADERS frame and N
        CONTINUATION frames of a few bytes each
  h2attacks.py hold PORT MODEL BYTES SID...    streams that send BYTES of body and
        never end; prints what each got, keeps the connection open for 3 s
Each prints one JSON line.
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import h2raw  # noqa: E402
from h2raw import frame, HEADERS, DATA, RST_STREAM, END_HEADERS, END_STREAM  # noqa: E402


def body(model, text="hi"):
    return json.dumps({"model": model, "messages": [{"role": "user", "content": text}],
                       "max_tokens": 2, "ignore_eos": True}).encode()


def hpack_bomb(port, model, streams):
    c = h2raw.Conn(int(port))
    c.pump(0.3)
    big = "A" * 4000
    sids = []
    for i in range(int(streams)):
        sid = 1 + 2 * i
        blk = h2raw.request_block("POST", "/v1/chat/completions", [("content-type", "application/json")])
        # literal with incremental indexing: the 4 KB field enters the table
        # (index 62), then 1-byte references to it (0x80 | 62)
        blk += h2raw.literal("x-b", big, indexing=True) + b"\xbe" * (4030 - 4000 - 10)
        blk += b"\xbe" * 3990
        c.send(frame(HEADERS, END_HEADERS, sid, blk) + frame(DATA, END_STREAM, sid, body(model)))
        sids.append(sid)
    c.pump(10, until=lambda c: all(s in c.ended or s in c.resets for s in sids))
    ok_sid = 1 + 2 * int(streams)
    c.request(ok_sid, "POST", "/v1/chat/completions", body(model))
    c.pump(10, until=lambda c: ok_sid in c.ended or c.goaway)
    print(json.dumps({"statuses": [c.status.get(s) for s in sids],
                      "resets": [c.resets.get(s) for s in sids],
                      "after": c.status.get(ok_sid), "goaway": c.goaway}))


def rapid_reset(port, model, streams):
    c = h2raw.Conn(int(port))
    c.pump(0.3)
    n, sent = int(streams), 0
    for i in range(0, n, 10):
        batch = b""
        for k in range(i, min(n, i + 10)):
            sid = 1 + 2 * k
            batch += frame(HEADERS, END_HEADERS, sid,
                           h2raw.request_block("POST", "/v1/chat/completions",
                                               [("content-type", "application/json")]))
            batch += frame(DATA, END_STREAM, sid, body(model))
            batch += frame(RST_STREAM, 0, sid, (8).to_bytes(4, "big"))  # CANCEL
        try:
            c.send(batch)
        except OSError:
            break
        sent = min(n, i + 10)
        c.pump(0.01)
        if c.goaway or c.closed:
            break
    c.pump(1, until=lambda c: c.closed)
    print(json.dumps({"sent": sent, "goaway": c.goaway, "closed": c.closed}))


def continuation(port, n):
    c = h2raw.Conn(int(port))
    c.pump(0.3)
    blk = h2raw.request_block("GET", "/health")
    n = int(n)
    try:
        c.send(frame(HEADERS, END_STREAM, 1, blk))
        for i in range(n):
            last = i == n - 1
            c.send(frame(h2raw.CONT, END_HEADERS if last else 0, 1, h2raw.literal("x-c%d" % i, "v")))
    except OSError:
        pass
    c.pump(3, until=lambda c: c.goaway or 1 in c.ended)
    print(json.dumps({"goaway": c.goaway, "status": c.status.get(1)}))


def hold(port, model, nbytes, *sids):
    c = h2raw.Conn(int(port))
    c.pump(0.3)
    n = int(nbytes)
    for s in sids:
        sid = int(s)
        c.send(frame(HEADERS, END_HEADERS, sid,
                     h2raw.request_block("POST", "/v1/chat/completions",
                                         [("content-type", "application/json")])))
        left = n
        while left:
            k = min(left, 16384)
            c.send(frame(DATA, 0, sid, b" " * k))
            left -= k
        c.pump(0.3)
    c.pump(2)
    print(json.dumps({"status": {s: c.status.get(int(s)) for s in sids},
                      "body": {s: c.body.get(int(s), b"")[:120].decode("latin-1") for s in sids},
                      "goaway": c.goaway}), flush=True)
    time.sleep(float(os.environ.get("HOLD_SECONDS", "3")))


if __name__ == "__main__":
    globals()[sys.argv[1]](*sys.argv[2:])
