/* httpstatus: status texts and canned HTTP/1.1 answers. See httpstatus.h. */
#include "common/httpstatus.h"

#include <string.h>

#include "common/sbuf.h"

const char *http_status_text(int code)
{
    switch (code) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Payload Too Large";
    case 422: return "Unprocessable Entity";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}

void http1_status_line(struct sbuf *out, int code)
{
    sbuf_printf(out, "HTTP/1.1 %d %s\r\n", code, http_status_text(code));
}

void http1_closing_response(struct sbuf *out, int code, const char *ctype,
                            const char *body, size_t len)
{
    http1_status_line(out, code);
    sbuf_printf(out, "content-type: %s\r\ncontent-length: %zu\r\n"
                     "connection: close\r\n\r\n", ctype, len);
    sbuf_append(out, body ? body : "", len);
}

const char *http_error_type(int code)
{
    switch (code) {
    case 401: return "AuthenticationError";
    case 403: return "PermissionDeniedError";
    case 404: return "NotFoundError";
    case 405: return "MethodNotAllowedError";
    case 408: return "RequestTimeoutError";
    case 409: return "ConflictError";
    case 422: return "UnprocessableEntityError";
    case 429: return "RateLimitError";
    case 502: return "BadGatewayError";
    case 503: return "ServiceUnavailableError";
    case 504: return "GatewayTimeoutError";
    default: return code >= 500 ? "InternalServerError" : "BadRequestError";
    }
}

void http_error_json(struct sbuf *out, int code, const char *msg)
{
    http_error_json_param(out, code, NULL, msg);
}

void http_error_json_param(struct sbuf *out, int code, const char *param, const char *msg)
{
    sbuf_puts(out, "{\"error\":{\"message\":\"");
    sbuf_json_escape(out, msg, strlen(msg));
    sbuf_printf(out, "\",\"type\":\"%s\",\"param\":", http_error_type(code));
    if (param) {
        sbuf_puts(out, "\"");
        sbuf_json_escape(out, param, strlen(param));
        sbuf_puts(out, "\"");
    } else {
        sbuf_puts(out, "null");
    }
    sbuf_printf(out, ",\"code\":%d}}", code);
}
