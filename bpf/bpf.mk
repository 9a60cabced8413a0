# bpf.mk: BPF objects, skeletons and the BPF tests (included by the top
# Makefile after its variables: OUT, CC, CLANG, CFLAGS, Q, msg).
#
#   build/bpf/vmlinux.h          bpftool btf dump of the running kernel
#   build/bpf/X.bpf.o            clang -target bpf from bpf/X.bpf.c
#   build/bpf/X.skel.h           bpftool gen skeleton (user/gateway/bpf.c)
#   build/tests/bpf/...          tests/bpf/*.c (test_*, bench_*, helpers)
#
# Exposes BPF_OBJS, BPF_SKELS, BPF_LDLIBS (appended to LDLIBS: libbpf for
# kvgated and for anything linking libgateway.a), BPF_TEST_BINS.
# bpf/kvgate.h is the kernel/user contract: every BPF object depends on it,
# and user objects that include it pick it up through their .d files, so a
# change rebuilds both sides.

.DELETE_ON_ERROR:

BPF_DIR      := $(OUT)/bpf
BPFTOOL      ?= bpftool
BPF_ARCH     := $(shell uname -m | sed 's/x86_64/x86/;s/aarch64/arm64/;s/ppc64le/powerpc/;s/riscv64/riscv/;s/s390x/s390/')
# -mcpu=v3: 32-bit jumps and atomics (the SYN limiter's compare-and-swap)
BPF_CFLAGS   ?= -O2 -g -Wall -Wno-unused-function
BPF_CFLAGS   += -target bpf -mcpu=v3 -D__TARGET_ARCH_$(BPF_ARCH) -I$(BPF_DIR) -Ibpf
BPF_LDLIBS   := -lbpf -lelf -lz
BPF_HDRS     := bpf/kvgate.h bpf/maps.h $(wildcard bpf/splice_*.h bpf/bp_*.h)

BPF_SRCS     := $(wildcard bpf/*.bpf.c)
BPF_OBJS     := $(BPF_SRCS:bpf/%.bpf.c=$(BPF_DIR)/%.bpf.o)
BPF_SKELS    := $(BPF_SRCS:bpf/%.bpf.c=$(BPF_DIR)/%.skel.h)

# test-only BPF programs (a steering stub, the live-frames generator)
BPF_TEST_SRCS := $(wildcard tests/bpf/*.bpf.c)
BPF_TEST_OBJS := $(BPF_TEST_SRCS:tests/bpf/%.bpf.c=$(BPF_DIR)/tests/%.bpf.o)
BPF_TEST_SKELS := $(BPF_TEST_SRCS:tests/bpf/%.bpf.c=$(BPF_DIR)/tests/%.skel.h)
BPF_TEST_CSRCS := $(wildcard tests/bpf/*.c)
BPF_TEST_BINS := $(filter-out %.bpf,$(BPF_TEST_CSRCS:tests/bpf/%.c=$(OUT)/tests/bpf/%))

# user space finds kvgate.h as "kvgate.h" and skeletons as "X.skel.h"
CFLAGS += -Ibpf -I$(BPF_DIR)
LDLIBS += $(BPF_LDLIBS)

# generated files are kept (the tests' skeletons are only reached through
# pattern rules, which would make them intermediate and deleted)
.SECONDARY: $(BPF_OBJS) $(BPF_SKELS) $(BPF_TEST_OBJS) $(BPF_TEST_SKELS)

.PHONY: bpf bpf-tests
bpf: $(BPF_OBJS) $(BPF_SKELS)
bpf-tests: $(BPF_TEST_BINS) $(BPF_TEST_OBJS)

# vmlinux.h: regenerated only when absent (the kernel does not change under
# a build; `make clean` or rm forces it)
$(BPF_DIR)/vmlinux.h:
	$(call msg,BTF,$@)
	$(Q)mkdir -p $(@D) && $(BPFTOOL) btf dump file /sys/kernel/btf/vmlinux format c > $@

$(BPF_DIR)/%.bpf.o: bpf/%.bpf.c $(BPF_HDRS) $(BPF_DIR)/vmlinux.h
	$(call msg,BPF,$@)
	$(Q)$(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(BPF_DIR)/tests/%.bpf.o: tests/bpf/%.bpf.c $(BPF_HDRS) $(BPF_DIR)/vmlinux.h
	$(call msg,BPF,$@)
	$(Q)mkdir -p $(@D) && $(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(BPF_DIR)/%.skel.h: $(BPF_DIR)/%.bpf.o
	$(call msg,SKEL,$@)
	$(Q)$(BPFTOOL) gen skeleton $< > $@

# the fuzz target of the verdict's framing runs these headers in user space
$(OUT)/fuzz/fuzz_splice: $(BPF_HDRS)

# generated headers must exist before the first compile of their users
# (order only: from then on the .d files say who includes what)
$(OUT)/obj/user/gateway/bpf.o $(OUT)/obj/user/gateway/splice.o: | $(BPF_SKELS)

BPF_TEST_DEPS := $(BPF_SKELS) $(BPF_TEST_SKELS) $(BPF_HDRS) tests/harness.h \
                 $(wildcard tests/bpf/*.h)
# test_gwbpf includes user/gateway/bpf.c; the others use skeletons alone
$(OUT)/tests/bpf/%: tests/bpf/%.c $(BPF_TEST_DEPS) $(OUT)/libcore.a $(OUT)/libcommon.a
	$(call msg,TEST,$@)
	$(Q)mkdir -p $(@D) && $(CC) $(CFLAGS) $< $(OUT)/libcore.a $(OUT)/libcommon.a -o $@ $(LDLIBS)
