/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* `null` leaf: reads zeroes, discards writes. For benchmarks of the layers and exports above it. */
#include <errno.h>
#include <string.h>

#include "orion/plugin.h"

static int null_pread(struct orion_bdev *b, void *buf, uint64_t len, uint64_t off, uint32_t flags) {
        memset(buf, 0, len);
        return 0;
}

static int null_pwrite(struct orion_bdev *b, const void *buf, uint64_t len, uint64_t off, uint32_t flags) {
        return 0;
}

static int null_zero(struct orion_bdev *b, uint64_t len, uint64_t off, uint32_t flags) {
        return 0;
}

static int null_flush(struct orion_bdev *b, uint32_t flags) {
        return 0;
}

static int null_block_status(struct orion_bdev *b, uint64_t len, uint64_t off, struct orion_extents *ext) {
        int r = orion_extents_add(ext, off, len, ORION_EXTENT_HOLE | ORION_EXTENT_ZERO);
        return r == -E2BIG ? 0 : r;
}

static int null_open(struct orion_bdev *b, const struct orion_params *p, struct orion_error *err) {
        uint64_t size = orion_param_size(p, "size");
        uint64_t bs = orion_param_size(p, "block-size");
        if (bs != 512 && bs != 4096)
                return orion_error_set(err, EINVAL, "block-size must be 512 or 4096");
        if (size % bs)
                return orion_error_set(err, EINVAL, "size must be a multiple of %llu", (unsigned long long) bs);
        struct orion_geometry g = { .size = size, .block_size = (uint32_t) bs };
        int r = orion_bdev_set_geometry(b, &g);
        if (r < 0)
                return orion_error_set(err, -r, "invalid geometry");
        orion_bdev_set_caps(b, ORION_CAP_FUA | ORION_CAP_DISCARD | ORION_CAP_WRITE_ZEROES | ORION_CAP_FAST_ZERO |
                                       ORION_CAP_BLOCK_STATUS | ORION_CAP_MULTI_CONN);
        return 0;
}

static const struct orion_param null_params[] = {
        { "size", ORION_PARAM_SIZE, NULL, "Size reported to clients." },
        { "block-size", ORION_PARAM_SIZE, "512", "Logical block size: 512 or 4096." },
        { NULL },
};

static const struct orion_bdev_ops null_ops = {
        .pread = null_pread,
        .pwrite = null_pwrite,
        .flush = null_flush,
        .discard = null_zero,
        .write_zeroes = null_zero,
        .block_status = null_block_status,
};

ORION_BUILTIN_TYPE(orion_type_null, .name = "null", .description = "Reads zeroes and discards writes.",
                   .params = null_params, .ops = &null_ops, .open = null_open);
