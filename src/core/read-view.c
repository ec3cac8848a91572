/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Zero-copy reads (orion_bdev_read_view): a node's own memory handed to a consumer piece by
 * piece, or, for nodes without the op, pieces pread into a per-thread buffer. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "common/cleanup.h"
#include "core/core.h"

/* The default path's piece: small enough that the consumer finds it still in the CPU cache. */
#define VIEW_PIECE (256u << 10)

typedef int (*view_fn)(void *arg, const void *data, uint64_t n);

/* ---- Default: pread into a buffer ---------------------------------------------------------
 * One buffer per thread, kept (a fresh 256 KiB allocation per request costs page faults) and
 * freed at thread exit; a nested call (fn reading another node this way) allocates its own. */
static pthread_key_t g_view_key;
static pthread_once_t g_view_once = PTHREAD_ONCE_INIT;
static __thread void *t_view_buf;
static __thread bool t_view_busy;

static void view_key_init(void) {
        (void) pthread_key_create(&g_view_key, free);
}

static void *view_buf_get(void) {
        if (t_view_busy)
                return orion_alloc_aligned(VIEW_PIECE);
        if (!t_view_buf) {
                t_view_buf = orion_alloc_aligned(VIEW_PIECE);
                if (!t_view_buf)
                        return NULL;
                (void) pthread_once(&g_view_once, view_key_init);
                (void) pthread_setspecific(g_view_key, t_view_buf);
        }
        t_view_busy = true;
        return t_view_buf;
}

static void view_buf_put(void *p) {
        if (p == t_view_buf)
                t_view_busy = false;
        else
                free(p);
}

static int view_default(struct orion_bdev *b, uint64_t len, uint64_t off, view_fn fn, void *arg) {
        void *buf = view_buf_get();
        int r = 0;

        if (!buf)
                return -ENOMEM;
        while (len && r >= 0) {
                uint64_t n = MIN(len, (uint64_t) VIEW_PIECE);
                r = orion_bdev_pread(b, buf, n, off, 0); /* range checks, RMW, statistics */
                if (r >= 0)
                        r = fn(arg, buf, n);
                off += n;
                len -= n;
        }
        view_buf_put(buf);
        return r < 0 ? r : 0;
}

/* ---- Native: the node's .read_view --------------------------------------------------------
 * fn is wrapped to tell its errors and its time apart from the node's (statistics count the
 * node's), and to check that the node covered the range exactly. */
struct view_call {
        view_fn fn;
        void *arg;
        uint64_t want, seen;
        uint64_t fn_ns;
        int fn_err;
};

static int view_wrap(void *arg, const void *data, uint64_t n) {
        struct view_call *c = arg;
        uint64_t t0 = now_ns();
        int r;

        if (n > c->want - c->seen)
                return -EIO; /* a node reporting past the range it was asked for */
        c->seen += n;
        r = c->fn(c->arg, data, n);
        c->fn_ns += now_ns() - t0;
        if (r < 0)
                c->fn_err = r;
        return r < 0 ? r : 0;
}

static int view_native(struct orion_bdev *b, uint64_t len, uint64_t off, view_fn fn, void *arg) {
        uint64_t max = bdev_max_chunk(b);

        while (len) {
                struct view_call c = { .fn = fn, .arg = arg, .want = MIN(len, max) };
                uint64_t t0 = now_ns();
                int r = bdev_op_result(b->type->ops->read_view(b, c.want, off, view_wrap, &c));

                if (r == 0 && c.seen != c.want)
                        r = -EIO; /* a node that left part of the range out */
                if (c.fn_err && r == c.fn_err) {
                        stats_record(&b->stats, ORION_OP_READ, c.seen, 0, now_ns() - t0 - c.fn_ns);
                        return r;
                }
                stats_record(&b->stats, ORION_OP_READ, r == 0 ? c.want : 0, r, now_ns() - t0 - c.fn_ns);
                if (r < 0)
                        return r;
                off += c.want;
                len -= c.want;
        }
        return 0;
}

int orion_bdev_read_view(struct orion_bdev *b, uint64_t len, uint64_t off, view_fn fn, void *arg) {
        uint32_t bs = b->geom.block_size;
        int r = bdev_check_range(b, len, off, false);

        if (r < 0)
                return r;
        if (len == 0)
                return 0;
        if (b->type->ops->read_view && ((off | len) & (bs - 1)) == 0)
                return view_native(b, len, off, fn, arg);
        return view_default(b, len, off, fn, arg);
}
