/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* RAID-6: two parity chunks (P, Q over GF(2^8)) per row, left-symmetric as in md;
 * any two members may be lost, and scrub can name a single corrupt block. */
#include "stripe.h"

const struct raid_level raid6_level = {
        .level = 6,
        .nparity = 2,
        .array_size = stripe_size,
        .read = stripe_read,
        .write = stripe_write,
        .sync_row = stripe_sync_row,
        .survives = stripe_survives,
};
