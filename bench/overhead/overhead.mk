# bench/overhead/overhead.mk: the gateway overhead benchmark (issue 4).
#
# From the top Makefile (after its `all:` rule, so `all` stays the default
# goal):
#     include bench/overhead/overhead.mk
# It then uses the top Makefile's OUT, CC, Q and msg. On its own
# (kvgated and kvgate-podsim must be built already: make all):
#     make -f bench/overhead/overhead.mk bench-overhead
#
# Targets:
#   bench-overhead   bench/overhead/run with a shorter set that fits in about
#                    8 minutes on 2 cores: 3 repeats of 3 s saturation + 2 s
#                    latency runs, kvgated and nginx with 2 workers only,
#                    kvgated with accounting on and off (issue 13: OVH_ACCT),
#                    non-streamed, streamed with include_usage and streamed
#                    without, decision bench in its quick mode. Writes
#                    bench/results/$(OVERHEAD_NAME)/overhead.{md,json}.
#                    The full run (1 and 2 workers, 10 s runs, ~16 min):
#                    bench/overhead/run
#   bench-overhead-acct  issue 13's comparison alone, tighter: kvgated with
#                    accounting on / off only (no direct, nginx, RSS or
#                    decision bench), 1 KiB bodies (where accounting's
#                    share of a request is largest), the three modes,
#                    8 repeats of 6 s (an even count: the on / off pair
#                    is restarted per repeat, the arm started first
#                    alternating, OVH_ACCT_SWAP); ~8 minutes. Writes
#                    bench/results/$(OVERHEAD_ACCT_NAME)/overhead.{md,json}.
#   decision-bench   build and run $(OUT)/decision_bench (8, 64, 512 pods)
#   $(OUT)/decision_bench

OUT ?= build
CC ?= gcc
Q ?= @

DECISION_BENCH_SRCS := bench/micro/decision_bench.c user/core/policy.c \
    user/core/prefix_index.c user/core/podtable.c user/core/fingerprint.c \
    user/core/bodyscan.c user/core/fairshare.c user/common/alloc.c

$(OUT)/decision_bench: $(DECISION_BENCH_SRCS) $(wildcard user/core/*.h) user/common/alloc.h
	$(call msg,LINK,$@)
	$(Q)mkdir -p $(@D) && $(CC) -O2 -g -std=gnu11 -D_GNU_SOURCE -Iuser \
	    $(DECISION_BENCH_SRCS) -o $@ -lxxhash -lpthread -lm

ifeq ($(origin COMMON_SRCS),undefined)
OVERHEAD_DEPS := $(OUT)/decision_bench
else
OVERHEAD_DEPS := $(OUT)/kvgated $(OUT)/kvgate-podsim $(OUT)/decision_bench
endif

OVERHEAD_NAME ?= $(shell date +%F)-overhead-quick
OVERHEAD_ENV ?= OVH_REPEATS=3 OVH_SAT_S=3 OVH_SLICES=3 OVH_LAT_S=2 OVH_WORKERS=2 OVH_QUICK=1 \
    OVH_ACCT=1 OVH_MODES="plain stream nousage"
OVERHEAD_ACCT_NAME ?= $(shell date +%F)-overhead-accounting
OVERHEAD_ACCT_ENV ?= OVH_REPEATS=8 OVH_SAT_S=6 OVH_SLICES=3 OVH_LAT_S=1 OVH_WORKERS=2 \
    OVH_ACCT=1 OVH_BASELINES="" OVH_SIZES=1024 OVH_MODES="plain stream nousage" \
    OVH_RSS=0 OVH_DECISION=0

.PHONY: bench-overhead bench-overhead-acct bench-overhead-acct-aa decision-bench
bench-overhead: $(OVERHEAD_DEPS)
	$(Q)$(OVERHEAD_ENV) bench/overhead/run $(OVERHEAD_NAME)

bench-overhead-acct: $(OVERHEAD_DEPS)
	$(Q)$(OVERHEAD_ACCT_ENV) bench/overhead/run $(OVERHEAD_ACCT_NAME)

# the same with accounting on in both targets: the noise floor of the comparison
bench-overhead-acct-aa: $(OVERHEAD_DEPS)
	$(Q)$(OVERHEAD_ACCT_ENV) OVH_ACCT_AA=1 bench/overhead/run $(OVERHEAD_ACCT_NAME)-aa

decision-bench: $(OUT)/decision_bench
	$(Q)$(OUT)/decision_bench
