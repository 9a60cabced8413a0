/* xdp_livegen: sends N copies of one frame out of an interface.
 *
 * --via live (default): the XDP live-frames test run
 * (BPF_F_TEST_XDP_LIVE_FRAMES): tests/bpf/xdp_tx.bpf.c returns XDP_TX for
 * each repetition and the kernel transmits the frame (this machine has no
 * pktgen; this is its stand-in). On a veth the frames land in the peer's
 * XDP hook, which must have a native XDP program (or NAPI, with GRO on) to
 * accept them: they reach native XDP only.
 * --via packet: an AF_PACKET socket, one send per frame: the frames go
 * through the veth as skbs and meet generic XDP as well as native.
 *
 *   xdp_livegen --ifname IF --src IP --dst IP --dst-mac MAC [--count N]
 *               [--kind syn|ack|bad-ihl] [--dport P] [--via live|packet]
 *
 * IPv4 only; checksums are valid, so frames the guard passes reach the
 * receiver's TCP stack as real SYNs. Exit 0 when the run was accepted
 * (the kernel drops frames it cannot transmit silently: count at the
 * receiver), 77 when live frames are not supported. */
#include <errno.h>
#include <getopt.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/netaddr.h"
#include "fixtures.h"
#include "tests/xdp_tx.skel.h"

static uint16_t csum_fold(uint32_t s)
{
    while (s >> 16)
        s = (s & 0xffff) + (s >> 16);
    return (uint16_t)~s;
}

static uint32_t csum_add(uint32_t s, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i + 1 < n; i += 2)
        s += (uint32_t)(p[i] << 8 | p[i + 1]);
    if (n & 1)
        s += (uint32_t)p[n - 1] << 8;
    return s;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"ifname", 1, 0, 'i'}, {"src", 1, 0, 's'}, {"dst", 1, 0, 'd'},
        {"dst-mac", 1, 0, 'm'}, {"count", 1, 0, 'n'}, {"kind", 1, 0, 'k'},
        {"dport", 1, 0, 'p'}, {"via", 1, 0, 'v'}, {0, 0, 0, 0},
    };
    const char *ifname = NULL, *kind = "syn", *via = "live";
    struct in_addr src = {0}, dst = {0};
    uint8_t dmac[6] = {0};
    int count = 1, dport = 8080, c, have_mac = 0;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'i': ifname = optarg; break;
        case 's': inet_pton(AF_INET, optarg, &src); break;
        case 'd': inet_pton(AF_INET, optarg, &dst); break;
        case 'm': have_mac = !netaddr_parse_mac(optarg, dmac); break;
        case 'n': count = atoi(optarg); break;
        case 'k': kind = optarg; break;
        case 'p': dport = atoi(optarg); break;
        case 'v': via = optarg; break;
        default: return 2;
        }
    }
    if (!ifname || !src.s_addr || !dst.s_addr || !have_mac || count < 1) {
        fprintf(stderr, "usage: xdp_livegen --ifname IF --src IP --dst IP --dst-mac MAC "
                        "[--count N] [--kind syn|ack|bad-ihl] [--dport P] [--via live|packet]\n");
        return 2;
    }
    int ifindex = (int)if_nametoindex(ifname);
    if (!ifindex) {
        fprintf(stderr, "xdp_livegen: no interface %s\n", ifname);
        return 2;
    }

    struct fx f = {.shape = FX_TCP4, .dport = (uint16_t)dport,
                   .flags = strcmp(kind, "ack") ? TCP_F_SYN : TCP_F_ACK};
    struct pkt pk;
    fx_build(&f, (struct fx_src){.v4 = ntohl(src.s_addr)}, &pk);
    uint8_t *ip = pk.b + pk.l3, *tcp = pk.b + pk.l4;
    memcpy(pk.b, dmac, 6);
    memcpy(ip + 16, &dst, 4);
    /* checksums: IPv4 header, TCP with the pseudo-header */
    ip[10] = ip[11] = 0;
    put16(ip + 10, csum_fold(csum_add(0, ip, 20)));
    size_t tl = pk.len - pk.l4;
    uint8_t pseudo[12];
    memcpy(pseudo, ip + 12, 8);
    pseudo[8] = 0, pseudo[9] = 6;
    put16(pseudo + 10, (uint16_t)tl);
    tcp[16] = tcp[17] = 0;
    put16(tcp + 16, csum_fold(csum_add(csum_add(0, pseudo, 12), tcp, tl)));
    if (!strcmp(kind, "bad-ihl"))
        ip[0] = 0x43;

    if (!strcmp(via, "packet")) {
        int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
        struct sockaddr_ll sll = {.sll_family = AF_PACKET, .sll_ifindex = ifindex,
                                  .sll_halen = 6};
        memcpy(sll.sll_addr, dmac, 6);
        if (fd < 0) {
            perror("xdp_livegen: AF_PACKET socket");
            return 1;
        }
        for (int i = 0; i < count; i++)
            if (sendto(fd, pk.b, pk.len, 0, (struct sockaddr *)&sll, sizeof(sll)) < 0) {
                perror("xdp_livegen: sendto");
                close(fd);
                return 1;
            }
        close(fd);
        printf("xdp_livegen: %d %s frames out of %s (AF_PACKET)\n", count, kind, ifname);
        return 0;
    }
    struct xdp_tx_bpf *tx = xdp_tx_bpf__open_and_load();
    if (!tx) {
        fprintf(stderr, "xdp_livegen: cannot load xdp_tx: %s\n", strerror(errno));
        return 1;
    }
    struct xdp_md ctx = {.data_end = (uint32_t)pk.len, .ingress_ifindex = (uint32_t)ifindex};
    LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = pk.b, .data_size_in = (uint32_t)pk.len,
                .ctx_in = &ctx, .ctx_size_in = sizeof(ctx), .repeat = (uint32_t)count,
                .flags = BPF_F_TEST_XDP_LIVE_FRAMES);
    int rc = bpf_prog_test_run_opts(bpf_program__fd(tx->progs.xdp_tx), &o);
    int e = errno;
    xdp_tx_bpf__destroy(tx);
    if (rc) {
        fprintf(stderr, "xdp_livegen: live-frames test run on %s: %s\n", ifname, strerror(e));
        return e == EINVAL || e == EOPNOTSUPP || e == 524 ? 77 : 1;
    }
    printf("xdp_livegen: %d %s frames out of %s\n", count, kind, ifname);
    return 0;
}
