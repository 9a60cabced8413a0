"""Subscribes to kvgate-podsim's KV events with pyzmq and msgpack (Debian's
python3-zmq and python3-msgpack), the way a vLLM KV-event consumer does,
while a request is sent; checks the frames and the event batches.
    python3 kv_events_sub.py ENDPOINT POD_URL MODEL
Prints what it saw; exits 1 with the reason on a mismatch."""
import json
import sys
import time
import urllib.request

import msgpack
import zmq

endpoint, pod_url, model = sys.argv[1:4]
ctx = zmq.Context()
sub = ctx.socket(zmq.SUB)
sub.setsockopt(zmq.SUBSCRIBE, b"kv@")
sub.connect(endpoint)
time.sleep(0.3)  # slow joiner

prompt = "kv events " * 100  # 1000 bytes -> 250 tokens -> 15 full blocks
body = json.dumps({"model": model, "prompt": prompt, "max_tokens": 2, "ignore_eos": True}).encode()
req = urllib.request.Request(pod_url + "/v1/completions", body, {"content-type": "application/json"})
urllib.request.urlopen(req, timeout=10).read()

stored, parents, seqs, topics = [], [], [], set()
deadline = time.time() + 3
while time.time() < deadline:
    if not sub.poll(200):
        if stored:
            break
        continue
    frames = sub.recv_multipart()
    if len(frames) != 3:
        sys.exit(f"expected 3 frames, got {len(frames)}")
    topic, seq, payload = frames
    topics.add(topic.decode())
    seqs.append(int.from_bytes(seq, "big"))
    ts, events = msgpack.unpackb(payload, raw=False)[:2]
    if not isinstance(ts, float):
        sys.exit(f"ts is {type(ts)}")
    for ev in events:
        if ev[0] == "BlockStored":
            hashes, parent, tokens, block_size, lora = ev[1:6]
            if block_size != 16 or len(tokens) != 16 * len(hashes) or lora is not None:
                sys.exit(f"bad BlockStored {ev}")
            parents.append(parent)
            stored.extend(hashes)

print(f"topics {topics} seqs {seqs} stored {len(stored)} blocks")
host_port = pod_url.split("//")[1]
if topics != {f"kv@{host_port}@{model}"}:
    sys.exit(f"topic {topics}")
if seqs != sorted(seqs) or len(set(seqs)) != len(seqs):
    sys.exit(f"seq not increasing: {seqs}")
# 250 prompt tokens + the first output -> 15 full blocks of the prompt
if len(stored) < 15:
    sys.exit(f"only {len(stored)} blocks stored")
if parents[0] is not None:
    sys.exit(f"first block has a parent {parents[0]}")
