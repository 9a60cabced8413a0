/* steer: frames to the worker that owns their flow (steer.h). */
#include "steer.h"

#include <stdio.h>
#include <unistd.h>
#include <sys/eventfd.h>

#include <arpa/inet.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include "stats.h"
#include "worker.h"

#define INBOX 2048 /* frames; a power of two */

unsigned NW = 1;
__thread unsigned W;

static struct rte_ring *inbox[STEER_MAX];
static int wake[STEER_MAX] = {-1, -1, -1, -1, -1, -1, -1, -1};
static int asleep[STEER_MAX];           /* the worker is (about to be) blocked */
static __thread uint8_t kick[STEER_MAX]; /* passed to since the last steer_kick */

int steer_init(unsigned nw)
{
    NW = nw;
    if (nw <= 1)
        return 0;
    for (unsigned w = 0; w < nw; w++) {
        char name[32];
        snprintf(name, sizeof(name), "kvgbp_inbox%u", w);
        inbox[w] = rte_ring_create(name, INBOX, SOCKET_ID_ANY, RING_F_SC_DEQ);
        wake[w] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (!inbox[w] || wake[w] < 0)
            return -1;
    }
    return 0;
}

unsigned steer_owner(const uint8_t *frame, size_t len)
{
    struct tcpseq_tuple t;
    if (NW <= 1 || pkt_tuple(frame, len, &t) != PKT_OK)
        return W;
    uint16_t dport = ntohs(t.dport);
    if (by_port && t.daddr == GW_IP && dport >= LO && dport <= HI)
        return (unsigned)(dport - LO) % NW;
    return (unsigned)(tcpseq_siphash(&C.key, &t, sizeof(t)) >> 32) % NW;
}

int steer_pass(struct rte_mbuf *m, unsigned to)
{
    if (rte_ring_mp_enqueue(inbox[to], m)) {
        rte_pktmbuf_free(m);
        S.steer_dropped++;
        return 0;
    }
    S.steered_out++;
    kick[to] = 1;
    return 1;
}

void steer_kick(void)
{
    /* the enqueue before the look at asleep; the owner sets asleep before
     * it looks at its inbox: one of the two sees the other */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    for (unsigned w = 0; w < NW; w++) {
        if (!kick[w])
            continue;
        kick[w] = 0;
        if (__atomic_load_n(&asleep[w], __ATOMIC_SEQ_CST)) {
            uint64_t one = 1;
            (void)!write(wake[w], &one, sizeof(one));
        }
    }
}

unsigned steer_take(struct rte_mbuf **m, unsigned n)
{
    if (NW <= 1)
        return 0;
    unsigned k = rte_ring_sc_dequeue_burst(inbox[W], (void **)m, n, NULL);
    S.steered_in += k;
    return k;
}

int steer_sleep(void)
{
    if (NW <= 1)
        return 1;
    __atomic_store_n(&asleep[W], 1, __ATOMIC_SEQ_CST);
    __atomic_thread_fence(__ATOMIC_SEQ_CST); /* before the ring's plain loads (ARM) */
    if (rte_ring_count(inbox[W])) {
        __atomic_store_n(&asleep[W], 0, __ATOMIC_SEQ_CST);
        return 0;
    }
    return 1;
}

void steer_awake(void)
{
    if (NW <= 1)
        return;
    __atomic_store_n(&asleep[W], 0, __ATOMIC_SEQ_CST);
    uint64_t v;
    (void)!read(wake[W], &v, sizeof(v)); /* nonblocking: clears a wake-up */
}

int steer_wake_fd(void) { return NW <= 1 ? -1 : wake[W]; }

void steer_drain(void)
{
    for (unsigned w = 0; w < NW && NW > 1; w++) {
        void *m;
        while (inbox[w] && !rte_ring_sc_dequeue(inbox[w], &m))
            rte_pktmbuf_free(m);
    }
}
