/* httpstatus: HTTP status codes as text, the HTTP/1.1 status line, and the
 * canned answer a server gives when it closes the connection behind it (the
 * errors it raises itself: 400, 408, 413, 431, 503, ...). Shared by
 * kvgate-podsim and kvgated; no I/O. */
#ifndef KVGATE_HTTPSTATUS_H
#define KVGATE_HTTPSTATUS_H

#include <stddef.h>

struct sbuf;

/* "OK", "Not Found", ...; "Unknown" for a code without a reason phrase
 * here. */
const char *http_status_text(int code);

/* Appends "HTTP/1.1 <code> <text>\r\n". */
void http1_status_line(struct sbuf *out, int code);

/* Appends a whole response that ends the connection: status line,
 * content-type, content-length, "connection: close", then body. */
void http1_closing_response(struct sbuf *out, int code, const char *ctype,
                            const char *body, size_t len);

#endif
