/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Raid layer internals shared by the level files, the sync thread and raid.c.
 * Lock order: cfg (rwlock) -> stripe locks -> sb_lock -> lock (state mutex). */
#pragma once

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "orion/plugin.h"
#include "common/cleanup.h"

#include "bitmap.h"
#include "superblock.h"

#define RAID_STRIPE_LOCKS 256

struct raid;

enum sync_mode {
        SYNC_REBUILD, /* write reconstructed content to rebuild targets */
        SYNC_RESYNC,  /* after a crash: make parity / mirrors agree, count nothing */
        SYNC_CHECK,   /* scrub: count mismatches */
        SYNC_REPAIR,  /* scrub: count and fix mismatches */
};

struct raid_member {
        struct orion_bdev *dev; /* NULL: missing */
        enum raid_dev_state state;
        uint64_t recovery;       /* REBUILDING: member data below this offset is valid */
        bool by_bitmap;          /* REBUILDING a returning member: only rows the bitmap marks */
        struct orion_bdev *repl; /* `replace` target being filled while dev serves */
        uint64_t repl_recovery;
};

/* One level: the array's address space and how a member row is synchronised.
 * A member row is [row*chunk, (row+1)*chunk) of every member's data area. */
struct raid_level {
        unsigned level;
        unsigned nparity; /* redundancy of parity levels (raid5 1, raid6 2), else 0 */
        uint64_t (*array_size)(const struct raid *r);
        int (*read)(struct raid *r, void *buf, uint64_t len, uint64_t off);
        int (*write)(struct raid *r, const void *buf, uint64_t len, uint64_t off, uint32_t flags);
        /* NULL for raid0. ret_mismatch: 512-byte sectors found inconsistent. */
        int (*sync_row)(struct raid *r, uint64_t row, enum sync_mode mode, uint64_t *ret_mismatch);
        /* Would the data still be complete if the members marked in lost[] were gone? */
        bool (*survives)(const struct raid *r, const bool *lost);
};

extern const struct raid_level raid0_level, raid1_level, raid5_level, raid6_level, raid10_level;

struct raid_job {
        bool running;
        uint64_t pos, end;        /* progress in member bytes */
        bool repair;              /* scrub: fix what it finds */
        uint64_t start_ns, bytes; /* for the rate limit */
        uint64_t mismatches;      /* scrub: sectors found inconsistent in this (or the last) run */
        bool ran;                 /* finished at least once */
        uint64_t delay_ns;        /* OUT: throttle */
};

/* Scratch buffers (parity, partial rows) reused between requests, so that a stream of writes
 * neither allocates nor faults pages in. */
#define RAID_SCRATCH_SLOTS 8
#define RAID_SCRATCH_KEEP (8u << 20) /* bigger buffers are freed after use */
struct raid_scratch {
        pthread_mutex_t lock;
        unsigned n;
        void *buf[RAID_SCRATCH_SLOTS];
        size_t cap[RAID_SCRATCH_SLOTS];
};

struct raid {
        struct orion_bdev *bdev;
        const struct raid_level *ops;
        struct raid_sb sb; /* template: geometry, uuid, events (under sb_lock) */
        unsigned n;        /* roles (raid_disks) */
        uint32_t chunk;
        uint64_t data_offset, data_size;
        uint64_t rebuild_rate; /* bytes/s, 0 = unlimited */

        pthread_rwlock_t cfg; /* read: any I/O; write: membership changes */
        pthread_mutex_t lock; /* member states, spares, jobs, stats below */
        struct raid_member m[RAID_MAX_MEMBERS];
        struct orion_bdev *spares[RAID_MAX_MEMBERS];
        unsigned nspares;
        struct orion_bdev *faulty[RAID_MAX_MEMBERS]; /* failed devices a spare took over from */
        unsigned nfaulty;
        struct orion_bdev *dropped[2 * RAID_MAX_MEMBERS]; /* failed replacements, to release */
        unsigned ndropped;
        pthread_mutex_t sb_lock; /* serialises superblock writes */
        pthread_mutex_t stripe[RAID_STRIPE_LOCKS];
        struct raid_bitmap bm;
        struct raid_scratch scratch;
        bool resync_needed; /* unclean shutdown: bitmap regions to resync */
        atomic_uint rr;     /* round robin for mirror reads */
        atomic_bool parallel;         /* members wait: submit batches in parallel (see raid_submit) */
        atomic_uint_fast64_t probe_at; /* when a parallel array next measures an inline batch */

        /* sync thread */
        pthread_t thread;
        bool thread_started;
        pthread_cond_t cond; /* with lock */
        bool stop, kick;
        struct raid_job rebuild, resync, scrub;
        bool scrub_stop;
        bool rebuild_blocked; /* rebuild hit an unrecoverable error: wait for a change */

        /* statistics */
        atomic_uint_fast64_t mismatches, rebuilt_bytes, resynced_bytes, read_errors, write_errors,
                degraded_reads, io_errors, full_stripe_writes, rmw_writes, rcw_writes, scrubbed_bytes,
                inline_batches, parallel_batches;
};

/* ---- raid.c: member state (call with cfg held for reading or writing) ---- */
/* Readable for member row offset moff (member state, rebuild position). */
bool raid_member_readable(struct raid *r, unsigned role, uint64_t moff);
/* Devices to write role's content to at moff (member and replacement). Returns count (0..2). */
unsigned raid_member_targets(struct raid *r, unsigned role, uint64_t moff, struct orion_bdev **ret);
/* A member failed an I/O: mark it faulty (once), update the other superblocks, wake the
 * sync thread (a spare takes over). dev identifies which device failed (member or replacement). */
void raid_member_failed(struct raid *r, struct orion_bdev *dev, int error);
/* The array lost too much to serve. */
bool raid_failed(struct raid *r);
bool raid_failed_locked(struct raid *r); /* with lock held */
/* Set the node's health from the member states. */
void raid_update_health(struct raid *r);
pthread_mutex_t *raid_stripe_lock(struct raid *r, uint64_t key);
/* Lock the stripe keys [first, last] (deduplicated, ascending); unlock in reverse. */
void raid_lock_range(struct raid *r, uint64_t first, uint64_t last);
void raid_unlock_range(struct raid *r, uint64_t first, uint64_t last);

/* Member I/O: offsets are within the member data area. Runs the batch and sets every result;
 * returns 0 or the first error. Inline on this thread while members are pure CPU work,
 * in parallel (orion_submit) once they are seen to wait. */
int raid_submit(struct raid *r, struct orion_req *reqs, size_t n);
void raid_req(struct orion_req *q, struct raid *r, struct orion_bdev *dev, enum orion_op op, void *buf,
              uint64_t len, uint64_t moff, uint32_t flags);

/* A 4096-aligned buffer of at least len bytes (contents undefined) and its capacity; give it
 * back with raid_scratch_put. NULL on failure. */
void *raid_scratch_get(struct raid *r, size_t len, size_t *ret_cap);
void raid_scratch_put(struct raid *r, void *buf, size_t cap);

/* ---- rebuild.c: the sync thread ---- */
int sync_thread_start(struct raid *r);
void sync_thread_stop(struct raid *r);
void sync_kick(struct raid *r);
/* Background work owed (spare to put in, rebuild, resync, scrub); lock held. */
bool sync_pending_locked(struct raid *r);
int sync_scrub_start(struct raid *r, bool repair);
void sync_scrub_stop(struct raid *r);

/* Flush every member, then let idle bitmap regions go. Returns -EIO if the array failed. */
int raid_flush_members(struct raid *r);

/* ---- scrub.c ---- */
/* One slice of a running scrub; false when there is nothing to do. */
bool scrub_step(struct raid *r);
/* Delay owed to the rate limit for a job that processed `bytes` since start_ns. */
uint64_t throttle_ns(const struct raid *r, uint64_t start_ns, uint64_t bytes);
uint64_t mono_ns(void);

/* ---- superblock writes (raid.c) ---- */
int raid_sb_update(struct raid *r, bool clean);

/* Devices of role that still need rebuilding at moff (REBUILDING member below its position,
 * replacement below its position). Returns count (0..2). */
unsigned raid_rebuild_targets(struct raid *r, unsigned role, uint64_t moff, struct orion_bdev **ret);

/* ---- raid1.c: shared by the mirror levels ---- */
/* Synchronise the copies of one block: roles[i] at member offset moffs[i], len bytes. */
int mirror_sync(struct raid *r, const unsigned *roles, const uint64_t *moffs, unsigned ncopies, uint64_t len,
                enum sync_mode mode, uint64_t *ret_mismatch);
/* Read len bytes of a mirrored block from any readable copy, trying the others on error. */
int mirror_read(struct raid *r, const unsigned *roles, const uint64_t *moffs, unsigned ncopies, void *buf,
                uint64_t len);
/* Count 512-byte sectors where a and b differ. */
uint64_t sectors_differ(const uint8_t *a, const uint8_t *b, uint64_t len);
