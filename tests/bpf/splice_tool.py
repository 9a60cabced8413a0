#!/usr/bin/env python3
"""splice_tool: the client and the byte-counting pod of tests/bpf/test_splice.sh.

  splice_tool.py countpod PORT
      a model-server stand-in (HTTP/1.1 keep-alive, one thread per
      connection): GET /health, /v1/models (model "countpod"), /metrics
      (vLLM names, idle pod); POST /v1/completions answers
      {"bytes": N, "sha256": H} for the body it read, whatever it is.
      POST /admin/stall {"after": N} makes the next body read stop after N
      bytes until POST /admin/release. A request with "x-idle-close: S"
      makes its connection close once idle for S seconds. It records the
      method and target of every request with an x-session-id header (the
      test clients' requests, not kvgated's probes) and of every request
      it could not parse ("BAD <request line>"): GET /admin/seen lists them. POST /admin/faults {"fail_rate": F}
      makes completions answer 500 while F >= 1 (a pod's admin endpoint
      that must never be reached through the gateway). A completion with
      "x-answer-bytes: N" answers N bytes (with "x-answer-chunked: 1" in
      64 KiB chunks, with an extension and a trailer) and their sha256 in
      x-sha256; with "x-bad-answer: 1" an answer with a field line that has
      no colon; "x-answer-delay: S" answers S seconds late.
  splice_tool.py session PORT SESSION STEPS...
      one keep-alive connection; each step prints one JSON line:
        req:MODEL:PROMPT_BYTES:STREAM[:MAX_TOKENS]  a completion request
        chunked:MODEL:PROMPT_BYTES  the same with a chunked body
        get:PATH                    a GET
        upload:BYTES[:shut|close|idle=S]  POST a BYTES-long body (shut:
                             shutdown(SHUT_WR) right after it; close: "connection:
                             close"; idle=S: x-idle-close), read the answer
        pipe:MODEL:PROMPT_BYTES:N  N requests in one send, then N answers
        send:EXPR            sends what the Python expression EXPR makes: bytes,
                             or a list of bytes (each its own send, TCP_NODELAY)
                             and floats (a pause of that many seconds); helpers:
                             req(METHOD, PATH, body=b"" or N, headers=[...],
                             version="HTTP/1.1", cl=True, session=True),
                             body(N) (a count-pod body of N bytes), S (the session)
        read:N               reads N answers: {"status": [...], "dest": [...],
                             "json": [...], "bytes": [...], "sha_ok": [...]}
                             ("eof" when the connection ended first)
        run:SHELL            runs a shell command, prints its output as "out"
        eof                  the server closed the connection
        reset                closes the connection with a reset (SO_LINGER 0)
        post:URL:JSON        an HTTP POST on another connection (admin API)
        sleep:SECONDS
  splice_tool.py direct PORT MODEL PROMPT_BYTES STREAM MAX_TOKENS
      one request straight to a pod (the unspliced reference), one JSON line.
"""
import hashlib
import json
import socket
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def prompt_of(n):
    words = "the quick brown fox jumps over the lazy dog ".encode()
    return (words * (n // len(words) + 1))[:n].decode()


# ---- the client ----

class Conn:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port))
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def fill(self):
        d = self.s.recv(1 << 20)
        if not d:
            raise EOFError("connection closed")
        self.buf += d

    def take(self, n):
        while len(self.buf) < n:
            self.fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def line(self):
        while b"\r\n" not in self.buf:
            self.fill()
        out, self.buf = self.buf.split(b"\r\n", 1)
        return out

    def response(self):
        """(status, headers dict lower-case, body bytes); 1xx answers skipped"""
        while True:
            r = self.response1()
            if r[0] >= 200:
                return r

    def response1(self):
        while b"\r\n\r\n" not in self.buf:
            self.fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        hdrs = {}
        for l in lines[1:]:
            k, v = l.split(":", 1)
            hdrs[k.strip().lower()] = v.strip()
        if status < 200:
            return status, hdrs, b""
        if "content-length" in hdrs:
            return status, hdrs, self.take(int(hdrs["content-length"]))
        if hdrs.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while True:
                sz = int(self.line().split(b";")[0], 16)
                if sz == 0:
                    while self.line() != b"":
                        pass
                    return status, hdrs, body
                body += self.take(sz)
                self.take(2)
        while True:  # until close
            try:
                self.fill()
            except EOFError:
                body, self.buf = self.buf, b""
                return status, hdrs, body


def sse_texts(body):
    """the text of each data event (completions and chat), in order"""
    out = []
    for ev in body.decode().split("\n\n"):
        for line in ev.split("\n"):
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            j = json.loads(line[6:])
            for c in j.get("choices", []):
                t = c.get("text")
                if t is None:
                    t = (c.get("delta") or {}).get("content")
                if t:
                    out.append(t)
    return out


def summary(status, hdrs, body, stream):
    r = {"status": status, "dest": hdrs.get("x-gateway-destination-endpoint", ""),
         "bytes": len(body), "sha256": hashlib.sha256(body).hexdigest()}
    try:
        if stream:
            r["tokens"] = sse_texts(body)
        else:
            j = json.loads(body)
            r["json"] = j
            if "choices" in j:
                r["tokens"] = [j["choices"][0].get("text") or
                               (j["choices"][0].get("message") or {}).get("content")]
    except Exception as e:  # an answer we cannot parse is reported, not fatal
        r["parse_error"] = str(e)
    return r


def request_bytes(model, nbytes, stream, max_tokens, session):
    body = json.dumps({"model": model, "prompt": prompt_of(nbytes), "max_tokens": max_tokens,
                       "stream": stream, "seed": 7, "ignore_eos": True}).encode()
    head = ("POST /v1/completions HTTP/1.1\r\nHost: gw\r\ncontent-type: application/json\r\n"
            + (f"x-session-id: {session}\r\n" if session else "")
            + f"content-length: {len(body)}\r\n\r\n").encode()
    return head + body


def cbody(n):
    """a valid completion body for the count pod, exactly n bytes"""
    pre = b'{"model":"countpod","max_tokens":1,"prompt":"'
    post = b'"}'
    assert n >= len(pre) + len(post)
    return pre + (b"0123456789abcdef" * (n // 16 + 1))[:n - len(pre) - len(post)] + post


def req(method="POST", path="/v1/completions", body_=b"", headers=(), version="HTTP/1.1",
        cl=True, session=True, sess=None):
    if isinstance(body_, int):
        body_ = cbody(body_)
    h = f"{method} {path} {version}\r\nHost: gw\r\ncontent-type: application/json\r\n"
    if session and sess:
        h += f"x-session-id: {sess}\r\n"
    for x in headers:
        h += x + "\r\n"
    if cl:
        h += f"content-length: {len(body_)}\r\n"
    return h.encode() + b"\r\n" + body_


def session(port, sess, steps):
    c = Conn(port)
    for st in steps:
        kind, _, arg = st.partition(":")
        t0 = time.time()
        if kind == "req":
            a = arg.split(":")
            model, n, stream = a[0], int(a[1]), a[2] == "1"
            mt = int(a[3]) if len(a) > 3 else 8
            c.s.sendall(request_bytes(model, n, stream, mt, sess))
            r = summary(*c.response(), stream)
        elif kind == "chunked":  # chunked:MODEL:PROMPT_BYTES, a chunked request body
            model, n = arg.split(":")[0], int(arg.split(":")[1])
            body = json.dumps({"model": model, "prompt": prompt_of(n), "max_tokens": 8,
                               "seed": 7, "ignore_eos": True}).encode()
            head = ("POST /v1/completions HTTP/1.1\r\nHost: gw\r\ncontent-type: application/json\r\n"
                    f"x-session-id: {sess}\r\ntransfer-encoding: chunked\r\n\r\n").encode()
            half = len(body) // 2
            c.s.sendall(head + b"%x\r\n" % half + body[:half] + b"\r\n" +
                        b"%x\r\n" % (len(body) - half) + body[half:] + b"\r\n0\r\n\r\n")
            r = summary(*c.response(), False)
        elif kind == "get":  # get:PATH
            c.s.sendall(f"GET {arg} HTTP/1.1\r\nHost: gw\r\nx-session-id: {sess}\r\n\r\n".encode())
            r = summary(*c.response(), False)
        elif kind == "pipe":  # pipe:MODEL:PROMPT_BYTES:N, N requests in one send
            a = arg.split(":")
            model, nb, k = a[0], int(a[1]), int(a[2])
            c.s.sendall(b"".join(request_bytes(model, nb + i, False, 8, sess) for i in range(k)))
            rs = [summary(*c.response(), False) for _ in range(k)]
            r = {"status": [x["status"] for x in rs], "dest": [x["dest"] for x in rs],
                 "tokens": [x.get("tokens") for x in rs]}
        elif kind == "send":  # send:EXPR, see the top
            env = {"S": sess, "body": cbody,
                   "req": lambda *a, **k: req(*a, **dict(k, sess=sess))}
            parts = eval(arg, env)  # the test's own expressions
            for p in parts if isinstance(parts, list) else [parts]:
                if isinstance(p, (int, float)):
                    time.sleep(p)
                else:
                    c.s.sendall(p)
            r = {"sent": True}
        elif kind == "read":  # read:N answers
            r = {"status": [], "dest": [], "json": [], "bytes": [], "sha_ok": []}
            c.s.settimeout(20)
            try:
                for _ in range(int(arg)):
                    sc, hd, bd = c.response()
                    r["status"].append(sc)
                    r["dest"].append(hd.get("x-gateway-destination-endpoint", ""))
                    r["bytes"].append(len(bd))
                    if "x-sha256" in hd:  # the count pod's big answers say what they sent
                        r["sha_ok"].append(hashlib.sha256(bd).hexdigest() == hd["x-sha256"])
                    try:
                        r["json"].append(json.loads(bd))
                    except Exception:
                        r["json"].append(None)
            except (EOFError, socket.timeout, OSError, ValueError) as e:
                r["eof"] = True
                r["error"] = str(e)
        elif kind == "run":  # run:SHELL
            import subprocess
            r = {"out": subprocess.run(arg, shell=True, capture_output=True, text=True).stdout.strip()}
        elif kind == "eof":  # the server closed: the next read is the end
            c.s.settimeout(5)
            try:
                if not c.buf:
                    c.fill()
                r = {"eof": False}
            except EOFError:
                r = {"eof": True}
            except socket.timeout:
                r = {"eof": False, "timeout": True}
        elif kind == "upload":
            a = arg.split(":")
            n = int(a[0])
            close = len(a) > 1 and a[1] == "close"
            idle = a[1][5:] if len(a) > 1 and a[1].startswith("idle=") else None
            head = ("POST /v1/completions HTTP/1.1\r\nHost: gw\r\ncontent-type: application/json\r\n"
                    + ("connection: close\r\n" if close else "")
                    + (f"x-idle-close: {idle}\r\n" if idle else "")
                    + f"x-session-id: {sess}\r\ncontent-length: {n}\r\n\r\n").encode()
            # a valid completion body of exactly n bytes (kvgated relays only
            # what it can route; the count pod does not care)
            pre = b'{"model":"countpod","max_tokens":1,"prompt":"'
            post = b'"}'
            assert n >= len(pre) + len(post)
            h = hashlib.sha256()
            c.s.sendall(head + pre)
            h.update(pre)
            chunk = (b"0123456789abcdef" * 65536)  # 1 MiB
            left = n - len(pre) - len(post)
            while left:
                p = chunk[:min(left, len(chunk))]
                c.s.sendall(p)
                h.update(p)
                left -= len(p)
            c.s.sendall(post)
            h.update(post)
            if len(a) > 1 and a[1] == "shut":
                c.s.shutdown(socket.SHUT_WR)
            r = summary(*c.response(), False)
            r["sent_sha256"] = h.hexdigest()
        elif kind == "post":
            url, _, js = arg.partition("|")
            q = urllib.request.Request(url, data=js.encode(), method="POST")
            try:
                with urllib.request.urlopen(q, timeout=5) as resp:
                    r = {"status": resp.status}
            except urllib.error.HTTPError as e:
                r = {"status": e.code}
        elif kind == "reset":  # a client that vanishes: RST, not FIN
            import struct
            c.s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            c.s.close()
            r = {}
        elif kind == "sleep":
            time.sleep(float(arg))
            r = {}
        else:
            raise SystemExit(f"unknown step {st}")
        r["step"] = st[:60]
        r["secs"] = round(time.time() - t0, 3)
        print(json.dumps(r), flush=True)


def direct(port, model, n, stream, mt):
    c = Conn(port)
    c.s.sendall(request_bytes(model, n, stream, mt, None))
    print(json.dumps(summary(*c.response(), stream)))


# ---- the counting pod ----

STALL = {"after": None}
RELEASE = threading.Event()
SEEN = []  # "METHOD TARGET" of every request read (list.append is atomic)
FAULTS = {"fail_rate": 0}


class Pod(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    idle = None  # per connection: close it when idle this long (vLLM's keep-alive timeout)

    def handle_one_request(self):
        self.connection.settimeout(self.idle)  # a timeout ends the connection
        super().handle_one_request()

    def parse_request(self):
        ok = super().parse_request()
        # the test's clients send x-session-id; kvgated's probes do not
        if not ok:
            SEEN.append("BAD " + repr(self.requestline)[1:-1])
        elif self.headers.get("x-session-id"):
            SEEN.append(f"{self.command} {self.path}")
        return ok

    def __getattr__(self, name):  # do_PUT, do_DELETE, ...: answered (and recorded)
        if name.startswith("do_"):
            return lambda: self.send(405, b"{}")
        raise AttributeError(name)

    def send(self, code, body, ctype="application/json"):
        self.send_response(code)
        self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/health":
            self.send(200, b"{}")
        elif self.path == "/admin/seen":
            self.send(200, json.dumps(SEEN).encode())
        elif self.path == "/admin/faults":
            self.send(200, json.dumps(FAULTS).encode())
        elif self.path == "/v1/models":
            self.send(200, b'{"object":"list","data":[{"id":"countpod","object":"model"}]}')
        elif self.path == "/metrics":
            m = ('vllm:num_requests_running{model_name="countpod"} 0\n'
                 'vllm:num_requests_waiting{model_name="countpod"} 0\n'
                 'vllm:kv_cache_usage_perc{model_name="countpod"} 0\n'
                 'vllm:cache_config_info{block_size="16",num_gpu_blocks="1000"} 1\n')
            self.send(200, m.encode(), "text/plain")
        else:
            self.send(404, b"{}")

    def do_POST(self):
        n = int(self.headers.get("content-length", "0"))
        if self.path == "/admin/stall":
            STALL["after"] = json.loads(self.rfile.read(n) or b"{}").get("after", 0)
            RELEASE.clear()
            return self.send(200, b"{}")
        if self.path == "/admin/release":
            self.rfile.read(n)
            STALL["after"] = None
            RELEASE.set()
            return self.send(200, b"{}")
        if self.path == "/admin/faults":
            FAULTS.update(json.loads(self.rfile.read(n) or b"{}"))
            return self.send(200, json.dumps(FAULTS).encode())
        if self.headers.get("x-idle-close"):
            self.idle = float(self.headers["x-idle-close"])
        h = hashlib.sha256()
        got = 0
        stall_at = STALL["after"]
        while got < n:
            if stall_at is not None and got >= stall_at:
                RELEASE.wait()
                stall_at = None
            want = min(n - got, 1 << 16)
            if stall_at is not None:
                want = min(want, max(1, stall_at - got))
            d = self.rfile.read(want)
            if not d:
                break
            h.update(d)
            got += len(d)
        if FAULTS.get("fail_rate", 0) >= 1:
            return self.send(500, b'{"error":{"message":"countpod: injected failure"}}')
        if self.headers.get("x-answer-delay"):  # a slow model
            time.sleep(float(self.headers["x-answer-delay"]))
        if self.headers.get("x-bad-answer"):  # a field line without a colon
            self.wfile.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nno colon here\r\n\r\n{}")
            return
        if self.headers.get("x-answer-bytes"):  # a big answer (chunked: in 64 KiB chunks)
            return self.big_answer(int(self.headers["x-answer-bytes"]),
                                   self.headers.get("x-answer-chunked") == "1")
        self.send(200, json.dumps({"bytes": got, "sha256": h.hexdigest()}).encode())

    def big_answer(self, n, chunked):
        body = (b"answer bytes 0123456789abcdef\n" * (n // 30 + 1))[:n]
        self.send_response(200)
        self.send_header("content-type", "application/octet-stream")
        self.send_header("x-sha256", hashlib.sha256(body).hexdigest())
        if not chunked:
            self.send_header("content-length", str(n))
            self.end_headers()
            self.wfile.write(body)
            return
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        for i in range(0, n, 65536):
            part = body[i:i + 65536]
            self.wfile.write(b"%x;ext=1\r\n" % len(part) + part + b"\r\n")
        self.wfile.write(b"0\r\nx-trailer: 1\r\n\r\n")


def countpod(port):
    ThreadingHTTPServer.daemon_threads = True
    srv = ThreadingHTTPServer(("127.0.0.1", port), Pod)
    srv.serve_forever()


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "countpod":
        countpod(int(sys.argv[2]))
    elif cmd == "session":
        session(int(sys.argv[2]), sys.argv[3], sys.argv[4:])
    elif cmd == "direct":
        direct(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5] == "1",
               int(sys.argv[6]))
    else:
        raise SystemExit(__doc__)
