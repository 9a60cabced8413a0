# multi-turn: chat sessions whose history grows turn by turn (x-session-id).
# Each session has its own 4000-token system prompt; every turn adds a
# 400-token user message and the 64-token answer the server gave. Turn k+1
# is due --think-ms after turn k's answer ends. The rate is sessions/s
# (requests/s = rate x turns).
SC_DESC="sessions of 4 turns: own 4000-token system prompt, 400-token user turns, 64-token answers, 500 ms think time"
SC_ARGS=(--workload multi-turn --sessions 100000 --turns 4 --system-len 4000 --question-len 400 --output-len 64 --think-ms 500)
# The sweep goes on past 22 sessions/s (the last full run's top, where
# nginx round-robin's TTFT p90 was 4x its light-load value, no knee) so
# that it reaches the knee (10x); the report gives TTFT p50 of each
# kvgated target / nginx round-robin at every rate.
SC_RATES="4 10 16 22 28 34"
SC_QUICK_RATES="4 28"
SC_DURATION=10
SC_SLO=1000,50
SC_UNIT="sessions/s"
