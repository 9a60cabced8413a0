/* libFuzzer target for user/bypass/decide.c: the decision channel's
 * packets as kvgated receives them from a bypass worker (untrusted).
 * A packet that decodes must encode back to the very same bytes (the
 * format has one spelling per message), its chunk must lie inside the
 * packet, and its text fields must be terminated and within their limits.
 * abort() on any violation. */
#include "bypass/decide.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t len)
{
    static uint8_t out[DECIDE_MSG_MAX];
    struct decide_msg m;
    if (decide_decode(d, len, &m))
        return 0;
    if (m.chunk_len && (m.chunk < d || m.chunk + m.chunk_len > d + len))
        abort();
    if (strlen(m.tenant) > DECIDE_TENANT_MAX || strlen(m.session) > DECIDE_SESSION_MAX ||
        strlen(m.err) > DECIDE_ERR_MAX)
        abort();
    int n = decide_encode(&m, out, sizeof(out));
    if (n < 0 || (size_t)n != len || memcmp(out, d, len))
        abort();
    return 0;
}
