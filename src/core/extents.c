/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Block-status collector: ascending, contiguous extents with adjacent equal ones merged. */
#include <errno.h>
#include <stdlib.h>

#include "core/core.h"

struct ext {
        uint64_t off, len;
        uint32_t flags;
};

struct orion_extents {
        uint64_t start;  /* first offset asked for */
        uint64_t next;   /* where the next extent must begin */
        size_t n, cap, max;
        struct ext *e;
};

struct orion_extents *orion_extents_new(uint64_t offset, uint64_t max_extents) {
        struct orion_extents *x = calloc(1, sizeof *x);
        if (!x)
                return NULL;
        x->start = x->next = offset;
        x->max = max_extents ? max_extents : 1;
        return x;
}

struct orion_extents *orion_extents_free(struct orion_extents *x) {
        if (x) {
                free(x->e);
                free(x);
        }
        return NULL;
}

int orion_extents_add(struct orion_extents *x, uint64_t off, uint64_t len, uint32_t flags) {
        if (len == 0)
                return 0;
        if (off + len < off)
                return -EINVAL;
        /* Clip what lies before the expected offset (a node may answer from an aligned start). */
        if (off < x->next) {
                if (off + len <= x->next)
                        return 0;
                len -= x->next - off;
                off = x->next;
        }
        if (off != x->next)
                return -EINVAL; /* a gap: node bug */
        flags &= ORION_EXTENT_HOLE | ORION_EXTENT_ZERO;
        if (x->n && x->e[x->n - 1].flags == flags) {
                x->e[x->n - 1].len += len;
                x->next += len;
                return 0;
        }
        if (x->n >= x->max)
                return -E2BIG;
        if (x->n == x->cap) {
                size_t cap = x->cap ? x->cap * 2 : 16;
                struct ext *e = realloc(x->e, cap * sizeof *e);
                if (!e)
                        return -ENOMEM;
                x->e = e;
                x->cap = cap;
        }
        x->e[x->n++] = (struct ext){ off, len, flags };
        x->next += len;
        return 0;
}

size_t orion_extents_count(const struct orion_extents *x) {
        return x->n;
}

bool orion_extents_get(const struct orion_extents *x, size_t i, uint64_t *ret_off, uint64_t *ret_len,
                       uint32_t *ret_flags) {
        if (i >= x->n)
                return false;
        if (ret_off)
                *ret_off = x->e[i].off;
        if (ret_len)
                *ret_len = x->e[i].len;
        if (ret_flags)
                *ret_flags = x->e[i].flags;
        return true;
}
