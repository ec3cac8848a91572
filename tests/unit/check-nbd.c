/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The nbd leaf against a real nbdkit (file plugin on a Unix socket): round trips checked in
 * the backing file, block status of a sparse remote, trim/zero, batches, and the server going
 * away within and beyond retry-timeout. Skips when nbdkit is not installed. */
#include <errno.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "t-core.h"

extern char **environ;

static char g_dir[40], g_sock[96], g_img[128], g_uri[200];
static pid_t g_nbdkit = -1;

static bool have_nbdkit(void) {
        return access("/usr/bin/nbdkit", X_OK) == 0 || access("/usr/sbin/nbdkit", X_OK) == 0;
}

static bool sock_answers(void) {
        struct sockaddr_un a = { .sun_family = AF_UNIX };
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        bool ok;

        snprintf(a.sun_path, sizeof(a.sun_path), "%s", g_sock);
        ok = fd >= 0 && connect(fd, (struct sockaddr *) &a, sizeof(a)) == 0;
        if (fd >= 0)
                close(fd);
        return ok;
}

static void nbdkit_start(void) {
        char *argv[] = { "nbdkit", "-f", "--exit-with-parent", "-U", g_sock, "file", g_img, NULL };

        (void) unlink(g_sock);
        ck_assert_int_eq(posix_spawnp(&g_nbdkit, "nbdkit", NULL, NULL, argv, environ), 0);
        /* ready once a connect succeeds (the socket file exists before listen) */
        for (int i = 0; i < 1000 && !sock_answers(); i++)
                usleep(10000);
        ck_assert(sock_answers());
}

static void nbdkit_kill(void) {
        if (g_nbdkit > 0) {
                kill(g_nbdkit, SIGKILL);
                waitpid(g_nbdkit, NULL, 0);
        }
        g_nbdkit = -1;
}

static void setup(void) {
        int fd;

        t_core_setup();
        snprintf(g_dir, sizeof(g_dir), "/var/tmp/check-nbd.XXXXXX");
        ck_assert_ptr_nonnull(mkdtemp(g_dir));
        snprintf(g_sock, sizeof(g_sock), "%s/nbd.sock", g_dir);
        snprintf(g_img, sizeof(g_img), "%s/remote.img", g_dir);
        snprintf(g_uri, sizeof(g_uri), "nbd+unix:///?socket=%s", g_sock);
        fd = open(g_img, O_CREAT | O_RDWR, 0600);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(ftruncate(fd, 8 << 20), 0);
        close(fd);
        if (have_nbdkit())
                nbdkit_start();
}

static void teardown(void) {
        t_core_teardown();
        nbdkit_kill();
        (void) unlink(g_sock);
        (void) unlink(g_img);
        (void) rmdir(g_dir);
}

#define REQUIRE_NBDKIT()                                                               \
        do {                                                                           \
                if (!have_nbdkit()) {                                                  \
                        fprintf(stderr, "# nbdkit not installed: case not run\n");     \
                        return;                                                        \
                }                                                                      \
        } while (0)

static struct orion_bdev *open_leaf(const char *timeout) {
        return t_node_add("r", "nbd", t_params("uri", g_uri, "retry-timeout", timeout, NULL));
}

START_TEST(test_round_trip) {
        struct orion_bdev *b;
        char w[65536], r[65536];
        int fd;

        REQUIRE_NBDKIT();
        b = open_leaf("10");
        ck_assert_uint_eq(orion_bdev_size(b), 8u << 20);
        ck_assert(orion_bdev_caps(b) & ORION_CAP_FLUSH);
        ck_assert(orion_bdev_caps(b) & ORION_CAP_DISCARD);
        ck_assert(orion_bdev_caps(b) & ORION_CAP_WRITE_ZEROES);
        ck_assert(orion_bdev_caps(b) & ORION_CAP_BLOCK_STATUS);
        for (uint64_t off = 0; off < (8u << 20); off += 1536 * 1024 + 512) {
                t_pattern(w, sizeof(w), off, 11);
                ck_assert_int_eq(orion_bdev_pwrite(b, w, sizeof(w) - (off % 4096), off, off & 1 ? ORION_FUA : 0), 0);
        }
        ck_assert_int_eq(orion_bdev_flush(b, 0), 0);
        /* what the server stored is what was written */
        fd = open(g_img, O_RDWR);
        ck_assert_int_ge(fd, 0);
        for (uint64_t off = 0; off < (8u << 20); off += 1536 * 1024 + 512) {
                size_t len = sizeof(w) - (off % 4096);

                t_pattern(w, len, off, 11);
                ck_assert_int_eq(pread(fd, r, len, (off_t) off), (ssize_t) len);
                ck_assert_mem_eq(w, r, len);
                memset(r, 0, sizeof(r));
                ck_assert_int_eq(orion_bdev_pread(b, r, len, off, 0), 0);
                ck_assert_mem_eq(w, r, len);
        }
        /* and the reverse: data written at the server is read through the leaf */
        t_pattern(w, 4096, 12345, 3);
        ck_assert_int_eq(pwrite(fd, w, 4096, 7 << 20), 4096);
        close(fd);
        ck_assert_int_eq(orion_bdev_pread(b, r, 4096, 7 << 20, 0), 0);
        ck_assert_mem_eq(w, r, 4096);
}
END_TEST

START_TEST(test_block_status_trim_zero) {
        const uint32_t HZ = ORION_EXTENT_HOLE | ORION_EXTENT_ZERO;
        struct orion_extents *ext;
        struct orion_bdev *b;
        char w[65536], r[65536];
        uint64_t eo, el;
        uint32_t ef;

        REQUIRE_NBDKIT();
        b = open_leaf("10");
        memset(w, 0x42, sizeof(w));
        ck_assert_int_eq(orion_bdev_pwrite(b, w, sizeof(w), 1 << 20, 0), 0);
        ck_assert_int_eq(orion_bdev_flush(b, 0), 0);
        ext = orion_extents_new(0, 64);
        ck_assert_int_eq(orion_bdev_block_status(b, 2 << 20, 0, ext), 0);
        ck_assert_uint_ge(orion_extents_count(ext), 2);
        ck_assert(orion_extents_get(ext, 0, &eo, &el, &ef));
        ck_assert_uint_eq(eo, 0);
        ck_assert_uint_eq(el, 1 << 20);
        ck_assert_uint_eq(ef, HZ);
        ck_assert(orion_extents_get(ext, 1, &eo, &el, &ef));
        ck_assert_uint_eq(eo, 1 << 20);
        ck_assert_uint_eq(ef, 0);
        orion_extents_free(ext);
        /* zero and trim read back as zeroes */
        ck_assert_int_eq(orion_bdev_write_zeroes(b, 4096, 1 << 20, ORION_NO_HOLE), 0);
        ck_assert_int_eq(orion_bdev_pread(b, r, 8192, 1 << 20, 0), 0);
        ck_assert(t_is_zero(r, 4096));
        ck_assert_mem_eq(r + 4096, w, 4096);
        ck_assert_int_eq(orion_bdev_write_zeroes(b, 8192, (1 << 20) + 8192, 0), 0);
        ck_assert_int_eq(orion_bdev_pread(b, r, 8192, (1 << 20) + 8192, 0), 0);
        ck_assert(t_is_zero(r, 8192));
        ck_assert_int_eq(orion_bdev_discard(b, 65536, 2 << 20, 0), 0);
}
END_TEST

START_TEST(test_batch) {
        enum { N = 64 };
        struct orion_req q[N];
        static char bufs[N][4096];
        struct orion_bdev *b;

        REQUIRE_NBDKIT();
        b = open_leaf("10");
        for (int i = 0; i < N; i++) {
                t_pattern(bufs[i], 4096, (uint64_t) i * 65536, 5);
                q[i] = (struct orion_req) { .bdev = b, .op = ORION_OP_WRITE, .buf = bufs[i], .len = 4096,
                                            .off = (uint64_t) i * 65536 };
        }
        ck_assert_int_eq(orion_submit(q, N), 0);
        for (int i = 0; i < N; i++) {
                memset(bufs[i], 0, 4096);
                q[i].op = ORION_OP_READ;
        }
        ck_assert_int_eq(orion_submit(q, N), 0);
        for (int i = 0; i < N; i++) {
                char w[4096];

                t_pattern(w, 4096, (uint64_t) i * 65536, 5);
                ck_assert_mem_eq(w, bufs[i], 4096);
        }
}
END_TEST

struct io_job {
        struct orion_bdev *b;
        int result;
};

static void *write_read_job(void *arg) {
        struct io_job *j = arg;
        char w[4096], r[4096];

        t_pattern(w, sizeof(w), 4096, 77);
        j->result = orion_bdev_pwrite(j->b, w, sizeof(w), 4096, 0);
        if (j->result == 0)
                j->result = orion_bdev_pread(j->b, r, sizeof(r), 4096, 0);
        if (j->result == 0 && memcmp(w, r, sizeof(w)) != 0)
                j->result = -EILSEQ;
        return NULL;
}

START_TEST(test_reconnect_within_window) {
        struct io_job j = { 0 };
        struct orion_bdev *b;
        pthread_t th;

        REQUIRE_NBDKIT();
        b = open_leaf("30");
        j.b = b;
        nbdkit_kill();
        /* a request made while the server is gone waits for it */
        ck_assert_int_eq(pthread_create(&th, NULL, write_read_job, &j), 0);
        usleep(300000);
        nbdkit_start();
        ck_assert_int_eq(pthread_join(th, NULL), 0);
        ck_assert_int_eq(j.result, 0);
        ck_assert_int_eq(b->health, ORION_HEALTH_OK);
}
END_TEST

START_TEST(test_past_window_then_recover) {
        struct orion_bdev *b;
        char buf[4096];
        int r = -1;

        REQUIRE_NBDKIT();
        b = open_leaf("1");
        nbdkit_kill();
        ck_assert_int_eq(orion_bdev_pread(b, buf, sizeof(buf), 0, 0), -EIO);
        ck_assert_int_eq(b->health, ORION_HEALTH_DEGRADED);
        /* past the window requests fail at once */
        ck_assert_int_eq(orion_bdev_pwrite(b, buf, sizeof(buf), 0, 0), -EIO);
        nbdkit_start();
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
        char uri[256];

        REQUIRE_NBDKIT();
        snprintf(uri, sizeof(uri), "nbd+unix:///?socket=%s/none.sock", g_dir);
        ck_assert_int_lt(t_node_add_err("x", "nbd", t_params("uri", uri, NULL), &b, &err), 0);
        ck_assert_ptr_nonnull(strstr(err.msg, "cannot connect"));
        memset(&err, 0, sizeof(err));
        ck_assert_int_lt(t_node_add_err("x", "nbd", t_params("uri", "http://example/", NULL), &b, &err), 0);
        memset(&err, 0, sizeof(err));
        ck_assert_int_lt(t_node_add_err("x", "nbd", t_params("uri", g_uri, "connections", "0", NULL), &b, &err), 0);
        memset(&err, 0, sizeof(err));
        ck_assert_int_lt(t_node_add_err("x", "nbd", t_params("uri", g_uri, "request-timeout", "-1", NULL), &b, &err),
                         0);
}
END_TEST

/* A server that accepts (here: the kernel, into the backlog of a socket nobody accepts on)
 * and never says a word: the handshake is bounded by request-timeout. */
START_TEST(test_silent_server) {
        struct orion_error err = { 0 };
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t len = sizeof(sa);
        struct orion_bdev *b;
        char uri[128];
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

        REQUIRE_NBDKIT();
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(bind(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
        ck_assert_int_eq(listen(fd, 8), 0);
        ck_assert_int_eq(getsockname(fd, (struct sockaddr *) &sa, &len), 0);
        snprintf(uri, sizeof(uri), "nbd://127.0.0.1:%u/", ntohs(sa.sin_port));
        ck_assert_int_lt(t_node_add_err("x", "nbd", t_params("uri", uri, "request-timeout", "1", NULL), &b, &err), 0);
        ck_assert_msg(strstr(err.msg, "handshake"), "%s", err.msg);
        close(fd);
}
END_TEST

int main(void) {
        Suite *s = suite_create("nbd");
        TCase *tc = tcase_create("nbd");

        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_round_trip);
        tcase_add_test(tc, test_block_status_trim_zero);
        tcase_add_test(tc, test_batch);
        tcase_add_test(tc, test_reconnect_within_window);
        tcase_add_test(tc, test_past_window_then_recover);
        tcase_add_test(tc, test_open_errors);
        tcase_add_test(tc, test_silent_server);
        suite_add_tcase(s, tc);
        return t_run(s);
}
