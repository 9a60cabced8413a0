/* stats: the worker's counters (stats.h). */
#include "stats.h"

#include "handup.h"

#include <stdio.h>

struct bp_stats S;

void stats_write(const char *path)
{
    if (!path)
        return;
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return;
    fputc('{', f);
#define BP_JSON(n) fprintf(f, "\"" #n "\":%llu,", (unsigned long long)S.n);
    BP_COUNTERS(BP_JSON)
#undef BP_JSON
    fputs("\"handup\":", f); /* handup.h: hand-ups and resets by cause */
    handup_stats_json(f);
    fprintf(f, ",\"last\":%s}\n", S.last[0] ? S.last : "null");
    fclose(f);
    rename(tmp, path);
}
