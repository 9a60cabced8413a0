/* Unit tests for user/common/netaddr.c's MAC parser (the bypass worker's
 * --pod-mac, the live-frames generator's arguments): six colon-separated
 * hex bytes, nothing else. */
#include "common/netaddr.h"
#include "harness.h"

#include <string.h>

TEST(mac_addresses_parse_strictly)
{
    uint8_t m[6];
    static const uint8_t want[6] = {0x02, 0x00, 0xab, 0xCD, 0x0f, 0xff};
    CHECK_EQ(netaddr_parse_mac("02:00:ab:CD:0f:ff", m), 0);
    CHECK(memcmp(m, want, 6) == 0);
    CHECK_EQ(netaddr_parse_mac("2:0:ab:cd:f:ff", m), 0); /* one digit a byte is fine */
    static const char *const bad[] = {"", "02:00:ab:cd:0f", "02:00:ab:cd:0f:ff:00",
                                      "02:00:ab:cd:0f:fff", "02-00-ab-cd-0f-ff",
                                      "02:00:ab:cd:0f:zz", "02:00:ab:cd:0f:ff ", NULL};
    for (int i = 0; bad[i]; i++)
        CHECK_EQ(netaddr_parse_mac(bad[i], m), -1);
}

int main(void)
{
    RUN(mac_addresses_parse_strictly);
    return harness_done();
}
