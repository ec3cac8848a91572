/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The file leaf through the core: sparse create, round trips at many offsets, batches, O_DIRECT
 * bounce buffers, discard/zeroes/block status, loop block devices, and open errors. */
#include <errno.h>
#include <fcntl.h>
#include <linux/loop.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "t-core.h"

static char g_dir[64];
static char g_path[128];

static void setup(void) {
        t_core_setup();
        snprintf(g_dir, sizeof(g_dir), "/var/tmp/check-file.XXXXXX");
        ck_assert_ptr_nonnull(mkdtemp(g_dir));
        snprintf(g_path, sizeof(g_path), "%s/disk.img", g_dir);
}

static void teardown(void) {
        char p[160];

        t_core_teardown();
        (void) unlink(g_path);
        snprintf(p, sizeof(p), "%s/ro.img", g_dir);
        (void) unlink(p);
        (void) rmdir(g_dir);
}

static struct orion_bdev *open_file(const char *size, const char *direct) {
        return t_node_add("f0", "file", t_params("path", g_path, "size", size, "direct", direct, NULL));
}

START_TEST(test_create_sparse) {
        struct orion_bdev *b = open_file("8M", "off");
        struct stat st;

        ck_assert_uint_eq(orion_bdev_size(b), 8u << 20);
        ck_assert_uint_eq(orion_bdev_block_size(b), 512);
        ck_assert(orion_bdev_caps(b) & ORION_CAP_FLUSH);
        ck_assert(orion_bdev_caps(b) & ORION_CAP_FUA);
        ck_assert(orion_bdev_caps(b) & ORION_CAP_DISCARD);
        ck_assert(orion_bdev_caps(b) & ORION_CAP_BLOCK_STATUS);
        ck_assert(orion_bdev_caps(b) & ORION_CAP_MULTI_CONN);
        ck_assert(orion_bdev_caps(b) & ORION_CAP_FAST_ZERO); /* the test dir is ext4/xfs/tmpfs: punching works */
        ck_assert(!(orion_bdev_caps(b) & ORION_CAP_READONLY));
        ck_assert_int_eq(stat(g_path, &st), 0);
        ck_assert_int_eq(st.st_size, 8 << 20);
        ck_assert_int_lt(st.st_blocks, 64); /* sparse */
        t_node_remove("f0");
        /* reopen the existing file without size=, then with the same size */
        b = t_node_add("f0", "file", t_params("path", g_path, NULL));
        ck_assert_uint_eq(orion_bdev_size(b), 8u << 20);
        t_node_remove("f0");
        b = open_file("8M", "off");
        ck_assert_uint_eq(orion_bdev_size(b), 8u << 20);
}
END_TEST

static void round_trip(struct orion_bdev *b) {
        static const uint64_t offs[] = { 0, 512, 4096, 65536 - 512, 1 << 20, (3 << 20) + 1536 };
        static const uint64_t lens[] = { 512, 1024, 4096, 12288, 65536, 1 << 20 };
        size_t max = 1 << 20;
        char *w = malloc(max + 1), *r = malloc(max + 1);

        ck_assert(w && r);
        for (size_t i = 0; i < ELEMENTSOF(offs); i++)
                for (size_t j = 0; j < ELEMENTSOF(lens); j++) {
                        uint64_t off = offs[i], len = lens[j];

                        /* w + 1: deliberately unaligned buffers (the bounce path under O_DIRECT) */
                        t_pattern(w + 1, len, off, (uint32_t) (i * 31 + j));
                        ck_assert_int_eq(orion_bdev_pwrite(b, w + 1, len, off, j & 1 ? ORION_FUA : 0), 0);
                        memset(r, 0xAA, len + 1);
                        ck_assert_int_eq(orion_bdev_pread(b, r + 1, len, off, 0), 0);
                        ck_assert_msg(memcmp(w + 1, r + 1, len) == 0, "mismatch off=%llu len=%llu",
                                      (unsigned long long) off, (unsigned long long) len);
                }
        /* unaligned client I/O goes through the core's read-modify-write onto aligned requests */
        t_pattern(w, 1000, 7, 99);
        ck_assert_int_eq(orion_bdev_pwrite(b, w, 1000, 7, 0), 0);
        ck_assert_int_eq(orion_bdev_pread(b, r, 1000, 7, 0), 0);
        ck_assert_mem_eq(w, r, 1000);
        ck_assert_int_eq(orion_bdev_flush(b, 0), 0);
        free(w);
        free(r);
}

START_TEST(test_round_trip) {
        round_trip(open_file("8M", "off"));
}
END_TEST

START_TEST(test_round_trip_direct) {
        struct orion_bdev *b = open_file("8M", "on");
        struct json_object *st = json_object_new_object();

        round_trip(b);
        /* the unaligned buffers must have gone through bounce buffers */
        b->type->ops->stats(b, st);
        ck_assert_ptr_nonnull(strstr(json_object_to_json_string(st), "\"bounce_buffers\""));
        json_object_put(st);
}
END_TEST

START_TEST(test_outside_range) {
        struct orion_bdev *b = open_file("1M", "off");
        char buf[4096] = { 0 };

        ck_assert_int_lt(orion_bdev_pread(b, buf, 4096, (1 << 20) - 512, 0), 0);
        ck_assert_int_lt(orion_bdev_pwrite(b, buf, 4096, 1 << 20, 0), 0);
}
END_TEST

START_TEST(test_batch) {
        enum { N = 200, LEN = 4096 };
        struct orion_bdev *b = open_file("4M", _i ? "on" : "off");
        struct orion_req *q = calloc(N + 1, sizeof(*q));
        char *data = orion_alloc_aligned(N * LEN + 1), *back = orion_alloc_aligned(N * LEN + 1);

        ck_assert(q && data && back);
        /* more requests than the ring has entries; odd indices use unaligned buffers */
        for (int i = 0; i < N; i++) {
                char *p = data + i * LEN + (i & 1);

                t_pattern(p, LEN, (uint64_t) i * 8192, 7);
                q[i] = (struct orion_req) { .bdev = b, .op = ORION_OP_WRITE, .buf = p, .len = LEN,
                                            .off = (uint64_t) i * 8192, .flags = i % 10 == 0 ? ORION_FUA : 0 };
        }
        q[N] = (struct orion_req) { .bdev = b, .op = ORION_OP_FLUSH };
        ck_assert_int_eq(orion_submit(q, N + 1), 0);
        for (int i = 0; i <= N; i++)
                ck_assert_int_eq(q[i].result, 0);
        for (int i = 0; i < N; i++)
                q[i] = (struct orion_req) { .bdev = b, .op = ORION_OP_READ, .buf = back + i * LEN + (i & 1),
                                            .len = LEN, .off = (uint64_t) i * 8192 };
        ck_assert_int_eq(orion_submit(q, N), 0);
        for (int i = 0; i < N; i++)
                ck_assert_msg(memcmp(data + i * LEN + (i & 1), back + i * LEN + (i & 1), LEN) == 0, "req %d", i);
        /* a batch with a failing member reports it, the others still complete */
        q[0] = (struct orion_req) { .bdev = b, .op = ORION_OP_READ, .buf = back, .len = LEN, .off = 0 };
        q[1] = (struct orion_req) { .bdev = b, .op = ORION_OP_READ, .buf = back + LEN, .len = LEN, .off = 8 << 20 };
        q[2] = (struct orion_req) { .bdev = b, .op = ORION_OP_DISCARD, .len = LEN, .off = 8192 };
        ck_assert_int_lt(orion_submit(q, 3), 0);
        ck_assert_int_eq(q[0].result, 0);
        ck_assert_int_lt(q[1].result, 0);
        ck_assert_int_eq(q[2].result, 0);
        free(q);
        free(data);
        free(back);
}
END_TEST

static void *thread_io(void *arg) {
        struct orion_bdev *b = graph_node_find("f0");
        uintptr_t t = (uintptr_t) arg;
        char w[8192], r[8192];

        for (int i = 0; i < 64; i++) {
                uint64_t off = (t * 64 + (uint64_t) i) * 8192;

                t_pattern(w, sizeof(w), off, (uint32_t) t);
                if (orion_bdev_pwrite(b, w, sizeof(w), off, 0) < 0 || orion_bdev_pread(b, r, sizeof(r), off, 0) < 0 ||
                    memcmp(w, r, sizeof(w)) != 0)
                        return (void *) 1;
        }
        return NULL;
}

START_TEST(test_threads) {
        pthread_t th[6];
        void *ret;

        open_file("4M", "off");
        for (uintptr_t t = 0; t < ELEMENTSOF(th); t++)
                ck_assert_int_eq(pthread_create(&th[t], NULL, thread_io, (void *) t), 0);
        for (size_t t = 0; t < ELEMENTSOF(th); t++) {
                ck_assert_int_eq(pthread_join(th[t], &ret), 0);
                ck_assert_ptr_null(ret);
        }
}
END_TEST

static void expect_extents(struct orion_bdev *b, uint64_t off, uint64_t len, const uint64_t *want, size_t n) {
        struct orion_extents *ext = orion_extents_new(off, 64);
        uint64_t eo, el;
        uint32_t ef;

        ck_assert_int_eq(orion_bdev_block_status(b, len, off, ext), 0);
        ck_assert_uint_eq(orion_extents_count(ext), n);
        for (size_t i = 0; i < n; i++) {
                ck_assert(orion_extents_get(ext, i, &eo, &el, &ef));
                ck_assert_msg(eo == want[3 * i] && el == want[3 * i + 1] && ef == want[3 * i + 2],
                              "extent %zu: %llu+%llu/%u", i, (unsigned long long) eo, (unsigned long long) el, ef);
        }
        orion_extents_free(ext);
}

START_TEST(test_discard_zero_status) {
        struct orion_bdev *b = open_file("4M", "off");
        const uint32_t HZ = ORION_EXTENT_HOLE | ORION_EXTENT_ZERO;
        char *buf = malloc(1 << 20), *rd = malloc(1 << 20);

        ck_assert(buf && rd);
        /* fresh sparse file: one hole */
        expect_extents(b, 0, 4 << 20, (uint64_t[]) { 0, 4 << 20, HZ }, 1);
        memset(buf, 0x5A, 1 << 20);
        ck_assert_int_eq(orion_bdev_pwrite(b, buf, 1 << 20, 1 << 20, 0), 0);
        ck_assert_int_eq(orion_bdev_flush(b, 0), 0);
        expect_extents(b, 0, 4 << 20,
                       (uint64_t[]) { 0, 1 << 20, HZ, 1 << 20, 1 << 20, 0, 2 << 20, 2 << 20, HZ }, 3);
        /* a query starting inside data */
        expect_extents(b, (1 << 20) + 4096, 8192, (uint64_t[]) { (1 << 20) + 4096, 8192, 0 }, 1);

        /* discard punches a hole that reads back as zeroes */
        ck_assert_int_eq(orion_bdev_discard(b, 256 << 10, 1 << 20, 0), 0);
        ck_assert_int_eq(orion_bdev_pread(b, rd, 256 << 10, 1 << 20, 0), 0);
        ck_assert(t_is_zero(rd, 256 << 10));
        expect_extents(b, 1 << 20, 512 << 10, (uint64_t[]) { 1 << 20, 256 << 10, HZ, (1 << 20) + (256 << 10),
                                                             256 << 10, 0 }, 2);

        /* write_zeroes with NO_HOLE keeps the range allocated */
        ck_assert_int_eq(orion_bdev_write_zeroes(b, 64 << 10, (1 << 20) + (512 << 10), ORION_NO_HOLE), 0);
        ck_assert_int_eq(orion_bdev_pread(b, rd, 64 << 10, (1 << 20) + (512 << 10), 0), 0);
        ck_assert(t_is_zero(rd, 64 << 10));
        expect_extents(b, (1 << 20) + (512 << 10), 64 << 10, (uint64_t[]) { (1 << 20) + (512 << 10), 64 << 10, 0 },
                       1);
        /* write_zeroes without NO_HOLE may punch, and FAST_ZERO succeeds on ext4/xfs/tmpfs */
        ck_assert_int_eq(orion_bdev_write_zeroes(b, 64 << 10, (1 << 20) + (768 << 10), ORION_FAST_ZERO), 0);
        ck_assert_int_eq(orion_bdev_pread(b, rd, 64 << 10, (1 << 20) + (768 << 10), 0), 0);
        ck_assert(t_is_zero(rd, 64 << 10));
        /* neighbours untouched */
        ck_assert_int_eq(orion_bdev_pread(b, rd, 4096, (1 << 20) + (768 << 10) - 4096, 0), 0);
        ck_assert_int_eq(rd[0], 0x5A);
        ck_assert_int_eq(orion_bdev_pread(b, rd, 4096, (1 << 20) + (832 << 10), 0), 0);
        ck_assert_int_eq(rd[4095], 0x5A);
        free(buf);
        free(rd);
}
END_TEST

/* Block status remembers the last data run (file.c): holes filled by writes, and holes the leaf
 * punches inside a remembered run, must still show. */
START_TEST(test_status_cache) {
        struct orion_bdev *b = open_file("4M", "off");
        const uint32_t HZ = ORION_EXTENT_HOLE | ORION_EXTENT_ZERO;
        char *buf = malloc(1 << 20);

        ck_assert(buf);
        memset(buf, 0x33, 1 << 20);
        ck_assert_int_eq(orion_bdev_pwrite(b, buf, 1 << 20, 0, 0), 0);
        expect_extents(b, 0, 4 << 20, (uint64_t[]) { 0, 1 << 20, 0, 1 << 20, 3 << 20, HZ }, 2);
        for (int i = 0; i < 3; i++) /* answered from the remembered run */
                expect_extents(b, 4096 * i, 8192, (uint64_t[]) { 4096 * i, 8192, 0 }, 1);
        /* a write into the hole after the run */
        ck_assert_int_eq(orion_bdev_pwrite(b, buf, 64 << 10, 2 << 20, 0), 0);
        expect_extents(b, 2 << 20, 128 << 10, (uint64_t[]) { 2 << 20, 64 << 10, 0, (2 << 20) + (64 << 10), 64 << 10, HZ },
                       2);
        /* a punch inside the remembered run, then a query inside it */
        expect_extents(b, 4096, 8192, (uint64_t[]) { 4096, 8192, 0 }, 1);
        ck_assert_int_eq(orion_bdev_discard(b, 64 << 10, 0, 0), 0);
        expect_extents(b, 0, 128 << 10, (uint64_t[]) { 0, 64 << 10, HZ, 64 << 10, 64 << 10, 0 }, 2);
        /* zeroing that may punch does too */
        expect_extents(b, 128 << 10, 4096, (uint64_t[]) { 128 << 10, 4096, 0 }, 1);
        ck_assert_int_eq(orion_bdev_write_zeroes(b, 64 << 10, 128 << 10, 0), 0);
        expect_extents(b, 128 << 10, 4096, (uint64_t[]) { 128 << 10, 4096, HZ }, 1);
        free(buf);
}
END_TEST

START_TEST(test_errors) {
        struct orion_error err = { 0 };
        struct orion_bdev *b = NULL;
        char p[160];
        int fd;

        /* missing file without size= */
        ck_assert_int_eq(t_node_add_err("f1", "file", t_params("path", g_path, NULL), &b, &err), -ENOENT);
        ck_assert_ptr_nonnull(strstr(err.msg, "size="));
        /* directory that does not exist */
        memset(&err, 0, sizeof(err));
        ck_assert_int_eq(t_node_add_err("f1", "file", t_params("path", "/nonexistent/dir/x.img", "size", "1M", NULL),
                                        &b, &err), -ENOENT);
        /* a directory is neither a file nor a device */
        memset(&err, 0, sizeof(err));
        ck_assert_int_eq(t_node_add_err("f1", "file", t_params("path", g_dir, NULL), &b, &err), -EISDIR);
        /* size mismatch on an existing file */
        open_file("1M", "off");
        t_node_remove("f0");
        memset(&err, 0, sizeof(err));
        ck_assert_int_eq(t_node_add_err("f1", "file", t_params("path", g_path, "size", "2M", NULL), &b, &err), -EINVAL);
        ck_assert_ptr_nonnull(strstr(err.msg, "size="));
        /* bad block size */
        memset(&err, 0, sizeof(err));
        ck_assert_int_eq(t_node_add_err("f1", "file", t_params("path", g_path, "block-size", "1024", NULL), &b, &err),
                         -EINVAL);
        /* size not a multiple of the block size */
        memset(&err, 0, sizeof(err));
        snprintf(p, sizeof(p), "%s/ro.img", g_dir);
        ck_assert_int_eq(t_node_add_err("f1", "file", t_params("path", p, "size", "1000", NULL), &b, &err), -EINVAL);
        (void) unlink(p);
        /* read-only: never created, and writes fail with EROFS */
        memset(&err, 0, sizeof(err));
        ck_assert_int_eq(t_node_add_err("f1", "file", t_params("path", p, "size", "1M", "read-only", "on", NULL), &b,
                                        &err), -ENOENT);
        fd = open(p, O_CREAT | O_WRONLY, 0600);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(ftruncate(fd, 1 << 20), 0);
        close(fd);
        b = t_node_add("ro", "file", t_params("path", p, "read-only", "on", "block-size", "4096", NULL));
        ck_assert(orion_bdev_caps(b) & ORION_CAP_READONLY);
        ck_assert_uint_eq(orion_bdev_block_size(b), 4096);
        {
                char buf[4096] = { 1 };

                ck_assert_int_eq(orion_bdev_pwrite(b, buf, 4096, 0, 0), -EROFS);
                ck_assert_int_eq(orion_bdev_pread(b, buf, 4096, 0, 0), 0);
                ck_assert(t_is_zero(buf, 4096));
        }
}
END_TEST

/* A loop device over a temp file: BLKGETSIZE64, BLKSSZGET, BLKDISCARD, zero-range. */
START_TEST(test_block_device) {
        char dev[32], *buf = malloc(65536), *rd = malloc(65536);
        struct loop_info64 li = { 0 };
        int ctl, n, loopfd, fd;
        struct orion_bdev *b;

        ck_assert(buf && rd);
        ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
        if (ctl < 0) {
                fprintf(stderr, "# no /dev/loop-control (%m): block-device case not run\n");
                free(buf);
                free(rd);
                return;
        }
        fd = open(g_path, O_CREAT | O_RDWR | O_CLOEXEC, 0600);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(ftruncate(fd, 4 << 20), 0);
        n = ioctl(ctl, LOOP_CTL_GET_FREE);
        ck_assert_int_ge(n, 0);
        snprintf(dev, sizeof(dev), "/dev/loop%d", n);
        loopfd = open(dev, O_RDWR | O_CLOEXEC);
        ck_assert_int_ge(loopfd, 0);
        ck_assert_int_eq(ioctl(loopfd, LOOP_SET_FD, fd), 0);
        li.lo_flags = LO_FLAGS_AUTOCLEAR;
        (void) ioctl(loopfd, LOOP_SET_STATUS64, &li);

        b = t_node_add("blk", "file", t_params("path", dev, NULL));
        ck_assert_uint_eq(orion_bdev_size(b), 4u << 20);
        ck_assert(!(orion_bdev_caps(b) & ORION_CAP_BLOCK_STATUS));
        t_pattern(buf, 65536, 0, 3);
        ck_assert_int_eq(orion_bdev_pwrite(b, buf, 65536, 1 << 20, ORION_FUA), 0);
        ck_assert_int_eq(orion_bdev_pread(b, rd, 65536, 1 << 20, 0), 0);
        ck_assert_mem_eq(buf, rd, 65536);
        ck_assert_int_eq(orion_bdev_write_zeroes(b, 32768, 1 << 20, 0), 0);
        ck_assert_int_eq(orion_bdev_pread(b, rd, 65536, 1 << 20, 0), 0);
        ck_assert(t_is_zero(rd, 32768));
        ck_assert_mem_eq(buf + 32768, rd + 32768, 32768);
        ck_assert_int_eq(orion_bdev_discard(b, 65536, 2 << 20, 0), 0);
        /* FAST_ZERO either zeroes without falling back to writes, or says ENOTSUP */
        ck_assert_int_eq(orion_bdev_pwrite(b, buf, 65536, 3 << 20, 0), 0);
        {
                int r = orion_bdev_write_zeroes(b, 65536, 3 << 20, ORION_FAST_ZERO);

                ck_assert_msg(r == 0 || r == -ENOTSUP, "fast zero: %d", r);
                ck_assert_int_eq(orion_bdev_pread(b, rd, 65536, 3 << 20, 0), 0);
                if (r == 0)
                        ck_assert(t_is_zero(rd, 65536));
                else
                        ck_assert_mem_eq(rd, buf, 65536);
        }
        ck_assert_int_eq(orion_bdev_flush(b, 0), 0);
        /* the data really reached the backing file */
        ck_assert_int_eq(pread(fd, rd, 32768, (1 << 20) + 32768), 32768);
        ck_assert_mem_eq(buf + 32768, rd, 32768);
        t_node_remove("blk");
        (void) ioctl(loopfd, LOOP_CLR_FD, 0);
        close(loopfd);
        close(fd);
        close(ctl);
        free(buf);
        free(rd);
}
END_TEST

int main(void) {
        Suite *s = suite_create("file");
        TCase *tc = tcase_create("file");

        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_create_sparse);
        tcase_add_test(tc, test_round_trip);
        tcase_add_test(tc, test_round_trip_direct);
        tcase_add_test(tc, test_outside_range);
        tcase_add_loop_test(tc, test_batch, 0, 2);
        tcase_add_test(tc, test_threads);
        tcase_add_test(tc, test_discard_zero_status);
        tcase_add_test(tc, test_status_cache);
        tcase_add_test(tc, test_errors);
        tcase_add_test(tc, test_block_device);
        suite_add_tcase(s, tc);
        return t_run(s);
}
