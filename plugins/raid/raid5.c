/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* RAID-5: one parity chunk (P) per row, rotating left-symmetric as in md. */
#include "stripe.h"

const struct raid_level raid5_level = {
        .level = 5,
        .nparity = 1,
        .array_size = stripe_size,
        .read = stripe_read,
        .write = stripe_write,
        .sync_row = stripe_sync_row,
        .survives = stripe_survives,
};
