/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Address mapping of every level. Kept free of I/O so that unit tests pin the layouts down. */
#include "layout.h"

void layout_raid0(unsigned n, uint64_t chunk_idx, unsigned *ret_member, uint64_t *ret_row) {
        *ret_member = (unsigned) (chunk_idx % n);
        *ret_row = chunk_idx / n;
}

unsigned layout_parity_member(unsigned n, unsigned np, uint64_t row, unsigned which) {
        unsigned pd = n - 1 - (unsigned) (row % n);

        return which == 0 ? pd : (pd + 1) % n;
}

unsigned layout_data_member(unsigned n, unsigned np, uint64_t row, unsigned data_idx) {
        unsigned pd = layout_parity_member(n, np, row, 0);

        return (pd + np + data_idx) % n;
}

unsigned layout_member_role(unsigned n, unsigned np, uint64_t row, unsigned member) {
        unsigned pd = layout_parity_member(n, np, row, 0);
        unsigned k = n - np;
        unsigned d = (member + n - pd) % n; /* 0 = P, 1 = Q (np 2), then data */

        if (d < np)
                return k + d;
        return d - np;
}

void layout_raid10(unsigned n, uint64_t chunk_idx, unsigned copy, unsigned *ret_member, uint64_t *ret_row) {
        uint64_t slot = chunk_idx * 2 + copy;

        *ret_member = (unsigned) (slot % n);
        *ret_row = slot / n;
}

void layout_raid10_inv(unsigned n, uint64_t row, unsigned member, uint64_t *ret_chunk, unsigned *ret_copy) {
        uint64_t slot = row * n + member;

        *ret_chunk = slot / 2;
        *ret_copy = (unsigned) (slot % 2);
}
