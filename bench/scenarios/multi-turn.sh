# multi-turn: chat sessions whose history grows turn by turn (x-session-id).
# Each session has its own 4000-token system prompt; every turn adds a
# 400-token user message and the 64-token answer the server gave. Turn k+1
# is due --think-ms after turn k's answer ends. The rate is sessions/s
# (requests/s = rate x turns).
SC_DESC="sessions of 4 turns: own 4000-token system prompt, 400-token user turns, 64-token answers, 500 ms think time"
SC_ARGS=(--workload multi-turn --sessions 100000 --turns 4 --system-len 4000 --question-len 400 --output-len 64 --think-ms 500)
# The sweep goes on past 22 sessions/s (the last full run's top, where
# nginx round-robin's TTFT p90 was 4x its light-load value: no knee) to
# 44, where it reaches the knee (10x; measured 2026-12-02: nginx
# round-robin TTFT p90 156 ms at 4, 597 at 28, 822 at 34, 2463 at 44,
# where the sessions' KV no longer fits the fleet's). The report gives
# TTFT p50 of each kvgated target / nginx round-robin at every rate.
SC_RATES="4 12 20 28 36 44"
SC_QUICK_RATES="4 44"
SC_DURATION=10
SC_SLO=1000,50
SC_UNIT="sessions/s"
