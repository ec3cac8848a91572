/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Control protocol: request parsing (malformed, oversized, nested, trailing bytes), replies, and
 * dispatch of every verb's error paths against a real graph of memory nodes. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "core/core.h"
#include "daemon/control.h"

static int g_shutdowns;

static void on_shutdown(void *userdata) {
        g_shutdowns++;
}

static void setup(void) {
        ck_assert_int_eq(registry_init(NULL), 0); /* $ORION_PLUGIN_DIR: the build tree */
        control_set_context(&(struct control_context) { .shutdown = on_shutdown });
        g_shutdowns = 0;
}

static void teardown(void) {
        export_remove_all();
        graph_close_all();
        registry_done();
}

/* Send one line; returns the parsed reply (never NULL: the reply must be valid JSON). */
static struct json_object *call(const char *line) {
        char *text = control_handle_line(line, strlen(line));
        ck_assert_ptr_nonnull(text);
        ck_assert_ptr_null(strchr(text, '\n')); /* one reply is one line */
        struct json_object *o = json_tokener_parse(text);
        ck_assert_msg(o != NULL, "reply is not JSON: %s", text);
        free(text);
        return o;
}

static struct json_object *field(struct json_object *o, const char *k) {
        struct json_object *v = NULL;
        return json_object_object_get_ex(o, k, &v) ? v : NULL;
}

/* Expect {"ok":false,"errno":code,"error":"...needle..."}. */
static void expect_error(const char *line, int code, const char *needle) {
        struct json_object *o = call(line);
        ck_assert_msg(!json_object_get_boolean(field(o, "ok")), "'%s' succeeded", line);
        ck_assert_int_eq(json_object_get_int(field(o, "errno")), code);
        const char *msg = json_object_get_string(field(o, "error"));
        ck_assert_ptr_nonnull(msg);
        if (needle)
                ck_assert_msg(strstr(msg, needle), "'%s': error '%s' lacks '%s'", line, msg, needle);
        json_object_put(o);
}

/* Expect success; returns the reply (the caller frees). */
static struct json_object *expect_ok(const char *line) {
        struct json_object *o = call(line);
        ck_assert_msg(json_object_get_boolean(field(o, "ok")), "'%s' failed: %s", line,
                      json_object_get_string(field(o, "error")));
        ck_assert(json_object_object_get_ex(o, "result", NULL));
        return o;
}

START_TEST(parse_good) {
        struct control_request req;
        struct orion_error err = { 0 };
        const char *l = "{\"cmd\":\"node-info\",\"args\":{\"name\":\"x\"},\"id\":7}\r\n";
        ck_assert_int_eq(control_parse_request(l, strlen(l), &req, &err), 0);
        ck_assert_str_eq(req.cmd, "node-info");
        ck_assert_str_eq(json_object_get_string(field(req.args, "name")), "x");
        ck_assert_int_eq(json_object_get_int(req.id), 7);
        control_request_done(&req);

        /* args absent: an empty object, so verbs never see NULL */
        l = "  {\"cmd\":\"status\"}  ";
        ck_assert_int_eq(control_parse_request(l, strlen(l), &req, &err), 0);
        ck_assert(json_object_is_type(req.args, json_type_object));
        ck_assert_int_eq(json_object_object_length(req.args), 0);
        ck_assert_ptr_null(req.id);
        control_request_done(&req);
        ck_assert_int_eq(err.code, 0);
}
END_TEST

static void parse_bad(const char *line, size_t len, int code, const char *needle) {
        struct control_request req;
        struct orion_error err = { 0 };
        ck_assert_int_eq(control_parse_request(line, len, &req, &err), -code);
        ck_assert_int_eq(err.code, code);
        ck_assert_msg(strstr(err.msg, needle), "'%.40s': '%s' lacks '%s'", line, err.msg, needle);
        ck_assert_ptr_null(req.cmd);
        ck_assert_ptr_null(req.args);
}

START_TEST(parse_malformed) {
        static const struct {
                const char *line, *needle;
        } cases[] = {
                { "", "empty" },
                { " \r\n", "empty" },
                { "not json", "JSON object" },
                { "{not json", "invalid JSON" },
                { "{\"cmd\":\"sta", "incomplete" },
                { "{\"cmd\":\"status\"", "incomplete" },
                { "[\"status\"]", "JSON object" },
                { "\"status\"", "JSON object" },
                { "42", "JSON object" },
                { "null", "JSON object" },
                { "{}", "\"cmd\"" },
                { "{\"cmd\":5}", "\"cmd\"" },
                { "{\"cmd\":null}", "\"cmd\"" },
                { "{\"cmd\":[\"status\"]}", "\"cmd\"" },
                { "{\"cmd\":\"status\",\"args\":[]}", "\"args\"" },
                { "{\"cmd\":\"status\",\"args\":\"x\"}", "\"args\"" },
                { "{\"cmd\":\"status\",\"bogus\":1}", "unknown request field 'bogus'" },
                { "{\"cmd\":\"status\"} x", "trailing" },
                { "{\"cmd\":\"status\"}{\"cmd\":\"status\"}", "trailing" },
                { "{\"cmd\":\"status\"}}", "trailing" },
                { "{\"cmd\":\"st\\u00", "invalid JSON" },
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
                parse_bad(cases[i].line, strlen(cases[i].line), EINVAL, cases[i].needle);

        /* An embedded NUL must not cut the line short into something valid. */
        static const char nul[] = "{\"cmd\":\"status\"}\0garbage";
        parse_bad(nul, sizeof nul - 1, EINVAL, "NUL");
}
END_TEST

START_TEST(parse_limits) {
        /* Too deep: refused, not a stack overflow. */
        size_t depth = 10000;
        char *deep = malloc(2 * depth + 64);
        ck_assert_ptr_nonnull(deep);
        size_t n = (size_t) snprintf(deep, 64, "{\"cmd\":\"status\",\"args\":{\"a\":");
        for (size_t i = 0; i < depth; i++)
                deep[n++] = '[';
        for (size_t i = 0; i < depth; i++)
                deep[n++] = ']';
        deep[n++] = '}';
        deep[n++] = '}';
        parse_bad(deep, n, EINVAL, "invalid JSON");
        free(deep);

        /* Longer than the cap: refused before any parsing. */
        size_t big = CONTROL_MAX_REQUEST + 1;
        char *line = malloc(big);
        ck_assert_ptr_nonnull(line);
        memset(line, ' ', big);
        memcpy(line, "{\"cmd\":\"status\"}", 16);
        parse_bad(line, big, E2BIG, "longer than");
        free(line);
}
END_TEST

START_TEST(unknown_verbs) {
        expect_error("{\"cmd\":\"reboot\"}", EOPNOTSUPP, "unknown command 'reboot'");
        expect_error("{\"cmd\":\"\"}", EOPNOTSUPP, "unknown command");
        expect_error("{\"cmd\":\"STATUS\"}", EOPNOTSUPP, "unknown command");
        /* Malformed requests become error replies, never a crash or an empty reply. */
        expect_error("}{", EINVAL, "JSON object");
        expect_error("{{", EINVAL, "invalid JSON");
        expect_error("{\"cmd\":\"status\",\"args\":[1]}", EINVAL, "\"args\"");
        ck_assert(control_verb_known("node-add"));
        ck_assert(!control_verb_known("reboot"));
        ck_assert(control_verb_is_readonly("status"));
        ck_assert(!control_verb_is_readonly("node-add"));
        ck_assert(!control_verb_is_readonly("shutdown"));
}
END_TEST

START_TEST(reply_shape) {
        struct json_object *o = expect_ok("{\"cmd\":\"status\",\"id\":\"abc\"}");
        ck_assert_str_eq(json_object_get_string(field(o, "id")), "abc");
        struct json_object *r = field(o, "result");
        ck_assert_str_eq(json_object_get_string(field(r, "version")), ORION_VERSION);
        ck_assert(json_object_is_type(field(r, "nodes"), json_type_array));
        ck_assert(json_object_is_type(field(r, "exports"), json_type_array));
        ck_assert(json_object_is_type(field(r, "drivers"), json_type_object));
        ck_assert_str_eq(json_object_get_string(field(r, "health")), "ok");
        json_object_put(o);

        o = expect_ok("{\"cmd\":\"types\"}");
        r = field(o, "result");
        bool memory = false;
        for (size_t i = 0; i < json_object_array_length(r); i++)
                memory |= strcmp(json_object_get_string(field(json_object_array_get_idx(r, i), "name")), "memory") == 0;
        ck_assert(memory);
        json_object_put(o);
        o = expect_ok("{\"cmd\":\"types\",\"args\":{\"name\":\"null\"}}");
        ck_assert_str_eq(json_object_get_string(field(field(o, "result"), "name")), "null");
        json_object_put(o);
        expect_error("{\"cmd\":\"types\",\"args\":{\"name\":\"no-such-type\"}}", ENOENT, "no-such-type");
}
END_TEST

START_TEST(nodes) {
        struct json_object *o =
                expect_ok("{\"cmd\":\"node-add\",\"args\":{\"name\":\"m0\",\"type\":\"memory\",\"params\":{\"size\":\"1M\"}}}");
        ck_assert_int_eq(json_object_get_int64(field(field(o, "result"), "size")), 1 << 20);
        json_object_put(o);
        /* numbers are accepted as parameter values too */
        json_object_put(expect_ok(
                "{\"cmd\":\"node-add\",\"args\":{\"name\":\"m1\",\"type\":\"memory\",\"params\":{\"size\":65536}}}"));

        expect_error("{\"cmd\":\"node-add\",\"args\":{\"name\":\"m0\",\"type\":\"memory\",\"params\":{\"size\":\"1M\"}}}",
                     EEXIST, "m0");
        expect_error("{\"cmd\":\"node-add\",\"args\":{\"name\":\"m2\",\"type\":\"memory\",\"params\":{\"size\":\"x\"}}}",
                     EINVAL, "size");
        expect_error("{\"cmd\":\"node-add\",\"args\":{\"name\":\"m2\",\"type\":\"memory\",\"params\":{\"sise\":\"1M\"}}}",
                     EINVAL, "sise");
        expect_error("{\"cmd\":\"node-add\",\"args\":{\"name\":\"m2\",\"type\":\"nonesuch\"}}", ENOENT, "nonesuch");
        expect_error("{\"cmd\":\"node-add\",\"args\":{\"name\":\"a/b\",\"type\":\"memory\",\"params\":{\"size\":\"1M\"}}}",
                     EINVAL, "invalid node name");
        expect_error("{\"cmd\":\"node-add\",\"args\":{\"type\":\"memory\"}}", EINVAL, "missing argument 'name'");
        expect_error("{\"cmd\":\"node-add\",\"args\":{\"name\":7,\"type\":\"memory\"}}", EINVAL, "must be a string");
        expect_error("{\"cmd\":\"node-add\",\"args\":{\"name\":\"m2\",\"type\":\"memory\",\"params\":[1]}}", EINVAL,
                     "must be a JSON object");
        expect_error("{\"cmd\":\"node-add\",\"args\":{\"name\":\"m2\",\"type\":\"memory\",\"size\":\"1M\"}}", EINVAL,
                     "unknown argument 'size'");

        o = expect_ok("{\"cmd\":\"node-list\"}");
        ck_assert_int_eq(json_object_array_length(field(o, "result")), 2);
        json_object_put(o);
        o = expect_ok("{\"cmd\":\"node-info\",\"args\":{\"name\":\"m0\",\"stats\":true}}");
        ck_assert_ptr_nonnull(field(field(o, "result"), "stats"));
        json_object_put(o);
        expect_error("{\"cmd\":\"node-info\",\"args\":{\"name\":\"zz\"}}", ENOENT, "no node named 'zz'");
        expect_error("{\"cmd\":\"node-info\",\"args\":{\"name\":\"m0\",\"stats\":\"maybe\"}}", EINVAL, "boolean");
        o = expect_ok("{\"cmd\":\"stats\",\"args\":{\"name\":\"m0\"}}");
        ck_assert_ptr_nonnull(field(field(field(o, "result"), "m0"), "read"));
        json_object_put(o);
        expect_error("{\"cmd\":\"stats\",\"args\":{\"name\":\"zz\"}}", ENOENT, "zz");

        /* ctl: memory has no verbs; a missing node is ENOENT */
        expect_error("{\"cmd\":\"node-ctl\",\"args\":{\"node\":\"m0\",\"verb\":\"frob\"}}", EOPNOTSUPP, NULL);
        expect_error("{\"cmd\":\"node-ctl\",\"args\":{\"node\":\"zz\",\"verb\":\"frob\"}}", ENOENT, "zz");
        expect_error("{\"cmd\":\"node-ctl\",\"args\":{\"node\":\"m0\"}}", EINVAL, "'verb'");
        expect_error("{\"cmd\":\"format\",\"args\":{\"type\":\"memory\"}}", EOPNOTSUPP, "no on-disk format");
        expect_error("{\"cmd\":\"inspect\",\"args\":{\"target\":\"zz\"}}", ENOENT, "neither a node");

        json_object_put(expect_ok("{\"cmd\":\"node-remove\",\"args\":{\"name\":\"m1\"}}"));
        expect_error("{\"cmd\":\"node-remove\",\"args\":{\"name\":\"m1\"}}", ENOENT, "m1");
        o = expect_ok("{\"cmd\":\"node-list\"}");
        ck_assert_int_eq(json_object_array_length(field(o, "result")), 1);
        json_object_put(o);
}
END_TEST

START_TEST(node_in_use) {
        json_object_put(
                expect_ok("{\"cmd\":\"node-add\",\"args\":{\"name\":\"m0\",\"type\":\"memory\",\"params\":{\"size\":\"1M\"}}}"));
        json_object_put(expect_ok(
                "{\"cmd\":\"node-add\",\"args\":{\"name\":\"p0\",\"type\":\"passthru\",\"params\":{\"child\":\"m0\"}}}"));
        expect_error("{\"cmd\":\"node-remove\",\"args\":{\"name\":\"m0\"}}", EBUSY, "in use");
        json_object_put(expect_ok("{\"cmd\":\"node-remove\",\"args\":{\"name\":\"p0\"}}"));
        json_object_put(expect_ok("{\"cmd\":\"node-remove\",\"args\":{\"name\":\"m0\"}}"));
}
END_TEST

START_TEST(exports_args) {
        json_object_put(
                expect_ok("{\"cmd\":\"node-add\",\"args\":{\"name\":\"m0\",\"type\":\"memory\",\"params\":{\"size\":\"1M\"}}}"));
        struct json_object *o = expect_ok("{\"cmd\":\"export-list\"}");
        ck_assert_int_eq(json_object_array_length(field(o, "result")), 0);
        json_object_put(o);
        expect_error("{\"cmd\":\"export-add\",\"args\":{\"name\":\"e\",\"node\":\"m0\",\"protocols\":\"ftp\"}}", EINVAL,
                     "protocols");
        expect_error("{\"cmd\":\"export-add\",\"args\":{\"name\":\"e\",\"node\":\"m0\",\"protocols\":[\"nbd\",3]}}",
                     EINVAL, "protocol");
        expect_error("{\"cmd\":\"export-add\",\"args\":{\"name\":\"e\",\"node\":\"m0\",\"read-only\":\"perhaps\"}}",
                     EINVAL, "read-only");
        expect_error("{\"cmd\":\"export-add\",\"args\":{\"name\":\"e\",\"node\":\"m0\",\"opts\":{\"mode\":\"x\"}}}",
                     EINVAL, "'mode'");
        expect_error("{\"cmd\":\"export-add\",\"args\":{\"name\":\"e\",\"node\":\"m0\",\"color\":\"red\"}}", EINVAL,
                     "unknown argument 'color'");
        expect_error("{\"cmd\":\"export-add\",\"args\":{\"name\":\"e\"}}", EINVAL, "missing argument 'node'");
        expect_error("{\"cmd\":\"export-remove\",\"args\":{\"name\":\"nope\"}}", ENOENT, "nope");
}
END_TEST

START_TEST(shutdown_verb) {
        json_object_put(expect_ok("{\"cmd\":\"shutdown\"}"));
        ck_assert_int_eq(g_shutdowns, 1);
        /* The server variant leaves the hook to the caller (after the reply is sent). */
        bool shut = false;
        free(control_handle_line_ex("{\"cmd\":\"shutdown\"}", 18, &shut));
        ck_assert(shut);
        ck_assert_int_eq(g_shutdowns, 1);
        free(control_handle_line_ex("{\"cmd\":\"status\"}", 16, &shut));
        ck_assert(!shut);
        control_set_context(&(struct control_context) { 0 });
        expect_error("{\"cmd\":\"shutdown\"}", EOPNOTSUPP, "not available");
}
END_TEST

int main(void) {
        Suite *s = suite_create("control");
        TCase *tc = tcase_create("control");
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_test(tc, parse_good);
        tcase_add_test(tc, parse_malformed);
        tcase_add_test(tc, parse_limits);
        tcase_add_test(tc, unknown_verbs);
        tcase_add_test(tc, reply_shape);
        tcase_add_test(tc, nodes);
        tcase_add_test(tc, node_in_use);
        tcase_add_test(tc, exports_args);
        tcase_add_test(tc, shutdown_verb);
        suite_add_tcase(s, tc);
        SRunner *sr = srunner_create(s);
        srunner_set_tap(sr, "-");
        srunner_run_all(sr, CK_SILENT);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
