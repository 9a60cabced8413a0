/* Minimal unit-test harness shared by the C unit tests in tests/unit/.
 *
 *   TEST(name) { CHECK(x == 1); CHECK_EQ(a, b); CHECK_NEAR(x, y, tol); }
 *   int main(void) { RUN(name); return harness_done(); }
 *
 * A test passes when none of its checks failed. Each failed check prints its
 * file, line and the values; harness_done() prints "N passed, N failed" (the
 * line tests/run.sh sums) and returns the exit status. */
#ifndef KVGATE_TEST_HARNESS_H
#define KVGATE_TEST_HARNESS_H

#include <math.h>
#include <stdio.h>
#include <string.h>

static int h_passed, h_failed, h_cur_failed;
static const char *h_cur_name;

#define TEST(name) static void name(void)

#define CHECK(cond)                                                           \
    do {                                                                      \
        if (!(cond)) {                                                        \
            h_cur_failed++;                                                   \
            fprintf(stderr, "  %s:%d: %s: CHECK(%s) failed\n", __FILE__,      \
                    __LINE__, h_cur_name, #cond);                             \
        }                                                                     \
    } while (0)

#define CHECK_EQ(a, b)                                                        \
    do {                                                                      \
        long long _a = (long long)(a), _b = (long long)(b);                   \
        if (_a != _b) {                                                       \
            h_cur_failed++;                                                   \
            fprintf(stderr, "  %s:%d: %s: %s == %s failed: %lld != %lld\n",   \
                    __FILE__, __LINE__, h_cur_name, #a, #b, _a, _b);          \
        }                                                                     \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                                 \
    do {                                                                      \
        double _a = (double)(a), _b = (double)(b), _t = (double)(tol);        \
        if (!(fabs(_a - _b) <= _t)) {                                         \
            h_cur_failed++;                                                   \
            fprintf(stderr, "  %s:%d: %s: %s ~= %s failed: %g vs %g (tol %g)\n", \
                    __FILE__, __LINE__, h_cur_name, #a, #b, _a, _b, _t);      \
        }                                                                     \
    } while (0)

#define CHECK_STR(a, b)                                                       \
    do {                                                                      \
        const char *_a = (a), *_b = (b);                                      \
        if (!_a || !_b || strcmp(_a, _b) != 0) {                              \
            h_cur_failed++;                                                   \
            fprintf(stderr, "  %s:%d: %s: %s == %s failed: \"%s\" vs \"%s\"\n", \
                    __FILE__, __LINE__, h_cur_name, #a, #b, _a ? _a : "(null)", \
                    _b ? _b : "(null)");                                      \
        }                                                                     \
    } while (0)

#define RUN(fn)                                                               \
    do {                                                                      \
        h_cur_name = #fn;                                                     \
        h_cur_failed = 0;                                                     \
        fn();                                                                 \
        if (h_cur_failed) {                                                   \
            h_failed++;                                                       \
            printf("FAIL %s\n", #fn);                                         \
        } else {                                                              \
            h_passed++;                                                       \
            printf("ok   %s\n", #fn);                                         \
        }                                                                     \
        fflush(stdout);                                                       \
    } while (0)

static inline int harness_done(void)
{
    printf("%d passed, %d failed\n", h_passed, h_failed);
    return h_failed ? 1 : 0;
}

#endif
