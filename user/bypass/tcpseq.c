/* tcpseq: see tcpseq.h. */
#include "bypass/tcpseq.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>

const uint16_t tcpseq_mss_table[TCPSEQ_NMSS] = {536, 1300, 1440, 1460};

int tcpseq_key_init(struct tcpseq_key *k)
{
    if (getrandom(k, sizeof(*k), 0) != (ssize_t)sizeof(*k))
        return -errno;
    return 0;
}

/* ---- SipHash-2-4 (Aumasson and Bernstein), written from the paper ---- */

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                               \
    do {                                                                       \
        v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32);              \
        v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;                                 \
        v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;                                 \
        v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32);              \
    } while (0)

static uint64_t le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

uint64_t tcpseq_siphash(const struct tcpseq_key *k, const void *data, uint32_t len)
{
    const uint8_t *p = data;
    uint64_t v0 = 0x736f6d6570736575ull ^ k->k0, v1 = 0x646f72616e646f6dull ^ k->k1;
    uint64_t v2 = 0x6c7967656e657261ull ^ k->k0, v3 = 0x7465646279746573ull ^ k->k1;
    uint32_t full = len & ~7u;
    for (uint32_t i = 0; i < full; i += 8) {
        uint64_t m = le64(p + i);
        v3 ^= m;
        SIPROUND;
        SIPROUND;
        v0 ^= m;
    }
    uint64_t b = (uint64_t)len << 56;
    for (uint32_t i = 0; i < (len & 7); i++)
        b |= (uint64_t)p[full + i] << (8 * i);
    v3 ^= b;
    SIPROUND;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

/* ---- sequence numbers ---- */

static uint32_t tuple_hash(const struct tcpseq_key *k, const struct tcpseq_tuple *t,
                           uint32_t extra, int with_extra)
{
    uint8_t b[16];
    memcpy(b, &t->saddr, 4);
    memcpy(b + 4, &t->daddr, 4);
    memcpy(b + 8, &t->sport, 2);
    memcpy(b + 10, &t->dport, 2);
    memcpy(b + 12, &extra, 4);
    return (uint32_t)tcpseq_siphash(k, b, with_extra ? 16 : 12);
}

uint32_t tcpseq_isn(const struct tcpseq_key *k, const struct tcpseq_tuple *t, uint64_t now_us)
{
    return tuple_hash(k, t, 0, 0) + (uint32_t)(now_us / 4);
}

uint32_t tcpseq_cookie(const struct tcpseq_key *k, const struct tcpseq_tuple *t,
                       uint32_t client_isn, uint16_t client_mss, uint64_t now_s,
                       uint16_t *mss_out)
{
    uint32_t idx = 0;
    for (uint32_t i = 0; i < TCPSEQ_NMSS; i++)
        if (tcpseq_mss_table[i] <= client_mss)
            idx = i;
    uint32_t count = (uint32_t)(now_s / 60) & 0xff;
    if (mss_out)
        *mss_out = tcpseq_mss_table[idx];
    return tuple_hash(k, t, 0, 0) + client_isn + (count << 24) +
           ((tuple_hash(k, t, count, 1) + (idx << 22)) & 0xffffff);
}

uint16_t tcpseq_cookie_check(const struct tcpseq_key *k, const struct tcpseq_tuple *t,
                             uint32_t seq, uint32_t ack, uint64_t now_s)
{
    uint32_t v = (ack - 1) - tuple_hash(k, t, 0, 0) - (seq - 1);
    uint32_t count = v >> 24;
    uint32_t now = (uint32_t)(now_s / 60) & 0xff;
    uint32_t age = (now - count) & 0xff;
    if (age > TCPSEQ_COOKIE_MINUTES)
        return 0;
    uint32_t d = ((v & 0xffffff) - tuple_hash(k, t, count, 1)) & 0xffffff;
    if (d & ((1u << 22) - 1))
        return 0; /* not ours: the low 22 bits must match the keyed hash */
    return tcpseq_mss_table[d >> 22];
}
