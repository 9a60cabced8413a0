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
#define KVG_MAP_SOCK "kvg_sock"             /* SOCKHASH: sockets of spliced flows */
#define KVG_MAP_FLOW_CFG "kvg_flow_cfg"     /* per socket: what kvgated asks (peer, mode) */
#define KVG_MAP_FLOW_ST "kvg_flow_st"       /* per socket: what the verdict did */
#define KVG_MAP_SPLICE_STATS "kvg_spl_stats"/* per-reason splice counters */
#define KVG_MAP_POD_LOAD "kvg_pod_load"     /* per pod: requests the kernel sent, answered */
#define KVG_PROG_SPLICE "splice_verdict"    /* the sk_skb stream verdict (function name) */

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
#ifndef KVG_FLOWS_MAX
#define KVG_FLOWS_MAX 65536                 /* sockets in spliced flows (2 per session) */
#endif
#ifndef KVG_SPLICE_STATS_MAX
#define KVG_SPLICE_STATS_MAX 32             /* >= KVG_SPL_REASON_MAX, room to grow */
#endif
#ifndef KVG_HEAD_MAX
#define KVG_HEAD_MAX 8192                   /* request head framed in the kernel, at most */
#endif
#define KVG_SPLICE_BUDGET_DEFAULT (4u << 20) /* bytes in flight per direction per flow */
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
    KVG_POD_F_SATURATED_OWN = 1u << 7,  /* saturated by the pod's own fresh report alone (its
                                         * waiting and KV usage), kvgated's in-flight count left
                                         * out: what a bypass flow's request boundary judges
                                         * (bp_forward.h), since a spliced keep-alive connection
                                         * stays in flight at kvgated while it idles */
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

/* ---- sockmap splice of session flows ----
 *
 * A spliced flow is two TCP sockets: a client's HTTP/1.1 keep-alive
 * connection and kvgated's dedicated connection to the pod the session is
 * pinned to. Both sit in kvg_sock (SOCKHASH, key = the socket's cookie,
 * SO_COOKIE / bpf_get_socket_cookie) under the stream verdict, without a
 * stream parser: the verdict sees each TCP skb once, in order, frames the
 * client's HTTP/1.1 requests and the pod's answers itself
 * (bpf/splice.bpf.c says why not strparser), and sends a request to the
 * pod only if kvgated itself would (KVG_SPLICE_PATHS, below).
 *
 * Two per-socket hashes keyed by the same cookie, one writer each (a
 * user-space update replaces a hash value whole, which would lose the
 * verdict's concurrent counter updates):
 *   kvg_flow_cfg  written by kvgated only: peer, direction, mode, limits
 *   kvg_flow_st   written by the verdict only (kvgated creates it zeroed
 *                 before the socket enters kvg_sock, then only reads it)
 * kvgated changes a flow's mode by writing its cfg with a higher epoch,
 * adopted with the socket's next skb; a SPLICE epoch only once kvgated
 * has read every byte the socket handed up (st.passed <= cfg.passed_mark),
 * so that no byte is redirected ahead of one kvgated still has to read.
 * cfg.flags and the limits take effect without an epoch (they are read at
 * each request head; a new epoch would reset the client's framing). */

enum kvg_flow_dir {
    KVG_DIR_C2P = 1,     /* client socket: requests to the pod */
    KVG_DIR_P2C = 2,     /* pod socket: answers to the client */
};

enum kvg_flow_mode {
    KVG_MODE_PASS = 0,   /* hand everything up (kvgated reads it); pod: answers still framed */
    KVG_MODE_SPLICE = 1, /* redirect to the peer what the verdict lets through */
    /* 2 was RAW (client bytes relayed unparsed by kvgated): gone, never reuse */
};

enum kvg_flow_cfg_flags {
    KVG_CFG_F_DRAIN = 1u << 0, /* client: kvgated is draining: hand the next request head up */
};

enum kvg_flow_state_v {
    KVG_FST_PASS = 0,      /* data goes up (mode PASS) */
    KVG_FST_SPLICED = 1,   /* data goes to the peer */
    KVG_FST_HANDED_UP = 2, /* the verdict gave the flow back to kvgated; `cause` says why */
};

/* kvg_flow_st.phase of a client socket */
enum kvg_flow_phase {
    KVG_PH_HEAD = 0,     /* the next byte starts a request */
    KVG_PH_BODY = 1,     /* body_left bytes of the current request are still to come */
    /* 2 was LOST (framing lost, the flow relayed raw): gone */
};

/* kvg_flow_st.phase of a pod socket: where the answer parser stands */
enum kvg_ans_phase {
    KVG_AN_IDLE = 0,     /* between answers: the next byte starts a status line */
    KVG_AN_STATUS,       /* in "HTTP/1.1 NNN" (pos: bytes seen) */
    KVG_AN_REASON,       /* reason phrase, up to CR */
    KVG_AN_STATUS_LF,
    KVG_AN_LINE,         /* start of a header line, or the CR of the blank line */
    KVG_AN_NAME,
    KVG_AN_OWS,          /* after the colon */
    KVG_AN_VALUE,
    KVG_AN_LF,           /* CR seen at the end of a header line */
    KVG_AN_END_LF,       /* CR of the blank line seen */
    KVG_AN_BODY,         /* Content-Length body: body_left bytes to come */
    KVG_AN_CSIZE0,       /* chunk-size line, no digit yet */
    KVG_AN_CSIZE,        /* chunk-size digits */
    KVG_AN_CEXT,         /* chunk extension, up to CR */
    KVG_AN_CSIZE_LF,
    KVG_AN_CDATA,        /* chunk data: body_left bytes to come */
    KVG_AN_CDATA_CR,
    KVG_AN_CDATA_LF,
    KVG_AN_TRAILER,      /* start of a trailer line, or the CR of the last one */
    KVG_AN_TLINE,
    KVG_AN_TLF,
    KVG_AN_FINAL_LF,
    KVG_AN_CLOSE,        /* a body delimited by the pod's close: everything to the end */
    KVG_AN_BAD,          /* invalid answer: framing stopped (bad_pos says where) */
};

/* kvg_flow_st.flags */
enum kvg_flow_st_flags {
    KVG_ST_F_CLOSE = 1u << 0,   /* client: a request said "connection: close"; pod: an answer
                                 * did: the pod's close ends the client connection too */
    KVG_ST_F_HAVE_CL = 1u << 1, /* pod: the open answer has a Content-Length */
    KVG_ST_F_CHUNKED = 1u << 2, /* pod: ... Transfer-Encoding: chunked */
    KVG_ST_F_DIGIT = 1u << 3,   /* pod: a digit seen in the value being read */
    KVG_ST_F_TRAIL = 1u << 4,   /* pod: OWS after a value's token (only more OWS may follow) */
    KVG_ST_F_SENT = 1u << 5,    /* pod: bytes of the open answer were redirected to the client */
    KVG_ST_F_BAD_SENT = 1u << 6,/* pod: bytes of the invalid answer had reached the client */
};

/* kvg_flow_cfg value (HASH, key __u64 socket cookie). */
struct kvg_flow_cfg {
    __u64 peer;          /* cookie of the flow's other socket (its key in kvg_sock) */
    __u64 peer_base;     /* the peer's tcp bytes_acked at which everything redirected is
                          * acknowledged, less kvg_flow_st.bytes: kvgated writes (peer's
                          * bytes_acked + unacknowledged bytes) - st.bytes when it
                          * splices; in flight = st.bytes - (bytes_acked - peer_base),
                          * in wrapping u64 arithmetic */
    __u64 budget;        /* redirected and not yet acknowledged by the peer, at most
                          * (bytes); more hands the flow up. 0: no budget */
    __u64 max_body;      /* client: a Content-Length above this is handed up (kvgated's
                          * limits.max_body_bytes: it answers 413) */
    __u64 passed_mark;   /* bytes kvgated has read of what this socket handed up (since
                          * it entered kvg_sock): a SPLICE epoch is adopted only while
                          * st.passed <= passed_mark */
    __u32 pod_slot;      /* kvg_pods slot of the pod (checked at each request head) */
    __u32 epoch;         /* kvgated raises it with every change of mode */
    __u32 max_head;      /* client: a request head longer than this is handed up
                          * (kvgated's limits.max_header_bytes: 431); at most KVG_HEAD_MAX */
    __u8 dir;            /* enum kvg_flow_dir */
    __u8 mode;           /* enum kvg_flow_mode */
    __u8 flags;          /* enum kvg_flow_cfg_flags */
    __u8 pad;            /* zero */
    __u32 reserved[2];   /* zero */
};
_Static_assert(sizeof(struct kvg_flow_cfg) == 64, "struct kvg_flow_cfg is part of the pinned ABI");

/* kvg_flow_st value (HASH, key __u64 socket cookie). Byte counters run
 * over the socket's life in kvg_sock (kvgated takes differences). */
struct kvg_flow_st {
    __u64 bytes;         /* redirected to the peer */
    __u64 passed;        /* handed up (SK_PASS): what kvgated reads from the socket */
    __u64 body_left;     /* client: body bytes of the current request still to come;
                          * after a hand-up, the body bytes kvgated must relay to the
                          * pod first (the handed-up skb began with them): 0 when the
                          * hand-up came at a request boundary. Pod: bytes left of the
                          * open Content-Length body or chunk */
    __u64 max_out;       /* most bytes seen in flight to the peer (redirected, unacked),
                          * since the last SPLICE epoch was adopted */
    __u64 last_ns;       /* bpf_ktime_get_ns (CLOCK_MONOTONIC) of the last redirect */
    __u64 bad_pos;       /* pod, phase BAD: handed-up bytes (the `passed` count) before
                          * the invalid answer: kvgated relays those, not the rest */
    __u64 ans_pos;       /* pod: the `passed` count where the open answer began, when it
                          * began in a handed-up skb */
    __u32 epoch;         /* the cfg epoch adopted */
    __u32 requests;      /* client: requests redirected (heads); pod: answers completed
                          * (final status, whole body) */
    __u8 state;          /* enum kvg_flow_state_v */
    __u8 cause;          /* enum kvg_spl_reason of the hand-up (KVG_FST_HANDED_UP) */
    __u8 mid;            /* the hand-up came inside a request body (client) or an answer
                          * (pod): body_left / the pod's framing say what is owed */
    __u8 phase;          /* client: enum kvg_flow_phase; pod: enum kvg_ans_phase */
    __u8 flags;          /* enum kvg_flow_st_flags */
    __u8 hv;             /* pod: which value is being read (0 other, 1 content-length,
                          * 2 transfer-encoding, 3 connection) */
    __u8 pos;            /* pod: bytes of the status line / of a value token matched */
    __s8 m_cl, m_te, m_co; /* pod: header-name bytes matched, -1 no match */
    __u16 status;        /* pod: status code of the open answer */
    __u32 head_bytes;    /* pod: bytes of the open answer's head (at most KVG_ANS_HEAD_MAX) */
};
_Static_assert(sizeof(struct kvg_flow_st) == 80, "struct kvg_flow_st is part of the pinned ABI");

/* What the verdict lets a client send to a pod: exactly what kvgated would
 * forward (user/gateway/relay.c x_classify XK_ROUTED, client_h1.c's
 * limits, user/common/http1.c's syntax): method POST; target one of these
 * paths, optionally followed by "?query"; HTTP/1.1; one Content-Length of
 * digits, <= cfg.max_body; no Transfer-Encoding, Upgrade or Expect; header
 * names of tchars followed at once by ':', values without CTLs but HTAB;
 * CRLF line ends, no obs-fold; at most KVG_REQ_FIELDS_MAX fields; the head
 * within cfg.max_head and within its skb. Anything else is handed up at a
 * request boundary, and kvgated answers it as on its socket path. */
#define KVG_SPLICE_PATH1 "/v1/chat/completions"
#define KVG_SPLICE_PATH2 "/v1/completions"
#define KVG_REQ_FIELDS_MAX 64               /* = HTTP1_MAX_HEADERS (user/common/http1.h) */
#define KVG_ANS_HEAD_MAX 65536              /* a pod's answer head, at most */
#define KVG_HEADS_PER_SKB 16                /* request heads framed in one skb, at most */

/* Every outcome of the splice verdict, counted in kvg_spl_stats (key =
 * reason; value = skbs, bytes). Append only. Hand-up reasons are also
 * kvg_flow_st.cause values. */
enum kvg_spl_reason {
    KVG_SPL_C2P = 0,            /* skb redirected client -> pod */
    KVG_SPL_P2C = 1,            /* skb redirected pod -> client */
    KVG_SPL_REQUEST = 2,        /* request head redirected at an skb's start (bytes: head) */
    KVG_SPL_PASS = 3,           /* skb handed up: mode PASS, or a handed-up flow */
    KVG_SPL_UP_DRAINING = 4,    /* hand-up: the pod is draining */
    KVG_SPL_UP_UNHEALTHY = 5,   /* hand-up: the pod is unhealthy, down, or gone */
    KVG_SPL_UP_SATURATED = 6,   /* hand-up: the pod is saturated (or its metrics stale) */
    KVG_SPL_UP_BUDGET = 7,      /* hand-up: more than the budget in flight to the peer */
    KVG_SPL_UP_UNPARSABLE = 8,  /* hand-up: a malformed head (kvgated: 400), more fields than
                                 * KVG_REQ_FIELDS_MAX or a head over max_head (431) */
    KVG_SPL_UP_UNFRAMED = 9,    /* hand-up: Transfer-Encoding, Upgrade, Expect, no or a
                                 * second Content-Length (kvgated frames it) */
    KVG_SPL_UP_PEER = 10,       /* hand-up: peer socket gone or not established, or the
                                 * redirect failed */
    KVG_SPL_UP_USER = 11,       /* retired (kvgated switching a flow to RAW) */
    KVG_SPL_NO_FLOW = 12,       /* skb of a socket without cfg / st entries: passed */
    KVG_SPL_PIPELINED = 13,     /* request head redirected inside an skb (after another
                                 * request's bytes), filtered like the first */
    KVG_SPL_EMPTY = 14,         /* zero-length skb: dropped, nothing lost */
    KVG_SPL_UP_FILTERED = 15,   /* hand-up: method, path or version not the pod's business
                                 * (kvgated: 404, 405, or serves it itself) */
    KVG_SPL_UP_TOO_LARGE = 16,  /* hand-up: Content-Length over limits.max_body_bytes (413) */
    KVG_SPL_UP_INCOMPLETE = 17, /* hand-up: a head that continues into the next skb */
    KVG_SPL_UP_TOO_MANY = 18,   /* hand-up: more heads in one skb than KVG_HEADS_PER_SKB */
    KVG_SPL_UP_BAD_ANSWER = 19, /* hand-up (pod): an answer with invalid syntax or framing */
    KVG_SPL_UP_GW_DRAIN = 20,   /* hand-up: kvgated is draining (cfg KVG_CFG_F_DRAIN) */
    KVG_SPL_ANSWER = 21,        /* a pod's answer framed to its end (skbs: answers) */
    KVG_SPL_UP_CONTENDED = 22,  /* hand-up: the verdict's per-CPU scratch was taken over by
                                 * another run twice (it ran preemptible, in process
                                 * context): a request goes to kvgated, an answer's framing
                                 * is lost (the connection ends) */
    KVG_SPL_REASON_MAX
};
_Static_assert(KVG_SPL_REASON_MAX <= KVG_SPLICE_STATS_MAX, "kvg_spl_stats too small");

/* Label values for /metrics, indexed by enum kvg_spl_reason. */
#define KVG_SPL_REASON_NAMES                                                   \
    {                                                                          \
        "c2p", "p2c", "request", "pass", "draining", "unhealthy", "saturated", \
        "budget", "unparsable", "unframed", "peer", "user", "no_flow",         \
        "pipelined", "empty", "filtered", "too_large", "incomplete",           \
        "too_many", "bad_answer", "gw_draining", "answer", "contended",        \
    }

/* kvg_spl_stats value (PERCPU_ARRAY: one per CPU; user space sums them). */
struct kvg_spl_stat {
    __u64 skbs;
    __u64 bytes;
};
_Static_assert(sizeof(struct kvg_spl_stat) == 16, "struct kvg_spl_stat is part of the pinned ABI");

/* kvg_pod_load value (ARRAY, key pod slot, BPF_F_MMAPABLE: kvgated reads
 * it as plain memory on every routing decision). What the kernel itself
 * sent each pod: requests kvgated never saw, which load the pod like its
 * own (every path counts: user/core/podtable.h struct pod_kload has this
 * layout and folds it into the pod's in-flight count). Written with atomic
 * adds from any CPU; never reset while kvgated runs (it takes
 * differences). A request whose answer never completes (its flow ended
 * first) is written off by kvgated when the flow's pod socket leaves
 * kvg_sock. */
struct kvg_pod_load {
    __u64 sent;          /* request heads forwarded to the pod */
    __u64 done;          /* answers completed (final status, whole body) */
    __u64 sent_body;     /* Content-Length bytes of the requests forwarded */
    __u64 reserved;      /* zero */
};
_Static_assert(sizeof(struct kvg_pod_load) == 32, "struct kvg_pod_load is part of the pinned ABI");

/* ---- the bypass path: established flows forwarded by XDP (issue 12) ----
 *
 * A DPDK worker does a connection's handshake and first flight, connects
 * to the chosen pod (delayed binding) and replays the request; then it
 * inserts two kvg_bp_flows entries, pod->client and client->pod, and
 * bp_forward (bpf/bypass.bpf.c) moves every later packet of the flow by
 * rewriting it (bpf/bp_rewrite.h) and sending it back out (XDP_TX). IPv4
 * for now (family 2; the key has room for IPv6 addresses later only by a
 * size change). */

#define KVG_MAP_BP_FLOWS "kvg_bp_flows"     /* LRU_HASH: flows XDP forwards */
#define KVG_MAP_BP_STATS "kvg_bp_stats"     /* per-reason packet counters */
#define KVG_PROG_BP_FORWARD "bp_forward"    /* the XDP program (function name) */
#define KVG_PROG_BP_ENTRY "bp_entry"       /* the af_xdp driver's entry program (bp_entry.bpf.c) */
#define KVG_MAP_BPE_CFG "kvg_bpe_cfg"       /* its ARRAY[1]: struct kvg_bpe_cfg */
#define KVG_MAP_BPE_NEXT "kvg_bpe_next"     /* its PROG_ARRAY[1]: kvgated's guard, chained */
#ifndef KVG_BP_FLOWS_MAX
#define KVG_BP_FLOWS_MAX 131072             /* 2 per connection */
#endif

/* kvg_bpe_cfg, key 0: what the entry sends the worker, written by the
 * worker once the driver attached the entry, and its heartbeat. */
struct kvg_bpe_cfg {
    __u16 port;          /* network order: the bypass port; 0 none yet (all to the kernel) */
    __u16 pad;
    __u16 lo, hi;        /* host order: the worker's source ports towards pods; 0-0 none */
    __u64 alive_ns;      /* CLOCK_MONOTONIC of the worker's last heartbeat (every 100 ms):
                          * kvgated takes an entry whose worker has been silent for
                          * seconds for one left behind (user/gateway/bpf_guard.c) */
};
_Static_assert(sizeof(struct kvg_bpe_cfg) == 16, "struct kvg_bpe_cfg: worker and kvgated agree");
#ifndef KVG_BP_STATS_MAX
#define KVG_BP_STATS_MAX 16
#endif

/* A packet as received: its addresses and ports (network order). */
struct kvg_bp_key {
    __u32 saddr;
    __u32 daddr;
    __u16 sport;
    __u16 dport;
    __u32 family;        /* KVG_AF_INET */
};
_Static_assert(sizeof(struct kvg_bp_key) == 16, "struct kvg_bp_key is part of the pinned ABI");

enum kvg_bp_action {
    KVG_BP_ACT_REWRITE = 0, /* rewrite and transmit (XDP_TX) */
    KVG_BP_ACT_PASS = 1,    /* hand the packet up (the worker re-splices or ends it) */
    KVG_BP_ACT_WORKER = 2,  /* the worker took the flow back (it is resetting both sides,
                             * its pod being down): bp_entry sends the packet to the
                             * worker's AF_XDP socket untouched; bp_forward passes it */
};

enum kvg_bp_flow_flags {
    KVG_BP_F_FIN = 1u << 0, /* XDP forwarded a FIN in this direction */
    KVG_BP_F_RST = 1u << 1, /* XDP forwarded a RST in this direction */
    KVG_BP_F_HELD = 1u << 2,/* client -> pod: XDP held the flow at a request boundary, its
                             * pod draining or saturated (bp_forward.h); every later
                             * packet goes to the worker, which hands the connection up to
                             * kvgated from that request on (dpdk/boundary.h) */
};

/* What to do with a packet of the flow: the addresses, ports and MACs it
 * leaves with, and the sequence translation. seq_delta is added (mod 2^32)
 * to the sequence number, ack_delta to the acknowledgement number (when
 * ACK is set); the window field becomes min(65535, (window << win_shl) >>
 * win_shr): the sender's scale undone, the receiver's announced scale
 * applied. Written whole by the worker; XDP updates only flags (atomic OR)
 * and the counters (atomic adds). */
struct kvg_bp_flow {
    __u32 saddr;
    __u32 daddr;
    __u16 sport;
    __u16 dport;
    __u8 smac[6];
    __u8 dmac[6];
    __u32 seq_delta;
    __u32 ack_delta;
    __u8 win_shl;        /* 0..14 */
    __u8 win_shr;        /* 0..14 */
    __u8 action;         /* enum kvg_bp_action */
    __u8 reserved0;
    __u32 pod_slot;      /* kvg_pods entry checked per packet (present, healthy, not
                          * down); >= KVG_POD_MAX: none */
    __u32 flags;         /* enum kvg_bp_flow_flags (XDP) */
    __u32 ttft_n;        /* pod -> client: answers whose first event XDP timed (XDP) */
    __u64 packets;       /* forwarded (XDP) */
    __u64 bytes;
    /* request framing (bpf/bp_frame.h), client -> pod entries of HTTP/1.1
     * flows: the worker sets rq_state and rq_seq at the hand-off, XDP
     * keeps them and counts the request heads it frames in requests.
     * Pod -> client entries (rq_state KVG_BP_RQ_EVENTS): the answers' SSE
     * events counted (bpf/bp_events.h): rq_seq is the pod's sequence
     * number of the next byte to scan, an_match the pattern's progress
     * across segments, events the count. Time to first token of the
     * requests XDP frames (bpf/bp_events.h): the client -> pod side marks
     * an_wait_ns in the pod -> client entry when it frames a request head,
     * the pod -> client side takes the first event after it into
     * ttft_n / ttft_sum_us (the worker marks the first request's too when
     * its answer had not begun at the hand-off) */
    __u32 rq_seq;        /* host order: the client's sequence number of the next byte
                          * to frame (after the first request: the end of the flight) */
    __u8 rq_state;       /* enum kvg_bp_rq_state */
    __u8 rq_why;         /* KVG_BP_RQ_OFF after ON: the enum kvg_bp_reason that stopped it */
    __u16 an_match;      /* pod -> client: bp_events.h's state between segments */
    union {
        __u64 rq_body_left; /* client -> pod: body bytes of the current request still to pass */
        __u64 an_wait_ns;   /* pod -> client: when the request that waits for its first
                             * event began (bpf_ktime_get_ns), 0 none */
    };
    union {
        __u64 requests;  /* client -> pod: request heads framed after the first (XDP) */
        __u64 events;    /* pod -> client: answer events with a JSON object (XDP, and
                          * the worker for answer bytes it relayed before the hand-off) */
    };
    union {
        __u64 rq_body_bytes; /* client -> pod: their Content-Lengths, summed (XDP) */
        __u64 ttft_sum_us;   /* pod -> client: the ttft_n times to first event, summed (XDP) */
    };
};
_Static_assert(sizeof(struct kvg_bp_flow) == 96, "struct kvg_bp_flow is part of the pinned ABI");
/* an_wait_ns's low bits (the time is kept even): the answer began (bytes
 * passed with no event yet) */
#define KVG_BP_TTFT_BEGAN 1ull
#define KVG_BP_TTFT_BITS 1ull

/* Whether XDP frames a flow's requests (kvg_bp_flow.rq_state). */
enum kvg_bp_rq_state {
    KVG_BP_RQ_NONE = 0,     /* not framed: h2c, tests, pod -> client entries not counted */
    KVG_BP_RQ_ON = 1,       /* framing: rq_seq starts a head or the body's rest */
    KVG_BP_RQ_OFF = 2,      /* stopped (rq_why says why): later heads are not counted */
    KVG_BP_RQ_EVENTS = 3,   /* pod -> client: the answers' events counted (bp_events.h) */
};
#define KVG_BP_HEADS_PER_SEG 4  /* request heads framed in one segment, at most */

/* Every exit of bp_forward, counted in kvg_bp_stats (key = reason).
 * Append only. */
enum kvg_bp_reason {
    KVG_BP_FORWARDED = 0,   /* rewritten and transmitted */
    KVG_BP_MISS = 1,        /* TCP/IPv4 with no entry: passed (the worker's or the kernel's) */
    KVG_BP_NOT_IPV4_TCP = 2,/* passed */
    KVG_BP_MALFORMED = 3,   /* passed (the guard drops malformed frames before this runs) */
    KVG_BP_POD_DOWN = 4,    /* its pod is down, unhealthy or gone: to the worker (bp_entry),
                             * which resets both sides; passed by bp_forward */
    KVG_BP_HANDED_UP = 5,   /* the entry says pass (ACT_PASS) */
    KVG_BP_TO_WORKER = 6,   /* the entry says the worker's (ACT_WORKER): as POD_DOWN */
    /* not exits: events of the request framing (bp_frame.h) on forwarded
     * client -> pod packets; packets = events, bytes = 0 */
    KVG_BP_REQUEST = 7,     /* a request head framed (the flow's requests + 1) */
    KVG_BP_UF_BODY = 8,     /* framing stopped: Transfer-Encoding, Upgrade, Expect, two
                             * Content-Lengths (a body not framed by Content-Length) */
    KVG_BP_UF_SPLIT = 9,    /* framing stopped: a head that goes on in the next segment */
    KVG_BP_UF_PARSE = 10,   /* framing stopped: a head it cannot parse (HTTP/1.0, syntax,
                             * longer than KVG_HEAD_MAX) */
    KVG_BP_UF_ORDER = 11,   /* framing stopped: a segment past a gap */
    KVG_BP_UF_MANY = 12,    /* framing stopped: more than KVG_BP_HEADS_PER_SEG heads */
    KVG_BP_BOUNDARY = 13,   /* an exit: a segment that starts a request (framed flow, at
                             * rq_seq, no body left) while its pod is draining or
                             * saturated, with a worker socket to take it: held
                             * (KVG_BP_F_HELD), untouched to the worker; the flow's later
                             * packets count under to_worker */
    /* not exits: events of the answer-event count (bp_events.h) on
     * forwarded pod -> client packets; packets = events, bytes = 0 */
    KVG_BP_EVENT = 14,      /* an answer event counted (the flow's events + 1) */
    KVG_BP_EV_GAP = 15,     /* a pod segment past a gap (lost or reordered before the
                             * gateway, or late frames the worker relayed and counted
                             * itself after the hand-off): the count goes on from it,
                             * the gap's events are not counted by XDP */
    KVG_BP_REASON_MAX
};
_Static_assert(KVG_BP_REASON_MAX <= KVG_BP_STATS_MAX, "kvg_bp_stats too small");
#define KVG_BP_REASON_NAMES                                                    \
    { "forwarded", "miss", "not_ipv4_tcp", "malformed", "pod_down", "handed_up", "to_worker", \
      "request", "unframed_body", "unframed_split", "unframed_parse", "unframed_order",       \
      "unframed_many", "boundary", "answer_event", "answer_event_gap", }

struct kvg_bp_stat {
    __u64 packets;
    __u64 bytes;
};

#endif
