/* Unit tests for user/bypass/decide_cli.c, the worker's end of the
 * decision channel, against a listening SOCK_SEQPACKET socket that plays
 * kvgated: nothing before the first poll connects; a 100 KB body goes out
 * as one DECIDE and BODY packets that reassemble it; an ANSWER comes back
 * through the callback; DONE is queued and sent; a queue too small
 * refuses a decision whole; kvgated closing is DCLI_EV_DOWN, drops the
 * queue, and the next poll a second later reconnects with a new gen. */
#include "bypass/decide_cli.h"
#include "harness.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static char path[108];
static int lfd = -1;

static int server(void)
{
    snprintf(path, sizeof(path), "/tmp/test_decide_cli.%d.sock", (int)getpid());
    unlink(path);
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, strlen(path));
    int fd = socket(AF_UNIX, SOCK_SEQPACKET, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || listen(fd, 4))
        return -1;
    return fd;
}

static struct decide_msg got[8];
static int ngot;
static void on_answer(void *ctx, const struct decide_msg *a)
{
    if (ngot < 8)
        got[ngot++] = *a;
}

static uint8_t body[100000];

TEST(decide_body_answer_done)
{
    for (size_t i = 0; i < sizeof(body); i++)
        body[i] = (uint8_t)(i * 13);
    struct dcli *c = dcli_new(path, 1 << 20);
    CHECK(c != NULL);
    CHECK_EQ(dcli_decide(c, 1, DECIDE_PROTO_H1, "", "", body, 10), -ENOTCONN);
    CHECK_EQ(dcli_poll(c, 1000, on_answer, NULL), DCLI_EV_UP);
    CHECK(dcli_up(c));
    CHECK_EQ(dcli_gen(c), 1);
    int sfd = accept(lfd, NULL, NULL);
    CHECK(sfd >= 0);
    CHECK_EQ(dcli_decide(c, 77, DECIDE_PROTO_H2C, "chat", "s-1", body, sizeof(body)), 0);
    CHECK_EQ(dcli_poll(c, 1001, on_answer, NULL), 0);
    /* kvgated's side: DECIDE then BODY packets, in order, the body whole */
    static uint8_t re[sizeof(body)];
    size_t have = 0;
    int packets = 0;
    while (have < sizeof(body)) {
        static uint8_t pkt[DECIDE_MSG_MAX + 1];
        ssize_t n = recv(sfd, pkt, sizeof(pkt), MSG_DONTWAIT);
        if (n <= 0)
            break;
        struct decide_msg m;
        CHECK_EQ(decide_decode(pkt, (size_t)n, &m), 0);
        CHECK_EQ(m.id, 77);
        if (!packets) {
            CHECK_EQ(m.type, DECIDE_T_DECIDE);
            CHECK_EQ(m.proto, DECIDE_PROTO_H2C);
            CHECK_STR(m.tenant, "chat");
            CHECK_STR(m.session, "s-1");
            CHECK_EQ(m.body_len, sizeof(body));
        } else {
            CHECK_EQ(m.type, DECIDE_T_BODY);
            CHECK_EQ(m.offset, have);
        }
        memcpy(re + have, m.chunk, m.chunk_len);
        have += m.chunk_len;
        packets++;
    }
    CHECK_EQ(have, sizeof(body));
    CHECK_EQ(packets, 4); /* 32768 x 3 + 1696 */
    CHECK(!memcmp(re, body, sizeof(body)));
    /* an ANSWER back */
    struct decide_msg a;
    memset(&a, 0, sizeof(a));
    a.type = DECIDE_T_ANSWER;
    a.id = 77;
    a.status = 200;
    a.port = 8000;
    a.slot = 4;
    memcpy(a.addr, (uint8_t[]){10, 0, 0, 9}, 4);
    uint8_t out[64];
    int n = decide_encode(&a, out, sizeof(out));
    CHECK_EQ(send(sfd, out, (size_t)n, 0), n);
    CHECK_EQ(dcli_poll(c, 1002, on_answer, NULL), 0);
    CHECK_EQ(ngot, 1);
    CHECK_EQ(got[0].id, 77);
    CHECK_EQ(got[0].slot, 4);
    CHECK_EQ(got[0].port, 8000);
    /* DONE */
    CHECK_EQ(dcli_done(c, 77, 4, DECIDE_OK, 200, 10, 20, 0, 0), 0);
    CHECK_EQ(dcli_poll(c, 1003, on_answer, NULL), 0);
    uint8_t pkt[64];
    ssize_t k = recv(sfd, pkt, sizeof(pkt), MSG_DONTWAIT);
    struct decide_msg d;
    CHECK_EQ(k, DECIDE_FIXED_DONE);
    CHECK_EQ(decide_decode(pkt, (size_t)k, &d), 0);
    CHECK_EQ(d.type, DECIDE_T_DONE);
    CHECK_EQ(d.bytes_out, 20);
    /* kvgated goes away: DOWN, and a reconnect only a second later */
    close(sfd);
    CHECK_EQ(dcli_poll(c, 1004, on_answer, NULL), DCLI_EV_DOWN);
    CHECK(!dcli_up(c));
    CHECK_EQ(dcli_done(c, 77, 4, DECIDE_OK, 0, 0, 0, 0, 0), -ENOTCONN);
    CHECK_EQ(dcli_poll(c, 1500, on_answer, NULL), 0);
    CHECK_EQ(dcli_poll(c, 2001, on_answer, NULL), DCLI_EV_UP);
    CHECK_EQ(dcli_gen(c), 2);
    sfd = accept(lfd, NULL, NULL);
    /* a garbled answer is a broken peer: DOWN */
    CHECK_EQ(send(sfd, "\x01\x03\x00", 3, 0), 3);
    CHECK_EQ(dcli_poll(c, 2002, on_answer, NULL), DCLI_EV_DOWN);
    struct dcli_stats st;
    dcli_stats(c, &st);
    CHECK_EQ(st.bad, 1);
    CHECK_EQ(st.downs, 2);
    close(sfd);
    dcli_free(c);
}

TEST(full_queue_refuses_whole)
{
    struct dcli *c = dcli_new(path, 50000);
    CHECK_EQ(dcli_poll(c, 1, on_answer, NULL), DCLI_EV_UP);
    int sfd = accept(lfd, NULL, NULL);
    CHECK_EQ(dcli_decide(c, 1, DECIDE_PROTO_H1, "", "", body, 60000), -ENOBUFS);
    CHECK_EQ(dcli_decide(c, 2, DECIDE_PROTO_H1, "", "", body, 40000), 0);
    CHECK_EQ(dcli_decide(c, 3, DECIDE_PROTO_H1, "", "", body, 20000), -ENOBUFS);
    CHECK_EQ(dcli_decide(c, 4, DECIDE_PROTO_H1, "", "", body, 3), 0);
    char big[200];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    CHECK_EQ(dcli_decide(c, 5, DECIDE_PROTO_H1, big, "", body, 3), -EINVAL);
    struct dcli_stats st;
    dcli_stats(c, &st);
    CHECK_EQ(st.refused_full, 2);
    close(sfd);
    dcli_free(c);
    CHECK(dcli_new("/tmp/a-path-that-is-far-too-long-for-a-unix-socket-address-"
                   "because-sun-path-holds-only-107-bytes-and-this-is-more", 1) == NULL);
}

int main(void)
{
    lfd = server();
    if (lfd < 0) {
        printf("cannot listen on %s\n", path);
        return 1;
    }
    RUN(decide_body_answer_done);
    RUN(full_queue_refuses_whole);
    close(lfd);
    unlink(path);
    return harness_done();
}
