/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The iscsi leaf against a real tgtd (file-backed LUN, own portal and control port): round
 * trips checked in the backing file, zeroes and unmap, batches, CHAP (right and wrong
 * secret), and the target going away within and beyond retry-timeout. Needs root and tgt. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "t-core.h"

extern char **environ;

#define IQN "iqn.2026-11.org.orion:check"

static char g_dir[64], g_img[128], g_ctl[16], g_portal[64], g_url[256];
static pid_t g_tgtd = -1;
static int g_port;

static bool usable(void) {
        return geteuid() == 0 && access("/usr/sbin/tgtd", X_OK) == 0 && access("/usr/sbin/tgtadm", X_OK) == 0;
}

static int run(char *const argv[]) {
        pid_t pid;
        int st;

        if (posix_spawnp(&pid, argv[0], NULL, NULL, argv, environ) != 0)
                return -1;
        if (waitpid(pid, &st, 0) < 0)
                return -1;
        return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int tgtadm(const char *a1, const char *a2, const char *a3, const char *a4, const char *a5, const char *a6,
                  const char *a7, const char *a8) {
        char *argv[] = { "tgtadm", "-C", g_ctl, "--lld", "iscsi", (char *) a1, (char *) a2, (char *) a3, (char *) a4,
                         (char *) a5, (char *) a6, (char *) a7, (char *) a8, NULL };

        return run(argv);
}

static int free_port(void) {
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t len = sizeof(a);
        int fd = socket(AF_INET, SOCK_STREAM, 0), port;

        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(bind(fd, (struct sockaddr *) &a, sizeof(a)), 0);
        ck_assert_int_eq(getsockname(fd, (struct sockaddr *) &a, &len), 0);
        port = ntohs(a.sin_port);
        close(fd);
        return port;
}

/* Start tgtd and configure target + LUN (+ CHAP account when user is given). */
static void tgtd_start(const char *user, const char *secret) {
        char portal_arg[96];
        char *argv[] = { "tgtd", "-f", "-C", g_ctl, "--iscsi", portal_arg, NULL };
        int i, r = -1;

        posix_spawn_file_actions_t fa;

        snprintf(portal_arg, sizeof(portal_arg), "portal=%s", g_portal);
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
        posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
        ck_assert_int_eq(posix_spawnp(&g_tgtd, "tgtd", &fa, NULL, argv, environ), 0);
        posix_spawn_file_actions_destroy(&fa);
        for (i = 0; i < 200 && r != 0; i++) {
                r = tgtadm("--mode", "target", "--op", "new", "--tid", "1", "--targetname", IQN);
                if (r != 0)
                        usleep(50000);
        }
        ck_assert_int_eq(r, 0);
        {
                char *lu[] = { "tgtadm", "-C", g_ctl, "--lld", "iscsi", "--mode", "logicalunit", "--op", "new", "--tid",
                               "1", "--lun", "1", "--backing-store", g_img, NULL };

                ck_assert_int_eq(run(lu), 0);
        }
        ck_assert_int_eq(tgtadm("--mode", "target", "--op", "bind", "--tid", "1", "--initiator-address", "ALL"), 0);
        if (user) {
                ck_assert_int_eq(tgtadm("--mode", "account", "--op", "new", "--user", user, "--password", secret), 0);
                ck_assert_int_eq(tgtadm("--mode", "account", "--op", "bind", "--tid", "1", "--user", user), 0);
        }
}

static void tgtd_kill(void) {
        if (g_tgtd > 0) {
                kill(g_tgtd, SIGKILL);
                waitpid(g_tgtd, NULL, 0);
        }
        g_tgtd = -1;
}

static void setup(void) {
        int fd;

        t_core_setup();
        if (!usable())
                return;
        snprintf(g_dir, sizeof(g_dir), "/var/tmp/check-iscsi.XXXXXX");
        ck_assert_ptr_nonnull(mkdtemp(g_dir));
        snprintf(g_img, sizeof(g_img), "%s/lun.img", g_dir);
        fd = open(g_img, O_CREAT | O_RDWR, 0600);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(ftruncate(fd, 16 << 20), 0);
        close(fd);
        g_port = free_port();
        snprintf(g_ctl, sizeof(g_ctl), "%d", 1000 + g_port % 30000);
        snprintf(g_portal, sizeof(g_portal), "127.0.0.1:%d", g_port);
        snprintf(g_url, sizeof(g_url), "iscsi://%s/%s/1", g_portal, IQN);
}

static void teardown(void) {
        t_core_teardown();
        tgtd_kill();
        if (!usable())
                return;
        (void) unlink(g_img);
        (void) rmdir(g_dir);
}

#define REQUIRE_TGT()                                                                    \
        do {                                                                             \
                if (!usable()) {                                                         \
                        fprintf(stderr, "# not root or tgt not installed: case not run\n"); \
                        return;                                                          \
                }                                                                        \
        } while (0)

static struct orion_bdev *open_leaf(const char *url, const char *timeout) {
        return t_node_add("i", "iscsi", t_params("url", url, "retry-timeout", timeout, NULL));
}

START_TEST(test_round_trip) {
        static char w[1 << 20], r[1 << 20];
        struct orion_bdev *b;
        int fd;

        REQUIRE_TGT();
        tgtd_start(NULL, NULL);
        b = open_leaf(g_url, "10");
        ck_assert_uint_eq(orion_bdev_size(b), 16u << 20);
        ck_assert_uint_eq(orion_bdev_block_size(b), 512);
        for (uint64_t off = 0; off + (1u << 20) <= (16u << 20); off += (3u << 20) + 4096) {
                t_pattern(w, sizeof(w), off, 21);
                ck_assert_int_eq(orion_bdev_pwrite(b, w, sizeof(w) - 512, off, (off >> 12) & 1 ? ORION_FUA : 0), 0);
        }
        ck_assert_int_eq(orion_bdev_flush(b, 0), 0);
        fd = open(g_img, O_RDWR);
        ck_assert_int_ge(fd, 0);
        for (uint64_t off = 0; off + (1u << 20) <= (16u << 20); off += (3u << 20) + 4096) {
                t_pattern(w, sizeof(w) - 512, off, 21);
                ck_assert_int_eq(pread(fd, r, sizeof(r) - 512, (off_t) off), (ssize_t) sizeof(r) - 512);
                ck_assert_mem_eq(w, r, sizeof(r) - 512);
                memset(r, 0, sizeof(r));
                ck_assert_int_eq(orion_bdev_pread(b, r, sizeof(r) - 512, off, 0), 0);
                ck_assert_mem_eq(w, r, sizeof(r) - 512);
        }
        /* unaligned client I/O through the core's RMW */
        t_pattern(w, 1000, 77, 1);
        ck_assert_int_eq(orion_bdev_pwrite(b, w, 1000, 77, 0), 0);
        ck_assert_int_eq(orion_bdev_pread(b, r, 1000, 77, 0), 0);
        ck_assert_mem_eq(w, r, 1000);
        /* zeroes read back as zeroes, whatever the target supports */
        ck_assert_int_eq(orion_bdev_write_zeroes(b, 65536, 1 << 20, 0), 0);
        ck_assert_int_eq(orion_bdev_pread(b, r, 65536, 1 << 20, 0), 0);
        ck_assert(t_is_zero(r, 65536));
        if (orion_bdev_caps(b) & ORION_CAP_DISCARD)
                ck_assert_int_eq(orion_bdev_discard(b, 65536, 2 << 20, 0), 0);
        /* out of range */
        ck_assert_int_lt(orion_bdev_pread(b, r, 4096, 16 << 20, 0), 0);
        close(fd);
}
END_TEST

START_TEST(test_batch) {
        enum { N = 64 };
        static char bufs[N][8192];
        struct orion_req q[N];
        struct orion_bdev *b;

        REQUIRE_TGT();
        tgtd_start(NULL, NULL);
        b = open_leaf(g_url, "10");
        for (int i = 0; i < N; i++) {
                t_pattern(bufs[i], 8192, (uint64_t) i * 131072, 9);
                q[i] = (struct orion_req) { .bdev = b, .op = ORION_OP_WRITE, .buf = bufs[i], .len = 8192,
                                            .off = (uint64_t) i * 131072 };
        }
        ck_assert_int_eq(orion_submit(q, N), 0);
        for (int i = 0; i < N; i++) {
                memset(bufs[i], 0, 8192);
                q[i].op = ORION_OP_READ;
        }
        ck_assert_int_eq(orion_submit(q, N), 0);
        for (int i = 0; i < N; i++) {
                char w[8192];

                t_pattern(w, 8192, (uint64_t) i * 131072, 9);
                ck_assert_mem_eq(w, bufs[i], 8192);
        }
}
END_TEST

/* submit_async: many requests in flight at once, completed by the leaf's I/O thread. */
struct async_batch {
        pthread_mutex_t lock;
        pthread_cond_t cond;
        int left, calls;
};

static void async_done(struct orion_areq *a) {
        struct async_batch *ab = a->priv;

        pthread_mutex_lock(&ab->lock);
        ab->left--;
        ab->calls++;
        pthread_cond_broadcast(&ab->cond);
        pthread_mutex_unlock(&ab->lock);
}

static void async_all(struct orion_areq *a, int n) {
        struct async_batch *ab = a[0].priv;

        ab->left = n;
        for (int i = 0; i < n; i++) {
                a[i].req.result = 12345;
                orion_submit_async(&a[i]);
        }
        pthread_mutex_lock(&ab->lock);
        while (ab->left > 0)
                pthread_cond_wait(&ab->cond, &ab->lock);
        pthread_mutex_unlock(&ab->lock);
        for (int i = 0; i < n; i++)
                ck_assert_int_eq(a[i].req.result, 0);
}

START_TEST(test_async) {
        enum { N = 64 };
        static char bufs[N][8192], r[8192];
        static struct orion_areq a[N];
        struct async_batch ab = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0 };
        struct orion_bdev *b;
        int fd;

        REQUIRE_TGT();
        tgtd_start(NULL, NULL);
        b = open_leaf(g_url, "10");
        ck_assert(orion_bdev_has_async(b));
        for (int i = 0; i < N; i++) {
                t_pattern(bufs[i], 8192, (uint64_t) i * 131072, 5);
                a[i] = (struct orion_areq) { .req = { .bdev = b, .op = ORION_OP_WRITE, .flags = i & 1 ? ORION_FUA : 0,
                                                      .buf = bufs[i], .len = 8192, .off = (uint64_t) i * 131072 },
                                             .done = async_done, .priv = &ab };
        }
        async_all(a, N);
        a[0].req = (struct orion_req) { .bdev = b, .op = ORION_OP_FLUSH };
        async_all(a, 1);
        fd = open(g_img, O_RDONLY);
        ck_assert_int_ge(fd, 0);
        for (int i = 0; i < N; i++) {
                ck_assert_int_eq(pread(fd, r, 8192, (off_t) i * 131072), 8192);
                ck_assert_mem_eq(bufs[i], r, 8192);
                memset(bufs[i], 0, 8192);
                a[i].req = (struct orion_req) { .bdev = b, .op = ORION_OP_READ, .buf = bufs[i], .len = 8192,
                                                .off = (uint64_t) i * 131072 };
        }
        close(fd);
        async_all(a, N);
        for (int i = 0; i < N; i++) {
                t_pattern(r, 8192, (uint64_t) i * 131072, 5);
                ck_assert_mem_eq(r, bufs[i], 8192);
        }
        /* out of range: refused by the core, still through done() */
        a[0].req = (struct orion_req) { .bdev = b, .op = ORION_OP_READ, .buf = r, .len = 8192, .off = 16u << 20 };
        ab.left = 1;
        orion_submit_async(&a[0]);
        pthread_mutex_lock(&ab.lock);
        while (ab.left > 0)
                pthread_cond_wait(&ab.cond, &ab.lock);
        pthread_mutex_unlock(&ab.lock);
        ck_assert_int_lt(a[0].req.result, 0);
        ck_assert_int_eq(ab.calls, 2 * N + 2); /* done() exactly once per request */
}
END_TEST

START_TEST(test_chap) {
        struct orion_error err = { 0 };
        struct orion_bdev *b;
        char url[320];
        char buf[4096];

        REQUIRE_TGT();
        tgtd_start("orionuser", "orionsecret12");
        snprintf(url, sizeof(url), "iscsi://orionuser%%orionsecret12@%s/%s/1", g_portal, IQN);
        b = open_leaf(url, "10");
        ck_assert_int_eq(orion_bdev_pread(b, buf, sizeof(buf), 0, 0), 0);
        /* the secret never shows in the node's description */
        {
                struct json_object *st = json_object_new_object();

                b->type->ops->status(b, st);
                ck_assert_ptr_null(strstr(json_object_to_json_string(st), "orionsecret12"));
                json_object_put(st);
        }
        snprintf(url, sizeof(url), "iscsi://orionuser%%wrongsecret99@%s/%s/1", g_portal, IQN);
        ck_assert_int_lt(t_node_add_err("j", "iscsi", t_params("url", url, NULL), &b, &err), 0);
        ck_assert_msg(strstr(err.msg, "login failed") != NULL, "message: %s", err.msg);
        ck_assert_ptr_null(strstr(err.msg, "wrongsecret99"));
        /* and without credentials */
        memset(&err, 0, sizeof(err));
        ck_assert_int_lt(t_node_add_err("j", "iscsi", t_params("url", g_url, NULL), &b, &err), 0);
}
END_TEST

struct io_job {
        struct orion_bdev *b;
        int result;
};

static void *write_read_job(void *arg) {
        struct io_job *j = arg;
        char w[4096], r[4096];

        t_pattern(w, sizeof(w), 8192, 78);
        j->result = orion_bdev_pwrite(j->b, w, sizeof(w), 8192, 0);
        if (j->result == 0)
                j->result = orion_bdev_pread(j->b, r, sizeof(r), 8192, 0);
        if (j->result == 0 && memcmp(w, r, sizeof(w)) != 0)
                j->result = -EILSEQ;
        return NULL;
}

START_TEST(test_reconnect_within_window) {
        struct io_job j = { 0 };
        pthread_t th;

        REQUIRE_TGT();
        tgtd_start(NULL, NULL);
        j.b = open_leaf(g_url, "30");
        tgtd_kill();
        ck_assert_int_eq(pthread_create(&th, NULL, write_read_job, &j), 0);
        usleep(300000);
        tgtd_start(NULL, NULL);
        ck_assert_int_eq(pthread_join(th, NULL), 0);
        ck_assert_int_eq(j.result, 0);
        ck_assert_int_eq(j.b->health, ORION_HEALTH_OK);
}
END_TEST

START_TEST(test_past_window_then_recover) {
        struct orion_bdev *b;
        char buf[4096];
        int r = -1;

        REQUIRE_TGT();
        tgtd_start(NULL, NULL);
        b = open_leaf(g_url, "1");
        tgtd_kill();
        ck_assert_int_eq(orion_bdev_pread(b, buf, sizeof(buf), 0, 0), -EIO);
        ck_assert_int_eq(b->health, ORION_HEALTH_DEGRADED);
        ck_assert_int_eq(orion_bdev_pwrite(b, buf, sizeof(buf), 0, 0), -EIO);
        tgtd_start(NULL, NULL);
        for (int i = 0; i < 200 && r != 0; i++) {
                r = orion_bdev_pread(b, buf, sizeof(buf), 0, 0);
                if (r != 0)
                        usleep(50000);
        }
        ck_assert_int_eq(r, 0);
        ck_assert_int_eq(b->health, ORION_HEALTH_OK);
}
END_TEST

START_TEST(test_open_errors) {
        struct orion_error err = { 0 };
        struct orion_bdev *b;
        char url[256];

        REQUIRE_TGT();
        snprintf(url, sizeof(url), "iscsi://127.0.0.1:%d/%s/1", g_port, IQN); /* nobody listens */
        ck_assert_int_lt(t_node_add_err("j", "iscsi", t_params("url", url, NULL), &b, &err), 0);
        memset(&err, 0, sizeof(err));
        ck_assert_int_lt(t_node_add_err("j", "iscsi", t_params("url", "nbd://localhost/x", NULL), &b, &err), 0);
        ck_assert_ptr_nonnull(strstr(err.msg, "URL"));
}
END_TEST

int main(void) {
        Suite *s = suite_create("iscsi");
        TCase *tc = tcase_create("iscsi");

        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_set_timeout(tc, 90);
        tcase_add_test(tc, test_round_trip);
        tcase_add_test(tc, test_batch);
        tcase_add_test(tc, test_async);
        tcase_add_test(tc, test_chap);
        tcase_add_test(tc, test_reconnect_within_window);
        tcase_add_test(tc, test_past_window_then_recover);
        tcase_add_test(tc, test_open_errors);
        suite_add_tcase(s, tc);
        return t_run(s);
}
