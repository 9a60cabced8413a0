#!/usr/bin/env python3
"""A bypass worker's side of the decision channel (user/bypass/decide.h),
written apart from the C codec so that the e2e test checks the wire format
too. Runs its steps on one connection, in order, and prints one JSON line
per answer or event:

  decide_client.py SOCKET STEP...
    decide ID BODYFILE [TENANT [SESSION [CHUNK]]]   DECIDE (+ BODY chunks
                                 of CHUNK bytes, 32768 by default), then
                                 waits for its ANSWER and prints it
    send ID BODYFILE             DECIDE + BODY without waiting
    answer                       waits for one ANSWER and prints it
    done ID SLOT OUTCOME [HTTP_STATUS [BYTES_OUT [TTFT_US]]]   DONE (SLOT
                                 "auto": the slot ID's ANSWER named)
    reqs ID SLOT REQUESTS [UNFRAMED]   REQS (version 2): the flow's later
                                 requests so far, and why framing stopped
                                 (a name of decide_unframed_name; SLOT
                                 "auto" as for done)
    v1                           speaks version 1 from here on (a worker
                                 from before REQS; use it first)
    v3                           speaks version 3 from here on (the
                                 default is 2, a worker from before the
                                 hand-up flag; use it first)
    handup                       version 3, and every DECIDE from here on
                                 says the worker can hand up (flag 1); an
                                 ANSWER HANDUP prints status "handup" and
                                 err its cause
    raw HEX                      one packet as given
    hold SECONDS                 keeps the connection open, idle
    closed                       succeeds once kvgated closed the
                                 connection (3 s at most)
Exit status 0, or 1 when a step could not be done."""
import json
import socket
import struct
import sys
import time

VERSION = 2
FLAGS = 0          # DECIDE's flags byte (version 3): 1 = the worker can hand up
STATUS_HANDUP = 1000
HANDUP_CAUSES = ("model", "session", "h2c")
T_DECIDE, T_BODY, T_ANSWER, T_DONE, T_REQS = 1, 2, 3, 4, 5
UNFRAMED = {"none": 0, "body": 1, "split_head": 2, "unparsable": 3, "out_of_order": 4,
            "too_many": 5, "first_flight": 6, "entry_lost": 7, "h2c": 8}
OUTCOMES = {"ok": 0, "client_abort": 1, "pod_error": 2, "timeout": 3, "shutdown": 4,
            "rejected": 5, "pod_down": 6}


def hdr(t, mid):
    return struct.pack("<BBHI", VERSION, t, 0, mid)


def decide_packets(mid, body, tenant=b"", session=b"", chunk=32768):
    first = body[:chunk]
    yield (hdr(T_DECIDE, mid) +
           struct.pack("<QIBBBB", len(body), len(first), 1, len(tenant), len(session), FLAGS) +
           tenant + session + first)
    off = len(first)
    while off < len(body):
        c = body[off:off + chunk]
        yield hdr(T_BODY, mid) + struct.pack("<QII", off, len(c), 0) + c
        off += len(c)


def read_answer(s, timeout=10):
    s.settimeout(timeout)
    p = s.recv(65536)
    if not p:
        raise EOFError("kvgated closed the connection")
    v, t, _, mid = struct.unpack_from("<BBHI", p)
    if v != VERSION or t != T_ANSWER:
        raise ValueError("not an ANSWER: %r" % p[:16])
    status, port, slot = struct.unpack_from("<HHI", p, 8)
    addr = ".".join(str(b) for b in p[16:20])
    elen = p[20]
    if len(p) != 24 + elen:
        raise ValueError("ANSWER of %d bytes, err_len %d" % (len(p), elen))
    err = p[24:24 + elen].decode()
    if status == STATUS_HANDUP:  # version 3 only, to a DECIDE with the flag; no pod
        if v < 3 or not FLAGS or err not in HANDUP_CAUSES or port or slot or addr != "0.0.0.0":
            raise ValueError("a HANDUP that breaks the contract: %r" % p)
        status = "handup"
    return {"id": mid, "status": status, "slot": slot, "addr": addr, "port": port,
            "err": err}


def main():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.connect(sys.argv[1])
    args = sys.argv[2:]
    slots = {}
    i = 0
    while i < len(args):
        op = args[i]
        i += 1
        if op in ("decide", "send"):
            n = 2
            mid, path = int(args[i]), args[i + 1]
            tenant = session = b""
            chunk = 32768
            if op == "decide":
                rest = []
                while i + n < len(args) and len(rest) < 3 and args[i + n] not in (
                        "decide", "send", "answer", "done", "reqs", "v1", "v3", "handup",
                        "raw", "hold", "closed"):
                    rest.append(args[i + n])
                    n += 1
                if len(rest) > 0:
                    tenant = rest[0].encode()
                if len(rest) > 1:
                    session = rest[1].encode()
                if len(rest) > 2:
                    chunk = int(rest[2])
            body = open(path, "rb").read()
            for pkt in decide_packets(mid, body, tenant, session, chunk):
                s.send(pkt)
            i += n
            if op == "decide":
                a = read_answer(s)
                slots[a["id"]] = a["slot"]
                print(json.dumps(a), flush=True)
        elif op == "answer":
            a = read_answer(s)
            slots[a["id"]] = a["slot"]
            print(json.dumps(a), flush=True)
        elif op == "done":
            mid, outcome = int(args[i]), OUTCOMES[args[i + 2]]
            slot = slots.get(mid, 0) if args[i + 1] == "auto" else int(args[i + 1])
            i += 3
            extra = []
            while i < len(args) and len(extra) < 3 and args[i].isdigit():
                extra.append(int(args[i]))
                i += 1
            extra += [0] * (3 - len(extra))
            st, bout, ttft = extra
            s.send(hdr(T_DONE, mid) + struct.pack("<IHBBQQII", slot, st, outcome, 0, 0, bout,
                                                  ttft, 0))
        elif op == "reqs":
            mid, n = int(args[i]), int(args[i + 2])
            slot = slots.get(mid, 0) if args[i + 1] == "auto" else int(args[i + 1])
            i += 3
            uf = 0
            if i < len(args) and args[i] in UNFRAMED:
                uf = UNFRAMED[args[i]]
                i += 1
            s.send(hdr(T_REQS, mid) + struct.pack("<IIB7x", slot, n, uf))
        elif op in ("v1", "v3", "handup"):
            global VERSION, FLAGS
            VERSION = 1 if op == "v1" else 3
            FLAGS = 1 if op == "handup" else 0
        elif op == "raw":
            s.send(bytes.fromhex(args[i]))
            i += 1
        elif op == "hold":
            time.sleep(float(args[i]))
            i += 1
        elif op == "closed":
            s.settimeout(3)
            try:
                while s.recv(65536):
                    pass
            except socket.timeout:
                print(json.dumps({"closed": False}), flush=True)
                return 1
            except ConnectionResetError:
                pass
            print(json.dumps({"closed": True}), flush=True)
        else:
            print("unknown step %r" % op, file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (OSError, ValueError, EOFError) as e:
        print(json.dumps({"error": str(e)}), flush=True)
        sys.exit(1)
