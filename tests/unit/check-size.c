/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit tests: size, bool and integer parsing, including bad input. */
#include <check.h>
#include <errno.h>
#include <stdlib.h>

#include "core/core.h"

START_TEST(size_ok) {
        static const struct {
                const char *s;
                uint64_t v;
        } cases[] = {
                { "0", 0 },          { "4096", 4096 },          { "64K", 65536 },    { "64k", 65536 },
                { "1M", 1 << 20 },   { "10G", 10ULL << 30 },    { "1T", 1ULL << 40 }, { "2KiB", 2048 },
                { "3MB", 3 << 20 },  { "1.5G", 3ULL << 29 },    { " 8K ", 8192 },    { "512B", 512 },
                { "16E", 0 },
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
                uint64_t v = 1;
                int r = parse_size(cases[i].s, &v);
                if (cases[i].s[0] == '1' && cases[i].s[1] == '6' && cases[i].s[2] == 'E') {
                        ck_assert_int_eq(r, -ERANGE); /* 16 EiB does not fit */
                        continue;
                }
                ck_assert_msg(r == 0, "'%s' rejected: %d", cases[i].s, r);
                ck_assert_msg(v == cases[i].v, "'%s' gave %llu", cases[i].s, (unsigned long long) v);
        }
}
END_TEST

START_TEST(size_bad) {
        static const char *const bad[] = { "", "-1", "K", "10X", "1.5", "1..5G", "1G2", "abc", "1 G x", ".5G", NULL };
        uint64_t v;
        for (size_t i = 0; bad[i]; i++)
                ck_assert_msg(parse_size(bad[i], &v) == -EINVAL, "'%s' accepted", bad[i]);
        ck_assert_int_eq(parse_size(NULL, &v), -EINVAL);
        ck_assert_int_eq(parse_size("99999999999999999999", &v), -ERANGE);
        ck_assert_int_eq(parse_size("17179869184G", &v), -ERANGE);
}
END_TEST

START_TEST(bool_parse) {
        ck_assert_int_eq(parse_bool("on"), 1);
        ck_assert_int_eq(parse_bool("YES"), 1);
        ck_assert_int_eq(parse_bool("true"), 1);
        ck_assert_int_eq(parse_bool("off"), 0);
        ck_assert_int_eq(parse_bool("0"), 0);
        ck_assert_int_eq(parse_bool("maybe"), -EINVAL);
        ck_assert_int_eq(parse_bool(""), -EINVAL);
        ck_assert_int_eq(parse_bool(NULL), -EINVAL);
}
END_TEST

START_TEST(int_parse) {
        int64_t v;
        ck_assert_int_eq(parse_int64("42", &v), 0);
        ck_assert_int_eq(v, 42);
        ck_assert_int_eq(parse_int64("-7", &v), 0);
        ck_assert_int_eq(v, -7);
        ck_assert_int_eq(parse_int64("0x10", &v), 0);
        ck_assert_int_eq(v, 16);
        ck_assert_int_eq(parse_int64("12a", &v), -EINVAL);
        ck_assert_int_eq(parse_int64("", &v), -EINVAL);
        ck_assert_int_eq(parse_int64(" 1", &v), -EINVAL);
        ck_assert_int_eq(parse_int64("99999999999999999999", &v), -ERANGE);
}
END_TEST

START_TEST(size_format) {
        char buf[32];
        ck_assert_str_eq(format_size(1ULL << 30, buf, sizeof buf), "1G");
        ck_assert_str_eq(format_size(65536, buf, sizeof buf), "64K");
        ck_assert_str_eq(format_size(1000, buf, sizeof buf), "1000");
        ck_assert_str_eq(format_size(1536, buf, sizeof buf), "1536");
}
END_TEST

int main(void) {
        Suite *s = suite_create("size");
        TCase *tc = tcase_create("parse");
        tcase_add_test(tc, size_ok);
        tcase_add_test(tc, size_bad);
        tcase_add_test(tc, bool_parse);
        tcase_add_test(tc, int_parse);
        tcase_add_test(tc, size_format);
        suite_add_tcase(s, tc);
        SRunner *sr = srunner_create(s);
        srunner_set_tap(sr, "-");
        srunner_run_all(sr, CK_SILENT);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
