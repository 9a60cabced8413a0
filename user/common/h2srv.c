/* h2srv: nghttp2 server session <-> netconn. See h2srv.h. */
#include "common/h2srv.h"

#include <errno.h>
#include <string.h>

#include "common/ev.h"
#include "common/netconn.h"
#include "common/sbuf.h"

static const char PREFACE[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
#define PREFACE_LEN 24

int h2srv_sniff(const char *p, size_t n)
{
    size_t k = n < PREFACE_LEN ? n : PREFACE_LEN;
    if (memcmp(p ? p : "", PREFACE, k) != 0)
        return H2SRV_NOT_H2;
    return n >= PREFACE_LEN ? H2SRV_PREFACE : H2SRV_MORE;
}

/* ---- the connection's output source ---- */

/* Serialises frames into nc->out, up to out_soft. 0 or -1 (fatal). */
static int fill(void *self, struct netconn *nc)
{
    struct h2srv *h = self;
    int rc = 0;
    h->in_ng++;
    while (netconn_pending(nc) < h->out_soft) {
        const uint8_t *d;
        ssize_t n = nghttp2_session_mem_send(h->ng, &d);
        if (n < 0) {
            rc = -1;
            break;
        }
        if (n == 0)
            break;
        if (sbuf_append(&nc->out, d, (size_t)n)) {
            rc = -1;
            break;
        }
    }
    h->in_ng--;
    return rc;
}

/* GOAWAY exchanged: nothing left to read or write. */
static int finished(const void *self)
{
    const struct h2srv *h = self;
    return !nghttp2_session_want_read(h->ng) && !nghttp2_session_want_write(h->ng);
}

static const struct netconn_source h2_source = { fill, finished };

/* ---- receiving: nghttp2 callbacks -> the owner's stream callbacks ---- */

static void *stream_of(struct h2srv *h, int32_t id)
{
    return h->nc->dead ? NULL : nghttp2_session_get_stream_user_data(h->ng, id);
}

static int is_request_headers(const nghttp2_frame *f)
{
    return f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST;
}

static int on_begin_headers(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
    struct h2srv *h = ud;
    if (h->nc->dead)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    if (!is_request_headers(f))
        return 0;
    void *st = h->cb->open(h->ud, f->hd.stream_id);
    if (!st)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* resets the stream */
    nghttp2_session_set_stream_user_data(ng, f->hd.stream_id, st);
    return 0;
}

static int on_header(nghttp2_session *ng, const nghttp2_frame *f,
                     const uint8_t *name, size_t nl, const uint8_t *value,
                     size_t vl, uint8_t flags, void *ud)
{
    struct h2srv *h = ud;
    void *st = stream_of(h, f->hd.stream_id);
    if (!st || !is_request_headers(f))
        return 0; /* trailers are ignored */
    if (h->cb->header(h->ud, st, (const char *)name, nl, (const char *)value, vl))
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    return 0;
}

static int on_data_chunk(nghttp2_session *ng, uint8_t flags, int32_t id,
                         const uint8_t *data, size_t len, void *ud)
{
    struct h2srv *h = ud;
    void *st = stream_of(h, id);
    if (st && h->cb->data(h->ud, st, (const char *)data, len))
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    return 0;
}

static int on_frame_recv(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
    struct h2srv *h = ud;
    if (h->nc->dead)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    if (f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA)
        return 0;
    void *st = stream_of(h, f->hd.stream_id);
    if (!st)
        return 0;
    if (!(f->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
        if (f->hd.type == NGHTTP2_HEADERS && h->cb->head)
            h->cb->head(h->ud, st);
        return 0;
    }
    if (h->cb->request(h->ud, st))
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    return h->nc->dead ? NGHTTP2_ERR_CALLBACK_FAILURE : 0;
}

/* Every frame header: the abuse limits that do not wait for a whole frame. */
static int on_begin_frame(nghttp2_session *ng, const nghttp2_frame_hd *hd, void *ud)
{
    struct h2srv *h = ud;
    const char *which = NULL;
    if (hd->type == NGHTTP2_RST_STREAM) {
        uint64_t now = ev_now_ns();
        h->reset_tokens += (double)(now - h->reset_ns) / 1e9 * h->reset_rate;
        if (h->reset_tokens > h->reset_burst)
            h->reset_tokens = h->reset_burst;
        h->reset_ns = now;
        if (h->reset_tokens >= 1)
            h->reset_tokens -= 1;
        else
            which = "h2_reset_flood";
    } else if (hd->type == NGHTTP2_HEADERS) {
        h->continuations = 0;
    } else if (hd->type == NGHTTP2_CONTINUATION && ++h->continuations > h->max_continuations) {
        which = "h2_continuation_flood";
    }
    if (!which)
        return 0;
    if (!h->calmed) {
        h->calmed = 1;
        nghttp2_session_terminate_session(ng, NGHTTP2_ENHANCE_YOUR_CALM);
        if (h->cb->limit)
            h->cb->limit(h->ud, which);
    }
    return NGHTTP2_ERR_CALLBACK_FAILURE; /* stop reading: h2srv_recv fails */
}

static int on_stream_close(nghttp2_session *ng, int32_t id, uint32_t err, void *ud)
{
    struct h2srv *h = ud;
    void *st = stream_of(h, id);
    if (!st)
        return 0; /* dead connection: the owner's teardown has its streams */
    nghttp2_session_set_stream_user_data(ng, id, NULL);
    h->cb->close(h->ud, st, err);
    return 0;
}

/* ---- session ---- */

int h2srv_init(struct h2srv *h, struct netconn *nc,
               const struct h2srv_callbacks *cb, void *ud,
               const struct h2srv_settings *set)
{
    nghttp2_session_callbacks *cbs;
    *h = (struct h2srv){ .nc = nc, .cb = cb, .ud = ud, .out_soft = set->out_soft };
    if (nghttp2_session_callbacks_new(&cbs))
        return -ENOMEM;
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
    nghttp2_session_callbacks_set_on_begin_frame_callback(cbs, on_begin_frame);
    /* Set explicitly, whatever this nghttp2's defaults are: */
    nghttp2_option *opt;
    if (nghttp2_option_new(&opt)) {
        nghttp2_session_callbacks_del(cbs);
        return -ENOMEM;
    }
    nghttp2_option_set_no_auto_window_update(opt, set->manual_window != 0);
    nghttp2_option_set_max_outbound_ack(opt, 1000);        /* PING / SETTINGS floods */
    nghttp2_option_set_max_settings(opt, 32);              /* entries per SETTINGS */
    nghttp2_option_set_max_deflate_dynamic_table_size(opt, 4096);
    nghttp2_option_set_max_send_header_block_length(opt, 64u << 10);
    nghttp2_session *ng;
    int rv = nghttp2_session_server_new2(&ng, cbs, h, opt);
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cbs);
    if (rv)
        return -ENOMEM;
    h->reset_rate = set->reset_rate > 0 ? set->reset_rate : 50;
    h->reset_burst = set->reset_burst > 0 ? set->reset_burst : 200;
    h->reset_tokens = h->reset_burst;
    h->reset_ns = ev_now_ns();
    h->max_continuations = set->max_continuations ? set->max_continuations : 8;
    nghttp2_settings_entry iv[] = {
        { NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, set->max_streams },
        { NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1u << 20 },
        { NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, set->max_header_list },
    };
    if (nghttp2_submit_settings(ng, NGHTTP2_FLAG_NONE, iv, 3) ||
        nghttp2_session_set_local_window_size(ng, NGHTTP2_FLAG_NONE, 0, 16 << 20)) {
        nghttp2_session_del(ng);
        return -ENOMEM;
    }
    h->ng = ng;
    netconn_set_source(nc, &h2_source, h);
    return 0;
}

void h2srv_free(struct h2srv *h)
{
    if (!h->ng)
        return;
    nghttp2_session_del(h->ng);
    h->ng = NULL;
    if (h->nc->src_self == h)
        netconn_set_source(h->nc, NULL, NULL);
}

void h2srv_consume(struct h2srv *h, int32_t id, size_t n)
{
    if (!h->ng || !n)
        return;
    /* a stream nghttp2 already closed: only the connection's window */
    if (nghttp2_session_consume(h->ng, id, n) != 0)
        nghttp2_session_consume_connection(h->ng, n);
}

int h2srv_recv(struct h2srv *h)
{
    struct netconn *nc = h->nc;
    h->in_ng++;
    ssize_t n = nghttp2_session_mem_recv(h->ng, (const uint8_t *)nc->in.data,
                                         nc->in.len);
    h->in_ng--;
    if (nc->dead)
        return 0;
    if (n < 0)
        return -1;
    sbuf_consume(&nc->in, (size_t)n);
    return 0;
}
