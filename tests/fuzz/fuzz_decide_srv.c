/* libFuzzer target for user/gateway/decide_srv.c: kvgated's handling of
 * what a bypass worker (untrusted) sends on the decision channel, past the
 * codec: ids reused or unknown, BODY out of order or past its length,
 * DONE for the wrong pod or twice, REQS (version 2) for an unknown, an
 * unrouted or another pod's decision or with a total that goes down, a
 * version that changes mid-connection, more than bypass.max_outstanding
 * (4 here), a peer that never reads its answers.
 *
 * The input is a run of packets (2-byte little-endian length, then the
 * packet) handled as one worker's connection would be (on_peer's
 * dispatch) against a real gateway state (gw_fixture.h: two IPv4 pods
 * serving model "m"; splice.models sets "kept-by-kvgated" off, so that a
 * version 3 worker with the hand-up flag reaches both HANDUP causes);
 * the connection then closes. Checked: the worker
 * never holds more than max_outstanding decisions; every pod's in-flight
 * count is back to zero once its connection is closed; answers the worker
 * reads decode as ANSWERs in the version it spoke first. abort() on any
 * violation. */
#include "gateway/decide_srv.c"
#include "unit/gateway/gw_fixture.h"

#include <arpa/inet.h>
#include <stdlib.h>

static struct gw g;

static void setup(void)
{
    gw_fixture_init(&g);
    g.cfg.bypass_max_outstanding = 4;
    g.cfg.nsplice_models = 1;
    snprintf(g.cfg.splice_models[0].model, sizeof(g.cfg.splice_models[0].model), "kept-by-kvgated");
    g.cfg.splice_models[0].mode = GW_SPLICE_OFF;
    struct pod_snapshot *s = snapshot_new(2);
    for (int i = 0; i < 2; i++) {
        struct pod_info *p = &s->pods[i];
        p->slot = (uint32_t)i;
        snprintf(p->name, sizeof(p->name), "10.0.0.%d:8000", i + 1);
        p->healthy = p->metrics_ok = 1;
        p->nmodels = 1;
        strcpy(p->models[0], "m");
        struct sockaddr_in *sin = (struct sockaddr_in *)&p->addr;
        sin->sin_family = AF_INET;
        sin->sin_port = htons(8000);
        sin->sin_addr.s_addr = htonl(0x0A000001u + (uint32_t)i);
        p->addrlen = sizeof(*sin);
        p->port = 8000;
    }
    snapshot_publish(s);
    D.g = &g;
    D.s.l = ev_new();
    if (!D.s.l)
        abort();
}

/* What the worker reads: each packet an ANSWER. */
static void drain(int fd, unsigned version)
{
    uint8_t b[512];
    ssize_t n;
    while ((n = recv(fd, b, sizeof(b), MSG_DONTWAIT)) > 0) {
        struct decide_msg m;
        if (decide_decode(b, (size_t)n, &m) || m.type != DECIDE_T_ANSWER || m.version != version)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t len)
{
    static int ready;
    if (!ready) {
        setup();
        ready = 1;
    }
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK, 0, sv))
        return 0;
    struct dpeer *p = kv_calloc(1, sizeof(*p));
    p->ocap = g.cfg.bypass_max_outstanding + 64;
    p->outq = kv_calloc(p->ocap, sizeof(*p->outq));
    p->fd = sv[0];
    D.peers[0] = p;
    atomic_fetch_add(&c_peers_now, 1);
    int open = 1;
    unsigned version = 0; /* the peer's, kept past its close */
    size_t off = 0;
    /* the worker reads its answers unless the input's first byte says not */
    int reads = len && (d[0] & 1);
    while (open && off + 2 <= len) {
        size_t n = (size_t)d[off] | (size_t)d[off + 1] << 8;
        off += 2;
        if (n > len - off)
            n = len - off;
        int rc = dispatch(p, d + off, n); /* on_peer's own */
        off += n;
        if (rc) {
            peer_close(p, "bypass_worker_gone");
            open = 0;
            break;
        }
        if (p->n > g.cfg.bypass_max_outstanding)
            abort();
        version = p->version;
        if (reads)
            drain(sv[1], p->version);
    }
    if (open)
        peer_close(p, "bypass_worker_gone");
    for (int i = 0; i < POD_MAX; i++)
        if (atomic_load(&g.counters.inflight[i]))
            abort();
    drain(sv[1], version);
    close(sv[1]);
    return 0;
}
