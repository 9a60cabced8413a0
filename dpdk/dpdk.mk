# dpdk.mk: the bypass worker (included by the top Makefile). Built only
# where Debian's DPDK is installed (scripts/deps.sh installs dpdk and
# libdpdk-dev): pkg-config libdpdk.

DPDK_OK := $(shell pkg-config --exists libdpdk 2>/dev/null && echo 1)
ifeq ($(DPDK_OK),1)
DPDK_CFLAGS := $(shell pkg-config --cflags libdpdk)
DPDK_LIBS   := $(shell pkg-config --libs libdpdk)
DPDK_BINS   := $(OUT)/kvg-bypassd $(BPF_DIR)/bp_entry.bpf.o $(OUT)/tests/chan_shim.so

# the worker's modules (dpdk/worker.h says which does what), one compile
DPDK_SRCS   := $(wildcard dpdk/*.c)
DPDK_HDRS   := $(wildcard dpdk/*.h)

$(OUT)/kvg-bypassd: $(DPDK_SRCS) $(DPDK_HDRS) $(BPF_HDRS) $(OUT)/libbypass.a $(OUT)/libcommon.a
	$(call msg,LINK,$@)
	$(Q)$(CC) -O2 -g -std=gnu11 -D_GNU_SOURCE -Iuser -Ibpf -I$(BPF_DIR) $(DPDK_CFLAGS) \
	    -Wall -Wno-address-of-packed-member $(DPDK_SRCS) $(OUT)/libbypass.a \
	    $(OUT)/libcommon.a -o $@ $(DPDK_LIBS) $(LDLIBS)

# tests/dpdk/test_queues.sh: veth's queues as combined channels, for the
# af_xdp driver (the shim's comment says why; never for production)
$(OUT)/tests/chan_shim.so: tests/dpdk/chan_shim.c
	$(call msg,CC,$@)
	$(Q)mkdir -p $(@D) && $(CC) -O2 -Wall -shared -fPIC $< -o $@ -ldl
else
DPDK_BINS :=
endif
