# sessions (bench/splice, not in the default set): multi-turn chat where
# each session keeps its own keep-alive connection (loadgen
# --session-conns), as a chat client per user does: the flows kvgated's
# kernel splice takes over after their first exchange. Longer sessions and
# answers than multi-turn, so most bytes travel after the first turn.
SC_DESC="sessions of 8 turns on their own connection: own 2000-token system prompt, 200-token user turns, 128-token answers, 300 ms think time"
SC_ARGS=(--workload multi-turn --session-conns --sessions 100000 --turns 8 --system-len 2000 --question-len 200 --output-len 128 --think-ms 300)
SC_RATES="2 4"
SC_QUICK_RATES="2"
SC_DURATION=10
SC_SLO=1000,50
SC_UNIT="sessions/s"
