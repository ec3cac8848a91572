/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit tests: the core request path — splitting, read-modify-write at every alignment, zeroing
 * and FUA fallbacks, range checks, batches and block status. */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "core/core.h"

#define DISK (256u * 1024)
#define BS 4096u
#define MAXREQ (16u * 1024)

/* "strict": a RAM disk that fails the test on any misaligned or oversize request. */
struct strict {
        unsigned char data[DISK];
        atomic_int reads, writes, flushes, violations;
};

static int check_req(struct strict *s, uint64_t len, uint64_t off) {
        if ((off | len) % BS || len > MAXREQ || len == 0 || off + len > DISK) {
                atomic_fetch_add(&s->violations, 1);
                return -EINVAL;
        }
        return 0;
}
static int strict_pread(struct orion_bdev *b, void *buf, uint64_t len, uint64_t off, uint32_t flags) {
        struct strict *s = orion_bdev_priv(b);
        int r = check_req(s, len, off);
        if (r < 0)
                return r;
        atomic_fetch_add(&s->reads, 1);
        memcpy(buf, s->data + off, len);
        return 0;
}
static int strict_pwrite(struct orion_bdev *b, const void *buf, uint64_t len, uint64_t off, uint32_t flags) {
        struct strict *s = orion_bdev_priv(b);
        int r = check_req(s, len, off);
        if (r < 0)
                return r;
        if (flags & ORION_FUA)
                atomic_fetch_add(&s->violations, 1); /* no native FUA: the core must not pass it */
        atomic_fetch_add(&s->writes, 1);
        memcpy(s->data + off, buf, len);
        return 0;
}
static int strict_flush(struct orion_bdev *b, uint32_t flags) {
        struct strict *s = orion_bdev_priv(b);
        atomic_fetch_add(&s->flushes, 1);
        return 0;
}
static int strict_open(struct orion_bdev *b, const struct orion_params *p, struct orion_error *err) {
        struct orion_geometry g = { .size = DISK, .block_size = BS, .max_size = MAXREQ };
        orion_bdev_set_caps(b, ORION_CAP_FLUSH | (orion_param_bool(p, "ro") ? ORION_CAP_READONLY : 0));
        return orion_bdev_set_geometry(b, &g);
}
static const struct orion_param strict_params[] = { { "ro", ORION_PARAM_BOOL, "off", "read-only" }, { NULL } };
static const struct orion_bdev_ops strict_ops = { .pread = strict_pread, .pwrite = strict_pwrite, .flush = strict_flush };
static const struct orion_plugin strict_type = { .api_version = ORION_PLUGIN_API_VERSION, .name = "strict",
                                                 .params = strict_params, .instance_size = sizeof(struct strict),
                                                 .ops = &strict_ops, .open = strict_open };

static struct orion_bdev *g_b;
static struct strict *g_s;
static unsigned char g_model[DISK];

static void setup(void) {
        struct orion_error err = { 0 };
        ck_assert_int_eq(registry_init(NULL), 0);
        registry_add(&strict_type, &err);
        memset(&err, 0, sizeof err);
        ck_assert_msg(graph_node_add("s0", "strict", NULL, &g_b, &err) == 0, "%s", err.msg);
        g_s = orion_bdev_priv(g_b);
        for (unsigned i = 0; i < DISK; i++)
                g_model[i] = g_s->data[i] = (unsigned char) (i * 7 + 3);
}

static void teardown(void) {
        ck_assert_int_eq(atomic_load(&g_s->violations), 0);
        graph_close_all();
}

static void fill(unsigned char *p, size_t n, unsigned seed) {
        for (size_t i = 0; i < n; i++)
                p[i] = (unsigned char) ((seed * 2654435761u + i * 40503u) >> 7);
}

START_TEST(rmw_every_alignment) {
        static const uint64_t lens[] = { 1, 7, 511, 512, 513, 4095, 4096, 4097, 8191, 12288, 20000, 40961 };
        unsigned char *buf = malloc(64 * 1024), *back = malloc(64 * 1024);
        unsigned seed = 1;
        for (uint64_t off = 0; off < 3 * BS; off += 509) {
                for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
                        uint64_t len = lens[li];
                        fill(buf, len, seed++);
                        ck_assert_int_eq(orion_bdev_pwrite(g_b, buf, len, off + 64 * 1024, 0), 0);
                        memcpy(g_model + off + 64 * 1024, buf, len);
                        ck_assert_int_eq(orion_bdev_pread(g_b, back, len, off + 64 * 1024, 0), 0);
                        ck_assert_msg(memcmp(back, buf, len) == 0, "read-back mismatch off=%llu len=%llu",
                                      (unsigned long long) off, (unsigned long long) len);
                }
        }
        /* Nothing around the writes was disturbed. */
        ck_assert(memcmp(g_s->data, g_model, DISK) == 0);
        free(buf);
        free(back);
}
END_TEST

START_TEST(split_large) {
        unsigned char *buf = malloc(DISK);
        fill(buf, DISK, 99);
        int w0 = atomic_load(&g_s->writes);
        ck_assert_int_eq(orion_bdev_pwrite(g_b, buf, DISK, 0, 0), 0);
        ck_assert_int_eq(atomic_load(&g_s->writes) - w0, DISK / MAXREQ);
        ck_assert(memcmp(g_s->data, buf, DISK) == 0);
        free(buf);
}
END_TEST

START_TEST(ranges) {
        char buf[8192];
        ck_assert_int_eq(orion_bdev_pread(g_b, buf, 4096, DISK - 4095, 0), -EINVAL);
        ck_assert_int_eq(orion_bdev_pwrite(g_b, buf, 4096, DISK - 4095, 0), -ENOSPC);
        ck_assert_int_eq(orion_bdev_pread(g_b, buf, 1, UINT64_MAX, 0), -EINVAL);
        ck_assert_int_eq(orion_bdev_pwrite(g_b, buf, 2, UINT64_MAX - 1, 0), -ENOSPC);
        ck_assert_int_eq(orion_bdev_pread(g_b, buf, 0, DISK, 0), 0);
        ck_assert_int_eq(orion_bdev_pread(g_b, buf, 4096, DISK - 4096, 0), 0);
        ck_assert_int_eq(orion_bdev_discard(g_b, 4096, 0, 0), -EOPNOTSUPP);
}
END_TEST

START_TEST(zero_and_fua) {
        unsigned char back[20000];
        /* No native write_zeroes: the core writes zero buffers, with RMW at the edges. */
        ck_assert_int_eq(orion_bdev_write_zeroes(g_b, 20000, 1000, 0), 0);
        memset(g_model + 1000, 0, 20000);
        ck_assert(memcmp(g_s->data, g_model, DISK) == 0);
        ck_assert_int_eq(orion_bdev_pread(g_b, back, 20000, 1000, 0), 0);
        for (int i = 0; i < 20000; i++)
                ck_assert_int_eq(back[i], 0);
        ck_assert_int_eq(orion_bdev_write_zeroes(g_b, 4096, 0, ORION_FAST_ZERO), -ENOTSUP);
        /* FUA without native support: write, then flush. */
        int f0 = atomic_load(&g_s->flushes);
        ck_assert_int_eq(orion_bdev_pwrite(g_b, back, 4096, 0, ORION_FUA), 0);
        ck_assert_int_eq(atomic_load(&g_s->flushes) - f0, 1);
}
END_TEST

START_TEST(readonly) {
        struct orion_error err = { 0 };
        struct orion_bdev *ro;
        struct json_object *p = json_object_new_object();
        json_object_object_add(p, "ro", json_object_new_string("on"));
        ck_assert_int_eq(graph_node_add("ro", "strict", p, &ro, &err), 0);
        json_object_put(p);
        char buf[4096] = { 0 };
        ck_assert_int_eq(orion_bdev_pwrite(ro, buf, 4096, 0, 0), -EROFS);
        ck_assert_int_eq(orion_bdev_write_zeroes(ro, 4096, 0, 0), -EROFS);
        ck_assert_int_eq(orion_bdev_discard(ro, 4096, 0, 0), -EROFS);
        ck_assert_int_eq(orion_bdev_pread(ro, buf, 4096, 0, 0), 0);
}
END_TEST

START_TEST(batch) {
        struct orion_error err = { 0 };
        struct orion_bdev *m;
        struct json_object *p = json_object_new_object();
        json_object_object_add(p, "size", json_object_new_string("1M"));
        ck_assert_int_eq(graph_node_add("mem", "memory", p, &m, &err), 0);
        json_object_put(p);
        enum { N = 40 };
        struct orion_req reqs[N];
        static unsigned char bufs[N][5000];
        for (int i = 0; i < N; i++) {
                fill(bufs[i], sizeof bufs[i], (unsigned) i);
                reqs[i] = (struct orion_req){ .bdev = i % 2 ? m : g_b, .op = ORION_OP_WRITE, .buf = bufs[i],
                                              .len = i % 3 ? 4096 : 5000, .off = (uint64_t) i * 5000 };
        }
        ck_assert_int_eq(orion_submit(reqs, N), 0);
        for (int i = 0; i < N; i++) {
                unsigned char back[5000];
                ck_assert_int_eq(reqs[i].result, 0);
                ck_assert_int_eq(orion_bdev_pread(reqs[i].bdev, back, reqs[i].len, reqs[i].off, 0), 0);
                ck_assert(memcmp(back, bufs[i], reqs[i].len) == 0);
        }
        /* An out-of-range request fails alone. */
        reqs[0] = (struct orion_req){ .bdev = m, .op = ORION_OP_READ, .buf = bufs[0], .len = 4096, .off = 1 << 20 };
        reqs[1] = (struct orion_req){ .bdev = m, .op = ORION_OP_READ, .buf = bufs[1], .len = 4096, .off = 0 };
        reqs[2] = (struct orion_req){ .bdev = g_b, .op = ORION_OP_FLUSH };
        ck_assert_int_eq(orion_submit(reqs, 3), -EINVAL);
        ck_assert_int_eq(reqs[0].result, -EINVAL);
        ck_assert_int_eq(reqs[1].result, 0);
        ck_assert_int_eq(reqs[2].result, 0);
}
END_TEST

START_TEST(block_status) {
        struct orion_error err = { 0 };
        struct orion_bdev *m;
        struct json_object *p = json_object_new_object();
        json_object_object_add(p, "size", json_object_new_string("1M"));
        ck_assert_int_eq(graph_node_add("mem", "memory", p, &m, &err), 0);
        json_object_put(p);
        char buf[4096];
        memset(buf, 1, sizeof buf);
        ck_assert_int_eq(orion_bdev_pwrite(m, buf, 4096, 65536 * 3 + 100, 0), 0);
        struct orion_extents *x = orion_extents_new(1000, 100);
        ck_assert_int_eq(orion_bdev_block_status(m, (1 << 20) - 1000, 1000, x), 0);
        ck_assert_uint_eq(orion_extents_count(x), 3);
        uint64_t off, len;
        uint32_t fl;
        ck_assert(orion_extents_get(x, 0, &off, &len, &fl));
        ck_assert_uint_eq(off, 1000);
        ck_assert_uint_eq(len, 65536 * 3 - 1000);
        ck_assert_uint_eq(fl, ORION_EXTENT_HOLE | ORION_EXTENT_ZERO);
        ck_assert(orion_extents_get(x, 1, &off, &len, &fl));
        ck_assert_uint_eq(off, 65536 * 3);
        ck_assert_uint_eq(len, 65536);
        ck_assert_uint_eq(fl, 0);
        orion_extents_free(x);
        /* Trim of a whole chunk reads back zeroes and is a hole again. */
        ck_assert_int_eq(orion_bdev_discard(m, 65536, 65536 * 3, 0), 0);
        ck_assert_int_eq(orion_bdev_pread(m, buf, 4096, 65536 * 3 + 100, 0), 0);
        for (int i = 0; i < 4096; i++)
                ck_assert_int_eq(buf[i], 0);
        /* A node without block status reports data. */
        x = orion_extents_new(0, 10);
        ck_assert_int_eq(orion_bdev_block_status(g_b, 8192, 0, x), 0);
        ck_assert(orion_extents_get(x, 0, &off, &len, &fl));
        ck_assert_uint_eq(len, 8192);
        ck_assert_uint_eq(fl, 0);
        orion_extents_free(x);
}
END_TEST

/* ---- orion_submit_async ----------------------------------------------------------------------- */
/* Waits for done() calls; counts them so that a second call on one request is caught. */
struct waiter {
        pthread_mutex_t lock;
        pthread_cond_t cond;
        int calls;
};
static struct waiter g_w = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0 };

static void w_done(struct orion_areq *a) {
        int *calls = a->priv;
        pthread_mutex_lock(&g_w.lock);
        (*calls)++;
        g_w.calls++;
        pthread_cond_broadcast(&g_w.cond);
        pthread_mutex_unlock(&g_w.lock);
}

/* Submit and wait for done; returns the result. */
static int async_run(struct orion_bdev *b, enum orion_op op, void *buf, uint64_t len, uint64_t off, uint32_t flags) {
        int calls = 0;
        struct orion_areq a = { .req = { .bdev = b, .op = op, .flags = flags, .buf = buf, .len = len, .off = off,
                                         .result = 12345 },
                                .done = w_done, .priv = &calls };
        orion_submit_async(&a);
        pthread_mutex_lock(&g_w.lock);
        while (calls == 0)
                pthread_cond_wait(&g_w.cond, &g_w.lock);
        pthread_mutex_unlock(&g_w.lock);
        ck_assert_int_eq(calls, 1);
        return a.req.result;
}

/* "astrict": strict plus a native submit_async that completes on a thread of its own (or
 * inline for flushes), and refuses requests while `refuse` is set. */
static atomic_int g_native, g_refuse;
static void *astrict_thread(void *arg) {
        struct orion_areq *a = arg;
        struct orion_req *q = &a->req;
        q->result = q->op == ORION_OP_READ ? strict_pread(q->bdev, q->buf, q->len, q->off, q->flags)
                                           : strict_pwrite(q->bdev, q->buf, q->len, q->off, 0);
        a->done(a);
        return NULL;
}
static int astrict_submit_async(struct orion_bdev *b, struct orion_areq *a) {
        pthread_t t;
        if (atomic_load(&g_refuse))
                return -EAGAIN;
        atomic_fetch_add(&g_native, 1);
        if (a->req.op == ORION_OP_FLUSH) {
                a->req.result = strict_flush(b, 0);
                a->done(a); /* before returning: allowed */
                return 0;
        }
        ck_assert(a->req.op == ORION_OP_READ || a->req.op == ORION_OP_WRITE);
        ck_assert_int_eq(pthread_create(&t, NULL, astrict_thread, a), 0);
        pthread_detach(t);
        return 0;
}
static const struct orion_bdev_ops astrict_ops = { .pread = strict_pread, .pwrite = strict_pwrite,
                                                   .flush = strict_flush, .submit_async = astrict_submit_async };
static const struct orion_plugin astrict_type = { .api_version = ORION_PLUGIN_API_VERSION, .name = "astrict",
                                                  .params = strict_params, .instance_size = sizeof(struct strict),
                                                  .ops = &astrict_ops, .open = strict_open };

/* The same requests through the default path (no native op) and the native one. */
static void async_checks(struct orion_bdev *b, struct strict *s, bool native) {
        unsigned char buf[3 * BS], back[3 * BS];
        int n0 = atomic_load(&g_native);

        fill(buf, sizeof buf, 99);
        /* aligned: native when the node has it; the node's statistics count it either way */
        uint64_t ops = atomic_load(&b->stats.op[ORION_OP_READ].ops);
        ck_assert_int_eq(async_run(b, ORION_OP_WRITE, buf, 2 * BS, 4 * BS, 0), 0);
        ck_assert_int_eq(async_run(b, ORION_OP_READ, back, 2 * BS, 4 * BS, 0), 0);
        ck_assert_uint_eq(atomic_load(&b->stats.op[ORION_OP_READ].ops), ops + 1);
        ck_assert(memcmp(back, buf, 2 * BS) == 0);
        ck_assert_int_eq(async_run(b, ORION_OP_FLUSH, NULL, 0, 0, 0), 0);
        ck_assert_int_eq(atomic_load(&g_native) - n0, native ? 3 : 0);
        /* unaligned and split: the synchronous path (RMW, max_size), never the native op */
        n0 = atomic_load(&g_native);
        ck_assert_int_eq(async_run(b, ORION_OP_WRITE, buf, 5000, 100, 0), 0);
        ck_assert_int_eq(async_run(b, ORION_OP_READ, back, 5000, 100, 0), 0);
        ck_assert(memcmp(back, buf, 5000) == 0);
        static unsigned char big[MAXREQ * 2];
        fill(big, sizeof big, 7);
        ck_assert_int_eq(async_run(b, ORION_OP_WRITE, big, sizeof big, 0, 0), 0);
        ck_assert(memcmp(s->data, big, sizeof big) == 0);
        /* FUA on a node without native FUA: write + flush, FUA never reaches the node */
        int flushes = atomic_load(&s->flushes);
        ck_assert_int_eq(async_run(b, ORION_OP_WRITE, buf, BS, 0, ORION_FUA), 0);
        ck_assert_int_gt(atomic_load(&s->flushes), flushes);
        /* other ops run synchronously too */
        ck_assert_int_eq(async_run(b, ORION_OP_WRITE_ZEROES, NULL, BS, 0, 0), 0);
        ck_assert_int_eq(s->data[10], 0);
        ck_assert_int_eq(atomic_load(&g_native) - n0, 0);
        /* errors: range, and done still called exactly once */
        ck_assert_int_eq(async_run(b, ORION_OP_READ, back, BS, DISK, 0), -EINVAL);
        ck_assert_int_eq(async_run(b, ORION_OP_WRITE, buf, BS, DISK, 0), -ENOSPC);
        ck_assert_int_eq(async_run(b, ORION_OP_READ, back, 2 * BS, DISK - BS, 0), -EINVAL);
        ck_assert_int_eq(orion_bdev_has_async(b), native);
}

START_TEST(async_default) {
        async_checks(g_b, g_s, false);
}
END_TEST

START_TEST(async_native) {
        struct orion_error err = { 0 };
        struct orion_bdev *b, *ro;
        struct strict *s;
        unsigned char buf[BS] = { 1 };

        ck_assert_int_eq(registry_add(&astrict_type, &err), 0);
        ck_assert_msg(graph_node_add("a0", "astrict", NULL, &b, &err) == 0, "%s", err.msg);
        s = orion_bdev_priv(b);
        async_checks(b, s, true);
        /* A node that refuses: the core runs the request synchronously instead. */
        atomic_store(&g_refuse, 1);
        int n0 = atomic_load(&g_native), reads = atomic_load(&s->reads);
        ck_assert_int_eq(async_run(b, ORION_OP_READ, buf, BS, 0, 0), 0);
        ck_assert_int_eq(atomic_load(&g_native), n0);
        ck_assert_int_eq(atomic_load(&s->reads), reads + 1);
        atomic_store(&g_refuse, 0);
        /* Read-only: writes fail with EROFS before the node sees them. */
        struct json_object *p = json_object_new_object();
        json_object_object_add(p, "ro", json_object_new_string("on"));
        ck_assert_int_eq(graph_node_add("a1", "astrict", p, &ro, &err), 0);
        json_object_put(p);
        n0 = atomic_load(&g_native);
        ck_assert_int_eq(async_run(ro, ORION_OP_WRITE, buf, BS, 0, 0), -EROFS);
        ck_assert_int_eq(atomic_load(&g_native), n0);
        ck_assert_int_eq(atomic_load(&((struct strict *) orion_bdev_priv(ro))->violations), 0);
        ck_assert_int_eq(atomic_load(&s->violations), 0);
}
END_TEST

int main(void) {
        Suite *s = suite_create("request");
        TCase *tc = tcase_create("request");
        tcase_set_timeout(tc, 60);
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_test(tc, rmw_every_alignment);
        tcase_add_test(tc, split_large);
        tcase_add_test(tc, ranges);
        tcase_add_test(tc, zero_and_fua);
        tcase_add_test(tc, readonly);
        tcase_add_test(tc, batch);
        tcase_add_test(tc, block_status);
        tcase_add_test(tc, async_default);
        tcase_add_test(tc, async_native);
        suite_add_tcase(s, tc);
        SRunner *sr = srunner_create(s);
        srunner_set_tap(sr, "-");
        srunner_run_all(sr, CK_SILENT);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
