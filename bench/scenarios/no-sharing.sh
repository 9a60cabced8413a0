# no-sharing: unique prompts, nothing to gain from prefix affinity (the
# control): prefix-aware routing must cost nothing against load balancing.
SC_DESC="unique 4096-token prompts, 64-token answers"
SC_ARGS=(--workload no-sharing --prompt-len 4096 --output-len 64)
SC_RATES="20 40 60 80"
SC_QUICK_RATES="20 60"
SC_DURATION=10
SC_SLO=1000,50
SC_UNIT="req/s"
