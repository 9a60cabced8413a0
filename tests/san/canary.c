/* canary: does the sanitizer tier see what it must, on this machine?
 * (tests/san/canary.sh runs each mode and expects a report.)
 *   canary overflow    a heap-buffer-overflow (ASan)
 *   canary ubsan       a signed overflow (UBSan, fatal: -fno-sanitize-recover)
 *   canary leak        a leak in a process with a second thread (LSan must
 *                      stop the threads to scan them, which needs
 *                      ptrace-like access to the process)
 *   canary leak-wait   the same, exiting normally only once SIGTERM came
 *                      (as kvgated and podsim do, through a signalfd)
 * Built only in the sanitizer build (make asan). */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *volatile sink;

static void *idle_thread(void *arg)
{
    sigset_t *set = arg;
    int sig;
    sigwait(set, &sig);
    return NULL;
}

static int leak(int wait_term)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    pthread_t th;
    if (pthread_create(&th, NULL, idle_thread, &set))
        return 2;
    char *p = malloc(4242);
    memset(p, 1, 4242);
    sink = p;
    sink = NULL; /* the only pointer is gone: a leak */
    if (wait_term) {
        int sig;
        printf("canary: waiting for SIGTERM\n");
        fflush(stdout);
        sigwait(&set, &sig);
    }
    pthread_kill(th, SIGUSR1);
    pthread_join(th, NULL);
    return 0;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "";
    if (!strcmp(mode, "overflow")) {
        char *p = malloc(16);
        sink = p;
        volatile char c = p[16 + (argc > 2)];
        free(p);
        return c;
    }
    if (!strcmp(mode, "ubsan")) {
        volatile int x = 0x7fffffff;
        int y = x + argc;
        return y == 0;
    }
    if (!strcmp(mode, "leak"))
        return leak(0);
    if (!strcmp(mode, "leak-wait"))
        return leak(1);
    fprintf(stderr, "usage: canary overflow|ubsan|leak|leak-wait\n");
    return 2;
}
