/* stats: kvg-bypassd's counters (worker.h), in the stats file (JSON,
 * rewritten every 100 ms by worker 0) under these names: the sum over the
 * workers, and a "workers" list with each one's own (steer.h). */
#ifndef KVGATE_DPDK_STATS_H
#define KVGATE_DPDK_STATS_H

#include <stdint.h>

#define BP_COUNTERS(X)                                                                  \
    X(rx) X(tx) X(tx_dropped) X(not_ours) X(bad_frames) X(no_flow) X(syn) X(synack)       \
    X(established) X(cookies) X(table_full) X(bytes_in) X(first_requests) X(hand_ups)     \
    X(resets) X(timeouts) X(flows_now) X(replays) X(connected) X(refused) X(handed_off)   \
    X(pod_frames) X(pod_data_relayed) X(late_client) X(late_pod) X(unknown_pod)          \
    X(closed) X(idle_closed) X(reinstalled) X(decisions) X(routed) X(gw_refused)           \
    X(decide_unavailable) X(decide_timeouts) X(stale_answers) X(done_sent) X(gw_downs)     \
    X(mac_waits) X(mac_failed) X(error_answers) X(pods_shared) X(pod_unchecked) X(pod_down)   \
    X(pod_down_frames) X(pod_probes) X(pod_resets_client) X(pod_resets_pod)               \
    X(later_requests) X(unframed) X(reqs_sent) X(gw_handups) X(idle_socks) X(idle_waits)    \
    X(idle_sleeps) X(guard_chained) X(boundary_held) X(boundary_handed_up)                 \
    X(boundary_released) X(boundary_failed) X(boundary_frames) X(idle_reported)            \
    X(answer_events) X(answer_event_gaps) X(ttft_timed) X(buffered) X(steered_in) X(steered_out) X(steer_dropped)
/* what the per-worker list in the stats file shows of each */
#define BP_PER_WORKER(X)                                                                 \
    X(rx) X(syn) X(established) X(first_requests) X(hand_ups) X(handed_off) X(flows_now) X(buffered)             \
    X(steered_in) X(steered_out) X(steer_dropped) X(idle_socks) X(idle_waits)
struct bp_stats {
#define BP_FIELD(n) uint64_t n;
    BP_COUNTERS(BP_FIELD)
#undef BP_FIELD
    char last[512];  /* the last first request, as a JSON object */
    uint64_t last_at;   /* when (ms), to pick the newest of the workers' */
    unsigned last_gen;  /* odd while last is being written (stats_last_begin/end) */
};
/* Each worker's own (steer.h: one per queue); stats_write sums them. */
extern __thread struct bp_stats S;

/* This worker's counters into the sum (at its start). */
void stats_register(void);
/* Around a write of S.last (another worker's stats_write may read it). */
void stats_last_begin(void);
void stats_last_end(uint64_t now_ms);
/* Every worker's counters summed into t (and the newest "last"). */
void stats_total(struct bp_stats *t);
/* Every worker's counters, summed, and each worker's own (BP_PER_WORKER)
 * into path (NULL: nowhere), through a rename. */
void stats_write(const char *path);

#endif
