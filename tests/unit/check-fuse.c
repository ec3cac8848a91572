/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit tests of the FUSE export without a mount: key parsing, the image-file table's lifetime
 * rules (export references held by open files), and SEEK_DATA/SEEK_HOLE and st_blocks. */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "export/fuse/fuse-export.c"
#include "export/fuse/fuse-ops.c"

static struct orion_bdev *g_node;

static void setup(void) {
        struct orion_error err = { 0 };
        struct json_object *p = json_object_new_object();

        ck_assert_int_eq(registry_init(NULL), 0);
        json_object_object_add(p, "size", json_object_new_string("4M"));
        ck_assert_int_eq(graph_node_add("mem", "memory", p, &g_node, &err), 0);
        json_object_put(p);
}

static void teardown(void) {
        ck_assert_int_eq(graph_node_remove("mem", NULL), 0);
}

/* An export as export_add makes it, without starting any driver. */
static struct orion_export *fake_export(const char *name, struct json_object *opts, bool ro) {
        struct orion_export *e = calloc(1, sizeof *e);

        ck_assert_ptr_nonnull(e);
        e->name = strdup(name);
        e->node = g_node;
        e->readonly = ro;
        e->opts = opts ? opts : json_object_new_object();
        atomic_init(&e->refs, 1);
        graph_lock();
        g_node->nexports++;
        graph_unlock();
        return e;
}

static struct json_object *kv(const char *k, const char *v) {
        struct json_object *o = json_object_new_object();
        json_object_object_add(o, k, json_object_new_string(v));
        return o;
}

START_TEST(modes_and_ids) {
        struct orion_error err = { 0 };
        mode_t m;
        uint32_t id;
        bool direct;

        ck_assert_int_eq(parse_mode("0640", &m, &err), 0);
        ck_assert_uint_eq(m, 0640);
        ck_assert_int_eq(parse_mode("755", &m, &err), 0);
        ck_assert_uint_eq(m, 0755);
        const char *bad[] = { "", "999", "0o644", "12345", "1777", "-1", "64a" };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                memset(&err, 0, sizeof err);
                ck_assert_int_eq(parse_mode(bad[i], &m, &err), -EINVAL);
                ck_assert(strstr(err.msg, "fuse-mode"));
        }
        ck_assert_int_eq(parse_id("fuse-uid", "1234", false, &id, &err), 0);
        ck_assert_uint_eq(id, 1234);
        ck_assert_int_eq(parse_id("fuse-uid", "root", false, &id, &err), 0);
        ck_assert_uint_eq(id, 0);
        ck_assert_int_eq(parse_id("fuse-gid", "root", true, &id, &err), 0);
        ck_assert_uint_eq(id, 0);
        ck_assert_int_eq(parse_id("fuse-uid", "-1", false, &id, &err), -ERANGE);
        ck_assert_int_eq(parse_id("fuse-uid", "4294967295", false, &id, &err), -ERANGE);
        ck_assert_int_eq(parse_id("fuse-uid", "no-such-user-xyz", false, &id, &err), -EINVAL);
        ck_assert_int_eq(parse_cache("direct", &direct, &err), 0);
        ck_assert(direct);
        ck_assert_int_eq(parse_cache("page", &direct, &err), 0);
        ck_assert(!direct);
        ck_assert_int_eq(parse_cache("Page", &direct, &err), -EINVAL);
}
END_TEST

START_TEST(daemon_section) {
        struct daemon_config cfg;
        struct orion_error err = { 0 };

        config_init(&cfg);
        json_object_object_add(cfg.opts, "fuse-mode", json_object_new_string("0604"));
        json_object_object_add(cfg.opts, "fuse-uid", json_object_new_string("77"));
        json_object_object_add(cfg.opts, "fuse-cache", json_object_new_string("page"));
        json_object_object_add(cfg.opts, "fuse-threads", json_object_new_string("8"));
        json_object_object_add(cfg.opts, "fuse-allow-other", json_object_new_string("yes"));
        json_object_object_add(cfg.opts, "nbd-other", json_object_new_string("ignored"));
        ck_assert_int_eq(parse_daemon_opts(&cfg, &err), 0);
        ck_assert_uint_eq(g_fexp.defaults.mode, 0604);
        ck_assert_uint_eq(g_fexp.defaults.uid, 77);
        ck_assert(!g_fexp.defaults.direct);
        ck_assert_uint_eq(g_fexp.threads, 8);
        ck_assert(g_fexp.allow_other);

        json_object_object_add(cfg.opts, "fuse-threads", json_object_new_string("0"));
        ck_assert_int_eq(parse_daemon_opts(&cfg, &err), -EINVAL);
        json_object_object_add(cfg.opts, "fuse-threads", json_object_new_string("4"));
        memset(&err, 0, sizeof err);
        json_object_object_add(cfg.opts, "fuse-mod", json_object_new_string("0600"));
        ck_assert_int_eq(parse_daemon_opts(&cfg, &err), -EINVAL);
        ck_assert(strstr(err.msg, "fuse-mod"));
        config_done(&cfg);

        /* Restore the built-in defaults for the other tests. */
        config_init(&cfg);
        ck_assert_int_eq(parse_daemon_opts(&cfg, &err), 0);
        ck_assert_uint_eq(g_fexp.defaults.mode, 0600);
        ck_assert(g_fexp.defaults.direct);
        config_done(&cfg);
}
END_TEST

START_TEST(export_overrides) {
        struct orion_error err = { 0 };
        struct orion_export *e = fake_export("v", kv("fuse-mode", "0640"), true);

        ck_assert_int_eq(fexp_export_added(e, &err), 0);
        struct fexp_file *f = fexp_lookup("v.img");
        ck_assert_ptr_nonnull(f);
        struct stat st;
        file_stat(f, &st);
        ck_assert_uint_eq(st.st_mode, S_IFREG | 0440); /* read-only: write bits dropped */
        ck_assert_int_eq(st.st_size, 4 << 20);
        fexp_put(f);
        fexp_forget(f->ino, 1);
        fexp_export_removed(e);
        export_unref(e);
        ck_assert_ptr_null(g_fexp.files);

        e = fake_export("w", kv("fuse-size", "1"), false);
        memset(&err, 0, sizeof err);
        ck_assert_int_eq(fexp_export_added(e, &err), -EINVAL);
        ck_assert(strstr(err.msg, "fuse-size"));
        export_unref(e);
        ck_assert_ptr_null(g_fexp.files);
}
END_TEST

/* An open file keeps the export (and so the node) after removal; the kernel's lookup count
 * keeps only the table entry. */
START_TEST(lifetime) {
        struct orion_error err = { 0 };
        struct orion_export *e = fake_export("v", NULL, false);

        ck_assert_int_eq(fexp_export_added(e, &err), 0);
        ck_assert_int_eq(atomic_load(&e->refs), 2);
        ck_assert_ptr_null(fexp_lookup("nope.img"));
        struct fexp_file *f = fexp_lookup("v.img");
        ck_assert_ptr_nonnull(f);
        fuse_ino_t ino = f->ino;
        ck_assert_uint_gt(ino, FUSE_ROOT_ID);
        fexp_put(f);                      /* end of the lookup request */
        struct fexp_file *open = fexp_get(ino); /* open() */
        ck_assert_ptr_eq(open, f);

        fexp_export_removed(e);
        ck_assert_ptr_null(fexp_lookup("v.img")); /* the name is gone */
        export_unref(e);                  /* the core's reference */
        ck_assert_int_eq(atomic_load(&e->refs), 1);
        ck_assert_int_eq(graph_node_remove("mem", NULL), -EBUSY);
        struct fexp_file *again = fexp_get(ino); /* fstat on the open file still works */
        ck_assert_ptr_eq(again, f);
        fexp_put(again);

        fexp_put(open);                   /* release(): the export goes */
        ck_assert_uint_eq(g_node->nexports, 0);
        ck_assert_ptr_null(fexp_get(ino)); /* stale inode */
        ck_assert_ptr_eq(g_fexp.files, f); /* still known to the kernel */
        fexp_forget(ino, 1);
        ck_assert_ptr_null(g_fexp.files);

        /* Inode numbers are never reused. */
        e = fake_export("v", NULL, false);
        ck_assert_int_eq(fexp_export_added(e, &err), 0);
        ck_assert_uint_gt(g_fexp.files->ino, ino);
        fexp_export_removed(e);
        export_unref(e);
        ck_assert_ptr_null(g_fexp.files);
}
END_TEST

START_TEST(seek_and_blocks) {
        struct orion_error err = { 0 };
        struct orion_export *e = fake_export("v", NULL, false);
        uint64_t pos;
        static char buf[65536];

        ck_assert_int_eq(fexp_export_added(e, &err), 0);
        struct fexp_file *f = fexp_lookup("v.img");
        ck_assert_ptr_nonnull(f);

        ck_assert_int_eq(file_seek(f, 0, SEEK_DATA, &pos), -ENXIO);
        ck_assert_int_eq(file_seek(f, 0, SEEK_HOLE, &pos), 0);
        ck_assert_uint_eq(pos, 0);
        ck_assert_uint_eq(file_allocated(f, 4 << 20), 0);

        memset(buf, 0xab, sizeof buf);
        ck_assert_int_eq(orion_bdev_pwrite(g_node, buf, sizeof buf, 1 << 20, 0), 0);
        ck_assert_int_eq(orion_bdev_pwrite(g_node, buf, sizeof buf, (4 << 20) - 65536, 0), 0);
        ck_assert_int_eq(file_seek(f, 0, SEEK_DATA, &pos), 0);
        ck_assert_uint_eq(pos, 1 << 20);
        ck_assert_int_eq(file_seek(f, (1 << 20) + 100, SEEK_DATA, &pos), 0);
        ck_assert_uint_eq(pos, (1 << 20) + 100); /* inside data: stays */
        ck_assert_int_eq(file_seek(f, 1 << 20, SEEK_HOLE, &pos), 0);
        ck_assert_uint_eq(pos, (1 << 20) + 65536);
        ck_assert_int_eq(file_seek(f, (1 << 20) + 65536, SEEK_DATA, &pos), 0);
        ck_assert_uint_eq(pos, (4 << 20) - 65536);
        ck_assert_int_eq(file_seek(f, (4 << 20) - 65536, SEEK_HOLE, &pos), 0);
        ck_assert_uint_eq(pos, 4 << 20); /* the end is a hole */
        ck_assert_int_eq(file_seek(f, 4 << 20, SEEK_DATA, &pos), -ENXIO);
        atomic_store(&f->alloc_ns, 0);
        ck_assert_uint_eq(file_allocated(f, 4 << 20), 2 * 65536);

        fexp_put(f);
        fexp_forget(f->ino, 1);
        fexp_export_removed(e);
        export_unref(e);
}
END_TEST

START_TEST(errnos) {
        ck_assert_int_eq(to_errno(0), 0);
        ck_assert_int_eq(to_errno(-EIO), EIO);
        ck_assert_int_eq(to_errno(-ENOSPC), ENOSPC);
        ck_assert_int_eq(to_errno(-EROFS), EROFS);
        ck_assert_int_eq(to_errno(-ENOTSUP), EOPNOTSUPP);
        ck_assert_int_eq(to_errno(-100000), EIO);
}
END_TEST

int main(void) {
        Suite *s = suite_create("fuse");
        TCase *tc = tcase_create("fuse");

        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_test(tc, modes_and_ids);
        tcase_add_test(tc, daemon_section);
        tcase_add_test(tc, export_overrides);
        tcase_add_test(tc, lifetime);
        tcase_add_test(tc, seek_and_blocks);
        tcase_add_test(tc, errnos);
        suite_add_tcase(s, tc);
        SRunner *sr = srunner_create(s);
        srunner_set_tap(sr, "-");
        srunner_run_all(sr, CK_SILENT);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
