#!/usr/bin/env python3
"""A bypass worker's hand-up, spoken from Python (tests/e2e/gateway_adopt.sh).

kvg-bypassd hands up a connection as a kernel socket whose first flight sits
unread in its receive queue (TCP_REPAIR restores it there). Here the same
thing comes from a plain loopback connection: the client sends its first
request, nobody reads it, and the server side's descriptor goes to kvgated's
bypass.adopt_socket with the 32-byte HANDUP message (user/bypass/adopt.h,
encoded here on its own). The client then reads kvgated's answers.

  adopt_client.py SOCK serve CAUSE N MODEL   hand up one connection whose first
        request is GET /v1/models; then N-1 more requests on it (chat
        completions for MODEL); prints one JSON line per answer
  adopt_client.py SOCK many K MODEL          K connections handed up over one
        channel connection, each asked GET /v1/models; prints {"ok": n}
  adopt_client.py SOCK hostile KIND          one bad hand-up (nofd, twofds,
        unixfd, udpfd, listenfd, mismatch, short, badversion, badcause);
        prints whether the clients of the descriptors sent were closed, and
        whether kvgated closed the channel
"""
import json
import socket
import struct
import sys
import time

CAUSES = ["", "malformed", "not_inference", "http10", "no_length", "chunked", "upgrade",
          "expect", "head_too_large", "body_too_large", "h2_protocol", "h2_reset",
          "over_budget", "quiet"]


def handup_msg(cause, server, restored=0, version=1, port_delta=0):
    la, lp = server.getsockname()
    ca, cp = server.getpeername()
    return struct.pack("<BBBBI4s4sHH12x", version, 1, cause, 0, restored, socket.inet_aton(ca),
                       socket.inet_aton(la), cp + port_delta, lp)


def pair():
    """(listener, client, server): a loopback connection."""
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(8)
    cl = socket.create_connection(ls.getsockname(), timeout=10)
    sv, _ = ls.accept()
    return ls, cl, sv


def channel(path):
    ch = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    ch.connect(path)
    return ch


def read_answer(s):
    """One HTTP/1.1 answer: (status, body bytes)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = s.recv(65536)
        if not d:
            raise EOFError("closed before the head: %r" % buf[:200])
        buf += d
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    hdrs = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    if "content-length" in hdrs:
        n = int(hdrs["content-length"])
        while len(rest) < n:
            d = s.recv(65536)
            if not d:
                raise EOFError("closed in the body")
            rest += d
        return status, rest[:n]
    if hdrs.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while True:
            while b"\r\n" not in rest:
                rest += s.recv(65536)
            size_line, rest = rest.split(b"\r\n", 1)
            size = int(size_line.split(b";")[0], 16)
            while len(rest) < size + 2:
                d = s.recv(65536)
                if not d:
                    raise EOFError("closed in a chunk")
                rest += d
            body += rest[:size]
            rest = rest[size + 2:]
            if size == 0:
                return status, body
    while True:  # until the close
        d = s.recv(65536)
        if not d:
            return status, rest
        rest += d


def closed_soon(s, secs=3.0):
    """Does the peer close (EOF or reset) s within secs?"""
    s.settimeout(secs)
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def serve(path, cause, n, model):
    ls, cl, sv = pair()
    first = b"GET /v1/models HTTP/1.1\r\nHost: gw\r\nuser-agent: handup-test\r\n\r\n"
    cl.sendall(first)  # unread: the restored first flight
    time.sleep(0.05)
    ch = channel(path)
    socket.send_fds(ch, [handup_msg(CAUSES.index(cause), sv, len(first))], [sv.fileno()])
    sv.close()  # kvgated's now
    ls.close()
    st, body = read_answer(cl)
    ids = [m.get("id") for m in json.loads(body).get("data", [])] if st == 200 else []
    print(json.dumps({"req": 1, "status": st, "models": ids}), flush=True)
    for i in range(2, n + 1):
        b = json.dumps({"model": model, "max_tokens": 2,
                        "messages": [{"role": "user", "content": "hand-up request %d" % i}]}).encode()
        cl.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\ncontent-type: application/json\r\n"
                   b"content-length: %d\r\n\r\n" % len(b) + b)
        st, body = read_answer(cl)
        obj = json.loads(body) if body.startswith(b"{") else {}
        print(json.dumps({"req": i, "status": st, "object": obj.get("object")}), flush=True)
    cl.close()
    ch.close()


def many(path, k, model):
    ch = channel(path)
    conns = []
    for _ in range(k):
        ls, cl, sv = pair()
        cl.sendall(b"GET /v1/models HTTP/1.1\r\nHost: gw\r\n\r\n")
        socket.send_fds(ch, [handup_msg(CAUSES.index("not_inference"), sv, 36)], [sv.fileno()])
        sv.close()
        ls.close()
        conns.append(cl)
    ok = 0
    for cl in conns:
        try:
            st, _ = read_answer(cl)
            ok += st == 200
        except (EOFError, OSError):
            pass
        cl.close()
    print(json.dumps({"ok": ok}), flush=True)
    ch.close()


def hostile(path, kind):
    ch = channel(path)
    clients = []
    cause = CAUSES.index("not_inference")
    if kind == "nofd":
        ls, cl, sv = pair()
        clients.append(cl)
        ch.send(handup_msg(cause, sv))
        sv.close()
    elif kind == "twofds":
        ls, cl, sv = pair()
        ls2, cl2, sv2 = pair()
        clients += [cl, cl2]
        socket.send_fds(ch, [handup_msg(cause, sv)], [sv.fileno(), sv2.fileno()])
        sv.close(), sv2.close()
    elif kind in ("unixfd", "udpfd", "listenfd"):
        ls, cl, sv = pair()  # the message names a real connection, the descriptor is another thing
        if kind == "unixfd":
            other, peer = socket.socketpair()
            clients.append(peer)
        elif kind == "udpfd":
            other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            other.bind(("127.0.0.1", 0))
        else:
            other = socket.socket()
            other.bind(("127.0.0.1", 0))
            other.listen(1)
        socket.send_fds(ch, [handup_msg(cause, sv)], [other.fileno()])
        other.close()
        sv.close()
    elif kind == "mismatch":
        ls, cl, sv = pair()
        clients.append(cl)
        socket.send_fds(ch, [handup_msg(cause, sv, port_delta=1)], [sv.fileno()])
        sv.close()
    elif kind in ("short", "badversion", "badcause"):
        ls, cl, sv = pair()
        clients.append(cl)
        if kind == "short":
            m = handup_msg(cause, sv)[:20]
        elif kind == "badversion":
            m = handup_msg(cause, sv, version=9)
        else:
            m = handup_msg(200, sv)
        socket.send_fds(ch, [m], [sv.fileno()])
        sv.close()
    else:
        sys.exit("unknown kind " + kind)
    res = {"kind": kind, "clients_closed": all(closed_soon(c) for c in clients)}
    res["channel_closed"] = closed_soon(ch, 1.0)
    print(json.dumps(res), flush=True)


def main():
    path, cmd = sys.argv[1], sys.argv[2]
    if cmd == "serve":
        serve(path, sys.argv[3], int(sys.argv[4]), sys.argv[5])
    elif cmd == "many":
        many(path, int(sys.argv[3]), sys.argv[4])
    elif cmd == "hostile":
        hostile(path, sys.argv[3])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
