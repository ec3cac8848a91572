/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Shared engine of the parity levels (raid5: P, raid6: P+Q) on md's left-symmetric layout.
 * A row is one chunk per member; writes take the row's stripe lock, then either write a full
 * stripe without reading, or pick read-modify-write or reconstruct-write, whichever reads
 * less; rows with an unreadable member reconstruct it. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "layout.h"
#include "parity.h"
#include "raid.h"
#include "stripe.h"

#define MAXR (RAID_MAX_MEMBERS + 2)

static unsigned np_of(const struct raid *r) {
        return r->ops->nparity;
}

uint64_t stripe_size(const struct raid *r) {
        return r->data_size * (r->n - np_of(r));
}

bool stripe_survives(const struct raid *r, const bool *lost) {
        unsigned nlost = 0;

        for (unsigned i = 0; i < r->n; i++)
                nlost += lost[i];
        return nlost <= np_of(r);
}

static unsigned role_member(const struct raid *r, uint64_t row, unsigned role) {
        unsigned np = np_of(r), k = r->n - np;

        return role < k ? layout_data_member(r->n, np, row, role)
                        : layout_parity_member(r->n, np, row, role - k);
}

/* ---- Row state for one write or sync ---- */
struct row {
        uint64_t row;
        uint32_t lo, hi;    /* column range within the chunk */
        uint64_t a, e;      /* bytes [a, e) of the row's data being written */
        const uint8_t *src; /* data for byte a */
        uint8_t *old[MAXR]; /* role content over [lo, hi) as read or reconstructed */
        uint8_t *neu[MAXR]; /* new content over [lo, hi): data from src or merged, parity */
        bool readable[MAXR], need[MAXR];
        unsigned nlost;
        unsigned lost[MAXR];
        bool recon; /* lost roles must be rebuilt from the survivors */
        enum { ROW_FULL, ROW_RMW, ROW_RCW } kind;
};

static void touch(const struct raid *r, const struct row *w, unsigned i, uint64_t *s, uint64_t *e) {
        uint64_t c0 = (uint64_t) i * r->chunk, c1 = c0 + r->chunk;

        *s = MAX(w->a, c0);
        *e = MIN(w->e, c1);
        if (*s >= *e) {
                *s = *e = 0;
                return;
        }
        *s -= c0;
        *e -= c0;
}

/* Decide what to read. Called with the stripe lock held. Returns -EIO if too many are lost. */
static int row_plan(struct raid *r, struct row *w) {
        unsigned np = np_of(r), k = r->n - np, ntouched = 0, nfull = 0;
        uint64_t moff = w->row * r->chunk;
        bool lost_partial = false;

        w->nlost = 0;
        w->lo = r->chunk;
        w->hi = 0;
        for (unsigned i = 0; i < k; i++) {
                uint64_t s, e;

                touch(r, w, i, &s, &e);
                if (s < e) {
                        w->lo = (uint32_t) MIN(w->lo, s);
                        w->hi = (uint32_t) MAX(w->hi, e);
                }
        }
        for (unsigned i = 0; i < k + np; i++) {
                w->readable[i] = raid_member_readable(r, role_member(r, w->row, i), moff);
                w->need[i] = false;
                if (!w->readable[i])
                        w->lost[w->nlost++] = i;
        }
        if (w->nlost > np)
                return -EIO;
        for (unsigned i = 0; i < k; i++) {
                uint64_t s, e;

                touch(r, w, i, &s, &e);
                ntouched += s < e;
                if (s <= w->lo && e >= w->hi && s < e)
                        nfull++;
                else if (!w->readable[i])
                        lost_partial = true;
        }
        w->recon = false;
        if (nfull == k) {
                w->kind = ROW_FULL;
                return 0;
        }
        if (lost_partial) {
                /* a data block we need is gone: read every survivor and reconstruct */
                w->kind = ROW_RCW;
                w->recon = true;
                for (unsigned i = 0; i < k + np; i++)
                        w->need[i] = w->readable[i];
                return 0;
        }
        if (w->nlost == 0 && ntouched + np < k - nfull) {
                w->kind = ROW_RMW;
                for (unsigned i = 0; i < k; i++) {
                        uint64_t s, e;

                        touch(r, w, i, &s, &e);
                        w->need[i] = s < e;
                }
                for (unsigned i = k; i < k + np; i++)
                        w->need[i] = true;
                return 0;
        }
        w->kind = ROW_RCW;
        for (unsigned i = 0; i < k; i++) {
                uint64_t s, e;

                touch(r, w, i, &s, &e);
                w->need[i] = !(s <= w->lo && e >= w->hi && s < e);
        }
        return 0;
}

/* Buffer bytes a planned row needs: a full stripe only its parity, others the old and new
 * content of every role over [lo, hi). */
static size_t row_bytes(const struct raid *r, const struct row *w) {
        size_t width = w->hi - w->lo;

        return w->kind == ROW_FULL ? np_of(r) * width : 2 * r->n * width;
}

/* Carve the row's buffers out of mem; returns the bytes used. */
static size_t row_carve(struct raid *r, struct row *w, uint8_t *mem) {
        unsigned n = r->n, k = n - np_of(r);
        size_t width = w->hi - w->lo;

        memset(w->old, 0, sizeof(w->old));
        memset(w->neu, 0, sizeof(w->neu));
        if (w->kind == ROW_FULL) {
                for (unsigned i = k; i < n; i++)
                        w->neu[i] = mem + (i - k) * width;
        } else
                for (unsigned i = 0; i < n; i++) {
                        w->old[i] = mem + i * width;
                        w->neu[i] = mem + (n + i) * width;
                }
        return row_bytes(r, w);
}

/* Build new content of every role over [lo, hi) once the needed reads are in. */
static int row_compute(struct raid *r, struct row *w) {
        unsigned np = np_of(r), k = r->n - np;
        uint64_t width = w->hi - w->lo;
        uint8_t *data[MAXR] = {};

        if (w->recon) {
                int ret = parity_recover(k, np, width, w->old, w->lost, w->nlost);
                if (ret < 0)
                        return ret;
        }
        for (unsigned i = 0; i < k; i++) {
                uint64_t s, e;

                touch(r, w, i, &s, &e);
                if (s <= w->lo && e >= w->hi && s < e) {
                        /* fully overwritten: straight from the caller's buffer, no copy */
                        data[i] = (uint8_t *) w->src + (i * (uint64_t) r->chunk + w->lo - w->a);
                        continue;
                } else if (w->kind == ROW_RMW && s >= e) {
                        continue; /* untouched: no delta */
                } else {
                        memcpy(w->neu[i], w->old[i], width);
                        if (s < e)
                                memcpy(w->neu[i] + (s - w->lo),
                                       w->src + (i * (uint64_t) r->chunk + s - w->a), e - s);
                }
                data[i] = w->neu[i];
        }
        if (w->kind == ROW_RMW) {
                memcpy(w->neu[k], w->old[k], width);
                if (np == 2)
                        memcpy(w->neu[k + 1], w->old[k + 1], width);
                for (unsigned i = 0; i < k; i++) {
                        uint64_t s, e;

                        touch(r, w, i, &s, &e);
                        if (s < e)
                                parity_update(k, i, width, w->old[i], data[i], w->neu[k],
                                              np == 2 ? w->neu[k + 1] : NULL);
                }
                return 0;
        }
        if (np == 1)
                parity_gen_p(k, width, data, w->neu[k]);
        else
                parity_gen_pq(k, width, data, w->neu[k], w->neu[k + 1]);
        return 0;
}

/* ---- Request arrays ---- */
struct reqv {
        struct orion_req *q;
        size_t n, cap;
        bool on_stack; /* q is the caller's array: copy it when growing */
};

static struct orion_req *reqv_add(struct reqv *v) {
        if (v->n == v->cap) {
                size_t cap = v->cap ? 2 * v->cap : 64;
                struct orion_req *q = v->on_stack ? malloc(cap * sizeof(*q)) : realloc(v->q, cap * sizeof(*q));

                if (!q)
                        return NULL;
                if (v->on_stack)
                        memcpy(q, v->q, v->n * sizeof(*q));
                v->on_stack = false;
                v->q = q;
                v->cap = cap;
        }
        return &v->q[v->n++];
}

/* Reads the plan needs. Returns the number of failed reads (members marked faulty). */
static int rows_read(struct raid *r, struct row *rows, size_t nrows, struct reqv *v) {
        unsigned np = np_of(r), k = r->n - np;
        int failed = 0;

        v->n = 0;
        for (size_t j = 0; j < nrows; j++) {
                struct row *w = &rows[j];

                for (unsigned i = 0; i < k + np; i++) {
                        struct orion_req *q;

                        if (!w->need[i])
                                continue;
                        q = reqv_add(v);
                        if (!q)
                                return -ENOMEM;
                        raid_req(q, r, r->m[role_member(r, w->row, i)].dev, ORION_OP_READ, w->old[i],
                                 w->hi - w->lo, w->row * r->chunk + w->lo, 0);
                }
        }
        if (raid_submit(r, v->q, v->n) == 0)
                return 0;
        for (size_t i = 0; i < v->n; i++)
                if (v->q[i].result < 0) {
                        raid_member_failed(r, v->q[i].bdev, v->q[i].result);
                        failed++;
                }
        return failed;
}

static int rows_write(struct raid *r, struct row *rows, size_t nrows, struct reqv *v, uint32_t flags) {
        unsigned np = np_of(r), k = r->n - np;

        v->n = 0;
        for (size_t j = 0; j < nrows; j++) {
                struct row *w = &rows[j];
                uint64_t moff = w->row * r->chunk;

                for (unsigned i = 0; i < k + np; i++) {
                        struct orion_bdev *t[2];
                        unsigned nt = raid_member_targets(r, role_member(r, w->row, i), moff, t);
                        uint64_t s = w->lo, e = w->hi;
                        const uint8_t *buf;

                        if (i < k) {
                                touch(r, w, i, &s, &e);
                                if (s >= e)
                                        continue;
                                buf = w->src + (i * (uint64_t) r->chunk + s - w->a);
                        } else
                                buf = w->neu[i];
                        for (unsigned x = 0; x < nt; x++) {
                                struct orion_req *q = reqv_add(v);

                                if (!q)
                                        return -ENOMEM;
                                raid_req(q, r, t[x], ORION_OP_WRITE, (void *) buf, e - s, moff + s, flags);
                        }
                }
        }
        (void) raid_submit(r, v->q, v->n);
        for (size_t i = 0; i < v->n; i++)
                if (v->q[i].result < 0)
                        raid_member_failed(r, v->q[i].bdev, v->q[i].result);
        return raid_failed(r) ? -EIO : 0;
}

static void count_row(struct raid *r, const struct row *w) {
        if (w->kind == ROW_FULL)
                atomic_fetch_add(&r->full_stripe_writes, 1);
        else if (w->kind == ROW_RMW)
                atomic_fetch_add(&r->rmw_writes, 1);
        else
                atomic_fetch_add(&r->rcw_writes, 1);
}

/* Plan every row and give each its buffers from one scratch allocation (*mem, *cap). */
static int rows_prepare(struct raid *r, struct row *rows, size_t nrows, uint8_t **mem, size_t *cap) {
        size_t need = 0, used = 0;
        int ret;

        for (size_t j = 0; j < nrows; j++) {
                ret = row_plan(r, &rows[j]);
                if (ret < 0)
                        return ret;
                need += row_bytes(r, &rows[j]);
        }
        if (need > *cap) {
                raid_scratch_put(r, *mem, *cap);
                *mem = raid_scratch_get(r, need, cap);
                if (!*mem) {
                        *cap = 0;
                        return -ENOMEM;
                }
        }
        for (size_t j = 0; j < nrows; j++)
                used += row_carve(r, &rows[j], *mem + used);
        return 0;
}

#define STACK_ROWS 8

int stripe_write(struct raid *r, const void *buf, uint64_t len, uint64_t off, uint32_t flags) {
        unsigned k = r->n - np_of(r);
        uint64_t rowbytes = (uint64_t) k * r->chunk;
        uint64_t first = off / rowbytes, last = (off + len - 1) / rowbytes;
        size_t nrows = last - first + 1, cap = 0;
        struct row stack_rows[STACK_ROWS];
        struct orion_req stack_q[128]; /* grows onto the heap when needed */
        _cleanup_free_ struct row *heap_rows = nrows > STACK_ROWS ? calloc(nrows, sizeof(struct row)) : NULL;
        struct row *rows = nrows > STACK_ROWS ? heap_rows : stack_rows;
        struct reqv v = {.q = stack_q, .cap = ELEMENTSOF(stack_q), .on_stack = true};
        uint8_t *mem = NULL;
        bool per_row;
        int ret = 0;

        if (!rows)
                return -ENOMEM;
        for (size_t j = 0; j < nrows; j++) {
                struct row *w = &rows[j];
                uint64_t rs = (first + j) * rowbytes;

                *w = (struct row){.row = first + j};
                w->a = MAX(off, rs) - rs;
                w->e = MIN(off + len, rs + rowbytes) - rs;
                w->src = (const uint8_t *) buf + (rs + w->a - off);
        }
        raid_lock_range(r, first, last);
        ret = bitmap_start_write(&r->bm, first * r->chunk, nrows * r->chunk);
        if (ret < 0)
                goto unlock;
        /* A failed read marks its member faulty and changes the plan: start over. */
        for (unsigned attempt = 0;; attempt++) {
                ret = rows_prepare(r, rows, nrows, &mem, &cap);
                if (ret < 0)
                        break;
                ret = rows_read(r, rows, nrows, &v);
                if (ret == 0 || ret < 0 || attempt > r->n)
                        break;
                ret = 0;
        }
        if (ret > 0)
                ret = -EIO;
        /* Members that compute (inline batches): write each row right after its parity, while
         * its data is still in cache. Members that wait: one parallel batch for all rows. */
        per_row = !atomic_load(&r->parallel);
        for (size_t j = 0, done = 0; j < nrows && ret >= 0; j++) {
                ret = row_compute(r, &rows[j]);
                count_row(r, &rows[j]);
                if (ret >= 0 && (per_row || j == nrows - 1)) {
                        ret = rows_write(r, rows + done, j + 1 - done, &v, flags);
                        done = j + 1;
                }
        }
        bitmap_end_write(&r->bm, first * r->chunk, nrows * r->chunk);
unlock:
        raid_unlock_range(r, first, last);
        raid_scratch_put(r, mem, cap);
        if (!v.on_stack)
                free(v.q);
        return ret;
}

/* Read role `role` of a row over [s, e) by reconstruction from the survivors. Stripe lock held. */
static int reconstruct(struct raid *r, uint64_t row, unsigned role, uint64_t s, uint64_t e, uint8_t *out) {
        unsigned np = np_of(r), k = r->n - np;
        uint64_t width = e - s, moff = row * r->chunk;
        size_t cap;
        uint8_t *mem = raid_scratch_get(r, (k + np) * width, &cap);
        int ret = -EIO;

        if (!mem)
                return -ENOMEM;
        for (unsigned attempt = 0; attempt <= r->n; attempt++) {
                struct orion_req q[MAXR];
                uint8_t *blk[MAXR];
                unsigned lost[MAXR], nlost = 0;
                size_t nq = 0;

                for (unsigned i = 0; i < k + np; i++) {
                        blk[i] = mem + i * width;
                        if (raid_member_readable(r, role_member(r, row, i), moff))
                                raid_req(&q[nq++], r, r->m[role_member(r, row, i)].dev, ORION_OP_READ,
                                         blk[i], width, moff + s, 0);
                        else
                                lost[nlost++] = i;
                }
                if (nlost > np)
                        break;
                if (raid_submit(r, q, nq) < 0) {
                        for (size_t i = 0; i < nq; i++)
                                if (q[i].result < 0)
                                        raid_member_failed(r, q[i].bdev, q[i].result);
                        continue;
                }
                ret = nlost > 0 ? parity_recover(k, np, width, blk, lost, nlost) : 0;
                if (ret == 0) {
                        memcpy(out, blk[role], width);
                        atomic_fetch_add(&r->degraded_reads, 1);
                }
                break;
        }
        raid_scratch_put(r, mem, cap);
        return ret;
}

#define STACK_REQS 64

int stripe_read(struct raid *r, void *buf, uint64_t len, uint64_t off) {
        unsigned np = np_of(r), k = r->n - np;
        uint64_t pos = 0;
        size_t max = len / r->chunk + 2, nq = 0, nd = 0;
        struct orion_req stack_q[2 * STACK_REQS], *q = stack_q, *d;
        bool stack_deg[STACK_REQS], *deg = stack_deg;
        _cleanup_free_ struct orion_req *heap_q = NULL;
        _cleanup_free_ bool *heap_deg = NULL;

        if (max > STACK_REQS) {
                q = heap_q = calloc(2 * max, sizeof(*q));
                deg = heap_deg = calloc(max, sizeof(*deg));
                if (!q || !deg)
                        return -ENOMEM;
        }
        d = q + max; /* the direct reads, submitted together */
        while (pos < len) {
                uint64_t a = off + pos, c = a / r->chunk, in = a % r->chunk,
                         l = MIN(r->chunk - in, len - pos);
                uint64_t row = c / k;
                unsigned m = layout_data_member(r->n, np, row, (unsigned) (c % k));

                raid_req(&q[nq], r, r->m[m].dev, ORION_OP_READ, (uint8_t *) buf + pos, l,
                         row * r->chunk + in, 0);
                deg[nq] = !raid_member_readable(r, m, row * r->chunk);
                if (deg[nq])
                        q[nq].result = -EIO;
                else
                        d[nd++] = q[nq];
                nq++;
                pos += l;
        }
        (void) raid_submit(r, d, nd);
        for (size_t i = 0, j = 0; i < nq; i++)
                if (!deg[i]) {
                        q[i].result = d[j++].result;
                        if (q[i].result < 0)
                                raid_member_failed(r, q[i].bdev, q[i].result);
                }
        for (size_t i = 0; i < nq; i++) {
                uint64_t a, c, row, in;
                int ret;

                if (q[i].result == 0)
                        continue;
                a = off + (uint64_t) ((uint8_t *) q[i].buf - (uint8_t *) buf);
                c = a / r->chunk;
                row = c / k;
                in = a % r->chunk;
                raid_lock_range(r, row, row);
                ret = reconstruct(r, row, (unsigned) (c % k), in, in + q[i].len, q[i].buf);
                raid_unlock_range(r, row, row);
                if (ret < 0)
                        return ret;
        }
        return 0;
}

/* ---- Background sync of one row ---- */

/* Scrub compare: count mismatching sectors, fix them under repair/resync. */
static uint64_t row_check(struct raid *r, uint8_t **blk, uint8_t *p2, uint8_t *q2, enum sync_mode mode,
                          bool *dirty) {
        unsigned np = np_of(r), k = r->n - np;
        uint64_t bad = 0;

        if (np == 1)
                parity_gen_p(k, r->chunk, blk, p2);
        else
                parity_gen_pq(k, r->chunk, blk, p2, q2);
        for (uint64_t o = 0; o < r->chunk; o += 512) {
                bool pbad = memcmp(p2 + o, blk[k] + o, 512) != 0;
                bool qbad = np == 2 && memcmp(q2 + o, blk[k + 1] + o, 512) != 0;
                int who;

                if (!pbad && !qbad)
                        continue;
                bad++;
                if (mode == SYNC_CHECK)
                        continue;
                who = -2;
                if (np == 2 && mode == SYNC_REPAIR) {
                        uint8_t dp[512], dq[512];

                        for (unsigned x = 0; x < 512; x++) {
                                dp[x] = p2[o + x] ^ blk[k][o + x];
                                dq[x] = q2[o + x] ^ blk[k + 1][o + x];
                        }
                        who = parity_locate(k, 512, dp, dq);
                        if (who >= 0 && who < (int) k) {
                                /* one data block is wrong: P's difference is its error */
                                for (unsigned x = 0; x < 512; x++)
                                        blk[who][o + x] ^= dp[x];
                                dirty[who] = true;
                                continue;
                        }
                }
                memcpy(blk[k] + o, p2 + o, 512);
                dirty[k] = true;
                if (np == 2) {
                        memcpy(blk[k + 1] + o, q2 + o, 512);
                        dirty[k + 1] = true;
                }
        }
        return bad;
}

int stripe_sync_row(struct raid *r, uint64_t row, enum sync_mode mode, uint64_t *ret_mismatch) {
        unsigned np = np_of(r), k = r->n - np;
        uint64_t moff = row * r->chunk, C = r->chunk;
        size_t cap;
        uint8_t *mem = raid_scratch_get(r, (k + np + 2) * C, &cap);
        uint8_t *blk[MAXR];
        bool dirty[MAXR] = {};
        int ret = 0;

        *ret_mismatch = 0;
        if (!mem)
                return -ENOMEM;
        for (unsigned i = 0; i < k + np; i++)
                blk[i] = mem + i * C;
        raid_lock_range(r, row, row);
        for (unsigned attempt = 0;; attempt++) {
                struct orion_req q[MAXR];
                unsigned lost[MAXR], nlost = 0;
                size_t nq = 0;

                for (unsigned i = 0; i < k + np; i++) {
                        unsigned m = role_member(r, row, i);

                        if (raid_member_readable(r, m, moff))
                                raid_req(&q[nq++], r, r->m[m].dev, ORION_OP_READ, blk[i], C, moff, 0);
                        else
                                lost[nlost++] = i;
                }
                if (nlost > np) {
                        ret = -EIO;
                        goto out;
                }
                if (raid_submit(r, q, nq) < 0) {
                        for (size_t i = 0; i < nq; i++)
                                if (q[i].result < 0)
                                        raid_member_failed(r, q[i].bdev, q[i].result);
                        if (attempt > r->n) {
                                ret = -EIO;
                                goto out;
                        }
                        continue;
                }
                if (nlost > 0) {
                        ret = parity_recover(k, np, C, blk, lost, nlost);
                        if (ret < 0)
                                goto out;
                } else if (mode != SYNC_REBUILD)
                        *ret_mismatch =
                                row_check(r, blk, mem + (k + np) * C, mem + (k + np + 1) * C, mode, dirty);
                break;
        }
        {
                struct orion_req q[2 * MAXR];
                size_t nq = 0;

                for (unsigned i = 0; i < k + np; i++) {
                        struct orion_bdev *t[2];
                        unsigned m = role_member(r, row, i);
                        unsigned nt = mode == SYNC_REBUILD ? raid_rebuild_targets(r, m, moff, t)
                                      : dirty[i]           ? raid_member_targets(r, m, moff, t)
                                                           : 0;

                        for (unsigned x = 0; x < nt; x++)
                                raid_req(&q[nq++], r, t[x], ORION_OP_WRITE, blk[i], C, moff, 0);
                }
                (void) raid_submit(r, q, nq);
                for (size_t i = 0; i < nq; i++)
                        if (q[i].result < 0)
                                raid_member_failed(r, q[i].bdev, q[i].result);
        }
out:
        raid_unlock_range(r, row, row);
        raid_scratch_put(r, mem, cap);
        return ret;
}
