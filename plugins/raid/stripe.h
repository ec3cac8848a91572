/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Parity-level engine shared by raid5.c and raid6.c (nparity from the level table). */
#pragma once

#include "raid.h"

uint64_t stripe_size(const struct raid *r);
int stripe_read(struct raid *r, void *buf, uint64_t len, uint64_t off);
int stripe_write(struct raid *r, const void *buf, uint64_t len, uint64_t off, uint32_t flags);
int stripe_sync_row(struct raid *r, uint64_t row, enum sync_mode mode, uint64_t *ret_mismatch);
bool stripe_survives(const struct raid *r, const bool *lost);
