# fuzz.mk: the libFuzzer targets (included by the top Makefile after its
# variables and bpf/bpf.mk: OUT, CLANG, LDLIBS, BPF_DIR, BPF_SKELS, Q, msg).
#
#   build/fuzz/fuzz_X        one per tests/fuzz/fuzz_X.c (picked up by the
#                            wildcard: a new target needs no Makefile change)
#   build/fuzz/obj/...       user/ built with clang, ASan + UBSan and
#                            libFuzzer's coverage (fuzzer-no-link)
#   build/fuzz/lib*.a        those objects, as the unit tests' libraries
#
# A target #includes the .c files whose statics it needs (their archive
# members are then not pulled in) and takes the rest from the archives.
# It depends on exactly what it links: its source and what that includes
# (the compiler's .d file), and the archive members the linker pulled in
# (build/fuzz/fuzz_X.link.d, written from the linker's trace at each link).
# The archives themselves are only ordered before the first link, so a
# change in a source that a target does not link rebuilds no target.
#
#   make fuzz [FUZZ_SECONDS=600] [FUZZ_JOBS=1] [FUZZ_TARGETS="h2 http1"]
#       builds every target, runs each for FUZZ_SECONDS from its kept corpus
#       (tests/fuzz/corpus/<X>/), merges what it found back into that corpus
#       minimised, prints per target executions, coverage and crashes, and
#       ends with "N passed, N failed". Crashes: build/fuzz-artifacts/<X>/.
#   make fuzz-build          the targets only (what `make test` runs briefly)

FUZZ_DIR     := $(OUT)/fuzz
FUZZ_SRCS    := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS    := $(FUZZ_SRCS:tests/fuzz/%.c=$(FUZZ_DIR)/%)
# -fno-sanitize-recover: a UBSan report stops the run as a crash does
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=all
FUZZ_CFLAGS  := -Wall -Wextra -Wno-unused-parameter -g -O1 -fno-omit-frame-pointer $(FUZZ_SAN) -std=gnu11 -D_GNU_SOURCE \
                -fno-strict-aliasing -MMD -MP -Iuser -Itests -Ibpf -I$(BPF_DIR)

FUZZ_LIB_SRCS := $(COMMON_SRCS) $(CORE_SRCS) $(PODSIM_SRCS) $(GATEWAY_SRCS) $(TOK_SRCS) \
                 $(BYPASS_SRCS)
FUZZ_OBJS    := $(FUZZ_LIB_SRCS:%.c=$(FUZZ_DIR)/obj/%.o)
FUZZ_LIBS    := $(FUZZ_DIR)/libgateway.a $(FUZZ_DIR)/libpodsim.a $(FUZZ_DIR)/libbypass.a \
                $(FUZZ_DIR)/libcore.a $(FUZZ_DIR)/libtok.a $(FUZZ_DIR)/libcommon.a

FUZZ_SECONDS ?= 600
FUZZ_JOBS    ?= 1
FUZZ_TARGETS ?=

$(FUZZ_DIR)/obj/%.o: %.c
	$(call msg,FUZZCC,$<)
	$(Q)mkdir -p $(@D) && $(CLANG) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

# generated headers first (as bpf.mk does for the normal build)
$(FUZZ_DIR)/obj/user/gateway/bpf.o $(FUZZ_DIR)/obj/user/gateway/splice.o: | $(BPF_SKELS)

$(FUZZ_DIR)/libcommon.a: $(COMMON_SRCS:%.c=$(FUZZ_DIR)/obj/%.o)
$(FUZZ_DIR)/libcore.a: $(CORE_SRCS:%.c=$(FUZZ_DIR)/obj/%.o)
$(FUZZ_DIR)/libgateway.a: $(GATEWAY_SRCS:%.c=$(FUZZ_DIR)/obj/%.o)
$(FUZZ_DIR)/libpodsim.a: $(PODSIM_SRCS:%.c=$(FUZZ_DIR)/obj/%.o)
$(FUZZ_DIR)/libbypass.a: $(BYPASS_SRCS:%.c=$(FUZZ_DIR)/obj/%.o)
$(FUZZ_DIR)/libtok.a: $(TOK_SRCS:%.c=$(FUZZ_DIR)/obj/%.o)
$(FUZZ_LIBS):
	$(call msg,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^

# The linker's trace (-t -t) names each archive member it pulled in, as
# "(DIR/libX.a)M.o" (GNU ld) or "DIR/libX.a(M.o)" (lld); the member's object
# is DIR/obj/user/X/M.o. Each gets an empty rule too (as -MP does), so a
# source that is removed does not break the next make. A target built
# without its .link.d (a tree from before it existed) is linked again.
FUZZ_MEMBERS := sed -nE -e 's@^\((.*)/lib([a-z0-9_]+)\.a\)(.+\.o)$$@\1/obj/user/\2/\3@p' \
                        -e 's@^(.*)/lib([a-z0-9_]+)\.a\((.+\.o)\)$$@\1/obj/user/\2/\3@p'

$(FUZZ_DIR)/fuzz_%: tests/fuzz/fuzz_%.c | $(FUZZ_LIBS)
	$(call msg,FUZZ,$@)
	$(Q)mkdir -p $(@D) && $(CLANG) $(FUZZ_CFLAGS) -fsanitize=fuzzer $< $(FUZZ_LIBS) \
	    -o $@ $(LDLIBS) -Wl,-t,-t >$@.trace
	$(Q)objs=$$($(FUZZ_MEMBERS) $@.trace | sort -u) && rm -f $@.trace && \
	    { echo "$@:" $$objs; for o in $$objs; do echo "$$o:"; done; } >$@.link.d
FUZZ_UNTRACED := $(foreach b,$(FUZZ_BINS),$(if $(wildcard $(b).link.d),,$(wildcard $(b))))
.PHONY: fuzz-relink
$(FUZZ_UNTRACED): fuzz-relink

.PHONY: fuzz fuzz-build
fuzz-build: $(FUZZ_BINS)

fuzz: fuzz-build
	$(Q)FUZZ_JOBS=$(FUZZ_JOBS) tests/fuzz/run_fuzz.sh --long $(FUZZ_SECONDS) \
	    $(if $(FUZZ_TARGETS),$(addprefix $(FUZZ_DIR)/fuzz_,$(FUZZ_TARGETS)),$(FUZZ_BINS))

-include $(shell find $(FUZZ_DIR) -name '*.d' 2>/dev/null)
