/* Unit tests for user/common/netconn.c, over a socketpair: the owner side
 * is a small struct around a netconn, the peer a plain blocking socket. */
#include "common/netconn.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/ev.h"
#include "harness.h"

#define MS 1000000ull

struct owner {
    struct netconn nc;
    int inputs, fails, hold;
    size_t seen;          /* bytes of in seen by the last input call */
    int consume;          /* input consumes what it sees */
};

static struct owner *owner_of(struct netconn *nc)
{
    return (struct owner *)nc; /* nc is the first member */
}

static void o_input(struct netconn *nc)
{
    struct owner *o = owner_of(nc);
    o->inputs++;
    o->seen = nc->in.len;
    if (nc->in.data && nc->in.data[nc->in.len] != '\0')
        o->seen = (size_t)-1; /* must stay NUL-terminated */
    if (o->consume)
        sbuf_reset(&nc->in);
}

static void o_fail(struct netconn *nc)
{
    owner_of(nc)->fails++;
    netconn_close(nc);
}

static int o_holding(const struct netconn *nc)
{
    return ((const struct owner *)nc)->hold;
}

static const struct netconn_ops ops = { o_input, o_fail, o_holding };

static void io_cb(struct ev_loop *l, int fd, uint32_t ev, void *arg)
{
    struct owner *o = arg;
    if (ev & EPOLLOUT)
        netconn_flush(&o->nc);
    netconn_read(&o->nc, ev);
    netconn_update_events(&o->nc);
}

/* o's end of a fresh socketpair; the peer's end in *peer. */
static void setup(struct ev_loop *l, struct owner *o, int *peer)
{
    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    fcntl(sv[0], F_SETFL, O_NONBLOCK);
    memset(o, 0, sizeof(*o));
    netconn_init(&o->nc, l, sv[0], &ops);
    ev_add(l, sv[0], EPOLLIN | EPOLLRDHUP, io_cb, o);
    *peer = sv[1];
}

static void teardown(struct owner *o, int peer)
{
    netconn_close(&o->nc);
    netconn_free(&o->nc);
    close(peer);
}

static void stop_cb(struct ev_loop *l, void *arg)
{
    ev_stop(l);
}

static void run_for(struct ev_loop *l, unsigned ms)
{
    uint64_t t = ev_timer_at(l, ev_now_ns() + ms * MS, stop_cb, NULL);
    ev_run(l);
    ev_timer_cancel(l, t);
}

/* Reads from the peer's end until EOF or no more for 100 ms. */
static size_t drain(int fd, char *buf, size_t cap, int *eof)
{
    struct timeval tv = { .tv_usec = 100000 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    size_t n = 0;
    *eof = 0;
    for (;;) {
        char tmp[65536];
        ssize_t r = read(fd, tmp, sizeof(tmp));
        if (r == 0) {
            *eof = 1;
            break;
        }
        if (r < 0)
            break;
        if (n + (size_t)r <= cap)
            memcpy(buf + n, tmp, (size_t)r);
        n += (size_t)r;
    }
    return n;
}

TEST(read_hands_input_over)
{
    struct ev_loop *l = ev_new();
    struct owner o;
    int peer;
    setup(l, &o, &peer);
    CHECK_EQ(write(peer, "hello", 5), 5);
    netconn_read(&o.nc, EPOLLIN);
    CHECK_EQ(o.inputs, 1);
    CHECK_EQ(o.seen, 5);
    CHECK_STR(o.nc.in.data, "hello");
    netconn_read(&o.nc, EPOLLOUT); /* not a read event: nothing */
    CHECK_EQ(o.inputs, 1);
    netconn_read(&o.nc, EPOLLIN);  /* nothing there: no input call */
    CHECK_EQ(o.inputs, 1);
    CHECK_EQ(o.fails, 0);
    teardown(&o, peer);
    ev_free(l);
}

TEST(eof_fails_but_serves_what_came_with_it)
{
    struct ev_loop *l = ev_new();
    struct owner o;
    int peer;
    setup(l, &o, &peer);
    CHECK_EQ(write(peer, "last", 4), 4);
    shutdown(peer, SHUT_WR);
    netconn_read(&o.nc, EPOLLIN | EPOLLRDHUP);
    CHECK_EQ(o.inputs, 1); /* the bytes before the FIN are served */
    CHECK_EQ(o.fails, 1);
    CHECK(o.nc.dead);
    CHECK_EQ(o.nc.fd, -1);
    netconn_read(&o.nc, EPOLLIN); /* dead: nothing */
    CHECK_EQ(o.fails, 1);
    teardown(&o, peer);
    ev_free(l);
}

TEST(hup_while_paused_fails)
{
    struct ev_loop *l = ev_new();
    struct owner o;
    int peer;
    setup(l, &o, &peer);
    netconn_read(&o.nc, EPOLLRDHUP); /* no EPOLLIN: reading was paused */
    CHECK_EQ(o.fails, 1);
    teardown(&o, peer);
    ev_free(l);
}

TEST(holding_pauses_reading)
{
    struct ev_loop *l = ev_new();
    struct owner o;
    int peer;
    setup(l, &o, &peer);
    o.hold = 1;
    size_t total = 4 * NETCONN_IN_PAUSE;
    char *big = malloc(total);
    memset(big, 'x', total);
    fcntl(peer, F_SETFL, O_NONBLOCK);
    ssize_t w = write(peer, big, total);
    CHECK(w > (ssize_t)NETCONN_IN_PAUSE);
    for (int i = 0; i < 8; i++)
        netconn_read(&o.nc, EPOLLIN);
    size_t held = o.nc.in.len;
    CHECK(held >= NETCONN_IN_PAUSE);
    CHECK(held < (size_t)w);
    netconn_read(&o.nc, EPOLLIN); /* paused: reads nothing more */
    CHECK_EQ(o.nc.in.len, held);
    o.hold = 0;
    o.consume = 1;
    netconn_read(&o.nc, EPOLLIN);
    CHECK(o.seen > 0);
    CHECK_EQ(o.fails, 0);
    free(big);
    teardown(&o, peer);
    ev_free(l);
}

TEST(flush_partial_then_rest)
{
    struct ev_loop *l = ev_new();
    struct owner o;
    int peer;
    setup(l, &o, &peer);
    size_t total = 4u << 20; /* far more than a socketpair buffers */
    char *big = malloc(total);
    for (size_t i = 0; i < total; i++)
        big[i] = (char)('a' + i % 26);
    sbuf_append(&o.nc.out, big, total);
    netconn_flush(&o.nc);
    CHECK_EQ(o.fails, 0);
    CHECK(netconn_pending(&o.nc) > 0);
    CHECK(netconn_pending(&o.nc) < total);
    /* The loop finishes it on EPOLLOUT while the peer reads. */
    netconn_update_events(&o.nc);
    char *got = malloc(total);
    size_t n = 0;
    fcntl(peer, F_SETFL, O_NONBLOCK);
    for (int i = 0; i < 2000 && n < total; i++) {
        ssize_t r = read(peer, got + n, total - n);
        if (r > 0)
            n += (size_t)r;
        run_for(l, 1);
    }
    CHECK_EQ(n, total);
    CHECK(memcmp(got, big, total) == 0);
    CHECK_EQ(netconn_pending(&o.nc), 0);
    CHECK_EQ(o.nc.out_off, 0);
    free(big);
    free(got);
    teardown(&o, peer);
    ev_free(l);
}

TEST(lingering_close)
{
    struct ev_loop *l = ev_new();
    struct owner o;
    int peer;
    setup(l, &o, &peer);
    sbuf_puts(&o.nc.out, "bye");
    o.nc.closing = 1;
    netconn_flush(&o.nc);
    CHECK(o.nc.shut);
    CHECK(o.nc.linger_timer != 0);
    CHECK_EQ(o.fails, 0);
    char buf[16];
    int eof;
    size_t n = drain(peer, buf, sizeof(buf), &eof);
    CHECK_EQ(n, 3);
    CHECK(eof); /* FIN after the reply */
    /* Whatever the peer still sends is read and dropped... */
    CHECK_EQ(write(peer, "more", 4), 4);
    netconn_read(&o.nc, EPOLLIN);
    CHECK_EQ(o.inputs, 0);
    CHECK_EQ(o.nc.in.len, 0);
    CHECK_EQ(o.fails, 0);
    /* ...until it closes too. */
    close(peer);
    netconn_read(&o.nc, EPOLLIN | EPOLLRDHUP);
    CHECK_EQ(o.fails, 1);
    CHECK_EQ(o.nc.linger_timer, 0);
    netconn_free(&o.nc);
    ev_free(l);
}

TEST(peer_half_close_while_reply_pending)
{
    struct ev_loop *l = ev_new();
    struct owner o;
    int peer;
    setup(l, &o, &peer);
    size_t total = 4u << 20;
    char *big = calloc(1, total);
    sbuf_append(&o.nc.out, big, total);
    o.nc.closing = 1;
    netconn_flush(&o.nc); /* socket full: reply pending */
    CHECK(netconn_pending(&o.nc) > 0);
    shutdown(peer, SHUT_WR);
    netconn_read(&o.nc, EPOLLIN | EPOLLRDHUP);
    CHECK(o.nc.rd_eof); /* finish the reply first */
    CHECK_EQ(o.fails, 0);
    netconn_update_events(&o.nc);
    int eof;
    char *sink = malloc(total);
    size_t n = 0;
    fcntl(peer, F_SETFL, O_NONBLOCK);
    for (int i = 0; i < 2000 && !o.fails; i++) {
        ssize_t r = read(peer, sink, total);
        if (r > 0)
            n += (size_t)r;
        run_for(l, 1);
    }
    n += drain(peer, sink, total, &eof);
    CHECK_EQ(n, total);
    CHECK_EQ(o.fails, 1); /* closed once it was all out, no lingering */
    free(big);
    free(sink);
    netconn_free(&o.nc);
    close(peer);
    ev_free(l);
}

/* A source that produces a few chunks, then says it is finished. */
struct src {
    int chunks, filled;
};

static int s_fill(void *self, struct netconn *nc)
{
    struct src *s = self;
    if (s->filled < s->chunks) {
        sbuf_puts(&nc->out, "frame;");
        s->filled++;
    }
    return 0;
}

static int s_finished(const void *self)
{
    const struct src *s = self;
    return s->filled == s->chunks;
}

static int s_fill_fails(void *self, struct netconn *nc)
{
    return -1;
}

TEST(source_fills_then_finishes)
{
    struct ev_loop *l = ev_new();
    struct owner o;
    int peer;
    setup(l, &o, &peer);
    static const struct netconn_source srcops = { s_fill, s_finished };
    struct src s = { .chunks = 3 };
    netconn_set_source(&o.nc, &srcops, &s);
    netconn_flush(&o.nc);
    CHECK_EQ(s.filled, 3);
    CHECK_EQ(o.fails, 1); /* all said: closed */
    char buf[64] = { 0 };
    int eof;
    size_t n = drain(peer, buf, sizeof(buf) - 1, &eof);
    CHECK_EQ(n, 18);
    CHECK_STR(buf, "frame;frame;frame;");
    netconn_free(&o.nc);
    close(peer);

    setup(l, &o, &peer);
    static const struct netconn_source bad = { s_fill_fails, s_finished };
    netconn_set_source(&o.nc, &bad, &s);
    netconn_flush(&o.nc);
    CHECK_EQ(o.fails, 1);
    teardown(&o, peer);

    setup(l, &o, &peer);
    netconn_set_source(&o.nc, &bad, &s);
    netconn_set_source(&o.nc, NULL, NULL); /* detached */
    netconn_flush(&o.nc);
    CHECK_EQ(o.fails, 0);
    teardown(&o, peer);
    ev_free(l);
}

/* Output that lost bytes (out.oom) and is still pending fails the
 * connection. */
TEST(dropped_bytes_fail)
{
    struct ev_loop *l = ev_new();
    struct owner o;
    int peer;
    setup(l, &o, &peer);
    size_t total = 4u << 20; /* more than the socket takes */
    char *big = calloc(1, total);
    sbuf_append(&o.nc.out, big, total);
    o.nc.out.oom = 1; /* an append was dropped: the framing is broken */
    netconn_flush(&o.nc);
    CHECK_EQ(o.fails, 1);
    free(big);
    teardown(&o, peer);
    ev_free(l);
}

TEST(send_error_fails)
{
    struct ev_loop *l = ev_new();
    struct owner o;
    int peer;
    setup(l, &o, &peer);
    close(peer);
    sbuf_puts(&o.nc.out, "nobody listens");
    netconn_flush(&o.nc); /* EPIPE, without SIGPIPE */
    CHECK_EQ(o.fails, 1);
    netconn_free(&o.nc);
    ev_free(l);
}

int main(void)
{
    RUN(read_hands_input_over);
    RUN(eof_fails_but_serves_what_came_with_it);
    RUN(hup_while_paused_fails);
    RUN(holding_pauses_reading);
    RUN(flush_partial_then_rest);
    RUN(lingering_close);
    RUN(peer_half_close_while_reply_pending);
    RUN(source_fills_then_finishes);
    RUN(dropped_bytes_fail);
    RUN(send_error_fails);
    return harness_done();
}
