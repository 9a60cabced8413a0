/* accesslog: one JSON line per request with the decision detail: model,
 * tenant, session, workload class, pod, mode, arm, reason, prefix blocks
 * matched of the request's blocks, candidates, stale / saturated /
 * degraded flags, tokens (prompt, cached, completion, and whether the
 * gateway estimated them: accounting.h), fallback, retries, status,
 * error, and timings (decision us, TTFT ms, E2E ms).
 *
 * The data path never waits for the log (issue 9): worker threads format
 * a line and copy it into a bounded ring (access_log_buffer_bytes) under a
 * short mutex; a writer thread of its own drains the ring to the file,
 * pipe or stdout. When the ring is full (a reader that stopped reading, a
 * stalled disk) the line is dropped whole and counted
 * (kvgate_access_log_dropped_total); lines that are written are never cut. */
#ifndef KVGATE_GATEWAY_ACCESSLOG_H
#define KVGATE_GATEWAY_ACCESSLOG_H

#include <stddef.h>
#include <stdint.h>

struct accesslog;
struct gw_request;
struct sbuf;

#define ACCESSLOG_BUFFER_DEFAULT (1u << 20)
#define ACCESSLOG_CLOSE_NS (2ull * 1000000000ull) /* close waits this long to flush */

/* path "-" = stdout, NULL or "" = off (returns NULL with errno 0);
 * buffer_bytes: the ring (0 = default). Opening a FIFO waits for its
 * reader, as open(2) does. Starts the writer thread. NULL with errno. */
struct accesslog *accesslog_open(const char *path, size_t buffer_bytes);
/* Writes out what is buffered (for at most ACCESSLOG_CLOSE_NS; the rest
 * counts as dropped), stops the thread, closes the file. */
void accesslog_close(struct accesslog *a);
/* Never blocks on the log's reader. */
void accesslog_write(struct accesslog *a, const struct gw_request *r);
/* One formatted line (the text must end in '\n'); same rules. */
void accesslog_line(struct accesslog *a, const char *line, size_t len);

/* Lines dropped (ring full, or not flushed at close), all logs of the
 * process. */
uint64_t accesslog_dropped_total(void);
/* kvgate_access_log_dropped_total, for gwmetrics' page. */
void accesslog_metrics_render(struct sbuf *out);

#endif
