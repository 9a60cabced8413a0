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
#                    5 minutes on 2 cores: 3 repeats of 3 s saturation + 2 s
#                    latency runs, kvgated and nginx with 2 workers only,
#                    decision bench in its quick mode. Writes
#                    bench/results/$(OVERHEAD_NAME)/overhead.{md,json}.
#                    The full run (1 and 2 workers, 10 s runs, ~16 min):
#                    bench/overhead/run
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
OVERHEAD_ENV ?= OVH_REPEATS=3 OVH_SAT_S=3 OVH_SLICES=3 OVH_LAT_S=2 OVH_WORKERS=2 OVH_QUICK=1

.PHONY: bench-overhead decision-bench
bench-overhead: $(OVERHEAD_DEPS)
	$(Q)$(OVERHEAD_ENV) bench/overhead/run $(OVERHEAD_NAME)

decision-bench: $(OUT)/decision_bench
	$(Q)$(OUT)/decision_bench
