/* Unit tests for user/common/netconn.c, over a socketpair: the owner side
 * is a small struct around a netconn, the peer a plain socket. */
#include "common/netconn.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "evtest.h"
#include "harness.h"

#define BIG (4u << 20) /* far more than a socketpair buffers */

static struct ev_loop *g_l;

struct owner {
    struct netconn nc;    /* first: a netconn * is an owner * */
    int peer;             /* the other end */
    int inputs, fails, hold;
    size_t seen;          /* bytes of in at the last input call */
    int consume;          /* input consumes what it sees */
};

static void o_input(struct netconn *nc)
{
    struct owner *o = (struct owner *)nc;
    o->inputs++;
    o->seen = nc->in.len;
    if (nc->in.data && nc->in.data[nc->in.len] != '\0')
        o->seen = (size_t)-1; /* must stay NUL-terminated */
    if (o->consume)
        sbuf_reset(&nc->in);
}

static void o_fail(struct netconn *nc)
{
    ((struct owner *)nc)->fails++;
    netconn_close(nc);
}

static int o_holding(const struct netconn *nc)
{
    return ((const struct owner *)nc)->hold;
}

static const struct netconn_ops ops = { .input = o_input, .fail = o_fail, .holding = o_holding };

static void io_cb(struct ev_loop *l, int fd, uint32_t ev, void *arg)
{
    struct owner *o = arg;
    if (ev & EPOLLOUT)
        netconn_flush(&o->nc);
    netconn_read(&o->nc, ev);
    netconn_update_events(&o->nc);
}

/* A connected owner on g_l. */
static void open_pair(struct owner *o)
{
    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    fcntl(sv[0], F_SETFL, O_NONBLOCK);
    memset(o, 0, sizeof(*o));
    netconn_init(&o->nc, g_l, sv[0], &ops);
    ev_add(g_l, sv[0], EPOLLIN | EPOLLRDHUP, io_cb, o);
    o->peer = sv[1];
}

static void close_pair(struct owner *o)
{
    netconn_close(&o->nc);
    netconn_free(&o->nc);
    if (o->peer >= 0)
        close(o->peer);
}

/* Queues n bytes (a known pattern, if pattern) in out. */
static void queue_big(struct owner *o, size_t n, int pattern)
{
    char *b = calloc(1, n);
    for (size_t i = 0; pattern && i < n; i++)
        b[i] = (char)('a' + i % 26);
    sbuf_append(&o->nc.out, b, n);
    free(b);
}

/* The peer reads while the loop flushes (EPOLLOUT), until want bytes came
 * or the owner failed. Copies at most cap bytes to buf. */
static size_t pump(struct owner *o, char *buf, size_t cap, size_t want)
{
    size_t n = 0;
    char tmp[65536];
    fcntl(o->peer, F_SETFL, O_NONBLOCK);
    netconn_update_events(&o->nc);
    for (int i = 0; i < 2000 && n < want && !o->fails; i++) {
        ssize_t r;
        while ((r = read(o->peer, tmp, sizeof(tmp))) > 0) {
            if (buf && n + (size_t)r <= cap)
                memcpy(buf + n, tmp, (size_t)r);
            n += (size_t)r;
        }
        run_for(g_l, 1);
    }
    return n;
}

/* The peer reads until EOF, or nothing for 100 ms. */
static size_t drain(struct owner *o, char *buf, size_t cap, int *eof)
{
    struct timeval tv = { .tv_usec = 100000 };
    fcntl(o->peer, F_SETFL, 0);
    setsockopt(o->peer, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    size_t n = 0;
    ssize_t r;
    char tmp[65536];
    while ((r = read(o->peer, tmp, sizeof(tmp))) > 0) {
        if (n + (size_t)r <= cap)
            memcpy(buf + n, tmp, (size_t)r);
        n += (size_t)r;
    }
    *eof = r == 0;
    return n;
}

TEST(read_hands_input_over)
{
    struct owner o;
    open_pair(&o);
    CHECK_EQ(write(o.peer, "hello", 5), 5);
    netconn_read(&o.nc, EPOLLIN);
    CHECK_EQ(o.inputs, 1);
    CHECK_EQ(o.seen, 5);
    CHECK_STR(o.nc.in.data, "hello");
    netconn_read(&o.nc, EPOLLOUT); /* not a read event: nothing */
    netconn_read(&o.nc, EPOLLIN);  /* nothing there: no input call */
    CHECK_EQ(o.inputs, 1);
    CHECK_EQ(o.fails, 0);
    close_pair(&o);
}

/* netconn_ops.direct: an owner that knows where the next bytes belong (a
 * body of known length) gets them there, not through nc->in. */
struct downer {
    struct owner o;       /* first */
    char dbuf[32];
    size_t dwant, dgot;
    int dinputs;
    size_t dseen;
};

static void d_input(struct netconn *nc)
{
    struct downer *d = (struct downer *)nc;
    d->dinputs++;
    d->dseen = nc->in.len;
    if (nc->in.len == 4 && !memcmp(nc->in.data, "HEAD", 4))
        d->dwant = 10; /* "the head announced a 10-byte body" */
    sbuf_reset(&nc->in);
}

static char *d_direct(struct netconn *nc, size_t *room)
{
    struct downer *d = (struct downer *)nc;
    if (!d->dwant)
        return NULL;
    *room = d->dwant;
    return d->dbuf + d->dgot;
}

static void d_got(struct netconn *nc, size_t n)
{
    struct downer *d = (struct downer *)nc;
    d->dgot += n;
    d->dwant -= n;
}

static const struct netconn_ops dops = { .input = d_input, .fail = o_fail,
                                         .direct = d_direct, .direct_got = d_got };

TEST(direct_reads_go_straight_to_the_owner)
{
    struct downer d;
    memset(&d, 0, sizeof(d));
    open_pair(&d.o);
    d.o.nc.ops = &dops;
    CHECK_EQ(write(d.o.peer, "HEAD", 4), 4);
    netconn_read(&d.o.nc, EPOLLIN);
    CHECK_EQ(d.dinputs, 1); /* the head went through nc->in */
    CHECK_EQ(d.dseen, 4);
    CHECK_EQ(d.dwant, 10);
    CHECK_EQ(write(d.o.peer, "0123456789REST", 14), 14);
    netconn_read(&d.o.nc, EPOLLIN);
    CHECK_EQ(d.dgot, 10); /* exactly the body, in the owner's buffer */
    CHECK(!memcmp(d.dbuf, "0123456789", 10));
    CHECK_EQ(d.dinputs, 2); /* then the rest, through nc->in again */
    CHECK_EQ(d.dseen, 4);
    CHECK_EQ(d.o.fails, 0);
    close_pair(&d.o);
}

TEST(eof_fails_but_serves_what_came_with_it)
{
    struct owner o;
    open_pair(&o);
    CHECK_EQ(write(o.peer, "last", 4), 4);
    shutdown(o.peer, SHUT_WR);
    netconn_read(&o.nc, EPOLLIN | EPOLLRDHUP);
    CHECK_EQ(o.inputs, 1); /* the bytes before the FIN are served */
    CHECK_EQ(o.fails, 1);
    CHECK(o.nc.dead);
    CHECK_EQ(o.nc.fd, -1);
    netconn_read(&o.nc, EPOLLIN); /* dead: nothing */
    CHECK_EQ(o.fails, 1);
    close_pair(&o);
}

TEST(hup_while_paused_fails)
{
    struct owner o;
    open_pair(&o);
    netconn_read(&o.nc, EPOLLRDHUP); /* no EPOLLIN: reading was paused */
    CHECK_EQ(o.fails, 1);
    close_pair(&o);
}

TEST(holding_pauses_reading)
{
    struct owner o;
    open_pair(&o);
    o.hold = 1;
    size_t total = 4 * NETCONN_IN_PAUSE;
    char *big = calloc(1, total);
    fcntl(o.peer, F_SETFL, O_NONBLOCK);
    ssize_t w = write(o.peer, big, total);
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
    close_pair(&o);
}

TEST(flush_partial_then_rest)
{
    struct owner o;
    open_pair(&o);
    queue_big(&o, BIG, 1);
    char *want = strdup(o.nc.out.data ? o.nc.out.data : "");
    netconn_flush(&o.nc);
    CHECK_EQ(o.fails, 0);
    CHECK(netconn_pending(&o.nc) > 0);
    CHECK(netconn_pending(&o.nc) < BIG);
    char *got = malloc(BIG);
    CHECK_EQ(pump(&o, got, BIG, BIG), BIG); /* the rest on EPOLLOUT */
    CHECK(memcmp(got, want, BIG) == 0);
    CHECK_EQ(netconn_pending(&o.nc), 0);
    CHECK_EQ(o.nc.out_off, 0);
    free(want);
    free(got);
    close_pair(&o);
}

TEST(lingering_close)
{
    struct owner o;
    open_pair(&o);
    sbuf_puts(&o.nc.out, "bye");
    o.nc.closing = 1;
    netconn_flush(&o.nc);
    CHECK(o.nc.shut);
    CHECK(o.nc.linger_timer != 0);
    CHECK_EQ(o.fails, 0);
    char buf[16];
    int eof;
    CHECK_EQ(drain(&o, buf, sizeof(buf), &eof), 3);
    CHECK(eof); /* FIN after the reply */
    /* Whatever the peer still sends is read and dropped... */
    CHECK_EQ(write(o.peer, "more", 4), 4);
    netconn_read(&o.nc, EPOLLIN);
    CHECK_EQ(o.inputs, 0);
    CHECK_EQ(o.nc.in.len, 0);
    CHECK_EQ(o.fails, 0);
    /* ...until it closes too. */
    close(o.peer);
    o.peer = -1;
    netconn_read(&o.nc, EPOLLIN | EPOLLRDHUP);
    CHECK_EQ(o.fails, 1);
    CHECK_EQ(o.nc.linger_timer, 0);
    close_pair(&o);
}

TEST(peer_half_close_while_reply_pending)
{
    struct owner o;
    open_pair(&o);
    queue_big(&o, BIG, 0);
    o.nc.closing = 1;
    netconn_flush(&o.nc); /* socket full: reply pending */
    CHECK(netconn_pending(&o.nc) > 0);
    shutdown(o.peer, SHUT_WR);
    netconn_read(&o.nc, EPOLLIN | EPOLLRDHUP);
    CHECK(o.nc.rd_eof); /* finish the reply first */
    CHECK_EQ(o.fails, 0);
    int eof;
    char tail[16];
    size_t n = pump(&o, NULL, 0, BIG);
    n += drain(&o, tail, sizeof(tail), &eof);
    CHECK_EQ(n, BIG);
    CHECK_EQ(o.fails, 1); /* closed once it was all out, no lingering */
    close_pair(&o);
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
    static const struct netconn_source good = { s_fill, s_finished };
    static const struct netconn_source bad = { s_fill_fails, s_finished };
    struct owner o;
    struct src s = { .chunks = 3 };
    open_pair(&o);
    netconn_set_source(&o.nc, &good, &s);
    netconn_flush(&o.nc);
    CHECK_EQ(s.filled, 3);
    CHECK_EQ(o.fails, 1); /* all said: closed */
    char buf[64] = { 0 };
    int eof;
    CHECK_EQ(drain(&o, buf, sizeof(buf) - 1, &eof), 18);
    CHECK_STR(buf, "frame;frame;frame;");
    close_pair(&o);

    /* A failing source fails the connection; a detached one is not asked. */
    for (int detach = 0; detach < 2; detach++) {
        open_pair(&o);
        netconn_set_source(&o.nc, &bad, &s);
        if (detach)
            netconn_set_source(&o.nc, NULL, NULL);
        netconn_flush(&o.nc);
        CHECK_EQ(o.fails, !detach);
        close_pair(&o);
    }
}

/* Output that lost bytes (out.oom) and is still pending fails the
 * connection. */
TEST(dropped_bytes_fail)
{
    struct owner o;
    open_pair(&o);
    queue_big(&o, BIG, 0);
    o.nc.out.oom = 1; /* an append was dropped: the framing is broken */
    netconn_flush(&o.nc);
    CHECK_EQ(o.fails, 1);
    close_pair(&o);
}

TEST(send_error_fails)
{
    struct owner o;
    open_pair(&o);
    close(o.peer);
    o.peer = -1;
    sbuf_puts(&o.nc.out, "nobody listens");
    netconn_flush(&o.nc); /* EPIPE, without SIGPIPE */
    CHECK_EQ(o.fails, 1);
    close_pair(&o);
}

int main(void)
{
    g_l = ev_new();
    RUN(read_hands_input_over);
    RUN(eof_fails_but_serves_what_came_with_it);
    RUN(direct_reads_go_straight_to_the_owner);
    RUN(hup_while_paused_fails);
    RUN(holding_pauses_reading);
    RUN(flush_partial_then_rest);
    RUN(lingering_close);
    RUN(peer_half_close_while_reply_pending);
    RUN(source_fills_then_finishes);
    RUN(dropped_bytes_fail);
    RUN(send_error_fails);
    ev_free(g_l);
    return harness_done();
}
