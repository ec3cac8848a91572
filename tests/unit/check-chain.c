/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Chain conformance: three recording layers on a recording leaf see every op in stack order;
 * every plugin that opens with just `child=` passes data through with passthru above and below. */
#include <errno.h>
#include <stdio.h>

#include "t-core.h"

/* ---- Recording types ---------------------------------------------------------------------- */
#define LOG_MAX 256
static char g_log[LOG_MAX][48];
static atomic_int g_nlog;

static void record(struct orion_bdev *b, const char *op) {
        int i = atomic_fetch_add(&g_nlog, 1);
        if (i < LOG_MAX)
                snprintf(g_log[i], sizeof g_log[i], "%s:%s", orion_bdev_name(b), op);
}

struct rec {
        struct orion_bdev *child; /* NULL for the leaf */
        unsigned char data[1 << 20];
};

static int rec_pread(struct orion_bdev *b, void *buf, uint64_t len, uint64_t off, uint32_t flags) {
        struct rec *r = orion_bdev_priv(b);
        record(b, "read");
        if (r->child)
                return orion_bdev_pread(r->child, buf, len, off, flags);
        memcpy(buf, r->data + off, len);
        return 0;
}
static int rec_pwrite(struct orion_bdev *b, const void *buf, uint64_t len, uint64_t off, uint32_t flags) {
        struct rec *r = orion_bdev_priv(b);
        record(b, flags & ORION_FUA ? "write-fua" : "write");
        if (r->child)
                return orion_bdev_pwrite(r->child, buf, len, off, flags);
        memcpy(r->data + off, buf, len);
        return 0;
}
static int rec_flush(struct orion_bdev *b, uint32_t flags) {
        struct rec *r = orion_bdev_priv(b);
        record(b, "flush");
        return r->child ? orion_bdev_flush(r->child, flags) : 0;
}
static int rec_discard(struct orion_bdev *b, uint64_t len, uint64_t off, uint32_t flags) {
        struct rec *r = orion_bdev_priv(b);
        record(b, "discard");
        if (r->child)
                return orion_bdev_discard(r->child, len, off, flags);
        memset(r->data + off, 0, len);
        return 0;
}
static int rec_zero(struct orion_bdev *b, uint64_t len, uint64_t off, uint32_t flags) {
        struct rec *r = orion_bdev_priv(b);
        record(b, "zero");
        if (r->child)
                return orion_bdev_write_zeroes(r->child, len, off, flags);
        memset(r->data + off, 0, len);
        return 0;
}
static int rec_block_status(struct orion_bdev *b, uint64_t len, uint64_t off, struct orion_extents *ext) {
        struct rec *r = orion_bdev_priv(b);
        record(b, "status");
        if (r->child)
                return orion_bdev_block_status(r->child, len, off, ext);
        return orion_extents_add(ext, off, len, ORION_EXTENT_ZERO);
}
static int rec_open(struct orion_bdev *b, const struct orion_params *p, struct orion_error *err) {
        struct rec *r = orion_bdev_priv(b);
        r->child = orion_param_node(p, "child");
        struct orion_geometry g = { .size = sizeof r->data, .block_size = 512 };
        orion_bdev_set_caps(b, ORION_CAP_FLUSH | ORION_CAP_FUA | ORION_CAP_DISCARD | ORION_CAP_WRITE_ZEROES |
                                       ORION_CAP_BLOCK_STATUS);
        return orion_bdev_set_geometry(b, &g);
}
static const struct orion_param rec_params[] = { { "child", ORION_PARAM_NODE, NULL, "below", .optional = true },
                                                 { NULL } };
static const struct orion_bdev_ops rec_ops = { .pread = rec_pread, .pwrite = rec_pwrite, .flush = rec_flush,
                                               .discard = rec_discard, .write_zeroes = rec_zero,
                                               .block_status = rec_block_status };
static const struct orion_plugin rec_type = { .api_version = ORION_PLUGIN_API_VERSION, .name = "rec",
                                              .params = rec_params, .instance_size = sizeof(struct rec),
                                              .ops = &rec_ops, .open = rec_open };

static void setup(void) {
        struct orion_error err = { 0 };
        t_core_setup();
        registry_add(&rec_type, &err);
        atomic_store(&g_nlog, 0);
}

static void teardown(void) {
        t_core_teardown();
}

static void expect_order(const char *op) {
        static const char *const order[] = { "top", "mid", "bot", "leaf" };
        ck_assert_int_eq(atomic_load(&g_nlog), 4);
        for (int i = 0; i < 4; i++) {
                char want[48];
                snprintf(want, sizeof want, "%s:%s", order[i], op);
                ck_assert_msg(strcmp(g_log[i], want) == 0, "call %d was %s, expected %s", i, g_log[i], want);
        }
        atomic_store(&g_nlog, 0);
}

START_TEST(call_order) {
        t_node_add("leaf", "rec", t_params(NULL));
        t_node_add("bot", "rec", t_params("child", "leaf", NULL));
        t_node_add("mid", "rec", t_params("child", "bot", NULL));
        struct orion_bdev *top = t_node_add("top", "rec", t_params("child", "mid", NULL));
        char buf[4096];
        t_pattern(buf, sizeof buf, 0, 1);
        ck_assert_int_eq(orion_bdev_pwrite(top, buf, 4096, 8192, 0), 0);
        expect_order("write");
        ck_assert_int_eq(orion_bdev_pwrite(top, buf, 4096, 8192, ORION_FUA), 0);
        expect_order("write-fua");
        ck_assert_int_eq(orion_bdev_pread(top, buf, 4096, 8192, 0), 0);
        expect_order("read");
        ck_assert_int_eq(orion_bdev_flush(top, 0), 0);
        expect_order("flush");
        ck_assert_int_eq(orion_bdev_discard(top, 4096, 8192, 0), 0);
        expect_order("discard");
        ck_assert_int_eq(orion_bdev_write_zeroes(top, 4096, 8192, 0), 0);
        expect_order("zero");
        struct orion_extents *x = orion_extents_new(0, 16);
        ck_assert_int_eq(orion_bdev_block_status(top, 4096, 0, x), 0);
        orion_extents_free(x);
        expect_order("status");
        /* Removal order is enforced: the leaf is held by the stack above it. */
        struct orion_error err = { 0 };
        ck_assert_int_eq(graph_node_remove("leaf", &err), -EBUSY);
}
END_TEST

/* Every loadable layer that needs only `child` must pass data with passthru above and below. */
START_TEST(plugins_sandwiched) {
        registry_load_all();
        const struct orion_plugin *types[64];
        size_t n = registry_list(types, 64), tested = 0;
        for (size_t i = 0; i < n; i++) {
                const struct orion_plugin *t = types[i];
                bool simple = false, other_required = false;
                for (const struct orion_param *q = t->params; q && q->name; q++) {
                        if (strcmp(q->name, "child") == 0 && q->type == ORION_PARAM_NODE)
                                simple = true;
                        else if (!q->def && !q->optional)
                                other_required = true;
                }
                /* encrypt needs a formatted child and a key: check-encrypt sandwiches it itself */
                if (!simple || other_required || strcmp(t->name, "rec") == 0 || strcmp(t->name, "encrypt") == 0)
                        continue;
                t_node_add("m", "memory", t_params("size", "4M", NULL));
                t_node_add("below", "passthru", t_params("child", "m", NULL));
                /* The error layer's purpose is to fail; here it must be a pure pass-through. */
                struct json_object *params = t_params("child", "below", NULL);
                if (strcmp(t->name, "error") == 0)
                        json_object_object_add(params, "enabled", json_object_new_string("off"));
                t_node_add("under-test", t->name, params);
                struct orion_bdev *top = t_node_add("above", "passthru", t_params("child", "under-test", NULL));
                static char buf[65536 + 1000], back[65536 + 1000];
                t_pattern(buf, sizeof buf, 77, (uint32_t) i);
                ck_assert_msg(orion_bdev_pwrite(top, buf, sizeof buf, 12345, 0) == 0, "%s: write", t->name);
                ck_assert_msg(orion_bdev_flush(top, 0) == 0, "%s: flush", t->name);
                ck_assert_msg(orion_bdev_pread(top, back, sizeof back, 12345, 0) == 0, "%s: read", t->name);
                ck_assert_msg(memcmp(buf, back, sizeof buf) == 0, "%s: data differs", t->name);
                ck_assert_msg(orion_bdev_write_zeroes(top, 4096, 16384, 0) == 0, "%s: zero", t->name);
                ck_assert_msg(orion_bdev_pread(top, back, 4096, 16384, 0) == 0, "%s: read", t->name);
                ck_assert_msg(t_is_zero(back, 4096), "%s: zeroes read back as data", t->name);
                t_node_remove("above");
                t_node_remove("under-test");
                t_node_remove("below");
                t_node_remove("m");
                tested++;
        }
        ck_assert_msg(tested >= 3, "only %zu plugins tested (is ORION_PLUGIN_DIR set?)", tested);
}
END_TEST

int main(void) {
        Suite *s = suite_create("chain");
        TCase *tc = tcase_create("chain");
        tcase_set_timeout(tc, 60);
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_test(tc, call_order);
        tcase_add_test(tc, plugins_sandwiched);
        suite_add_tcase(s, tc);
        return t_run(s);
}
