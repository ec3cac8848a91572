/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Write-intent bitmap. Setting is synchronous (the bit is durable before any data write to
 * the region starts); clearing is lazy and only after a flush that followed the region's last
 * write, so a crash can leave extra bits set but never a dirty region unmarked. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bitmap.h"
#include "common/cleanup.h"

static bool bit_get(const uint8_t *img, uint64_t i) {
        return img[i / 8] & (1u << (i % 8));
}
static void bit_set(uint8_t *img, uint64_t i) {
        img[i / 8] |= (uint8_t) (1u << (i % 8));
}
static void bit_clear(uint8_t *img, uint64_t i) {
        img[i / 8] &= (uint8_t) ~(1u << (i % 8));
}

int bitmap_init(struct raid_bitmap *bm, uint64_t data_size, uint64_t chunk, bitmap_write_fn write,
                void *opaque) {
        memset(bm, 0, sizeof(*bm));
        bm->chunk = chunk;
        bm->nbits = (data_size + chunk - 1) / chunk;
        bm->bytes = ALIGN_UP((bm->nbits + 7) / 8, (uint64_t) BITMAP_PAGE);
        bm->image = calloc(1, bm->bytes);
        bm->inflight = calloc(bm->nbits ? bm->nbits : 1, sizeof(*bm->inflight));
        bm->activity = calloc(bm->nbits ? bm->nbits : 1, sizeof(*bm->activity));
        bm->write = write;
        bm->opaque = opaque;
        bm->seq = 1;
        pthread_mutex_init(&bm->lock, NULL);
        if (!bm->image || !bm->inflight || !bm->activity) {
                bitmap_done(bm);
                return -ENOMEM;
        }
        return 0;
}

void bitmap_done(struct raid_bitmap *bm) {
        free(bm->image);
        free(bm->inflight);
        free(bm->activity);
        bm->image = NULL;
        bm->inflight = NULL;
        bm->activity = NULL;
        pthread_mutex_destroy(&bm->lock);
}

void bitmap_set_hold(struct raid_bitmap *bm, bool hold) {
        LOCK_GUARD(&bm->lock);
        bm->hold = hold;
}

bool bitmap_test(struct raid_bitmap *bm, uint64_t off) {
        LOCK_GUARD(&bm->lock);
        return off / bm->chunk < bm->nbits && bit_get(bm->image, off / bm->chunk);
}

void bitmap_merge(struct raid_bitmap *bm, const uint8_t *buf, uint64_t len, bool pin) {
        LOCK_GUARD(&bm->lock);
        uint64_t n = MIN(len, (bm->nbits + 7) / 8);

        for (uint64_t i = 0; i < n; i++)
                bm->image[i] |= buf[i];
        /* bits past nbits are not ours */
        for (uint64_t i = bm->nbits; i < n * 8; i++)
                bit_clear(bm->image, i);
        /* Found dirty: pinned until the resync has been through them, whatever flushes come. */
        for (uint64_t i = 0; pin && i < bm->nbits; i++)
                if (bit_get(bm->image, i))
                        bm->activity[i] = BITMAP_RESYNC;
}

static void region_range(struct raid_bitmap *bm, uint64_t off, uint64_t len, uint64_t *first,
                         uint64_t *last) {
        *first = off / bm->chunk;
        *last = len ? (off + len - 1) / bm->chunk : *first;
        if (*last >= bm->nbits)
                *last = bm->nbits - 1;
}

/* Write the pages holding bits [first, last] (lock held). */
static int persist_locked(struct raid_bitmap *bm, uint64_t first, uint64_t last) {
        uint64_t p0 = ALIGN_DOWN(first / 8, (uint64_t) BITMAP_PAGE);
        uint64_t p1 = ALIGN_UP(last / 8 + 1, (uint64_t) BITMAP_PAGE);

        return bm->write(bm->opaque, bm->image + p0, p0, p1 - p0);
}

int bitmap_start_write(struct raid_bitmap *bm, uint64_t off, uint64_t len) {
        uint64_t first, last, lo = UINT64_MAX, hi = 0;
        int r = 0;

        if (bm->nbits == 0)
                return 0;
        region_range(bm, off, len, &first, &last);
        LOCK_GUARD(&bm->lock);
        for (uint64_t i = first; i <= last; i++) {
                bm->inflight[i]++;
                if (bm->activity[i] != BITMAP_RESYNC)
                        bm->activity[i] = bm->seq;
                if (!bit_get(bm->image, i)) {
                        bit_set(bm->image, i);
                        lo = MIN(lo, i);
                        hi = MAX(hi, i);
                }
        }
        /* Persisting under the lock makes a concurrent writer of the same region wait until
         * the bit is durable instead of seeing it set in memory only. */
        if (lo != UINT64_MAX)
                r = persist_locked(bm, lo, hi);
        if (r < 0)
                for (uint64_t i = first; i <= last; i++)
                        bm->inflight[i]--;
        return r;
}

void bitmap_end_write(struct raid_bitmap *bm, uint64_t off, uint64_t len) {
        uint64_t first, last;

        if (bm->nbits == 0)
                return;
        region_range(bm, off, len, &first, &last);
        LOCK_GUARD(&bm->lock);
        for (uint64_t i = first; i <= last; i++) {
                bm->inflight[i]--;
                if (bm->activity[i] != BITMAP_RESYNC)
                        bm->activity[i] = bm->seq;
        }
}

uint64_t bitmap_flush_begin(struct raid_bitmap *bm) {
        LOCK_GUARD(&bm->lock);
        return ++bm->seq;
}

void bitmap_flush_done(struct raid_bitmap *bm, uint64_t token) {
        LOCK_GUARD(&bm->lock);
        if (bm->hold)
                return;
        /* Idle since before the flush started: everything written there is durable. */
        for (uint64_t i = 0; i < bm->nbits; i++)
                if (bit_get(bm->image, i) && bm->inflight[i] == 0 && bm->activity[i] < token) {
                        bit_clear(bm->image, i);
                        bm->clears_pending = true;
                }
}

int bitmap_sync(struct raid_bitmap *bm) {
        LOCK_GUARD(&bm->lock);
        int r;

        if (!bm->clears_pending || bm->nbits == 0)
                return 0;
        r = persist_locked(bm, 0, bm->nbits - 1);
        if (r >= 0)
                bm->clears_pending = false;
        return r;
}

bool bitmap_has_pending(struct raid_bitmap *bm) {
        LOCK_GUARD(&bm->lock);
        return bm->clears_pending;
}

uint64_t bitmap_next_resync(struct raid_bitmap *bm, uint64_t from) {
        LOCK_GUARD(&bm->lock);
        for (uint64_t i = from; i < bm->nbits; i++)
                if (bm->activity[i] == BITMAP_RESYNC)
                        return i;
        return bm->nbits;
}

void bitmap_resync_done(struct raid_bitmap *bm, uint64_t region) {
        LOCK_GUARD(&bm->lock);
        if (region >= bm->nbits)
                return;
        /* From now on the region follows the normal rule: cleared after a flush once idle. */
        bm->activity[region] = bm->seq;
        if (!bm->hold && bit_get(bm->image, region) && bm->inflight[region] == 0) {
                bit_clear(bm->image, region);
                bm->clears_pending = true;
        }
}

uint64_t bitmap_resync_pending(struct raid_bitmap *bm) {
        LOCK_GUARD(&bm->lock);
        uint64_t n = 0;

        for (uint64_t i = 0; i < bm->nbits; i++)
                n += bm->activity[i] == BITMAP_RESYNC;
        return n;
}

uint64_t bitmap_count(struct raid_bitmap *bm) {
        LOCK_GUARD(&bm->lock);
        uint64_t n = 0;

        for (uint64_t i = 0; i < bm->nbits; i++)
                n += bit_get(bm->image, i);
        return n;
}

int bitmap_set_all(struct raid_bitmap *bm) {
        LOCK_GUARD(&bm->lock);
        if (bm->nbits == 0)
                return 0;
        for (uint64_t i = 0; i < bm->nbits; i++) {
                bit_set(bm->image, i);
                bm->activity[i] = BITMAP_RESYNC;
        }
        return persist_locked(bm, 0, bm->nbits - 1);
}
