/* adopt: the hand-up channel between a bypass worker (kvg-bypassd) and
 * kvgated (issue 12). A connection the worker must not splice (not an
 * inference request, chunked, Upgrade, a first request over the flow's
 * budget, a client that sends nothing, or kvgated's answer that the
 * request is not for the bypass: the causes below) becomes a kernel
 * socket through TCP_REPAIR (bypass/repair.h) and its descriptor goes to
 * kvgated, which serves it per request exactly as if it had accepted it.
 *
 * Why a socket of its own and not a message on the decision channel
 * (bypass/decide.h): the hand-up needs no routing and no answer, it works
 * whether or not the worker asks kvgated for pods (--decide), and a
 * descriptor in flight must never wait behind decisions; kvgated bounds
 * and counts it apart. A unix SOCK_SEQPACKET socket (bypass.adopt_socket),
 * one message per packet, worker -> kvgated only:
 *
 *   HANDUP  the socket, in one SCM_RIGHTS control message holding exactly
 *           one descriptor, and 32 bytes (little-endian):
 *           u8 version, u8 type (1), u8 cause, u8 flags,
 *           u32 restored (bytes put back into the socket's receive queue),
 *           u8 client_addr[4], u8 local_addr[4] (IPv4, network order),
 *           u16 client_port, u16 local_port (host order),
 *           u32 reserved[3] (zero)
 *
 * kvgated treats the worker as untrusted: a packet that does not decode,
 * no descriptor or more than one, a descriptor that is not a connected
 * TCP socket whose ends are the ones announced: the descriptors are closed
 * and counted, and a packet that does not decode also closes the worker's
 * connection. The codec below has no I/O; adopt_send / adopt_recv are the
 * two socket calls both sides use. */
#ifndef KVGATE_BYPASS_ADOPT_H
#define KVGATE_BYPASS_ADOPT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define ADOPT_VERSION 1
#define ADOPT_MSG_LEN 32
#define ADOPT_RESTORED_MAX (1u << 30)
#define ADOPT_FDS_MAX 8 /* descriptors one read takes in, to close the extras */

enum adopt_type { ADOPT_T_HANDUP = 1 };

enum adopt_flags {
    ADOPT_F_FIN = 1, /* the client's FIN came before the hand-up (repair.h: not restored) */
};

/* Why the worker handed the connection up. Append only. */
enum adopt_cause {
    ADOPT_C_MALFORMED = 1,      /* firstflight.h's causes, in its order */
    ADOPT_C_NOT_INFERENCE,
    ADOPT_C_HTTP10,
    ADOPT_C_NO_LENGTH,
    ADOPT_C_CHUNKED,
    ADOPT_C_UPGRADE,
    ADOPT_C_EXPECT,
    ADOPT_C_HEAD_TOO_LARGE,
    ADOPT_C_BODY_TOO_LARGE,
    ADOPT_C_H2_PROTOCOL,
    ADOPT_C_H2_RESET,
    ADOPT_C_OVER_BUDGET,        /* the first request does not fit the flow's buffer */
    ADOPT_C_QUIET,              /* connected, nothing sent (a client that waits for
                                 * the server to speak first) */
    ADOPT_C_MODEL,              /* kvgated's causes (decide.h's ANSWER HANDUP, in its
                                 * order): the model is not spliced by its rules */
    ADOPT_C_SESSION,            /* no session pins the connection to one pod */
    ADOPT_C_H2C,                /* an h2c request whose pod does not speak h2c */
    ADOPT_C_DRAINING,           /* a spliced connection's next request, its pod draining
                                 * (dpdk/boundary.h: handed up at the request boundary) */
    ADOPT_C_SATURATED,          /* ... its pod saturated (or its metrics stale) */
    ADOPT_C_MAX
};
/* "not_inference", ...; "?" out of range. */
const char *adopt_cause_name(unsigned cause);

struct adopt_msg {
    uint8_t type;                /* enum adopt_type */
    uint8_t cause;               /* enum adopt_cause */
    uint8_t flags;               /* enum adopt_flags */
    uint32_t restored;
    uint8_t client_addr[4], local_addr[4];
    uint16_t client_port, local_port;
};

/* m into buf. ADOPT_MSG_LEN, or -EINVAL (a field that decode would refuse). */
int adopt_encode(const struct adopt_msg *m, uint8_t buf[ADOPT_MSG_LEN]);
/* 0, -EPROTONOSUPPORT (another version) or -EBADMSG. */
int adopt_decode(const uint8_t *buf, size_t len, struct adopt_msg *m);

/* Sends m with fd (non-blocking; MSG_NOSIGNAL). 0 or -errno (-EAGAIN:
 * kvgated is behind; nothing was sent). */
int adopt_send(int sock, const struct adopt_msg *m, int fd);
enum { ADOPT_CUT_PACKET = 1, ADOPT_CUT_FDS = 2 };

/* One packet from sock (non-blocking) into buf[0..cap); the descriptors
 * it carried (close-on-exec) into fds[0..ADOPT_FDS_MAX), *nfds of them;
 * *cut: 0, ADOPT_CUT_PACKET (the packet was longer than cap: the framing
 * is broken) or ADOPT_CUT_FDS (only the descriptors were cut: more than
 * room, or the receiver is out of descriptors; the kernel closed those it
 * could not pass, the message itself is whole). The packet's length (0: the
 * peer closed), or -errno. */
ssize_t adopt_recv(int sock, uint8_t *buf, size_t cap, int fds[ADOPT_FDS_MAX], int *nfds,
                   int *cut);

#endif
