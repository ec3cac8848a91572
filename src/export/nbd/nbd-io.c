/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Socket helpers of the NBD server: whole-buffer reads and writes, and draining of payloads
 * that are refused without ever allocating their (untrusted) length. */
#include <errno.h>
#include <sys/socket.h>

#include "common/cleanup.h"
#include "export/nbd/nbd-internal.h"

int nbd_recv_full(struct nbd_conn *c, void *buf, size_t len) {
        char *p = buf;

        while (len > 0) {
                ssize_t n = c->tls ? nbd_tls_recv(c, p, len) : recv(c->fd, p, len, 0);
                if (c->tls && n < 0)
                        return (int) n;
                if (n == 0)
                        return -ECONNRESET;
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN || errno == EWOULDBLOCK)
                                return -ETIMEDOUT; /* SO_RCVTIMEO of the handshake */
                        return -errno;
                }
                p += n;
                len -= (size_t) n;
        }
        return 0;
}

int nbd_recv_discard(struct nbd_conn *c, uint64_t len) {
        char scratch[16384];

        while (len > 0) {
                size_t n = (size_t) MIN(len, (uint64_t) sizeof(scratch));
                int r = nbd_recv_full(c, scratch, n);
                if (r < 0)
                        return r;
                len -= n;
        }
        return 0;
}

int nbd_sendv_full(struct nbd_conn *c, struct iovec *iov, int n) {
        if (c->tls)
                return nbd_tls_sendv(c, iov, n);
        while (n > 0) {
                struct msghdr msg = { .msg_iov = iov, .msg_iovlen = (size_t) n };
                ssize_t w = sendmsg(c->fd, &msg, MSG_NOSIGNAL);
                if (w < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                /* Skip what went out; a short write leaves us inside one element. */
                while (n > 0 && (size_t) w >= iov->iov_len) {
                        w -= (ssize_t) iov->iov_len;
                        iov++;
                        n--;
                }
                if (n > 0) {
                        iov->iov_base = (char *) iov->iov_base + w;
                        iov->iov_len -= (size_t) w;
                }
        }
        return 0;
}

int nbd_send_full(struct nbd_conn *c, const void *buf, size_t len) {
        struct iovec iov = { .iov_base = (void *) buf, .iov_len = len };
        return nbd_sendv_full(c, &iov, 1);
}
