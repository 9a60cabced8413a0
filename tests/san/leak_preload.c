/* leak_preload.so: LD_PRELOADed into a sanitizer-built binary by
 * tests/san/canary.sh, leaks 4242 bytes at start-up, so that the binary's
 * LeakSanitizer must report it when the process exits: proof that the
 * process ended through its normal exit path (a process killed by a
 * signal never runs LSan). Built without sanitizers: its malloc is the
 * binary's (ASan's) interceptor. */
#include <stdlib.h>
#include <string.h>

static void *volatile sink;

__attribute__((constructor)) static void leak_at_start(void)
{
    char *p = malloc(4242);
    if (p)
        memset(p, 1, 4242);
    sink = p;
    sink = NULL;
}
