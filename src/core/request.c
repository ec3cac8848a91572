/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The request path every call to a node takes: range checks, statistics, splitting to the node's
 * maximum request size, read-modify-write for unaligned requests, FUA and zeroing fallbacks. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "core/core.h"

#define ZERO_BUF_SIZE (1u << 20)

static void *g_zero_buf;
static pthread_once_t g_zero_once = PTHREAD_ONCE_INIT;

static void zero_buf_init(void) {
        g_zero_buf = orion_alloc_aligned(ZERO_BUF_SIZE);
        if (g_zero_buf)
                memset(g_zero_buf, 0, ZERO_BUF_SIZE);
}

void *orion_alloc_aligned(size_t len) {
        void *p = NULL;
        if (posix_memalign(&p, 4096, len ? len : 4096) != 0)
                return NULL;
        return p;
}

/* One call of a node op on an aligned range within max_size, with statistics. */
static int call_op(struct orion_bdev *b, enum orion_op op, void *buf, uint64_t len, uint64_t off, uint32_t flags) {
        const struct orion_bdev_ops *o = b->type->ops;
        uint64_t t0 = now_ns();
        int r;
        switch (op) {
        case ORION_OP_READ: r = o->pread(b, buf, len, off, flags); break;
        case ORION_OP_WRITE: r = o->pwrite(b, buf, len, off, flags); break;
        case ORION_OP_DISCARD: r = o->discard(b, len, off, flags); break;
        case ORION_OP_WRITE_ZEROES: r = o->write_zeroes(b, len, off, flags); break;
        default: r = -EINVAL; break;
        }
        r = bdev_op_result(r);
        stats_record(&b->stats, op, r == 0 ? len : 0, r, now_ns() - t0);
        return r;
}

/* Aligned range, split to max_size. */
static int split_op(struct orion_bdev *b, enum orion_op op, void *buf, uint64_t len, uint64_t off, uint32_t flags) {
        uint64_t m = bdev_max_chunk(b);
        while (len) {
                uint64_t n = len < m ? len : m;
                int r = call_op(b, op, buf, n, off, flags);
                if (r < 0)
                        return r;
                if (buf)
                        buf = (char *) buf + n;
                len -= n;
                off += n;
        }
        return 0;
}

static pthread_mutex_t *rmw_lock_for(struct orion_bdev *b, uint64_t block) {
        return &b->rmw_lock[(block * 0x9E3779B97F4A7C15ULL) >> 58 & (RMW_LOCKS - 1)];
}

/* Read-modify-write of part of one block: copy len bytes (src, or zeroes if src is NULL)
 * to offset `in` inside the block at boff. */
static int rmw_block(struct orion_bdev *b, uint64_t boff, uint32_t in, const void *src, uint64_t len,
                     uint32_t flags) {
        uint32_t bs = b->geom.block_size;
        _cleanup_free_ char *tmp = orion_alloc_aligned(bs);
        if (!tmp)
                return -ENOMEM;
        LOCK_GUARD(rmw_lock_for(b, boff / bs));
        int r = call_op(b, ORION_OP_READ, tmp, bs, boff, 0);
        if (r < 0)
                return r;
        if (src)
                memcpy(tmp + in, src, len);
        else
                memset(tmp + in, 0, len);
        return call_op(b, ORION_OP_WRITE, tmp, bs, boff, flags);
}

static int read_partial(struct orion_bdev *b, char *dst, uint64_t boff, uint32_t in, uint64_t len) {
        uint32_t bs = b->geom.block_size;
        _cleanup_free_ char *tmp = orion_alloc_aligned(bs);
        if (!tmp)
                return -ENOMEM;
        int r = call_op(b, ORION_OP_READ, tmp, bs, boff, 0);
        if (r < 0)
                return r;
        memcpy(dst, tmp + in, len);
        return 0;
}

/* Walk [off, off+len) as an unaligned head, an aligned body and an unaligned tail. */
struct span {
        uint64_t head_len, body_off, body_len, tail_len;
};
static struct span split_span(uint32_t bs, uint64_t len, uint64_t off) {
        struct span s = { 0 };
        uint32_t in = off % bs;
        if (in) {
                s.head_len = bs - in < len ? bs - in : len;
        }
        s.body_off = off + s.head_len;
        uint64_t rest = len - s.head_len;
        s.body_len = ALIGN_DOWN(rest, (uint64_t) bs);
        s.tail_len = rest - s.body_len;
        return s;
}

int orion_bdev_pread(struct orion_bdev *b, void *buf, uint64_t len, uint64_t off, uint32_t flags) {
        int r = bdev_check_range(b, len, off, false);
        if (r < 0 || len == 0)
                return r;
        uint32_t bs = b->geom.block_size;
        if (((off | len) & (bs - 1)) == 0)
                return split_op(b, ORION_OP_READ, buf, len, off, 0);

        struct span s = split_span(bs, len, off);
        char *p = buf;
        if (s.head_len) {
                r = read_partial(b, p, ALIGN_DOWN(off, (uint64_t) bs), off % bs, s.head_len);
                if (r < 0)
                        return r;
        }
        if (s.body_len) {
                r = split_op(b, ORION_OP_READ, p + s.head_len, s.body_len, s.body_off, 0);
                if (r < 0)
                        return r;
        }
        if (s.tail_len)
                r = read_partial(b, p + s.head_len + s.body_len, s.body_off + s.body_len, 0, s.tail_len);
        return r;
}

static int fua_fallback(struct orion_bdev *b, uint32_t *flags) {
        /* Without native FUA the write goes out plain and a flush makes it durable. */
        if ((*flags & ORION_FUA) && !(b->caps & ORION_CAP_FUA)) {
                *flags &= ~(uint32_t) ORION_FUA;
                return 1;
        }
        return 0;
}

/* Writes (data, or zeroes when src is NULL) with RMW at unaligned edges. body_fn does the body. */
static int write_edges(struct orion_bdev *b, const char *src, uint64_t len, uint64_t off, uint32_t flags,
                       int (*body_fn)(struct orion_bdev *, const char *, uint64_t, uint64_t, uint32_t)) {
        uint32_t bs = b->geom.block_size;
        struct span s = split_span(bs, len, off);
        int r;
        if (s.head_len) {
                r = rmw_block(b, ALIGN_DOWN(off, (uint64_t) bs), off % bs, src, s.head_len, flags);
                if (r < 0)
                        return r;
        }
        if (s.body_len) {
                r = body_fn(b, src ? src + s.head_len : NULL, s.body_len, s.body_off, flags);
                if (r < 0)
                        return r;
        }
        if (s.tail_len) {
                r = rmw_block(b, s.body_off + s.body_len, 0, src ? src + s.head_len + s.body_len : NULL, s.tail_len,
                              flags);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int write_body(struct orion_bdev *b, const char *src, uint64_t len, uint64_t off, uint32_t flags) {
        return split_op(b, ORION_OP_WRITE, (void *) src, len, off, flags);
}

int orion_bdev_pwrite(struct orion_bdev *b, const void *buf, uint64_t len, uint64_t off, uint32_t flags) {
        if (b->caps & ORION_CAP_READONLY || !b->type->ops->pwrite)
                return -EROFS;
        int r = bdev_check_range(b, len, off, true);
        if (r < 0 || len == 0)
                return r;
        bool flush = fua_fallback(b, &flags);
        r = write_edges(b, buf, len, off, flags, write_body);
        if (r == 0 && flush)
                r = orion_bdev_flush(b, 0);
        return r;
}

int orion_bdev_flush(struct orion_bdev *b, uint32_t flags) {
        uint64_t t0 = now_ns();
        int r = 0;
        if (b->type->ops->flush) {
                r = bdev_op_result(b->type->ops->flush(b, flags));
        } else {
                /* Default: flush every child. Copy the list: attach/release may change it. */
                pthread_mutex_lock(&b->lock);
                size_t n = b->nchildren;
                struct orion_bdev **ch = n ? malloc(n * sizeof *ch) : NULL;
                if (ch)
                        memcpy(ch, b->children, n * sizeof *ch);
                pthread_mutex_unlock(&b->lock);
                if (n && !ch)
                        return -ENOMEM;
                for (size_t i = 0; i < n; i++) {
                        int q = orion_bdev_flush(ch[i], flags);
                        if (q < 0 && r == 0)
                                r = q;
                }
                free(ch);
        }
        stats_record(&b->stats, ORION_OP_FLUSH, 0, r, now_ns() - t0);
        return r;
}

int orion_bdev_discard(struct orion_bdev *b, uint64_t len, uint64_t off, uint32_t flags) {
        if (b->caps & ORION_CAP_READONLY)
                return -EROFS;
        int r = bdev_check_range(b, len, off, true);
        if (r < 0)
                return r;
        if (!b->type->ops->discard || !(b->caps & ORION_CAP_DISCARD))
                return -EOPNOTSUPP;
        /* Discard is advisory: only whole blocks are given to the node. */
        uint32_t bs = b->geom.block_size;
        uint64_t start = ALIGN_UP(off, (uint64_t) bs), end = ALIGN_DOWN(off + len, (uint64_t) bs);
        if (start >= end)
                return 0;
        bool flush = fua_fallback(b, &flags);
        r = split_op(b, ORION_OP_DISCARD, NULL, end - start, start, flags);
        if (r == 0 && flush)
                r = orion_bdev_flush(b, 0);
        return r;
}

static int zero_body(struct orion_bdev *b, const char *src, uint64_t len, uint64_t off, uint32_t flags) {
        (void) src;
        if (b->type->ops->write_zeroes && (b->caps & ORION_CAP_WRITE_ZEROES))
                return split_op(b, ORION_OP_WRITE_ZEROES, NULL, len, off, flags);

        /* Fallback: write zero buffers, at most max_size and 1 MiB at a time. */
        pthread_once(&g_zero_once, zero_buf_init);
        if (!g_zero_buf)
                return -ENOMEM;
        uint64_t m = bdev_max_chunk(b) < ZERO_BUF_SIZE ? bdev_max_chunk(b) : ZERO_BUF_SIZE;
        uint32_t wflags = flags & ORION_FUA;
        while (len) {
                uint64_t n = len < m ? len : m;
                int r = call_op(b, ORION_OP_WRITE, g_zero_buf, n, off, wflags);
                if (r < 0)
                        return r;
                len -= n;
                off += n;
        }
        return 0;
}

int orion_bdev_write_zeroes(struct orion_bdev *b, uint64_t len, uint64_t off, uint32_t flags) {
        if (b->caps & ORION_CAP_READONLY || !b->type->ops->pwrite)
                return -EROFS;
        int r = bdev_check_range(b, len, off, true);
        if (r < 0 || len == 0)
                return r;
        if ((flags & ORION_FAST_ZERO) && !(b->caps & ORION_CAP_FAST_ZERO && b->type->ops->write_zeroes))
                return -ENOTSUP;
        bool flush = fua_fallback(b, &flags);
        r = write_edges(b, NULL, len, off, flags, zero_body);
        if (r == 0 && flush)
                r = orion_bdev_flush(b, 0);
        return r;
}

static int data_extent(struct orion_extents *ext, uint64_t off, uint64_t len) {
        int r = orion_extents_add(ext, off, len, 0);
        return r == -E2BIG ? 0 : r;
}

int orion_bdev_block_status(struct orion_bdev *b, uint64_t len, uint64_t off, struct orion_extents *ext) {
        int r = bdev_check_range(b, len, off, false);
        if (r < 0 || len == 0)
                return r;
        if (!b->type->ops->block_status || !(b->caps & ORION_CAP_BLOCK_STATUS))
                return data_extent(ext, off, len);
        uint32_t bs = b->geom.block_size;
        uint64_t start = ALIGN_DOWN(off, (uint64_t) bs);
        uint64_t end = ALIGN_UP(off + len, (uint64_t) bs);
        size_t before = orion_extents_count(ext);
        r = bdev_op_result(b->type->ops->block_status(b, end - start, start, ext));
        if (r < 0)
                return r;
        if (orion_extents_count(ext) == before) /* a node that said nothing: all data */
                return data_extent(ext, off, len);
        return 0;
}

int orion_bdev_ctl(struct orion_bdev *b, const char *verb, struct json_object *args,
                   struct json_object **ret_reply, struct orion_error *err) {
        if (!b->type->ops->ctl)
                return orion_error_set(err, EOPNOTSUPP, "node '%s' (%s) has no management verbs", b->name,
                                       b->type->name);
        int r = b->type->ops->ctl(b, verb, args, ret_reply, err);
        if (r < 0 && !orion_error_is_set(err))
                orion_error_set(err, -r, "node '%s': %s failed: %m", b->name, verb);
        return r < 0 ? r : 0;
}

/* ---- Batches ------------------------------------------------------------------------------- */
static int run_one(struct orion_req *q) {
        switch (q->op) {
        case ORION_OP_READ: return orion_bdev_pread(q->bdev, q->buf, q->len, q->off, q->flags);
        case ORION_OP_WRITE: return orion_bdev_pwrite(q->bdev, q->buf, q->len, q->off, q->flags);
        case ORION_OP_FLUSH: return orion_bdev_flush(q->bdev, q->flags);
        case ORION_OP_DISCARD: return orion_bdev_discard(q->bdev, q->len, q->off, q->flags);
        case ORION_OP_WRITE_ZEROES: return orion_bdev_write_zeroes(q->bdev, q->len, q->off, q->flags);
        default: return -EINVAL;
        }
}

/* Can this request go to the node's native .submit as it is? */
static bool native_ok(struct orion_req *q) {
        struct orion_bdev *b = q->bdev;
        uint32_t bs = b->geom.block_size;
        if (q->op != ORION_OP_READ && q->op != ORION_OP_WRITE && q->op != ORION_OP_FLUSH)
                return false;
        if (q->op == ORION_OP_FLUSH)
                return true;
        if (q->op == ORION_OP_WRITE && (b->caps & ORION_CAP_READONLY))
                return false;
        if ((q->flags & ORION_FUA) && !(b->caps & ORION_CAP_FUA))
                return false;
        if (((q->off | q->len) & (bs - 1)) || q->len == 0 || q->len > bdev_max_chunk(b))
                return false;
        return bdev_check_range(b, q->len, q->off, q->op == ORION_OP_WRITE) == 0;
}

struct group {
        struct orion_req *reqs; /* for native: contiguous copy; else one request */
        struct orion_req **orig;
        size_t n;
        bool native;
};

static void run_group(void *arg) {
        struct group *g = arg;
        if (g->native) {
                struct orion_bdev *b = g->reqs[0].bdev;
                uint64_t t0 = now_ns();
                int r = bdev_op_result(b->type->ops->submit(b, g->reqs, g->n));
                uint64_t dt = now_ns() - t0;
                bool any = false;
                for (size_t i = 0; i < g->n; i++)
                        any |= g->reqs[i].result < 0;
                for (size_t i = 0; i < g->n; i++) {
                        /* A node that failed the batch without saying which request: all failed. */
                        int ri = bdev_op_result(g->reqs[i].result);
                        if (r < 0 && !any)
                                ri = r;
                        g->orig[i]->result = ri;
                        stats_record(&b->stats, g->reqs[i].op, ri == 0 ? g->reqs[i].len : 0, ri, dt);
                }
        } else {
                for (size_t i = 0; i < g->n; i++)
                        g->orig[i]->result = run_one(g->orig[i]);
        }
}

int pool_run_batch(void (*fn)(void *), void **args, size_t n); /* pool.c */

int orion_submit(struct orion_req *reqs, size_t n) {
        if (n == 0)
                return 0;
        if (n == 1) {
                reqs[0].result = run_one(&reqs[0]);
                return reqs[0].result;
        }
        struct group *groups = calloc(n, sizeof *groups);
        struct orion_req *copies = calloc(n, sizeof *copies);
        struct orion_req **orig = calloc(n, sizeof *orig);
        void **args = calloc(n, sizeof *args);
        int ret = 0;
        if (!groups || !copies || !orig || !args) {
                ret = -ENOMEM;
                goto out;
        }
        /* Native requests of one node form one group; every other request is its own group. */
        size_t ng = 0, used = 0;
        bool *taken = calloc(n, sizeof *taken);
        if (!taken) {
                ret = -ENOMEM;
                goto out;
        }
        for (size_t i = 0; i < n; i++) {
                if (taken[i])
                        continue;
                struct group *g = &groups[ng++];
                g->reqs = &copies[used];
                g->orig = &orig[used];
                if (reqs[i].bdev->type->ops->submit && native_ok(&reqs[i])) {
                        g->native = true;
                        for (size_t j = i; j < n; j++)
                                if (!taken[j] && reqs[j].bdev == reqs[i].bdev && native_ok(&reqs[j])) {
                                        taken[j] = true;
                                        copies[used] = reqs[j];
                                        copies[used].result = 0;
                                        orig[used++] = &reqs[j];
                                        g->n++;
                                }
                } else {
                        taken[i] = true;
                        copies[used] = reqs[i];
                        orig[used++] = &reqs[i];
                        g->n = 1;
                }
        }
        free(taken);
        for (size_t i = 0; i < ng; i++)
                args[i] = &groups[i];
        ret = pool_run_batch(run_group, args, ng);
        if (ret == 0)
                for (size_t i = 0; i < n; i++)
                        if (reqs[i].result < 0) {
                                ret = reqs[i].result;
                                break;
                        }
out:
        free(groups);
        free(copies);
        free(orig);
        free(args);
        return ret;
}

/* ---- Asynchronous requests ------------------------------------------------------------------
 * A native request gets a small wrapper so that the core can time it and keep the node's
 * statistics when it completes; everything else runs the synchronous path on the pool. */
struct async_wrap {
        struct orion_areq inner; /* what the node sees */
        struct orion_areq *outer;
        uint64_t t0;
};

static void async_native_done(struct orion_areq *inner) {
        struct async_wrap *w = (struct async_wrap *) inner;
        struct orion_areq *a = w->outer;
        struct orion_bdev *b = a->req.bdev;
        int r = bdev_op_result(inner->req.result);

        stats_record(&b->stats, a->req.op, r == 0 ? a->req.len : 0, r, now_ns() - w->t0);
        free(w);
        a->req.result = r;
        a->done(a);
}

static void async_sync_job(void *arg) {
        struct orion_areq *a = arg;

        a->req.result = run_one(&a->req);
        a->done(a);
}

bool orion_bdev_has_async(const struct orion_bdev *b) {
        return b->type->ops->submit_async != NULL;
}

void orion_submit_async(struct orion_areq *a) {
        struct orion_bdev *b = a->req.bdev;

        if (b->type->ops->submit_async && native_ok(&a->req) &&
            !(a->req.op == ORION_OP_FLUSH && !b->type->ops->flush)) {
                struct async_wrap *w = malloc(sizeof(*w));

                if (w) {
                        w->inner = (struct orion_areq) { .req = a->req, .done = async_native_done };
                        w->inner.req.result = 0;
                        w->outer = a;
                        w->t0 = now_ns();
                        if (b->type->ops->submit_async(b, &w->inner) == 0)
                                return;
                        free(w);
                }
        }
        if (pool_queue(async_sync_job, a) < 0)
                async_sync_job(a); /* no pool (shutting down, no memory): run it here */
}
