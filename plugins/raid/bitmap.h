/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Write-intent bitmap: one bit per region of member space. A bit is set and made durable
 * before the first write to its region; it is cleared only once the region has been idle
 * across a completed flush, and the clear reaches the disk lazily (bitmap_sync). */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define BITMAP_PAGE 4096u
#define BITMAP_RESYNC UINT64_MAX /* activity of a region awaiting resync */

/* Persist bytes [off, off+len) of the bitmap image (page aligned) on every member. */
typedef int (*bitmap_write_fn)(void *opaque, const uint8_t *buf, uint64_t off, uint64_t len);

struct raid_bitmap {
        pthread_mutex_t lock;
        uint64_t chunk; /* member bytes per bit */
        uint64_t nbits;
        uint64_t bytes;      /* image size, rounded up to BITMAP_PAGE */
        uint8_t *image;      /* bits as they are (or are about to be) on disk */
        uint32_t *inflight;  /* writes in progress per region */
        uint64_t *activity;  /* seq of the last start/end of a write per region */
        uint64_t seq;        /* bumped by bitmap_flush_begin */
        bool clears_pending; /* image has clears not yet on disk */
        bool hold;           /* array degraded: keep every bit (a returning member resyncs by them) */
        bitmap_write_fn write;
        void *opaque;
};

/* data_size: member bytes covered. Returns 0 or -ENOMEM. */
int bitmap_init(struct raid_bitmap *bm, uint64_t data_size, uint64_t chunk, bitmap_write_fn write,
                void *opaque);
void bitmap_done(struct raid_bitmap *bm);
/* OR an on-disk image (bytes from a member) into the bitmap. pin: after an unclean shutdown,
 * the set regions await a resync (see bitmap_next_resync) and no flush clears them before. */
void bitmap_merge(struct raid_bitmap *bm, const uint8_t *buf, uint64_t len, bool pin);
/* Keep all bits while the array is degraded (true), let them go again (false). */
void bitmap_set_hold(struct raid_bitmap *bm, bool hold);
/* Is the region holding member offset off marked? */
bool bitmap_test(struct raid_bitmap *bm, uint64_t off);
/* Before writing member range [off, off+len): mark and persist. Returns 0 or -errno. */
int bitmap_start_write(struct raid_bitmap *bm, uint64_t off, uint64_t len);
void bitmap_end_write(struct raid_bitmap *bm, uint64_t off, uint64_t len);
/* Around a flush of every member: begin returns a token, done (after success) clears idle bits. */
uint64_t bitmap_flush_begin(struct raid_bitmap *bm);
void bitmap_flush_done(struct raid_bitmap *bm, uint64_t token);
/* Write pending clears. Caller made sure the members are flushed. */
int bitmap_sync(struct raid_bitmap *bm);
bool bitmap_has_pending(struct raid_bitmap *bm);
/* Resync of the regions found dirty by bitmap_merge/bitmap_set_all: the next one at or after
 * `from` (nbits if none), marking one done, and how many remain. */
uint64_t bitmap_next_resync(struct raid_bitmap *bm, uint64_t from);
void bitmap_resync_done(struct raid_bitmap *bm, uint64_t region);
uint64_t bitmap_resync_pending(struct raid_bitmap *bm);
uint64_t bitmap_count(struct raid_bitmap *bm);
/* Set every bit (whole-array resync) and persist. */
int bitmap_set_all(struct raid_bitmap *bm);
