#!/usr/bin/python3
"""Writes hand-made seeds for fuzz_kvev into tests/fuzz/corpus/kvev/: vLLM's
KV-event batches in the forms kvev_decode.h lists (array and map events,
old and new field sets, int / negative / bytes hashes, SGLang's metadata,
a DP rank), each behind the target's first byte (pod, sequence mode).
Uses Debian's python3-msgpack.   /usr/bin/python3 tests/fuzz/kvev_seeds.py"""
import os
import msgpack

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "kvev")
os.makedirs(out, exist_ok=True)
toks = list(range(1000, 1048))


def stored(hashes, parent, ntok, *more):
    return ["BlockStored", hashes, parent, toks[:ntok], 16, None, *more]


seeds = {
    "seed-oldest": [1.5, [stored([11, 12, 13], None, 48), ["BlockRemoved", [13]],
                          ["AllBlocksCleared"]]],
    "seed-medium": [2.0, [stored([21], 20, 16, "GPU"), ["BlockRemoved", [21], "GPU"]]],
    "seed-newest": [3.0, [["BlockStored", [31, 32], None, toks[:32], 16, 2, "GPU", "sql",
                           [["sql", "tenant"], ["sql"]], 0, "full_attention", None]], 0],
    "seed-map": [4.0, [{"type": "BlockStored", "block_hashes": [41], "parent_block_hash": None,
                        "token_ids": toks[:16], "block_size": 16, "lora_id": None,
                        "medium": "GPU", "lora_name": None, "extra_keys": [None],
                        "group_idx": 0, "kv_cache_spec_kind": "full_attention"},
                       {"type": "BlockRemoved", "block_hashes": [41], "medium": "GPU"},
                       {"type": "AllBlocksCleared"}], None],
    "seed-mapbatch": {"ts": 5.0, "events": [["AllBlocksCleared"]], "data_parallel_rank": 1},
    "seed-signed": [6.0, [stored([-5, -(2**63)], None, 32)]],
    "seed-bytes": [7.0, [["BlockStored", [b"\x01" * 32], b"\x02" * 32, toks[:16], 16, None],
                         ["BlockRemoved", [b"\x01" * 32]]]],
    "seed-sglang": [8.0, [["BlockStored", [81], None, toks[:16], 16, None, "GPU",
                           {"cache_salt": "t"}]]],
    "seed-mm": [9.0, [["BlockStored", [91, 92], None, toks[:32], 16, None, "GPU", None,
                       [None, [["img", 3]]]]]],
    "seed-unknown": [10.0, [["BlockPinned", [1], {"x": [1, [2, [3]]]}],
                            {"type": "Future", "x": 1}]],
}
for i, (name, obj) in enumerate(sorted(seeds.items())):
    with open(os.path.join(out, name), "wb") as f:
        f.write(bytes([i & 0x0F]) + msgpack.packb(obj, use_bin_type=True))
print(f"{len(seeds)} seeds in {out}")
