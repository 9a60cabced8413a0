/* Unit tests for user/common/alloc.c: the failure schedules, errno, the
 * call / failure / live counts, kv_realloc's failure leaving the block as
 * it was; and that user/common, user/core and user/tok allocate through
 * kv_* only (a raw malloc there would be out of reach of the out-of-memory
 * tests). */
#include "common/alloc.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

TEST(unhooked_is_libc)
{
    alloc_unhook();
    void *p = kv_malloc(16), *q = kv_calloc(4, 4);
    CHECK(p && q);
    CHECK_EQ(alloc_calls(), 0);
    CHECK_EQ(alloc_live(), 0);
    kv_free(p);
    kv_free(q);
    kv_free(NULL);
}

TEST(fail_after)
{
    alloc_fail_after(2);
    void *a = kv_malloc(8), *b = kv_calloc(1, 8);
    CHECK(a && b);
    errno = 0;
    void *c = kv_malloc(8);
    CHECK(c == NULL);
    CHECK_EQ(errno, ENOMEM);
    CHECK(kv_calloc(1, 8) == NULL);
    CHECK(kv_strdup("x") == NULL);
    CHECK_EQ(alloc_calls(), 5);
    CHECK_EQ(alloc_failures(), 3);
    CHECK_EQ(alloc_live(), 2);
    kv_free(a);
    kv_free(b);
    CHECK_EQ(alloc_live(), 0);

    alloc_fail_after(0); /* everything fails */
    CHECK(kv_malloc(1) == NULL);
    CHECK_EQ(alloc_failures(), 1);
    alloc_unhook();
    void *d = kv_malloc(1); /* libc again */
    CHECK(d != NULL);
    kv_free(d);
}

TEST(fail_every)
{
    alloc_fail_every(3);
    void *p[9];
    int got = 0;
    for (int i = 0; i < 9; i++) {
        p[i] = kv_malloc(4);
        got += p[i] != NULL;
    }
    CHECK(p[0] && p[1] && !p[2] && p[3] && p[4] && !p[5] && p[6] && p[7] && !p[8]);
    CHECK_EQ(got, 6);
    CHECK_EQ(alloc_failures(), 3);
    CHECK_EQ(alloc_live(), 6);
    for (int i = 0; i < 9; i++)
        kv_free(p[i]);
    CHECK_EQ(alloc_live(), 0);
    alloc_unhook();
}

TEST(realloc_failure_keeps_block)
{
    alloc_fail_never();
    char *p = kv_realloc(NULL, 4); /* a new block */
    CHECK(p != NULL);
    CHECK_EQ(alloc_live(), 1);
    memcpy(p, "abc", 4);
    alloc_fail_after(0); /* live survives the switch */
    CHECK(kv_realloc(p, 1 << 20) == NULL);
    CHECK_STR(p, "abc");
    CHECK_EQ(alloc_live(), 1);
    alloc_fail_never();
    char *q = kv_realloc(p, 1 << 20); /* a grown block is still one */
    CHECK(q != NULL);
    CHECK_STR(q, "abc");
    CHECK_EQ(alloc_live(), 1);
    kv_free(q);
    CHECK_EQ(alloc_live(), 0);
    alloc_unhook();
}

TEST(strdup_is_one_allocation)
{
    alloc_fail_never();
    char *s = kv_strdup("hello");
    CHECK_STR(s, "hello");
    CHECK_EQ(alloc_calls(), 1);
    kv_free(s);
    CHECK_EQ(alloc_live(), 0);
    alloc_unhook();
}

/* ---- user/common, user/core and user/tok allocate only through kv_* ---- */

/* src with comments, string and character literals blanked */
static void strip(char *s)
{
    for (char *p = s; *p; p++) {
        if (p[0] == '/' && p[1] == '*') {
            char *e = strstr(p + 2, "*/");
            char *end = e ? e + 2 : p + strlen(p);
            for (; p < end; p++)
                if (*p != '\n')
                    *p = ' ';
            p--;
        } else if (p[0] == '/' && p[1] == '/') {
            for (; *p && *p != '\n'; p++)
                *p = ' ';
            p--;
        } else if (*p == '"' || *p == '\'') {
            char q = *p++;
            for (; *p && *p != q && *p != '\n'; p++) {
                if (*p == '\\' && p[1])
                    *p++ = ' ';
                *p = ' ';
            }
            if (!*p)
                return;
        }
    }
}

/* Prints and counts calls of libc's allocator in one file. */
static int raw_calls(const char *path)
{
    static const char *const names[] = {"malloc", "calloc", "realloc", "free",
                                        "strdup", "strndup", "reallocarray",
                                        "aligned_alloc", "posix_memalign", "asprintf"};
    FILE *f = fopen(path, "r");
    if (!f) {
        printf("  cannot read %s\n", path);
        return 1;
    }
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    strip(buf);
    int found = 0;
    for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
        size_t len = strlen(names[k]);
        for (char *p = buf; (p = strstr(p, names[k])); p += len) {
            if (p > buf && (isalnum((unsigned char)p[-1]) || p[-1] == '_'))
                continue;
            const char *e = p + len;
            while (*e == ' ' || *e == '\t')
                e++;
            if (*e != '(')
                continue;
            int line = 1;
            for (const char *c = buf; c < p; c++)
                line += *c == '\n';
            printf("  %s:%d: %s() (use kv_%s, common/alloc.h)\n", path, line, names[k],
                   names[k]);
            found++;
        }
    }
    return found;
}

TEST(sources_use_kv_alloc)
{
    static const char *const dirs[] = {"user/common", "user/core", "user/tok"};
    int files = 0, found = 0;
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        DIR *d = opendir(dirs[i]);
        if (!d) {
            printf("  %s not found: run from the repository root (tests/run.sh does)\n",
                   dirs[i]);
            found++;
            continue;
        }
        struct dirent *de;
        while ((de = readdir(d))) {
            size_t l = strlen(de->d_name);
            if (l < 3 || strcmp(de->d_name + l - 2, ".c") || !strcmp(de->d_name, "alloc.c"))
                continue;
            char path[512];
            snprintf(path, sizeof(path), "%s/%s", dirs[i], de->d_name);
            found += raw_calls(path);
            files++;
        }
        closedir(d);
    }
    CHECK(files > 10);
    CHECK_EQ(found, 0);
}

int main(void)
{
    RUN(unhooked_is_libc);
    RUN(fail_after);
    RUN(fail_every);
    RUN(realloc_failure_keeps_block);
    RUN(strdup_is_one_allocation);
    RUN(sources_use_kv_alloc);
    return harness_done();
}
