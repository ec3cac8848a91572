/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit tests: node graph creation, parameter validation and reference counting. */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "core/core.h"

/* A one-child layer declared here so the graph can be tested without plugins. */
static int layer_pread(struct orion_bdev *b, void *buf, uint64_t len, uint64_t off, uint32_t flags) {
        struct orion_bdev **child = orion_bdev_priv(b);
        return orion_bdev_pread(*child, buf, len, off, flags);
}
static int layer_open(struct orion_bdev *b, const struct orion_params *p, struct orion_error *err) {
        struct orion_bdev **child = orion_bdev_priv(b);
        *child = orion_param_node(p, "child");
        struct orion_geometry g = *orion_bdev_geometry(*child);
        if (orion_param_bool(p, "fail"))
                return orion_error_set(err, EIO, "asked to fail");
        orion_bdev_set_caps(b, ORION_CAP_READONLY);
        return orion_bdev_set_geometry(b, &g);
}
static const struct orion_param layer_params[] = {
        { "child", ORION_PARAM_NODE, NULL, "child" },
        { "fail", ORION_PARAM_BOOL, "off", "fail open" },
        { "extra", ORION_PARAM_NODES, NULL, "more children", .optional = true },
        { "url", ORION_PARAM_STRING, NULL, "a URL", .optional = true },
        { "passphrase", ORION_PARAM_STRING, NULL, "a secret", .optional = true, .secret = true },
        { NULL },
};
static const struct orion_bdev_ops layer_ops = { .pread = layer_pread };
static const struct orion_plugin layer_type = { .api_version = ORION_PLUGIN_API_VERSION, .name = "testlayer",
                                                .params = layer_params, .instance_size = sizeof(void *),
                                                .ops = &layer_ops, .open = layer_open };

static struct json_object *kv(const char *k1, const char *v1, const char *k2, const char *v2) {
        struct json_object *o = json_object_new_object();
        if (k1)
                json_object_object_add(o, k1, json_object_new_string(v1));
        if (k2)
                json_object_object_add(o, k2, json_object_new_string(v2));
        return o;
}

static void setup(void) {
        ck_assert_int_eq(registry_init(NULL), 0);
        struct orion_error err = { 0 };
        registry_add(&layer_type, &err); /* EEXIST on re-run in the same process is fine */
}

static int add(const char *name, const char *type, struct json_object *params, struct orion_error *err) {
        memset(err, 0, sizeof *err);
        int r = graph_node_add(name, type, params, NULL, err);
        json_object_put(params);
        return r;
}

START_TEST(refcounts) {
        struct orion_error err;
        ck_assert_int_eq(add("m0", "memory", kv("size", "1M", NULL, NULL), &err), 0);
        ck_assert_int_eq(add("m1", "memory", kv("size", "1M", NULL, NULL), &err), 0);
        ck_assert_int_eq(add("l0", "testlayer", kv("child", "m0", "extra", "m1"), &err), 0);
        struct orion_bdev *m0 = graph_node_find("m0"), *l0 = graph_node_find("l0");
        ck_assert_ptr_nonnull(m0);
        ck_assert_uint_eq(m0->nparents, 1);
        ck_assert_uint_eq(l0->nchildren, 2);
        ck_assert(orion_bdev_caps(l0) & ORION_CAP_READONLY);

        /* A node with a parent cannot go; neither can one with an export. */
        memset(&err, 0, sizeof err);
        ck_assert_int_eq(graph_node_remove("m0", &err), -EBUSY);
        ck_assert_msg(strstr(err.msg, "1 parent node"), "%s", err.msg);
        memset(&err, 0, sizeof err);
        ck_assert_int_eq(graph_node_remove("m1", &err), -EBUSY);

        /* Run-time children count too. */
        ck_assert_int_eq(add("m2", "memory", kv("size", "1M", NULL, NULL), &err), 0);
        struct orion_bdev *m2 = orion_bdev_attach_child(l0, "m2", &err);
        ck_assert_ptr_nonnull(m2);
        ck_assert_uint_eq(m2->nparents, 1);
        ck_assert_int_eq(graph_node_remove("m2", &err), -EBUSY);
        orion_bdev_release_child(l0, m2);
        ck_assert_uint_eq(m2->nparents, 0);
        memset(&err, 0, sizeof err);
        ck_assert_int_eq(graph_node_remove("m2", &err), 0);
        ck_assert_ptr_null(orion_bdev_attach_child(l0, "nope", &err));

        memset(&err, 0, sizeof err);
        ck_assert_int_eq(graph_node_remove("l0", &err), 0);
        ck_assert_uint_eq(m0->nparents, 0);
        ck_assert_int_eq(graph_node_remove("m0", &err), 0);
        ck_assert_int_eq(graph_node_remove("m1", &err), 0);
        ck_assert_int_eq(graph_node_remove("m0", &err), -ENOENT);
        ck_assert_uint_eq(graph_node_list(NULL, 0), 0);
}
END_TEST

START_TEST(bad_params) {
        struct orion_error err;
        ck_assert_int_eq(add("m0", "memory", kv("size", "1M", NULL, NULL), &err), 0);
        ck_assert_int_eq(add("m0", "memory", kv("size", "1M", NULL, NULL), &err), -EEXIST);
        ck_assert_int_eq(add("x", "memory", kv("size", "1M", "colour", "red"), &err), -EINVAL);
        ck_assert_msg(strstr(err.msg, "no parameter 'colour'"), "%s", err.msg);
        ck_assert_int_eq(add("x", "memory", kv(NULL, NULL, NULL, NULL), &err), -EINVAL);
        ck_assert_msg(strstr(err.msg, "needs parameter 'size'"), "%s", err.msg);
        ck_assert_int_eq(add("x", "memory", kv("size", "lots", NULL, NULL), &err), -EINVAL);
        ck_assert_msg(strstr(err.msg, "not a size"), "%s", err.msg);
        ck_assert_int_eq(add("x", "memory", kv("size", "1000", NULL, NULL), &err), -EINVAL);
        ck_assert_int_eq(add("x", "nosuchtype", kv(NULL, NULL, NULL, NULL), &err), -ENOENT);
        ck_assert_msg(strstr(err.msg, "unknown node type 'nosuchtype'"), "%s", err.msg);
        ck_assert_int_eq(add("x", "testlayer", kv("child", "ghost", NULL, NULL), &err), -ENOENT);
        ck_assert_int_eq(add("x", "testlayer", kv("child", "m0 m0", NULL, NULL), &err), -EINVAL);
        ck_assert_int_eq(add("x", "testlayer", kv("child", "m0", "fail", "on"), &err), -EIO);
        ck_assert_msg(strstr(err.msg, "asked to fail"), "%s", err.msg);
        ck_assert_int_eq(add("x", "testlayer", kv("child", "m0", "fail", "maybe"), &err), -EINVAL);
        ck_assert_int_eq(add("bad/name", "memory", kv("size", "1M", NULL, NULL), &err), -EINVAL);
        /* Failed opens left no references behind. */
        ck_assert_uint_eq(graph_node_find("m0")->nparents, 0);
        ck_assert_int_eq(graph_node_remove("m0", &err), 0);
}
END_TEST

START_TEST(node_info) {
        struct orion_error err;
        ck_assert_int_eq(add("m0", "memory", kv("size", "1M", "block-size", "4096"), &err), 0);
        struct json_object *o = json_object_new_object();
        graph_node_info(graph_node_find("m0"), o, true);
        struct json_object *v;
        ck_assert(json_object_object_get_ex(o, "size", &v));
        ck_assert_int_eq(json_object_get_int64(v), 1 << 20);
        ck_assert(json_object_object_get_ex(o, "block-size", &v));
        ck_assert_int_eq(json_object_get_int(v), 4096);
        ck_assert(json_object_object_get_ex(o, "stats", &v));
        ck_assert(json_object_object_get_ex(o, "health", &v));
        ck_assert_str_eq(json_object_get_string(v), "ok");
        json_object_put(o);
        orion_bdev_set_health(graph_node_find("m0"), ORION_HEALTH_DEGRADED, "member %d gone", 2);
        o = json_object_new_object();
        graph_node_info(graph_node_find("m0"), o, false);
        ck_assert(json_object_object_get_ex(o, "health-message", &v));
        ck_assert_str_eq(json_object_get_string(v), "member 2 gone");
        json_object_put(o);

        /* Credentials in a URL parameter never show in node-info. */
        ck_assert_int_eq(add("l1", "testlayer", kv("child", "m0", "url", "iscsi://bob%s3cret@host:3260/iqn.x/0"), &err), 0);
        o = json_object_new_object();
        graph_node_info(graph_node_find("l1"), o, false);
        struct json_object *params;
        ck_assert(json_object_object_get_ex(o, "params", &params));
        ck_assert(json_object_object_get_ex(params, "url", &v));
        ck_assert_str_eq(json_object_get_string(v), "iscsi://bob%***@host:3260/iqn.x/0");
        ck_assert(json_object_object_get_ex(params, "child", &v));
        ck_assert_str_eq(json_object_get_string(v), "m0");
        json_object_put(o);
        ck_assert_int_eq(add("l2", "testlayer", kv("child", "m0", "passphrase", "hunter2"), &err), 0);
        o = json_object_new_object();
        graph_node_info(graph_node_find("l2"), o, false);
        ck_assert(json_object_object_get_ex(o, "params", &params));
        ck_assert(json_object_object_get_ex(params, "passphrase", &v));
        ck_assert_str_eq(json_object_get_string(v), "***");
        json_object_put(o);
        graph_close_all();
}
END_TEST

int main(void) {
        Suite *s = suite_create("graph");
        TCase *tc = tcase_create("graph");
        tcase_add_checked_fixture(tc, setup, NULL);
        tcase_add_test(tc, refcounts);
        tcase_add_test(tc, bad_params);
        tcase_add_test(tc, node_info);
        suite_add_tcase(s, tc);
        SRunner *sr = srunner_create(s);
        srunner_set_tap(sr, "-");
        srunner_run_all(sr, CK_SILENT);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
