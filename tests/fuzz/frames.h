/* frames.h: fuzz inputs made of frames, each after its length (2 bytes,
 * big endian; a length past the input's end takes what is left). Used by
 * the bypass path's targets (fuzz_tcpep, fuzz_replay). */
#ifndef KVGATE_TESTS_FUZZ_FRAMES_H
#define KVGATE_TESTS_FUZZ_FRAMES_H

#include <stddef.h>
#include <stdint.h>

/* The next frame from d[*i..len): 1 and *fr / *n set, or 0 at the end. */
static inline int fuzz_next_frame(const uint8_t *d, size_t len, size_t *i, const uint8_t **fr,
                                  size_t *n)
{
    if (*i + 2 > len)
        return 0;
    size_t k = (size_t)d[*i] << 8 | d[*i + 1];
    *i += 2;
    if (k > len - *i)
        k = len - *i;
    *fr = d + *i;
    *n = k;
    *i += k;
    return 1;
}

#endif
