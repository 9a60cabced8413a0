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

/* The error type for a status, one vocabulary for every error kvgate
 * writes (the OpenAI SDK's exception names, as vLLM answers them):
 * BadRequestError (400, 413, 431), AuthenticationError (401),
 * PermissionDeniedError (403), NotFoundError (404), MethodNotAllowedError
 * (405), RequestTimeoutError (408), ConflictError (409),
 * UnprocessableEntityError (422), RateLimitError (429), InternalServerError
 * (500), BadGatewayError (502), ServiceUnavailableError (503),
 * GatewayTimeoutError (504); other 4xx BadRequestError, 5xx
 * InternalServerError. */
const char *http_error_type(int code);

/* Appends OpenAI's error object:
 * {"error":{"message":"<msg, JSON-escaped>","type":"<type>","param":null,"code":<code>}} */
void http_error_json(struct sbuf *out, int code, const char *msg);
/* The same, naming the request field at fault: "param":"<param>" (NULL:
 * null), as vLLM does for a missing or mistyped field. */
void http_error_json_param(struct sbuf *out, int code, const char *param, const char *msg);

#endif
