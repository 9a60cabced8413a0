/* Unit tests for user/common/httpstatus.c */
#include "common/httpstatus.h"

#include "common/sbuf.h"
#include "harness.h"

TEST(status_texts)
{
    CHECK_STR(http_status_text(200), "OK");
    CHECK_STR(http_status_text(101), "Switching Protocols");
    CHECK_STR(http_status_text(413), "Payload Too Large");
    CHECK_STR(http_status_text(431), "Request Header Fields Too Large");
    CHECK_STR(http_status_text(503), "Service Unavailable");
    CHECK_STR(http_status_text(299), "Unknown");
    CHECK_STR(http_status_text(-1), "Unknown");
}

TEST(status_line)
{
    struct sbuf b;
    sbuf_init(&b);
    http1_status_line(&b, 404);
    http1_status_line(&b, 799);
    CHECK_STR(b.data, "HTTP/1.1 404 Not Found\r\nHTTP/1.1 799 Unknown\r\n");
    sbuf_free(&b);
}

TEST(closing_response)
{
    struct sbuf b;
    sbuf_init(&b);
    http1_closing_response(&b, 503, "application/json", "{\"a\":1}", 7);
    CHECK_STR(b.data, "HTTP/1.1 503 Service Unavailable\r\n"
                      "content-type: application/json\r\n"
                      "content-length: 7\r\nconnection: close\r\n\r\n{\"a\":1}");
    sbuf_reset(&b);
    http1_closing_response(&b, 400, "text/plain", NULL, 0); /* no body */
    CHECK_STR(b.data, "HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\n"
                      "content-length: 0\r\nconnection: close\r\n\r\n");
    sbuf_free(&b);
}

TEST(error_json)
{
    struct sbuf b;
    sbuf_init(&b);
    http_error_json(&b, 404, "no \"m\"");
    CHECK_STR(b.data, "{\"error\":{\"message\":\"no \\\"m\\\"\",\"type\":\"NotFoundError\","
                      "\"param\":null,\"code\":404}}");
    sbuf_reset(&b);
    http_error_json_param(&b, 400, "max_tokens", "max_tokens: bad");
    CHECK_STR(b.data, "{\"error\":{\"message\":\"max_tokens: bad\",\"type\":\"BadRequestError\","
                      "\"param\":\"max_tokens\",\"code\":400}}");
    sbuf_reset(&b);
    http_error_json_param(&b, 503, NULL, "x");
    CHECK_STR(b.data, "{\"error\":{\"message\":\"x\",\"type\":\"ServiceUnavailableError\","
                      "\"param\":null,\"code\":503}}");
    sbuf_free(&b);
}

int main(void)
{
    RUN(status_texts);
    RUN(status_line);
    RUN(closing_response);
    RUN(error_json);
    return harness_done();
}
