/* neigh: a pod's MAC address for the bypass worker (issue 12). kvgated's
 * decision names the pod by IPv4 and port; the worker writes Ethernet
 * frames, so it needs the next hop's MAC on its interface. The simplest
 * honest source: the kernel's neighbour table of the worker's network
 * namespace (/proc/net/arp), which kvgated's own health checks and
 * scrapes of the pods keep fresh when both run there; when the entry is
 * missing the worker asks the kernel to resolve it (neigh_poke) and looks
 * again. A deployment whose pods sit behind a router gives the router's
 * MAC instead (kvg-bypassd --pod-mac). */
#ifndef KVGATE_BYPASS_NEIGH_H
#define KVGATE_BYPASS_NEIGH_H

#include <stdint.h>

/* /proc/net/arp's text: the MAC of ip (network order) on ifname (NULL:
 * any). Incomplete entries (flags without ATF_COM) do not count. 0, or
 * -ENOENT. */
int neigh_parse(const char *text, uint32_t ip, const char *ifname, uint8_t mac[6]);
/* The same, reading /proc/net/arp. */
int neigh_lookup(uint32_t ip, const char *ifname, uint8_t mac[6]);
/* One UDP datagram to ip:9 (discard) through the kernel, so that it
 * resolves the address (ARP). Never blocks. 0 or -errno. */
int neigh_poke(uint32_t ip);

#endif
