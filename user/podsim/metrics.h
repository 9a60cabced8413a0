/* metrics: podsim's Prometheus exposition, in vLLM v1's names and buckets.
 *
 * The engine keeps counters, gauges and histograms in struct pod_stats
 * (engine.h); metrics_render() writes them as Prometheus text format 0.0.4,
 * the way vLLM's prometheus_client registry does: counters as <name>_total
 * with # TYPE on the _total name, histograms with cumulative _bucket{le=..},
 * _sum and _count, labels engine="0" and model_name="<served model>". */
#ifndef KVGATE_PODSIM_METRICS_H
#define KVGATE_PODSIM_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "common/promtext.h"

struct pod;
struct sbuf;

/* Appends the full /metrics page of one pod to out. 0 or -ENOMEM. */
int metrics_render(const struct pod *p, struct sbuf *out);

#endif
