/* kvgate.h: the one contract between kvgate's BPF programs and user space.
 *
 * Included by every bpf/<name>.bpf.c (after vmlinux.h) and by user space
 * (user/gateway/bpf.c, tests/bpf/). Everything a map holds is declared
 * here, once: keys and values with fixed-width types, explicit padding and
 * a _Static_assert on each size, the enums whose values cross the boundary
 * (XDP reasons, pod flags), the map names (user space and bpftool find
 * maps by these), and the tunables' defaults.
 *
 * Types: under clang -target bpf (__bpf__ defined) __u8..__u64 come from
 * vmlinux.h, which the .bpf.c includes first; in user space from
 * <linux/types.h> (linux-libc-dev, present without linux-headers).
 * Multi-byte address and port fields are in network byte order, as they
 * sit in packets and in struct bpf_sock; everything else is host order.
 *
 * Compatibility: kvgated reuses maps pinned by an earlier run when their
 * type, key size, value size and max_entries match. Changing a struct here
 * changes a size and makes old pins incompatible (kvgated then says so and
 * runs on the socket path until scripts/bpf-unload.sh removes them); new
 * fields go into the reserved words first. The Makefile rebuilds both the
 * BPF objects and user space when this file changes (bpf/bpf.mk). */
#ifndef KVGATE_BPF_KVGATE_H
#define KVGATE_BPF_KVGATE_H

#ifndef __bpf__
#include <linux/types.h>
#endif

/* ---- map names (15 characters at most: BPF_OBJ_NAME_LEN) ---- */

#define KVG_MAP_PODS "kvg_pods"             /* pod table */
#define KVG_MAP_XDP_STATS "kvg_xdp_stats"   /* per-reason packet counters */
#define KVG_MAP_XDP_CFG "kvg_xdp_cfg"       /* XDP guard limits */
#define KVG_MAP_SYN_BUCKETS "kvg_syn_bkt"   /* per-source SYN token buckets */
#define KVG_MAP_XDP_PROGS "kvg_xdp_progs"   /* tail-call slots */
#define KVG_PROG_XDP_GUARD "xdp_guard"      /* the XDP entry point (function name) */

/* Pin layout, the same whether kvgated or `bpftool prog loadall ... pinmaps`
 * made it: <dir>/xdp_guard and <dir>/maps/<map name>. */
#define KVG_PIN_DIR_DEFAULT "/sys/fs/bpf/kvgate"
#define KVG_PIN_MAPS_SUBDIR "maps"

/* ---- sizes (override with -D; a change makes old pins incompatible) ---- */

#ifndef KVG_POD_MAX
#define KVG_POD_MAX 512                     /* = POD_MAX in user/core/podtable.h */
#endif
#ifndef KVG_SYN_BUCKETS_MAX
#define KVG_SYN_BUCKETS_MAX 65536           /* sources tracked at once (LRU) */
#endif
#ifndef KVG_XDP_STATS_MAX
#define KVG_XDP_STATS_MAX 32                /* >= KVG_XDP_REASON_MAX, room to grow */
#endif
#ifndef KVG_XDP_PROG_SLOTS
#define KVG_XDP_PROG_SLOTS 4
#endif
#ifndef KVG_IP6_EXT_MAX
#define KVG_IP6_EXT_MAX 6                   /* IPv6 extension headers walked */
#endif

#define KVG_AF_INET 2                       /* = AF_INET (not in vmlinux.h) */
#define KVG_AF_INET6 10                     /* = AF_INET6 */

/* ---- pod table: key __u32 slot (< KVG_POD_MAX), value struct kvg_pod ---- */

enum kvg_pod_flags {
    KVG_POD_F_PRESENT = 1u << 0,        /* the slot holds a pod (else all zero) */
    KVG_POD_F_HEALTHY = 1u << 1,        /* last health check passed */
    KVG_POD_F_DRAINING = 1u << 2,       /* admin: no new requests */
    KVG_POD_F_SATURATED = 1u << 3,      /* waiting >= queue_saturation, KV >= kv_saturation,
                                         * or metrics not fresh (as the policy judges) */
    KVG_POD_F_METRICS_FRESH = 1u << 4,  /* scraped within stale_ms when written */
    KVG_POD_F_METRICS_OK = 1u << 5,     /* at least one scrape parsed */
    KVG_POD_F_DOWN = 1u << 6,           /* the data path saw it fail; out until a health check */
};

struct kvg_pod {
    __u32 addr[4];       /* IPv4 in addr[0] (as bpf_sock.remote_ip4), IPv6 in all four */
    __u16 port;          /* network byte order */
    __u8 family;         /* KVG_AF_INET, KVG_AF_INET6; 0 = empty slot */
    __u8 engine;         /* enum pod_engine: 0 vLLM, 1 SGLang, 2 TRT-LLM */
    __u32 flags;         /* enum kvg_pod_flags */
    __u32 waiting;       /* scraped queue length (rounded) */
    __u32 running;       /* scraped running requests (rounded) */
    __u32 kv_permille;   /* scraped KV-cache usage x 1000, 0..1000 */
    __u32 inflight;      /* the gateway's requests at the pod when written */
    __u64 metrics_ns;    /* CLOCK_MONOTONIC (= bpf_ktime_get_ns) of the last good
                          * scrape; 0 never. Readers judge age themselves: the
                          * table is written only when the control thread publishes */
    __u64 generation;    /* pod-table snapshot generation that wrote this slot */
    __u32 reserved[2];   /* zero; room for fields without a size change */
};
_Static_assert(sizeof(struct kvg_pod) == 64, "struct kvg_pod is part of the pinned ABI");

/* ---- XDP guard ---- */

/* Every exit of the XDP guard, counted in kvg_xdp_stats under one of these
 * (key = reason). Append only: the numbers are the map's keys. */
enum kvg_xdp_reason {
    KVG_XDP_PASS_TCP = 0,           /* well-formed TCP, not a new connection */
    KVG_XDP_PASS_SYN = 1,           /* new connection within its source's budget, or limiter off */
    KVG_XDP_PASS_SYN_UNTRACKED = 2, /* new connection; no bucket (LRU insert failed): fail open */
    KVG_XDP_PASS_NON_IP = 3,        /* ARP, LLDP, a second VLAN tag, ... */
    KVG_XDP_PASS_NON_TCP = 4,       /* UDP, ICMP, ICMPv6, ESP, fragments of non-TCP ... */
    KVG_XDP_PASS_FRAGMENT = 5,      /* TCP inside an IP fragment, fragment policy "pass" */
    KVG_XDP_DROP_MALFORMED_ETH = 6, /* shorter than the Ethernet header or its VLAN tag */
    KVG_XDP_DROP_MALFORMED_IP = 7,  /* IPv4: truncated, version, ihl < 5, total length
                                     * shorter than the header or longer than the packet */
    KVG_XDP_DROP_MALFORMED_IP6 = 8, /* IPv6: truncated, version, payload length longer than
                                     * the packet, truncated extension header */
    KVG_XDP_DROP_IP6_EXT_CHAIN = 9, /* more than KVG_IP6_EXT_MAX extension headers */
    KVG_XDP_DROP_MALFORMED_TCP = 10,/* truncated, doff < 5, header longer than the IP payload */
    KVG_XDP_DROP_FRAGMENT = 11,     /* TCP inside an IP fragment, fragment policy "drop" */
    KVG_XDP_DROP_SYN_RATELIMIT = 12,/* new connection over its source's budget */
    KVG_XDP_REASON_MAX
};
_Static_assert(KVG_XDP_REASON_MAX <= KVG_XDP_STATS_MAX, "kvg_xdp_stats too small");

/* Label values for /metrics, indexed by enum kvg_xdp_reason. */
#define KVG_XDP_REASON_NAMES                                                   \
    {                                                                          \
        "pass_tcp", "pass_syn", "pass_syn_untracked", "pass_non_ip",           \
        "pass_non_tcp", "pass_fragment", "drop_malformed_eth",                 \
        "drop_malformed_ip", "drop_malformed_ip6", "drop_ip6_ext_chain",       \
        "drop_malformed_tcp", "drop_fragment", "drop_syn_ratelimit",           \
    }

/* kvg_xdp_stats value (PERCPU_ARRAY: one per CPU; user space sums them). */
struct kvg_xdp_stat {
    __u64 packets;
    __u64 bytes;         /* frame bytes, from the Ethernet header */
};
_Static_assert(sizeof(struct kvg_xdp_stat) == 16, "struct kvg_xdp_stat is part of the pinned ABI");

enum kvg_xdp_cfg_flags {
    KVG_XDP_CFG_F_SYN_LIMIT = 1u << 0,      /* rate-limit new connections per source */
    KVG_XDP_CFG_F_DROP_FRAGMENTS = 1u << 1, /* drop TCP in IP fragments (else pass) */
};

/* kvg_xdp_cfg: ARRAY, one entry (key 0), read by the guard on every packet,
 * so `bpftool map update` (scripts/bpf-config.sh) takes effect at once.
 * While version is 0 (a fresh map) the guard uses the defaults compiled into
 * its read-only data (kvg_xdp_defaults, which the skeleton loader may set
 * before load); kvgated never overwrites an entry an operator wrote. */
struct kvg_xdp_cfg {
    __u32 version;       /* KVG_XDP_CFG_VERSION; 0: use the defaults */
    __u32 flags;         /* enum kvg_xdp_cfg_flags */
    __u32 syn_rate;      /* new connections per second per source; 0: limiter off */
    __u32 syn_burst;     /* bucket depth: connections at once after a quiet spell (>= 1) */
    __u16 gw_port;       /* network byte order: TCP to this port tail-calls slot 0
                          * (bypass steering) before passing; 0: no tail call */
    __u8 v4_prefix;      /* IPv4 sources share a bucket per /v4_prefix (32) */
    __u8 v6_prefix;      /* IPv6 sources share a bucket per /v6_prefix (64) */
    __u32 reserved[3];   /* zero */
};
_Static_assert(sizeof(struct kvg_xdp_cfg) == 32, "struct kvg_xdp_cfg is part of the pinned ABI");

#define KVG_XDP_CFG_VERSION 1
#define KVG_XDP_SYN_RATE_DEFAULT 100     /* per source per second */
#define KVG_XDP_SYN_BURST_DEFAULT 200
#define KVG_XDP_V4_PREFIX_DEFAULT 32
#define KVG_XDP_V6_PREFIX_DEFAULT 64     /* one bucket per /64: a host owns a whole /64 */
#define KVG_XDP_CFG_DEFAULT                                                    \
    {                                                                          \
        .version = KVG_XDP_CFG_VERSION,                                        \
        .flags = KVG_XDP_CFG_F_SYN_LIMIT | KVG_XDP_CFG_F_DROP_FRAGMENTS,       \
        .syn_rate = KVG_XDP_SYN_RATE_DEFAULT,                                  \
        .syn_burst = KVG_XDP_SYN_BURST_DEFAULT,                                \
        .gw_port = 0,                                                          \
        .v4_prefix = KVG_XDP_V4_PREFIX_DEFAULT,                                \
        .v6_prefix = KVG_XDP_V6_PREFIX_DEFAULT,                                \
    }

/* kvg_syn_bkt: LRU_HASH, key struct kvg_src (a source address, masked to
 * its prefix), value struct kvg_bucket. */
struct kvg_src {
    __u32 addr[4];       /* IPv6, or IPv4 as ::ffff:a.b.c.d; masked to the prefix */
};
_Static_assert(sizeof(struct kvg_src) == 16, "struct kvg_src is part of the pinned ABI");

/* A token bucket in its virtual-scheduling form (GCRA): one word instead of
 * (tokens, last refill). With T = 1 s / syn_rate, a SYN at time t is
 * admitted when tat - t <= (syn_burst - 1) * T, and then tat becomes
 * max(tat, t) + T: exactly syn_burst at once after a quiet spell, then
 * syn_rate per second, the same admissions as a bucket of syn_burst tokens
 * refilled at syn_rate. Updated with compare-and-swap, so CPUs racing on one
 * source do not over-admit. When an operator raises the limits, a source
 * throttled under the old ones is cut back to the new maximum backlog, so
 * the new limits apply to it within one new interval. */
struct kvg_bucket {
    __u64 tat;           /* theoretical arrival time, bpf_ktime_get_ns clock */
    __u64 dropped;       /* SYNs this source had dropped (for an operator's dump) */
};
_Static_assert(sizeof(struct kvg_bucket) == 16, "struct kvg_bucket is part of the pinned ABI");

/* kvg_xdp_progs: PROG_ARRAY slots. An empty slot makes the tail call a
 * no-op and the guard passes the packet. A program in a slot counts its own
 * exits (it may share kvg_xdp_stats, above KVG_XDP_REASON_MAX). */
enum kvg_xdp_prog_slot {
    KVG_XDP_SLOT_STEER = 0,      /* reserved: bypass steering of new gateway flows */
};

#endif
