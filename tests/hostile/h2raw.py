"""h2raw: HTTP/2 frames by hand, for the hostile tier's attacks on kvgated.

A client that sends whatever frame it is told to (the attacks need frames a
correct client never sends) and reads what comes back, decoding response
headers with Debian's python3-hpack. Imported by tests/hostile/*.py.
"""
import socket
import struct
import time

import hpack

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH, PING, GOAWAY, WINDOW_UPDATE, CONT = range(10)
END_STREAM, ACK, END_HEADERS = 0x1, 0x1, 0x4
ENHANCE_YOUR_CALM = 0xB


def frame(ftype, flags, sid, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", sid) + payload


def hpack_int(v, nbits, first):
    lim = (1 << nbits) - 1
    if v < lim:
        return bytes([first | v])
    out = [first | lim]
    v -= lim
    while v >= 128:
        out.append(v % 128 + 128)
        v //= 128
    out.append(v)
    return bytes(out)


def literal(name, value, indexing=False):
    """A literal field with a new name (no Huffman)."""
    n, v = name.encode(), value.encode() if isinstance(value, str) else value
    return (b"\x40" if indexing else b"\x00") + hpack_int(len(n), 7, 0) + n + hpack_int(len(v), 7, 0) + v


def request_block(method, path, extra=(), authority="gw"):
    b = b""
    for k, v in ((":method", method), (":scheme", "http"), (":path", path), (":authority", authority)):
        b += literal(k, v)
    for k, v in extra:
        b += literal(k, v)
    return b


class Conn:
    def __init__(self, port, settings=b"", timeout=10):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.dec = hpack.Decoder()
        self.dec.max_allowed_table_size = 1 << 16
        self.closed = False
        self.goaway = None      # (last stream id, error code)
        self.resets = {}        # sid -> error code
        self.status = {}        # sid -> :status
        self.headers = {}       # sid -> [(name, value)]
        self.body = {}          # sid -> bytes
        self.ended = set()      # sids that got END_STREAM
        self.s.sendall(PREFACE + frame(SETTINGS, 0, 0, settings))

    def send(self, data, quiet=False):
        try:
            self.s.sendall(data)
        except OSError:
            if not quiet:
                raise
            self.closed = True

    def request(self, sid, method, path, body=None, extra=(), end=True):
        blk = request_block(method, path, list(extra) + ([("content-type", "application/json")] if body is not None else []))
        self.send(frame(HEADERS, END_HEADERS | (END_STREAM if body is None and end else 0), sid, blk))
        if body is not None:
            self.send(frame(DATA, END_STREAM if end else 0, sid, body))

    def _read_frame(self, deadline):
        while len(self.buf) < 9 or len(self.buf) < 9 + int.from_bytes(self.buf[:3], "big"):
            left = deadline - time.time()
            if left <= 0:
                return None
            self.s.settimeout(left)
            try:
                d = self.s.recv(1 << 20)
            except socket.timeout:
                return None
            except OSError:
                d = b""
            if not d:
                self.closed = True
                return None
            self.buf += d
        n = int.from_bytes(self.buf[:3], "big")
        f = (self.buf[3], self.buf[4], int.from_bytes(self.buf[5:9], "big") & 0x7FFFFFFF, self.buf[9:9 + n])
        self.buf = self.buf[9 + n:]
        return f

    def pump(self, seconds, until=None):
        """Reads and handles frames for up to `seconds`, or until until(self) is true."""
        deadline = time.time() + seconds
        while not self.closed and not (until and until(self)):
            f = self._read_frame(deadline)
            if f is None:
                break
            ftype, flags, sid, p = f
            if ftype == SETTINGS and not flags & ACK:
                self.send(frame(SETTINGS, ACK, 0), quiet=True)
            elif ftype == PING and not flags & ACK:
                self.send(frame(PING, ACK, 0, p), quiet=True)
            elif ftype == HEADERS:
                hdrs = self.dec.decode(p)
                self.headers.setdefault(sid, []).extend(hdrs)
                for k, v in hdrs:
                    if k == ":status":
                        self.status[sid] = int(v)
                if flags & END_STREAM:
                    self.ended.add(sid)
            elif ftype == DATA:
                self.body[sid] = self.body.get(sid, b"") + p
                if p:  # keep the windows open
                    inc = struct.pack(">I", len(p))
                    self.send(frame(WINDOW_UPDATE, 0, 0, inc) + frame(WINDOW_UPDATE, 0, sid, inc), quiet=True)
                if flags & END_STREAM:
                    self.ended.add(sid)
            elif ftype == RST_STREAM:
                self.resets[sid] = int.from_bytes(p[:4], "big")
            elif ftype == GOAWAY:
                self.goaway = (int.from_bytes(p[:4], "big") & 0x7FFFFFFF, int.from_bytes(p[4:8], "big"))
        return self

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass
