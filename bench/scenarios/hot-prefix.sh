# hot-prefix: one system prompt carries most of the traffic, the rest are
# unique. Prefix affinity alone would pile the hot prefix onto one pod; the
# bounded-load guard must spread it.
SC_DESC="80% of requests share one 6000-token system prompt, 20% have unique 6000-token ones; 1200-token questions, 64-token answers"
SC_ARGS=(--workload hot-prefix --hot-share 0.8 --system-len 6000 --question-len 1200 --output-len 64)
SC_RATES="20 50 80 110"
SC_QUICK_RATES="20 80"
SC_DURATION=10
SC_SLO=1000,50
SC_UNIT="req/s"
