#!/usr/bin/env python3
"""Writes the seed inputs of tests/fuzz/fuzz_h2.c into tests/fuzz/corpus/h2/.

Each seed is one flag byte (see fuzz_h2.c) and what a client sends: valid
h2c exchanges (preface, SETTINGS, HEADERS with HPACK literals and indexed
fields, DATA, the control frames), the same as "framed" records, and
HTTP/1.1 requests (Upgrade: h2c among them). `make fuzz` grows the corpus
from these; rerun this only to add hand-written seeds (files are named
seed_*, so a later -merge keeps their names when it keeps them).
"""
import json
import os
import struct
import sys

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
F_PREFACE, F_FRAMED, F_FIN, F_TIMEOUTS, F_SMALL = 0x01, 0x02, 0x04, 0x08, 0x80
DATA, HEADERS, PRIORITY, RST, SETTINGS, PUSH, PING, GOAWAY, WUPD, CONT = range(10)
END_STREAM, END_HEADERS, PADDED, PRIO, ACK = 0x1, 0x4, 0x8, 0x20, 0x1


def hint(v, prefix_bits, first=0):
    """HPACK integer with an N-bit prefix; first carries the pattern bits."""
    m = (1 << prefix_bits) - 1
    if v < m:
        return bytes([first | v])
    out = [first | m]
    v -= m
    while v >= 128:
        out.append(v % 128 + 128)
        v //= 128
    out.append(v)
    return bytes(out)


def hstr(s):
    b = s.encode() if isinstance(s, str) else s
    return hint(len(b), 7) + b


def lit(name, value):
    """Literal header field without indexing, new name."""
    return b"\x00" + hstr(name) + hstr(value)


def lit_inc(name, value):
    """Literal with incremental indexing, new name (enters the table)."""
    return b"\x40" + hstr(name) + hstr(value)


def idx(i):
    return hint(i, 7, 0x80)


def frame(ftype, flags, sid, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", sid) + payload


def rec(ftype, flags, sid, payload=b""):
    """The same frame as a framed-mode record of fuzz_h2.c."""
    return struct.pack(">H", len(payload)) + bytes([ftype, flags, sid]) + payload


def settings(*pairs):
    return b"".join(struct.pack(">HI", k, v) for k, v in pairs)


CHAT = json.dumps({"model": "meta-llama/Llama-3.1-8B-Instruct", "stream": True,
                   "messages": [{"role": "system", "content": "You are helpful."},
                                {"role": "user", "content": "Hello"}]},
                  separators=(",", ":")).encode()
COMPL = json.dumps({"model": "m", "prompt": "once upon a time", "max_tokens": 4},
                   separators=(",", ":")).encode()


def req_block(method, path, extra=()):
    b = b""
    b += idx(2) if method == "GET" else idx(3) if method == "POST" else lit(":method", method)
    b += idx(6)                                  # :scheme http
    b += b"\x04" + hstr(path) if path != "/" else idx(4)  # :path, indexed name
    b += lit(":authority", "gw")
    for n, v in extra:
        b += lit(n, v)
    return b


def h2(frames, flags=F_PREFACE):
    return bytes([flags]) + b"".join(frame(*f) for f in frames)


def framed(frames, flags=F_PREFACE | F_FRAMED):
    return bytes([flags]) + b"".join(rec(*f) for f in frames)


def seeds():
    s = {}
    hello = (SETTINGS, 0, 0, settings((3, 100), (4, 65535)))
    s["seed_h2_get_health"] = [hello, (HEADERS, END_HEADERS | END_STREAM, 1, req_block("GET", "/health"))]
    s["seed_h2_get_models"] = [hello, (HEADERS, END_HEADERS | END_STREAM, 1, req_block("GET", "/v1/models"))]
    s["seed_h2_post_chat"] = [
        hello,
        (HEADERS, END_HEADERS, 1, req_block("POST", "/v1/chat/completions",
                                            [("content-type", "application/json"),
                                             ("content-length", str(len(CHAT))),
                                             ("x-session-id", "s1")])),
        (DATA, 0, 1, CHAT[:20]),
        (DATA, END_STREAM, 1, CHAT[20:]),
    ]
    s["seed_h2_three_streams"] = [
        hello,
        (HEADERS, END_HEADERS, 1, req_block("POST", "/v1/completions",
                                            [("content-type", "application/json")])),
        (HEADERS, END_HEADERS | END_STREAM, 3, req_block("GET", "/nope")),
        (DATA, END_STREAM, 1, COMPL),
        (HEADERS, END_HEADERS | END_STREAM, 5, req_block("DELETE", "/health")),
        (SETTINGS, ACK, 0),
        (WUPD, 0, 0, struct.pack(">I", 1 << 20)),
    ]
    s["seed_h2_control"] = [
        hello,
        (PING, 0, 0, b"12345678"),
        (PRIORITY, 0, 1, struct.pack(">IB", 0, 15)),
        (HEADERS, PRIO | END_STREAM, 1, struct.pack(">IB", 0, 200) + req_block("GET", "/health")),
        (CONT, END_HEADERS, 1, lit("x-a", "b")),
        (RST, 0, 1, struct.pack(">I", 8)),
        (GOAWAY, 0, 0, struct.pack(">II", 1, 0)),
    ]
    s["seed_h2_padded_indexed"] = [
        hello,
        (HEADERS, END_HEADERS | PADDED, 1, b"\x03" + req_block(
            "POST", "/v1/chat/completions",
            []) + lit_inc("x-gateway-inference-fairness-id", "tenant-a") + b"\0\0\0"),
        (DATA, END_STREAM | PADDED, 1, b"\x02" + COMPL + b"\0\0"),
        (HEADERS, END_HEADERS | END_STREAM, 3, idx(2) + idx(6) + idx(4) + idx(62) +
         lit(":authority", "gw")),
    ]
    s["seed_h2_trailers"] = [
        hello,
        (HEADERS, END_HEADERS, 1, req_block("POST", "/v1/chat/completions")),
        (DATA, 0, 1, CHAT),
        (HEADERS, END_HEADERS | END_STREAM, 1, lit("x-trailer", "1")),
    ]
    out = {}
    for name, fr in s.items():
        out[name] = h2(fr)
        out[name.replace("seed_h2_", "seed_h2f_")] = framed(fr)
    # flag variants of one exchange
    post = s["seed_h2_post_chat"]
    out["seed_h2_post_chat_fin"] = h2(post, F_PREFACE | F_FIN)
    out["seed_h2_post_chat_small"] = h2(post, F_PREFACE | F_SMALL)
    out["seed_h2_post_chat_split"] = h2(post, F_PREFACE | (3 << 4))
    out["seed_h2_idle_timeout"] = h2([hello], F_PREFACE | F_TIMEOUTS)
    out["seed_h2_stream_timeout"] = h2(post[:2], F_PREFACE | F_TIMEOUTS)
    # the preface sent by the client itself, cut in two
    out["seed_h2_own_preface"] = bytes([0x10]) + PREFACE + frame(*hello) + frame(*s["seed_h2_get_health"][1])

    # HTTP/1.1
    def h1(flags, text):
        return bytes([flags]) + (text.encode() if isinstance(text, str) else text)
    chat = CHAT.decode()
    out["seed_h1_get_health"] = h1(0, "GET /health HTTP/1.1\r\nHost: gw\r\n\r\n")
    out["seed_h1_models_10"] = h1(F_FIN, "GET /v1/models HTTP/1.0\r\n\r\n")
    out["seed_h1_post_cl"] = h1(0, "POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\n"
                                   "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                                   % (len(chat), chat))
    out["seed_h1_post_chunked"] = h1(0x20, "POST /v1/completions HTTP/1.1\r\nHost: gw\r\n"
                                           "Transfer-Encoding: chunked\r\n\r\n"
                                           "10\r\n%s\r\n%x\r\n%s\r\n0\r\nx-t: 1\r\n\r\n"
                                           % (COMPL[:16].decode(), len(COMPL) - 16, COMPL[16:].decode()))
    out["seed_h1_pipelined"] = h1(0, "GET /health HTTP/1.1\r\n\r\nGET /nope HTTP/1.1\r\n\r\n"
                                     "PUT /v1/models HTTP/1.1\r\nContent-Length: 0\r\n\r\n"
                                     "GET /health HTTP/1.1\r\nConnection: close\r\n\r\n")
    out["seed_h1_expect"] = h1(0, "POST /v1/chat/completions HTTP/1.1\r\nExpect: 100-continue\r\n"
                                  "Content-Length: %d\r\n\r\n%s" % (len(chat), chat))
    out["seed_h1_too_large"] = h1(F_SMALL, "POST /v1/chat/completions HTTP/1.1\r\n"
                                           "Content-Length: 100000\r\n\r\n{\"model\":")
    out["seed_h1_partial_timeout"] = h1(F_TIMEOUTS, "POST /v1/chat/completions HTTP/1.1\r\n"
                                                    "Content-Length: 50\r\n\r\n{\"mo")
    out["seed_h1_bad"] = h1(0, "GET / HTTP/1.1\r\nHost: a\r\n b\r\nContent-Length: 1\r\n"
                               "Transfer-Encoding: chunked\r\n\r\n")
    up_settings = "AAMAAABkAAQAAP__"  # base64url SETTINGS: 100 streams, 65535 window
    upgrade = ("POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nConnection: Upgrade, HTTP2-Settings\r\n"
               "Upgrade: h2c\r\nHTTP2-Settings: %s\r\nContent-Length: %d\r\n\r\n%s"
               % (up_settings, len(chat), chat)).encode()
    out["seed_h1_upgrade_h2c"] = bytes([0]) + upgrade + PREFACE + frame(*hello) + \
        frame(HEADERS, END_HEADERS | END_STREAM, 3, req_block("GET", "/health"))
    out["seed_h1_upgrade_get"] = h1(0, "GET /health HTTP/1.1\r\nHost: gw\r\nConnection: Upgrade, "
                                       "HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: \r\n\r\n")
    return out


def main():
    d = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "corpus", "h2")
    os.makedirs(d, exist_ok=True)
    for name, data in seeds().items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
    print("%d seeds in %s" % (len(seeds()), d))


if __name__ == "__main__":
    main()
