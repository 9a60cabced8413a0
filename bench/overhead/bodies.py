#!/usr/bin/env python3
"""Writes the request bodies bench/overhead posts: N chat completions of an
exact byte size, in G groups that share a system prompt (so prefix-aware
routing has prefixes to find), each with its own question.

usage: bodies.py OUTDIR SIZE_BYTES N GROUPS MAX_TOKENS
Writes OUTDIR/{plain,stream,nousage}-I.json and OUTDIR/{plain,stream,
nousage}.list (one path a line, for post.lua). "stream" bodies add
"stream": true and "stream_options": {"include_usage": true}; "nousage"
bodies "stream": true alone (the pod sends no usage: kvgated estimates
the tokens, issue 13); all set ignore_eos.
"""
import json
import os
import random
import sys

MODEL = "meta-llama/Llama-3.1-8B-Instruct"


def words(rng, nbytes):
    out, n = [], 0
    while n < nbytes:
        w = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9)))
        out.append(w)
        n += len(w) + 1
    return " ".join(out)[:nbytes]


def body(system, question, max_tokens, kind, pad):
    d = {"model": MODEL,
         "messages": [{"role": "system", "content": system},
                      {"role": "user", "content": question + pad}],
         "max_tokens": max_tokens, "ignore_eos": True}
    if kind != "plain":
        d["stream"] = True
    if kind == "stream":
        d["stream_options"] = {"include_usage": True}
    return json.dumps(d, separators=(",", ":"))


def main():
    outdir, size, n, groups, max_tokens = sys.argv[1], *map(int, sys.argv[2:6])
    os.makedirs(outdir, exist_ok=True)
    rng = random.Random(size * 7919 + n)
    qlen = min(200, size // 4)
    # the fixed part of the body (no text) is ~190 bytes; the system prompt
    # takes the rest, then the question is padded to the exact size
    syslen = max(16, size - qlen - 260)
    systems = [words(rng, syslen) for _ in range(groups)]
    for kind in ("plain", "stream", "nousage"):
        paths = []
        for i in range(n):
            q = f"question {i}: " + words(rng, qlen)
            b = body(systems[i % groups], q, max_tokens, kind, "")
            short = size - len(b)
            if short < 0:
                sys.exit(f"bodies.py: size {size} too small")
            b = body(systems[i % groups], q, max_tokens, kind, "x" * short)
            assert len(b) == size, (len(b), size)
            p = os.path.join(outdir, f"{kind}-{i}.json")
            with open(p, "w") as f:
                f.write(b)
            paths.append(os.path.abspath(p))
        with open(os.path.join(outdir, f"{kind}.list"), "w") as f:
            f.write("\n".join(paths) + "\n")


if __name__ == "__main__":
    main()
