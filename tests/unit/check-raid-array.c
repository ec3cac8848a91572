/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The raid plugin through the real core, on memory members (with `error` layers to fail
 * them): every level reads back what was written at awkward offsets and sizes, assembles from
 * shuffled children, survives failed members, rebuilds onto spares, refuses or rebuilds stale
 * members, and scrub finds and repairs corruption. */
#include <errno.h>
#include <stdio.h>
#include <time.h>

#include "t-core.h"

#define MEMBER_SIZE "5M" /* 1M metadata + 4M data per member */

static void setup(void) {
        t_core_setup();
}

static void teardown(void) {
        t_core_teardown();
}

static int ctl(const char *node, const char *verb, const char *json, struct json_object **reply) {
        struct orion_error err = {0};
        struct json_object *args = json ? json_tokener_parse(json) : NULL;
        int r = orion_bdev_ctl(graph_node_find(node), verb, args, reply, &err);

        json_object_put(args);
        return r;
}

/* n memory members mN, each under an error layer eN (off until enabled). */
static void members(unsigned n, unsigned first) {
        for (unsigned i = first; i < first + n; i++) {
                char m[16], e[16];

                snprintf(m, sizeof(m), "m%u", i);
                snprintf(e, sizeof(e), "e%u", i);
                t_node_add(m, "memory", t_params("size", MEMBER_SIZE, NULL));
                t_node_add(e, "error", t_params("child", m, "enabled", "off", NULL));
        }
}

/* Append "eI " to a list of children. */
static void add_name(char *list, size_t size, unsigned i) {
        size_t len = strlen(list);

        snprintf(list + len, size - len, "e%u ", i);
}

static int format(const char *level, const char *children, const char *spares, bool force,
                  struct orion_error *err) {
        const struct orion_plugin *p = registry_find("raid", err);
        struct json_object *kv =
                spares ? t_params("level", level, "children", children, "spares", spares, NULL)
                       : t_params("level", level, "children", children, NULL);
        struct orion_params *params;
        int r;

        ck_assert_ptr_nonnull(p);
        json_object_object_add(kv, "bitmap-chunk", json_object_new_string("1M"));
        params = params_new(p, kv, err);
        json_object_put(kv);
        if (!params)
                return -err->code;
        r = p->format(params, force, NULL, err);
        params_free(params);
        return r;
}

static struct orion_bdev *array(const char *level, const char *children, const char *spares) {
        struct json_object *kv =
                spares ? t_params("level", level, "children", children, "spares", spares, NULL)
                       : t_params("level", level, "children", children, NULL);

        return t_node_add("r", "raid", kv);
}

static struct json_object *status(void) {
        struct json_object *reply = NULL;

        ck_assert_int_eq(ctl("r", "status", NULL, &reply), 0);
        return reply;
}

static bool status_done(void) {
        struct json_object *st = status(), *v;
        bool done;

        ck_assert(json_object_object_get_ex(st, "done", &v));
        done = json_object_get_boolean(v);
        json_object_put(st);
        return done;
}

/* Background work finished (bounded generously; never a timing assertion). */
static void wait_idle(void) {
        for (int i = 0; i < 6000 && !status_done(); i++) {
                struct timespec ts = {0, 10 * 1000 * 1000};

                nanosleep(&ts, NULL);
        }
        ck_assert(status_done());
}

static uint64_t status_u64(const char *key) {
        struct json_object *st = status(), *v;
        uint64_t x;

        ck_assert(json_object_object_get_ex(st, key, &v));
        x = (uint64_t) json_object_get_int64(v);
        json_object_put(st);
        return x;
}

static uint64_t stat_u64(const char *key) {
        struct orion_bdev *b = graph_node_find("r");
        struct json_object *sink = json_object_new_object(), *v;
        uint64_t x;

        b->type->ops->stats(b, sink);
        ck_assert(json_object_object_get_ex(sink, key, &v));
        x = (uint64_t) json_object_get_int64(v);
        json_object_put(sink);
        return x;
}

static uint64_t scrub(bool repair) {
        struct json_object *st, *s, *v;
        uint64_t mm;

        ck_assert_int_eq(ctl("r", "scrub",
                             repair ? "{\"argv\":[\"start\",\"repair\"]}" : "{\"argv\":[\"start\"]}", NULL),
                         0);
        wait_idle();
        st = status();
        ck_assert(json_object_object_get_ex(st, "scrub", &s));
        ck_assert(json_object_object_get_ex(s, "mismatches", &v));
        mm = (uint64_t) json_object_get_int64(v);
        json_object_put(st);
        return mm;
}

/* Writes of many shapes (sub-chunk, chunk-crossing, full rows, several rows), then a check
 * of the whole array against the model. */
static void write_pattern(struct orion_bdev *r, uint8_t *model, uint32_t seed) {
        static const struct {
                uint64_t off, len;
        } w[] = {
                {0, 4096},
                {4096, 512},
                {60 * 1024, 8192},
                {128 * 1024, 192 * 1024},
                {1 << 20, 1 << 20},
                {3 * 65536 + 512, 65536 * 3},
                {777 * 512, 4096 * 3},
        };
        uint64_t size = orion_bdev_size(r);

        for (size_t i = 0; i < ELEMENTSOF(w); i++) {
                uint64_t off = w[i].off % size, len = MIN(w[i].len, size - off);

                t_pattern(model + off, len, off, seed + (uint32_t) i);
                ck_assert_int_eq(orion_bdev_pwrite(r, model + off, len, off, 0), 0);
        }
}

static void verify(struct orion_bdev *r, const uint8_t *model) {
        uint64_t size = orion_bdev_size(r);
        _cleanup_free_ uint8_t *buf = orion_alloc_aligned(size);

        /* one big read and chunk-crossing small ones */
        ck_assert_int_eq(orion_bdev_pread(r, buf, size, 0, 0), 0);
        ck_assert_msg(memcmp(buf, model, size) == 0, "array content differs");
        for (uint64_t off = 65536 - 1024; off + 4096 <= size; off += 300 * 1024) {
                ck_assert_int_eq(orion_bdev_pread(r, buf, 4096, off, 0), 0);
                ck_assert(memcmp(buf, model + off, 4096) == 0);
        }
}

static void level_roundtrip(const char *level, unsigned n) {
        char children[128] = "", shuffled[128] = "";
        struct orion_error err = {0};
        struct orion_bdev *r;
        _cleanup_free_ uint8_t *model = NULL;

        members(n, 0);
        for (unsigned i = 0; i < n; i++) {
                add_name(children, sizeof(children), i);
                add_name(shuffled, sizeof(shuffled), n - 1 - i);
        }
        ck_assert_msg(format(level, children, NULL, false, &err) == 0, "%s", err.msg);
        r = array(level, children, NULL);
        model = calloc(1, orion_bdev_size(r));
        write_pattern(r, model, 1);
        verify(r, model);
        ck_assert_int_eq(orion_bdev_flush(r, 0), 0);
        t_node_remove("r");
        /* members in another order assemble into the same array */
        r = array(level, shuffled, NULL);
        verify(r, model);
        if (strcmp(level, "1") == 0)
                /* mirror reads are spread: every member served some */
                for (unsigned i = 0; i < n; i++) {
                        char m[16];

                        snprintf(m, sizeof(m), "m%u", i);
                        ck_assert_msg(atomic_load(&graph_node_find(m)->stats.op[ORION_OP_READ].ops) > 3,
                                      "mirror %s served no reads", m);
                }
        if (strcmp(level, "0") != 0)
                ck_assert_uint_eq(scrub(false), 0);
        t_node_remove("r");
        /* the superblock is recognised: no format over it without force */
        err = (struct orion_error){0};
        ck_assert_int_eq(format(level, children, NULL, false, &err), -EEXIST);
        ck_assert_int_eq(format(level, children, NULL, true, &err), 0);
}

START_TEST(test_raid0) {
        level_roundtrip("0", 3);
}
END_TEST
START_TEST(test_raid1) {
        level_roundtrip("1", 3);
}
END_TEST
START_TEST(test_raid5) {
        level_roundtrip("5", 4);
}
END_TEST
START_TEST(test_raid6) {
        level_roundtrip("6", 5);
}
END_TEST
START_TEST(test_raid10) {
        level_roundtrip("10", 4);
}
END_TEST
START_TEST(test_raid10_odd) {
        level_roundtrip("10", 3);
}
END_TEST
START_TEST(test_raid5_3) {
        level_roundtrip("5", 3);
}
END_TEST

/* Fail a member by error injection while writing, keep serving, rebuild onto the spare, then
 * fail another member: the data must come from the rebuilt one. */
static void degrade_rebuild(const char *level, unsigned n, const char *second) {
        char children[128] = "";
        struct orion_error err = {0};
        struct orion_bdev *r;
        _cleanup_free_ uint8_t *model = NULL;

        members(n + 1, 0);
        for (unsigned i = 0; i < n; i++) {
                add_name(children, sizeof(children), i);
        }
        {
                char spare[16];

                snprintf(spare, sizeof(spare), "e%u", n);
                ck_assert_msg(format(level, children, NULL, false, &err) == 0, "%s", err.msg);
                r = array(level, children, NULL);
                model = calloc(1, orion_bdev_size(r));
                write_pattern(r, model, 1);
                ck_assert_int_eq(ctl("e1", "enable", NULL, NULL), 0);
                write_pattern(r, model, 2); /* e1 fails during these */
                verify(r, model);
                ck_assert_uint_eq(status_u64("degraded"), 1);
                ck_assert_int_eq(ctl("r", "add", "{\"argv\":[\"e9\"]}", NULL), -ENOENT);
                {
                        char json[64];

                        snprintf(json, sizeof(json), "{\"argv\":[\"%s\"]}", spare);
                        ck_assert_int_eq(ctl("r", "add", json, NULL), 0);
                }
                wait_idle();
                ck_assert_uint_eq(status_u64("degraded"), 0);
                verify(r, model);
                /* now lose another member: reads need the rebuilt data */
                ck_assert_int_eq(ctl("r", "fail", second, NULL), 0);
                ck_assert_uint_eq(status_u64("degraded"), 1);
                verify(r, model);
                write_pattern(r, model, 3);
                verify(r, model);
                /* the failed one can go, a working one cannot */
                ck_assert_int_eq(ctl("r", "remove", "{\"argv\":[\"e1\"]}", NULL), 0);
                {
                        char json[64];

                        snprintf(json, sizeof(json), "{\"argv\":[\"%s\"]}", spare);
                        ck_assert_int_eq(ctl("r", "remove", json, NULL), -EBUSY);
                }
        }
}

START_TEST(test_raid1_degrade) {
        degrade_rebuild("1", 2, "{\"argv\":[\"e0\"]}");
}
END_TEST
START_TEST(test_raid5_degrade) {
        degrade_rebuild("5", 4, "{\"argv\":[\"e2\"]}");
}
END_TEST
START_TEST(test_raid6_degrade) {
        degrade_rebuild("6", 5, "{\"argv\":[\"e3\"]}");
}
END_TEST
START_TEST(test_raid10_degrade) {
        degrade_rebuild("10", 4, "{\"argv\":[\"e3\"]}");
}
END_TEST

START_TEST(test_raid6_two_failed) {
        struct orion_error err = {0};
        struct orion_bdev *r;
        _cleanup_free_ uint8_t *model = NULL;

        members(5, 0);
        ck_assert_msg(format("6", "e0 e1 e2 e3 e4", NULL, false, &err) == 0, "%s", err.msg);
        r = array("6", "e0 e1 e2 e3 e4", NULL);
        model = calloc(1, orion_bdev_size(r));
        write_pattern(r, model, 1);
        ck_assert_int_eq(ctl("e1", "enable", NULL, NULL), 0);
        ck_assert_int_eq(ctl("e3", "enable", NULL, NULL), 0);
        verify(r, model);
        write_pattern(r, model, 5);
        verify(r, model);
        ck_assert_uint_eq(status_u64("degraded"), 2);
        /* a third would lose data: refused */
        ck_assert_int_eq(ctl("r", "fail", "{\"argv\":[\"e0\"]}", NULL), -EBUSY);
}
END_TEST

/* A member failed while the array went on; reopened with the member healthy again, it is
 * stale: it must be rebuilt, never read as if current. */
START_TEST(test_stale_member) {
        struct orion_error err = {0};
        struct orion_bdev *r;
        _cleanup_free_ uint8_t *model = NULL;

        members(4, 0);
        ck_assert_msg(format("5", "e0 e1 e2 e3", NULL, false, &err) == 0, "%s", err.msg);
        r = array("5", "e0 e1 e2 e3", NULL);
        model = calloc(1, orion_bdev_size(r));
        write_pattern(r, model, 1);
        ck_assert_int_eq(orion_bdev_flush(r, 0), 0); /* the bits of these writes may go */
        ck_assert_int_eq(ctl("r", "fail", "{\"argv\":[\"e2\"]}", NULL), 0);
        write_pattern(r, model, 7); /* rows 0..11: member offsets below 1M, bitmap region 0 */
        ck_assert_int_eq(orion_bdev_flush(r, 0), 0); /* degraded: the bits must stay */
        t_node_remove("r");
        r = array("5", "e3 e2 e1 e0", NULL);
        wait_idle();
        ck_assert_uint_eq(status_u64("degraded"), 0);
        /* it was in sync when it left: only the one marked 1M region was copied */
        ck_assert_uint_eq(stat_u64("rebuilt-bytes"), 1 << 20);
        verify(r, model);
        /* the rebuilt member now carries data: lose another one */
        ck_assert_int_eq(ctl("r", "fail", "{\"argv\":[\"e0\"]}", NULL), 0);
        verify(r, model);
}
END_TEST

START_TEST(test_foreign_member_refused) {
        struct orion_error err = {0};
        struct orion_bdev *b = NULL;

        members(6, 0);
        ck_assert_int_eq(format("5", "e0 e1 e2", NULL, false, &err), 0);
        ck_assert_int_eq(format("1", "e3 e4", NULL, false, &err), 0);
        ck_assert_int_eq(
                t_node_add_err("r", "raid", t_params("level", "5", "children", "e0 e1 e3", NULL), &b, &err),
                -EINVAL);
        err = (struct orion_error){0};
        ck_assert_int_eq(
                t_node_add_err("r", "raid", t_params("level", "1", "children", "e5", NULL), &b, &err),
                -ENODEV);
        err = (struct orion_error){0};
        ck_assert_int_eq(
                t_node_add_err("r", "raid", t_params("level", "6", "children", "e0 e1 e2", NULL), &b, &err),
                -EINVAL);
        err = (struct orion_error){0};
        ck_assert_int_eq(t_node_add_err("r", "raid",
                                        t_params("level", "5", "children", "e0 e1 e2", "spares", "e1", NULL),
                                        &b, &err),
                         -EINVAL);
        ck_assert_ptr_nonnull(strstr(err.msg, "named twice"));
}
END_TEST

static uint64_t member_u64(unsigned role, const char *key) {
        struct json_object *st = status(), *ms, *v;
        uint64_t x = 0;

        ck_assert(json_object_object_get_ex(st, "members", &ms));
        if (json_object_object_get_ex(json_object_array_get_idx(ms, role), key, &v))
                x = (uint64_t) json_object_get_int64(v);
        json_object_put(st);
        return x;
}

static const char *member_name(unsigned role, char *buf, size_t size) {
        struct json_object *st = status(), *ms, *v;

        ck_assert(json_object_object_get_ex(st, "members", &ms));
        ck_assert(json_object_object_get_ex(json_object_array_get_idx(ms, role), "name", &v));
        snprintf(buf, size, "%s", json_object_get_string(v));
        json_object_put(st);
        return buf;
}

/* `replace` interrupted by closing the array resumes from its checkpoint when reopened. */
START_TEST(test_replace_resumes) {
        struct orion_error err = {0};
        struct orion_bdev *r;
        _cleanup_free_ uint8_t *model = NULL;
        char name[32];

        members(4, 0);
        ck_assert_msg(format("1", "e0 e1 e2", NULL, false, &err) == 0, "%s", err.msg);
        r = t_node_add("r", "raid",
                       t_params("level", "1", "children", "e0 e1 e2", "rebuild-rate", "1M", NULL));
        model = calloc(1, orion_bdev_size(r));
        write_pattern(r, model, 1);
        ck_assert_int_eq(ctl("r", "replace", "{\"argv\":[\"e1\",\"e3\"]}", NULL), 0);
        for (int i = 0; i < 500 && member_u64(1, "replacement-recovery") == 0; i++) {
                struct timespec ts = {0, 10 * 1000 * 1000};

                nanosleep(&ts, NULL);
        }
        ck_assert_uint_gt(member_u64(1, "replacement-recovery"), 0);
        ck_assert_uint_lt(member_u64(1, "replacement-recovery"), 4 << 20);
        t_node_remove("r");
        r = t_node_add("r", "raid",
                       t_params("level", "1", "children", "e3 e2 e1 e0", "rebuild-rate", "2M", NULL));
        ck_assert_uint_gt(member_u64(1, "replacement-recovery"), 0);
        wait_idle();
        ck_assert_str_eq(member_name(1, name, sizeof(name)), "e3");
        verify(r, model);
        /* the new member carries data: lose the two others */
        ck_assert_int_eq(ctl("r", "fail", "{\"argv\":[\"e0\"]}", NULL), 0);
        ck_assert_int_eq(ctl("r", "fail", "{\"argv\":[\"e2\"]}", NULL), 0);
        verify(r, model);
}
END_TEST

/* Damage one member behind the array's back: scrub counts it, repair fixes it. */
static void corrupt_and_scrub(const char *level, unsigned n, unsigned victim, uint64_t moff) {
        char children[128] = "", m[16];
        struct orion_error err = {0};
        struct orion_bdev *r;
        _cleanup_free_ uint8_t *model = NULL;
        uint8_t junk[4096];

        members(n, 0);
        for (unsigned i = 0; i < n; i++) {
                add_name(children, sizeof(children), i);
        }
        ck_assert_msg(format(level, children, NULL, false, &err) == 0, "%s", err.msg);
        r = array(level, children, NULL);
        model = calloc(1, orion_bdev_size(r));
        write_pattern(r, model, 1);
        ck_assert_uint_eq(scrub(false), 0);
        memset(junk, 0xE5, sizeof(junk));
        snprintf(m, sizeof(m), "m%u", victim);
        ck_assert_int_eq(orion_bdev_pwrite(graph_node_find(m), junk, sizeof(junk), (1 << 20) + moff, 0), 0);
        ck_assert_uint_eq(scrub(false), 8);
        ck_assert_uint_eq(scrub(true), 8);
        ck_assert_uint_eq(scrub(false), 0);
        verify(r, model);
}

/* raid6 names the bad data block; a raid5 parity block (member 3 holds P in row 0); a mirror
 * outvoted by two others */
START_TEST(test_scrub_raid6_data) {
        corrupt_and_scrub("6", 5, 2, 4096);
}
END_TEST
START_TEST(test_scrub_raid5_parity) {
        corrupt_and_scrub("5", 4, 3, 8192);
}
END_TEST
START_TEST(test_scrub_raid1_three) {
        corrupt_and_scrub("1", 3, 1, 0);
}
END_TEST

int main(void) {
        Suite *s = suite_create("raid-array");
        TCase *tc = tcase_create("array");

        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_set_timeout(tc, 120);
        tcase_add_test(tc, test_raid0);
        tcase_add_test(tc, test_raid1);
        tcase_add_test(tc, test_raid5);
        tcase_add_test(tc, test_raid5_3);
        tcase_add_test(tc, test_raid6);
        tcase_add_test(tc, test_raid10);
        tcase_add_test(tc, test_raid10_odd);
        tcase_add_test(tc, test_raid1_degrade);
        tcase_add_test(tc, test_raid5_degrade);
        tcase_add_test(tc, test_raid6_degrade);
        tcase_add_test(tc, test_raid10_degrade);
        tcase_add_test(tc, test_raid6_two_failed);
        tcase_add_test(tc, test_stale_member);
        tcase_add_test(tc, test_replace_resumes);
        tcase_add_test(tc, test_foreign_member_refused);
        tcase_add_test(tc, test_scrub_raid6_data);
        tcase_add_test(tc, test_scrub_raid5_parity);
        tcase_add_test(tc, test_scrub_raid1_three);
        suite_add_tcase(s, tc);
        return t_run(s);
}
