/* accesslog: one JSON line per request with the decision detail: model,
 * tenant, session, pod, mode, reason, prefix blocks matched of the
 * request's blocks, candidates, stale / saturated / degraded flags,
 * fallback, retries, status, error, and timings (decision us, TTFT ms,
 * E2E ms). Written by the worker threads through one buffered stream
 * (one mutex, fflush per line so `tail -f` sees it). */
#ifndef KVGATE_GATEWAY_ACCESSLOG_H
#define KVGATE_GATEWAY_ACCESSLOG_H

struct accesslog;
struct gw_request;

/* path "-" = stdout, NULL or "" = off (returns NULL with errno 0). */
struct accesslog *accesslog_open(const char *path);
void accesslog_close(struct accesslog *a);
void accesslog_write(struct accesslog *a, const struct gw_request *r);

#endif
