/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* `passthru` layer: forwards every operation to its child unchanged. It is the template for
 * new layers (copy this directory, rename, then change the ops that need changing). */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "orion/plugin.h"

/* Per-node state: the core allocates instance_size bytes, zeroed. Never use file-scope state:
 * one plugin serves many nodes at once. */
struct passthru {
        struct orion_bdev *child;
        atomic_uint_fast64_t forwarded; /* requests passed down (for the stats op) */
};

/* ---- Data path: one function per op, each reaching the child through the core ------------- */
static int passthru_pread(struct orion_bdev *b, void *buf, uint64_t len, uint64_t off, uint32_t flags) {
        struct passthru *p = orion_bdev_priv(b);

        atomic_fetch_add(&p->forwarded, 1);
        return orion_bdev_pread(p->child, buf, len, off, flags);
}

static int passthru_pwrite(struct orion_bdev *b, const void *buf, uint64_t len, uint64_t off, uint32_t flags) {
        struct passthru *p = orion_bdev_priv(b);

        atomic_fetch_add(&p->forwarded, 1);
        return orion_bdev_pwrite(p->child, buf, len, off, flags);
}

static int passthru_flush(struct orion_bdev *b, uint32_t flags) {
        struct passthru *p = orion_bdev_priv(b);

        atomic_fetch_add(&p->forwarded, 1);
        return orion_bdev_flush(p->child, flags);
}

static int passthru_discard(struct orion_bdev *b, uint64_t len, uint64_t off, uint32_t flags) {
        struct passthru *p = orion_bdev_priv(b);

        atomic_fetch_add(&p->forwarded, 1);
        return orion_bdev_discard(p->child, len, off, flags);
}

static int passthru_write_zeroes(struct orion_bdev *b, uint64_t len, uint64_t off, uint32_t flags) {
        struct passthru *p = orion_bdev_priv(b);

        atomic_fetch_add(&p->forwarded, 1);
        return orion_bdev_write_zeroes(p->child, len, off, flags);
}

static int passthru_block_status(struct orion_bdev *b, uint64_t len, uint64_t off, struct orion_extents *ext) {
        struct passthru *p = orion_bdev_priv(b);

        return orion_bdev_block_status(p->child, len, off, ext);
}

/* A batch stays a batch: retarget it at the child so that a child with a native submit (the
 * file leaf) still sees one submission. */
static int passthru_submit(struct orion_bdev *b, struct orion_req *reqs, size_t n) {
        struct passthru *p = orion_bdev_priv(b);
        struct orion_req *down = calloc(n, sizeof(*down));
        int r;

        if (!down)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                down[i] = reqs[i];
                down[i].bdev = p->child;
        }
        atomic_fetch_add(&p->forwarded, n);
        r = orion_submit(down, n);
        for (size_t i = 0; i < n; i++)
                reqs[i].result = down[i].result;
        free(down);
        return r;
}

static void passthru_stats(struct orion_bdev *b, struct json_object *sink) {
        struct passthru *p = orion_bdev_priv(b);

        orion_stats_put(sink, "forwarded", atomic_load(&p->forwarded));
}

/* ---- Lifecycle ----------------------------------------------------------------------------- */
static int passthru_open(struct orion_bdev *b, const struct orion_params *params, struct orion_error *err) {
        struct passthru *p = orion_bdev_priv(b);

        p->child = orion_param_node(params, "child");
        if (!p->child)
                return orion_error_set(err, EINVAL, "passthru: child= is required");
        /* Same geometry and capabilities as the child: a layer that changes the size (a
         * superblock) or the semantics (a cache) sets its own here. */
        if (orion_bdev_set_geometry(b, orion_bdev_geometry(p->child)) < 0)
                return orion_error_set(err, EINVAL, "passthru: cannot take the geometry of '%s'",
                                       orion_bdev_name(p->child));
        orion_bdev_set_caps(b, orion_bdev_caps(p->child));
        return 0;
}

/* Nothing to release: the core releases the child after close. */
static void passthru_close(struct orion_bdev *b) {
}

static const struct orion_param passthru_params[] = {
        { .name = "child", .type = ORION_PARAM_NODE, .help = "The node every request is forwarded to." },
        {},
};

static const struct orion_bdev_ops passthru_ops = {
        .pread = passthru_pread,
        .pwrite = passthru_pwrite,
        .flush = passthru_flush,
        .discard = passthru_discard,
        .write_zeroes = passthru_write_zeroes,
        .block_status = passthru_block_status,
        .submit = passthru_submit,
        .stats = passthru_stats,
        .close = passthru_close,
};

ORION_PLUGIN(.name = "passthru", .description = "Forwards every request to its child (template for new layers)",
             .params = passthru_params, .instance_size = sizeof(struct passthru), .ops = &passthru_ops,
             .open = passthru_open);
