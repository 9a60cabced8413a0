/* Unit tests for user/bypass/neigh.c: /proc/net/arp's text read for a
 * pod's MAC: found on its interface or any, incomplete entries and other
 * interfaces skipped, a missing address -ENOENT. */
#include "bypass/neigh.h"
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>

static const char ARP[] =
    "IP address       HW type     Flags       HW address            Mask     Device\n"
    "10.99.0.3        0x1         0x2         02:00:00:00:00:03     *        gw0\n"
    "10.99.0.4        0x1         0x0         00:00:00:00:00:00     *        gw0\n"
    "10.99.0.5        0x1         0x2         02:00:00:00:00:05     *        other\n"
    "10.99.0.6        0x1         0x6         0a:bb:cc:dd:ee:ff     *        gw0\n";

static uint32_t ip(const char *s)
{
    struct in_addr a;
    inet_pton(AF_INET, s, &a);
    return a.s_addr;
}

TEST(parse)
{
    uint8_t mac[6];
    CHECK_EQ(neigh_parse(ARP, ip("10.99.0.3"), "gw0", mac), 0);
    CHECK(!memcmp(mac, (uint8_t[]){2, 0, 0, 0, 0, 3}, 6));
    CHECK_EQ(neigh_parse(ARP, ip("10.99.0.6"), NULL, mac), 0);
    CHECK(!memcmp(mac, (uint8_t[]){0x0a, 0xbb, 0xcc, 0xdd, 0xee, 0xff}, 6));
    CHECK_EQ(neigh_parse(ARP, ip("10.99.0.4"), "gw0", mac), -ENOENT); /* incomplete */
    CHECK_EQ(neigh_parse(ARP, ip("10.99.0.5"), "gw0", mac), -ENOENT); /* another interface */
    CHECK_EQ(neigh_parse(ARP, ip("10.99.0.5"), NULL, mac), 0);
    CHECK_EQ(neigh_parse(ARP, ip("10.99.0.9"), NULL, mac), -ENOENT);
    CHECK_EQ(neigh_parse("", ip("10.99.0.3"), NULL, mac), -ENOENT);
    CHECK_EQ(neigh_parse("title only", ip("10.99.0.3"), NULL, mac), -ENOENT);
}

int main(void)
{
    RUN(parse);
    return harness_done();
}
