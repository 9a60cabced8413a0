/* Unit tests for user/common/sbuf.c */
#include "common/sbuf.h"
#include "common/alloc.h"

#include <errno.h>
#include <stdlib.h>

#include "harness.h"

TEST(init_empty)
{
    struct sbuf b;
    sbuf_init(&b);
    CHECK(b.data == NULL);
    CHECK_EQ(b.len, 0);
    CHECK_EQ(sbuf_append(&b, "", 0), 0);
    CHECK_EQ(b.len, 0);
    CHECK(b.data && b.data[0] == '\0');
    sbuf_free(&b);
    CHECK(b.data == NULL);
}

TEST(printf_growth)
{
    struct sbuf b;
    sbuf_init(&b);
    /* Many small appends, then one larger than the current capacity. */
    for (int i = 0; i < 1000; i++)
        CHECK_EQ(sbuf_printf(&b, "%d,", i % 10), 0);
    CHECK_EQ(b.len, 2000);
    CHECK(b.data[b.len] == '\0');
    char big[5000];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    size_t before = b.len;
    CHECK_EQ(sbuf_printf(&b, "[%s]", big), 0);
    CHECK_EQ(b.len, before + 5001);
    CHECK(b.data[before] == '[' && b.data[b.len - 1] == ']');
    CHECK_EQ(strlen(b.data), b.len);
    CHECK(b.cap > b.len);
    sbuf_free(&b);
}

TEST(printf_exact_fit)
{
    /* Output exactly filling the spare room must still be NUL-terminated. */
    struct sbuf b;
    sbuf_init(&b);
    CHECK_EQ(sbuf_reserve(&b, 10), 0);
    size_t room = b.cap - 1;
    char fill[256];
    memset(fill, 'a', room);
    fill[room] = '\0';
    CHECK_EQ(sbuf_printf(&b, "%s", fill), 0);
    CHECK_EQ(b.len, room);
    CHECK_EQ(strlen(b.data), room);
    CHECK_EQ(sbuf_printf(&b, "%s", "b"), 0);
    CHECK_EQ(strlen(b.data), room + 1);
    sbuf_free(&b);
}

TEST(json_escape_controls)
{
    struct sbuf b;
    sbuf_init(&b);
    char in[32];
    for (int i = 0; i < 32; i++)
        in[i] = (char)i;
    CHECK_EQ(sbuf_json_escape(&b, in, 32), 0);
    struct sbuf want;
    sbuf_init(&want);
    for (int i = 0; i < 32; i++) {
        switch (i) {
        case '\b': sbuf_puts(&want, "\\b"); break;
        case '\t': sbuf_puts(&want, "\\t"); break;
        case '\n': sbuf_puts(&want, "\\n"); break;
        case '\f': sbuf_puts(&want, "\\f"); break;
        case '\r': sbuf_puts(&want, "\\r"); break;
        default: sbuf_printf(&want, "\\u%04x", i);
        }
    }
    CHECK_STR(b.data, want.data);
    sbuf_free(&want);
    sbuf_free(&b);
}

TEST(json_escape_quotes_utf8)
{
    struct sbuf b;
    sbuf_init(&b);
    const char *s = "say \"hi\" \\ caf\xc3\xa9 \xe2\x82\xac/";
    CHECK_EQ(sbuf_json_escape(&b, s, strlen(s)), 0);
    CHECK_STR(b.data, "say \\\"hi\\\" \\\\ caf\xc3\xa9 \xe2\x82\xac/");
    sbuf_reset(&b);
    CHECK_EQ(b.len, 0);
    CHECK_EQ(sbuf_json_escape(&b, "a\0b", 3), 0); /* embedded NUL */
    CHECK_STR(b.data, "a\\u0000b");
    CHECK_EQ(sbuf_json_escape(&b, "\x7f", 1), 0);
    CHECK_STR(b.data, "a\\u0000b\\u007f");
    sbuf_free(&b);
}

TEST(consume)
{
    struct sbuf b;
    sbuf_init(&b);
    sbuf_puts(&b, "hello world");
    sbuf_consume(&b, 6);
    CHECK_STR(b.data, "world");
    CHECK_EQ(b.len, 5);
    sbuf_consume(&b, 0);
    CHECK_STR(b.data, "world");
    sbuf_consume(&b, 100);
    CHECK_EQ(b.len, 0);
    CHECK_STR(b.data, "");
    sbuf_append(&b, "xy", 2);
    CHECK_STR(b.data, "xy");
    sbuf_free(&b);
}

TEST(oom_sticks)
{
    struct sbuf b;
    sbuf_init(&b);
    CHECK_EQ(sbuf_reserve(&b, (size_t)-1), -ENOMEM);
    CHECK(b.oom);
    CHECK_EQ(sbuf_puts(&b, "x"), -ENOMEM);
    CHECK_EQ(sbuf_printf(&b, "%d", 1), -ENOMEM);
    CHECK_EQ(b.len, 0);
    sbuf_reset(&b); /* a reset buffer starts over */
    CHECK(!b.oom);
    CHECK_EQ(sbuf_puts(&b, "x"), 0);
    sbuf_free(&b);
}

/* Growth that fails: -ENOMEM from every writer, the bytes already there
 * kept (still NUL-terminated), `oom` sticky until a reset, nothing leaked. */
TEST(oom_on_growth_keeps_what_was_written)
{
    struct sbuf b;
    sbuf_init(&b);
    alloc_fail_never();
    CHECK_EQ(sbuf_puts(&b, "head"), 0);
    alloc_fail_after(0);
    char big[200];
    memset(big, 'x', sizeof(big));
    CHECK_EQ(sbuf_append(&b, big, sizeof(big)), -ENOMEM);
    CHECK(b.oom);
    CHECK_EQ(b.len, 4);
    CHECK_STR(b.data, "head");
    CHECK_EQ(sbuf_puts(&b, "y"), -ENOMEM); /* fits, but oom sticks */
    CHECK_EQ(sbuf_printf(&b, "%s", "y"), -ENOMEM);
    CHECK_EQ(sbuf_json_escape(&b, "y", 1), -ENOMEM);
    CHECK_STR(b.data, "head");
    CHECK_EQ(alloc_failures(), 1); /* the later writers did not even try */
    alloc_fail_never();
    sbuf_reset(&b);
    CHECK_EQ(sbuf_printf(&b, "%.*s", 150, big), 0);
    CHECK_EQ(b.len, 150);
    sbuf_free(&b);
    CHECK_EQ(alloc_live(), 0);

    /* each first allocation of each writer, on an empty buffer */
    alloc_fail_after(0);
    sbuf_init(&b);
    CHECK_EQ(sbuf_printf(&b, "%d", 42), -ENOMEM);
    CHECK(b.data == NULL && b.len == 0 && b.oom);
    sbuf_init(&b);
    CHECK_EQ(sbuf_json_escape(&b, "\"q\"", 3), -ENOMEM);
    CHECK(b.data == NULL && b.len == 0 && b.oom);
    sbuf_free(&b);
    CHECK_EQ(alloc_live(), 0);
    alloc_unhook();
}

int main(void)
{
    RUN(init_empty);
    RUN(printf_growth);
    RUN(printf_exact_fit);
    RUN(json_escape_controls);
    RUN(json_escape_quotes_utf8);
    RUN(consume);
    RUN(oom_sticks);
    RUN(oom_on_growth_keeps_what_was_written);
    return harness_done();
}
