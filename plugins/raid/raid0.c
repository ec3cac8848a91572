/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* RAID-0: chunks striped round-robin over the members; no redundancy, so a member error
 * is the request's error. */
#include <errno.h>
#include <stdlib.h>

#include "layout.h"
#include "raid.h"

static uint64_t raid0_size(const struct raid *r) {
        return r->data_size * r->n;
}

static int raid0_rw(struct raid *r, enum orion_op op, void *buf, uint64_t len, uint64_t off,
                    uint32_t flags) {
        size_t max = len / r->chunk + 2, nq = 0;
        struct orion_req stack_q[64];
        _cleanup_free_ struct orion_req *heap_q = max > ELEMENTSOF(stack_q) ? calloc(max, sizeof(*heap_q)) : NULL;
        struct orion_req *q = max > ELEMENTSOF(stack_q) ? heap_q : stack_q;
        uint64_t pos = 0;
        int ret;

        if (!q)
                return -ENOMEM;
        while (pos < len) {
                uint64_t a = off + pos, in = a % r->chunk, l = MIN(r->chunk - in, len - pos), row;
                unsigned m;

                layout_raid0(r->n, a / r->chunk, &m, &row);
                if (!r->m[m].dev || r->m[m].state != RAID_DEV_ACTIVE)
                        return -EIO;
                raid_req(&q[nq++], r, r->m[m].dev, op, (uint8_t *) buf + pos, l, row * r->chunk + in, flags);
                pos += l;
        }
        ret = raid_submit(r, q, nq);
        for (size_t i = 0; i < nq; i++)
                if (q[i].result < 0)
                        atomic_fetch_add(op == ORION_OP_READ ? &r->read_errors : &r->write_errors, 1);
        return ret;
}

static int raid0_read(struct raid *r, void *buf, uint64_t len, uint64_t off) {
        return raid0_rw(r, ORION_OP_READ, buf, len, off, 0);
}

static int raid0_write(struct raid *r, const void *buf, uint64_t len, uint64_t off, uint32_t flags) {
        return raid0_rw(r, ORION_OP_WRITE, (void *) buf, len, off, flags);
}

static bool raid0_survives(const struct raid *r, const bool *lost) {
        for (unsigned i = 0; i < r->n; i++)
                if (lost[i])
                        return false;
        return true;
}

const struct raid_level raid0_level = {
        .level = 0,
        .array_size = raid0_size,
        .read = raid0_read,
        .write = raid0_write,
        .survives = raid0_survives,
};
