#!/usr/bin/env python3
"""badpod: a model-server pod that misbehaves on request, for the hostile tier.

  badpod.py PORT [MODEL]

HTTP/1.1 keep-alive, one thread per connection, raw bytes on the wire (so a
response can carry what no HTTP library would write). GET /health,
/v1/models (MODEL, default meta-llama/Llama-3.1-8B-Instruct) and /metrics
(vLLM names, an idle pod) answer normally. A POST's behaviour is chosen by
the first "MODE:<name>" in its body (the prompt text), default "ok":

  ok         a streamed chat answer of 4 events + [DONE] (SSE, chunked), or
             JSON when the body has no "stream": true
  badcr      a header value with a bare CR in it        (response splitting)
  badlf      a header value running into "\\nInjected: 1" (bare LF)
  badnul     a header value with a NUL byte
  badname    a header name with a space in it
  badctl     a header value with a 0x01 control byte
  echo       200, JSON {"headers": {name: value, ...}} of the request as received
  connopt    200 with "connection: x-pod-private" and "x-pod-private: 1"
  stall1     the SSE head and one event, then nothing, the connection open
  status500  500 with a JSON error body
  slow=S     the stream, one event every S seconds (20 events)
  trickle    a status line, then one byte of a header every 0.5 s, for ever
  flood      events as fast as the socket takes them, up to 256 MiB; "flood_aborted"
             is counted when the gateway closes the connection first

Every request is counted per mode; GET /stats answers the counts as JSON.
"""
import json
import re
import socket
import sys
import threading
import time

PORT = int(sys.argv[1])
MODEL = sys.argv[2] if len(sys.argv) > 2 else "meta-llama/Llama-3.1-8B-Instruct"
STATS = {}
LOCK = threading.Lock()


def count(mode):
    with LOCK:
        STATS[mode] = STATS.get(mode, 0) + 1


def reply(conn, status, body, ctype="application/json", extra=b""):
    head = (b"HTTP/1.1 %d X\r\ncontent-type: %s\r\ncontent-length: %d\r\n" %
            (status, ctype.encode(), len(body))) + extra + b"\r\n"
    conn.sendall(head + body)


def chunk(data):
    return b"%x\r\n%s\r\n" % (len(data), data)


def event(i):
    d = {"id": "c1", "object": "chat.completion.chunk", "model": MODEL,
         "choices": [{"index": 0, "delta": {"content": "tok%d " % i}, "finish_reason": None}]}
    return b"data: " + json.dumps(d).encode() + b"\n\n"


SSE_HEAD = (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"transfer-encoding: chunked\r\n\r\n")


def stream(conn, n, gap):
    conn.sendall(SSE_HEAD)
    for i in range(n):
        conn.sendall(chunk(event(i)))
        if gap:
            time.sleep(gap)
    conn.sendall(chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n")


BAD = {
    "badcr": b"x-evil: a\rInjected: 1\r\n",
    "badlf": b"x-evil: a\nInjected: 1\r\n",
    "badnul": b"x-evil: a\x00b\r\n",
    "badname": b"x evil: 1\r\n",
    "badctl": b"x-evil: a\x01b\r\n",
}


def post(conn, path, headers, body):
    m = re.search(rb"MODE:([a-z0-9=.]+)", body)
    mode = m.group(1).decode() if m else "ok"
    count(mode.split("=")[0])
    streaming = re.search(rb'"stream"\s*:\s*true', body) is not None
    if mode in BAD:
        reply(conn, 200, b'{"ok":true}', extra=BAD[mode])
    elif mode == "connopt":
        reply(conn, 200, b'{"ok":true}', extra=b"connection: x-pod-private\r\nx-pod-private: 1\r\n")
    elif mode == "echo":
        reply(conn, 200, json.dumps({"headers": headers, "path": path}).encode())
    elif mode == "status500":
        reply(conn, 500, b'{"error":{"message":"boom","type":"InternalServerError","param":null,"code":500}}')
    elif mode == "stall1":
        conn.sendall(SSE_HEAD + chunk(event(0)))
        try:
            while conn.recv(65536):  # until the gateway gives up on us
                pass
        except OSError:
            pass
        return False
    elif mode == "trickle":
        try:
            conn.sendall(b"HTTP/1.1 200 OK\r\n")
            while True:
                conn.sendall(b"x")
                time.sleep(0.5)
        except OSError:
            count("trickle_aborted")
        return False
    elif mode == "flood":
        try:
            conn.sendall(SSE_HEAD)
            ev = chunk(event(0) * 64)
            for _ in range((256 << 20) // len(ev)):
                conn.sendall(ev)
            conn.sendall(chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n")
        except OSError:
            count("flood_aborted")
            return False
    elif mode.startswith("slow="):
        stream(conn, 20, float(mode[5:]))
    elif streaming:
        stream(conn, 4, 0)
    else:
        reply(conn, 200, json.dumps({"id": "c1", "object": "chat.completion", "model": MODEL,
                                     "choices": [{"index": 0, "message": {"role": "assistant",
                                                  "content": "ok"}, "finish_reason": "stop"}]}).encode())
    return True


def get(conn, path):
    if path == "/health":
        reply(conn, 200, b"{}")
    elif path == "/v1/models":
        reply(conn, 200, json.dumps({"object": "list", "data": [{"id": MODEL, "object": "model"}]}).encode())
    elif path == "/metrics":
        m = ('vllm:num_requests_running{model_name="%s"} 0\n'
             'vllm:num_requests_waiting{model_name="%s"} 0\n'
             'vllm:kv_cache_usage_perc{model_name="%s"} 0\n'
             'vllm:cache_config_info{block_size="16",num_gpu_blocks="1000"} 1\n') % (MODEL, MODEL, MODEL)
        reply(conn, 200, m.encode(), "text/plain")
    elif path == "/stats":
        with LOCK:
            reply(conn, 200, json.dumps(STATS).encode())
    else:
        reply(conn, 404, b"{}")


def serve(conn):
    buf = b""
    try:
        while True:
            while b"\r\n\r\n" not in buf:
                d = conn.recv(65536)
                if not d:
                    return
                buf += d
            head, buf = buf.split(b"\r\n\r\n", 1)
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {}
            for ln in lines[1:]:
                k, v = ln.split(":", 1)
                headers[k.strip().lower()] = v.strip()
            n = int(headers.get("content-length", "0"))
            while len(buf) < n:
                d = conn.recv(65536)
                if not d:
                    return
                buf += d
            body, buf = buf[:n], buf[n:]
            if method == "POST":
                if not post(conn, path, headers, body):
                    return
            else:
                get(conn, path)
    except OSError:
        pass
    finally:
        conn.close()


def main():
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", PORT))
    ls.listen(256)
    while True:
        c, _ = ls.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()


main()
