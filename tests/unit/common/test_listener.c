/* Unit tests for user/common/listener.c, on loopback sockets. */
#include "common/listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <unistd.h>

#include "common/ev.h"
#include "evtest.h"
#include "harness.h"

struct acc {
    struct ev_loop *l;
    int n;
    int fds[8];
    int family;
    int stop_after;
};

static void on_conn(struct listener *ls, int fd, const struct sockaddr_storage *peer,
                    socklen_t peerlen)
{
    struct acc *a = ls->arg;
    if (a->n < 8)
        a->fds[a->n] = fd;
    else
        close(fd);
    a->n++;
    a->family = peer->ss_family;
    if (a->n >= a->stop_after)
        ev_stop(a->l);
}

static int loopback(struct sockaddr_in *sa, int port)
{
    *sa = (struct sockaddr_in){ .sin_family = AF_INET, .sin_port = htons(port) };
    return inet_pton(AF_INET, "127.0.0.1", &sa->sin_addr);
}

/* A listener on 127.0.0.1 with a kernel-chosen port. */
static int open_any(struct sockaddr_in *sa, int flags)
{
    loopback(sa, 0);
    int fd = listener_socket((struct sockaddr *)sa, sizeof(*sa), 16, flags);
    socklen_t len = sizeof(*sa);
    if (fd >= 0)
        getsockname(fd, (struct sockaddr *)sa, &len);
    return fd;
}

static int connect_to(const struct sockaddr_in *sa)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

TEST(accepts_with_options)
{
    struct ev_loop *l = ev_new();
    struct sockaddr_in sa;
    int lfd = open_any(&sa, 0);
    CHECK(lfd >= 0);
    CHECK(fcntl(lfd, F_GETFL) & O_NONBLOCK);
    CHECK(fcntl(lfd, F_GETFD) & FD_CLOEXEC);
    struct listener ls = { 0 };
    CHECK(!listener_running(&ls)); /* zeroed: stopped */
    struct acc a = { .l = l, .stop_after = 2 };
    CHECK_EQ(listener_start(&ls, l, lfd, on_conn, &a), 0);
    CHECK(listener_running(&ls));
    int c1 = connect_to(&sa), c2 = connect_to(&sa);
    CHECK(c1 >= 0 && c2 >= 0);
    run_for(l, 2000);
    CHECK_EQ(a.n, 2);
    CHECK_EQ(a.family, AF_INET);
    for (int i = 0; i < a.n && i < 2; i++) {
        int v = 0;
        socklen_t vl = sizeof(v);
        getsockopt(a.fds[i], IPPROTO_TCP, TCP_NODELAY, &v, &vl);
        CHECK(v != 0);
        CHECK(fcntl(a.fds[i], F_GETFL) & O_NONBLOCK);
        CHECK(fcntl(a.fds[i], F_GETFD) & FD_CLOEXEC);
        close(a.fds[i]);
    }
    listener_stop(&ls);
    CHECK(!listener_running(&ls));
    listener_stop(&ls); /* again: nothing */
    int c3 = connect_to(&sa);
    CHECK_EQ(c3, -ECONNREFUSED);
    close(c1);
    close(c2);
    ev_free(l);
}

TEST(reuseport)
{
    struct sockaddr_in sa;
    int a = open_any(&sa, LISTENER_REUSEPORT);
    CHECK(a >= 0);
    int b = listener_socket((struct sockaddr *)&sa, sizeof(sa), 16, LISTENER_REUSEPORT);
    CHECK(b >= 0); /* both bound to one port */
    int c = listener_socket((struct sockaddr *)&sa, sizeof(sa), 16, 0);
    CHECK_EQ(c, -EADDRINUSE);
    close(a);
    if (b >= 0)
        close(b);
}

/* Out of descriptors: the listener stops polling, then comes back. */
TEST(emfile_backs_off)
{
    struct ev_loop *l = ev_new();
    struct sockaddr_in sa;
    int lfd = open_any(&sa, 0);
    struct listener ls = { 0 };
    struct acc a = { .l = l, .stop_after = 1 };
    CHECK_EQ(listener_start(&ls, l, lfd, on_conn, &a), 0);
    int c1 = connect_to(&sa);
    CHECK(c1 >= 0);
    struct rlimit old;
    getrlimit(RLIMIT_NOFILE, &old);
    int next = dup(0); /* the lowest free descriptor... */
    close(next);
    struct rlimit low = { .rlim_cur = (rlim_t)next, .rlim_max = old.rlim_max };
    setrlimit(RLIMIT_NOFILE, &low); /* ...is now out of reach */
    run_for(l, 50);
    CHECK_EQ(a.n, 0);
    CHECK(ls.retry_timer != 0); /* not spinning: polling resumes later */
    setrlimit(RLIMIT_NOFILE, &old);
    /* A second client: under valgrind the first one is lost (valgrind's
     * accept4 closes an fd beyond its emulated limit; the kernel keeps the
     * connection queued). */
    int c2 = connect_to(&sa);
    run_for(l, 2000);
    CHECK(a.n >= 1);
    CHECK_EQ(ls.retry_timer, 0);
    for (int i = 0; i < a.n && i < 8; i++)
        close(a.fds[i]);
    listener_stop(&ls);
    close(c1);
    close(c2);
    ev_free(l);
}

TEST(bad_address)
{
    struct sockaddr_in sa;
    loopback(&sa, 0);
    sa.sin_addr.s_addr = htonl(0xC0000201); /* 192.0.2.1: not ours */
    CHECK_EQ(listener_socket((struct sockaddr *)&sa, sizeof(sa), 16, 0), -EADDRNOTAVAIL);
}

int main(void)
{
    RUN(accepts_with_options);
    RUN(reuseport);
    RUN(emfile_backs_off);
    RUN(bad_address);
    return harness_done();
}
