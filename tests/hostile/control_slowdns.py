#!/usr/bin/env python3
"""A slow DNS server for tests/hostile/control_dns.sh (UDP, 127.0.0.1:53,
in the test's own network namespace).

  slow-*   answered after --delay seconds (default 2): A 127.0.0.1, no AAAA
  never-*  never answered (the resolver times out)
  other    NXDOMAIN at once
Prints "ready" once bound.
"""
import argparse
import socket
import struct
import threading
import time

ap = argparse.ArgumentParser()
ap.add_argument("--delay", type=float, default=2.0)
a = ap.parse_args()
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 53))
print("ready", flush=True)


def qname(pkt):
    labels, i = [], 12
    while pkt[i]:
        n = pkt[i]
        labels.append(pkt[i + 1:i + 1 + n].decode("ascii", "replace"))
        i += 1 + n
    return ".".join(labels), i + 1


def answer(pkt, peer, delay):
    time.sleep(delay)
    name, end = qname(pkt)
    qtype = struct.unpack("!H", pkt[end:end + 2])[0]
    question = pkt[12:end + 4]
    if not name.startswith("slow-"):
        hdr = pkt[:2] + struct.pack("!HHHHH", 0x8183, 1, 0, 0, 0)  # NXDOMAIN
        s.sendto(hdr + question, peer)
        return
    if qtype == 1:
        rr = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + socket.inet_aton("127.0.0.1")
        hdr = pkt[:2] + struct.pack("!HHHHH", 0x8180, 1, 1, 0, 0)
        s.sendto(hdr + question + rr, peer)
    else:
        hdr = pkt[:2] + struct.pack("!HHHHH", 0x8180, 1, 0, 0, 0)  # no data
        s.sendto(hdr + question, peer)


while True:
    pkt, peer = s.recvfrom(4096)
    try:
        name, _ = qname(pkt)
    except (IndexError, UnicodeDecodeError):
        continue
    if name.startswith("never-"):
        continue
    threading.Thread(target=answer, args=(pkt, peer, a.delay if name.startswith("slow-") else 0),
                     daemon=True).start()
