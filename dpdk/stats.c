/* stats: the workers' counters (stats.h). */
#include "stats.h"

#include "handup.h"
#include "steer.h"

#include <stdio.h>
#include <string.h>

__thread struct bp_stats S;
static struct bp_stats *of[STEER_MAX];

void stats_register(void) { of[W] = &S; }

void stats_last_begin(void) { __atomic_add_fetch(&S.last_gen, 1, __ATOMIC_ACQ_REL); }

void stats_last_end(uint64_t now)
{
    S.last_at = now;
    __atomic_add_fetch(&S.last_gen, 1, __ATOMIC_RELEASE);
}

/* w's last first request, unless it is being written (then ""). */
static void last_of(const struct bp_stats *w, char *out, size_t cap)
{
    unsigned g = __atomic_load_n(&w->last_gen, __ATOMIC_ACQUIRE);
    out[0] = 0;
    if (g & 1)
        return;
    snprintf(out, cap, "%.*s", (int)sizeof(w->last) - 1, w->last); /* never past it */
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    if (__atomic_load_n(&w->last_gen, __ATOMIC_RELAXED) != g)
        out[0] = 0;
}

#define LD(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)

/* Every worker's counters summed into t, and the newest last first
 * request. */
void stats_total(struct bp_stats *t)
{
    memset(t, 0, sizeof(*t));
    const struct bp_stats *newest = NULL;
    for (unsigned w = 0; w < NW; w++) {
        const struct bp_stats *s = of[w];
        if (!s)
            continue;
#define BP_SUM(n) t->n += LD(s->n);
        BP_COUNTERS(BP_SUM)
#undef BP_SUM
        if (s->last[0] && (!newest || LD(s->last_at) > LD(newest->last_at)))
            newest = s;
    }
    if (newest)
        last_of(newest, t->last, sizeof(t->last));
}

void stats_write(const char *path)
{
    if (!path)
        return;
    struct bp_stats t;
    stats_total(&t);
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return;
    fputc('{', f);
#define BP_JSON(n) fprintf(f, "\"" #n "\":%llu,", (unsigned long long)t.n);
    BP_COUNTERS(BP_JSON)
#undef BP_JSON
    fputs("\"workers\":[", f);
    for (unsigned w = 0; w < NW; w++) {
        const struct bp_stats *s = of[w];
        fprintf(f, "%s{\"queue\":%u", w ? "," : "", w);
#define BP_W(n) fprintf(f, ",\"" #n "\":%llu", s ? (unsigned long long)LD(s->n) : 0ull);
        BP_PER_WORKER(BP_W)
#undef BP_W
        fputc('}', f);
    }
    fputs("],\"handup\":", f); /* handup.h: hand-ups and resets by cause */
    handup_stats_json(f);
    fprintf(f, ",\"last\":%s}\n", t.last[0] ? t.last : "null");
    fclose(f);
    rename(tmp, path);
}
