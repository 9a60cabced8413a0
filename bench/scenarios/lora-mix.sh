# lora-mix (optional, not in the default set): shared-prefix prompts spread
# over 8 LoRA adapters with Zipf skew 1; at most 4 adapters per batch
# (podsim --max-loras 4), 20 ms to load one into a slot. Adapters are part of
# the cache key. bench/run starts the pods with these adapters when this
# scenario is selected.
SC_DESC="shared-prefix (16 groups x 3000-token system prompts, 400-token questions, 64-token answers) over 8 adapters, Zipf 1"
SC_ADAPTERS=lora-a,lora-b,lora-c,lora-d,lora-e,lora-f,lora-g,lora-h
SC_ARGS=(--workload lora-mix --adapters "$SC_ADAPTERS" --skew 1 --groups 16 --system-len 3000 --question-len 400 --output-len 64)
SC_RATES="20 50 80"
SC_QUICK_RATES="20 80"
SC_DURATION=12
SC_SLO=1000,50
SC_UNIT="req/s"
