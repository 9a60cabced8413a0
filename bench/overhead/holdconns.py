#!/usr/bin/env python3
"""Opens N keep-alive connections to HOST:PORT, sends one request on each
(the body in BODY_FILE, POST /v1/chat/completions), reads the whole answer,
then holds every connection idle until stdin closes or a line arrives.

usage: holdconns.py HOST PORT N BODY_FILE
Prints one JSON line once all answers are in (or the 60 s set-up deadline
passed): {"open": n, "ok": n, "failed": n, "statuses": {...}, "setup_s": s}
then waits on stdin; on EOF or a line it closes everything and exits.
Connections are opened in waves of 256 so the listener's backlog never
overflows. Needs `ulimit -n` above N.
"""
import json
import select
import socket
import sys
import time


def main():
    host, port, n, body_file = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    body = open(body_file, "rb").read()
    req = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: %s:%d\r\n"
           b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n"
           % (host.encode(), port, len(body))) + body
    ep = select.epoll()
    conns = {}   # fd -> [sock, state, outbuf, inbuf]
    done = {}    # fd -> sock (answered, held)
    statuses, failed = {}, 0
    t0 = time.monotonic()
    deadline = t0 + 60
    opened = 0

    def fail(fd):
        nonlocal failed
        failed += 1
        s = conns.pop(fd)[0]
        ep.unregister(fd)
        s.close()

    def complete(inbuf):
        """Length of a complete response in inbuf, or 0."""
        h = inbuf.find(b"\r\n\r\n")
        if h < 0:
            return 0
        head = inbuf[:h].decode("latin-1").lower()
        clen, chunked = None, False
        for line in head.split("\r\n")[1:]:
            k, _, v = line.partition(":")
            if k.strip() == "content-length":
                clen = int(v)
            elif k.strip() == "transfer-encoding" and "chunked" in v:
                chunked = True
        if clen is not None:
            return h + 4 + clen if len(inbuf) >= h + 4 + clen else 0
        if chunked:
            end = inbuf.find(b"\r\n0\r\n\r\n", h)
            return end + 7 if end >= 0 else 0
        return 0

    while (opened < n or conns) and time.monotonic() < deadline:
        # keep at most 256 connections in set-up at a time
        while opened < n and len(conns) < 256:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                s.connect((host, port))
            except BlockingIOError:
                pass
            except OSError:
                failed += 1
                s.close()
                opened += 1
                continue
            conns[s.fileno()] = [s, "send", req, b""]
            ep.register(s.fileno(), select.EPOLLOUT)
            opened += 1
        for fd, ev in ep.poll(0.5):
            c = conns.get(fd)
            if c is None:
                continue
            s = c[0]
            if c[1] == "send":
                if ev & (select.EPOLLERR | select.EPOLLHUP):
                    fail(fd)
                    continue
                try:
                    k = s.send(c[2])
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    fail(fd)
                    continue
                c[2] = c[2][k:]
                if not c[2]:
                    c[1] = "recv"
                    ep.modify(fd, select.EPOLLIN)
            else:
                try:
                    d = s.recv(65536)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    fail(fd)
                    continue
                if not d:
                    fail(fd)
                    continue
                c[3] += d
                if complete(c[3]):
                    st = c[3][9:12].decode()
                    statuses[st] = statuses.get(st, 0) + 1
                    ep.unregister(fd)
                    done[fd] = s
                    del conns[fd]
    for fd in list(conns):
        fail(fd)
    print(json.dumps({"open": len(done), "ok": statuses.get("200", 0), "failed": failed,
                      "statuses": statuses, "setup_s": round(time.monotonic() - t0, 2)}),
          flush=True)
    sys.stdin.readline()
    for s in done.values():
        s.close()


if __name__ == "__main__":
    main()
