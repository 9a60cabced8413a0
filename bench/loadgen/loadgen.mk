# bench/loadgen/loadgen.mk: the load generator, build/loadgen.
#
# From the top Makefile (which lists $(OUT)/loadgen in BINS and sets
# .DEFAULT_GOAL, since this fragment's first rule is not `all`):
#     include bench/loadgen/loadgen.mk
# It then uses the top Makefile's OUT, CC, CFLAGS, Q, msg and its generic
# $(OUT)/obj/%.o rule. On its own (nothing else is built):
#     make -f bench/loadgen/loadgen.mk build/loadgen
# Targets: $(OUT)/loadgen, `loadgen`, `check-loadgen` (bench/check_loadgen.sh).

LOADGEN_SRCS   := $(wildcard bench/loadgen/*.c)
LOADGEN_HDRS   := $(wildcard bench/loadgen/*.h)
LOADGEN_COMMON := user/common/ev.c user/common/sbuf.c user/common/http1.c user/common/alloc.c
LOADGEN_LDLIBS := -lnghttp2 -lcjson -lxxhash -lm

ifeq ($(origin COMMON_SRCS),undefined)
# standalone: own flags, own object directory
OUT     ?= build
CFLAGS  ?= -O2 -g
CFLAGS  += -Wall -Wextra -Wno-unused-parameter -std=gnu11 -D_GNU_SOURCE \
           -fno-strict-aliasing -MMD -MP -Iuser -Itests
LOADGEN_OBJDIR := $(OUT)/obj-loadgen
$(LOADGEN_OBJDIR)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -c $< -o $@
-include $(shell find $(LOADGEN_OBJDIR) -name '*.d' 2>/dev/null)
else
LOADGEN_OBJDIR := $(OUT)/obj
# the unit tests #include the sources they test
$(OUT)/tests/test_loadgen_schedule $(OUT)/tests/test_loadgen_sse $(OUT)/tests/test_workload \
$(OUT)/tests/test_loadgen_h2 $(OUT)/tests/test_ideal: \
    $(LOADGEN_SRCS) $(LOADGEN_HDRS)
endif

LOADGEN_OBJS := $(patsubst %.c,$(LOADGEN_OBJDIR)/%.o,$(LOADGEN_SRCS) $(LOADGEN_COMMON))

$(OUT)/loadgen: $(LOADGEN_OBJS)
	$(call msg,LINK,$@)
	$(Q)$(CC) $(CFLAGS) $^ -o $@ $(LOADGEN_LDLIBS)

.PHONY: loadgen check-loadgen
loadgen: $(OUT)/loadgen
check-loadgen: $(OUT)/loadgen $(OUT)/kvgate-podsim
	$(Q)bench/check_loadgen.sh
