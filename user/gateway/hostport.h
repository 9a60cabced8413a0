/* hostport: "host:port" text and addresses, for pod URLs and listeners.
 *
 * Hosts: numeric IPv4, IPv6 in brackets ("[::1]:8000"), or a DNS name
 * (labels of [A-Za-z0-9-], 1-63 bytes, no '-' at either end). Ports
 * 1-65535, decimal digits only. */
#ifndef KVGATE_GATEWAY_HOSTPORT_H
#define KVGATE_GATEWAY_HOSTPORT_H

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

#endif
