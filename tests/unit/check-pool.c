/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit tests: the worker pool — batches nested deeper than the pool has threads finish. */
#include <check.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/core.h"

int pool_run_batch(void (*fn)(void *), void **args, size_t n);

struct node {
        int depth;
        atomic_int *leaves;
};

static void run(void *arg) {
        struct node *n = arg;
        if (n->depth == 0) {
                usleep(50);
                atomic_fetch_add(n->leaves, 1);
                return;
        }
        enum { FAN = 6 };
        struct node kids[FAN];
        void *args[FAN];
        for (int i = 0; i < FAN; i++) {
                kids[i] = (struct node){ n->depth - 1, n->leaves };
                args[i] = &kids[i];
        }
        pool_run_batch(run, args, FAN);
}

START_TEST(nested_batches) {
        ck_assert_int_eq(pool_init(4), 0); /* far fewer threads than waiting batches */
        atomic_int leaves = 0;
        struct node root = { 4, &leaves };
        run(&root);
        ck_assert_int_eq(atomic_load(&leaves), 6 * 6 * 6 * 6);
        pool_done();
}
END_TEST

static atomic_int g_fired;
static void fire(void *arg) {
        atomic_fetch_add(&g_fired, 1);
}

START_TEST(fire_and_forget) {
        ck_assert_int_eq(pool_init(2), 0);
        for (int i = 0; i < 100; i++)
                ck_assert_int_eq(pool_queue(fire, NULL), 0);
        for (int i = 0; i < 10000 && atomic_load(&g_fired) < 100; i++)
                usleep(1000);
        ck_assert_int_eq(atomic_load(&g_fired), 100);
        pool_done();
}
END_TEST

int main(void) {
        Suite *s = suite_create("pool");
        TCase *tc = tcase_create("pool");
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, nested_batches);
        tcase_add_test(tc, fire_and_forget);
        suite_add_tcase(s, tc);
        SRunner *sr = srunner_create(s);
        srunner_set_tap(sr, "-");
        srunner_run_all(sr, CK_SILENT);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
