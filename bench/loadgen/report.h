/* report: the run's results as JSON (every request and the summary, or the
 * summary alone) and as a table on stdout. */
#ifndef KVGATE_BENCH_REPORT_H
#define KVGATE_BENCH_REPORT_H

#include <stdio.h>

#include "stats.h"

struct lg_run;

/* Describes the run for the "config" object and the table's title. */
struct lg_report_info {
    const char *workload;
    const char *arrival;
    double rate, burstiness;
    unsigned long long seed;
};

/* 0 or -errno. with_requests: include every request's record. */
int lg_report_json(const char *path, const struct lg_run *run, const struct lg_summary *s,
                   const struct lg_report_info *info, int with_requests);

void lg_report_table(FILE *f, const struct lg_run *run, const struct lg_summary *s,
                     const struct lg_report_info *info);

#endif
