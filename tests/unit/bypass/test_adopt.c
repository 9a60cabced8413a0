/* Unit tests for user/bypass/adopt.c: the hand-up channel's codec (every
 * rule both ways: encode refuses what decode refuses) and its two socket
 * calls over a real SOCK_SEQPACKET pair (one descriptor through, extras
 * counted, a cut packet flagged). */
#include "bypass/adopt.h"
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static struct adopt_msg good(void)
{
    struct adopt_msg m = {.type = ADOPT_T_HANDUP, .cause = ADOPT_C_NOT_INFERENCE,
                          .flags = ADOPT_F_FIN, .restored = 3000,
                          .client_addr = {10, 0, 0, 1}, .local_addr = {10, 0, 0, 2},
                          .client_port = 40100, .local_port = 8000};
    return m;
}

TEST(round_trip)
{
    struct adopt_msg m = good(), d;
    uint8_t b[ADOPT_MSG_LEN];
    CHECK_EQ(adopt_encode(&m, b), ADOPT_MSG_LEN);
    CHECK_EQ(b[0], ADOPT_VERSION);
    CHECK_EQ(adopt_decode(b, sizeof(b), &d), 0);
    /* field by field: the struct's padding bytes are indeterminate */
    CHECK_EQ(d.type, m.type);
    CHECK_EQ(d.cause, m.cause);
    CHECK_EQ(d.flags, m.flags);
    CHECK_EQ(d.restored, m.restored);
    CHECK(!memcmp(d.client_addr, m.client_addr, 4) && !memcmp(d.local_addr, m.local_addr, 4));
    CHECK_EQ(d.client_port, m.client_port);
    CHECK_EQ(d.local_port, m.local_port);
    CHECK_STR(adopt_cause_name(d.cause), "not_inference");
    CHECK_STR(adopt_cause_name(ADOPT_C_QUIET), "quiet");
    CHECK_STR(adopt_cause_name(ADOPT_C_OVER_BUDGET), "over_budget");
    CHECK_STR(adopt_cause_name(0), "?");
    CHECK_STR(adopt_cause_name(ADOPT_C_MAX), "?");
    for (unsigned c = 1; c < ADOPT_C_MAX; c++)
        CHECK(adopt_cause_name(c) && strcmp(adopt_cause_name(c), "?"));
}

TEST(refused_fields)
{
    uint8_t b[ADOPT_MSG_LEN];
    struct adopt_msg m;
#define BAD(field_change)                                                     \
    do {                                                                      \
        m = good();                                                           \
        field_change;                                                         \
        CHECK_EQ(adopt_encode(&m, b), -EINVAL);                               \
    } while (0)
    BAD(m.type = 2);
    BAD(m.cause = 0);
    BAD(m.cause = ADOPT_C_MAX);
    BAD(m.flags = 2);
    BAD(m.restored = ADOPT_RESTORED_MAX + 1);
    BAD(m.client_port = 0);
    BAD(m.local_port = 0);
    BAD(memset(m.client_addr, 0, 4));
    BAD(memset(m.local_addr, 0, 4));
#undef BAD
}

TEST(refused_packets)
{
    struct adopt_msg m = good(), d;
    uint8_t b[ADOPT_MSG_LEN + 1];
    adopt_encode(&m, b);
    CHECK_EQ(adopt_decode(b, ADOPT_MSG_LEN - 1, &d), -EBADMSG);
    CHECK_EQ(adopt_decode(b, ADOPT_MSG_LEN + 1, &d), -EBADMSG);
    CHECK_EQ(adopt_decode(b, 0, &d), -EBADMSG);
    for (int i = 20; i < ADOPT_MSG_LEN; i++) { /* reserved */
        adopt_encode(&m, b);
        b[i] = 1;
        CHECK_EQ(adopt_decode(b, ADOPT_MSG_LEN, &d), -EBADMSG);
    }
    adopt_encode(&m, b);
    b[0] = 2;
    CHECK_EQ(adopt_decode(b, ADOPT_MSG_LEN, &d), -EPROTONOSUPPORT);
    adopt_encode(&m, b);
    b[2] = 0xEE; /* cause */
    CHECK_EQ(adopt_decode(b, ADOPT_MSG_LEN, &d), -EBADMSG);
    adopt_encode(&m, b);
    b[7] = 0x80; /* restored > 1 GiB */
    CHECK_EQ(adopt_decode(b, ADOPT_MSG_LEN, &d), -EBADMSG);
}

TEST(send_recv_fds)
{
    int sp[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sp), 0);
    int pipefd[2];
    CHECK_EQ(pipe(pipefd), 0);
    struct adopt_msg m = good(), d;
    CHECK_EQ(adopt_send(sp[0], &m, pipefd[0]), 0);
    uint8_t b[ADOPT_MSG_LEN + 1];
    int fds[ADOPT_FDS_MAX], n, cut;
    CHECK_EQ(adopt_recv(sp[1], b, sizeof(b), fds, &n, &cut), ADOPT_MSG_LEN);
    CHECK_EQ(n, 1);
    CHECK_EQ(cut, 0);
    CHECK_EQ(adopt_decode(b, ADOPT_MSG_LEN, &d), 0);
    if (n == 1) { /* the same pipe, close-on-exec */
        CHECK(fcntl(fds[0], F_GETFD) & FD_CLOEXEC);
        CHECK_EQ(write(pipefd[1], "x", 1), 1);
        char c = 0;
        CHECK_EQ(read(fds[0], &c, 1), 1);
        CHECK_EQ(c, 'x');
        close(fds[0]);
    }
    CHECK_EQ(adopt_recv(sp[1], b, sizeof(b), fds, &n, &cut), -EAGAIN);
    CHECK_EQ(adopt_send(sp[0], &m, -1), -EINVAL);
    m.cause = 0;
    CHECK_EQ(adopt_send(sp[0], &m, pipefd[0]), -EINVAL);

    /* a long packet is flagged cut; one with more descriptors than room has
     * its descriptors cut, the message whole */
    uint8_t big[100] = {1};
    CHECK_EQ(send(sp[0], big, sizeof(big), 0), (ssize_t)sizeof(big));
    CHECK_EQ(adopt_recv(sp[1], b, sizeof(b), fds, &n, &cut), (ssize_t)sizeof(b));
    CHECK_EQ(cut, ADOPT_CUT_PACKET);
    CHECK_EQ(n, 0);
    int many[ADOPT_FDS_MAX + 2];
    for (int i = 0; i < ADOPT_FDS_MAX + 2; i++)
        many[i] = pipefd[0];
    union {
        struct cmsghdr h;
        char s[CMSG_SPACE(sizeof(many))];
    } ctl;
    memset(&ctl, 0, sizeof(ctl));
    uint8_t enc[ADOPT_MSG_LEN];
    m = good();
    adopt_encode(&m, enc);
    struct iovec iov = {enc, sizeof(enc)};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.s,
                        .msg_controllen = sizeof(ctl.s)};
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(many));
    memcpy(CMSG_DATA(c), many, sizeof(many));
    CHECK_EQ(sendmsg(sp[0], &mh, 0), ADOPT_MSG_LEN);
    CHECK_EQ(adopt_recv(sp[1], b, sizeof(b), fds, &n, &cut), ADOPT_MSG_LEN);
    CHECK_EQ(n, ADOPT_FDS_MAX);
    CHECK_EQ(cut, ADOPT_CUT_FDS); /* the message is whole: only the channel's framing counts */
    for (int i = 0; i < n; i++)
        close(fds[i]);
    close(sp[0]);
    CHECK_EQ(adopt_recv(sp[1], b, sizeof(b), fds, &n, &cut), 0); /* the peer closed */
    close(sp[1]);
    close(pipefd[0]);
    close(pipefd[1]);
}

int main(void)
{
    RUN(round_trip);
    RUN(refused_fields);
    RUN(refused_packets);
    RUN(send_recv_fds);
    return harness_done();
}
