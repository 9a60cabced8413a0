# multi-turn: chat sessions whose history grows turn by turn (x-session-id).
# Each session has its own 4000-token system prompt; every turn adds a
# 400-token user message and the 64-token answer the server gave. Turn k+1
# is due --think-ms after turn k's answer ends. The rate is sessions/s
# (requests/s = rate x turns).
SC_DESC="sessions of 4 turns: own 4000-token system prompt, 400-token user turns, 64-token answers, 500 ms think time"
SC_ARGS=(--workload multi-turn --sessions 100000 --turns 4 --system-len 4000 --question-len 400 --output-len 64 --think-ms 500)
# The knee and the run length. Each session lives about 4 x (its answers
# + 0.5 s), 3-7 simulated seconds, so a 10 s run (the length before
# 2026-12-03) was mostly ramp-up and drain: a target past its capacity
# never built the queue it would keep in steady state, and nginx
# round-robin's TTFT p90 only reached 10x its light-load value at 44
# sessions/s, a rate where the fleet's compute is spent whatever the
# router (by podsim's step model a perfect router's pods are ~80-90% busy at
# 20 sessions/s: first-turn prefill plus decode attention). 40 s runs (10
# session lifetimes and more) measure the steady state; round-robin's
# capacity then lies between 16 and 20 sessions/s (TTFT p90 892 ms at 16,
# 4188 at 20 on 2026-12-03), kvgated's between 20 and 24. The sweep's
# steps are finer to resolve both. The report gives TTFT p50 of each
# kvgated target / nginx round-robin at every rate.
SC_RATES="4 8 12 16 20 24"
SC_QUICK_RATES="4 20"
SC_DURATION=40
SC_SLO=1000,50
SC_UNIT="sessions/s"
