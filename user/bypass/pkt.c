/* pkt: see pkt.h. */
#include "bypass/pkt.h"

#include <string.h>

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static void wr16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8), p[1] = (uint8_t)v; }
static void wr32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

uint16_t pkt_csum(const void *buf, size_t len, uint32_t sum)
{
    const uint8_t *p = buf;
    uint64_t s = sum;
    for (; len >= 2; p += 2, len -= 2)
        s += (uint32_t)(p[0] << 8 | p[1]);
    if (len)
        s += (uint32_t)p[0] << 8;
    while (s >> 16)
        s = (s & 0xFFFF) + (s >> 16);
    return (uint16_t)~s;
}

/* The TCP pseudo-header's sum (addresses in network order as bytes). */
static uint32_t pseudo(const uint8_t *saddr, const uint8_t *daddr, uint16_t tcp_len)
{
    uint32_t s = 0;
    s += rd16(saddr) + rd16(saddr + 2) + rd16(daddr) + rd16(daddr + 2);
    s += 6 + tcp_len;
    return s;
}

int pkt_parse(const uint8_t *f, size_t len, int verify, struct pkt_tcp *out)
{
    memset(out, 0, sizeof(*out));
    if (len < PKT_ETH_LEN + 20)
        return len >= PKT_ETH_LEN && rd16(f + 12) != 0x0800 ? PKT_NOT_IPV4 : PKT_MALFORMED;
    if (rd16(f + 12) != 0x0800)
        return PKT_NOT_IPV4;
    memcpy(out->dmac, f, 6);
    memcpy(out->smac, f + 6, 6);
    const uint8_t *ip = f + PKT_ETH_LEN;
    size_t room = len - PKT_ETH_LEN;
    unsigned ihl = (ip[0] & 0x0F) * 4u;
    if (ip[0] >> 4 != 4 || ihl < 20 || ihl > room)
        return PKT_MALFORMED;
    size_t tot = rd16(ip + 2);
    if (tot < ihl || tot > room)
        return PKT_MALFORMED;
    if (ip[9] != 6)
        return PKT_NOT_TCP;
    if (rd16(ip + 6) & 0x3FFF) /* MF, or an offset */
        return PKT_FRAGMENT;
    if (verify && pkt_csum(ip, ihl, 0) != 0)
        return PKT_BAD_CSUM;
    const uint8_t *tcp = ip + ihl;
    size_t tl = tot - ihl;
    if (tl < 20)
        return PKT_MALFORMED;
    unsigned doff = (tcp[12] >> 4) * 4u;
    if (doff < 20 || doff > tl)
        return PKT_MALFORMED;
    if (verify && pkt_csum(tcp, tl, pseudo(ip + 12, ip + 16, (uint16_t)tl)) != 0)
        return PKT_BAD_CSUM;
    memcpy(&out->t.saddr, ip + 12, 4);
    memcpy(&out->t.daddr, ip + 16, 4);
    memcpy(&out->t.sport, tcp, 2);
    memcpy(&out->t.dport, tcp + 2, 2);
    out->ttl = ip[8];
    struct tcpep_seg *s = &out->seg;
    s->seq = rd32(tcp + 4);
    s->ack = rd32(tcp + 8);
    s->flags = tcp[13] & 0x3F;
    s->win = rd16(tcp + 14);
    s->wscale = -1;
    for (unsigned i = 20; i < doff;) { /* options */
        uint8_t kind = tcp[i];
        if (kind == 0)
            break;
        if (kind == 1) {
            i++;
            continue;
        }
        if (i + 1 >= doff || tcp[i + 1] < 2 || i + tcp[i + 1] > doff)
            return PKT_MALFORMED;
        uint8_t ol = tcp[i + 1];
        if (kind == 2 && ol == 4)
            s->mss = rd16(tcp + i + 2);
        else if (kind == 3 && ol == 3)
            s->wscale = (int8_t)(tcp[i + 2] > 14 ? 14 : tcp[i + 2]);
        else if ((kind == 2 || kind == 3))
            return PKT_MALFORMED;
        i += ol;
    }
    s->data = tcp + doff;
    s->len = (uint32_t)(tl - doff);
    return PKT_OK;
}

int pkt_tuple(const uint8_t *f, size_t len, struct tcpseq_tuple *t)
{
    memset(t, 0, sizeof(*t));
    if (len < PKT_ETH_LEN + 20)
        return len >= PKT_ETH_LEN && rd16(f + 12) != 0x0800 ? PKT_NOT_IPV4 : PKT_MALFORMED;
    if (rd16(f + 12) != 0x0800)
        return PKT_NOT_IPV4;
    const uint8_t *ip = f + PKT_ETH_LEN;
    size_t room = len - PKT_ETH_LEN, ihl = (ip[0] & 0x0F) * 4u, tot = rd16(ip + 2);
    if (ip[0] >> 4 != 4 || ihl < 20 || ihl > room || tot < ihl || tot > room)
        return PKT_MALFORMED;
    if (ip[9] != 6)
        return PKT_NOT_TCP;
    if (rd16(ip + 6) & 0x3FFF)
        return PKT_FRAGMENT;
    if (tot - ihl < 20)
        return PKT_MALFORMED;
    memcpy(&t->saddr, ip + 12, 4);
    memcpy(&t->daddr, ip + 16, 4);
    memcpy(&t->sport, ip + ihl, 2);
    memcpy(&t->dport, ip + ihl + 2, 2);
    return PKT_OK;
}

size_t pkt_build(const struct pkt_out *o, uint8_t *buf, size_t cap)
{
    unsigned opt = (o->mss ? 4u : 0u) + (o->wscale >= 0 ? 4u : 0u); /* NOP + WS: 4 */
    size_t tl = 20 + opt + o->len, tot = 20 + tl, n = PKT_ETH_LEN + tot;
    if (n > cap || tot > 65535)
        return 0;
    memcpy(buf, o->dmac, 6);
    memcpy(buf + 6, o->smac, 6);
    wr16(buf + 12, 0x0800);
    uint8_t *ip = buf + PKT_ETH_LEN;
    memset(ip, 0, 20);
    ip[0] = 0x45;
    wr16(ip + 2, (uint16_t)tot);
    wr16(ip + 6, 0x4000); /* DF */
    ip[8] = 64;
    ip[9] = 6;
    memcpy(ip + 12, &o->saddr, 4);
    memcpy(ip + 16, &o->daddr, 4);
    wr16(ip + 10, pkt_csum(ip, 20, 0));
    uint8_t *tcp = ip + 20;
    memcpy(tcp, &o->sport, 2);
    memcpy(tcp + 2, &o->dport, 2);
    wr32(tcp + 4, o->seq);
    wr32(tcp + 8, o->ack);
    tcp[12] = (uint8_t)(((20 + opt) / 4) << 4);
    tcp[13] = o->flags;
    wr16(tcp + 14, o->win);
    wr16(tcp + 16, 0);
    wr16(tcp + 18, 0);
    uint8_t *op = tcp + 20;
    if (o->mss) {
        op[0] = 2, op[1] = 4;
        wr16(op + 2, o->mss);
        op += 4;
    }
    if (o->wscale >= 0)
        op[0] = 1, op[1] = 3, op[2] = 3, op[3] = (uint8_t)o->wscale;
    if (o->len)
        memcpy(tcp + 20 + opt, o->data, o->len);
    wr16(tcp + 16, pkt_csum(tcp, tl, pseudo(ip + 12, ip + 16, (uint16_t)tl)));
    return n;
}

void pkt_reply(const struct pkt_tcp *in, const struct tcpep_reply *r, struct pkt_out *o)
{
    memset(o, 0, sizeof(*o));
    memcpy(o->smac, in->dmac, 6);
    memcpy(o->dmac, in->smac, 6);
    o->saddr = in->t.daddr;
    o->daddr = in->t.saddr;
    o->sport = in->t.dport;
    o->dport = in->t.sport;
    o->seq = r->seq;
    o->ack = r->ack;
    o->flags = r->flags;
    o->win = r->win;
    o->mss = r->mss;
    o->wscale = r->wscale;
}
