/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* RAID-5/6 parity over GF(2^8) (polynomial 0x11D, generator 2) with ISA-L: generation,
 * recovery of any one or two lost blocks, incremental update, and raid6 error location. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Blocks of one stripe column: k data blocks then P (then Q when np == 2). len is a multiple
 * of 32; buffers need no particular alignment (unaligned ones take a slower path). */

/* P = xor of data[0..k). */
void parity_gen_p(unsigned k, size_t len, uint8_t *const *data, uint8_t *p);
/* P and Q = sum of g^i * data[i]. */
void parity_gen_pq(unsigned k, size_t len, uint8_t *const *data, uint8_t *p, uint8_t *q);
/* Rebuild the lost blocks of blocks[0..k+np) in place. lost[] holds nlost (1..np) distinct
 * indexes (0..k-1 data, k = P, k+1 = Q). Returns 0 or -EINVAL (bad arguments), -ENOMEM. */
int parity_recover(unsigned k, unsigned np, size_t len, uint8_t *const *blocks, const unsigned *lost,
                   unsigned nlost);
/* Read-modify-write: fold (old xor new) of data block idx into P (and Q when q != NULL). */
void parity_update(unsigned k, unsigned idx, size_t len, const uint8_t *old_data, const uint8_t *new_data,
                   uint8_t *p, uint8_t *q);
/* RAID-6 check of one column range: given the stored P/Q and recomputed P'/Q' (dp = P xor P',
 * dq = Q xor Q'), tell which single block is wrong: 0..k-1 a data block, k = P, k+1 = Q,
 * -1 consistent, -2 not explainable by a single bad block. */
int parity_locate(unsigned k, size_t len, const uint8_t *dp, const uint8_t *dq);

/* GF(2^8) helpers (exposed for tests). */
uint8_t gf_pow2(unsigned e); /* g^e */
int gf_log2(uint8_t v);      /* e with g^e == v, -1 for 0 */
