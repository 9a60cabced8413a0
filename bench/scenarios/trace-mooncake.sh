# trace-mooncake (issue 11; not in the default set): the public Mooncake
# synthetic trace (kvcache-ai/Mooncake, FAST25-release/traces/
# synthetic_trace.jsonl: 3,993 requests over 1,022 s, Poisson arrivals that
# keep the order within multi-turn conversations, 15,325 input and 149
# output tokens on average, hash_ids = 512-token prefix blocks shared by
# id). sc_prepare fetches it with curl at bench time into bench/.cache/
# (ignored by git, never committed), pinned to one commit and checked by
# SHA-256; without network it fails and says where to put the file
# (MOONCAKE_TRACE=/path/to/synthetic_trace.jsonl uses a copy you have).
#
# loadgen --workload trace turns each record into one user message whose
# text is the concatenation of its hash ids' blocks (each block's text a
# function of the id alone), so requests share exactly the prefixes their
# hash_ids say, then cut or padded (unique padding) to input_length.
#
# Scaled to 2 cores, the sharing structure kept exactly:
#   - lengths x 1/4: a hash id stands for 128 tokens instead of 512
#     (--trace-block-tokens 128), input and output lengths x 1/4 (outputs
#     37 tokens on average), prompts over 30,000 tokens cut there (11 of
#     3,993; podsim's context is 32,768);
#   - KV x 1/4 with them: 6,750 blocks a pod (27,000, an H100's for
#     Llama-3.1-8B, / 4), so the trace's working set stands to the fleet's
#     KV as the unscaled trace to 8 real pods: the whole trace's cacheable
#     set is 6.1x the fleet's KV, and the finite-cache ideal is ~half the
#     infinite one;
#   - time: the rate knob is the replay speed-up (--trace-speedup), over
#     one window of trace time, the same requests at every rate: 300 s from
#     600 s (1,215 requests: the trace's first minutes are cold
#     conversations with little reuse; this window has an infinite-cache
#     ideal of 57%, finite 38%). At x10 that is 30 s simulated (15 s wall),
#     ~40 req/s; --quick replays 150 s of it.
MC_COMMIT=3b5a594133958449a1feaf1c9e0fc1b553e34a28
MC_SHA256=bd070915a98fc0ed264d7cfef2ce746002eb3076a695ec31ba2674c0111ec131
MC_URL=${MOONCAKE_URL:-https://raw.githubusercontent.com/kvcache-ai/Mooncake/$MC_COMMIT/FAST25-release/traces/synthetic_trace.jsonl}
MC_FILE=${MOONCAKE_TRACE:-bench/.cache/mooncake/synthetic_trace.jsonl}
MC_WINDOW=300
[ "${QUICK:-0}" = 1 ] && MC_WINDOW=150

sc_prepare() {
    if [ -s "$MC_FILE" ]; then
        sha256sum "$MC_FILE" | grep -q "^$MC_SHA256 " ||
            echo "trace-mooncake: note: $MC_FILE is not the pinned trace (SHA-256 differs); using it anyway" >&2
        return 0
    fi
    if [ -n "${MOONCAKE_TRACE:-}" ]; then
        echo "trace-mooncake: MOONCAKE_TRACE=$MOONCAKE_TRACE: no such file" >&2
        return 1
    fi
    mkdir -p "$(dirname "$MC_FILE")"
    echo "trace-mooncake: fetching $MC_URL" >&2
    if ! curl -fsSL --connect-timeout 10 --max-time 300 -o "$MC_FILE.part" "$MC_URL"; then
        rm -f "$MC_FILE.part"
        echo "trace-mooncake: could not download the Mooncake trace (no network?). Fetch" >&2
        echo "  $MC_URL" >&2
        echo "elsewhere and put it at $MC_FILE, or set MOONCAKE_TRACE=/path/to/synthetic_trace.jsonl" >&2
        return 1
    fi
    if ! sha256sum "$MC_FILE.part" | grep -q "^$MC_SHA256 "; then
        echo "trace-mooncake: the download's SHA-256 is not the pinned trace's ($MC_SHA256); kept as $MC_FILE.part" >&2
        return 1
    fi
    mv "$MC_FILE.part" "$MC_FILE"
}

SC_DESC="Mooncake synthetic trace, trace time 600-$((600 + MC_WINDOW)) s replayed at the rate's speed-up; lengths and KV x 1/4 (a hash id = 128 tokens); 8 pods x 6750 KV blocks"
SC_ARGS=(--workload trace --trace "$MC_FILE" --trace-block-tokens 128 --trace-max-input 30000
         --trace-start 600 --trace-window "$MC_WINDOW")
SC_KV_BLOCKS=6750
SC_RATE_FLAG=--trace-speedup
SC_RATES="5 10 15 20"
SC_QUICK_RATES="8 20"
SC_DURATION=600 # a cap only: the window ends every run (60 s simulated at x5)
SC_SLO=1000,50
SC_UNIT="x trace speed"
