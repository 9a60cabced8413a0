SP_OUT=${SP_OUT:-32}
# shared-prefix: many requests over a few long system prompts (RAG, agents).
# Scaled from the Gateway API Inference Extension benchmark (150 groups x 5
# prompts, 6000-token system prompts, 1200-token questions, 1000-token
# outputs): prompt lengths kept, groups and the pods' KV caches shrunk
# together so that the prefix working set (groups x 375 blocks) exceeds one
# pod's cache but fits in the fleet's; outputs shortened so a run reaches
# steady state in seconds (see bench/README.md, "Scaling").
SC_DESC="48 system prompts of 6000 tokens, unique 1200-token questions, ${SP_OUT}-token answers"
SC_ARGS=(--workload shared-prefix --groups 48 --system-len 6000 --question-len 1200 --output-len $SP_OUT)
SC_RATES="10 30 50 70 90"
SC_QUICK_RATES="10 70"
SC_DURATION=10
SC_SLO=1000,50
SC_UNIT="req/s"
