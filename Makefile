# kvgate top-level build.
#   make            build everything; installs nothing (on a fresh machine
#                   run `make deps` first, or `make test` / `make demo`)
#   make deps       install missing Debian packages (root), mount bpffs
#   make test       make deps, then every test tier, the sanitizer build's
#                   too; ends with "N passed, N failed"
#   make demo       make deps, then podsim and kvgated doing real work,
#                   figures printed
#   make observe    make deps, then Prometheus scraping podsim and kvgated
#                   under load, with scripts/prometheus/kvgate.rules.yml;
#                   until Ctrl-C (OBSERVE_SECONDS=N: N seconds)
#   make fuzz       each libFuzzer target FUZZ_SECONDS (600), corpus kept
#   make asan       build-asan/: binaries and unit tests under ASan + UBSan
#   make bench      the serving benchmark (bench-quick, bench-overhead: bench/)
# V=1 shows full commands. Outputs go to build/ (ignored by git).

.DELETE_ON_ERROR:
.SUFFIXES:

OUT      := build
CC       ?= gcc
CLANG    ?= clang
CFLAGS   ?= -O2 -g
CFLAGS   += -Wall -Wextra -Wno-unused-parameter -std=gnu11 -D_GNU_SOURCE \
            -fno-strict-aliasing -MMD -MP -Iuser -Itests
# SANITIZE=1 (the build-asan/ tree): clang (as the fuzz targets: its UBSan
# writes its reports where ASAN_OPTIONS=log_path says, gcc's only to
# stderr), -O1, ASan + UBSan, and a UBSan report is fatal
# (-fno-sanitize-recover) so that a test sees it as a failure
ifeq ($(SANITIZE),1)
CC       := $(CLANG)
CFLAGS   += -O1 -fno-omit-frame-pointer -fsanitize=address,undefined \
            -fno-sanitize-recover=all -Wno-string-concatenation
endif
LDLIBS   := -lnghttp2 -lcjson -lxxhash -lzmq -lmsgpackc -lpcre2-8 -lutf8proc -lm -lpthread

ifeq ($(V),1)
  Q :=
  msg :=
else
  Q := @
  msg = @printf '  %-8s %s\n' "$(1)" "$(2)";
endif

COMMON_SRCS := $(wildcard user/common/*.c)
CORE_SRCS   := $(wildcard user/core/*.c)
CORE_OBJS   := $(CORE_SRCS:%.c=$(OUT)/obj/%.o)
PODSIM_SRCS := $(filter-out user/podsim/main.c,$(wildcard user/podsim/*.c))
GATEWAY_SRCS := $(filter-out user/gateway/main.c,$(wildcard user/gateway/*.c))
GATEWAY_OBJS := $(GATEWAY_SRCS:%.c=$(OUT)/obj/%.o)
COMMON_OBJS := $(COMMON_SRCS:%.c=$(OUT)/obj/%.o)
PODSIM_OBJS := $(PODSIM_SRCS:%.c=$(OUT)/obj/%.o)
# user/bypass/: the bypass path's parts that need no DPDK (issue 12)
BYPASS_SRCS := $(wildcard user/bypass/*.c)
BYPASS_OBJS := $(BYPASS_SRCS:%.c=$(OUT)/obj/%.o)

# tests/unit/<part>/test_x.c tests user/<part>/ (or bench/loadgen); the
# binaries stay flat, build/tests/test_x, so names are unique across parts.
UNIT_DIRS   := $(wildcard tests/unit/*)
UNIT_SRCS   := $(wildcard $(UNIT_DIRS:%=%/test_*.c))
UNIT_BINS   := $(addprefix $(OUT)/tests/,$(basename $(notdir $(UNIT_SRCS))))
vpath test_%.c $(UNIT_DIRS)

# user/tok/: the tokenizer (TOK_SRCS, $(OUT)/libtok.a)
include user/tok/tok.mk

BINS := $(OUT)/kvgate-podsim $(OUT)/kvgated $(OUT)/loadgen
.DEFAULT_GOAL := all
include bench/loadgen/loadgen.mk
include bpf/bpf.mk
include dpdk/dpdk.mk

.PHONY: all deps test unit demo observe clean asan sanitize-bins
all: $(BINS) $(UNIT_BINS) bpf-tests $(OUT)/decision_bench $(OUT)/kvev_bench $(OUT)/usage_bench $(OUT)/exact_bench \
     $(OUT)/tests/kvsub_probe $(TOK_TOOLS) $(DPDK_BINS)

# benchmarks (not part of `make test`): make bench, bench-quick, bench-overhead
include bench/bench.mk
include bench/overhead/overhead.mk

# The only rule that installs anything. `make test` and `make demo` run it
# first and build in a second make, so that nothing compiles before the
# packages are there (with -j, prerequisites would run side by side).
deps:
	$(Q)scripts/deps.sh

$(OUT)/obj/%.o: %.c
	$(call msg,CC,$<)
	$(Q)mkdir -p $(@D) && $(CC) $(CFLAGS) -c $< -o $@

$(OUT)/libcommon.a: $(COMMON_OBJS)
	$(call msg,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^
$(OUT)/libcore.a: $(CORE_OBJS)
	$(call msg,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^
$(OUT)/libgateway.a: $(GATEWAY_OBJS)
	$(call msg,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^
$(OUT)/libbypass.a: $(BYPASS_OBJS)
	$(call msg,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^
$(OUT)/libpodsim.a: $(PODSIM_OBJS)
	$(call msg,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^

$(OUT)/kvgate-podsim: $(OUT)/obj/user/podsim/main.o $(OUT)/libpodsim.a $(OUT)/libtok.a $(OUT)/libcommon.a
	$(call msg,LINK,$@)
	$(Q)$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

$(OUT)/kvgated: $(OUT)/obj/user/gateway/main.o $(OUT)/libgateway.a $(OUT)/libbypass.a $(OUT)/libcore.a $(OUT)/libtok.a $(OUT)/libcommon.a
	$(call msg,LINK,$@)
	$(Q)$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

# Unit tests link the libraries; a test may #include the .c it tests to
# reach statics (the archive member is then not pulled in).
TEST_LIBS := $(OUT)/libgateway.a $(OUT)/libpodsim.a $(OUT)/libbypass.a $(OUT)/libcore.a \
             $(OUT)/libtok.a $(OUT)/libcommon.a
$(OUT)/tests/test_%: test_%.c $(TEST_LIBS) tests/harness.h
	$(call msg,TEST,$@)
	$(Q)mkdir -p $(@D) && $(CC) $(CFLAGS) $< $(TEST_LIBS) -o $@ $(LDLIBS)

# The KV-event subscriber alone, for tests/e2e/kv_events_index.sh
$(OUT)/tests/kvsub_probe: tests/e2e/kvsub_probe.c $(TEST_LIBS)
	$(call msg,TEST,$@)
	$(Q)mkdir -p $(@D) && $(CC) $(CFLAGS) $< $(TEST_LIBS) -o $@ $(LDLIBS)

# libFuzzer targets: tests/fuzz/fuzz.mk (make fuzz, make fuzz-build)
include tests/fuzz/fuzz.mk

# The sanitizer build: the same sources, binaries and unit tests under
# ASan + UBSan in $(ASAN_OUT)/ (a second make of this file with
# OUT=$(ASAN_OUT) SANITIZE=1); tests/run.sh tier `asan` runs them.
ASAN_OUT := build-asan
asan: all
	$(Q)$(MAKE) --no-print-directory OUT=$(ASAN_OUT) SANITIZE=1 sanitize-bins
sanitize-bins: $(OUT)/kvgate-podsim $(OUT)/kvgated $(UNIT_BINS) $(OUT)/tests/kvsub_probe $(TOK_TOOLS) \
               $(OUT)/tests/san/canary $(OUT)/tests/san/leak_preload.so
# tests/san/canary.sh: does the tier see reports on this machine at all
$(OUT)/tests/san/canary: tests/san/canary.c
	$(call msg,TEST,$@)
	$(Q)mkdir -p $(@D) && $(CC) $(CFLAGS) $< -o $@ -lpthread
$(OUT)/tests/san/leak_preload.so: tests/san/leak_preload.c
	$(call msg,CC,$@)
	$(Q)mkdir -p $(@D) && $(CC) -O1 -g -Wall -Wextra -shared -fPIC $< -o $@

test: deps
	$(Q)$(MAKE) --no-print-directory all fuzz-build asan
	$(Q)tests/run.sh

unit: all
	$(Q)tests/run.sh unit

demo: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)scripts/demo.sh

observe: deps
	$(Q)$(MAKE) --no-print-directory $(BINS)
	$(Q)scripts/observe.sh

clean:
	rm -rf $(OUT) $(ASAN_OUT)

-include $(shell find $(OUT)/obj $(OUT)/tests -name '*.d' 2>/dev/null)
