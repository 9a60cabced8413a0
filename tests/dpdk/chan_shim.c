/* chan_shim: an LD_PRELOAD library for the dpdk tier's multi-queue test
 * (tests/dpdk/test_queues.sh), never for production.
 *
 * DPDK 22.11's af_xdp driver sizes a port from ETHTOOL_GCHANNELS's
 * combined channels: a driver that reports none is taken for a one-queue
 * device, and queue_count > 1 is refused. A NIC reports its queue pairs as
 * combined channels (ice, i40e, mlx5, virtio_net); veth reports the same
 * queues as separate rx and tx counts, and its AF_XDP sockets bind to any
 * of its real rx queues all the same. This shim answers GCHANNELS for a
 * device that reports no combined channel with combined = min(rx, tx), so
 * the driver opens one socket per veth rx queue; everything else (the
 * queues, the sockets, XDP, the frames) is the kernel's, unchanged.
 *
 *   cc -shared -fPIC -o build/tests/chan_shim.so tests/dpdk/chan_shim.c -ldl */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdarg.h>
#include <string.h>
#include <sys/ioctl.h>

#include <linux/ethtool.h>
#include <linux/sockios.h>
#include <net/if.h>

int ioctl(int fd, unsigned long req, ...)
{
    static int (*real)(int, unsigned long, ...);
    va_list ap;
    va_start(ap, req);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    if (!real)
        real = (int (*)(int, unsigned long, ...))dlsym(RTLD_NEXT, "ioctl");
    int rc = real(fd, req, arg);
    if (rc || req != SIOCETHTOOL || !arg)
        return rc;
    struct ifreq *ifr = arg;
    struct ethtool_channels *ch = (struct ethtool_channels *)ifr->ifr_data;
    if (!ch || ch->cmd != ETHTOOL_GCHANNELS || ch->max_combined)
        return rc;
    ch->max_combined = ch->max_rx < ch->max_tx ? ch->max_rx : ch->max_tx;
    ch->combined_count = ch->rx_count < ch->tx_count ? ch->rx_count : ch->tx_count;
    return rc;
}
