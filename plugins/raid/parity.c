/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* RAID-5/6 parity with ISA-L. P = xor, Q = sum g^i D_i over GF(2^8)/0x11D; ISA-L's
 * gf_gen_rs_matrix parity rows are exactly these, so recovery inverts the survivors' rows. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <isa-l/erasure_code.h>
#include <isa-l/raid.h>

#include "parity.h"

#define PARITY_MAX_BLOCKS 258 /* 255 data + P + Q, with room */

static uint8_t g_exp[512];
static int16_t g_log[256];
static pthread_once_t g_tables_once = PTHREAD_ONCE_INIT;

static void tables_init(void) {
        unsigned v = 1;

        for (unsigned e = 0; e < 255; e++) {
                g_exp[e] = g_exp[e + 255] = (uint8_t) v;
                g_log[v] = (int16_t) e;
                v <<= 1;
                if (v & 0x100)
                        v ^= 0x11D;
        }
        g_exp[510] = g_exp[0];
        g_log[0] = -1;
}

uint8_t gf_pow2(unsigned e) {
        pthread_once(&g_tables_once, tables_init);
        return g_exp[e % 255];
}

int gf_log2(uint8_t v) {
        pthread_once(&g_tables_once, tables_init);
        return g_log[v];
}

static bool aligned32(const void *p) {
        return ((uintptr_t) p & 31) == 0;
}

static bool all_aligned(unsigned n, uint8_t *const *v, size_t len) {
        if (len % 32 != 0)
                return false;
        for (unsigned i = 0; i < n; i++)
                if (!aligned32(v[i]))
                        return false;
        return true;
}

/* out[r] = sum_j coef[r*k + j] * src[j]; ISA-L's table encoder takes any alignment. */
static void gf_encode(unsigned k, unsigned rows, size_t len, const uint8_t *coef, uint8_t *const *src,
                      uint8_t **out) {
        uint8_t tbls[32 * 2 * PARITY_MAX_BLOCKS];

        ec_init_tables((int) k, (int) rows, (unsigned char *) coef, tbls);
        ec_encode_data((int) len, (int) k, (int) rows, tbls, (unsigned char **) src, out);
}

void parity_gen_p(unsigned k, size_t len, uint8_t *const *data, uint8_t *p) {
        void *v[PARITY_MAX_BLOCKS];
        uint8_t coef[PARITY_MAX_BLOCKS];

        if (k == 1) {
                memmove(p, data[0], len);
                return;
        }
        for (unsigned i = 0; i < k; i++)
                v[i] = data[i];
        v[k] = p;
        if (all_aligned(k + 1, (uint8_t *const *) v, len) && xor_gen((int) k + 1, (int) len, v) == 0)
                return;
        memset(coef, 1, k);
        gf_encode(k, 1, len, coef, data, &p);
}

void parity_gen_pq(unsigned k, size_t len, uint8_t *const *data, uint8_t *p, uint8_t *q) {
        void *v[PARITY_MAX_BLOCKS];
        uint8_t coef[2 * PARITY_MAX_BLOCKS];
        uint8_t *out[2] = {p, q};

        for (unsigned i = 0; i < k; i++)
                v[i] = data[i];
        v[k] = p;
        v[k + 1] = q;
        /* pq_gen needs at least two sources, 32-byte aligned pointers and lengths. */
        if (k >= 2 && all_aligned(k + 2, (uint8_t *const *) v, len) &&
            pq_gen((int) k + 2, (int) len, v) == 0)
                return;
        for (unsigned i = 0; i < k; i++) {
                coef[i] = 1;
                coef[k + i] = gf_pow2(i);
        }
        gf_encode(k, 2, len, coef, data, out);
}

/* Row r of the (k+np) x k generator: identity, then P, then Q. */
static void gen_row(unsigned k, unsigned r, uint8_t *row) {
        for (unsigned j = 0; j < k; j++) {
                if (r < k)
                        row[j] = r == j;
                else if (r == k)
                        row[j] = 1;
                else
                        row[j] = gf_pow2(j);
        }
}

static bool is_lost(unsigned idx, const unsigned *lost, unsigned nlost) {
        for (unsigned i = 0; i < nlost; i++)
                if (lost[i] == idx)
                        return true;
        return false;
}

/* Lost data blocks from k survivors through the inverse of the survivors' generator rows. */
static int recover_data(unsigned k, unsigned np, size_t len, uint8_t *const *blocks, const unsigned *lost,
                        unsigned nlost) {
        unsigned surv[PARITY_MAX_BLOCKS], nsurv = 0, ndl = 0;
        uint8_t *src[PARITY_MAX_BLOCKS], *out[2];
        uint8_t coef[2 * PARITY_MAX_BLOCKS];
        uint8_t *m, *inv;
        int r = 0;

        for (unsigned i = 0; i < k + np && nsurv < k; i++)
                if (!is_lost(i, lost, nlost))
                        surv[nsurv++] = i;
        if (nsurv < k)
                return -EINVAL;
        m = malloc((size_t) k * k);
        inv = malloc((size_t) k * k);
        if (!m || !inv) {
                r = -ENOMEM;
                goto out;
        }
        for (unsigned i = 0; i < k; i++) {
                gen_row(k, surv[i], m + (size_t) i * k);
                src[i] = blocks[surv[i]];
        }
        if (gf_invert_matrix(m, inv, (int) k) != 0) {
                r = -EINVAL; /* cannot happen for P/Q codes; kept as a guard */
                goto out;
        }
        for (unsigned i = 0; i < nlost; i++)
                if (lost[i] < k) {
                        memcpy(coef + (size_t) ndl * k, inv + (size_t) lost[i] * k, k);
                        out[ndl++] = blocks[lost[i]];
                }
        if (ndl > 0)
                gf_encode(k, ndl, len, coef, src, out);
out:
        free(m);
        free(inv);
        return r;
}

int parity_recover(unsigned k, unsigned np, size_t len, uint8_t *const *blocks, const unsigned *lost,
                   unsigned nlost) {
        bool lost_p, lost_q, lost_data = false;
        int r;

        if (k == 0 || k + np > PARITY_MAX_BLOCKS - 2 || np < 1 || np > 2 || nlost == 0 || nlost > np)
                return -EINVAL;
        for (unsigned i = 0; i < nlost; i++) {
                if (lost[i] >= k + np || is_lost(lost[i], lost, i))
                        return -EINVAL;
                lost_data |= lost[i] < k;
        }
        lost_p = is_lost(k, lost, nlost);
        lost_q = np == 2 && is_lost(k + 1, lost, nlost);

        /* One data block with P present: plain xor of the rest. */
        if (nlost == 1 && lost_data) {
                uint8_t *v[PARITY_MAX_BLOCKS];
                unsigned n = 0;

                for (unsigned i = 0; i <= k; i++)
                        if (i != lost[0])
                                v[n++] = blocks[i];
                parity_gen_p(n, len, v, blocks[lost[0]]);
                return 0;
        }
        if (lost_data) {
                r = recover_data(k, np, len, blocks, lost, nlost);
                if (r < 0)
                        return r;
        }
        if (lost_p && lost_q)
                parity_gen_pq(k, len, blocks, blocks[k], blocks[k + 1]);
        else if (lost_p)
                parity_gen_p(k, len, blocks, blocks[k]);
        else if (lost_q) {
                uint8_t coef[PARITY_MAX_BLOCKS];
                uint8_t *out[1] = {blocks[k + 1]};

                gen_row(k, k + 1, coef);
                gf_encode(k, 1, len, coef, blocks, out);
        }
        return 0;
}

void parity_update(unsigned k, unsigned idx, size_t len, const uint8_t *old_data, const uint8_t *new_data,
                   uint8_t *p, uint8_t *q) {
        uint8_t coef[2] = {1, gf_pow2(idx)};
        uint8_t tbls[32 * 2];
        uint8_t *out[2] = {p, q};
        int rows = q ? 2 : 1;

        ec_init_tables(1, rows, coef, tbls);
        ec_encode_data_update((int) len, 1, rows, 0, tbls, (unsigned char *) old_data, out);
        ec_encode_data_update((int) len, 1, rows, 0, tbls, (unsigned char *) new_data, out);
}

int parity_locate(unsigned k, size_t len, const uint8_t *dp, const uint8_t *dq) {
        int who = -1;

        for (size_t i = 0; i < len; i++) {
                int cand;

                if (dp[i] == 0 && dq[i] == 0)
                        continue;
                if (dq[i] == 0)
                        cand = (int) k;
                else if (dp[i] == 0)
                        cand = (int) k + 1;
                else {
                        cand = (gf_log2(dq[i]) - gf_log2(dp[i]) + 255) % 255;
                        if (cand >= (int) k)
                                return -2;
                }
                if (who >= 0 && who != cand)
                        return -2;
                who = cand;
        }
        return who;
}
