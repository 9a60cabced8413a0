/* Unit tests for user/gateway/accesslog.c (issue 9, finding 7): a log
 * whose reader stops reading never blocks the writer of a line; lines that
 * do not fit are dropped whole and counted; what is written arrives whole
 * and in order; close flushes, and gives up on a stalled reader instead of
 * hanging. alarm() turns a hang into a failure. */
#include "gateway/accesslog.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/ev.h"
#include "harness.h"

static char dir[] = "/tmp/test_accesslog.XXXXXX";

static int fmt(char *b, size_t cap, int i)
{
    return snprintf(b, cap, "{\"n\":%d,\"pad\":\"%080d\"}\n", i, i);
}

/* Everything the FIFO yields until it has been quiet for 300 ms. */
static size_t drain(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    for (;;) {
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        if (poll(&pf, 1, 300) <= 0)
            return n;
        ssize_t r = read(fd, buf + n, cap - n);
        if (r <= 0)
            return n;
        n += (size_t)r;
    }
}

TEST(stalled_reader_never_blocks_and_drops_whole_lines)
{
    char path[64];
    snprintf(path, sizeof(path), "%s/fifo", dir);
    CHECK_EQ(mkfifo(path, 0600), 0);
    int rfd = open(path, O_RDONLY | O_NONBLOCK); /* a reader that does not read yet */
    CHECK(rfd >= 0);
    struct accesslog *a = accesslog_open(path, 8192);
    CHECK(a != NULL);
    uint64_t d0 = accesslog_dropped_total();
    alarm(20);
    uint64_t t0 = ev_now_ns();
    char line[160];
    for (int i = 0; i < 5000; i++)
        accesslog_line(a, line, (size_t)fmt(line, sizeof(line), i));
    double secs = (double)(ev_now_ns() - t0) / 1e9;
    uint64_t dropped = accesslog_dropped_total() - d0;
    printf("  5000 lines into a stalled FIFO: %.3f s, %llu dropped\n", secs,
           (unsigned long long)dropped);
    CHECK(dropped > 0);
    CHECK(dropped < 5000);
    /* the reader resumes: what was kept arrives whole and in order */
    static char buf[1 << 20];
    size_t n = drain(rfd, buf, sizeof(buf));
    int lines = 0, bad = 0, last = -1;
    for (char *p = buf, *e; p < buf + n && (e = memchr(p, '\n', (size_t)(buf + n - p)));
         p = e + 1) {
        int k = -1;
        char want[160];
        if (sscanf(p, "{\"n\":%d,", &k) != 1 || k <= last ||
            (size_t)fmt(want, sizeof(want), k) != (size_t)(e - p + 1) ||
            memcmp(want, p, (size_t)(e - p + 1)))
            bad++;
        last = k;
        lines++;
    }
    CHECK_EQ(bad, 0);
    CHECK_EQ((uint64_t)lines + dropped, 5000);
    CHECK_EQ(buf[n - 1], '\n'); /* no cut line at the end */
    /* and new lines flow again */
    accesslog_line(a, line, (size_t)fmt(line, sizeof(line), 9999));
    n = drain(rfd, buf, sizeof(buf));
    CHECK(n > 0 && strstr(buf, "\"n\":9999") != NULL);
    accesslog_close(a);
    alarm(0);
    close(rfd);
    unlink(path);
}

TEST(close_flushes_a_file)
{
    char path[64];
    snprintf(path, sizeof(path), "%s/log", dir);
    struct accesslog *a = accesslog_open(path, 0);
    CHECK(a != NULL);
    char line[160];
    for (int i = 0; i < 100; i++)
        accesslog_line(a, line, (size_t)fmt(line, sizeof(line), i));
    accesslog_close(a);
    FILE *f = fopen(path, "r");
    int n = 0;
    while (f && fgets(line, sizeof(line), f))
        n++;
    if (f)
        fclose(f);
    CHECK_EQ(n, 100);
    unlink(path);
}

TEST(close_gives_up_on_a_stalled_reader)
{
    char path[64];
    snprintf(path, sizeof(path), "%s/fifo2", dir);
    CHECK_EQ(mkfifo(path, 0600), 0);
    int rfd = open(path, O_RDONLY | O_NONBLOCK);
    struct accesslog *a = accesslog_open(path, 1 << 20);
    char line[160];
    for (int i = 0; i < 5000; i++) /* > the pipe's 64 KiB, < the ring */
        accesslog_line(a, line, (size_t)fmt(line, sizeof(line), i));
    uint64_t d0 = accesslog_dropped_total();
    alarm(20);
    uint64_t t0 = ev_now_ns();
    accesslog_close(a);
    double secs = (double)(ev_now_ns() - t0) / 1e9;
    alarm(0);
    printf("  close with a stalled reader: %.2f s, %llu lines lost\n", secs,
           (unsigned long long)(accesslog_dropped_total() - d0));
    CHECK(accesslog_dropped_total() - d0 > 0);
    close(rfd);
    unlink(path);
}

TEST(off_and_errors)
{
    errno = 5;
    CHECK(accesslog_open("", 0) == NULL);
    CHECK_EQ(errno, 0);
    CHECK(accesslog_open("/nonexistent-dir/x/log", 0) == NULL);
    CHECK_EQ(errno, ENOENT);
    accesslog_line(NULL, "x\n", 2); /* no log: a no-op */
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(stalled_reader_never_blocks_and_drops_whole_lines);
    RUN(close_flushes_a_file);
    RUN(close_gives_up_on_a_stalled_reader);
    RUN(off_and_errors);
    rmdir(dir);
    return harness_done();
}
