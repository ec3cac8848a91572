/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Address mapping of every level (md's layouts): array offset -> member and member offset. */
#pragma once

#include <stdint.h>

/* RAID-0: chunk c lives on member c % n at member offset (c / n) * chunk. */
void layout_raid0(unsigned n, uint64_t chunk_idx, unsigned *ret_member, uint64_t *ret_row);

/* RAID-5/6, md's left-symmetric: row r has parity on member n-1-(r % n) (Q right after it,
 * wrapping), and data index i on the members following the parity, wrapping. */
unsigned layout_parity_member(unsigned n, unsigned np, uint64_t row,
                              unsigned which); /* which: 0 = P, 1 = Q */
unsigned layout_data_member(unsigned n, unsigned np, uint64_t row, unsigned data_idx);
/* Inverse: the role a member plays in a row: 0..k-1 data index, k = P, k+1 = Q (k = n - np). */
unsigned layout_member_role(unsigned n, unsigned np, uint64_t row, unsigned member);

/* RAID-10 near-2: copy j (0, 1) of chunk c sits in slot s = 2c + j, i.e. member s % n at row s / n. */
void layout_raid10(unsigned n, uint64_t chunk_idx, unsigned copy, unsigned *ret_member, uint64_t *ret_row);
/* Inverse: the chunk and copy held by member m at row r. */
void layout_raid10_inv(unsigned n, uint64_t row, unsigned member, uint64_t *ret_chunk, unsigned *ret_copy);
