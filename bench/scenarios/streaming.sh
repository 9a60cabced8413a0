# streaming (bench/bypass, not in the default set): multi-turn chat on one
# keep-alive connection per session, as `sessions`, with long answers:
# many small SSE events (one TCP segment each) per request, the traffic
# where a data path's per-packet cost shows (issue 12: gateway CPU per
# streamed token). Short prompts, so prefill does not hide it.
SC_DESC="sessions of 4 turns on their own connection: own 500-token system prompt, 100-token user turns, 256-token answers (one SSE event each), 200 ms think time"
SC_ARGS=(--workload multi-turn --session-conns --sessions 100000 --turns 4 --system-len 500 --question-len 100 --output-len 256 --think-ms 200)
SC_RATES="2 4"
SC_QUICK_RATES="4"
SC_DURATION=10
SC_SLO=1000,50
SC_UNIT="sessions/s"
