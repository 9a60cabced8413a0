/* neigh: the kernel's neighbour table, read for the bypass worker (neigh.h). */
#include "bypass/neigh.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define ATF_COM 0x02

int neigh_parse(const char *text, uint32_t ip, const char *ifname, uint8_t mac[6])
{
    const char *l = strchr(text, '\n'); /* the title line */
    while (l && *++l) {
        char a[64], hw[64], mask[64], dev[64];
        unsigned type, flags, m[6];
        const char *e = strchr(l, '\n');
        if (sscanf(l, "%63s %x %x %63s %63s %63s", a, &type, &flags, hw, mask, dev) == 6 &&
            (flags & ATF_COM) && (!ifname || !strcmp(dev, ifname)) &&
            sscanf(hw, "%x:%x:%x:%x:%x:%x", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5]) == 6) {
            struct in_addr in;
            if (inet_pton(AF_INET, a, &in) == 1 && in.s_addr == ip) {
                for (int i = 0; i < 6; i++)
                    mac[i] = (uint8_t)m[i];
                return 0;
            }
        }
        l = e;
    }
    return -ENOENT;
}

int neigh_lookup(uint32_t ip, const char *ifname, uint8_t mac[6])
{
    static __thread char buf[65536]; /* kvg-bypassd's workers each call it */
    int fd = open("/proc/net/arp", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    size_t n = 0;
    for (ssize_t k; n < sizeof(buf) - 1 && (k = read(fd, buf + n, sizeof(buf) - 1 - n)) > 0;)
        n += (size_t)k;
    close(fd);
    buf[n] = 0;
    return neigh_parse(buf, ip, ifname, mac);
}

int neigh_poke(uint32_t ip)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(9), .sin_addr.s_addr = ip};
    ssize_t k = sendto(fd, "", 1, MSG_DONTWAIT, (struct sockaddr *)&sa, sizeof(sa));
    int rc = k < 0 && errno != EAGAIN ? -errno : 0;
    close(fd);
    return rc;
}
