/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Replies of the NBD transmission phase: simple replies, structured chunks (data, holes, block
 * status, errors), and the mapping of errno values to the eight the protocol defines. */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/cleanup.h"
#include "export/nbd/nbd-internal.h"

uint32_t nbd_errno(int r) {
        switch (-r) {
        case 0:
                return 0;
        case EPERM:
        case EROFS:
        case EACCES:
                return NBD_EPERM;
        case ENOMEM:
                return NBD_ENOMEM;
        case EINVAL:
        case ERANGE:
        case E2BIG:
                return NBD_EINVAL;
        case ENOSPC:
        case EDQUOT:
        case EFBIG:
                return NBD_ENOSPC;
        case EOVERFLOW:
                return NBD_EOVERFLOW;
        case ENOTSUP:
                return NBD_ENOTSUP;
        case ESHUTDOWN:
                return NBD_ESHUTDOWN;
        default:
                return NBD_EIO;
        }
}

/* Send under the connection's write lock. A failed send means the client is gone or stuck:
 * shut the socket so the reader stops too, and remember it. */
static int conn_sendv(struct nbd_conn *c, struct iovec *iov, int n) {
        int r;

        if (c->async)
                return nbd_async_sendv(c, iov, n);
        WITH_LOCK(&c->write_lock) {
                if (c->dead)
                        return -EPIPE;
                r = nbd_sendv_full(c, iov, n);
                if (r < 0) {
                        c->dead = true;
                        (void) shutdown(c->fd, SHUT_RDWR);
                }
        }
        return r;
}

static void chunk_hdr(struct nbd_structured_reply *h, uint64_t cookie, uint16_t type, uint16_t flags,
                      uint32_t len) {
        h->magic = htobe32(NBD_STRUCTURED_REPLY_MAGIC);
        h->flags = htobe16(flags);
        h->type = htobe16(type);
        h->cookie = cookie; /* opaque: echoed byte for byte */
        h->length = htobe32(len);
}

static int reply_simple(struct nbd_conn *c, uint64_t cookie, uint32_t error, void *data, uint32_t len) {
        struct nbd_simple_reply h = {
                .magic = htobe32(NBD_SIMPLE_REPLY_MAGIC),
                .error = htobe32(error),
                .cookie = cookie,
        };
        struct iovec iov[2] = { { &h, sizeof(h) }, { data, len } };
        return conn_sendv(c, iov, data ? 2 : 1);
}

static int reply_error_chunk(struct nbd_conn *c, uint64_t cookie, uint32_t error) {
        struct {
                struct nbd_structured_reply h;
                uint32_t error;
                uint16_t msglen;
        } __attribute__((packed)) m;

        chunk_hdr(&m.h, cookie, NBD_REPLY_TYPE_ERROR, NBD_REPLY_FLAG_DONE, 6);
        m.error = htobe32(error);
        m.msglen = 0;
        struct iovec iov = { &m, sizeof(m) };
        return conn_sendv(c, &iov, 1);
}

int nbd_reply_status(struct nbd_conn *c, uint64_t cookie, uint16_t type, int result) {
        uint32_t error = nbd_errno(result);

        if (error)
                atomic_fetch_add(&c->errors, 1);
        if (!c->structured)
                return reply_simple(c, cookie, error, NULL, 0);
        if (error)
                return reply_error_chunk(c, cookie, error);
        if (type == NBD_CMD_READ) {
                struct nbd_structured_reply h;
                chunk_hdr(&h, cookie, NBD_REPLY_TYPE_NONE, NBD_REPLY_FLAG_DONE, 0);
                struct iovec iov = { &h, sizeof(h) };
                return conn_sendv(c, &iov, 1);
        }
        return reply_simple(c, cookie, 0, NULL, 0);
}

/* Per chunk: header, offset, and (holes) the hole length. */
struct chunk_prefix {
        struct nbd_structured_reply h;
        uint64_t offset;
        uint32_t hole_len;
} __attribute__((packed));

int nbd_reply_read(struct nbd_conn *c, const struct nbd_req *r, void *buf, const struct nbd_seg *segs,
                   size_t nsegs) {
        struct chunk_prefix one;
        struct iovec iov1[2];
        _cleanup_free_ struct chunk_prefix *pre = NULL;
        _cleanup_free_ struct iovec *iov = NULL;
        int n = 0;

        atomic_fetch_add(&c->bytes_read, r->len);
        if (!c->structured)
                return reply_simple(c, r->cookie, 0, buf, r->len);
        if (nsegs == 0)
                return nbd_reply_status(c, r->cookie, NBD_CMD_READ, 0);

        if (nsegs == 1) {
                pre = NULL;
                iov = NULL;
        } else {
                pre = calloc(nsegs, sizeof(*pre));
                iov = calloc(nsegs * 2, sizeof(*iov));
                if (!pre || !iov)
                        return nbd_reply_status(c, r->cookie, NBD_CMD_READ, -ENOMEM);
        }
        struct chunk_prefix *p = pre ? pre : &one;
        struct iovec *v = iov ? iov : iov1;
        for (size_t i = 0; i < nsegs; i++, p++) {
                uint16_t flags = i + 1 == nsegs ? NBD_REPLY_FLAG_DONE : 0;
                p->offset = htobe64(segs[i].off);
                if (segs[i].hole) {
                        chunk_hdr(&p->h, r->cookie, NBD_REPLY_TYPE_OFFSET_HOLE, flags, 12);
                        p->hole_len = htobe32(segs[i].len);
                        v[n++] = (struct iovec) { p, sizeof(*p) };
                } else {
                        chunk_hdr(&p->h, r->cookie, NBD_REPLY_TYPE_OFFSET_DATA, flags, 8 + segs[i].len);
                        v[n++] = (struct iovec) { p, sizeof(p->h) + sizeof(p->offset) };
                        v[n++] = (struct iovec) { (char *) buf + (segs[i].off - r->offset), segs[i].len };
                }
        }
        return conn_sendv(c, v, n);
}

size_t nbd_reply_prepare(struct nbd_conn *c, const struct nbd_req *r, int result, void *hdr, bool *ret_data) {
        uint32_t error = nbd_errno(result);

        *ret_data = false;
        if (error)
                atomic_fetch_add(&c->errors, 1);
        else if (r->type == NBD_CMD_READ)
                atomic_fetch_add(&c->bytes_read, r->len);
        if (c->structured && error) {
                struct {
                        struct nbd_structured_reply h;
                        uint32_t error;
                        uint16_t msglen;
                } __attribute__((packed)) m;

                chunk_hdr(&m.h, r->cookie, NBD_REPLY_TYPE_ERROR, NBD_REPLY_FLAG_DONE, 6);
                m.error = htobe32(error);
                m.msglen = 0;
                memcpy(hdr, &m, sizeof(m));
                return sizeof(m);
        }
        if (c->structured && r->type == NBD_CMD_READ) {
                struct {
                        struct nbd_structured_reply h;
                        uint64_t offset;
                } __attribute__((packed)) m;

                if (r->len == 0) {
                        chunk_hdr(&m.h, r->cookie, NBD_REPLY_TYPE_NONE, NBD_REPLY_FLAG_DONE, 0);
                        memcpy(hdr, &m.h, sizeof(m.h));
                        return sizeof(m.h);
                }
                chunk_hdr(&m.h, r->cookie, NBD_REPLY_TYPE_OFFSET_DATA, NBD_REPLY_FLAG_DONE, 8 + r->len);
                m.offset = htobe64(r->offset);
                memcpy(hdr, &m, sizeof(m));
                *ret_data = true;
                return sizeof(m);
        }
        struct nbd_simple_reply h = {
                .magic = htobe32(NBD_SIMPLE_REPLY_MAGIC),
                .error = htobe32(error),
                .cookie = r->cookie,
        };
        memcpy(hdr, &h, sizeof(h));
        *ret_data = !error && r->type == NBD_CMD_READ && r->len > 0;
        return sizeof(h);
}

int nbd_reply_block_status(struct nbd_conn *c, uint64_t cookie, const uint32_t *desc, size_t n) {
        struct {
                struct nbd_structured_reply h;
                uint32_t context;
        } __attribute__((packed)) m;

        chunk_hdr(&m.h, cookie, NBD_REPLY_TYPE_BLOCK_STATUS, NBD_REPLY_FLAG_DONE, (uint32_t) (4 + 8 * n));
        m.context = htobe32(NBD_META_BASE_ALLOCATION);
        struct iovec iov[2] = { { &m, sizeof(m) }, { (void *) desc, 8 * n } };
        return conn_sendv(c, iov, 2);
}
