/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit tests: zero-copy reads (orion_bdev_read_view) — the memory leaf's own chunks (allocated,
 * unallocated, mixed), the core's default path for nodes without the op and for unaligned
 * requests, fn errors stopping the walk, statistics, and nodes that misreport their pieces. */
#include <errno.h>
#include <stdio.h>

#include "t-core.h"

#define KB 1024u
#define CHUNK (64u * KB)

/* Collects the pieces of a view into out (zeroes for NULL pieces). */
struct collect {
        uint8_t *out;
        uint64_t pos;
        unsigned pieces, nulls;
        unsigned fail_at; /* 1-based piece that returns -ECANCELED; 0 = never */
        uint64_t sizes[64];
        struct orion_bdev *nested; /* default-path read of this node from inside fn, */
        uint64_t base;             /* at base + pos */
};

static int collect_fn(void *arg, const void *data, uint64_t n) {
        struct collect *c = arg;

        if (c->pieces < 64)
                c->sizes[c->pieces] = n;
        if (++c->pieces == c->fail_at)
                return -ECANCELED;
        if (data)
                memcpy(c->out + c->pos, data, n);
        else {
                memset(c->out + c->pos, 0, n);
                c->nulls++;
        }
        if (c->nested) {
                uint8_t *inner = malloc(n);
                struct collect ic = { .out = inner };
                ck_assert_int_eq(orion_bdev_read_view(c->nested, n, c->base + c->pos, collect_fn, &ic), 0);
                ck_assert_uint_eq(ic.pos, n);
                ck_assert_mem_eq(inner, c->out + c->pos, n);
                free(inner);
        }
        c->pos += n;
        return 0;
}

static uint64_t read_ops(struct orion_bdev *b, uint64_t *bytes, uint64_t *errors) {
        *bytes = atomic_load(&b->stats.op[ORION_OP_READ].bytes);
        *errors = atomic_load(&b->stats.op[ORION_OP_READ].errors);
        return atomic_load(&b->stats.op[ORION_OP_READ].ops);
}

/* ---- A node without .read_view, small max_size: the core's default path ------------------ */
#define PLAIN_SIZE (1024u * KB)
struct plain {
        uint8_t data[PLAIN_SIZE];
};
static int plain_pread(struct orion_bdev *b, void *buf, uint64_t len, uint64_t off, uint32_t flags) {
        struct plain *p = orion_bdev_priv(b);
        memcpy(buf, p->data + off, len);
        return 0;
}
static int plain_open(struct orion_bdev *b, const struct orion_params *p, struct orion_error *err) {
        struct plain *s = orion_bdev_priv(b);
        struct orion_geometry g = { .size = PLAIN_SIZE, .block_size = 4096, .max_size = 32 * KB };
        t_pattern(s->data, PLAIN_SIZE, 0, 11);
        orion_bdev_set_caps(b, ORION_CAP_READONLY);
        return orion_bdev_set_geometry(b, &g);
}
static const struct orion_bdev_ops plain_ops = { .pread = plain_pread };
static const struct orion_plugin plain_type = { .api_version = ORION_PLUGIN_API_VERSION, .name = "plain",
                                                .instance_size = sizeof(struct plain), .ops = &plain_ops,
                                                .open = plain_open };

/* ---- A node whose .read_view misreports: mode 0 leaves the last 4 KiB out, mode 1 reports
 * more than asked, mode 2 fails itself after the first piece. */
struct liar {
        int mode;
        uint8_t block[4096];
};
static int liar_pread(struct orion_bdev *b, void *buf, uint64_t len, uint64_t off, uint32_t flags) {
        memset(buf, 0, len);
        return 0;
}
static int liar_view(struct orion_bdev *b, uint64_t len, uint64_t off,
                     int (*fn)(void *arg, const void *data, uint64_t n), void *arg) {
        struct liar *l = orion_bdev_priv(b);
        int r;
        switch (l->mode) {
        case 0: return len > 4096 ? fn(arg, NULL, len - 4096) : 0;
        case 1: return fn(arg, NULL, len + 4096);
        default:
                r = fn(arg, l->block, 4096);
                return r < 0 ? r : -ENXIO;
        }
}
static int liar_open(struct orion_bdev *b, const struct orion_params *p, struct orion_error *err) {
        struct liar *l = orion_bdev_priv(b);
        struct orion_geometry g = { .size = 1024 * KB, .block_size = 4096 };
        l->mode = (int) orion_param_int(p, "mode");
        return orion_bdev_set_geometry(b, &g);
}
static const struct orion_param liar_params[] = { { "mode", ORION_PARAM_INT, "0", "how to lie" }, { NULL } };
static const struct orion_bdev_ops liar_ops = { .pread = liar_pread, .read_view = liar_view };
static const struct orion_plugin liar_type = { .api_version = ORION_PLUGIN_API_VERSION, .name = "liar",
                                               .params = liar_params, .instance_size = sizeof(struct liar),
                                               .ops = &liar_ops, .open = liar_open };

static struct orion_bdev *g_mem;
static uint8_t g_a[PLAIN_SIZE], g_b[PLAIN_SIZE];

static void setup(void) {
        struct orion_error err = { 0 };
        t_core_setup();
        ck_assert_int_eq(registry_add(&plain_type, &err), 0);
        ck_assert_int_eq(registry_add(&liar_type, &err), 0);
        g_mem = t_node_add("mem", "memory", t_params("size", "1M", "block-size", "512", NULL));
}

static void teardown(void) {
        t_core_teardown();
}

/* Chunks 1 and 3 allocated (3 only partly written), 0, 2 and 4.. not: pieces per chunk, NULL
 * for the unallocated ones, bytes equal to pread's, counted as one read. */
START_TEST(memory_chunks) {
        uint64_t off = CHUNK / 2, len = 4 * CHUNK, bytes0, err0, bytes1, err1;
        struct collect c = { .out = g_a };

        t_pattern(g_b, CHUNK, CHUNK, 1);
        ck_assert_int_eq(orion_bdev_pwrite(g_mem, g_b, CHUNK, CHUNK, 0), 0);
        t_pattern(g_b, 4096, 3 * CHUNK + 8192, 2);
        ck_assert_int_eq(orion_bdev_pwrite(g_mem, g_b, 4096, 3 * CHUNK + 8192, 0), 0);
        uint64_t ops0 = read_ops(g_mem, &bytes0, &err0);
        ck_assert_int_eq(orion_bdev_read_view(g_mem, len, off, collect_fn, &c), 0);
        uint64_t ops1 = read_ops(g_mem, &bytes1, &err1);
        ck_assert_uint_eq(ops1 - ops0, 1);
        ck_assert_uint_eq(bytes1 - bytes0, len);
        ck_assert_uint_eq(err1, err0);
        ck_assert_uint_eq(c.pos, len);
        ck_assert_uint_eq(c.pieces, 5);
        ck_assert_uint_eq(c.nulls, 3); /* half of chunk 0, chunk 2, half of chunk 4 */
        const uint64_t want[5] = { CHUNK / 2, CHUNK, CHUNK, CHUNK, CHUNK / 2 };
        for (int i = 0; i < 5; i++)
                ck_assert_uint_eq(c.sizes[i], want[i]);
        ck_assert_int_eq(orion_bdev_pread(g_mem, g_b, len, off, 0), 0);
        ck_assert_mem_eq(g_a, g_b, len);
        ck_assert(!t_is_zero(g_a + CHUNK / 2, CHUNK));
        ck_assert(!t_is_zero(g_a + CHUNK / 2 + 2 * CHUNK + 8192, 4096));

        /* Aligned to blocks but not chunks, the last block of the disk. */
        memset(&c, 0, sizeof c);
        c.out = g_a;
        ck_assert_int_eq(orion_bdev_read_view(g_mem, 512, PLAIN_SIZE - 512, collect_fn, &c), 0);
        ck_assert_uint_eq(c.pieces, 1);
        ck_assert_uint_eq(c.nulls, 1);
        /* Whole disk after a discard freed chunk 1: every piece NULL but chunk 3's. */
        ck_assert_int_eq(orion_bdev_discard(g_mem, CHUNK, CHUNK, 0), 0);
        memset(&c, 0, sizeof c);
        c.out = g_a;
        ck_assert_int_eq(orion_bdev_read_view(g_mem, PLAIN_SIZE, 0, collect_fn, &c), 0);
        ck_assert_uint_eq(c.pieces, PLAIN_SIZE / CHUNK);
        ck_assert_uint_eq(c.nulls, PLAIN_SIZE / CHUNK - 1);
        ck_assert_int_eq(orion_bdev_pread(g_mem, g_b, PLAIN_SIZE, 0, 0), 0);
        ck_assert_mem_eq(g_a, g_b, PLAIN_SIZE);
}
END_TEST

/* Unaligned requests take the default path (pread with read-modify-write at the edges). */
START_TEST(memory_unaligned) {
        t_pattern(g_b, PLAIN_SIZE, 0, 3);
        ck_assert_int_eq(orion_bdev_pwrite(g_mem, g_b, 3 * CHUNK, 0, 0), 0);
        for (uint64_t off = 1; off < 3 * CHUNK; off += 40000) {
                uint64_t len = 600 * KB - off;
                struct collect c = { .out = g_a };
                ck_assert_int_eq(orion_bdev_read_view(g_mem, len, off, collect_fn, &c), 0);
                ck_assert_uint_eq(c.pos, len);
                ck_assert_uint_eq(c.nulls, 0); /* the default path always gives a buffer */
                ck_assert_uint_eq(c.pieces, (len + 256 * KB - 1) / (256 * KB));
                ck_assert_int_eq(orion_bdev_pread(g_mem, g_b, len, off, 0), 0);
                ck_assert_mem_eq(g_a, g_b, len);
        }
}
END_TEST

/* fn's error stops the walk and is returned; it is not the node's error in the statistics. */
START_TEST(fn_error_stops) {
        uint64_t b0, e0, b1, e1;
        struct collect c = { .out = g_a, .fail_at = 2 };

        ck_assert_int_eq(orion_bdev_pwrite(g_mem, g_b, 2 * CHUNK, 0, 0), 0);
        read_ops(g_mem, &b0, &e0);
        ck_assert_int_eq(orion_bdev_read_view(g_mem, 8 * CHUNK, 0, collect_fn, &c), -ECANCELED);
        ck_assert_uint_eq(c.pieces, 2);
        read_ops(g_mem, &b1, &e1);
        ck_assert_uint_eq(e1, e0);
        /* Default path (unaligned, three pieces): stops after the failing one too. */
        memset(&c, 0, sizeof c);
        c.out = g_a;
        c.fail_at = 1;
        ck_assert_int_eq(orion_bdev_read_view(g_mem, 600 * KB, 100, collect_fn, &c), -ECANCELED);
        ck_assert_uint_eq(c.pieces, 1);
}
END_TEST

START_TEST(ranges) {
        struct collect c = { .out = g_a };
        ck_assert_int_eq(orion_bdev_read_view(g_mem, 512, PLAIN_SIZE, collect_fn, &c), -EINVAL);
        ck_assert_int_eq(orion_bdev_read_view(g_mem, 1024, PLAIN_SIZE - 512, collect_fn, &c), -EINVAL);
        ck_assert_int_eq(orion_bdev_read_view(g_mem, UINT64_MAX, 512, collect_fn, &c), -EINVAL);
        ck_assert_int_eq(orion_bdev_read_view(g_mem, 0, 0, collect_fn, &c), 0);
        ck_assert_uint_eq(c.pieces, 0);
}
END_TEST

/* A node without the op: pieces of at most 256 KiB preread through the core (split to the
 * node's 32 KiB max_size), the same bytes as pread; nested views from inside fn work. */
START_TEST(default_path) {
        struct orion_bdev *p = t_node_add("plain", "plain", NULL);
        struct orion_bdev *q = t_node_add("plain2", "plain", NULL);
        uint64_t b0, e0, b1, e1;

        for (uint64_t off = 0; off < PLAIN_SIZE; off += 333 * KB + 7) {
                uint64_t len = PLAIN_SIZE - off;
                struct collect c = { .out = g_a, .nested = q, .base = off };
                uint64_t ops0 = read_ops(p, &b0, &e0);
                ck_assert_int_eq(orion_bdev_read_view(p, len, off, collect_fn, &c), 0);
                ck_assert_uint_eq(c.pos, len);
                ck_assert_uint_eq(c.pieces, (len + 256 * KB - 1) / (256 * KB));
                for (unsigned i = 0; i + 1 < c.pieces; i++)
                        ck_assert_uint_eq(c.sizes[i], 256 * KB);
                ck_assert_mem_eq(g_a, ((struct plain *) orion_bdev_priv(p))->data + off, len);
                uint64_t ops1 = read_ops(p, &b1, &e1);
                ck_assert_uint_ge(ops1 - ops0, len / (32 * KB));
                ck_assert_uint_ge(b1 - b0, len);
        }
        /* The null leaf reads as zeroes (through a buffer: no op of its own). */
        struct orion_bdev *n = t_node_add("nil", "null", t_params("size", "1M", NULL));
        struct collect c = { .out = g_a };
        memset(g_a, 0xff, PLAIN_SIZE);
        ck_assert_int_eq(orion_bdev_read_view(n, PLAIN_SIZE, 0, collect_fn, &c), 0);
        ck_assert(t_is_zero(g_a, PLAIN_SIZE));
}
END_TEST

/* A node that covers less or more than asked, or fails: -EIO / its error, counted as errors. */
START_TEST(misreporting_node) {
        static const char *const modes[] = { "0", "1", "2" };
        const int want[] = { -EIO, -EIO, -ENXIO };
        for (int i = 0; i < 3; i++) {
                char name[16];
                snprintf(name, sizeof name, "liar%d", i);
                struct orion_bdev *l = t_node_add(name, "liar", t_params("mode", modes[i], NULL));
                struct collect c = { .out = g_a };
                uint64_t b0, e0, b1, e1;
                read_ops(l, &b0, &e0);
                ck_assert_int_eq(orion_bdev_read_view(l, 64 * KB, 0, collect_fn, &c), want[i]);
                read_ops(l, &b1, &e1);
                ck_assert_uint_eq(e1 - e0, 1);
                ck_assert_uint_eq(b1, b0);
        }
}
END_TEST

int main(void) {
        Suite *s = suite_create("read-view");
        TCase *tc = tcase_create("core");

        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_test(tc, memory_chunks);
        tcase_add_test(tc, memory_unaligned);
        tcase_add_test(tc, fn_error_stops);
        tcase_add_test(tc, ranges);
        tcase_add_test(tc, default_path);
        tcase_add_test(tc, misreporting_node);
        suite_add_tcase(s, tc);
        return t_run(s);
}
