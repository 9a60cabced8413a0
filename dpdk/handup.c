/* handup: flows that are not for the bypass go to kvgated as kernel
 * sockets (handup.h). */
#include "handup.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <bpf/bpf.h>

#include "bypass/firstflight.h"
#include "bypass/repair.h"
#include "stats.h"
#include "steer.h"
#include "txq.h"

/* kvgated's end: the channel, and the uid its listener runs as (each
 * worker has its own: steer.h) */
static __thread struct {
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    int on;             /* --adopt given */
    int fd;             /* -1 down */
    uid_t peer_uid;
    uint64_t retry_ms;
    int nl;             /* NETLINK_SOCK_DIAG, for the sweep */
    uint64_t sweep_ms;
    uint32_t sweep_at;  /* where the next sweep starts: after the last entry checked */
} H = {.fd = -1, .nl = -1};


/* the flows handed up: their entries' keys, until the kernel lets go */
static __thread struct kvg_bp_key handed[HANDUP_MAX];
static __thread uint8_t handed_used[HANDUP_MAX];
static __thread uint32_t handed_n, handed_next;

/* counters, by cause (enum adopt_cause); the stats file sums the workers' */
struct hu_counts {
    uint64_t ok[ADOPT_C_MAX], reset[ADOPT_C_MAX];
    uint64_t no_channel, build_failed, entry_failed, send_failed, table_full, kernel_reset,
        swept, connects;
    uint32_t watched;
    int on, up;
};
static __thread struct hu_counts HC;
static struct hu_counts *hc_of[STEER_MAX];

int handup_open(const char *path)
{
    if (strlen(path) >= sizeof(H.path))
        return -ENAMETOOLONG;
    snprintf(H.path, sizeof(H.path), "%s", path);
    H.on = 1;
    int nl = repair_diag_open();
    H.nl = nl >= 0 ? nl : -1; /* without it entries stay until the LRU evicts them */
    return 0;
}

int handup_on(void) { return H.on; }

static void channel_down(void)
{
    if (H.fd >= 0)
        close(H.fd);
    H.fd = -1;
}

/* Connects when down, at most once a second. 1 up, 0 down. */
static int channel_up(uint64_t now)
{
    if (H.fd >= 0)
        return 1;
    if (!H.on || now < H.retry_ms)
        return 0;
    H.retry_ms = now + 1000;
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    memcpy(sa.sun_path, H.path, strlen(H.path));
    struct ucred cr;
    socklen_t l = sizeof(cr);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) ||
        getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &l)) {
        close(fd);
        return 0;
    }
    H.fd = fd;
    H.peer_uid = cr.uid; /* kvgated's listener: a socket next to it must be this uid's */
    HC.connects++;
    return 1;
}

unsigned handup_cause_ff(unsigned c)
{
    switch (c) {
    case FF_C_MALFORMED: return ADOPT_C_MALFORMED;
    case FF_C_NOT_INFERENCE: return ADOPT_C_NOT_INFERENCE;
    case FF_C_HTTP10: return ADOPT_C_HTTP10;
    case FF_C_NO_LENGTH: return ADOPT_C_NO_LENGTH;
    case FF_C_CHUNKED: return ADOPT_C_CHUNKED;
    case FF_C_UPGRADE: return ADOPT_C_UPGRADE;
    case FF_C_EXPECT: return ADOPT_C_EXPECT;
    case FF_C_HEAD_TOO_LARGE: return ADOPT_C_HEAD_TOO_LARGE;
    case FF_C_BODY_TOO_LARGE: return ADOPT_C_BODY_TOO_LARGE;
    case FF_C_H2_PROTOCOL: return ADOPT_C_H2_PROTOCOL;
    case FF_C_H2_RESET: return ADOPT_C_H2_RESET;
    default: return ADOPT_C_MALFORMED;
    }
}

static int handed_add(const struct kvg_bp_key *k)
{
    if (handed_n == HANDUP_MAX)
        return -1;
    for (uint32_t i = 0; i < HANDUP_MAX; i++) {
        uint32_t j = (handed_next + i) % HANDUP_MAX;
        if (!handed_used[j]) {
            handed[j] = *k;
            handed_used[j] = 1;
            handed_n++;
            handed_next = (j + 1) % HANDUP_MAX;
            return 0;
        }
    }
    return -1;
}

/* The connection rc as a kernel socket, its packets to the kernel, the
 * socket to kvgated. 0 handed up; 1 failed after the socket went live (the
 * kernel reset the client); -1 failed with nothing sent (the caller
 * resets, or lets the flow go on). */
static int hand_up_conn(const struct repair_conn *rc, unsigned cause)
{
    if (!channel_up(now_ms())) {
        HC.no_channel++;
        return -1;
    }
    if (FLOWS_FD < 0 || handed_n == HANDUP_MAX) {
        HC.table_full++;
        return -1;
    }
    /* created under kvgated's uid: the kernel shares a port between
     * SO_REUSEPORT sockets of one owner only */
    uid_t prev = (uid_t)setfsuid(H.peer_uid);
    int fd = repair_build(rc);
    setfsuid(prev);
    if (fd < 0) {
        HC.build_failed++;
        return -1;
    }
    /* XDP passes the client's packets to the kernel from now on */
    struct kvg_bp_key key = {.saddr = rc->raddr, .daddr = rc->laddr, .sport = rc->rport,
                             .dport = rc->lport, .family = KVG_AF_INET};
    struct kvg_bp_flow v;
    memset(&v, 0, sizeof(v));
    v.action = KVG_BP_ACT_PASS;
    v.pod_slot = KVG_POD_MAX;
    if (bpf_map_update_elem(FLOWS_FD, &key, &v, BPF_ANY)) {
        HC.entry_failed++;
        repair_abort(fd);
        return -1;
    }
    if (repair_finish(fd)) {
        HC.build_failed++;
        bpf_map_delete_elem(FLOWS_FD, &key);
        repair_abort(fd);
        return -1;
    }
    struct adopt_msg m = {.type = ADOPT_T_HANDUP, .cause = (uint8_t)cause,
                          .flags = rc->fin ? ADOPT_F_FIN : 0, .restored = rc->len,
                          .client_port = ntohs(rc->rport), .local_port = ntohs(rc->lport)};
    memcpy(m.client_addr, &rc->raddr, 4);
    memcpy(m.local_addr, &rc->laddr, 4);
    int e = adopt_send(H.fd, &m, fd);
    if (e) {
        HC.send_failed++;
        if (e != -EAGAIN) /* kvgated went away: connect again later */
            channel_down();
        struct linger lg = {1, 0};
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        close(fd); /* a RST with the socket's own numbers */
        bpf_map_delete_elem(FLOWS_FD, &key);
        HC.kernel_reset++;
        return 1;
    }
    close(fd); /* kvgated holds it now */
    handed_add(&key);
    return 0;
}

static int hand_up(struct slot *s, unsigned cause)
{
    struct repair_conn rc;
    repair_conn_from_tcpep(&rc, &s->t, &s->f);
    return hand_up_conn(&rc, cause);
}

int handup_mid(const struct repair_conn *rc, unsigned cause)
{
    if (!H.on || cause == 0 || cause >= ADOPT_C_MAX)
        return -1;
    int rc_ = hand_up_conn(rc, cause);
    if (rc_ == 0)
        HC.ok[cause]++;
    else if (rc_ > 0)
        HC.reset[cause]++; /* -1: the flow goes on where it was (boundary.h counts it) */
    return rc_;
}

void handup_or_reset(struct slot *s, const struct pkt_tcp *in, unsigned cause)
{
    if (cause == 0 || cause >= ADOPT_C_MAX)
        cause = ADOPT_C_MALFORMED;
    int rc = H.on ? hand_up(s, cause) : -1;
    if (rc == 0) {
        HC.ok[cause]++;
    } else {
        HC.reset[cause]++;
        if (rc < 0)
            tx_reset_client(s, in);
    }
    drop_flow(s);
}

int handup_no_room(struct slot *s, const struct pkt_tcp *in)
{
    if (s->f.st != TE_ESTABLISHED || tcpep_window(&C, &s->f))
        return 0;
    handup_or_reset(s, in, ADOPT_C_OVER_BUDGET);
    return 1;
}

int handup_quiet(struct slot *s, uint64_t now)
{
    if (!H.on || s->f.st != TE_ESTABLISHED || s->f.len || s->f.fin || s->pstate || s->dstate ||
        !s->est_ms || now < s->est_ms + HANDUP_QUIET_MS)
        return 0;
    handup_or_reset(s, NULL, ADOPT_C_QUIET);
    return 1;
}

/* The entries of flows whose socket the kernel no longer holds go: at
 * most HANDUP_SWEEP_SLICE of them checked, from where the last sweep
 * stopped, so every entry is checked in turn however many there are. */
static void sweep(void)
{
    if (H.nl < 0 || FLOWS_FD < 0 || !handed_n)
        return;
    uint32_t i = H.sweep_at % HANDUP_MAX, checked = 0;
    for (uint32_t n = 0; n < HANDUP_MAX && checked < HANDUP_SWEEP_SLICE;
         n++, i = (i + 1) % HANDUP_MAX) {
        if (!handed_used[i])
            continue;
        checked++;
        const struct kvg_bp_key *k = &handed[i];
        if (repair_sock_exists(H.nl, k->daddr, k->dport, k->saddr, k->sport) == 0) {
            bpf_map_delete_elem(FLOWS_FD, k);
            handed_used[i] = 0;
            handed_n--;
            HC.swept++;
        }
    }
    H.sweep_at = i;
}

void handup_register(void)
{
    hc_of[W] = &HC; /* what the stats file sums (the worker's thread lives as long) */
    HC.on = H.on;
    HC.up = H.fd >= 0;
    HC.watched = handed_n;
}

void handup_timer(uint64_t now)
{
    handup_register();
    if (!H.on)
        return;
    if (H.fd >= 0) { /* kvgated never writes: readable means it closed */
        char b;
        ssize_t n = recv(H.fd, &b, 1, MSG_DONTWAIT | MSG_PEEK);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
            channel_down();
    }
    channel_up(now);
    if (now >= H.sweep_ms) {
        H.sweep_ms = now + HANDUP_SWEEP_MS;
        sweep();
    }
}

void handup_close(void)
{
    /* the pass entries stay: the driver detaches bp_entry as the worker
     * stops, and the kernel then gets every packet anyway */
    channel_down();
    if (H.nl >= 0)
        close(H.nl);
    H.nl = -1;
}

void handup_stats_json(FILE *f)
{
    struct hu_counts t;
    memset(&t, 0, sizeof(t));
    t.up = 1;
    for (unsigned w = 0; w < NW; w++) {
        const struct hu_counts *c = hc_of[w];
        if (!c)
            continue;
        for (unsigned i = 1; i < ADOPT_C_MAX; i++)
            t.ok[i] += c->ok[i], t.reset[i] += c->reset[i];
        t.no_channel += c->no_channel, t.build_failed += c->build_failed;
        t.entry_failed += c->entry_failed, t.send_failed += c->send_failed;
        t.table_full += c->table_full, t.kernel_reset += c->kernel_reset;
        t.swept += c->swept, t.connects += c->connects, t.watched += c->watched;
        t.on |= c->on;
        t.up &= c->up; /* every worker's channel */
    }
    uint64_t ok = 0, reset = 0;
    for (unsigned i = 1; i < ADOPT_C_MAX; i++)
        ok += t.ok[i], reset += t.reset[i];
    fprintf(f, "{\"on\":%d,\"channel_up\":%d,\"handed_up\":%llu,\"reset\":%llu,\"watched\":%u,"
               "\"swept\":%llu,\"connects\":%llu,\"no_channel\":%llu,\"build_failed\":%llu,"
               "\"entry_failed\":%llu,\"send_failed\":%llu,\"table_full\":%llu,"
               "\"kernel_reset\":%llu,\"by_cause\":{",
            t.on, t.on && t.up, (unsigned long long)ok, (unsigned long long)reset, t.watched,
            (unsigned long long)t.swept, (unsigned long long)t.connects,
            (unsigned long long)t.no_channel, (unsigned long long)t.build_failed,
            (unsigned long long)t.entry_failed, (unsigned long long)t.send_failed,
            (unsigned long long)t.table_full, (unsigned long long)t.kernel_reset);
    for (unsigned i = 1; i < ADOPT_C_MAX; i++)
        fprintf(f, "%s\"%s\":{\"handed_up\":%llu,\"reset\":%llu}", i > 1 ? "," : "",
                adopt_cause_name(i), (unsigned long long)t.ok[i], (unsigned long long)t.reset[i]);
    fputs("}}", f);
}
