/* libFuzzer target for bpf/bp_events.h as the bypass worker compiles it:
 * the answer-event count over hostile pod bytes in hostile segments.
 *
 * The input is a run of segments, each a 4-byte little-endian sequence
 * offset, a 2-byte little-endian length, then that many payload bytes
 * (cut short at the input's end). Each goes through bp_ev_feed. Checked
 * after every step (abort() on a violation): the state stays 0..7; a
 * segment never completes more events than it has bytes for (7 each,
 * "\ndata:{", plus the 6 a match carried in may have had already); a
 * segment fed twice counts nothing the second time; the total scanned
 * whole in one go from a fresh state counts exactly what the segments
 * did when they were contiguous and in order. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bp_events.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t len)
{
    __u32 next = 0x7FFFFFF0u, st = 0, seq = next; /* near the signed wrap */
    __u64 gaps = 0, total = 0;
    int in_order = 1;
    static uint8_t whole[1 << 16];
    size_t wl = 0;
    size_t off = 0;
    while (off + 6 <= len) {
        uint32_t o = (uint32_t)d[off] | (uint32_t)d[off + 1] << 8 | (uint32_t)d[off + 2] << 16 |
                     (uint32_t)d[off + 3] << 24;
        uint32_t n = (uint32_t)d[off + 4] | (uint32_t)d[off + 5] << 8;
        off += 6;
        if (n > len - off)
            n = (uint32_t)(len - off);
        const uint8_t *p = d + off;
        off += n;
        /* a small offset means "right after the last one": in order */
        __u32 s = (o & 0xFF000000u) ? seq + o : next;
        if (s != next || (__u64)wl + n > sizeof(whole))
            in_order = 0;
        else if (n) {
            memcpy(whole + wl, p, n);
            wl += n;
        }
        __u32 st_in = st;
        __u32 k = bp_ev_feed(&next, &st, s, p, n, &gaps);
        if (st > 7)
            abort();
        if ((__u64)k * 7 > (__u64)n + (st_in ? 6 : 0))
            abort();
        total += k;
        __u32 st2 = st, next2 = next;
        __u64 g2 = gaps;
        if (n && bp_ev_feed(&next2, &st2, s, p, n, &g2) != 0)
            abort(); /* the same segment again: a retransmission */
        if (n && (st2 != st || next2 != next || g2 != gaps))
            abort();
        seq = s;
    }
    if (in_order) {
        __u32 st3 = 0;
        if (bp_ev_scan(&st3, whole, (__u32)wl) != total || st3 != st)
            abort();
    }
    return 0;
}
