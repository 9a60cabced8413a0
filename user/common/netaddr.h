/* netaddr: addresses, the one module for them: "host:port" text (pod URLs,
 * listeners), resolving, an address as text, and a non-blocking connect.
 *
 * Hosts: numeric IPv4, IPv6 in brackets ("[::1]:8000"), or a DNS name
 * (labels of [A-Za-z0-9-], 1-63 bytes, no '-' at either end). Ports
 * 1-65535, decimal digits only. */
#ifndef KVGATE_COMMON_NETADDR_H
#define KVGATE_COMMON_NETADDR_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Splits s[0..n) into host (without brackets; may be empty when
 * allow_empty_host, meaning any address) and port. 0, or -1 with *why
 * (static text: "missing port", "port out of range", "bad host name"...). */
int hostport_split(const char *s, size_t n, int allow_empty_host, char *host,
                   size_t hostcap, uint16_t *port, const char **why);

/* host ("localhost" is 127.0.0.1; numeric IPv4 / IPv6; else getaddrinfo,
 * IPv4 preferred) -> socket address. 0, or -1 with err ("cannot resolve
 * host ..."). May block for seconds on DNS: the control thread resolves
 * names through resolver.h instead. Built with HOSTPORT_NO_DNS (fuzzing), names are not looked
 * up and map to 127.0.0.1. */
/* 1 if host needs no DNS: "localhost" or a numeric IPv4 / IPv6 address. */
int hostport_is_numeric(const char *host);

int hostport_resolve(const char *host, uint16_t port, struct sockaddr_storage *ss,
                     socklen_t *len, char *err, size_t errlen);

/* "ip" or, with_port, "ip:port" / "[ip6]:port"; "?" for another family. */
void netaddr_text(const struct sockaddr_storage *a, char *out, size_t len, int with_port);

/* A listener's "host:port" ("[v6]:port", ":port" or "*:port" = any
 * address) -> socket address, resolving a name if need be (start-up
 * only). 0, or -1 with err naming what is wrong. */
int netaddr_listen_addr(const char *s, struct sockaddr_storage *ss, socklen_t *len,
                        char *err, size_t errlen);

/* A non-blocking TCP socket connecting to a: the fd (>= 0) with
 * *in_progress set when the connect has not finished yet, or -errno
 * (nothing left open). */
/* "aa:bb:cc:dd:ee:ff" (hex, either case) into m: 0, or -1 when it is not
 * six colon-separated hex bytes. */
int netaddr_parse_mac(const char *s, uint8_t m[6]);

int netaddr_connect(const struct sockaddr_storage *a, socklen_t len, int *in_progress);

#endif
