/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit tests: oriond.conf parsing, good and bad. */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "core/core.h"

static int parse(const char *text, struct daemon_config *cfg, struct orion_error *err) {
        config_init(cfg);
        memset(err, 0, sizeof *err);
        return config_parse_string(cfg, text, err);
}

START_TEST(full_config) {
        struct daemon_config cfg;
        struct orion_error err;
        const char *text = "[daemon]\n"
                           "state-dir = /tmp/st\n"
                           "control-socket = /tmp/st/ctl.sock ; comment\n"
                           "nbd-listen = 127.0.0.1:10809 unix:/tmp/st/nbd.sock\n"
                           "workers = 8\n"
                           "nbd-tls = off\n"
                           "\n"
                           "[node disk0]\n"
                           "type = memory\n"
                           "size = 1G\n"
                           "[node vol0]\n"
                           "type = delay\n"
                           "child = disk0\n"
                           "[export vol0]\n"
                           "node = vol0\n"
                           "protocols = nbd fuse\n"
                           "read-only = yes\n"
                           "fuse-mode = 0640\n";
        ck_assert_msg(parse(text, &cfg, &err) == 0, "%s", err.msg);
        ck_assert_str_eq(cfg.state_dir, "/tmp/st");
        ck_assert_str_eq(cfg.control_socket, "/tmp/st/ctl.sock");
        ck_assert_str_eq(cfg.nbd_listen[0], "127.0.0.1:10809");
        ck_assert_str_eq(cfg.nbd_listen[1], "unix:/tmp/st/nbd.sock");
        ck_assert_ptr_null(cfg.nbd_listen[2]);
        ck_assert_uint_eq(cfg.workers, 8);
        ck_assert_str_eq(config_opt(&cfg, "nbd-tls"), "off");
        ck_assert_ptr_null(config_opt(&cfg, "nbd-nothing"));
        ck_assert_uint_eq(cfg.nnodes, 2);
        ck_assert_str_eq(cfg.nodes[0].name, "disk0");
        ck_assert_str_eq(cfg.nodes[0].type, "memory");
        struct json_object *v;
        ck_assert(json_object_object_get_ex(cfg.nodes[0].params, "size", &v));
        ck_assert_str_eq(json_object_get_string(v), "1G");
        ck_assert_str_eq(cfg.nodes[1].type, "delay");
        ck_assert_uint_eq(cfg.nexports, 1);
        ck_assert_str_eq(cfg.exports[0].node, "vol0");
        ck_assert_uint_eq(cfg.exports[0].protocols, PROTO_NBD | PROTO_FUSE);
        ck_assert(cfg.exports[0].readonly);
        ck_assert(json_object_object_get_ex(cfg.exports[0].opts, "fuse-mode", &v));
        config_done(&cfg);
}
END_TEST

static void expect_error(const char *text, const char *needle) {
        struct daemon_config cfg;
        struct orion_error err;
        int r = parse(text, &cfg, &err);
        ck_assert_msg(r < 0, "accepted: %s", text);
        ck_assert_msg(strstr(err.msg, needle), "error '%s' lacks '%s'", err.msg, needle);
        config_done(&cfg);
}

START_TEST(bad_configs) {
        expect_error("[daemon]\nbogus = 1\n", "line 2: unknown key 'bogus'");
        expect_error("[wrong]\na = b\n", "unknown section [wrong]");
        expect_error("a = b\n", "outside any section");
        expect_error("[node x]\nsize = 1G\n", "node 'x' has no 'type'");
        expect_error("[node x]\ntype = memory\n[node x]\ntype = memory\n", "given twice");
        expect_error("[node x]\ntype = memory\ntype = null\n", "'type' given twice");
        expect_error("[node x]\ntype = memory\nsize = 1\nsize = 2\n", "'size' given twice");
        expect_error("[node a/b]\ntype = memory\n", "invalid node name");
        expect_error("[export e]\nprotocols = nbd\n", "has no 'node'");
        expect_error("[export e]\nnode = missing\n", "no node named 'missing'");
        expect_error("[node x]\ntype=memory\n[export e]\nnode = x\nprotocols = smb\n", "protocols = 'smb'");
        expect_error("[node x]\ntype=memory\n[export e]\nnode = x\nread-only = perhaps\n", "expected on/off");
        expect_error("[node x]\ntype=memory\n[export e]\nnode = x\ncolour = red\n", "unknown key 'colour'");
        expect_error("[daemon]\nworkers = lots\n", "workers");
        expect_error("[daemon\nx=y\n", "line 1");
        expect_error("[daemon]\nno equals sign here\n", "line 2");
}
END_TEST

START_TEST(default_config) {
        struct daemon_config cfg;
        struct orion_error err = { 0 };
        config_init(&cfg);
        free(cfg.state_dir);
        cfg.state_dir = strdup("/tmp/orion-x");
        ck_assert_int_eq(config_add_default(&cfg, &err), 0);
        ck_assert_uint_eq(cfg.nnodes, 1);
        ck_assert_str_eq(cfg.nodes[0].type, "file");
        struct json_object *v;
        ck_assert(json_object_object_get_ex(cfg.nodes[0].params, "path", &v));
        ck_assert_str_eq(json_object_get_string(v), "/tmp/orion-x/vol0.img");
        ck_assert(json_object_object_get_ex(cfg.nodes[0].params, "size", &v));
        ck_assert_str_eq(json_object_get_string(v), "1G");
        ck_assert_uint_eq(cfg.nexports, 1);
        ck_assert(cfg.exports[0].protocols & PROTO_NBD);
        ck_assert_str_eq(cfg.nbd_listen[0], "127.0.0.1:10809");
        config_done(&cfg);
}
END_TEST

START_TEST(missing_file) {
        struct daemon_config cfg;
        struct orion_error err = { 0 };
        config_init(&cfg);
        ck_assert_int_eq(config_parse_file(&cfg, "/nonexistent/oriond.conf", &err), -ENOENT);
        ck_assert(strstr(err.msg, "/nonexistent/oriond.conf"));
        config_done(&cfg);
}
END_TEST

int main(void) {
        Suite *s = suite_create("config");
        TCase *tc = tcase_create("parse");
        tcase_add_test(tc, full_config);
        tcase_add_test(tc, bad_configs);
        tcase_add_test(tc, default_config);
        tcase_add_test(tc, missing_file);
        suite_add_tcase(s, tc);
        SRunner *sr = srunner_create(s);
        srunner_set_tap(sr, "-");
        srunner_run_all(sr, CK_SILENT);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
