/* decide_cli: the worker's end of the decision channel (decide_cli.h). */
#include "bypass/decide_cli.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define RETRY_MS 1000
#define READ_BURST 64

struct qpkt {
    struct qpkt *next;
    uint32_t len;
    uint8_t b[];
};

struct dcli {
    struct sockaddr_un sa;
    int fd;
    uint32_t gen;
    uint64_t next_try_ms;
    struct qpkt *head, *tail;
    size_t queued, max_queued;
    uint8_t flags;               /* enum decide_flags, in every DECIDE */
    struct dcli_stats st;
};

void dcli_set_flags(struct dcli *c, unsigned flags) { c->flags = (uint8_t)flags; }

struct dcli *dcli_new(const char *path, size_t max_queued)
{
    struct dcli *c = calloc(1, sizeof(*c));
    if (!c || strlen(path) >= sizeof(c->sa.sun_path)) {
        free(c);
        return NULL;
    }
    c->sa.sun_family = AF_UNIX;
    memcpy(c->sa.sun_path, path, strlen(path));
    c->fd = -1;
    c->max_queued = max_queued;
    return c;
}

static void drop_queue(struct dcli *c)
{
    while (c->head) {
        struct qpkt *q = c->head;
        c->head = q->next;
        free(q);
    }
    c->tail = NULL;
    c->queued = 0;
}

void dcli_free(struct dcli *c)
{
    if (!c)
        return;
    if (c->fd >= 0)
        close(c->fd);
    drop_queue(c);
    free(c);
}

int dcli_up(const struct dcli *c) { return c->fd >= 0; }

int dcli_pollfd(const struct dcli *c, short *events)
{
    *events = c->fd < 0 ? 0 : (short)(POLLIN | (c->head ? POLLOUT : 0));
    return c->fd;
}
uint32_t dcli_gen(const struct dcli *c) { return c->gen; }
void dcli_stats(const struct dcli *c, struct dcli_stats *s) { *s = c->st; }

static void down(struct dcli *c)
{
    close(c->fd);
    c->fd = -1;
    drop_queue(c);
    c->st.downs++;
}

/* The packets of one message list, linked but not yet queued. */
static struct qpkt *make(const struct decide_msg *m)
{
    uint8_t buf[DECIDE_MSG_MAX];
    int n = decide_encode(m, buf, sizeof(buf));
    if (n < 0)
        return NULL;
    struct qpkt *q = malloc(sizeof(*q) + (size_t)n);
    if (!q)
        return NULL;
    q->next = NULL;
    q->len = (uint32_t)n;
    memcpy(q->b, buf, (size_t)n);
    return q;
}

/* All of list (total bytes) onto the queue, or none. */
static int enqueue(struct dcli *c, struct qpkt *list, size_t total)
{
    if (c->queued + total > c->max_queued) {
        while (list) {
            struct qpkt *q = list;
            list = q->next;
            free(q);
        }
        c->st.refused_full++;
        return -ENOBUFS;
    }
    struct qpkt *last = list;
    while (last->next)
        last = last->next;
    if (c->tail)
        c->tail->next = list;
    else
        c->head = list;
    c->tail = last;
    c->queued += total;
    return 0;
}

int dcli_decide(struct dcli *c, uint32_t id, int proto, const char *tenant,
                const char *session, const uint8_t *body, size_t len)
{
    if (c->fd < 0)
        return -ENOTCONN;
    if (len > DECIDE_BODY_MAX || strlen(tenant) > DECIDE_TENANT_MAX ||
        strlen(session) > DECIDE_SESSION_MAX)
        return -EINVAL;
    if (c->queued + len > c->max_queued) {
        c->st.refused_full++;
        return -ENOBUFS;
    }
    struct decide_msg m;
    memset(&m, 0, sizeof(m));
    m.type = DECIDE_T_DECIDE;
    m.id = id;
    m.proto = (uint8_t)proto;
    m.flags = c->flags;
    memcpy(m.tenant, tenant, strlen(tenant));
    memcpy(m.session, session, strlen(session));
    m.body_len = len;
    m.chunk = len ? body : NULL;
    m.chunk_len = (uint32_t)(len < DECIDE_CHUNK_MAX ? len : DECIDE_CHUNK_MAX);
    struct qpkt *list = make(&m), *last = list;
    size_t total = list ? list->len : 0;
    for (size_t off = m.chunk_len; list && off < len;) {
        struct decide_msg b;
        memset(&b, 0, sizeof(b));
        b.type = DECIDE_T_BODY;
        b.id = id;
        b.offset = off;
        b.chunk = body + off;
        b.chunk_len = (uint32_t)(len - off < DECIDE_CHUNK_MAX ? len - off : DECIDE_CHUNK_MAX);
        struct qpkt *q = make(&b);
        if (!q) {
            while (list) {
                struct qpkt *x = list;
                list = x->next;
                free(x);
            }
            return -ENOMEM;
        }
        last->next = q;
        last = q;
        total += q->len;
        off += b.chunk_len;
    }
    if (!list)
        return -EINVAL;
    return enqueue(c, list, total);
}

int dcli_done(struct dcli *c, uint32_t id, uint32_t slot, unsigned outcome,
              unsigned http_status, uint64_t bytes_in, uint64_t bytes_out, uint32_t ttft_us,
              uint32_t events)
{
    if (c->fd < 0)
        return -ENOTCONN;
    struct decide_msg m;
    memset(&m, 0, sizeof(m));
    m.type = DECIDE_T_DONE;
    m.id = id;
    m.slot = slot;
    m.outcome = (uint8_t)outcome;
    m.http_status = (uint16_t)http_status;
    m.bytes_in = bytes_in;
    m.bytes_out = bytes_out;
    m.ttft_us = ttft_us;
    m.events = events;
    struct qpkt *q = make(&m);
    if (!q)
        return -EINVAL;
    return enqueue(c, q, q->len);
}

int dcli_reqs(struct dcli *c, uint32_t id, uint32_t slot, uint32_t requests, unsigned unframed,
              int idle, uint32_t body, uint32_t ttft_n, uint32_t ttft_us)
{
    if (c->fd < 0)
        return -ENOTCONN;
    struct decide_msg m;
    memset(&m, 0, sizeof(m));
    m.type = DECIDE_T_REQS;
    m.id = id;
    m.slot = slot;
    m.requests = requests;
    m.unframed = (uint8_t)(unframed > 255 ? 255 : unframed);
    m.idle = idle ? 1 : 0;
    m.body = body;
    m.rq_ttft_n = ttft_n;
    m.rq_ttft_us = ttft_us;
    struct qpkt *q = make(&m);
    if (!q)
        return -EINVAL;
    return enqueue(c, q, q->len);
}

unsigned dcli_poll(struct dcli *c, uint64_t now_ms,
                   void (*on_answer)(void *ctx, const struct decide_msg *a), void *ctx)
{
    unsigned ev = 0;
    if (c->fd < 0) {
        if (now_ms < c->next_try_ms)
            return 0;
        c->next_try_ms = now_ms + RETRY_MS;
        int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
            return 0;
        if (connect(fd, (struct sockaddr *)&c->sa, sizeof(c->sa))) {
            close(fd);
            return 0;
        }
        c->fd = fd;
        c->gen++;
        ev |= DCLI_EV_UP;
    }
    while (c->head) {
        struct qpkt *q = c->head;
        ssize_t n = send(c->fd, q->b, q->len, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n < 0 && errno == EINTR)
            continue;
        if (n != (ssize_t)q->len) {
            down(c);
            return ev | DCLI_EV_DOWN;
        }
        c->head = q->next;
        if (!c->head)
            c->tail = NULL;
        c->queued -= q->len;
        free(q);
        c->st.sent++;
    }
    for (int i = 0; i < READ_BURST; i++) {
        uint8_t buf[DECIDE_FIXED_ANSWER + DECIDE_ERR_MAX + 1];
        ssize_t n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT | MSG_TRUNC);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n < 0 && errno == EINTR)
            continue;
        struct decide_msg m;
        if (n <= 0) { /* kvgated went away */
            down(c);
            return ev | DCLI_EV_DOWN;
        }
        if ((size_t)n >= sizeof(buf) || decide_decode(buf, (size_t)n, &m) ||
            m.type != DECIDE_T_ANSWER) {
            c->st.bad++;
            down(c);
            return ev | DCLI_EV_DOWN;
        }
        c->st.answers++;
        on_answer(ctx, &m);
    }
    return ev;
}
