/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The array's background thread: puts hot spares in place of failed members, rebuilds
 * (rate-limited, checkpointed in the superblocks so it resumes after a restart), resyncs the
 * regions the write-intent bitmap found dirty, runs scrubs, and writes lazy bitmap clears. */
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <time.h>

#include "raid.h"

#define STEP_NS (50 * 1000 * 1000ull) /* one step holds the config lock at most about this long */
#define CHECKPOINT_NS (1000 * 1000 * 1000ull)

uint64_t mono_ns(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000000ull + (uint64_t) ts.tv_nsec;
}

uint64_t throttle_ns(const struct raid *r, uint64_t start_ns, uint64_t bytes) {
        uint64_t due, now = mono_ns();

        if (r->rebuild_rate == 0)
                return 0;
        due = start_ns + (uint64_t) ((double) bytes * 1e9 / (double) r->rebuild_rate);
        return due > now ? MIN(due - now, 1000000000ull) : 0;
}

void sync_kick(struct raid *r) {
        WITH_LOCK (&r->lock) {
                r->kick = true;
                pthread_cond_signal(&r->cond);
        }
}

/* ---- Membership changes (need the config lock for writing) ---- */

static bool membership_work_locked(struct raid *r) {
        if (r->ndropped)
                return true;
        for (unsigned i = 0; i < r->n; i++) {
                struct raid_member *m = &r->m[i];

                if (m->repl && m->repl_recovery >= r->data_size)
                        return true;
                if ((!m->dev || m->state == RAID_DEV_FAULTY) && r->nspares && r->ops->sync_row)
                        return true;
        }
        return false;
}

static void membership_changes(struct raid *r) {
        struct orion_bdev *release[3 * RAID_MAX_MEMBERS];
        unsigned nrel = 0;
        bool changed = false, need = false;

        WITH_LOCK (&r->lock)
                need = membership_work_locked(r);
        if (!need)
                return;
        pthread_rwlock_wrlock(&r->cfg);
        WITH_LOCK (&r->lock) {
                while (r->ndropped)
                        release[nrel++] = r->dropped[--r->ndropped];
                for (unsigned i = 0; i < r->n; i++) {
                        struct raid_member *m = &r->m[i];

                        if (m->repl && m->repl_recovery >= r->data_size) {
                                orion_info("raid '%s': '%s' replaced '%s' as member %u",
                                           orion_bdev_name(r->bdev), orion_bdev_name(m->repl),
                                           m->dev ? orion_bdev_name(m->dev) : "-", i);
                                if (m->dev)
                                        release[nrel++] = m->dev;
                                m->dev = m->repl;
                                m->repl = NULL;
                                m->state = RAID_DEV_ACTIVE;
                                changed = true;
                        }
                        if ((!m->dev || m->state == RAID_DEV_FAULTY) && r->nspares && r->ops->sync_row) {
                                struct orion_bdev *s = r->spares[0];

                                memmove(r->spares, r->spares + 1, --r->nspares * sizeof(*r->spares));
                                if (m->dev && r->nfaulty < RAID_MAX_MEMBERS)
                                        r->faulty[r->nfaulty++] = m->dev;
                                orion_notice("raid '%s': spare '%s' takes over member %u%s%s, rebuilding",
                                             orion_bdev_name(r->bdev), orion_bdev_name(s), i,
                                             m->dev ? " from " : "", m->dev ? orion_bdev_name(m->dev) : "");
                                m->dev = s;
                                m->state = RAID_DEV_REBUILDING;
                                m->recovery = 0;
                                changed = true;
                        }
                }
                if (changed)
                        r->rebuild_blocked = false;
        }
        if (changed)
                (void) raid_sb_update(r, false);
        pthread_rwlock_unlock(&r->cfg);
        for (unsigned i = 0; i < nrel; i++)
                orion_bdev_release_child(r->bdev, release[i]);
        raid_update_health(r);
}

/* ---- Rebuild ---- */

/* Lowest rebuild position over all targets, or data_size when nothing is rebuilding. */
static uint64_t rebuild_pos_locked(struct raid *r) {
        uint64_t pos = r->data_size;

        for (unsigned i = 0; i < r->n; i++) {
                struct raid_member *m = &r->m[i];

                if (m->dev && m->state == RAID_DEV_REBUILDING)
                        pos = MIN(pos, m->recovery);
                if (m->repl)
                        pos = MIN(pos, m->repl_recovery);
        }
        return pos;
}

/* Only returning members (by_bitmap) wait at moff, and its region is unmarked: nothing to copy. */
static bool rebuild_skippable(struct raid *r, uint64_t moff) {
        bool any = false;

        WITH_LOCK (&r->lock) {
                for (unsigned i = 0; i < r->n; i++) {
                        struct raid_member *m = &r->m[i];

                        if (m->repl && m->repl_recovery == moff)
                                return false;
                        if (m->dev && m->state == RAID_DEV_REBUILDING && m->recovery == moff) {
                                if (!m->by_bitmap)
                                        return false;
                                any = true;
                        }
                }
        }
        return any && !bitmap_test(&r->bm, moff);
}

/* Advance every target sitting at moff past the row just written. Returns bytes rebuilt. */
static uint64_t rebuild_advance(struct raid *r, uint64_t moff, bool *ret_done) {
        uint64_t bytes = 0;

        LOCK_GUARD(&r->lock);
        for (unsigned i = 0; i < r->n; i++) {
                struct raid_member *m = &r->m[i];

                if (m->dev && m->state == RAID_DEV_REBUILDING && m->recovery == moff) {
                        m->recovery += r->chunk;
                        bytes += r->chunk;
                        if (m->recovery >= r->data_size) {
                                m->state = RAID_DEV_ACTIVE;
                                m->recovery = 0;
                                m->by_bitmap = false;
                                *ret_done = true;
                        }
                }
                if (m->repl && m->repl_recovery == moff) {
                        m->repl_recovery += r->chunk;
                        bytes += r->chunk;
                        *ret_done |= m->repl_recovery >= r->data_size;
                }
        }
        return bytes;
}

static bool rebuild_step(struct raid *r, uint64_t *last_ckpt) {
        struct raid_job *j = &r->rebuild;
        uint64_t t0 = mono_ns(), pos = 0;
        bool done = false;

        WITH_LOCK (&r->lock) {
                pos = r->rebuild_blocked ? r->data_size : rebuild_pos_locked(r);
                if (pos < r->data_size && !j->running) {
                        j->running = true;
                        j->start_ns = t0;
                        j->bytes = 0;
                        orion_notice("raid '%s': rebuild started at %" PRIu64, orion_bdev_name(r->bdev),
                                     pos);
                }
                j->pos = pos;
                j->end = r->data_size;
        }
        if (pos >= r->data_size)
                return false;
        while (pos < r->data_size && mono_ns() - t0 < STEP_NS) {
                uint64_t mm, bytes;
                bool skip = rebuild_skippable(r, pos);
                int ret = skip ? 0 : r->ops->sync_row(r, pos / r->chunk, SYNC_REBUILD, &mm);

                if (ret < 0) {
                        orion_error("raid '%s': rebuild stopped at %" PRIu64 ": %s",
                                    orion_bdev_name(r->bdev), pos, strerror(-ret));
                        WITH_LOCK (&r->lock)
                                r->rebuild_blocked = true;
                        break;
                }
                bytes = rebuild_advance(r, pos, &done);
                if (skip)
                        bytes = 0;
                atomic_fetch_add(&r->rebuilt_bytes, bytes);
                WITH_LOCK (&r->lock) {
                        j->bytes += bytes;
                        pos = rebuild_pos_locked(r);
                        j->pos = pos;
                        j->delay_ns = throttle_ns(r, j->start_ns, j->bytes);
                }
                if (j->delay_ns)
                        break;
        }
        if (done || pos >= r->data_size || mono_ns() - *last_ckpt > CHECKPOINT_NS) {
                /* the checkpoint: each target's position goes into its superblock */
                (void) raid_sb_update(r, false);
                *last_ckpt = mono_ns();
                raid_update_health(r); /* shows the progress in `orionctl status` */
        } else if (done)
                raid_update_health(r);
        if (pos >= r->data_size) {
                WITH_LOCK (&r->lock) {
                        j->running = false;
                        j->ran = true;
                        j->pos = j->end;
                }
                orion_notice("raid '%s': rebuild finished", orion_bdev_name(r->bdev));
                sync_kick(r); /* a replacement may be ready to swap in */
        }
        return true;
}

/* ---- Resync after an unclean shutdown ---- */

static bool resync_step(struct raid *r) {
        struct raid_job *j = &r->resync;
        uint64_t region, rows = r->data_size / r->chunk, per = r->bm.chunk / r->chunk, first, last;

        WITH_LOCK (&r->lock) {
                if (!r->resync_needed)
                        return false;
                if (!j->running) {
                        j->running = true;
                        j->pos = 0;
                        j->end = r->data_size;
                        j->start_ns = mono_ns();
                        j->bytes = 0;
                        orion_notice("raid '%s': resync of %" PRIu64 " dirty regions started",
                                     orion_bdev_name(r->bdev), bitmap_resync_pending(&r->bm));
                }
        }
        region = bitmap_next_resync(&r->bm, j->pos / r->bm.chunk);
        if (region >= r->bm.nbits) {
                WITH_LOCK (&r->lock) {
                        r->resync_needed = false;
                        j->running = false;
                        j->ran = true;
                        j->pos = j->end;
                }
                orion_notice("raid '%s': resync finished, %" PRIu64 " bytes", orion_bdev_name(r->bdev),
                             j->bytes);
                return true;
        }
        first = region * per;
        last = MIN(first + per, rows);
        for (uint64_t row = first; row < last; row++) {
                uint64_t mm;
                int ret = r->ops->sync_row(r, row, SYNC_RESYNC, &mm);

                if (ret < 0) {
                        orion_error("raid '%s': resync failed at row %" PRIu64 ": %s",
                                    orion_bdev_name(r->bdev), row, strerror(-ret));
                        WITH_LOCK (&r->lock) {
                                r->resync_needed = false;
                                j->running = false;
                        }
                        return false;
                }
        }
        bitmap_resync_done(&r->bm, region);
        atomic_fetch_add(&r->resynced_bytes, (last - first) * r->chunk);
        WITH_LOCK (&r->lock) {
                j->bytes += (last - first) * r->chunk;
                j->pos = (region + 1) * r->bm.chunk;
                j->delay_ns = throttle_ns(r, j->start_ns, j->bytes);
        }
        return true;
}

bool sync_pending_locked(struct raid *r) {
        return membership_work_locked(r) || (!r->rebuild_blocked && rebuild_pos_locked(r) < r->data_size) ||
               r->resync_needed || r->scrub.running;
}

/* ---- Thread ---- */

static void bitmap_housekeeping(struct raid *r, uint64_t *last) {
        if (mono_ns() - *last < CHECKPOINT_NS || !bitmap_has_pending(&r->bm))
                return;
        *last = mono_ns();
        /* clears may only reach the disk after the data they vouch for */
        if (raid_flush_members(r) == 0)
                (void) bitmap_sync(&r->bm);
}

static void *sync_main(void *arg) {
        struct raid *r = arg;
        uint64_t last_ckpt = mono_ns(), last_bm = mono_ns();

        pthread_mutex_lock(&r->lock);
        while (!r->stop) {
                bool busy;
                uint64_t delay;
                struct timespec ts;

                r->kick = false;
                pthread_mutex_unlock(&r->lock);
                membership_changes(r);
                pthread_rwlock_rdlock(&r->cfg);
                r->rebuild.delay_ns = r->resync.delay_ns = r->scrub.delay_ns = 0;
                busy = rebuild_step(r, &last_ckpt) || resync_step(r) || scrub_step(r);
                bitmap_housekeeping(r, &last_bm);
                pthread_rwlock_unlock(&r->cfg);
                pthread_mutex_lock(&r->lock);
                if (r->stop)
                        break;
                delay = busy ? MAX(MAX(r->rebuild.delay_ns, r->resync.delay_ns), r->scrub.delay_ns)
                             : CHECKPOINT_NS;
                if (delay == 0 || r->kick)
                        continue;
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_sec += (time_t) (delay / 1000000000ull);
                ts.tv_nsec += (long) (delay % 1000000000ull);
                if (ts.tv_nsec >= 1000000000L) {
                        ts.tv_sec++;
                        ts.tv_nsec -= 1000000000L;
                }
                (void) pthread_cond_timedwait(&r->cond, &r->lock, &ts);
        }
        pthread_mutex_unlock(&r->lock);
        return NULL;
}

int sync_thread_start(struct raid *r) {
        int ret = pthread_create(&r->thread, NULL, sync_main, r);

        if (ret != 0)
                return -ret;
        r->thread_started = true;
        return 0;
}

void sync_thread_stop(struct raid *r) {
        if (!r->thread_started)
                return;
        WITH_LOCK (&r->lock) {
                r->stop = true;
                pthread_cond_signal(&r->cond);
        }
        pthread_join(r->thread, NULL);
        r->thread_started = false;
}
