/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Test helpers for suites that drive nodes through the real core: registry with plugins from
 * $ORION_PLUGIN_DIR, nodes built from key=value pairs, a Check runner that speaks TAP. */
#pragma once

#include <check.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "common/cleanup.h"
#include "core/core.h"

/* t_params("k1", "v1", "k2", "v2", NULL): a flat JSON object of strings. */
static inline struct json_object *t_params(const char *key, ...) {
        struct json_object *o = json_object_new_object();
        va_list ap;

        va_start(ap, key);
        for (const char *k = key; k; k = va_arg(ap, const char *)) {
                const char *v = va_arg(ap, const char *);

                json_object_object_add(o, k, json_object_new_string(v));
        }
        va_end(ap);
        return o;
}

/* Add a node; returns -errno and fills err on failure (err may be NULL). Consumes params. */
static inline int t_node_add_err(const char *name, const char *type, struct json_object *params,
                                 struct orion_bdev **ret, struct orion_error *err) {
        int r = graph_node_add(name, type, params, ret, err);

        json_object_put(params);
        return r;
}

/* Add a node that must open. */
static inline struct orion_bdev *t_node_add(const char *name, const char *type, struct json_object *params) {
        struct orion_error err = { 0 };
        struct orion_bdev *b = NULL;
        int r = t_node_add_err(name, type, params, &b, &err);

        ck_assert_msg(r == 0, "node '%s' (%s): %d %s", name, type, r, err.msg);
        ck_assert_ptr_nonnull(b);
        return b;
}

static inline void t_node_remove(const char *name) {
        struct orion_error err = { 0 };
        int r = graph_node_remove(name, &err);

        ck_assert_msg(r == 0, "remove '%s': %d %s", name, r, err.msg);
}

/* Call from each test's setup/teardown (checked fixtures run in the forked child). */
static inline void t_core_setup(void) {
        ck_assert_int_eq(registry_init(getenv("ORION_PLUGIN_DIR")), 0);
}

static inline void t_core_teardown(void) {
        graph_close_all();
        registry_done();
}

/* Run suite s with TAP on stdout; returns the process exit code. */
static inline int t_run(Suite *s) {
        SRunner *sr = srunner_create(s);
        int failed;

        srunner_set_tap(sr, "-");
        srunner_run_all(sr, CK_SILENT);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/* Fill buf with a pattern derived from (seed, offset) so misplaced data is detected. */
static inline void t_pattern(void *buf, size_t len, uint64_t off, uint32_t seed) {
        unsigned char *p = buf;

        for (size_t i = 0; i < len; i++) {
                uint64_t x = (off + i) * 0x9E3779B97F4A7C15ull ^ seed;

                p[i] = (unsigned char) (x >> 56);
        }
}

static inline bool t_is_zero(const void *buf, size_t len) {
        const unsigned char *p = buf;

        for (size_t i = 0; i < len; i++)
                if (p[i])
                        return false;
        return true;
}
