/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* `raid` layer: md-style arrays over child nodes. Parameters, member state, superblocks,
 * assembly by UUID in any child order, the block-device ops, format and inspect. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <time.h>

#include <json-c/json.h>

#include "ctl.h"
#include "layout.h"
#include "raid.h"

/* ---- Request helpers ------------------------------------------------------------------------ */

void raid_req(struct orion_req *q, struct raid *r, struct orion_bdev *dev, enum orion_op op, void *buf,
              uint64_t len, uint64_t moff, uint32_t flags) {
        *q = (struct orion_req){
                .bdev = dev,
                .op = op,
                .flags = flags,
                .buf = buf,
                .len = len,
                .off = r->data_offset + moff,
        };
}

/* Member requests run one after the other on the calling thread while the members are pure
 * CPU work (memory, layers computing in place): handing a 64K memcpy to a pool thread costs
 * more than doing it, and the export already keeps every core busy with its own threads.
 * Members that wait (disks, networks, delays) get the batch in parallel. Which kind they are
 * is measured on one inline batch in RAID_SAMPLE: one during which the thread went to sleep
 * (voluntary context switches) for more than RAID_WAIT_NS beyond its CPU time makes the array
 * parallel; being preempted on a busy machine does not count. A parallel array times one request inline once
 * every RAID_PROBE_NS to find out whether that is still so. */
#define RAID_WAIT_NS 50000ull
#define RAID_PROBE_NS 100000000ull
#define RAID_SAMPLE 8u

struct usage {
        uint64_t wall, cpu, sleeps;
};

static void usage_now(struct usage *u) {
        struct rusage ru;

        getrusage(RUSAGE_THREAD, &ru);
        u->wall = mono_ns();
        u->cpu = ((uint64_t) ru.ru_utime.tv_sec + (uint64_t) ru.ru_stime.tv_sec) * 1000000000ull +
                 ((uint64_t) ru.ru_utime.tv_usec + (uint64_t) ru.ru_stime.tv_usec) * 1000ull;
        u->sleeps = (uint64_t) ru.ru_nvcsw;
}

/* Run reqs[0..n) inline; returns whether they waited rather than computed. Only measured when
 * asked: getrusage is a system call, too dear for every small batch on the hot path. */
static bool submit_inline(struct orion_req *reqs, size_t n, bool measure) {
        struct usage a, b;

        if (measure)
                usage_now(&a);
        for (size_t i = 0; i < n; i++)
                (void) orion_submit(&reqs[i], 1);
        if (!measure)
                return false;
        usage_now(&b);
        return b.sleeps > a.sleeps && b.wall - a.wall > b.cpu - a.cpu + RAID_WAIT_NS;
}

void *raid_scratch_get(struct raid *r, size_t len, size_t *ret_cap) {
        struct raid_scratch *s = &r->scratch;
        void *p = NULL;
        size_t cap = 0;

        WITH_LOCK (&s->lock) {
                /* the most recently returned fitting buffer: warm in cache, pages present */
                for (unsigned i = s->n; i-- > 0;)
                        if (s->cap[i] >= len) {
                                p = s->buf[i];
                                cap = s->cap[i];
                                s->n--;
                                s->buf[i] = s->buf[s->n];
                                s->cap[i] = s->cap[s->n];
                                break;
                        }
        }
        if (!p) {
                cap = ALIGN_UP(MAX(len, (size_t) 1), (size_t) 65536);
                p = orion_alloc_aligned(cap);
        }
        *ret_cap = cap;
        return p;
}

void raid_scratch_put(struct raid *r, void *buf, size_t cap) {
        struct raid_scratch *s = &r->scratch;

        if (!buf)
                return;
        if (cap <= RAID_SCRATCH_KEEP)
                WITH_LOCK (&s->lock) {
                        if (s->n < RAID_SCRATCH_SLOTS) {
                                s->buf[s->n] = buf;
                                s->cap[s->n++] = cap;
                                buf = NULL;
                        }
                }
        free(buf);
}

static int first_error(const struct orion_req *reqs, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (reqs[i].result < 0)
                        return reqs[i].result;
        return 0;
}

/* Flushes and FUA writes (superblocks, bitmap pages, FUA data) wait for the media wherever
 * the data itself goes: always in parallel, and not taken as a measure of the members. */
static bool durable_batch(const struct orion_req *reqs, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (reqs[i].op == ORION_OP_FLUSH || (reqs[i].flags & ORION_FUA))
                        return true;
        return false;
}

int raid_submit(struct raid *r, struct orion_req *reqs, size_t n) {
        uint64_t now, due;

        if (n <= 1)
                return n ? orion_submit(reqs, 1) : 0;
        if (durable_batch(reqs, n))
                return orion_submit(reqs, n);
        if (!atomic_load(&r->parallel)) {
                /* one batch in RAID_SAMPLE is timed: members that wait show up within a few */
                uint64_t k = atomic_fetch_add(&r->inline_batches, 1);
                if (submit_inline(reqs, n, k % RAID_SAMPLE == 0)) {
                        atomic_store(&r->probe_at, mono_ns() + RAID_PROBE_NS);
                        atomic_store(&r->parallel, true);
                }
                return first_error(reqs, n);
        }
        now = mono_ns();
        due = atomic_load(&r->probe_at);
        if (now < due || !atomic_compare_exchange_strong(&r->probe_at, &due, now + RAID_PROBE_NS)) {
                atomic_fetch_add(&r->parallel_batches, 1);
                return orion_submit(reqs, n);
        }
        /* the probe: one request inline, the rest as the measure says */
        if (submit_inline(reqs, 1, true)) {
                atomic_fetch_add(&r->parallel_batches, 1);
                (void) orion_submit(reqs + 1, n - 1);
        } else {
                atomic_store(&r->parallel, false);
                atomic_fetch_add(&r->inline_batches, 1);
                (void) submit_inline(reqs + 1, n - 1, false);
        }
        return first_error(reqs, n);
}

pthread_mutex_t *raid_stripe_lock(struct raid *r, uint64_t key) {
        return &r->stripe[key % RAID_STRIPE_LOCKS];
}

/* Keys map to lock slots modulo RAID_STRIPE_LOCKS; slots are taken in ascending order, each
 * once, so that overlapping ranges never deadlock. */
static bool slot_in_range(uint64_t first, uint64_t last, unsigned slot) {
        if (last - first + 1 >= RAID_STRIPE_LOCKS)
                return true;
        return (slot + RAID_STRIPE_LOCKS - first % RAID_STRIPE_LOCKS) % RAID_STRIPE_LOCKS <= last - first;
}

void raid_lock_range(struct raid *r, uint64_t first, uint64_t last) {
        for (unsigned s = 0; s < RAID_STRIPE_LOCKS; s++)
                if (slot_in_range(first, last, s))
                        pthread_mutex_lock(&r->stripe[s]);
}

void raid_unlock_range(struct raid *r, uint64_t first, uint64_t last) {
        for (unsigned s = RAID_STRIPE_LOCKS; s-- > 0;)
                if (slot_in_range(first, last, s))
                        pthread_mutex_unlock(&r->stripe[s]);
}

/* ---- Member state ---------------------------------------------------------------------------- */

bool raid_member_readable(struct raid *r, unsigned role, uint64_t moff) {
        struct raid_member *m = &r->m[role];

        if (!m->dev)
                return false;
        if (m->state == RAID_DEV_ACTIVE)
                return true;
        return m->state == RAID_DEV_REBUILDING && moff < m->recovery;
}

unsigned raid_member_targets(struct raid *r, unsigned role, uint64_t moff, struct orion_bdev **ret) {
        struct raid_member *m = &r->m[role];
        unsigned n = 0;

        if (m->dev && (m->state == RAID_DEV_ACTIVE || m->state == RAID_DEV_REBUILDING))
                ret[n++] = m->dev;
        if (m->repl)
                ret[n++] = m->repl;
        return n;
}

unsigned raid_rebuild_targets(struct raid *r, unsigned role, uint64_t moff, struct orion_bdev **ret) {
        struct raid_member *m = &r->m[role];
        unsigned n = 0;

        if (m->dev && m->state == RAID_DEV_REBUILDING && m->recovery <= moff)
                ret[n++] = m->dev;
        if (m->repl && m->repl_recovery <= moff)
                ret[n++] = m->repl;
        return n;
}

bool raid_failed_locked(struct raid *r) {
        bool lost[RAID_MAX_MEMBERS];

        for (unsigned i = 0; i < r->n; i++)
                lost[i] = !r->m[i].dev || r->m[i].state != RAID_DEV_ACTIVE;
        return !r->ops->survives(r, lost);
}

bool raid_failed(struct raid *r) {
        LOCK_GUARD(&r->lock);
        return raid_failed_locked(r);
}

void raid_update_health(struct raid *r) {
        unsigned bad = 0, rebuilding = 0;
        bool failed = false;
        double prog = 0;

        WITH_LOCK (&r->lock) {
                if (r->rebuild.running && r->rebuild.end)
                        prog = 100.0 * (double) r->rebuild.pos / (double) r->rebuild.end;
                for (unsigned i = 0; i < r->n; i++) {
                        bad += !r->m[i].dev || r->m[i].state == RAID_DEV_FAULTY ||
                               r->m[i].state == RAID_DEV_MISSING;
                        rebuilding += r->m[i].dev && r->m[i].state == RAID_DEV_REBUILDING;
                }
                failed = raid_failed_locked(r) && rebuilding == 0;
        }
        /* while degraded every written region stays marked, for a member that comes back */
        bitmap_set_hold(&r->bm, bad || rebuilding);
        if (failed)
                orion_bdev_set_health(r->bdev, ORION_HEALTH_FAILED, "raid%u: too many members lost",
                                      r->sb.level);
        else if (bad || rebuilding)
                orion_bdev_set_health(r->bdev, ORION_HEALTH_DEGRADED,
                                      "raid%u: %u of %u members failed or missing, %u rebuilding (%.0f%%)",
                                      r->sb.level, bad, r->n, rebuilding, prog);
        else
                orion_bdev_set_health(r->bdev, ORION_HEALTH_OK, NULL);
}

void raid_member_failed(struct raid *r, struct orion_bdev *dev, int error) {
        bool changed = false;

        if (!dev)
                return;
        WITH_LOCK (&r->lock) {
                for (unsigned i = 0; i < r->n; i++) {
                        struct raid_member *m = &r->m[i];

                        if (m->dev == dev &&
                            (m->state == RAID_DEV_ACTIVE || m->state == RAID_DEV_REBUILDING)) {
                                m->state = RAID_DEV_FAULTY;
                                changed = true;
                                /* from now on no bit may be cleared: see bitmap_set_hold */
                                bitmap_set_hold(&r->bm, true);
                        } else if (m->repl == dev) {
                                /* the replacement failed: forget it, the old member still serves */
                                if (r->ndropped < ELEMENTSOF(r->dropped))
                                        r->dropped[r->ndropped++] = m->repl;
                                m->repl = NULL;
                                changed = true;
                        }
                }
        }
        atomic_fetch_add(&r->io_errors, 1);
        if (!changed)
                return;
        orion_error("raid '%s': member '%s' failed (%s), marked faulty", orion_bdev_name(r->bdev),
                    orion_bdev_name(dev), strerror(-error));
        (void) raid_sb_update(r, false);
        raid_update_health(r);
        sync_kick(r);
}

/* ---- Superblocks ----------------------------------------------------------------------------- */

static int read_sb(struct orion_bdev *dev, struct raid_sb *ret) {
        _cleanup_free_ uint8_t *buf = orion_alloc_aligned(RAID_SB_SIZE);
        int r;

        if (!buf)
                return -ENOMEM;
        if (orion_bdev_size(dev) < RAID_SB_SIZE)
                return -ENODATA;
        r = orion_bdev_pread(dev, buf, RAID_SB_SIZE, 0, 0);
        if (r < 0)
                return r;
        return sb_decode(buf, RAID_SB_SIZE, ret);
}

struct sb_write {
        struct orion_bdev *dev;
        uint32_t role;
        uint32_t flags;
        uint64_t recovery;
};

/* Collect every device that carries this array's superblock (lock held). */
static size_t sb_targets_locked(struct raid *r, struct sb_write *w) {
        size_t n = 0;

        for (unsigned i = 0; i < r->n; i++) {
                struct raid_member *m = &r->m[i];

                if (m->dev && (m->state == RAID_DEV_ACTIVE || m->state == RAID_DEV_REBUILDING))
                        w[n++] = (struct sb_write){m->dev, i, 0,
                                                   m->state == RAID_DEV_ACTIVE ? RAID_RECOVERY_DONE
                                                                               : m->recovery};
                if (m->repl)
                        w[n++] = (struct sb_write){m->repl, i, RAID_SB_REPLACEMENT, m->repl_recovery};
        }
        for (unsigned i = 0; i < r->nspares; i++)
                w[n++] = (struct sb_write){r->spares[i], RAID_ROLE_SPARE, 0, RAID_RECOVERY_DONE};
        return n;
}

int raid_sb_update(struct raid *r, bool clean) {
        struct sb_write w[3 * RAID_MAX_MEMBERS];
        struct orion_req q[3 * RAID_MAX_MEMBERS];
        _cleanup_free_ uint8_t *bufs = NULL;
        struct raid_sb sb = {};
        size_t n = 0;
        int ret;

        LOCK_GUARD(&r->sb_lock);
        WITH_LOCK (&r->lock) {
                r->sb.events++;
                r->sb.utime = (uint64_t) time(NULL);
                r->sb.flags = clean ? RAID_SB_CLEAN : 0;
                for (unsigned i = 0; i < r->n; i++)
                        r->sb.dev_state[i] = r->m[i].dev ? (uint8_t) r->m[i].state : RAID_DEV_MISSING;
                sb = r->sb;
                n = sb_targets_locked(r, w);
        }
        bufs = orion_alloc_aligned(n * RAID_SB_SIZE + 1);
        if (!bufs)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                sb.role = w[i].role;
                sb.flags = (clean ? RAID_SB_CLEAN : 0) | w[i].flags;
                sb.recovery_offset = w[i].recovery;
                sb_encode(&sb, bufs + i * RAID_SB_SIZE);
                q[i] = (struct orion_req){.bdev = w[i].dev,
                                          .op = ORION_OP_WRITE,
                                          .flags = ORION_FUA,
                                          .buf = bufs + i * RAID_SB_SIZE,
                                          .len = RAID_SB_SIZE,
                                          .off = 0};
        }
        ret = raid_submit(r, q, n);
        for (size_t i = 0; i < n; i++)
                if (q[i].result < 0)
                        orion_log_ratelimited(ORION_LOG_ERR,
                                              "raid '%s': superblock write to '%s' failed: %s",
                                              orion_bdev_name(r->bdev), orion_bdev_name(q[i].bdev),
                                              strerror(-q[i].result));
        return ret;
}

/* Bitmap pages go to every in-sync or rebuilding member and a replacement. */
static int bitmap_write_cb(void *opaque, const uint8_t *buf, uint64_t off, uint64_t len) {
        struct raid *r = opaque;
        struct orion_bdev *devs[2 * RAID_MAX_MEMBERS];
        struct orion_req q[2 * RAID_MAX_MEMBERS];
        size_t n = 0, ok = 0;

        WITH_LOCK (&r->lock) {
                for (unsigned i = 0; i < r->n; i++)
                        n += raid_member_targets(r, i, 0, devs + n);
        }
        for (size_t i = 0; i < n; i++)
                q[i] = (struct orion_req){.bdev = devs[i],
                                          .op = ORION_OP_WRITE,
                                          .flags = ORION_FUA,
                                          .buf = (void *) buf,
                                          .len = len,
                                          .off = r->sb.bitmap_offset + off};
        (void) raid_submit(r, q, n);
        for (size_t i = 0; i < n; i++)
                ok += q[i].result == 0;
        /* A member that cannot take its bitmap fails on its next data write; enough if one has it. */
        return ok > 0 || n == 0 ? 0 : -EIO;
}

/* ---- Parameters ------------------------------------------------------------------------------ */

static const struct orion_param raid_params[] = {
        {"level", ORION_PARAM_ENUM, NULL, "RAID level.", "0 1 5 6 10"},
        {"children", ORION_PARAM_NODES, NULL,
         "Member nodes, in any order: roles come from their superblocks."},
        {"spares", ORION_PARAM_NODES, NULL, "Hot spares: take over a failed member and are rebuilt.", NULL,
         true},
        {"chunk", ORION_PARAM_SIZE, "64K",
         "Chunk size (format; on open it must match the superblock when given)."},
        {"bitmap-chunk", ORION_PARAM_SIZE, "4M",
         "Member bytes covered by one write-intent bitmap bit (format)."},
        {"rebuild-rate", ORION_PARAM_SIZE, "0",
         "Rebuild, resync and scrub limit in bytes/s per array (0: no limit)."},
        {NULL},
};

static const struct raid_level *level_ops(unsigned level) {
        switch (level) {
        case 0: return &raid0_level;
        case 1: return &raid1_level;
        case 5: return &raid5_level;
        case 6: return &raid6_level;
        case 10: return &raid10_level;
        default: return NULL;
        }
}

static int param_level(const struct orion_params *p, unsigned *ret, struct orion_error *err) {
        const char *s = orion_param_str(p, "level");
        char *end;
        unsigned long v;

        if (!s)
                return orion_error_set(err, EINVAL, "raid: level= is required (0, 1, 5, 6 or 10)");
        errno = 0;
        v = strtoul(s, &end, 10);
        if (errno || end == s || *end || !level_ops((unsigned) v))
                return orion_error_set(err, EINVAL, "raid: level '%s' is not one of 0, 1, 5, 6, 10", s);
        *ret = (unsigned) v;
        return 0;
}

/* All devices named by children= then spares=. */
static size_t param_devices(const struct orion_params *p, struct orion_bdev **devs, size_t *ret_nchildren) {
        size_t nc = orion_param_nodes_count(p, "children"), ns = 0, n = 0;

        if (orion_param_is_set(p, "spares"))
                ns = orion_param_nodes_count(p, "spares");
        for (size_t i = 0; i < nc && n < 2 * RAID_MAX_MEMBERS; i++)
                devs[n++] = orion_param_nodes_get(p, "children", i);
        for (size_t i = 0; i < ns && n < 2 * RAID_MAX_MEMBERS; i++)
                devs[n++] = orion_param_nodes_get(p, "spares", i);
        *ret_nchildren = nc;
        return n;
}

/* ---- Assembly -------------------------------------------------------------------------------- */

struct cand {
        struct orion_bdev *dev;
        int sbr; /* read_sb result */
        struct raid_sb sb;
        bool used;
        bool child; /* named in children= (else spares=) */
};

/* The freshest superblock among the children decides the array. */
static int pick_array(struct cand *c, size_t n, struct raid_sb *ret, struct orion_error *err) {
        const struct cand *best = NULL;

        for (size_t i = 0; i < n; i++)
                if (c[i].child && c[i].sbr == 0 && c[i].sb.role != RAID_ROLE_SPARE &&
                    !(c[i].sb.flags & RAID_SB_REPLACEMENT) && (!best || c[i].sb.events > best->sb.events))
                        best = &c[i];
        if (!best)
                return orion_error_set(err, ENODEV,
                                       "raid: no raid superblock on any child; create the array with "
                                       "`orionctl format raid level=... children=\"...\"`");
        for (size_t i = 0; i < n; i++)
                if (c[i].sbr == 0 && memcmp(c[i].sb.uuid, best->sb.uuid, 16) != 0) {
                        char u1[37], u2[37];

                        uuid_format(c[i].sb.uuid, u1);
                        uuid_format(best->sb.uuid, u2);
                        return orion_error_set(err, EINVAL,
                                               "raid: '%s' belongs to another array (%s, not %s)",
                                               orion_bdev_name(c[i].dev), u1, u2);
                }
        *ret = best->sb;
        return 0;
}

/* Give each role the device with the freshest superblock claiming it; stale ones rebuild. */
static void assign_roles(struct raid *r, struct cand *c, size_t n, const struct raid_sb *f) {
        for (unsigned role = 0; role < r->n; role++) {
                struct cand *best = NULL;
                struct raid_member *m = &r->m[role];

                for (size_t i = 0; i < n; i++)
                        if (c[i].sbr == 0 && c[i].sb.role == role &&
                            !(c[i].sb.flags & RAID_SB_REPLACEMENT) &&
                            (!best || c[i].sb.events > best->sb.events))
                                best = &c[i];
                if (!best) {
                        m->state = RAID_DEV_MISSING;
                        continue;
                }
                best->used = true;
                m->dev = best->dev;
                if (best->sb.events == f->events && f->dev_state[role] == RAID_DEV_ACTIVE) {
                        m->state = RAID_DEV_ACTIVE;
                } else if (best->sb.events == f->events && f->dev_state[role] == RAID_DEV_REBUILDING) {
                        m->state = RAID_DEV_REBUILDING;
                        m->recovery = best->sb.recovery_offset == RAID_RECOVERY_DONE
                                              ? 0
                                              : best->sb.recovery_offset;
                        orion_info("raid '%s': member '%s' resumes rebuilding at %" PRIu64,
                                   orion_bdev_name(r->bdev), orion_bdev_name(m->dev), m->recovery);
                } else {
                        /* never trust a stale member: rebuild it from the others */
                        m->state = RAID_DEV_REBUILDING;
                        m->recovery = 0;
                        /* It was in sync when it left and the array has run degraded since,
                         * keeping every bit it wrote: only the marked regions need copying. */
                        m->by_bitmap = best->sb.recovery_offset == RAID_RECOVERY_DONE &&
                                       (f->dev_state[role] == RAID_DEV_FAULTY ||
                                        f->dev_state[role] == RAID_DEV_MISSING);
                        orion_warn("raid '%s': member '%s' is stale (events %" PRIu64 " < %" PRIu64
                                   ", recorded %s): rebuilding %s",
                                   orion_bdev_name(r->bdev), orion_bdev_name(m->dev), best->sb.events,
                                   f->events, dev_state_name(f->dev_state[role]),
                                   m->by_bitmap ? "the regions marked in the bitmap" : "it");
                }
        }
}

/* A `replace` interrupted by a restart resumes: its target carries the flag, the role and
 * its position, current as of the array's events. An older one starts again as a spare. */
static void assign_replacements(struct raid *r, struct cand *c, size_t n, const struct raid_sb *f) {
        for (size_t i = 0; i < n; i++) {
                struct raid_member *m;

                if (c[i].used || c[i].sbr != 0 || !(c[i].sb.flags & RAID_SB_REPLACEMENT) ||
                    c[i].sb.role >= r->n || c[i].sb.events != f->events)
                        continue;
                m = &r->m[c[i].sb.role];
                if (!m->dev || m->state != RAID_DEV_ACTIVE || m->repl)
                        continue;
                c[i].used = true;
                m->repl = c[i].dev;
                m->repl_recovery =
                        c[i].sb.recovery_offset == RAID_RECOVERY_DONE ? 0 : c[i].sb.recovery_offset;
                orion_info("raid '%s': replacement '%s' of '%s' resumes at %" PRIu64,
                           orion_bdev_name(r->bdev), orion_bdev_name(m->repl), orion_bdev_name(m->dev),
                           m->repl_recovery);
        }
}

static int check_size(struct raid *r, struct orion_bdev *dev, struct orion_error *err) {
        if (orion_bdev_size(dev) < r->data_offset + r->data_size)
                return orion_error_set(
                        err, ENOSPC, "raid: '%s' is too small (%" PRIu64 " bytes, need %" PRIu64 ")",
                        orion_bdev_name(dev), orion_bdev_size(dev), r->data_offset + r->data_size);
        return 0;
}

static int load_bitmap(struct raid *r) {
        _cleanup_free_ uint8_t *buf = orion_alloc_aligned(r->bm.bytes);

        if (!buf)
                return -ENOMEM;
        for (unsigned i = 0; i < r->n; i++) {
                if (!r->m[i].dev || r->m[i].state != RAID_DEV_ACTIVE)
                        continue;
                if (orion_bdev_pread(r->m[i].dev, buf, r->bm.bytes, r->sb.bitmap_offset, 0) == 0)
                        bitmap_merge(&r->bm, buf, r->bm.bytes, r->resync_needed);
        }
        return 0;
}

static int assemble(struct raid *r, const struct orion_params *p, unsigned level, struct orion_error *err) {
        struct orion_bdev *devs[2 * RAID_MAX_MEMBERS];
        struct cand c[2 * RAID_MAX_MEMBERS] = {};
        size_t nchildren, n = param_devices(p, devs, &nchildren);
        bool lost[RAID_MAX_MEMBERS];
        unsigned nlost = 0;
        int ret;

        for (size_t i = 0; i < n; i++) {
                for (size_t j = 0; j < i; j++)
                        if (devs[j] == devs[i])
                                return orion_error_set(err, EINVAL, "raid: '%s' is named twice",
                                                       orion_bdev_name(devs[i]));
                c[i].dev = devs[i];
                c[i].child = i < nchildren;
                c[i].sbr = read_sb(devs[i], &c[i].sb);
                if (c[i].sbr == -EBADMSG)
                        orion_warn("raid '%s': '%s' has a damaged raid superblock, ignoring it",
                                   orion_bdev_name(r->bdev), orion_bdev_name(devs[i]));
                else if (c[i].sbr < 0 && c[i].sbr != -ENODATA)
                        return orion_error_set(err, -c[i].sbr, "raid: cannot read '%s': %s",
                                               orion_bdev_name(devs[i]), strerror(-c[i].sbr));
        }
        ret = pick_array(c, n, &r->sb, err);
        if (ret < 0)
                return ret;
        if (r->sb.level != level)
                return orion_error_set(err, EINVAL, "raid: level=%u but the members hold a raid%u array",
                                       level, r->sb.level);
        if (orion_param_is_set(p, "chunk") && orion_param_size(p, "chunk") != r->sb.chunk)
                return orion_error_set(err, EINVAL, "raid: chunk=%" PRIu64 " but the array uses %u",
                                       orion_param_size(p, "chunk"), r->sb.chunk);
        r->ops = level_ops(level);
        r->n = r->sb.raid_disks;
        r->chunk = r->sb.chunk;
        r->data_offset = r->sb.data_offset;
        r->data_size = r->sb.data_size;
        assign_roles(r, c, n, &r->sb);
        assign_replacements(r, c, n, &r->sb);
        for (unsigned i = 0; i < r->n; i++) {
                if (r->m[i].dev && check_size(r, r->m[i].dev, err) < 0)
                        return -ENOSPC;
                lost[i] = !r->m[i].dev || r->m[i].state != RAID_DEV_ACTIVE;
                nlost += lost[i];
        }
        if (!r->ops->survives(r, lost))
                return orion_error_set(err, EIO,
                                       "raid: cannot assemble: %u of %u members missing, failed or stale",
                                       nlost, r->n);
        /* everything else that is blank or ours is a spare */
        for (size_t i = 0; i < n; i++) {
                if (c[i].used)
                        continue;
                if (check_size(r, c[i].dev, NULL) < 0) {
                        orion_warn("raid '%s': '%s' is too small to be a spare, ignoring it",
                                   orion_bdev_name(r->bdev), orion_bdev_name(c[i].dev));
                        continue;
                }
                r->spares[r->nspares++] = c[i].dev;
        }
        if (!(r->sb.flags & RAID_SB_CLEAN)) {
                r->resync_needed = r->ops->sync_row != NULL;
                if (nlost)
                        orion_warn("raid '%s': array was not shut down cleanly and is degraded: data in "
                                   "regions "
                                   "written at the crash may be inconsistent",
                                   orion_bdev_name(r->bdev));
        }
        return 0;
}

/* ---- Ops ------------------------------------------------------------------------------------- */

static int raid_pread(struct orion_bdev *b, void *buf, uint64_t len, uint64_t off, uint32_t flags) {
        struct raid *r = orion_bdev_priv(b);
        int ret;

        pthread_rwlock_rdlock(&r->cfg);
        ret = r->ops->read(r, buf, len, off);
        pthread_rwlock_unlock(&r->cfg);
        return ret;
}

static int raid_pwrite(struct orion_bdev *b, const void *buf, uint64_t len, uint64_t off, uint32_t flags) {
        struct raid *r = orion_bdev_priv(b);
        int ret;

        pthread_rwlock_rdlock(&r->cfg);
        ret = r->ops->write(r, buf, len, off, flags & ORION_FUA);
        pthread_rwlock_unlock(&r->cfg);
        return ret;
}

/* Flush every member; afterwards regions idle since before the flush may lose their bit. */
int raid_flush_members(struct raid *r) {
        struct orion_bdev *devs[2 * RAID_MAX_MEMBERS];
        struct orion_req q[2 * RAID_MAX_MEMBERS];
        uint64_t token = bitmap_flush_begin(&r->bm);
        size_t n = 0;

        WITH_LOCK (&r->lock) {
                for (unsigned i = 0; i < r->n; i++)
                        n += raid_member_targets(r, i, 0, devs + n);
        }
        for (size_t i = 0; i < n; i++)
                q[i] = (struct orion_req){.bdev = devs[i], .op = ORION_OP_FLUSH};
        (void) raid_submit(r, q, n);
        for (size_t i = 0; i < n; i++)
                if (q[i].result < 0)
                        raid_member_failed(r, q[i].bdev, q[i].result);
        if (raid_failed(r))
                return -EIO;
        bitmap_flush_done(&r->bm, token);
        return 0;
}

static int raid_flush(struct orion_bdev *b, uint32_t flags) {
        struct raid *r = orion_bdev_priv(b);
        int ret;

        pthread_rwlock_rdlock(&r->cfg);
        ret = raid_flush_members(r);
        pthread_rwlock_unlock(&r->cfg);
        return ret;
}

static void raid_free(struct raid *r) {
        for (unsigned i = 0; i < r->scratch.n; i++)
                free(r->scratch.buf[i]);
        pthread_mutex_destroy(&r->scratch.lock);
        bitmap_done(&r->bm);
        pthread_rwlock_destroy(&r->cfg);
        pthread_mutex_destroy(&r->lock);
        pthread_mutex_destroy(&r->sb_lock);
        pthread_cond_destroy(&r->cond);
        for (unsigned i = 0; i < RAID_STRIPE_LOCKS; i++)
                pthread_mutex_destroy(&r->stripe[i]);
}

static void raid_close(struct orion_bdev *b) {
        struct raid *r = orion_bdev_priv(b);
        bool clean;

        sync_thread_stop(r);
        pthread_rwlock_rdlock(&r->cfg);
        /* Nothing is in flight: after a flush every bit may go, and the array is clean unless a
         * resync is still owed. */
        clean = raid_flush_members(r) == 0 && bitmap_resync_pending(&r->bm) == 0 && bitmap_sync(&r->bm) == 0;
        (void) raid_sb_update(r, clean && !raid_failed(r));
        pthread_rwlock_unlock(&r->cfg);
        raid_free(r);
}

static void raid_init_locks(struct raid *r) {
        pthread_rwlockattr_t a;

        /* writer-preferring, so that a management verb is not starved by a busy array */
        pthread_rwlockattr_init(&a);
        pthread_rwlockattr_setkind_np(&a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
        pthread_rwlock_init(&r->cfg, &a);
        pthread_rwlockattr_destroy(&a);
        pthread_mutex_init(&r->lock, NULL);
        pthread_mutex_init(&r->sb_lock, NULL);
        pthread_mutex_init(&r->scratch.lock, NULL);
        pthread_cond_init(&r->cond, NULL);
        for (unsigned i = 0; i < RAID_STRIPE_LOCKS; i++)
                pthread_mutex_init(&r->stripe[i], NULL);
}

static int raid_open(struct orion_bdev *b, const struct orion_params *p, struct orion_error *err) {
        struct raid *r = orion_bdev_priv(b);
        struct orion_geometry g = {};
        uint32_t bs = 512;
        unsigned level;
        int ret;

        ret = param_level(p, &level, err);
        if (ret < 0)
                return ret;
        r->bdev = b;
        r->rebuild_rate = orion_param_size(p, "rebuild-rate");
        raid_init_locks(r);
        ret = assemble(r, p, level, err);
        if (ret < 0)
                goto fail_locks;
        ret = bitmap_init(&r->bm, r->data_size, r->sb.bitmap_chunk, bitmap_write_cb, r);
        if (ret < 0) {
                orion_error_set(err, -ret, "raid: out of memory");
                goto fail_locks;
        }
        ret = load_bitmap(r);
        if (ret < 0) {
                orion_error_set(err, -ret, "raid: cannot load the bitmap");
                goto fail_bitmap;
        }
        for (unsigned i = 0; i < r->n; i++)
                if (r->m[i].dev)
                        bs = MAX(bs, orion_bdev_block_size(r->m[i].dev));
        g.block_size = bs;
        g.size = ALIGN_DOWN(r->ops->array_size(r), (uint64_t) bs);
        {
                /* whole rows per request, so that big writes are full-stripe writes */
                uint64_t row = (uint64_t) r->chunk * (r->ops->nparity ? r->n - r->ops->nparity : 1);

                g.pref_size = r->chunk;
                g.max_size = (uint32_t) (MAX((uint64_t) (4u << 20) / row, (uint64_t) 1) * row);
        }
        ret = orion_bdev_set_geometry(b, &g);
        if (ret < 0) {
                orion_error_set(err, -ret, "raid: bad geometry");
                goto fail_bitmap;
        }
        orion_bdev_set_caps(b, ORION_CAP_FLUSH | ORION_CAP_FUA | ORION_CAP_MULTI_CONN);
        /* in use from now on: dirty until a clean close */
        ret = raid_sb_update(r, false);
        if (ret < 0) {
                orion_error_set(err, -ret, "raid: cannot write the superblocks: %s", strerror(-ret));
                goto fail_bitmap;
        }
        ret = sync_thread_start(r);
        if (ret < 0) {
                orion_error_set(err, -ret, "raid: cannot start the sync thread");
                goto fail_bitmap;
        }
        raid_update_health(r);
        {
                char u[37];

                uuid_format(r->sb.uuid, u);
                orion_info("raid '%s': raid%u %s, %u members, chunk %u, %" PRIu64 " bytes%s",
                           orion_bdev_name(b), level, u, r->n, r->chunk, g.size,
                           r->resync_needed ? ", resync needed" : "");
        }
        return 0;
fail_bitmap:
        bitmap_done(&r->bm);
fail_locks:
        pthread_rwlock_destroy(&r->cfg);
        pthread_mutex_destroy(&r->lock);
        pthread_mutex_destroy(&r->sb_lock);
        pthread_mutex_destroy(&r->scratch.lock);
        pthread_cond_destroy(&r->cond);
        for (unsigned i = 0; i < RAID_STRIPE_LOCKS; i++)
                pthread_mutex_destroy(&r->stripe[i]);
        return ret;
}

/* ---- Format and inspect ---------------------------------------------------------------------- */

/* Bits small enough for memory, and the image within the reserved area. */
static uint64_t pick_bitmap_chunk(uint64_t want, uint32_t chunk, uint64_t data_size) {
        uint64_t bc = 4096;

        while (bc < want || bc < chunk)
                bc *= 2;
        while ((data_size + bc - 1) / bc > (1u << 18) ||
               sb_bitmap_bytes(data_size, bc) > RAID_DATA_OFFSET - RAID_BITMAP_OFFSET)
                bc *= 2;
        return bc;
}

static int format_device(struct orion_bdev *dev, const struct raid_sb *sb, bool zero,
                         struct orion_error *err) {
        _cleanup_free_ uint8_t *buf = orion_alloc_aligned(RAID_SB_SIZE);
        int ret;

        if (!buf)
                return orion_error_set(err, ENOMEM, "raid: out of memory");
        /* the bitmap area is always cleared; the data area only where parity must agree */
        ret = orion_bdev_write_zeroes(dev, sb->data_offset - RAID_SB_SIZE, RAID_SB_SIZE, 0);
        if (ret >= 0 && zero)
                ret = orion_bdev_write_zeroes(dev, sb->data_size, sb->data_offset, 0);
        if (ret < 0)
                return orion_error_set(err, -ret, "raid: cannot clear '%s': %s", orion_bdev_name(dev),
                                       strerror(-ret));
        sb_encode(sb, buf);
        ret = orion_bdev_pwrite(dev, buf, RAID_SB_SIZE, 0, ORION_FUA);
        if (ret < 0)
                return orion_error_set(err, -ret, "raid: cannot write the superblock of '%s': %s",
                                       orion_bdev_name(dev), strerror(-ret));
        return 0;
}

static int raid_format(const struct orion_params *p, bool force, struct json_object *args,
                       struct orion_error *err) {
        struct orion_bdev *devs[2 * RAID_MAX_MEMBERS];
        size_t nchildren, n = param_devices(p, devs, &nchildren);
        uint64_t chunk = orion_param_size(p, "chunk"), min_size = UINT64_MAX;
        struct raid_sb sb = {};
        unsigned level;
        int ret;

        ret = param_level(p, &level, err);
        if (ret < 0)
                return ret;
        if (nchildren < sb_min_members(level) || nchildren > RAID_MAX_MEMBERS)
                return orion_error_set(err, EINVAL, "raid: raid%u needs %u to %u children, got %zu", level,
                                       sb_min_members(level), RAID_MAX_MEMBERS, nchildren);
        if (!IS_POW2(chunk) || chunk < 4096 || chunk > (16u << 20))
                return orion_error_set(err, EINVAL, "raid: chunk must be a power of two from 4K to 16M");
        for (size_t i = 0; i < n; i++) {
                struct raid_sb old;

                for (size_t j = 0; j < i; j++)
                        if (devs[j] == devs[i])
                                return orion_error_set(err, EINVAL, "raid: '%s' is named twice",
                                                       orion_bdev_name(devs[i]));
                ret = read_sb(devs[i], &old);
                if (ret == 0 && !force) {
                        char u[37];

                        uuid_format(old.uuid, u);
                        return orion_error_set(
                                err, EEXIST,
                                "raid: '%s' holds a raid%u superblock (array %s); use --force to overwrite",
                                orion_bdev_name(devs[i]), old.level, u);
                }
                if (ret < 0 && ret != -ENODATA && ret != -EBADMSG)
                        return orion_error_set(err, -ret, "raid: cannot read '%s': %s",
                                               orion_bdev_name(devs[i]), strerror(-ret));
                if (i < nchildren)
                        min_size = MIN(min_size, orion_bdev_size(devs[i]));
        }
        if (min_size < RAID_DATA_OFFSET + chunk)
                return orion_error_set(err, ENOSPC, "raid: children must be larger than %u bytes",
                                       RAID_DATA_OFFSET + (unsigned) chunk);
        if (getrandom(sb.uuid, sizeof(sb.uuid), 0) != sizeof(sb.uuid))
                return orion_error_set(err, errno, "raid: no random bytes for the UUID: %m");
        sb.uuid[6] = (sb.uuid[6] & 0x0F) | 0x40; /* RFC 4122 version 4 */
        sb.uuid[8] = (sb.uuid[8] & 0x3F) | 0x80;
        sb.level = level;
        sb.chunk = (uint32_t) chunk;
        sb.raid_disks = (uint32_t) nchildren;
        sb.flags = RAID_SB_CLEAN;
        sb.events = 1;
        sb.data_offset = RAID_DATA_OFFSET;
        sb.data_size = ALIGN_DOWN(min_size - RAID_DATA_OFFSET, chunk);
        sb.bitmap_offset = RAID_BITMAP_OFFSET;
        sb.bitmap_chunk = pick_bitmap_chunk(orion_param_size(p, "bitmap-chunk"), sb.chunk, sb.data_size);
        sb.recovery_offset = RAID_RECOVERY_DONE;
        sb.ctime = sb.utime = (uint64_t) time(NULL);
        for (size_t i = 0; i < n; i++) {
                sb.role = i < nchildren ? (uint32_t) i : RAID_ROLE_SPARE;
                if (i >= nchildren && orion_bdev_size(devs[i]) < sb.data_offset + sb.data_size)
                        return orion_error_set(err, ENOSPC, "raid: spare '%s' is smaller than the members",
                                               orion_bdev_name(devs[i]));
                ret = format_device(devs[i], &sb, level != 0 && i < nchildren, err);
                if (ret < 0)
                        return ret;
        }
        {
                char u[37];

                uuid_format(sb.uuid, u);
                orion_info("raid: created raid%u %s on %zu members, chunk %u, %" PRIu64 " bytes per member",
                           level, u, nchildren, sb.chunk, sb.data_size);
        }
        return 0;
}

static int raid_inspect(struct orion_bdev *b, struct json_object *out) {
        struct raid_sb sb;
        struct json_object *st;
        char u[37];
        int ret = read_sb(b, &sb);

        if (ret == -ENODATA || ret == -EBADMSG)
                return 0;
        if (ret < 0)
                return ret;
        uuid_format(sb.uuid, u);
        json_object_object_add(out, "type", json_object_new_string("raid"));
        json_object_object_add(out, "uuid", json_object_new_string(u));
        json_object_object_add(out, "level", json_object_new_int((int) sb.level));
        json_object_object_add(out, "chunk", json_object_new_uint64(sb.chunk));
        json_object_object_add(out, "raid-disks", json_object_new_int((int) sb.raid_disks));
        if (sb.role == RAID_ROLE_SPARE)
                json_object_object_add(out, "role", json_object_new_string("spare"));
        else
                json_object_object_add(out, "role", json_object_new_int((int) sb.role));
        json_object_object_add(out, "events", json_object_new_uint64(sb.events));
        json_object_object_add(out, "state",
                               json_object_new_string(sb.flags & RAID_SB_CLEAN ? "clean" : "dirty"));
        json_object_object_add(out, "replacement", json_object_new_boolean(sb.flags & RAID_SB_REPLACEMENT));
        json_object_object_add(out, "data-offset", json_object_new_uint64(sb.data_offset));
        json_object_object_add(out, "data-size", json_object_new_uint64(sb.data_size));
        json_object_object_add(out, "bitmap-chunk", json_object_new_uint64(sb.bitmap_chunk));
        if (sb.recovery_offset != RAID_RECOVERY_DONE)
                json_object_object_add(out, "recovery-offset", json_object_new_uint64(sb.recovery_offset));
        st = json_object_new_array();
        for (unsigned i = 0; i < sb.raid_disks; i++)
                json_object_array_add(st, json_object_new_string(dev_state_name(sb.dev_state[i])));
        json_object_object_add(out, "member-states", st);
        return 1;
}

static const struct orion_bdev_ops raid_ops = {
        .pread = raid_pread,
        .pwrite = raid_pwrite,
        .flush = raid_flush,
        .stats = raid_stats,
        .ctl = raid_ctl,
        .status = raid_status,
        .close = raid_close,
};

ORION_PLUGIN(.name = "raid", .description = "RAID 0, 1, 5, 6, 10 over child nodes (md-style, ISA-L parity)",
             .params = raid_params, .instance_size = sizeof(struct raid), .ops = &raid_ops,
             .open = raid_open, .format = raid_format, .inspect = raid_inspect);
