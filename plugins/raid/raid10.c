/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* RAID-10, md's near-2 layout: chunk c is stored in slots 2c and 2c+1 counted across the
 * members row by row, so it also works on an odd number of members. */
#include <errno.h>
#include <stdlib.h>

#include "layout.h"
#include "raid.h"

static uint64_t raid10_chunks(const struct raid *r) {
        return (r->data_size / r->chunk) * r->n / 2;
}

static uint64_t raid10_size(const struct raid *r) {
        return raid10_chunks(r) * r->chunk;
}

/* Both copies of the chunk holding array offset a, as member offsets of the same byte. */
static void copies(const struct raid *r, uint64_t a, unsigned roles[2], uint64_t moffs[2]) {
        for (unsigned j = 0; j < 2; j++) {
                uint64_t row;

                layout_raid10(r->n, a / r->chunk, j, &roles[j], &row);
                moffs[j] = row * r->chunk + a % r->chunk;
        }
}

static int raid10_read(struct raid *r, void *buf, uint64_t len, uint64_t off) {
        size_t max = len / r->chunk + 2, nq = 0;
        _cleanup_free_ struct orion_req *q = calloc(max, sizeof(*q));
        uint64_t pos = 0;

        if (!q)
                return -ENOMEM;
        while (pos < len) {
                uint64_t a = off + pos, l = MIN(r->chunk - a % r->chunk, len - pos), moffs[2];
                unsigned roles[2], first = atomic_fetch_add(&r->rr, 1) % 2, c;

                copies(r, a, roles, moffs);
                c = raid_member_readable(r, roles[first], moffs[first]) ? first : 1 - first;
                if (!raid_member_readable(r, roles[c], moffs[c]))
                        return -EIO;
                raid_req(&q[nq++], r, r->m[roles[c]].dev, ORION_OP_READ, (uint8_t *) buf + pos, l, moffs[c],
                         0);
                pos += l;
        }
        if (raid_submit(r, q, nq) == 0)
                return 0;
        for (size_t i = 0; i < nq; i++) {
                uint64_t moffs[2];
                unsigned roles[2];
                int ret;

                if (q[i].result == 0)
                        continue;
                raid_member_failed(r, q[i].bdev, q[i].result);
                copies(r, off + (uint64_t) ((uint8_t *) q[i].buf - (uint8_t *) buf), roles, moffs);
                ret = mirror_read(r, roles, moffs, 2, q[i].buf, q[i].len);
                if (ret < 0)
                        return ret;
        }
        return 0;
}

static int raid10_write(struct raid *r, const void *buf, uint64_t len, uint64_t off, uint32_t flags) {
        uint64_t first = off / r->chunk, last = (off + len - 1) / r->chunk, pos = 0;
        uint64_t mfirst = (first * 2 / r->n) * r->chunk, mlast = ((last * 2 + 1) / r->n + 1) * r->chunk;
        size_t max = 4 * (last - first + 1), nq = 0;
        _cleanup_free_ struct orion_req *q = calloc(max, sizeof(*q));
        int ret;

        if (!q)
                return -ENOMEM;
        raid_lock_range(r, first, last);
        ret = bitmap_start_write(&r->bm, mfirst, mlast - mfirst);
        if (ret < 0)
                goto unlock;
        while (pos < len) {
                uint64_t a = off + pos, l = MIN(r->chunk - a % r->chunk, len - pos), moffs[2];
                unsigned roles[2];

                copies(r, a, roles, moffs);
                for (unsigned j = 0; j < 2; j++) {
                        struct orion_bdev *t[2];
                        unsigned nt = raid_member_targets(r, roles[j], moffs[j], t);

                        for (unsigned k = 0; k < nt; k++)
                                raid_req(&q[nq++], r, t[k], ORION_OP_WRITE, (uint8_t *) buf + pos, l,
                                         moffs[j], flags);
                }
                pos += l;
        }
        (void) raid_submit(r, q, nq);
        for (size_t i = 0; i < nq; i++)
                if (q[i].result < 0)
                        raid_member_failed(r, q[i].bdev, q[i].result);
        ret = raid_failed(r) ? -EIO : 0;
        bitmap_end_write(&r->bm, mfirst, mlast - mfirst);
unlock:
        raid_unlock_range(r, first, last);
        return ret;
}

/* Member row `row`: every chunk with a copy in it. A chunk is checked from the row of its
 * first copy; rebuild visits it from whichever row holds a target. */
static int raid10_sync_row(struct raid *r, uint64_t row, enum sync_mode mode, uint64_t *ret_mismatch) {
        uint64_t nchunks = raid10_chunks(r);

        *ret_mismatch = 0;
        for (unsigned m = 0; m < r->n; m++) {
                uint64_t c, moffs[2], bad = 0;
                unsigned copy, roles[2];
                int ret;

                layout_raid10_inv(r->n, row, m, &c, &copy);
                if (c >= nchunks || (mode != SYNC_REBUILD && copy != 0))
                        continue;
                copies(r, c * r->chunk, roles, moffs);
                raid_lock_range(r, c, c);
                ret = mirror_sync(r, roles, moffs, 2, r->chunk, mode, &bad);
                raid_unlock_range(r, c, c);
                if (ret < 0)
                        return ret;
                *ret_mismatch += bad;
        }
        return 0;
}

static bool raid10_survives(const struct raid *r, const bool *lost) {
        /* Copy pairs are (2c mod n, 2c+1 mod n); the pattern repeats every n chunks. */
        for (unsigned c = 0; c < r->n; c++)
                if (lost[(2 * c) % r->n] && lost[(2 * c + 1) % r->n])
                        return false;
        return true;
}

const struct raid_level raid10_level = {
        .level = 10,
        .array_size = raid10_size,
        .read = raid10_read,
        .write = raid10_write,
        .sync_row = raid10_sync_row,
        .survives = raid10_survives,
};
