/* adopt: the hand-up channel's codec and its two socket calls (adopt.h). */
#include "bypass/adopt.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

static const char *const CAUSES[ADOPT_C_MAX] = {
    [ADOPT_C_MALFORMED] = "malformed",
    [ADOPT_C_NOT_INFERENCE] = "not_inference",
    [ADOPT_C_HTTP10] = "http10",
    [ADOPT_C_NO_LENGTH] = "no_length",
    [ADOPT_C_CHUNKED] = "chunked",
    [ADOPT_C_UPGRADE] = "upgrade",
    [ADOPT_C_EXPECT] = "expect",
    [ADOPT_C_HEAD_TOO_LARGE] = "head_too_large",
    [ADOPT_C_BODY_TOO_LARGE] = "body_too_large",
    [ADOPT_C_H2_PROTOCOL] = "h2_protocol",
    [ADOPT_C_H2_RESET] = "h2_reset",
    [ADOPT_C_OVER_BUDGET] = "over_budget",
    [ADOPT_C_QUIET] = "quiet",
    [ADOPT_C_MODEL] = "model",
    [ADOPT_C_SESSION] = "session",
    [ADOPT_C_H2C] = "h2c",
    [ADOPT_C_DRAINING] = "draining",
    [ADOPT_C_SATURATED] = "saturated",
};

const char *adopt_cause_name(unsigned cause)
{
    return cause && cause < ADOPT_C_MAX ? CAUSES[cause] : "?";
}

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8); }
static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int fields_ok(const struct adopt_msg *m)
{
    static const uint8_t zero[4];
    return m->type == ADOPT_T_HANDUP && m->cause >= 1 && m->cause < ADOPT_C_MAX &&
           !(m->flags & ~ADOPT_F_FIN) && m->restored <= ADOPT_RESTORED_MAX &&
           m->client_port && m->local_port && memcmp(m->client_addr, zero, 4) &&
           memcmp(m->local_addr, zero, 4);
}

int adopt_encode(const struct adopt_msg *m, uint8_t buf[ADOPT_MSG_LEN])
{
    if (!fields_ok(m))
        return -EINVAL;
    memset(buf, 0, ADOPT_MSG_LEN);
    buf[0] = ADOPT_VERSION;
    buf[1] = m->type;
    buf[2] = m->cause;
    buf[3] = m->flags;
    put32(buf + 4, m->restored);
    memcpy(buf + 8, m->client_addr, 4);
    memcpy(buf + 12, m->local_addr, 4);
    put16(buf + 16, m->client_port);
    put16(buf + 18, m->local_port);
    return ADOPT_MSG_LEN;
}

int adopt_decode(const uint8_t *buf, size_t len, struct adopt_msg *m)
{
    memset(m, 0, sizeof(*m));
    if (len >= 1 && buf[0] != ADOPT_VERSION)
        return -EPROTONOSUPPORT;
    if (len != ADOPT_MSG_LEN)
        return -EBADMSG;
    for (int i = 20; i < ADOPT_MSG_LEN; i++)
        if (buf[i])
            return -EBADMSG;
    m->type = buf[1];
    m->cause = buf[2];
    m->flags = buf[3];
    m->restored = get32(buf + 4);
    memcpy(m->client_addr, buf + 8, 4);
    memcpy(m->local_addr, buf + 12, 4);
    m->client_port = get16(buf + 16);
    m->local_port = get16(buf + 18);
    return fields_ok(m) ? 0 : -EBADMSG;
}

int adopt_send(int sock, const struct adopt_msg *m, int fd)
{
    uint8_t b[ADOPT_MSG_LEN];
    if (adopt_encode(m, b) < 0 || fd < 0)
        return -EINVAL;
    union {
        struct cmsghdr h;
        char space[CMSG_SPACE(sizeof(int))];
    } ctl;
    memset(&ctl, 0, sizeof(ctl));
    struct iovec iov = {b, sizeof(b)};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.space,
                        .msg_controllen = sizeof(ctl.space)};
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof(int));
    for (;;) {
        ssize_t n = sendmsg(sock, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n == (ssize_t)sizeof(b))
            return 0;
        if (n < 0 && errno == EINTR)
            continue;
        return n < 0 ? (errno == EWOULDBLOCK ? -EAGAIN : -errno) : -EIO;
    }
}

ssize_t adopt_recv(int sock, uint8_t *buf, size_t cap, int fds[ADOPT_FDS_MAX], int *nfds,
                   int *cut)
{
    union {
        struct cmsghdr h;
        char space[CMSG_SPACE(ADOPT_FDS_MAX * sizeof(int))];
    } ctl;
    struct iovec iov = {buf, cap};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.space,
                        .msg_controllen = sizeof(ctl.space)};
    *nfds = 0;
    *cut = 0;
    ssize_t n;
    do
        n = recvmsg(sock, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue; /* credentials and the like carry no descriptor */
        size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < k; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
            if (*nfds < ADOPT_FDS_MAX)
                fds[(*nfds)++] = fd;
        }
    }
    if (mh.msg_flags & MSG_TRUNC)
        *cut = ADOPT_CUT_PACKET;
    else if (mh.msg_flags & MSG_CTRUNC)
        *cut = ADOPT_CUT_FDS;
    return n;
}
