/* decide: the decision channel between a bypass worker (kvg-bypassd) and
 * kvgated (issue 12). The contract and its codec only: no I/O.
 *
 * Why a channel and not the worker inside kvgated: the DPDK worker keeps
 * its own process (its EAL, its af_xdp port and mempool, a loop that
 * polls and never blocks), apart from kvgated's epoll loops and threads;
 * but the pick must be kvgated's (one policy, one prefix index, one
 * session table, one set of in-flight counts, metrics and access log), so
 * the worker asks kvgated for every first request over a local unix
 * SOCK_SEQPACKET socket (bypass.decide_socket), one message per packet.
 *
 *   worker -> kvgated  DECIDE  {id, proto, tenant, session, body length,
 *                               the body's first chunk}
 *                      BODY    {id, offset, the next chunk} until the
 *                               whole body was sent (kvgated scans the
 *                               body as its socket path does: model,
 *                               "user", the prompt's fingerprint and
 *                               tokens, exact-index tokens)
 *   kvgated -> worker  ANSWER  {id, status, pod slot, pod IPv4 and port,
 *                               a short error text for a non-200}
 *   worker -> kvgated  DONE    {id, slot, outcome, HTTP status if known,
 *                               bytes in / out, TTFT if known; version 6:
 *                               the connection's answer events, as the
 *                               worker and XDP counted them, for kvgated's
 *                               token estimate}
 *                               when the request (for a spliced flow: the
 *                               connection) ends, or the worker gave up
 *                               before the answer; none after a non-200
 *                               ANSWER (kvgated already ended it)
 *   kvgated -> worker  ANSWER  status HANDUP (version 3, only to a worker
 *                               whose DECIDE said it can hand up): the
 *                               request is not for the bypass by
 *                               kvgated's rules (err: the cause, "model",
 *                               "session" or "h2c"); the worker hands the
 *                               connection up (dpdk/handup.h) and kvgated
 *                               serves it; nothing is routed or in
 *                               flight, so no DONE follows
 *   worker -> kvgated  REQS    {id, slot, requests, unframed} (version 2):
 *                               a spliced HTTP/1.1 flow's requests after
 *                               the first, as XDP framed them (a running
 *                               total, never smaller than the last one
 *                               sent), and why XDP stopped framing the
 *                               flow, if it did; sent when any of its
 *                               fields changes (the worker looks every 250 ms)
 *                               and before the flow's DONE; version 4
 *                               adds whether the connection is idle
 *                               (nothing moved either way for two looks:
 *                               kvgated stops counting it in flight until
 *                               it moves again); version 5 adds the
 *                               body bytes of those requests (their
 *                               Content-Lengths as XDP framed them, a
 *                               running total modulo 2^32: the receiver
 *                               takes the difference); version 7 adds
 *                               how many of them XDP timed to their
 *                               answer's first event and those times
 *                               summed (bpf/bp_events.h; running totals
 *                               modulo 2^32, microseconds)
 *
 * The pod's MAC is not in the ANSWER: it is L2 on the worker's interface;
 * the worker takes it from its kernel's neighbour table (or --pod-mac,
 * the next hop for every pod).
 *
 * Wire format: little-endian, fixed layouts with declared variable parts
 * that must add up to the packet's length exactly; every field bounded;
 * reserved bytes must be 0; a packet that breaks any rule is refused whole
 * (-EBADMSG; a wrong version: -EPROTONOSUPPORT). kvgated treats the
 * worker as untrusted input. Header (8 bytes): u8 version, u8 type,
 * u16 reserved, u32 id.
 *
 * Versions: 1 (DECIDE, BODY, ANSWER, DONE), 2 (the same, and REQS), 3
 * (the same, DECIDE's flags and ANSWER's status HANDUP), 4 (the same,
 * REQS's idle byte), 5 (the same, REQS's body bytes), 6 (the same,
 * DONE's answer events) and 7 (the same, REQS's times to first token, 8
 * bytes longer). A decoder takes all seven and says which
 * (decide_msg.version); a REQS in a version 1 packet, DECIDE flags or a
 * HANDUP below version 3, an idle REQS below version 4, REQS body bytes
 * below version 5, DONE events below version 6, a REQS of version 7's
 * length below it (or of the old length at 7) are malformed. Each side
 * keeps to the version its peer speaks: kvgated
 * answers in the version of the worker's first packet (and refuses a
 * worker that changes it), so a version 1 or 2 worker keeps working
 * against this kvgated (and is never answered HANDUP); a newer worker
 * against an older kvgated is refused at its first packet (upgrade
 * kvgated first). Then:
 *   DECIDE  u64 body_len, u32 chunk_len, u8 proto, u8 tenant_len,
 *           u8 session_len, u8 flags (enum decide_flags; version 3, else
 *           0); tenant, session, chunk
 *   BODY    u64 offset, u32 chunk_len (>= 1), u32 0; chunk
 *   ANSWER  u16 status, u16 port, u32 slot, u8 addr[4], u8 err_len, u8 0[3];
 *           err (200: port != 0, slot < 512, no err; else port, slot and
 *           addr 0; HANDUP: err one of decide_handup_name's names)
 *   DONE    u32 slot, u16 http_status (0 or 100..599), u8 outcome, u8 0,
 *           u64 bytes_in, u64 bytes_out, u32 ttft_us, u32 events (version 6,
 *           else 0)
 *   REQS    u32 slot (< 512), u32 requests, u8 unframed (enum
 *           decide_unframed), u8 idle (0 or 1; version 4, else 0), u8 0[2],
 *           u32 body (version 5, else 0); version 7: then u32 rq_ttft_n, u32
 *           rq_ttft_us
 * Text fields (tenant, session, err) are printable ASCII. Whether a
 * BODY's offset follows on from what came before is the receiver's
 * check (it holds the state). */
#ifndef KVGATE_BYPASS_DECIDE_H
#define KVGATE_BYPASS_DECIDE_H

#include <stddef.h>
#include <stdint.h>

#define DECIDE_VERSION 7      /* what this side sends unless told otherwise */
#define DECIDE_VERSION_MIN 1  /* the oldest it reads */
#define DECIDE_HDR 8

enum decide_type {
    DECIDE_T_DECIDE = 1,
    DECIDE_T_BODY = 2,
    DECIDE_T_ANSWER = 3,
    DECIDE_T_DONE = 4,
    DECIDE_T_REQS = 5,    /* version 2 */
};

#define DECIDE_TENANT_MAX 127     /* bytes, printable ASCII (0x20..0x7e) */
#define DECIDE_SESSION_MAX 127
#define DECIDE_CHUNK_MAX 32768    /* body bytes in one packet */
#define DECIDE_BODY_MAX (1ull << 30) /* kvgated also applies limits.max_body_bytes */
#define DECIDE_ERR_MAX 200        /* ANSWER's error text */
#define DECIDE_SLOT_MAX 512       /* = POD_MAX */

#define DECIDE_FIXED_DECIDE (DECIDE_HDR + 16)
#define DECIDE_FIXED_BODY (DECIDE_HDR + 16)
#define DECIDE_FIXED_ANSWER (DECIDE_HDR + 16)
#define DECIDE_FIXED_DONE (DECIDE_HDR + 32)
#define DECIDE_FIXED_REQS (DECIDE_HDR + 16)  /* versions 2-6 */
#define DECIDE_FIXED_REQS7 (DECIDE_HDR + 24) /* version 7: the times to first token */
/* The largest packet either side sends (a DECIDE with everything). */
#define DECIDE_MSG_MAX (DECIDE_FIXED_DECIDE + DECIDE_TENANT_MAX + DECIDE_SESSION_MAX + \
                        DECIDE_CHUNK_MAX)

enum decide_proto { DECIDE_PROTO_H1 = 1, DECIDE_PROTO_H2C = 2 };

/* DECIDE flags (version 3). */
enum decide_flags {
    DECIDE_F_HANDUP = 1,     /* this worker can hand a connection up (--adopt): answer
                              * HANDUP rather than route what is not for the bypass */
};

/* ANSWER status: an HTTP status. 200: routed (slot, addr, port set);
 * 400 (the body is not a request kvgated would route), 404 (no pod
 * serves the model), 413 (body over limits.max_body_bytes), 503 (no
 * pod, or none the worker can reach): the worker answers the client
 * with the OpenAI error JSON carrying err and closes. Or (version 3, to
 * a DECIDE with DECIDE_F_HANDUP only) DECIDE_STATUS_HANDUP, outside
 * HTTP's statuses: hand the connection up, for the cause err names. */
#define DECIDE_STATUS_HANDUP 1000

/* HANDUP's causes (err carries the name). */
enum decide_handup {
    DECIDE_HU_MODEL = 1,     /* the model is not spliced by kvgated's splice.mode /
                              * splice.models (off, or auto and a policy that needs
                              * to see each request) */
    DECIDE_HU_SESSION = 2,   /* no x-session-id: nothing pins the connection's requests
                              * to one pod */
    DECIDE_HU_H2C = 3,       /* an h2c request whose pod does not speak h2c
                              * (kvgated's pods[].h2c) */
    DECIDE_HU_MAX = 3,
};

/* DONE outcome: how the worker's side of the request ended. */
enum decide_outcome {
    DECIDE_OK = 0,           /* answered by the pod; the connection ended normally */
    DECIDE_CLIENT_ABORT = 1, /* the client left (before or after the answer began) */
    DECIDE_POD_ERROR = 2,    /* the pod refused or reset, the replay failed */
    DECIDE_TIMEOUT = 3,      /* idle too long */
    DECIDE_SHUTDOWN = 4,     /* the worker is stopping */
    DECIDE_REJECTED = 5,     /* the worker answered itself (e.g. no MAC for the pod) */
    DECIDE_POD_DOWN = 6,     /* spliced, then its pod went down, unhealthy or away in
                              * kvgated's pod table (kvg_pods): both sides reset */
    DECIDE_OUTCOME_MAX = 6,
};

/* REQS unframed: why XDP stopped counting a flow's request boundaries
 * (bpf/bp_frame.h); the requests after that are not counted. */
enum decide_unframed {
    DECIDE_UF_NONE = 0,      /* still framed */
    DECIDE_UF_BODY = 1,      /* a body not framed by one Content-Length (chunked,
                              * Upgrade, Expect, two Content-Lengths) */
    DECIDE_UF_SPLIT = 2,     /* a request head split across segments */
    DECIDE_UF_PARSE = 3,     /* a head it cannot parse (HTTP/1.0, junk, too long) */
    DECIDE_UF_ORDER = 4,     /* a segment past a gap (one lost or reordered before it) */
    DECIDE_UF_MANY = 5,      /* more request heads in one segment than XDP frames */
    DECIDE_UF_FIRST = 6,     /* the first flight held more than the first request */
    DECIDE_UF_LOST = 7,      /* XDP's entry was evicted and put back: its count is lost */
    DECIDE_UF_H2C = 8,       /* an h2c connection: streams are not framed */
    DECIDE_UF_MAX = 8,
};

struct decide_msg {
    uint8_t version;                  /* decode: the packet's; encode: 0 = DECIDE_VERSION */
    uint8_t type;                     /* enum decide_type */
    uint32_t id;
    /* DECIDE */
    uint8_t proto;                    /* enum decide_proto */
    uint8_t flags;                    /* enum decide_flags (version 3) */
    char tenant[DECIDE_TENANT_MAX + 1]; /* "" none */
    char session[DECIDE_SESSION_MAX + 1];
    uint64_t body_len;                /* the whole body */
    /* DECIDE (the first chunk, from offset 0) and BODY */
    uint64_t offset;                  /* BODY: where chunk starts in the body */
    const uint8_t *chunk;             /* points into the packet on decode */
    uint32_t chunk_len;
    /* ANSWER */
    uint16_t status;
    uint16_t port;                    /* host order */
    uint32_t slot;
    uint8_t addr[4];                  /* IPv4, network order bytes */
    char err[DECIDE_ERR_MAX + 1];
    /* DONE (slot above too) */
    uint8_t outcome;                  /* enum decide_outcome */
    uint16_t http_status;             /* 0 unknown */
    uint64_t bytes_in, bytes_out;     /* client -> pod, pod -> client */
    uint32_t ttft_us;                 /* 0 unknown */
    uint32_t events;                  /* version 6: the connection's answer events (SSE
                                       * events with a JSON object, bpf/bp_events.h),
                                       * saturating */
    /* REQS (slot above too) */
    uint32_t requests;                /* requests after the first, a running total */
    uint8_t unframed;                 /* enum decide_unframed */
    uint8_t idle;                     /* version 4: the connection is idle now */
    uint32_t body;                    /* version 5: those requests' body bytes, a
                                       * running total modulo 2^32 */
    uint32_t rq_ttft_n;               /* version 7: of those requests, how many XDP timed
                                       * to their answer's first event, and */
    uint32_t rq_ttft_us;              /* ... the times summed (us); both running totals
                                       * modulo 2^32 */
};

/* m into buf[0..cap), in version m->version (0: DECIDE_VERSION). The
 * packet's length, or -EINVAL (a field out of bounds, a version not
 * spoken, a type the version lacks: encoding checks the same rules
 * decoding does) or -ENOSPC. */
int decide_encode(const struct decide_msg *m, uint8_t *buf, size_t cap);
/* One packet of len bytes into m (m->chunk points into buf). 0,
 * -EPROTONOSUPPORT (another version) or -EBADMSG. */
int decide_decode(const uint8_t *buf, size_t len, struct decide_msg *m);

const char *decide_outcome_name(unsigned outcome);
const char *decide_unframed_name(unsigned unframed);
/* "model", "session", "h2c"; NULL out of range. */
const char *decide_handup_name(unsigned cause);
/* The enum decide_handup err names, or 0. */
unsigned decide_handup_of(const char *err);

#endif
