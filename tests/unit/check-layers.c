/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The passthru, error and delay layers, loaded as plugins from $ORION_PLUGIN_DIR and stacked on
 * a memory node through the core: data passes, errors are injected as configured and switched
 * at run time through ctl, delays are applied. */
#include <errno.h>
#include <time.h>

#include "t-core.h"

static void setup(void) {
        t_core_setup();
        t_node_add("mem", "memory", t_params("size", "4M", NULL));
}

static void teardown(void) {
        t_core_teardown();
}

static uint64_t mono_ns(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

static int ctl(struct orion_bdev *b, const char *verb, const char *json, struct json_object **reply) {
        struct orion_error err = { 0 };
        struct json_object *args = json ? json_tokener_parse(json) : NULL;
        int r;

        if (json)
                ck_assert_ptr_nonnull(args);
        r = orion_bdev_ctl(b, verb, args, reply, &err);
        json_object_put(args);
        return r;
}

static uint64_t reply_u64(struct json_object *o, const char *key) {
        struct json_object *v;

        ck_assert(json_object_object_get_ex(o, key, &v));
        return (uint64_t) json_object_get_int64(v);
}

/* ---- the memory leaf itself ------------------------------------------------------------------ */
/* Its writes take streaming stores when long and aligned, memcpy otherwise: every mix of
 * source misalignment, length and offset (inside a chunk, across chunks) reads back. */
START_TEST(test_memory_store_paths) {
        static const uint64_t lens[] = { 512, 4096, 4096 + 512, 8192, 65536, 65536 + 4096, 200704 };
        static const uint64_t offs[] = { 0, 512, 4096, 61440, 65536 - 512, 131072 };
        struct orion_bdev *m = graph_node_find("mem");
        uint8_t *src = malloc(256 << 10), *rd = malloc(256 << 10);
        uint8_t *shadow = calloc(1, 512 << 10);
        unsigned seed = 1;

        ck_assert(src && rd && shadow);
        for (size_t a = 0; a < 3; a++)
                for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++)
                        for (size_t j = 0; j < sizeof(offs) / sizeof(offs[0]); j++) {
                                uint8_t *s = src + a * 8; /* 0, 8 and 16 bytes off alignment */
                                for (uint64_t k = 0; k < lens[i]; k++)
                                        s[k] = (uint8_t) ((seed = seed * 1103515245u + 12345u) >> 16);
                                ck_assert_int_eq(orion_bdev_pwrite(m, s, lens[i], offs[j], 0), 0);
                                memcpy(shadow + offs[j], s, lens[i]);
                        }
        for (uint64_t off = 0; off < (512 << 10); off += 256 << 10) {
                ck_assert_int_eq(orion_bdev_pread(m, rd, 256 << 10, off, 0), 0);
                ck_assert_mem_eq(rd, shadow + off, 256 << 10);
        }
        free(src);
        free(rd);
        free(shadow);
}
END_TEST

/* Whole chunks written to a fresh node are filled before they are published (no zeroing
 * first); a partial write next to them still finds zeroes around its data. */
START_TEST(test_memory_fresh_chunks) {
        struct orion_bdev *m = t_node_add("fresh", "memory", t_params("size", "1M", NULL));
        static char w[3 << 16], r[4 << 16];

        t_pattern(w, sizeof(w), 65536, 3);
        ck_assert_int_eq(orion_bdev_pwrite(m, w, sizeof(w), 65536, 0), 0);       /* chunks 1-3 whole */
        ck_assert_int_eq(orion_bdev_pwrite(m, w, 4096, (5 << 16) + 8192, 0), 0); /* chunk 5 partly */
        ck_assert_int_eq(orion_bdev_pread(m, r, sizeof(w), 65536, 0), 0);
        ck_assert_mem_eq(w, r, sizeof(w));
        ck_assert_int_eq(orion_bdev_pread(m, r, 4 << 16, 4 << 16, 0), 0);
        ck_assert(t_is_zero(r, (1 << 16) + 8192));
        ck_assert_mem_eq(w, r + (1 << 16) + 8192, 4096);
        ck_assert(t_is_zero(r + (1 << 16) + 8192 + 4096, (3 << 16) - 8192 - 4096));
}
END_TEST

/* ---- passthru -------------------------------------------------------------------------------- */
START_TEST(test_passthru) {
        struct orion_bdev *p = t_node_add("p", "passthru", t_params("child", "mem", NULL));
        struct orion_bdev *m = graph_node_find("mem");
        struct orion_req q[8];
        char w[4096], r[4096], bufs[8][512];

        ck_assert_uint_eq(orion_bdev_size(p), orion_bdev_size(m));
        ck_assert_uint_eq(orion_bdev_caps(p), orion_bdev_caps(m));
        t_pattern(w, sizeof(w), 4096, 1);
        ck_assert_int_eq(orion_bdev_pwrite(p, w, sizeof(w), 4096, ORION_FUA), 0);
        ck_assert_int_eq(orion_bdev_pread(m, r, sizeof(r), 4096, 0), 0);
        ck_assert_mem_eq(w, r, sizeof(w));
        ck_assert_int_eq(orion_bdev_write_zeroes(p, 1024, 4096, 0), 0);
        ck_assert_int_eq(orion_bdev_pread(p, r, sizeof(r), 4096, 0), 0);
        ck_assert(t_is_zero(r, 1024));
        ck_assert_mem_eq(w + 1024, r + 1024, sizeof(w) - 1024);
        ck_assert_int_eq(orion_bdev_flush(p, 0), 0);
        /* a batch through the layer */
        for (int i = 0; i < 8; i++)
                q[i] = (struct orion_req) { .bdev = p, .op = ORION_OP_READ, .buf = bufs[i], .len = 512,
                                            .off = 4096 + (uint64_t) i * 512 };
        ck_assert_int_eq(orion_submit(q, 8), 0);
        for (int i = 0; i < 8; i++)
                ck_assert_mem_eq(bufs[i], r + i * 512, 512);
        /* the child cannot go while the layer holds it */
        {
                struct orion_error err = { 0 };

                ck_assert_int_eq(graph_node_remove("mem", &err), -EBUSY);
        }
}
END_TEST

/* ---- error ----------------------------------------------------------------------------------- */
START_TEST(test_error_default_eio) {
        struct orion_bdev *e = t_node_add("e", "error", t_params("child", "mem", NULL));
        char buf[4096] = { 0 };

        ck_assert_int_eq(orion_bdev_pread(e, buf, 4096, 0, 0), -EIO);
        ck_assert_int_eq(orion_bdev_pwrite(e, buf, 4096, 0, 0), -EIO);
        ck_assert_int_eq(orion_bdev_flush(e, 0), -EIO);
        ck_assert_int_eq(orion_bdev_discard(e, 4096, 0, 0), -EIO);
        ck_assert_int_eq(orion_bdev_write_zeroes(e, 4096, 0, 0), -EIO);
}
END_TEST

START_TEST(test_error_per_op_and_errno) {
        struct orion_bdev *e = t_node_add("e", "error", t_params("child", "mem", "error", "ENOSPC", "ops", "write zeroes",
                                                                 NULL));
        char buf[4096] = { 0 };

        ck_assert_int_eq(orion_bdev_pread(e, buf, 4096, 0, 0), 0);
        ck_assert_int_eq(orion_bdev_pwrite(e, buf, 4096, 0, 0), -ENOSPC);
        ck_assert_int_eq(orion_bdev_write_zeroes(e, 4096, 0, 0), -ENOSPC);
        ck_assert_int_eq(orion_bdev_flush(e, 0), 0);
        ck_assert_int_eq(orion_bdev_discard(e, 4096, 0, 0), 0);
}
END_TEST

START_TEST(test_error_range) {
        struct orion_bdev *e = t_node_add("e", "error", t_params("child", "mem", "offset", "1M", "length", "64K", NULL));
        char buf[8192] = { 0 };

        ck_assert_int_eq(orion_bdev_pread(e, buf, 4096, 0, 0), 0);
        ck_assert_int_eq(orion_bdev_pread(e, buf, 4096, (1 << 20) - 4096, 0), 0);
        ck_assert_int_eq(orion_bdev_pread(e, buf, 8192, (1 << 20) - 4096, 0), -EIO); /* overlaps */
        ck_assert_int_eq(orion_bdev_pread(e, buf, 4096, (1 << 20) + 60 * 1024, 0), -EIO);
        ck_assert_int_eq(orion_bdev_pread(e, buf, 4096, (1 << 20) + 64 * 1024, 0), 0);
        ck_assert_int_eq(orion_bdev_flush(e, 0), -EIO); /* flush ignores the range */
}
END_TEST

START_TEST(test_error_after_count) {
        struct orion_bdev *e = t_node_add("e", "error", t_params("child", "mem", "ops", "read", "after", "3", "count", "2",
                                                                 NULL));
        char buf[512];
        int results[8];

        for (int i = 0; i < 8; i++)
                results[i] = orion_bdev_pread(e, buf, 512, 0, 0);
        for (int i = 0; i < 8; i++)
                ck_assert_int_eq(results[i], i == 3 || i == 4 ? -EIO : 0);
}
END_TEST

START_TEST(test_error_rate) {
        struct orion_bdev *e = t_node_add("e", "error", t_params("child", "mem", "ops", "read", "rate", "0.25", "seed",
                                                                 "42", NULL));
        char buf[512];
        int fails = 0;

        for (int i = 0; i < 2000; i++)
                fails += orion_bdev_pread(e, buf, 512, 0, 0) == -EIO;
        /* binomial(2000, 0.25): mean 500, sd ~19; these bounds are > 7 sd away */
        ck_assert_int_gt(fails, 360);
        ck_assert_int_lt(fails, 640);
}
END_TEST

START_TEST(test_error_short_write) {
        struct orion_bdev *e = t_node_add("e", "error", t_params("child", "mem", "ops", "write", "mode", "short", NULL));
        struct orion_bdev *m = graph_node_find("mem");
        char w[8192], r[8192];

        memset(w, 0x77, sizeof(w));
        ck_assert_int_eq(orion_bdev_pwrite(e, w, sizeof(w), 0, 0), -EIO);
        ck_assert_int_eq(orion_bdev_pread(m, r, sizeof(r), 0, 0), 0);
        ck_assert_mem_eq(r, w, 4096);           /* first half written */
        ck_assert(t_is_zero(r + 4096, 4096));   /* second half not */
}
END_TEST

START_TEST(test_error_ctl) {
        struct orion_bdev *e = t_node_add("e", "error", t_params("child", "mem", "enabled", "off", NULL));
        struct json_object *reply = NULL;
        struct orion_error err = { 0 };
        char buf[512];

        ck_assert_int_eq(orion_bdev_pread(e, buf, 512, 0, 0), 0);
        ck_assert_int_eq(ctl(e, "enable", NULL, NULL), 0);
        ck_assert_int_eq(orion_bdev_pread(e, buf, 512, 0, 0), -EIO);
        ck_assert_int_eq(ctl(e, "set", "{\"error\":\"EPERM\",\"ops\":\"flush\",\"count\":1}", NULL), 0);
        ck_assert_int_eq(orion_bdev_pread(e, buf, 512, 0, 0), 0);
        ck_assert_int_eq(orion_bdev_flush(e, 0), -EPERM);
        ck_assert_int_eq(orion_bdev_flush(e, 0), 0); /* transient: healed after one */
        ck_assert_int_eq(ctl(e, "status", NULL, &reply), 0);
        ck_assert_ptr_nonnull(reply);
        ck_assert_uint_eq(reply_u64(reply, "injected"), 1);
        ck_assert_uint_eq(reply_u64(reply, "seen"), 2);
        json_object_put(reply);
        ck_assert_int_eq(ctl(e, "disable", NULL, NULL), 0);
        ck_assert_int_eq(orion_bdev_flush(e, 0), 0);
        /* bad input is refused and leaves the rule alone */
        ck_assert_int_eq(ctl(e, "set", "{\"rate\":\"2\"}", NULL), -EINVAL);
        ck_assert_int_eq(ctl(e, "set", "{\"error\":\"EWHAT\"}", NULL), -EINVAL);
        ck_assert_int_eq(ctl(e, "set", "{\"bogus\":1}", NULL), -EINVAL);
        ck_assert_int_eq(ctl(e, "set", "[1]", NULL), -EINVAL);
        ck_assert_int_eq(orion_bdev_ctl(e, "frobnicate", NULL, NULL, &err), -EOPNOTSUPP);
        ck_assert_ptr_nonnull(strstr(err.msg, "frobnicate"));
}
END_TEST

START_TEST(test_error_bad_params) {
        struct orion_error err = { 0 };
        struct orion_bdev *b;

        ck_assert_int_lt(t_node_add_err("e", "error", t_params("child", "mem", "rate", "1.5", NULL), &b, &err), 0);
        memset(&err, 0, sizeof(err));
        ck_assert_int_lt(t_node_add_err("e", "error", t_params("child", "mem", "ops", "read wibble", NULL), &b, &err), 0);
        ck_assert_ptr_nonnull(strstr(err.msg, "wibble"));
        memset(&err, 0, sizeof(err));
        ck_assert_int_lt(t_node_add_err("e", "error", t_params("child", "nosuchnode", NULL), &b, &err), 0);
        memset(&err, 0, sizeof(err));
        ck_assert_int_lt(t_node_add_err("e", "error", t_params(NULL, NULL), &b, &err), 0);
}
END_TEST

/* ---- delay ----------------------------------------------------------------------------------- */
START_TEST(test_delay) {
        struct orion_bdev *d = t_node_add("d", "delay", t_params("child", "mem", "read-delay", "30ms", "write-delay",
                                                                 "0.01s", NULL));
        struct json_object *reply = NULL;
        char w[4096], r[4096];
        uint64_t t0;

        t_pattern(w, sizeof(w), 0, 5);
        t0 = mono_ns();
        ck_assert_int_eq(orion_bdev_pwrite(d, w, sizeof(w), 0, 0), 0);
        ck_assert_uint_ge(mono_ns() - t0, 10000000u);
        t0 = mono_ns();
        ck_assert_int_eq(orion_bdev_pread(d, r, sizeof(r), 0, 0), 0);
        ck_assert_uint_ge(mono_ns() - t0, 30000000u); /* a lower bound only: sleeping is never shorter */
        ck_assert_mem_eq(w, r, sizeof(w));
        ck_assert_int_eq(ctl(d, "set", "{\"flush-delay\":\"20ms\",\"read-delay\":\"0\"}", &reply), 0);
        ck_assert_uint_eq(reply_u64(reply, "flush-delay"), 20000);
        ck_assert_uint_eq(reply_u64(reply, "read-delay"), 0);
        json_object_put(reply);
        t0 = mono_ns();
        ck_assert_int_eq(orion_bdev_flush(d, 0), 0);
        ck_assert_uint_ge(mono_ns() - t0, 20000000u);
        ck_assert_int_eq(ctl(d, "set", "{\"flush-delay\":\"soon\"}", NULL), -EINVAL);
        ck_assert_int_eq(ctl(d, "set", "{\"nap\":\"1s\"}", NULL), -EINVAL);
}
END_TEST

START_TEST(test_delay_units) {
        static const char *const good[] = { "0", "1", "10ms", "250us", "500ns", "1.5s" };
        static const char *const bad[] = { "", "ms", "-1ms", "10 ms", "10m", "2h", "99999s" };
        struct orion_error err = { 0 };
        struct orion_bdev *b;

        for (size_t i = 0; i < ELEMENTSOF(good); i++) {
                ck_assert_int_eq(t_node_add_err("d", "delay", t_params("child", "mem", "discard-delay", good[i], NULL),
                                                &b, &err), 0);
                t_node_remove("d");
        }
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                memset(&err, 0, sizeof(err));
                ck_assert_msg(t_node_add_err("d", "delay", t_params("child", "mem", "read-delay", bad[i], NULL), &b,
                                             &err) < 0, "accepted '%s'", bad[i]);
        }
}
END_TEST

/* Layers stack: error above delay above passthru above memory. */
START_TEST(test_stack) {
        char w[4096], r[4096];
        struct orion_bdev *top;

        t_node_add("p", "passthru", t_params("child", "mem", NULL));
        t_node_add("d", "delay", t_params("child", "p", "write-delay", "1ms", NULL));
        top = t_node_add("e", "error", t_params("child", "d", "ops", "read", "offset", "8K", "length", "4K", NULL));
        t_pattern(w, sizeof(w), 0, 9);
        ck_assert_int_eq(orion_bdev_pwrite(top, w, sizeof(w), 8192, 0), 0);
        ck_assert_int_eq(orion_bdev_pread(top, r, sizeof(r), 8192, 0), -EIO);
        ck_assert_int_eq(orion_bdev_pread(graph_node_find("mem"), r, sizeof(r), 8192, 0), 0);
        ck_assert_mem_eq(w, r, sizeof(w));
}
END_TEST

int main(void) {
        Suite *s = suite_create("layers");
        TCase *tc = tcase_create("layers");

        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_memory_store_paths);
        tcase_add_test(tc, test_memory_fresh_chunks);
        tcase_add_test(tc, test_passthru);
        tcase_add_test(tc, test_error_default_eio);
        tcase_add_test(tc, test_error_per_op_and_errno);
        tcase_add_test(tc, test_error_range);
        tcase_add_test(tc, test_error_after_count);
        tcase_add_test(tc, test_error_rate);
        tcase_add_test(tc, test_error_short_write);
        tcase_add_test(tc, test_error_ctl);
        tcase_add_test(tc, test_error_bad_params);
        tcase_add_test(tc, test_delay);
        tcase_add_test(tc, test_delay_units);
        tcase_add_test(tc, test_stack);
        suite_add_tcase(s, tc);
        return t_run(s);
}
