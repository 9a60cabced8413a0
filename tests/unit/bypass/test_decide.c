/* Unit tests for user/bypass/decide.c, the decision channel's codec:
 * every message type round-trips; every truncation (and one byte more) of
 * each is refused; another version is -EPROTONOSUPPORT; oversize and
 * out-of-range fields are refused by encode and by decode alike; reserved
 * bytes must be zero; text must be printable. Version 2's REQS (a spliced
 * flow's later requests) round-trips, is refused in a version 1 packet,
 * and version 1 packets of the other types still decode (as version 1);
 * version 4's idle byte in REQS round-trips and is refused below 4;
 * version 5's body bytes likewise below 5; version 6's answer events in
 * DONE likewise below 6.
 * Version 3's DECIDE flag (the worker can hand up) and ANSWER HANDUP
 * (with its cause) round-trip, and are refused below version 3 and with
 * any other bit, cause or field. */
#include "bypass/decide.h"
#include "harness.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

static uint8_t body[DECIDE_CHUNK_MAX];

static struct decide_msg m_decide(void)
{
    struct decide_msg m;
    memset(&m, 0, sizeof(m));
    m.type = DECIDE_T_DECIDE;
    m.id = 0xA1B2C3D4u;
    m.proto = DECIDE_PROTO_H1;
    strcpy(m.tenant, "chat");
    strcpy(m.session, "sess-42");
    m.body_len = 100000;
    m.chunk = body;
    m.chunk_len = 1000;
    return m;
}

static struct decide_msg m_body(void)
{
    struct decide_msg m;
    memset(&m, 0, sizeof(m));
    m.type = DECIDE_T_BODY;
    m.id = 7;
    m.offset = 1000;
    m.chunk = body + 5;
    m.chunk_len = 333;
    return m;
}

static struct decide_msg m_answer(void)
{
    struct decide_msg m;
    memset(&m, 0, sizeof(m));
    m.type = DECIDE_T_ANSWER;
    m.id = 9;
    m.status = 200;
    m.port = 8000;
    m.slot = 511;
    memcpy(m.addr, (uint8_t[]){10, 99, 0, 3}, 4);
    return m;
}

static struct decide_msg m_done(void)
{
    struct decide_msg m;
    memset(&m, 0, sizeof(m));
    m.type = DECIDE_T_DONE;
    m.id = 0xFFFFFFFFu;
    m.slot = 3;
    m.outcome = DECIDE_CLIENT_ABORT;
    m.http_status = 200;
    m.bytes_in = 1ull << 40;
    m.bytes_out = 12345;
    m.ttft_us = 777;
    return m;
}

static struct decide_msg m_reqs(void)
{
    struct decide_msg m;
    memset(&m, 0, sizeof(m));
    m.type = DECIDE_T_REQS;
    m.id = 0x12345678u;
    m.slot = 511;
    m.requests = 0xFFFFFFF0u;
    m.unframed = DECIDE_UF_SPLIT;
    return m;
}

static uint8_t buf[DECIDE_MSG_MAX + 16];

TEST(round_trip_each_type)
{
    for (size_t i = 0; i < sizeof(body); i++)
        body[i] = (uint8_t)(i * 7 + 3);
    struct decide_msg in = m_decide(), out;
    int n = decide_encode(&in, buf, sizeof(buf));
    CHECK_EQ(n, DECIDE_FIXED_DECIDE + 4 + 7 + 1000);
    CHECK_EQ(decide_decode(buf, (size_t)n, &out), 0);
    CHECK_EQ(out.type, DECIDE_T_DECIDE);
    CHECK_EQ(out.id, 0xA1B2C3D4u);
    CHECK_EQ(out.proto, DECIDE_PROTO_H1);
    CHECK_STR(out.tenant, "chat");
    CHECK_STR(out.session, "sess-42");
    CHECK_EQ(out.body_len, 100000);
    CHECK_EQ(out.chunk_len, 1000);
    CHECK(out.chunk && !memcmp(out.chunk, body, 1000));

    in = m_body();
    n = decide_encode(&in, buf, sizeof(buf));
    CHECK_EQ(n, DECIDE_FIXED_BODY + 333);
    CHECK_EQ(decide_decode(buf, (size_t)n, &out), 0);
    CHECK_EQ(out.offset, 1000);
    CHECK_EQ(out.chunk_len, 333);
    CHECK(!memcmp(out.chunk, body + 5, 333));

    in = m_answer();
    n = decide_encode(&in, buf, sizeof(buf));
    CHECK_EQ(n, DECIDE_FIXED_ANSWER);
    CHECK_EQ(decide_decode(buf, (size_t)n, &out), 0);
    CHECK_EQ(out.status, 200);
    CHECK_EQ(out.port, 8000);
    CHECK_EQ(out.slot, 511);
    CHECK(!memcmp(out.addr, (uint8_t[]){10, 99, 0, 3}, 4));

    in = m_answer();
    in.status = 404, in.port = 0, in.slot = 0;
    memset(in.addr, 0, 4);
    strcpy(in.err, "model 'x' is not served here");
    n = decide_encode(&in, buf, sizeof(buf));
    CHECK_EQ(n, DECIDE_FIXED_ANSWER + (int)strlen(in.err));
    CHECK_EQ(decide_decode(buf, (size_t)n, &out), 0);
    CHECK_EQ(out.status, 404);
    CHECK_STR(out.err, "model 'x' is not served here");

    in = m_done();
    n = decide_encode(&in, buf, sizeof(buf));
    CHECK_EQ(n, DECIDE_FIXED_DONE);
    CHECK_EQ(decide_decode(buf, (size_t)n, &out), 0);
    CHECK_EQ(out.id, 0xFFFFFFFFu);
    CHECK_EQ(out.slot, 3);
    CHECK_EQ(out.outcome, DECIDE_CLIENT_ABORT);
    CHECK_EQ(out.http_status, 200);
    CHECK_EQ(out.bytes_in, 1ull << 40);
    CHECK_EQ(out.bytes_out, 12345);
    CHECK_EQ(out.ttft_us, 777);

    /* every outcome travels, and has its label value */
    for (unsigned o = 0; o <= DECIDE_OUTCOME_MAX; o++) {
        in = m_done();
        in.outcome = (uint8_t)o;
        n = decide_encode(&in, buf, sizeof(buf));
        CHECK_EQ(decide_decode(buf, (size_t)n, &out), 0);
        CHECK_EQ(out.outcome, o);
        CHECK(strcmp(decide_outcome_name(o), "unknown") != 0);
    }
    CHECK_STR(decide_outcome_name(DECIDE_POD_DOWN), "pod_down");
    CHECK_STR(decide_outcome_name(DECIDE_OUTCOME_MAX + 1), "unknown");
}

TEST(largest_message_fits_the_max)
{
    struct decide_msg in = m_decide(), out;
    memset(in.tenant, 't', DECIDE_TENANT_MAX);
    memset(in.session, 's', DECIDE_SESSION_MAX);
    in.chunk_len = DECIDE_CHUNK_MAX;
    int n = decide_encode(&in, buf, sizeof(buf));
    CHECK_EQ(n, DECIDE_MSG_MAX);
    CHECK_EQ(decide_decode(buf, (size_t)n, &out), 0);
    CHECK_EQ(strlen(out.tenant), DECIDE_TENANT_MAX);
    CHECK_EQ(decide_encode(&in, buf, DECIDE_MSG_MAX - 1), -ENOSPC);
    /* an empty body: no chunk at all */
    in = m_decide();
    in.body_len = 0, in.chunk_len = 0, in.chunk = NULL;
    n = decide_encode(&in, buf, sizeof(buf));
    CHECK_EQ(decide_decode(buf, (size_t)n, &out), 0);
    CHECK(out.chunk == NULL);
}

/* Every prefix of a valid packet, and the packet with a byte more, is
 * refused: the lengths are strict. */
TEST(truncation_at_every_byte)
{
    struct decide_msg ms[5] = {m_decide(), m_body(), m_answer(), m_done(), m_reqs()};
    strcpy(ms[2].err, "");
    for (int k = 0; k < 5; k++) {
        int n = decide_encode(&ms[k], buf, sizeof(buf));
        CHECK(n > 0);
        struct decide_msg out;
        int bad = 0;
        for (int cut = 0; cut < n; cut++)
            if (decide_decode(buf, (size_t)cut, &out) != -EBADMSG)
                bad++;
        CHECK_EQ(bad, 0);
        buf[n] = 0;
        CHECK_EQ(decide_decode(buf, (size_t)n + 1, &out), -EBADMSG);
        CHECK_EQ(decide_decode(buf, (size_t)n, &out), 0);
    }
}

TEST(bad_version_and_type)
{
    struct decide_msg in = m_done(), out;
    int n = decide_encode(&in, buf, sizeof(buf));
    buf[0] = DECIDE_VERSION + 1;
    CHECK_EQ(decide_decode(buf, (size_t)n, &out), -EPROTONOSUPPORT);
    buf[0] = 0;
    CHECK_EQ(decide_decode(buf, (size_t)n, &out), -EPROTONOSUPPORT);
    buf[0] = DECIDE_VERSION;
    buf[1] = 9;
    CHECK_EQ(decide_decode(buf, (size_t)n, &out), -EBADMSG);
    buf[1] = 0;
    CHECK_EQ(decide_decode(buf, (size_t)n, &out), -EBADMSG);
    buf[1] = DECIDE_T_DONE;
    buf[2] = 1; /* reserved */
    CHECK_EQ(decide_decode(buf, (size_t)n, &out), -EBADMSG);
    buf[2] = 0;
    CHECK_EQ(decide_decode(buf, (size_t)n, &out), 0);
    in.type = 0;
    CHECK_EQ(decide_encode(&in, buf, sizeof(buf)), -EINVAL);
}

TEST(oversize_fields_refused_both_ways)
{
    struct decide_msg in, out;
    int n;
    /* encode refuses */
    in = m_decide();
    memset(in.tenant, 'x', sizeof(in.tenant)); /* not terminated: 128 bytes */
    CHECK_EQ(decide_encode(&in, buf, sizeof(buf)), -EINVAL);
    in = m_decide();
    in.chunk_len = DECIDE_CHUNK_MAX + 1;
    CHECK_EQ(decide_encode(&in, buf, sizeof(buf)), -EINVAL);
    in = m_decide();
    in.body_len = 10; /* chunk longer than the body */
    CHECK_EQ(decide_encode(&in, buf, sizeof(buf)), -EINVAL);
    in = m_decide();
    in.body_len = DECIDE_BODY_MAX + 1;
    CHECK_EQ(decide_encode(&in, buf, sizeof(buf)), -EINVAL);
    in = m_decide();
    in.proto = 3;
    CHECK_EQ(decide_encode(&in, buf, sizeof(buf)), -EINVAL);
    in = m_decide();
    strcpy(in.session, "a\nb");
    CHECK_EQ(decide_encode(&in, buf, sizeof(buf)), -EINVAL);
    in = m_body();
    in.chunk_len = 0;
    CHECK_EQ(decide_encode(&in, buf, sizeof(buf)), -EINVAL);
    in = m_body();
    in.offset = DECIDE_BODY_MAX;
    CHECK_EQ(decide_encode(&in, buf, sizeof(buf)), -EINVAL);
    in = m_answer();
    in.slot = DECIDE_SLOT_MAX;
    CHECK_EQ(decide_encode(&in, buf, sizeof(buf)), -EINVAL);
    in = m_answer();
    in.status = 302;
    CHECK_EQ(decide_encode(&in, buf, sizeof(buf)), -EINVAL);
    in = m_answer();
    in.port = 0;
    CHECK_EQ(decide_encode(&in, buf, sizeof(buf)), -EINVAL);
    in = m_answer();
    in.status = 503; /* a refusal names no pod */
    CHECK_EQ(decide_encode(&in, buf, sizeof(buf)), -EINVAL);
    in = m_done();
    in.outcome = DECIDE_OUTCOME_MAX + 1;
    CHECK_EQ(decide_encode(&in, buf, sizeof(buf)), -EINVAL);
    in = m_done();
    in.http_status = 99;
    CHECK_EQ(decide_encode(&in, buf, sizeof(buf)), -EINVAL);

    /* decode refuses the same, written by hand into valid packets */
    in = m_decide();
    n = decide_encode(&in, buf, sizeof(buf));
    buf[DECIDE_HDR + 13] = DECIDE_TENANT_MAX + 1; /* tenant_len */
    CHECK_EQ(decide_decode(buf, (size_t)n, &out), -EBADMSG);
    n = decide_encode(&in, buf, sizeof(buf));
    buf[DECIDE_HDR + 15] = 2; /* a flag no version defines */
    CHECK_EQ(decide_decode(buf, (size_t)n, &out), -EBADMSG);
    n = decide_encode(&in, buf, sizeof(buf));
    buf[DECIDE_HDR + 16] = 0; /* a NUL in the tenant */
    CHECK_EQ(decide_decode(buf, (size_t)n, &out), -EBADMSG);
    n = decide_encode(&in, buf, sizeof(buf));
    buf[DECIDE_HDR + 8 + 3] = 0x80; /* chunk_len huge */
    CHECK_EQ(decide_decode(buf, (size_t)n, &out), -EBADMSG);
    in = m_answer();
    n = decide_encode(&in, buf, sizeof(buf));
    buf[DECIDE_HDR + 5] = 2; /* slot 512 + 511 */
    CHECK_EQ(decide_decode(buf, (size_t)n, &out), -EBADMSG);
    n = decide_encode(&in, buf, sizeof(buf));
    buf[DECIDE_HDR + 12] = 1; /* err_len on a 200, one byte short */
    CHECK_EQ(decide_decode(buf, (size_t)n, &out), -EBADMSG);
    in = m_done();
    n = decide_encode(&in, buf, sizeof(buf));
    buf[DECIDE_HDR + 6] = 200; /* outcome */
    CHECK_EQ(decide_decode(buf, (size_t)n, &out), -EBADMSG);
    n = decide_encode(&in, buf, sizeof(buf));
    buf[0] = 5;
    buf[DECIDE_HDR + 31] = 1; /* the answer events' byte, reserved below version 6 */
    CHECK_EQ(decide_decode(buf, (size_t)n, &out), -EBADMSG);
}

/* A u32 field of base's type that version `since` added (at byte `at` of
 * the fixed part, little-endian; off: where it lies in decide_msg): the
 * full range round-trips in today's version (fixed: its length); from
 * version `from` up to `since` (fixed_old: their length) the bytes are
 * reserved or absent (encode and decode refuse a value other than 0,
 * which every version takes). */
static void versioned_u32(struct decide_msg base, size_t off, int fixed, int fixed_old, size_t at,
                          uint8_t from, uint8_t since)
{
    struct decide_msg in, out;
    uint32_t vals[] = {1, 0x01020304u, 0xFFFFFFFFu}, got, seven = 7;
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
        in = base;
        memcpy((char *)&in + off, &vals[i], 4);
        int n = decide_encode(&in, buf, sizeof(buf));
        CHECK_EQ(n, fixed);
        CHECK_EQ(buf[0], DECIDE_VERSION);
        CHECK_EQ(buf[DECIDE_HDR + at], (uint8_t)vals[i]);
        CHECK_EQ(buf[DECIDE_HDR + at + 3], (uint8_t)(vals[i] >> 24));
        CHECK_EQ(decide_decode(buf, (size_t)n, &out), 0);
        memcpy(&got, (char *)&out + off, 4);
        CHECK_EQ(got, vals[i]);
        CHECK_EQ(out.type, base.type);
    }
    for (uint8_t v = from; v < since; v++) {
        in = base;
        in.version = v;
        CHECK_EQ(decide_encode(&in, buf, sizeof(buf)), fixed_old); /* the field 0 */
        CHECK_EQ(decide_decode(buf, (size_t)fixed_old, &out), 0);
        memcpy(&got, (char *)&out + off, 4);
        CHECK_EQ(got, 0);
        CHECK_EQ(out.version, v);
        memcpy((char *)&in + off, &seven, 4);
        CHECK_EQ(decide_encode(&in, buf, sizeof(buf)), -EINVAL);
        in.version = 0;
        int n = decide_encode(&in, buf, sizeof(buf));
        buf[0] = v;
        CHECK_EQ(decide_decode(buf, (size_t)n, &out), -EBADMSG);
    }
}

TEST(reqs_round_trip_and_bounds)
{
    struct decide_msg in = m_reqs(), out;
    int n = decide_encode(&in, buf, sizeof(buf));
    CHECK_EQ(n, DECIDE_FIXED_REQS7);
    CHECK_EQ(buf[0], DECIDE_VERSION);
    CHECK_EQ(decide_decode(buf, (size_t)n, &out), 0);
    CHECK_EQ(out.version, DECIDE_VERSION);
    CHECK_EQ(out.type, DECIDE_T_REQS);
    CHECK_EQ(out.id, 0x12345678u);
    CHECK_EQ(out.slot, 511);
    CHECK_EQ(out.requests, 0xFFFFFFF0u);
    CHECK_EQ(out.unframed, DECIDE_UF_SPLIT);
    /* every reason travels and has its label value */
    for (unsigned u = 0; u <= DECIDE_UF_MAX; u++) {
        in = m_reqs();
        in.unframed = (uint8_t)u;
        n = decide_encode(&in, buf, sizeof(buf));
        CHECK_EQ(decide_decode(buf, (size_t)n, &out), 0);
        CHECK_EQ(out.unframed, u);
        CHECK(strcmp(decide_unframed_name(u), "unknown") != 0);
    }
    CHECK_STR(decide_unframed_name(DECIDE_UF_MAX + 1), "unknown");
    /* encode refuses what decode would */
    in = m_reqs();
    in.slot = DECIDE_SLOT_MAX;
    CHECK_EQ(decide_encode(&in, buf, sizeof(buf)), -EINVAL);
    in = m_reqs();
    in.unframed = DECIDE_UF_MAX + 1;
    CHECK_EQ(decide_encode(&in, buf, sizeof(buf)), -EINVAL);
    in = m_reqs();
    in.version = 1; /* REQS is version 2's */
    CHECK_EQ(decide_encode(&in, buf, sizeof(buf)), -EINVAL);
    in = m_reqs();
    in.version = DECIDE_VERSION + 1;
    CHECK_EQ(decide_encode(&in, buf, sizeof(buf)), -EINVAL);
    /* decode: a REQS in a version 1 packet, a bad reason, reserved bytes */
    in = m_reqs();
    n = decide_encode(&in, buf, sizeof(buf));
    buf[0] = 1;
    CHECK_EQ(decide_decode(buf, (size_t)n, &out), -EBADMSG);
    n = decide_encode(&in, buf, sizeof(buf));
    buf[DECIDE_HDR + 8] = DECIDE_UF_MAX + 1;
    CHECK_EQ(decide_decode(buf, (size_t)n, &out), -EBADMSG);
    for (int k = 10; k < 12; k++) {
        n = decide_encode(&in, buf, sizeof(buf));
        buf[DECIDE_HDR + k] = 1;
        CHECK_EQ(decide_decode(buf, (size_t)n, &out), -EBADMSG);
    }
    /* version 4's idle byte: 0 or 1 round-trips; 2 is refused; below
     * version 4 the byte is reserved (encode and decode refuse 1) */
    in = m_reqs();
    in.idle = 1;
    n = decide_encode(&in, buf, sizeof(buf));
    CHECK_EQ(n, DECIDE_FIXED_REQS7);
    CHECK_EQ(buf[0], DECIDE_VERSION);
    CHECK_EQ(buf[DECIDE_HDR + 9], 1);
    CHECK_EQ(decide_decode(buf, (size_t)n, &out), 0);
    CHECK_EQ(out.idle, 1);
    CHECK_EQ(out.requests, in.requests);
    buf[DECIDE_HDR + 9] = 2;
    CHECK_EQ(decide_decode(buf, (size_t)n, &out), -EBADMSG);
    in.idle = 2;
    CHECK_EQ(decide_encode(&in, buf, sizeof(buf)), -EINVAL);
    in.idle = 1;
    for (uint8_t v = 2; v < 4; v++) {
        in.version = v;
        CHECK_EQ(decide_encode(&in, buf, sizeof(buf)), -EINVAL);
        in.version = 0;
        n = decide_encode(&in, buf, sizeof(buf));
        buf[0] = v;
        CHECK_EQ(decide_decode(buf, (size_t)n, &out), -EBADMSG);
    }
    n = decide_encode(&in, buf, sizeof(buf));
    buf[DECIDE_HDR + 1] = 2; /* slot 512 + 511 */
    CHECK_EQ(decide_decode(buf, (size_t)n, &out), -EBADMSG);
    /* version 5's body bytes (u32 at 12, little-endian): round-trip, the
     * full range; below version 5 the bytes are reserved (encode and
     * decode refuse them); 0 is every version's */
    versioned_u32(m_reqs(), offsetof(struct decide_msg, body), DECIDE_FIXED_REQS7,
                  DECIDE_FIXED_REQS, 12, 2, 5);
}

/* Version 7's times to first token in REQS (two u32 at 16 and 20, 8 bytes
 * more than versions 2-6): the full range round-trips; below version 7
 * encode refuses them, and a packet of the new length is refused; the old
 * length at version 7 too. */
TEST(reqs_ttft_v7)
{
    versioned_u32(m_reqs(), offsetof(struct decide_msg, rq_ttft_n), DECIDE_FIXED_REQS7,
                  DECIDE_FIXED_REQS, 16, 2, 7);
    versioned_u32(m_reqs(), offsetof(struct decide_msg, rq_ttft_us), DECIDE_FIXED_REQS7,
                  DECIDE_FIXED_REQS, 20, 2, 7);
    struct decide_msg in = m_reqs(), out;
    in.version = 6;
    int n = decide_encode(&in, buf, sizeof(buf));
    CHECK_EQ(n, DECIDE_FIXED_REQS);
    buf[0] = 7; /* the old length at version 7 */
    CHECK_EQ(decide_decode(buf, (size_t)n, &out), -EBADMSG);
}

/* Version 6's answer events in DONE (u32 at 28, little-endian): the full
 * range round-trips; below version 6 the bytes are reserved (encode and
 * decode refuse them); 0 is every version's. */
TEST(done_events_v6)
{
    versioned_u32(m_done(), offsetof(struct decide_msg, events), DECIDE_FIXED_DONE,
                  DECIDE_FIXED_DONE, 28, 1, 6);
}

/* A version 1 peer: its packets decode (and say so), and ours to it are
 * written in version 1, byte for byte as version 1 wrote them. */
TEST(version_1_still_spoken)
{
    struct decide_msg ms[4] = {m_decide(), m_body(), m_answer(), m_done()};
    for (int k = 0; k < 4; k++) {
        ms[k].version = 1;
        int n = decide_encode(&ms[k], buf, sizeof(buf));
        CHECK(n > 0);
        CHECK_EQ(buf[0], 1);
        struct decide_msg out;
        CHECK_EQ(decide_decode(buf, (size_t)n, &out), 0);
        CHECK_EQ(out.version, 1);
        CHECK_EQ(out.type, ms[k].type);
        ms[k].version = 0; /* the default: version 6, the same bytes after the first */
        uint8_t b2[DECIDE_MSG_MAX];
        CHECK_EQ(decide_encode(&ms[k], b2, sizeof(b2)), n);
        CHECK_EQ(b2[0], DECIDE_VERSION);
        CHECK(!memcmp(b2 + 1, buf + 1, (size_t)n - 1));
    }
}

static struct decide_msg m_handup(const char *cause)
{
    struct decide_msg m;
    memset(&m, 0, sizeof(m));
    m.type = DECIDE_T_ANSWER;
    m.id = 77;
    m.status = DECIDE_STATUS_HANDUP;
    snprintf(m.err, sizeof(m.err), "%s", cause);
    return m;
}

TEST(v3_handup_flag_round_trip_and_bounds)
{
    struct decide_msg in = m_decide(), out;
    in.flags = DECIDE_F_HANDUP;
    in.version = 3;
    int n = decide_encode(&in, buf, sizeof(buf));
    CHECK(n > 0);
    CHECK_EQ(buf[0], 3);
    CHECK_EQ(buf[DECIDE_HDR + 15], DECIDE_F_HANDUP);
    CHECK_EQ(decide_decode(buf, (size_t)n, &out), 0);
    CHECK_EQ(out.version, 3);
    in.version = 0; /* and in today's version */
    n = decide_encode(&in, buf, sizeof(buf));
    CHECK_EQ(buf[0], DECIDE_VERSION);
    CHECK_EQ(decide_decode(buf, (size_t)n, &out), 0);
    CHECK_EQ(out.flags, DECIDE_F_HANDUP);
    CHECK_EQ(out.flags, DECIDE_F_HANDUP);
    CHECK_STR(out.session, "sess-42");
    /* below version 3 the byte is reserved: encode and decode refuse it */
    for (uint8_t v = 1; v < 3; v++) {
        in.version = v;
        CHECK_EQ(decide_encode(&in, buf, sizeof(buf)), -EINVAL);
        in.flags = 0;
        n = decide_encode(&in, buf, sizeof(buf));
        CHECK(n > 0);
        buf[DECIDE_HDR + 15] = DECIDE_F_HANDUP;
        CHECK_EQ(decide_decode(buf, (size_t)n, &out), -EBADMSG);
        buf[DECIDE_HDR + 15] = 0;
        CHECK_EQ(decide_decode(buf, (size_t)n, &out), 0);
        CHECK_EQ(out.flags, 0);
        in.flags = DECIDE_F_HANDUP;
    }
    in.version = 0;
    for (unsigned bit = 1; bit < 8; bit++) { /* no other flag */
        in.flags = (uint8_t)(1u << bit);
        CHECK_EQ(decide_encode(&in, buf, sizeof(buf)), -EINVAL);
        in.flags = 0;
        n = decide_encode(&in, buf, sizeof(buf));
        buf[DECIDE_HDR + 15] = (uint8_t)(1u << bit);
        CHECK_EQ(decide_decode(buf, (size_t)n, &out), -EBADMSG);
    }

    /* HANDUP: each cause round-trips in version 3 */
    for (unsigned c = 1; c <= DECIDE_HU_MAX; c++) {
        in = m_handup(decide_handup_name(c));
        n = decide_encode(&in, buf, sizeof(buf));
        CHECK_EQ(n, DECIDE_FIXED_ANSWER + (int)strlen(decide_handup_name(c)));
        CHECK_EQ(decide_decode(buf, (size_t)n, &out), 0);
        CHECK_EQ(out.status, DECIDE_STATUS_HANDUP);
        CHECK_EQ(decide_handup_of(out.err), c);
        CHECK_EQ(out.port, 0);
        CHECK_EQ(out.slot, 0);
    }
    CHECK(decide_handup_name(0) == NULL);
    CHECK(decide_handup_name(DECIDE_HU_MAX + 1) == NULL);
    CHECK_EQ(decide_handup_of(""), 0);
    CHECK_EQ(decide_handup_of("Model"), 0);
    /* encode refuses: an unknown or empty cause, a pod, an older version */
    const char *bad[] = {"", "models", "mode", "quiet", "h2c "};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        in = m_handup(bad[i]);
        CHECK_EQ(decide_encode(&in, buf, sizeof(buf)), -EINVAL);
    }
    in = m_handup("model");
    in.port = 8000;
    CHECK_EQ(decide_encode(&in, buf, sizeof(buf)), -EINVAL);
    in = m_handup("model");
    in.slot = 1;
    CHECK_EQ(decide_encode(&in, buf, sizeof(buf)), -EINVAL);
    in = m_handup("model");
    in.addr[3] = 1;
    CHECK_EQ(decide_encode(&in, buf, sizeof(buf)), -EINVAL);
    for (uint8_t v = 1; v < 3; v++) {
        in = m_handup("session");
        in.version = v;
        CHECK_EQ(decide_encode(&in, buf, sizeof(buf)), -EINVAL);
    }
    /* decode refuses the same, written by hand into a valid packet */
    in = m_handup("session");
    n = decide_encode(&in, buf, sizeof(buf));
    buf[0] = 2;
    CHECK_EQ(decide_decode(buf, (size_t)n, &out), -EBADMSG);
    n = decide_encode(&in, buf, sizeof(buf));
    buf[DECIDE_HDR + 2] = 1; /* a port */
    CHECK_EQ(decide_decode(buf, (size_t)n, &out), -EBADMSG);
    n = decide_encode(&in, buf, sizeof(buf));
    buf[DECIDE_HDR + 4] = 1; /* a slot */
    CHECK_EQ(decide_decode(buf, (size_t)n, &out), -EBADMSG);
    n = decide_encode(&in, buf, sizeof(buf));
    buf[DECIDE_HDR + 9] = 1; /* an address */
    CHECK_EQ(decide_decode(buf, (size_t)n, &out), -EBADMSG);
    n = decide_encode(&in, buf, sizeof(buf));
    buf[DECIDE_HDR + 16] = 'S'; /* "Session" */
    CHECK_EQ(decide_decode(buf, (size_t)n, &out), -EBADMSG);
    n = decide_encode(&in, buf, sizeof(buf));
    buf[DECIDE_HDR + 12] = 4; /* "sess", the length short by 3 */
    CHECK_EQ(decide_decode(buf, 4 + DECIDE_FIXED_ANSWER, &out), -EBADMSG);
    n = decide_encode(&in, buf, sizeof(buf));
    buf[DECIDE_HDR + 12] = 0; /* no cause */
    CHECK_EQ(decide_decode(buf, DECIDE_FIXED_ANSWER, &out), -EBADMSG);
    n = decide_encode(&in, buf, sizeof(buf));
    buf[DECIDE_HDR + 0] = (uint8_t)(DECIDE_STATUS_HANDUP + 1); /* 1001: no status */
    CHECK_EQ(decide_decode(buf, (size_t)n, &out), -EBADMSG);
    n = decide_encode(&in, buf, sizeof(buf));
    CHECK_EQ(decide_decode(buf, (size_t)n, &out), 0);
}

int main(void)
{
    RUN(round_trip_each_type);
    RUN(largest_message_fits_the_max);
    RUN(truncation_at_every_byte);
    RUN(bad_version_and_type);
    RUN(reqs_ttft_v7);
    RUN(done_events_v6);
    RUN(oversize_fields_refused_both_ways);
    RUN(reqs_round_trip_and_bounds);
    RUN(version_1_still_spoken);
    RUN(v3_handup_flag_round_trip_and_bounds);
    return harness_done();
}
