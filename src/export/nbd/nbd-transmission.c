/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* NBD transmission phase: one reader per connection parses request headers and payloads, and
 * each request runs on the worker pool; replies go out in completion order (any order is
 * allowed) under the connection's write lock. */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "export/nbd/nbd-internal.h"

/* ---- Validation ----------------------------------------------------------------------------- */

static uint16_t allowed_flags(const struct nbd_conn *c, uint16_t type) {
        /* FUA is accepted on every command (the spec asks servers to tolerate it). */
        switch (type) {
        case NBD_CMD_READ:
                return NBD_CMD_FLAG_FUA | (c->structured ? NBD_CMD_FLAG_DF : 0);
        case NBD_CMD_WRITE_ZEROES:
                return NBD_CMD_FLAG_FUA | NBD_CMD_FLAG_NO_HOLE | NBD_CMD_FLAG_FAST_ZERO;
        case NBD_CMD_BLOCK_STATUS:
                return NBD_CMD_FLAG_FUA | NBD_CMD_FLAG_REQ_ONE;
        default:
                return NBD_CMD_FLAG_FUA;
        }
}

static bool is_write_cmd(uint16_t type) {
        return type == NBD_CMD_WRITE || type == NBD_CMD_TRIM || type == NBD_CMD_WRITE_ZEROES;
}

/* 0 if the request may run, else the negative errno to reply with. */
int nbd_validate(const struct nbd_conn *c, const struct nbd_req *r) {
        switch (r->type) {
        case NBD_CMD_READ:
        case NBD_CMD_WRITE:
        case NBD_CMD_FLUSH:
        case NBD_CMD_CACHE:
        case NBD_CMD_WRITE_ZEROES:
                break;
        case NBD_CMD_TRIM:
                if (!(c->tflags & NBD_FLAG_SEND_TRIM) && !c->readonly)
                        return -EINVAL;
                break;
        case NBD_CMD_BLOCK_STATUS:
                if (!c->meta_base_allocation)
                        return -EINVAL;
                break;
        default:
                return -EINVAL;
        }
        if (r->flags & ~allowed_flags(c, r->type))
                return -EINVAL;
        if (c->readonly && is_write_cmd(r->type))
                return -EPERM;
        if (r->type == NBD_CMD_FLUSH)
                return 0;
        if (r->offset > c->size || r->len > c->size - r->offset)
                return (r->type == NBD_CMD_WRITE || r->type == NBD_CMD_WRITE_ZEROES) ? -ENOSPC : -EINVAL;
        if (r->type == NBD_CMD_READ && r->len > NBD_MAX_REQUEST)
                return (r->flags & NBD_CMD_FLAG_DF) ? -EOVERFLOW : -EINVAL;
        return 0;
}

/* ---- Commands ------------------------------------------------------------------------------- */

/* Cut [off, off+len) into data and hole segments from the node's block status. Falls back to
 * one data segment on any trouble: that is always a correct answer. */
static size_t read_segments(struct nbd_conn *c, const struct nbd_req *r, struct nbd_seg **ret) {
        struct orion_extents *ext = NULL;
        struct nbd_seg *segs = NULL;
        size_t n = 0, cnt;
        uint64_t pos = r->offset, end = r->offset + r->len;

        *ret = NULL;
        if (r->len < NBD_SPARSE_READ_MIN || (r->flags & NBD_CMD_FLAG_DF) || !c->structured ||
            !(orion_bdev_caps(c->node) & ORION_CAP_BLOCK_STATUS))
                goto whole;
        ext = orion_extents_new(r->offset, 256);
        if (!ext || orion_bdev_block_status(c->node, r->len, r->offset, ext) < 0)
                goto whole;
        cnt = orion_extents_count(ext);
        segs = calloc(cnt + 1, sizeof(*segs));
        if (!segs)
                goto whole;
        for (size_t i = 0; i < cnt && pos < end; i++) {
                uint64_t eo, el;
                uint32_t ef;
                if (!orion_extents_get(ext, i, &eo, &el, &ef) || eo != pos || el == 0)
                        break;
                el = MIN(el, end - pos);
                bool hole = ef & ORION_EXTENT_ZERO;
                if (n > 0 && segs[n - 1].hole == hole)
                        segs[n - 1].len += (uint32_t) el;
                else
                        segs[n++] = (struct nbd_seg) { .off = pos, .len = (uint32_t) el, .hole = hole };
                pos += el;
        }
        if (pos < end) {
                /* The node stopped early: the rest is read as data. */
                if (n > 0 && !segs[n - 1].hole)
                        segs[n - 1].len += (uint32_t) (end - pos);
                else
                        segs[n++] = (struct nbd_seg) { .off = pos, .len = (uint32_t) (end - pos), .hole = false };
        }
        orion_extents_free(ext);
        *ret = segs;
        return n;
whole:
        orion_extents_free(ext);
        free(segs);
        return 0;
}

static int cmd_read(struct nbd_req *r) {
        struct nbd_conn *c = r->c;
        _cleanup_free_ struct nbd_seg *segs = NULL;
        struct nbd_seg whole = { .off = r->offset, .len = r->len, .hole = false };
        size_t n;
        int e;

        void *buf = r->buf;

        if (r->len == 0)
                return nbd_reply_status(c, r->cookie, r->type, 0);
        n = read_segments(c, r, &segs);
        if (n == 0) {
                segs = NULL;
                n = 1;
                e = orion_bdev_pread(c->node, buf, r->len, r->offset, 0);
        } else {
                e = 0;
                for (size_t i = 0; i < n && e >= 0; i++)
                        if (!segs[i].hole)
                                e = orion_bdev_pread(c->node, (char *) buf + (segs[i].off - r->offset), segs[i].len,
                                                     segs[i].off, 0);
        }
        if (e < 0) {
                orion_log_ratelimited(ORION_LOG_ERR, "nbd: %s: read of %u bytes at %llu failed: %s", c->peer,
                                      r->len, (unsigned long long) r->offset, strerror(-e));
                return nbd_reply_status(c, r->cookie, r->type, e);
        }
        return nbd_reply_read(c, r, buf, segs ? segs : &whole, n);
}

/* CACHE is a hint: read the range (in pieces of NBD_CACHE_CHUNK) so that caching layers
 * below keep it. */
static int cmd_cache(struct nbd_req *r) {
        uint64_t chunk = MIN(r->len, NBD_CACHE_CHUNK);
        void *buf = r->buf;
        int e = 0;

        if (r->len == 0)
                return 0;
        for (uint64_t done = 0; done < r->len && e >= 0; done += chunk)
                e = orion_bdev_pread(r->c->node, buf, MIN(chunk, r->len - done), r->offset + done, 0);
        return e;
}

static int cmd_block_status(struct nbd_req *r) {
        struct nbd_conn *c = r->c;
        bool one = r->flags & NBD_CMD_FLAG_REQ_ONE;
        uint64_t pos = r->offset, end = r->offset + r->len;
        size_t n = 0, cnt;
        int e;

        if (r->len == 0)
                return nbd_reply_status(c, r->cookie, r->type, -EINVAL);
        struct orion_extents *ext = orion_extents_new(r->offset, one ? 1 : NBD_MAX_EXTENTS);
        if (!ext)
                return nbd_reply_status(c, r->cookie, r->type, -ENOMEM);
        e = orion_bdev_block_status(c->node, r->len, r->offset, ext);
        cnt = orion_extents_count(ext);
        _cleanup_free_ uint32_t *desc = e >= 0 ? calloc(MAX(cnt, (size_t) 1) * 2, sizeof(uint32_t)) : NULL;
        if (e >= 0 && !desc)
                e = -ENOMEM;
        for (size_t i = 0; e >= 0 && i < cnt && pos < end; i++) {
                uint64_t eo, el;
                uint32_t ef;
                if (!orion_extents_get(ext, i, &eo, &el, &ef) || eo != pos || el == 0)
                        break;
                el = MIN(el, end - pos); /* <= r->len, so it fits the 32-bit descriptor */
                desc[2 * n] = htobe32((uint32_t) el);
                desc[2 * n + 1] = htobe32(ef & (NBD_STATE_HOLE | NBD_STATE_ZERO));
                n++;
                pos += el;
                if (one)
                        break;
        }
        orion_extents_free(ext);
        if (e >= 0 && n == 0) {
                orion_log_ratelimited(ORION_LOG_ERR, "nbd: '%s' returned no extents at %llu",
                                      orion_bdev_name(c->node), (unsigned long long) r->offset);
                e = -EIO;
        }
        if (e < 0)
                return nbd_reply_status(c, r->cookie, r->type, e);
        return nbd_reply_block_status(c, r->cookie, desc, n);
}

uint32_t nbd_orion_flags(uint16_t nbd_flags) {
        uint32_t f = 0;
        if (nbd_flags & NBD_CMD_FLAG_FUA)
                f |= ORION_FUA;
        if (nbd_flags & NBD_CMD_FLAG_NO_HOLE)
                f |= ORION_NO_HOLE;
        if (nbd_flags & NBD_CMD_FLAG_FAST_ZERO)
                f |= ORION_FAST_ZERO;
        return f;
}

/* Run one validated request and send its reply. */
void nbd_run_request(struct nbd_req *r) {
        struct nbd_conn *c = r->c;
        int e = 0;

        switch (r->type) {
        case NBD_CMD_READ:
                (void) cmd_read(r);
                return;
        case NBD_CMD_BLOCK_STATUS:
                (void) cmd_block_status(r);
                return;
        case NBD_CMD_WRITE:
                if (r->len > 0)
                        e = orion_bdev_pwrite(c->node, r->buf, r->len, r->offset, nbd_orion_flags(r->flags));
                if (e >= 0)
                        atomic_fetch_add(&c->bytes_written, r->len);
                break;
        case NBD_CMD_FLUSH:
                e = orion_bdev_flush(c->node, 0);
                break;
        case NBD_CMD_TRIM:
                if (r->len > 0)
                        e = orion_bdev_discard(c->node, r->len, r->offset, nbd_orion_flags(r->flags));
                if (e == -EOPNOTSUPP)
                        e = 0; /* advisory: leaving the data is a correct trim */
                break;
        case NBD_CMD_WRITE_ZEROES:
                if (r->len > 0)
                        e = orion_bdev_write_zeroes(c->node, r->len, r->offset, nbd_orion_flags(r->flags));
                /* ENOTSUP is reserved for FAST_ZERO; anything else unsupported is an I/O error. */
                if (e == -EOPNOTSUPP || e == -ENOTSUP)
                        e = (r->flags & NBD_CMD_FLAG_FAST_ZERO) ? -ENOTSUP : -EIO;
                break;
        case NBD_CMD_CACHE:
                e = cmd_cache(r);
                break;
        }
        if (e < 0 && !(r->type == NBD_CMD_WRITE_ZEROES && e == -ENOTSUP))
                orion_log_ratelimited(ORION_LOG_ERR, "nbd: %s: command %u (%u bytes at %llu) failed: %s", c->peer,
                                      r->type, r->len, (unsigned long long) r->offset, strerror(-e));
        (void) nbd_reply_status(c, r->cookie, r->type, e);
}

/* ---- Worker threads -------------------------------------------------------------------------
 * Like nbdkit's parallel model: each thread of the connection takes the read lock, reads one
 * request (header and payload), releases the lock and carries the request to its reply. There
 * is no hand-off between threads, and the number of threads bounds the requests (and payload
 * bytes) in flight. A connection starts with one thread and adds one whenever all are busy. */

struct tbuf {
        void *p;
        size_t cap;
};

/* A buffer of at least len bytes, aligned for O_DIRECT, kept between requests when small. */
static void *tbuf_get(struct tbuf *b, size_t len) {
        if (len <= b->cap)
                return b->p;
        free(b->p);
        b->cap = MAX(ALIGN_UP(len, (size_t) 65536), (size_t) 65536);
        b->p = orion_alloc_aligned(b->cap);
        if (!b->p)
                b->cap = 0;
        return b->p;
}

static void tbuf_trim(struct tbuf *b) {
        if (b->cap > NBD_KEEP_BUFFER) {
                free(b->p);
                b->p = NULL;
                b->cap = 0;
        }
}

int nbd_req_decode(struct nbd_conn *c, const struct nbd_request *h, struct nbd_req *req) {
        if (be32toh(h->magic) != NBD_REQUEST_MAGIC) {
                orion_info("nbd: %s: bad request magic 0x%08x, disconnecting", c->peer, be32toh(h->magic));
                return -EPROTO;
        }
        *req = (struct nbd_req) {
                .c = c,
                .type = be16toh(h->type),
                .flags = be16toh(h->flags),
                .cookie = h->cookie,
                .offset = be64toh(h->offset),
                .len = be32toh(h->length),
        };
        atomic_fetch_add(&c->requests, 1);
        return 0;
}

/* Read one request. 1 = run it, 2 = already answered (refused), 0 = DISC / end of stream,
 * -errno = drop the connection. Called with read_lock held. */
static int read_request(struct nbd_conn *c, struct nbd_req *req, struct tbuf *tb) {
        struct nbd_request h;
        int e;

        e = nbd_recv_full(c, &h, sizeof(h));
        if (e < 0)
                return e == -ECONNRESET ? 0 : e;
        e = nbd_req_decode(c, &h, req);
        if (e < 0)
                return e;
        if (req->type == NBD_CMD_DISC)
                return 0;

        e = nbd_validate(c, req);
        if (req->type == NBD_CMD_WRITE) {
                if (req->len > NBD_MAX_REQUEST && e == 0)
                        e = -EINVAL;
                if (e == 0 && req->len > 0 && !(req->buf = tbuf_get(tb, req->len)))
                        e = -ENOMEM;
                if (e < 0) {
                        /* Keep the stream in step by consuming the payload, but never buffer
                         * more than we advertised; past a sane bound, give up on the client. */
                        if (req->len > NBD_MAX_DRAIN) {
                                orion_info("nbd: %s: write of %u bytes refused, disconnecting", c->peer, req->len);
                                return -EPROTO;
                        }
                        if (nbd_recv_discard(c, req->len) < 0)
                                return 0;
                } else if (req->len > 0 && nbd_recv_full(c, req->buf, req->len) < 0)
                        return 0;
        }
        if (e < 0)
                return nbd_reply_status(c, req->cookie, req->type, e) < 0 ? 0 : 2;
        if ((req->type == NBD_CMD_READ || req->type == NBD_CMD_CACHE) && req->len > 0 &&
            !(req->buf = tbuf_get(tb, req->type == NBD_CMD_READ ? req->len : MIN(req->len, NBD_CACHE_CHUNK))))
                return nbd_reply_status(c, req->cookie, req->type, -ENOMEM) < 0 ? 0 : 2;
        return 1;
}

static void *worker_thread(void *arg);

/* Called after taking a request: if no thread is left to read the next one, start another. */
static void maybe_add_thread(struct nbd_conn *c) {
        if (atomic_load(&c->waiting) > 0)
                return; /* a thread is ready to read the next request (rechecked below) */
        LOCK_GUARD(&c->lock);
        if (c->waiting > 0 || c->nthreads >= nbd_conn_threads || c->nthreads >= NBD_MAX_THREADS)
                return;
        if (pthread_create(&c->threads[c->nthreads], NULL, worker_thread, c) == 0)
                c->nthreads++;
}

static void worker_loop(struct nbd_conn *c) {
        struct tbuf tb = { 0 };

        for (;;) {
                struct nbd_req req;
                int e;

                atomic_fetch_add(&c->waiting, 1);
                pthread_mutex_lock(&c->read_lock);
                atomic_fetch_sub(&c->waiting, 1);
                if (c->stop) {
                        pthread_mutex_unlock(&c->read_lock);
                        break;
                }
                e = read_request(c, &req, &tb);
                if (e <= 0) {
                        c->stop = true;
                        c->result = e;
                }
                pthread_mutex_unlock(&c->read_lock);
                if (e <= 0)
                        break;
                if (e == 1) {
                        maybe_add_thread(c);
                        nbd_run_request(&req);
                }
                tbuf_trim(&tb);
        }
        free(tb.p);
}

static void *worker_thread(void *arg) {
        worker_loop(arg);
        return NULL;
}

int nbd_transmission(struct nbd_conn *c) {
        unsigned n;

        /* A node that completes requests by itself needs no thread per request in flight. */
        if (!c->tls && orion_bdev_has_async(c->node))
                return nbd_async_transmission(c);
        WITH_LOCK(&c->lock)
                c->nthreads = 1; /* this thread */
        worker_loop(c);
        /* DISC or end of stream: the other threads finish (and answer) what they carry. */
        for (unsigned i = 1;; i++) {
                WITH_LOCK(&c->lock)
                        n = c->nthreads;
                if (i >= n)
                        break;
                pthread_join(c->threads[i], NULL);
        }
        return c->result;
}
