/* netaddr: addresses. See netaddr.h. */
#include "common/netaddr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

static int is_label_char(char c)
{
    return c == '-' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
           (c >= 'A' && c <= 'Z');
}

/* DNS name: labels of [A-Za-z0-9-], 1-63 bytes, no '-' at either end. */
static int valid_hostname(const char *h, size_t n)
{
    if (n == 0 || n > 253)
        return 0;
    size_t lab = 0;
    for (size_t i = 0; i < n; i++) {
        if (h[i] == '.') {
            if (lab == 0 || h[i - 1] == '-')
                return 0;
            lab = 0;
            continue;
        }
        if (!is_label_char(h[i]) || (lab == 0 && h[i] == '-') || ++lab > 63)
            return 0;
    }
    return lab > 0 && h[n - 1] != '-';
}

int hostport_split(const char *s, size_t n, int allow_empty, char *host,
                   size_t hostcap, uint16_t *port, const char **why)
{
    const char *colon;
    const char *h = s;
    size_t hn;
    int v6 = 0;
    if (n && s[0] == '[') {
        const char *rb = memchr(s, ']', n);
        if (!rb || rb + 1 >= s + n || rb[1] != ':')
            return *why = "bad [IPv6]:port", -1;
        h = s + 1;
        hn = (size_t)(rb - h);
        colon = rb + 1;
        v6 = 1;
    } else {
        colon = memrchr(s, ':', n);
        if (!colon)
            return *why = "missing port", -1;
        hn = (size_t)(colon - s);
        if (memchr(s, ':', hn))
            return *why = "IPv6 address without brackets", -1;
    }
    /* port: 1-5 digits, 1..65535 */
    const char *p = colon + 1;
    size_t pn = (size_t)(s + n - p);
    unsigned long v = 0;
    if (pn == 0 || pn > 5)
        return *why = pn ? "port out of range" : "missing port", -1;
    for (size_t i = 0; i < pn; i++) {
        if (p[i] < '0' || p[i] > '9')
            return *why = "port is not a number", -1;
        v = v * 10 + (unsigned long)(p[i] - '0');
    }
    if (v == 0 || v > 65535)
        return *why = "port out of range", -1;
    if (hn >= hostcap)
        return *why = "host too long", -1;
    memcpy(host, h, hn);
    host[hn] = 0;
    if (hn == 0) {
        if (v6 || !allow_empty)
            return *why = "missing host", -1;
    } else if (v6) {
        struct in6_addr a6;
        if (inet_pton(AF_INET6, host, &a6) != 1)
            return *why = "bad IPv6 address", -1;
    } else if (strspn(host, "0123456789.") == hn) {
        struct in_addr a4;
        if (inet_pton(AF_INET, host, &a4) != 1)
            return *why = "bad IPv4 address", -1;
    } else if (!valid_hostname(host, hn)) {
        return *why = "bad host name", -1;
    }
    *port = (uint16_t)v;
    return 0;
}

int hostport_is_numeric(const char *host)
{
    struct in_addr a4;
    struct in6_addr a6;
    return !strcmp(host, "localhost") || inet_pton(AF_INET, host, &a4) == 1 ||
           inet_pton(AF_INET6, host, &a6) == 1;
}

int hostport_resolve(const char *host, uint16_t port, struct sockaddr_storage *ss,
                     socklen_t *len, char *err, size_t errlen)
{
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
    if (!strcmp(host, "localhost") || inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
        if (!strcmp(host, "localhost"))
            s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        s4->sin_family = AF_INET;
        s4->sin_port = htons(port);
        *len = sizeof(*s4);
        return 0;
    }
    if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(port);
        *len = sizeof(*s6);
        return 0;
    }
#ifdef HOSTPORT_NO_DNS
    /* fuzzing: no DNS; any valid name "resolves" to loopback */
    s4->sin_family = AF_INET;
    s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    s4->sin_port = htons(port);
    *len = sizeof(*s4);
    return 0;
#else
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL, *pick = NULL;
    int rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "cannot resolve host \"%.*s\": %s", 80, host,
                 gai_strerror(rc));
        return -1;
    }
    for (struct addrinfo *a = res; a; a = a->ai_next)
        if (a->ai_family == AF_INET || (a->ai_family == AF_INET6 && !pick))
            if (!pick || pick->ai_family != AF_INET)
                pick = a;
    if (!pick || pick->ai_addrlen > sizeof(*ss)) {
        freeaddrinfo(res);
        snprintf(err, errlen, "cannot resolve host \"%.*s\": no IPv4 or IPv6 address",
                 80, host);
        return -1;
    }
    memcpy(ss, pick->ai_addr, pick->ai_addrlen);
    *len = (socklen_t)pick->ai_addrlen;
    if (pick->ai_family == AF_INET)
        s4->sin_port = htons(port);
    else
        s6->sin6_port = htons(port);
    freeaddrinfo(res);
    return 0;
#endif
}

void netaddr_text(const struct sockaddr_storage *a, char *out, size_t len, int with_port)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *s = (const struct sockaddr_in *)a;
        inet_ntop(AF_INET, &s->sin_addr, ip, sizeof(ip));
        port = ntohs(s->sin_port);
    } else if (a->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)a;
        inet_ntop(AF_INET6, &s->sin6_addr, ip, sizeof(ip));
        port = ntohs(s->sin6_port);
    }
    if (!with_port)
        snprintf(out, len, "%s", ip);
    else if (a->ss_family == AF_INET6)
        snprintf(out, len, "[%s]:%u", ip, port);
    else
        snprintf(out, len, "%s:%u", ip, port);
}

int netaddr_listen_addr(const char *s, struct sockaddr_storage *ss, socklen_t *len,
                        char *err, size_t errlen)
{
    char host[256];
    uint16_t port;
    const char *why = NULL;
    if (!strncmp(s, "*:", 2))
        s++; /* "*:port": any address */
    if (hostport_split(s, strlen(s), 1, host, sizeof(host), &port, &why) < 0) {
        snprintf(err, errlen, "expected \"host:port\" or \"[v6addr]:port\", got \"%s\" (%s)", s,
                 why ? why : "malformed");
        return -1;
    }
    if (!host[0]) { /* any IPv4 address, as getaddrinfo's passive default */
        struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
        memset(ss, 0, sizeof(*ss));
        a4->sin_family = AF_INET;
        a4->sin_addr.s_addr = htonl(INADDR_ANY);
        a4->sin_port = htons(port);
        *len = sizeof(*a4);
        return 0;
    }
    return hostport_resolve(host, port, ss, len, err, errlen);
}

int netaddr_connect(const struct sockaddr_storage *a, socklen_t len, int *in_progress)
{
    int fd = socket(a->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    *in_progress = 0;
    if (connect(fd, (const struct sockaddr *)a, len) < 0) {
        int e = errno;
        if (e != EINPROGRESS) {
            close(fd);
            return -e;
        }
        *in_progress = 1;
    }
    return fd;
}

int netaddr_parse_mac(const char *s, uint8_t m[6])
{
    unsigned v[6];
    int end = 0;
    if (sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%n", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
               &end) != 6 || s[end])
        return -1;
    for (int i = 0; i < 6; i++)
        m[i] = (uint8_t)v[i];
    return 0;
}
