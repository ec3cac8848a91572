/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Raid math and formats: P/Q and every 1- and 2-block recovery against a naive GF(2^8)
 * reference, md's layouts, the superblock codec and the write-intent bitmap protocol. */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../../plugins/raid/bitmap.c"
#include "../../plugins/raid/layout.c"
#include "../../plugins/raid/parity.c"
#include "../../plugins/raid/superblock.c"

/* ---- Naive reference: shift-and-add multiply modulo x^8+x^4+x^3+x^2+1 ---- */
static uint8_t ref_mul(uint8_t a, uint8_t b) {
        uint8_t r = 0;

        while (b) {
                if (b & 1)
                        r ^= a;
                a = (uint8_t) ((a << 1) ^ ((a & 0x80) ? 0x1D : 0));
                b >>= 1;
        }
        return r;
}

static uint8_t ref_pow2(unsigned e) {
        uint8_t v = 1;

        while (e--)
                v = ref_mul(v, 2);
        return v;
}

static void ref_pq(unsigned k, size_t len, uint8_t **d, uint8_t *p, uint8_t *q) {
        for (size_t x = 0; x < len; x++) {
                uint8_t pp = 0, qq = 0;

                for (unsigned i = 0; i < k; i++) {
                        pp ^= d[i][x];
                        qq ^= ref_mul(ref_pow2(i), d[i][x]);
                }
                p[x] = pp;
                if (q)
                        q[x] = qq;
        }
}

static void fill_random(uint8_t *b, size_t len, unsigned *seed) {
        for (size_t i = 0; i < len; i++)
                b[i] = (uint8_t) rand_r(seed);
}

/* k+2 blocks of len bytes at offset `skew` from 32-byte alignment. */
struct stripe {
        unsigned n;
        uint8_t *mem[PARITY_MAX_BLOCKS];
        uint8_t *b[PARITY_MAX_BLOCKS];
};

static void stripe_new(struct stripe *s, unsigned n, size_t len, size_t skew) {
        s->n = n;
        for (unsigned i = 0; i < n; i++) {
                ck_assert_int_eq(posix_memalign((void **) &s->mem[i], 64, len + 64), 0);
                s->b[i] = s->mem[i] + skew;
        }
}

static void stripe_free(struct stripe *s) {
        for (unsigned i = 0; i < s->n; i++)
                free(s->mem[i]);
}

START_TEST(test_gf_tables) {
        for (unsigned e = 0; e < 300; e++)
                ck_assert_uint_eq(gf_pow2(e), ref_pow2(e % 255));
        for (unsigned v = 1; v < 256; v++)
                ck_assert_uint_eq(ref_pow2((unsigned) gf_log2((uint8_t) v)), v);
        ck_assert_int_eq(gf_log2(0), -1);
        for (unsigned a = 0; a < 256; a += 7)
                for (unsigned b = 0; b < 256; b += 5)
                        ck_assert_uint_eq(gf_mul((uint8_t) a, (uint8_t) b),
                                          ref_mul((uint8_t) a, (uint8_t) b));
}
END_TEST

static const unsigned ks[] = {1, 2, 3, 4, 5, 7, 8, 13};
static const size_t lens[] = {32, 512, 4096, 4096 + 96};

START_TEST(test_pq_generation) {
        unsigned seed = 1;

        for (size_t ki = 0; ki < ELEMENTSOF(ks); ki++)
                for (size_t li = 0; li < ELEMENTSOF(lens); li++)
                        for (size_t skew = 0; skew <= 8; skew += 8) {
                                unsigned k = ks[ki];
                                size_t len = lens[li];
                                struct stripe s;
                                _cleanup_free_ uint8_t *rp = malloc(len), *rq = malloc(len);

                                stripe_new(&s, k + 2, len, skew);
                                for (unsigned i = 0; i < k; i++)
                                        fill_random(s.b[i], len, &seed);
                                ref_pq(k, len, s.b, rp, rq);
                                parity_gen_p(k, len, s.b, s.b[k]);
                                ck_assert_mem_eq(s.b[k], rp, len);
                                memset(s.b[k], 0xAA, len);
                                parity_gen_pq(k, len, s.b, s.b[k], s.b[k + 1]);
                                ck_assert_mem_eq(s.b[k], rp, len);
                                ck_assert_mem_eq(s.b[k + 1], rq, len);
                                stripe_free(&s);
                        }
}
END_TEST

/* Every one- and two-block loss for raid5 (np 1) and raid6 (np 2). */
static void check_recovery(unsigned k, unsigned np, size_t len, size_t skew, unsigned *seed) {
        unsigned n = k + np;
        struct stripe s;
        _cleanup_free_ uint8_t *orig = malloc(n * len);

        stripe_new(&s, n, len, skew);
        for (unsigned i = 0; i < k; i++)
                fill_random(s.b[i], len, seed);
        ref_pq(k, len, s.b, s.b[k], np == 2 ? s.b[k + 1] : NULL);
        for (unsigned i = 0; i < n; i++)
                memcpy(orig + i * len, s.b[i], len);

        for (unsigned x = 0; x < n; x++)
                for (unsigned y = x; y < n; y++) {
                        unsigned lost[2] = {x, y}, nlost = x == y ? 1 : 2;

                        if (nlost > np)
                                continue;
                        for (unsigned i = 0; i < nlost; i++)
                                fill_random(s.b[lost[i]], len, seed);
                        ck_assert_int_eq(parity_recover(k, np, len, s.b, lost, nlost), 0);
                        for (unsigned i = 0; i < n; i++)
                                ck_assert_msg(memcmp(s.b[i], orig + i * len, len) == 0,
                                              "k=%u np=%u lost %u,%u: block %u wrong", k, np, x, y, i);
                }
        stripe_free(&s);
}

START_TEST(test_recovery_all_losses) {
        unsigned seed = 7;

        for (size_t ki = 0; ki < ELEMENTSOF(ks); ki++)
                for (unsigned np = 1; np <= 2; np++)
                        for (size_t li = 0; li < ELEMENTSOF(lens); li++) {
                                check_recovery(ks[ki], np, lens[li], 0, &seed);
                                check_recovery(ks[ki], np, lens[li], 8, &seed);
                        }
}
END_TEST

START_TEST(test_recovery_bad_args) {
        uint8_t buf[4][32] = {};
        uint8_t *b[4] = {buf[0], buf[1], buf[2], buf[3]};
        unsigned lost2[2] = {0, 1}, dup[2] = {1, 1}, out[1] = {4};

        ck_assert_int_eq(parity_recover(2, 1, 32, b, lost2, 2), -EINVAL); /* two lost, one parity */
        ck_assert_int_eq(parity_recover(2, 2, 32, b, dup, 2), -EINVAL);
        ck_assert_int_eq(parity_recover(2, 2, 32, b, out, 1), -EINVAL);
        ck_assert_int_eq(parity_recover(0, 2, 32, b, lost2, 1), -EINVAL);
}
END_TEST

START_TEST(test_rmw_update) {
        unsigned seed = 3;

        for (unsigned k = 1; k <= 8; k++)
                for (unsigned idx = 0; idx < k; idx++) {
                        size_t len = 1024;
                        struct stripe s;
                        _cleanup_free_ uint8_t *nd = malloc(len), *rp = malloc(len), *rq = malloc(len);

                        stripe_new(&s, k + 2, len, 0);
                        for (unsigned i = 0; i < k; i++)
                                fill_random(s.b[i], len, &seed);
                        parity_gen_pq(k, len, s.b, s.b[k], s.b[k + 1]);
                        fill_random(nd, len, &seed);
                        parity_update(k, idx, len, s.b[idx], nd, s.b[k], s.b[k + 1]);
                        memcpy(s.b[idx], nd, len);
                        ref_pq(k, len, s.b, rp, rq);
                        ck_assert_mem_eq(s.b[k], rp, len);
                        ck_assert_mem_eq(s.b[k + 1], rq, len);
                        stripe_free(&s);
                }
}
END_TEST

START_TEST(test_locate) {
        unsigned seed = 11, k = 6;
        size_t len = 512;
        struct stripe s;
        _cleanup_free_ uint8_t *p2 = malloc(len), *q2 = malloc(len), *dp = malloc(len), *dq = malloc(len);

        stripe_new(&s, k + 2, len, 0);
        for (unsigned i = 0; i < k; i++)
                fill_random(s.b[i], len, &seed);
        parity_gen_pq(k, len, s.b, s.b[k], s.b[k + 1]);
        for (unsigned bad = 0; bad < k + 2; bad++) {
                uint8_t saved = s.b[bad][100];

                s.b[bad][100] ^= 0x5A;
                s.b[bad][200] ^= 0x01;
                parity_gen_pq(k, len, s.b, p2, q2);
                for (size_t x = 0; x < len; x++) {
                        dp[x] = p2[x] ^ s.b[k][x];
                        dq[x] = q2[x] ^ s.b[k + 1][x];
                }
                ck_assert_int_eq(parity_locate(k, len, dp, dq), (int) bad);
                s.b[bad][100] = saved;
                s.b[bad][200] ^= 0x01;
        }
        /* consistent */
        parity_gen_pq(k, len, s.b, p2, q2);
        for (size_t x = 0; x < len; x++) {
                dp[x] = p2[x] ^ s.b[k][x];
                dq[x] = q2[x] ^ s.b[k + 1][x];
        }
        ck_assert_int_eq(parity_locate(k, len, dp, dq), -1);
        /* two bad data blocks cannot be pinned on one */
        s.b[0][10] ^= 1;
        s.b[1][20] ^= 1;
        parity_gen_pq(k, len, s.b, p2, q2);
        for (size_t x = 0; x < len; x++) {
                dp[x] = p2[x] ^ s.b[k][x];
                dq[x] = q2[x] ^ s.b[k + 1][x];
        }
        ck_assert_int_eq(parity_locate(k, len, dp, dq), -2);
        stripe_free(&s);
}
END_TEST

/* ---- Layouts ---- */
START_TEST(test_layout_raid5_md) {
        /* md left-symmetric, 4 disks: row0 D0 D1 D2 P; row1 D1 D2 P D0; row2 D2 P D0 D1; row3 P D0 D1 D2 */
        static const int expect[4][4] = {{0, 1, 2, -1}, {1, 2, -1, 0}, {2, -1, 0, 1}, {-1, 0, 1, 2}};

        for (unsigned row = 0; row < 8; row++)
                for (unsigned m = 0; m < 4; m++) {
                        int e = expect[row % 4][m];
                        unsigned role = layout_member_role(4, 1, row, m);

                        if (e < 0) {
                                ck_assert_uint_eq(role, 3);
                                ck_assert_uint_eq(layout_parity_member(4, 1, row, 0), m);
                        } else {
                                ck_assert_uint_eq(role, (unsigned) e);
                                ck_assert_uint_eq(layout_data_member(4, 1, row, (unsigned) e), m);
                        }
                }
}
END_TEST

START_TEST(test_layout_raid6_md) {
        /* md raid6 left-symmetric, 5 disks: row0 Q D0 D1 D2 P; row1 D0 D1 D2 P Q; row2 D1 D2 P Q D0 */
        static const int expect[3][5] = {{-2, 0, 1, 2, -1}, {0, 1, 2, -1, -2}, {1, 2, -1, -2, 0}};

        for (unsigned row = 0; row < 3; row++)
                for (unsigned m = 0; m < 5; m++) {
                        int e = expect[row][m];
                        unsigned role = layout_member_role(5, 2, row, m);

                        if (e == -1)
                                ck_assert_uint_eq(role, 3);
                        else if (e == -2)
                                ck_assert_uint_eq(role, 4);
                        else
                                ck_assert_uint_eq(role, (unsigned) e);
                }
        /* Inverse holds for many geometries. */
        for (unsigned n = 3; n <= 10; n++)
                for (unsigned np = 1; np <= 2; np++)
                        for (unsigned row = 0; row < 3 * n; row++) {
                                unsigned seen = 0;

                                for (unsigned i = 0; i < n - np; i++) {
                                        unsigned m = layout_data_member(n, np, row, i);
                                        ck_assert_uint_eq(layout_member_role(n, np, row, m), i);
                                        seen |= 1u << m;
                                }
                                for (unsigned w = 0; w < np; w++) {
                                        unsigned m = layout_parity_member(n, np, row, w);
                                        ck_assert_uint_eq(layout_member_role(n, np, row, m), n - np + w);
                                        seen |= 1u << m;
                                }
                                ck_assert_uint_eq(seen, (1u << n) - 1);
                        }
}
END_TEST

START_TEST(test_layout_raid0_raid10) {
        unsigned m;
        uint64_t row, c;
        unsigned copy;

        layout_raid0(3, 7, &m, &row);
        ck_assert_uint_eq(m, 1);
        ck_assert_uint_eq(row, 2);
        /* near-2 on 4: chunk 0 on m0,m1 row 0; chunk 1 on m2,m3 row 0; chunk 2 on m0,m1 row 1 */
        layout_raid10(4, 1, 1, &m, &row);
        ck_assert_uint_eq(m, 3);
        ck_assert_uint_eq(row, 0);
        /* near-2 on 3 (odd): chunk 1 on m2 row 0 and m0 row 1 */
        layout_raid10(3, 1, 0, &m, &row);
        ck_assert_uint_eq(m, 2);
        ck_assert_uint_eq(row, 0);
        layout_raid10(3, 1, 1, &m, &row);
        ck_assert_uint_eq(m, 0);
        ck_assert_uint_eq(row, 1);
        for (unsigned n = 2; n <= 7; n++)
                for (uint64_t ch = 0; ch < 50; ch++)
                        for (unsigned j = 0; j < 2; j++) {
                                layout_raid10(n, ch, j, &m, &row);
                                layout_raid10_inv(n, row, m, &c, &copy);
                                ck_assert_uint_eq(c, ch);
                                ck_assert_uint_eq(copy, j);
                        }
}
END_TEST

/* ---- Superblock ---- */
static struct raid_sb sample_sb(void) {
        struct raid_sb sb = {
                .level = 6,
                .chunk = 65536,
                .raid_disks = 5,
                .role = 2,
                .flags = RAID_SB_CLEAN,
                .events = 42,
                .data_offset = RAID_DATA_OFFSET,
                .data_size = 64 << 20,
                .bitmap_offset = RAID_BITMAP_OFFSET,
                .bitmap_chunk = 1 << 20,
                .recovery_offset = RAID_RECOVERY_DONE,
                .ctime = 1,
                .utime = 2,
        };

        memcpy(sb.uuid, "0123456789abcdef", 16);
        sb.dev_state[3] = RAID_DEV_FAULTY;
        return sb;
}

START_TEST(test_sb_roundtrip) {
        struct raid_sb sb = sample_sb(), out;
        uint8_t buf[RAID_SB_SIZE];

        sb_encode(&sb, buf);
        ck_assert_int_eq(sb_decode(buf, sizeof(buf), &out), 0);
        ck_assert_mem_eq(&sb, &out, sizeof(sb));
        ck_assert_int_eq(sb_decode(buf, 100, &out), -EINVAL);
        buf[300] ^= 1;
        ck_assert_int_eq(sb_decode(buf, sizeof(buf), &out), -EBADMSG);
        memset(buf, 0, sizeof(buf));
        ck_assert_int_eq(sb_decode(buf, sizeof(buf), &out), -ENODATA);
}
END_TEST

START_TEST(test_sb_invalid_fields) {
        struct raid_sb bad[10];
        uint8_t buf[RAID_SB_SIZE];
        struct raid_sb out;

        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                bad[i] = sample_sb();
        bad[0].level = 4;
        bad[1].raid_disks = 3; /* raid6 needs 4 */
        bad[2].chunk = 65535;
        bad[3].role = 5;
        bad[4].data_size = 65536 + 512; /* not a chunk multiple */
        bad[5].bitmap_chunk = 4096;     /* too many bits for the area, below chunk */
        bad[6].recovery_offset = 4096;  /* not a chunk multiple */
        bad[7].dev_state[1] = 9;
        bad[8].bitmap_offset = RAID_DATA_OFFSET;
        bad[9].raid_disks = RAID_MAX_MEMBERS + 1;
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                sb_encode(&bad[i], buf);
                ck_assert_msg(sb_decode(buf, sizeof(buf), &out) == -EBADMSG, "case %zu accepted", i);
        }
}
END_TEST

/* ---- Bitmap ---- */
struct wlog {
        unsigned calls;
        uint64_t off, len;
        uint8_t first;
};

static int wlog_write(void *opaque, const uint8_t *buf, uint64_t off, uint64_t len) {
        struct wlog *w = opaque;

        w->calls++;
        w->off = off;
        w->len = len;
        w->first = buf[0];
        return 0;
}

START_TEST(test_bitmap_protocol) {
        struct raid_bitmap bm;
        struct wlog w = {};
        uint64_t tok;

        ck_assert_int_eq(bitmap_init(&bm, 64 << 20, 1 << 20, wlog_write, &w), 0);
        ck_assert_uint_eq(bm.nbits, 64);
        /* first write to region 2..3 persists, the second does not */
        ck_assert_int_eq(bitmap_start_write(&bm, (2 << 20) + 4096, 1 << 20), 0);
        ck_assert_uint_eq(w.calls, 1);
        ck_assert_uint_eq(w.first, 0x0C);
        ck_assert_uint_eq(w.off % BITMAP_PAGE, 0);
        ck_assert_uint_eq(w.len % BITMAP_PAGE, 0);
        ck_assert_int_eq(bitmap_start_write(&bm, 2 << 20, 4096), 0);
        ck_assert_uint_eq(w.calls, 1);
        /* still in flight: a flush clears nothing */
        tok = bitmap_flush_begin(&bm);
        bitmap_flush_done(&bm, tok);
        ck_assert_uint_eq(bitmap_count(&bm), 2);
        bitmap_end_write(&bm, 2 << 20, 4096);
        bitmap_end_write(&bm, (2 << 20) + 4096, 1 << 20);
        /* completed during an earlier flush: the next flush must still run first */
        tok = bitmap_flush_begin(&bm);
        bitmap_flush_done(&bm, tok);
        ck_assert_uint_eq(bitmap_count(&bm), 0);
        ck_assert(bitmap_has_pending(&bm));
        ck_assert_int_eq(bitmap_sync(&bm), 0);
        ck_assert_uint_eq(w.calls, 2);
        ck_assert_uint_eq(w.first, 0);
        ck_assert(!bitmap_has_pending(&bm));
        bitmap_done(&bm);
}
END_TEST

START_TEST(test_bitmap_write_during_flush) {
        struct raid_bitmap bm;
        struct wlog w = {};
        uint64_t tok;

        ck_assert_int_eq(bitmap_init(&bm, 8 << 20, 1 << 20, wlog_write, &w), 0);
        tok = bitmap_flush_begin(&bm);
        /* a write that starts and ends after the flush began is not covered by it */
        ck_assert_int_eq(bitmap_start_write(&bm, 0, 4096), 0);
        bitmap_end_write(&bm, 0, 4096);
        bitmap_flush_done(&bm, tok);
        ck_assert_uint_eq(bitmap_count(&bm), 1);
        tok = bitmap_flush_begin(&bm);
        bitmap_flush_done(&bm, tok);
        ck_assert_uint_eq(bitmap_count(&bm), 0);
        bitmap_done(&bm);
}
END_TEST

START_TEST(test_bitmap_merge_resync) {
        struct raid_bitmap bm;
        struct wlog w = {};
        uint8_t img[BITMAP_PAGE] = {};
        uint64_t tok;

        ck_assert_int_eq(bitmap_init(&bm, 10 << 20, 1 << 20, wlog_write, &w), 0);
        img[0] = 0x21;
        img[1] = 0xFF; /* bits 8..15: only 8 and 9 exist */
        bitmap_merge(&bm, img, sizeof(img), true);
        ck_assert_uint_eq(bitmap_count(&bm), 4);
        ck_assert_uint_eq(bitmap_resync_pending(&bm), 4);
        /* a flush must not clear regions awaiting resync */
        tok = bitmap_flush_begin(&bm);
        bitmap_flush_done(&bm, tok);
        ck_assert_uint_eq(bitmap_count(&bm), 4);
        ck_assert_uint_eq(bitmap_next_resync(&bm, 0), 0);
        ck_assert_uint_eq(bitmap_next_resync(&bm, 1), 5);
        ck_assert_uint_eq(bitmap_next_resync(&bm, 6), 8);
        bitmap_resync_done(&bm, 8);
        ck_assert_uint_eq(bitmap_next_resync(&bm, 6), 9);
        /* a write in flight keeps the bit even when the resync is done */
        ck_assert_int_eq(bitmap_start_write(&bm, 9 << 20, 4096), 0);
        bitmap_resync_done(&bm, 9);
        ck_assert_uint_eq(bitmap_next_resync(&bm, 6), bm.nbits);
        ck_assert_uint_eq(bitmap_count(&bm), 3);
        bitmap_end_write(&bm, 9 << 20, 4096);
        tok = bitmap_flush_begin(&bm);
        bitmap_flush_done(&bm, tok);
        ck_assert_uint_eq(bitmap_count(&bm), 2);
        ck_assert_int_eq(bitmap_set_all(&bm), 0);
        ck_assert_uint_eq(bitmap_count(&bm), 10);
        bitmap_done(&bm);
}
END_TEST

int main(void) {
        Suite *s = suite_create("raid");
        TCase *tc = tcase_create("core");
        SRunner *sr;
        int failed;

        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_gf_tables);
        tcase_add_test(tc, test_pq_generation);
        tcase_add_test(tc, test_recovery_all_losses);
        tcase_add_test(tc, test_recovery_bad_args);
        tcase_add_test(tc, test_rmw_update);
        tcase_add_test(tc, test_locate);
        tcase_add_test(tc, test_layout_raid5_md);
        tcase_add_test(tc, test_layout_raid6_md);
        tcase_add_test(tc, test_layout_raid0_raid10);
        tcase_add_test(tc, test_sb_roundtrip);
        tcase_add_test(tc, test_sb_invalid_fields);
        tcase_add_test(tc, test_bitmap_protocol);
        tcase_add_test(tc, test_bitmap_write_during_flush);
        tcase_add_test(tc, test_bitmap_merge_resync);
        suite_add_tcase(s, tc);
        sr = srunner_create(s);
        srunner_set_tap(sr, "-");
        srunner_run_all(sr, CK_SILENT);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? 1 : 0;
}
