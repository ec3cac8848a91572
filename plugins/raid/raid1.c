/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* RAID-1: any number of mirrors. Reads are spread over the readable members chunk by chunk;
 * writes go to every writable member (and a replacement being filled). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "raid.h"

uint64_t sectors_differ(const uint8_t *a, const uint8_t *b, uint64_t len) {
        uint64_t n = 0;

        for (uint64_t o = 0; o < len; o += 512)
                n += memcmp(a + o, b + o, MIN((uint64_t) 512, len - o)) != 0;
        return n;
}

/* Pick a readable copy starting from a rotating index; -1 if none. */
static int pick_copy(struct raid *r, const unsigned *roles, const uint64_t *moffs, unsigned ncopies,
                     const bool *tried) {
        unsigned start = atomic_fetch_add(&r->rr, 1);

        for (unsigned i = 0; i < ncopies; i++) {
                unsigned c = (start + i) % ncopies;

                if (!tried[c] && raid_member_readable(r, roles[c], moffs[c]))
                        return (int) c;
        }
        return -1;
}

int mirror_read(struct raid *r, const unsigned *roles, const uint64_t *moffs, unsigned ncopies, void *buf,
                uint64_t len) {
        bool tried[RAID_MAX_MEMBERS] = {};
        int c;

        while ((c = pick_copy(r, roles, moffs, ncopies, tried)) >= 0) {
                struct orion_req q;

                tried[c] = true;
                raid_req(&q, r, r->m[roles[c]].dev, ORION_OP_READ, buf, len, moffs[c], 0);
                if (raid_submit(r, &q, 1) == 0)
                        return 0;
                raid_member_failed(r, q.bdev, q.result);
                atomic_fetch_add(&r->degraded_reads, 1);
        }
        return -EIO;
}

/* Index of the copy most others agree with (first on ties). */
static unsigned majority(uint8_t **bufs, const bool *have, unsigned ncopies, uint64_t len) {
        unsigned best = ncopies, best_votes = 0;

        for (unsigned i = 0; i < ncopies; i++) {
                unsigned votes = 0;

                if (!have[i])
                        continue;
                for (unsigned j = 0; j < ncopies; j++)
                        votes += have[j] && memcmp(bufs[i], bufs[j], len) == 0;
                if (best == ncopies || votes > best_votes) {
                        best = i;
                        best_votes = votes;
                }
        }
        return best;
}

static int mirror_rebuild(struct raid *r, const unsigned *roles, const uint64_t *moffs, unsigned ncopies,
                          uint64_t len) {
        struct orion_req q[2 * RAID_MAX_MEMBERS];
        _cleanup_free_ uint8_t *buf = NULL;
        size_t nq = 0;
        int ret;

        for (unsigned i = 0; i < ncopies; i++) {
                struct orion_bdev *t[2];
                unsigned nt = raid_rebuild_targets(r, roles[i], moffs[i], t);

                for (unsigned j = 0; j < nt; j++)
                        raid_req(&q[nq++], r, t[j], ORION_OP_WRITE, NULL, len, moffs[i], 0);
        }
        if (nq == 0)
                return 0;
        buf = orion_alloc_aligned(len);
        if (!buf)
                return -ENOMEM;
        ret = mirror_read(r, roles, moffs, ncopies, buf, len);
        if (ret < 0)
                return ret;
        for (size_t i = 0; i < nq; i++)
                q[i].buf = buf;
        (void) raid_submit(r, q, nq);
        for (size_t i = 0; i < nq; i++)
                if (q[i].result < 0)
                        raid_member_failed(r, q[i].bdev, q[i].result);
        return 0;
}

int mirror_sync(struct raid *r, const unsigned *roles, const uint64_t *moffs, unsigned ncopies, uint64_t len,
                enum sync_mode mode, uint64_t *ret_mismatch) {
        struct orion_req q[2 * RAID_MAX_MEMBERS];
        uint8_t *bufs[RAID_MAX_MEMBERS];
        bool have[RAID_MAX_MEMBERS] = {};
        unsigned qi[RAID_MAX_MEMBERS];
        _cleanup_free_ uint8_t *mem = NULL;
        unsigned ref, nhave = 0;
        size_t nq = 0;
        uint64_t bad = 0;

        *ret_mismatch = 0;
        if (mode == SYNC_REBUILD)
                return mirror_rebuild(r, roles, moffs, ncopies, len);
        mem = orion_alloc_aligned(len * ncopies);
        if (!mem)
                return -ENOMEM;
        for (unsigned i = 0; i < ncopies; i++) {
                bufs[i] = mem + i * len;
                if (raid_member_readable(r, roles[i], moffs[i])) {
                        qi[nq] = i;
                        raid_req(&q[nq++], r, r->m[roles[i]].dev, ORION_OP_READ, bufs[i], len, moffs[i], 0);
                }
        }
        (void) raid_submit(r, q, nq);
        for (size_t j = 0; j < nq; j++) {
                if (q[j].result == 0) {
                        have[qi[j]] = true;
                        nhave++;
                } else
                        raid_member_failed(r, q[j].bdev, q[j].result);
        }
        if (nhave < 2)
                return 0; /* nothing to compare against */
        ref = majority(bufs, have, ncopies, len);
        for (unsigned i = 0; i < ncopies; i++)
                if (have[i] && i != ref)
                        bad = MAX(bad, sectors_differ(bufs[ref], bufs[i], len));
        *ret_mismatch = bad;
        if (bad == 0 || mode == SYNC_CHECK)
                return 0;
        nq = 0;
        for (unsigned i = 0; i < ncopies; i++) {
                struct orion_bdev *t[2];
                unsigned nt;

                if (!have[i] || i == ref || memcmp(bufs[i], bufs[ref], len) == 0)
                        continue;
                nt = raid_member_targets(r, roles[i], moffs[i], t);
                for (unsigned j = 0; j < nt; j++)
                        raid_req(&q[nq++], r, t[j], ORION_OP_WRITE, bufs[ref], len, moffs[i], 0);
        }
        (void) raid_submit(r, q, nq);
        for (size_t i = 0; i < nq; i++)
                if (q[i].result < 0)
                        raid_member_failed(r, q[i].bdev, q[i].result);
        return 0;
}

/* ---- Level ops ---- */

static uint64_t raid1_size(const struct raid *r) {
        return r->data_size;
}

static int raid1_read(struct raid *r, void *buf, uint64_t len, uint64_t off) {
        unsigned roles[RAID_MAX_MEMBERS];
        uint64_t moffs[RAID_MAX_MEMBERS];
        size_t nq = 0;
        _cleanup_free_ struct orion_req *q = calloc(RAID_MAX_MEMBERS + 1, sizeof(*q));
        uint64_t pos = 0, span;
        unsigned nr = 0;

        if (!q)
                return -ENOMEM;
        for (unsigned i = 0; i < r->n; i++) {
                roles[i] = i;
                nr += r->m[i].dev && r->m[i].state == RAID_DEV_ACTIVE;
        }
        /* One contiguous piece per in-sync mirror, on rotating members: a big read uses every
         * mirror at once, a small one goes to the next member. */
        span = ALIGN_UP((len + MAX(nr, 1u) - 1) / MAX(nr, 1u), (uint64_t) 4096);
        while (pos < len) {
                uint64_t a = off + pos, l = MIN(span, len - pos);
                bool tried[RAID_MAX_MEMBERS] = {};
                int c;

                /* readable up to the piece's last byte (a rebuilding member is valid below its position) */
                for (unsigned i = 0; i < r->n; i++)
                        moffs[i] = a + l - 1;
                c = pick_copy(r, roles, moffs, r->n, tried);
                if (c < 0)
                        return -EIO;
                raid_req(&q[nq++], r, r->m[c].dev, ORION_OP_READ, (uint8_t *) buf + pos, l, a, 0);
                pos += l;
        }
        if (raid_submit(r, q, nq) == 0)
                return 0;
        for (size_t i = 0; i < nq; i++) {
                int ret;

                if (q[i].result == 0)
                        continue;
                raid_member_failed(r, q[i].bdev, q[i].result);
                /* again from the others, chunk by chunk (a rebuilding member may hold part) */
                for (uint64_t o = 0; o < q[i].len;) {
                        uint64_t a = q[i].off - r->data_offset + o,
                                 l = MIN(r->chunk - a % r->chunk, q[i].len - o);

                        for (unsigned j = 0; j < r->n; j++)
                                moffs[j] = a;
                        ret = mirror_read(r, roles, moffs, r->n, (uint8_t *) q[i].buf + o, l);
                        if (ret < 0)
                                return ret;
                        o += l;
                }
        }
        return 0;
}

static int raid1_write(struct raid *r, const void *buf, uint64_t len, uint64_t off, uint32_t flags) {
        struct orion_req q[2 * RAID_MAX_MEMBERS];
        uint64_t first = off / r->chunk, last = (off + len - 1) / r->chunk;
        size_t nq = 0;
        int ret;

        raid_lock_range(r, first, last);
        ret = bitmap_start_write(&r->bm, off, len);
        if (ret < 0)
                goto unlock;
        for (unsigned i = 0; i < r->n; i++) {
                struct orion_bdev *t[2];
                unsigned nt = raid_member_targets(r, i, off, t);

                for (unsigned j = 0; j < nt; j++)
                        raid_req(&q[nq++], r, t[j], ORION_OP_WRITE, (void *) buf, len, off, flags);
        }
        (void) raid_submit(r, q, nq);
        for (size_t i = 0; i < nq; i++)
                if (q[i].result < 0)
                        raid_member_failed(r, q[i].bdev, q[i].result);
        ret = raid_failed(r) ? -EIO : 0;
        bitmap_end_write(&r->bm, off, len);
unlock:
        raid_unlock_range(r, first, last);
        return ret;
}

static int raid1_sync_row(struct raid *r, uint64_t row, enum sync_mode mode, uint64_t *ret_mismatch) {
        unsigned roles[RAID_MAX_MEMBERS];
        uint64_t moffs[RAID_MAX_MEMBERS];
        int ret;

        for (unsigned i = 0; i < r->n; i++) {
                roles[i] = i;
                moffs[i] = row * r->chunk;
        }
        raid_lock_range(r, row, row);
        ret = mirror_sync(r, roles, moffs, r->n, r->chunk, mode, ret_mismatch);
        raid_unlock_range(r, row, row);
        return ret;
}

static bool raid1_survives(const struct raid *r, const bool *lost) {
        for (unsigned i = 0; i < r->n; i++)
                if (!lost[i])
                        return true;
        return false;
}

const struct raid_level raid1_level = {
        .level = 1,
        .array_size = raid1_size,
        .read = raid1_read,
        .write = raid1_write,
        .sync_row = raid1_sync_row,
        .survives = raid1_survives,
};
