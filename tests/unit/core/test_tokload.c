/* Unit tests for user/core/tokload.c: a request's tokens move from the
 * pod's prefill load to its decode load at the first token and leave at
 * release, exactly once; the measured rate is a ratio of sums that a
 * batch of first tokens does not inflate and a queue does not halve. */
#include "harness.h"
#include "core/tokload.h"

#include <string.h>

#define MS 1000000ull

static struct tokload t;

TEST(prefill_then_decode_then_nothing)
{
    tokload_init(&t);
    struct tokload_req r = {0};
    tokload_route(&t, &r, 3, 1000, 400);
    CHECK_EQ(tokload_prefill(&t, 3), 400);
    CHECK_EQ(tokload_decode(&t, 3), 0);
    r.sent_ns = 100 * MS;
    tokload_first_token(&t, &r, 140 * MS);
    CHECK_EQ(tokload_prefill(&t, 3), 0);
    CHECK_EQ(tokload_decode(&t, 3), 1000); /* the whole prompt is context now */
    tokload_output(&t, &r, 1);
    tokload_output(&t, &r, 1);
    CHECK_EQ(tokload_decode(&t, 3), 1002);
    tokload_first_token(&t, &r, 150 * MS); /* a second "first" token changes nothing */
    CHECK_EQ(tokload_prefill(&t, 3), 0);
    CHECK_EQ(tokload_decode(&t, 3), 1002);
    tokload_release(&t, &r);
    tokload_release(&t, &r); /* idempotent */
    CHECK_EQ(tokload_decode(&t, 3), 0);
    CHECK_EQ(tokload_prefill(&t, 3), 0);
    tokload_fini(&t);
}

TEST(release_before_the_first_token_gives_back_the_prefill)
{
    tokload_init(&t);
    struct tokload_req a = {0}, b = {0};
    tokload_route(&t, &a, 0, 500, 500);
    tokload_route(&t, &b, 0, 300, 900); /* uncached is capped at the prompt */
    CHECK_EQ(tokload_prefill(&t, 0), 800);
    tokload_release(&t, &a);
    CHECK_EQ(tokload_prefill(&t, 0), 300);
    tokload_output(&t, &b, 5); /* no output before the first token */
    CHECK_EQ(tokload_decode(&t, 0), 0);
    tokload_release(&t, &b);
    CHECK_EQ(tokload_prefill(&t, 0), 0);
    CHECK(tokload_rate(&t, 0) == 0); /* nothing measured */
    tokload_fini(&t);
}

/* Serial prefills: 1000 tokens every 100 ms = 10,000 tokens/s, although
 * each queued request's own TTFT grows (100, 200, 300 ms...). */
TEST(rate_of_a_queue_is_the_pods_rate)
{
    tokload_init(&t);
    struct tokload_req r[5];
    memset(r, 0, sizeof(r));
    for (int i = 0; i < 5; i++) {
        tokload_route(&t, &r[i], 1, 1000, 1000);
        r[i].sent_ns = 1000 * MS;
    }
    for (int i = 0; i < 5; i++)
        tokload_first_token(&t, &r[i], (1000 + 100 * (uint64_t)(i + 1)) * MS);
    double rate = tokload_rate(&t, 1);
    CHECK(rate > 9999 && rate < 10001);
    for (int i = 0; i < 5; i++)
        tokload_release(&t, &r[i]);
    tokload_fini(&t);
}

/* Four requests prefilled in one batch: 4,000 tokens in 50 ms, not four
 * samples of 1,000 tokens in ~0 ms. */
TEST(a_batch_is_one_sample)
{
    tokload_init(&t);
    struct tokload_req r[4];
    memset(r, 0, sizeof(r));
    for (int i = 0; i < 4; i++) {
        tokload_route(&t, &r[i], 2, 1000, 1000);
        r[i].sent_ns = 0 + 1000 * MS;
    }
    for (int i = 0; i < 4; i++)
        tokload_first_token(&t, &r[i], 1050 * MS + (uint64_t)i * 1000); /* within 3 us */
    double rate = tokload_rate(&t, 2);
    CHECK(rate > 79000 && rate < 81000); /* 4000 / 0.050003 s */
    tokload_forget_rate(&t, 2);
    CHECK(tokload_rate(&t, 2) == 0);
    for (int i = 0; i < 4; i++)
        tokload_release(&t, &r[i]);
    tokload_fini(&t);
}

/* The window decays: after the pod slows down 10x for long enough, the
 * rate follows. */
TEST(the_rate_follows_a_slower_pod)
{
    tokload_init(&t);
    uint64_t now = 1000 * MS;
    for (int i = 0; i < 200; i++) { /* 10,000 tokens/s for 20 s */
        struct tokload_req r = {0};
        tokload_route(&t, &r, 4, 1000, 1000);
        r.sent_ns = now;
        now += 100 * MS;
        tokload_first_token(&t, &r, now);
        tokload_release(&t, &r);
    }
    CHECK(tokload_rate(&t, 4) > 9999);
    for (int i = 0; i < 60; i++) { /* 1,000 tokens/s for 60 s */
        struct tokload_req r = {0};
        tokload_route(&t, &r, 4, 1000, 1000);
        r.sent_ns = now;
        now += 1000 * MS;
        tokload_first_token(&t, &r, now);
        tokload_release(&t, &r);
    }
    double rate = tokload_rate(&t, 4);
    CHECK(rate < 1100);
    tokload_fini(&t);
}

int main(void)
{
    RUN(prefill_then_decode_then_nothing);
    RUN(release_before_the_first_token_gives_back_the_prefill);
    RUN(rate_of_a_queue_is_the_pods_rate);
    RUN(a_batch_is_one_sample);
    RUN(the_rate_follows_a_slower_pod);
    return harness_done();
}
