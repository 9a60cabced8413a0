/* decide: the decision channel's codec (decide.h). One rule set, checked
 * the same way on both sides: encode refuses what decode would refuse. */
#include "bypass/decide.h"

#include <errno.h>
#include <string.h>

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8); }
static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t get64(const uint8_t *p) { return get32(p) | (uint64_t)get32(p + 4) << 32; }

static int printable(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
            return 0;
    return 1;
}

static int status_ok(unsigned st)
{
    return st == 200 || st == 400 || st == 404 || st == 413 || st == 503;
}

/* The rules on a message's fields (both directions). */
static int fields_ok(const struct decide_msg *m, size_t tl, size_t sl, size_t el)
{
    if (m->version < DECIDE_VERSION_MIN || m->version > DECIDE_VERSION)
        return 0;
    switch (m->type) {
    case DECIDE_T_DECIDE:
        if (m->flags & ~(m->version >= 3 ? DECIDE_F_HANDUP : 0))
            return 0;
        return (m->proto == DECIDE_PROTO_H1 || m->proto == DECIDE_PROTO_H2C) &&
               tl <= DECIDE_TENANT_MAX && sl <= DECIDE_SESSION_MAX &&
               printable(m->tenant, tl) && printable(m->session, sl) &&
               m->body_len <= DECIDE_BODY_MAX && m->chunk_len <= DECIDE_CHUNK_MAX &&
               m->chunk_len <= m->body_len && (m->chunk || !m->chunk_len);
    case DECIDE_T_BODY:
        return m->chunk_len >= 1 && m->chunk_len <= DECIDE_CHUNK_MAX && m->chunk &&
               m->offset <= DECIDE_BODY_MAX - m->chunk_len;
    case DECIDE_T_ANSWER:
        if (m->status == DECIDE_STATUS_HANDUP)
            return m->version >= 3 && el <= DECIDE_ERR_MAX && printable(m->err, el) &&
                   decide_handup_of(m->err) &&
                   !m->port && !m->slot && !(m->addr[0] | m->addr[1] | m->addr[2] | m->addr[3]);
        if (!status_ok(m->status) || el > DECIDE_ERR_MAX || !printable(m->err, el))
            return 0;
        if (m->status == 200)
            return m->port && m->slot < DECIDE_SLOT_MAX && !el;
        return !m->port && !m->slot && !(m->addr[0] | m->addr[1] | m->addr[2] | m->addr[3]);
    case DECIDE_T_DONE:
        return m->slot < DECIDE_SLOT_MAX && m->outcome <= DECIDE_OUTCOME_MAX &&
               (!m->http_status || (m->http_status >= 100 && m->http_status <= 599)) &&
               (m->version >= 6 || !m->events);
    case DECIDE_T_REQS:
        return m->version >= 2 && m->slot < DECIDE_SLOT_MAX && m->unframed <= DECIDE_UF_MAX &&
               m->idle <= (m->version >= 4 ? 1 : 0) && (m->version >= 5 || !m->body) &&
               (m->version >= 7 || (!m->rq_ttft_n && !m->rq_ttft_us));
    }
    return 0;
}

int decide_encode(const struct decide_msg *mi, uint8_t *buf, size_t cap)
{
    struct decide_msg mv;
    const struct decide_msg *m = mi;
    if (!mi->version) { /* the default version, without touching the caller's */
        mv = *mi;
        mv.version = DECIDE_VERSION;
        m = &mv;
    }
    size_t tl = strnlen(m->tenant, sizeof(m->tenant));
    size_t sl = strnlen(m->session, sizeof(m->session));
    size_t el = strnlen(m->err, sizeof(m->err));
    if (m->type == DECIDE_T_ANSWER)
        tl = sl = 0;
    else
        el = 0;
    if (m->type != DECIDE_T_DECIDE)
        tl = sl = 0;
    if (!fields_ok(m, tl, sl, el))
        return -EINVAL;
    size_t n;
    switch (m->type) {
    case DECIDE_T_DECIDE: n = DECIDE_FIXED_DECIDE + tl + sl + m->chunk_len; break;
    case DECIDE_T_BODY: n = DECIDE_FIXED_BODY + m->chunk_len; break;
    case DECIDE_T_ANSWER: n = DECIDE_FIXED_ANSWER + el; break;
    case DECIDE_T_REQS: n = m->version >= 7 ? DECIDE_FIXED_REQS7 : DECIDE_FIXED_REQS; break;
    default: n = DECIDE_FIXED_DONE; break;
    }
    if (n > cap)
        return -ENOSPC;
    memset(buf, 0, n);
    buf[0] = m->version;
    buf[1] = m->type;
    put32(buf + 4, m->id);
    uint8_t *p = buf + DECIDE_HDR;
    switch (m->type) {
    case DECIDE_T_DECIDE:
        put64(p, m->body_len);
        put32(p + 8, m->chunk_len);
        p[12] = m->proto;
        p[13] = (uint8_t)tl;
        p[14] = (uint8_t)sl;
        p[15] = m->flags;
        p += 16;
        memcpy(p, m->tenant, tl);
        memcpy(p + tl, m->session, sl);
        if (m->chunk_len)
            memcpy(p + tl + sl, m->chunk, m->chunk_len);
        break;
    case DECIDE_T_BODY:
        put64(p, m->offset);
        put32(p + 8, m->chunk_len);
        memcpy(p + 16, m->chunk, m->chunk_len);
        break;
    case DECIDE_T_ANSWER:
        put16(p, m->status);
        put16(p + 2, m->port);
        put32(p + 4, m->slot);
        memcpy(p + 8, m->addr, 4);
        p[12] = (uint8_t)el;
        memcpy(p + 16, m->err, el);
        break;
    case DECIDE_T_DONE:
        put32(p, m->slot);
        put16(p + 4, m->http_status);
        p[6] = m->outcome;
        put64(p + 8, m->bytes_in);
        put64(p + 16, m->bytes_out);
        put32(p + 24, m->ttft_us);
        put32(p + 28, m->events);
        break;
    case DECIDE_T_REQS:
        put32(p, m->slot);
        put32(p + 4, m->requests);
        p[8] = m->unframed;
        p[9] = m->idle;
        put32(p + 12, m->body);
        if (m->version >= 7) {
            put32(p + 16, m->rq_ttft_n);
            put32(p + 20, m->rq_ttft_us);
        }
        break;
    }
    return (int)n;
}

static int zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return 0;
    return 1;
}

int decide_decode(const uint8_t *buf, size_t len, struct decide_msg *m)
{
    memset(m, 0, sizeof(*m));
    if (len < DECIDE_HDR)
        return -EBADMSG;
    if (buf[0] < DECIDE_VERSION_MIN || buf[0] > DECIDE_VERSION)
        return -EPROTONOSUPPORT;
    m->version = buf[0];
    if (!zero(buf + 2, 2))
        return -EBADMSG;
    m->type = buf[1];
    m->id = get32(buf + 4);
    const uint8_t *p = buf + DECIDE_HDR;
    size_t tl = 0, sl = 0, el = 0;
    switch (m->type) {
    case DECIDE_T_DECIDE:
        if (len < DECIDE_FIXED_DECIDE)
            return -EBADMSG;
        m->flags = p[15]; /* which bits a version allows: fields_ok */
        m->body_len = get64(p);
        m->chunk_len = get32(p + 8);
        m->proto = p[12];
        tl = p[13], sl = p[14];
        if (tl > DECIDE_TENANT_MAX || sl > DECIDE_SESSION_MAX ||
            m->chunk_len > DECIDE_CHUNK_MAX ||
            len != DECIDE_FIXED_DECIDE + tl + sl + m->chunk_len)
            return -EBADMSG;
        p += 16;
        memcpy(m->tenant, p, tl);
        memcpy(m->session, p + tl, sl);
        m->chunk = m->chunk_len ? p + tl + sl : NULL;
        break;
    case DECIDE_T_BODY:
        if (len < DECIDE_FIXED_BODY || !zero(p + 12, 4))
            return -EBADMSG;
        m->offset = get64(p);
        m->chunk_len = get32(p + 8);
        if (m->chunk_len > DECIDE_CHUNK_MAX || len != DECIDE_FIXED_BODY + m->chunk_len)
            return -EBADMSG;
        m->chunk = p + 16;
        break;
    case DECIDE_T_ANSWER:
        if (len < DECIDE_FIXED_ANSWER || !zero(p + 13, 3))
            return -EBADMSG;
        m->status = get16(p);
        m->port = get16(p + 2);
        m->slot = get32(p + 4);
        memcpy(m->addr, p + 8, 4);
        el = p[12];
        if (el > DECIDE_ERR_MAX || len != DECIDE_FIXED_ANSWER + el)
            return -EBADMSG;
        memcpy(m->err, p + 16, el);
        break;
    case DECIDE_T_DONE:
        if (len != DECIDE_FIXED_DONE || p[7])
            return -EBADMSG;
        m->slot = get32(p);
        m->http_status = get16(p + 4);
        m->outcome = p[6];
        m->bytes_in = get64(p + 8);
        m->bytes_out = get64(p + 16);
        m->ttft_us = get32(p + 24);
        m->events = get32(p + 28); /* which versions may carry them: fields_ok */
        break;
    case DECIDE_T_REQS:
        if (len != (m->version >= 7 ? DECIDE_FIXED_REQS7 : DECIDE_FIXED_REQS) || !zero(p + 10, 2))
            return -EBADMSG;
        m->slot = get32(p);
        m->requests = get32(p + 4);
        m->unframed = p[8];
        m->idle = p[9]; /* which values a version allows: fields_ok */
        m->body = get32(p + 12);
        if (m->version >= 7) {
            m->rq_ttft_n = get32(p + 16);
            m->rq_ttft_us = get32(p + 20);
        }
        break;
    default:
        return -EBADMSG;
    }
    return fields_ok(m, tl, sl, el) ? 0 : -EBADMSG;
}

const char *decide_outcome_name(unsigned o)
{
    static const char *const names[] = {"ok", "client_abort", "pod_error", "timeout",
                                        "shutdown", "rejected", "pod_down"};
    _Static_assert(sizeof(names) / sizeof(names[0]) == DECIDE_OUTCOME_MAX + 1,
                   "a name for every enum decide_outcome");
    return o <= DECIDE_OUTCOME_MAX ? names[o] : "unknown";
}

const char *decide_unframed_name(unsigned u)
{
    static const char *const names[] = {"none", "body", "split_head", "unparsable", "out_of_order",
                                        "too_many", "first_flight", "entry_lost", "h2c"};
    _Static_assert(sizeof(names) / sizeof(names[0]) == DECIDE_UF_MAX + 1,
                   "a name for every enum decide_unframed");
    return u <= DECIDE_UF_MAX ? names[u] : "unknown";
}

static const char *const HU_NAMES[] = {NULL, "model", "session", "h2c"};
_Static_assert(sizeof(HU_NAMES) / sizeof(HU_NAMES[0]) == DECIDE_HU_MAX + 1,
               "a name for every enum decide_handup");

const char *decide_handup_name(unsigned c)
{
    return c <= DECIDE_HU_MAX ? HU_NAMES[c] : NULL;
}

unsigned decide_handup_of(const char *err)
{
    for (unsigned i = 1; i <= DECIDE_HU_MAX; i++)
        if (!strcmp(err, HU_NAMES[i]))
            return i;
    return 0;
}
