/* libFuzzer target for user/bypass/adopt.c: the hand-up channel's packets
 * as kvgated receives them from a bypass worker (untrusted). A packet that
 * decodes must encode back to the very same bytes (one spelling per
 * message) and name a cause that has a name. abort() on any violation. */
#include "bypass/adopt.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t len)
{
    uint8_t out[ADOPT_MSG_LEN];
    struct adopt_msg m;
    if (adopt_decode(d, len, &m))
        return 0;
    if (!strcmp(adopt_cause_name(m.cause), "?"))
        abort();
    if (adopt_encode(&m, out) != ADOPT_MSG_LEN || len != ADOPT_MSG_LEN || memcmp(out, d, len))
        abort();
    return 0;
}
