/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The block-device contract every node implements, and the calls a layer uses to reach its children. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "orion/log.h"

#ifdef __cplusplus
extern "C" {
#endif

struct json_object;
struct orion_bdev;   /* a node; opaque, owned by the core */
struct orion_extents; /* block-status collector, owned by the core */

/* ---- Geometry ---------------------------------------------------------------------------- */
struct orion_geometry {
        uint64_t size;       /* bytes, a multiple of block_size */
        uint32_t block_size; /* logical block: 512 or 4096; every request reaching the node is aligned to it */
        uint32_t pref_size;  /* preferred request size (power of two >= block_size); 0 = block_size */
        uint32_t max_size;   /* largest request the node accepts; 0 = no limit. The core splits bigger ones. */
};

/* ---- Capabilities (orion_bdev_set_caps) -------------------------------------------------- */
enum {
        ORION_CAP_READONLY = 1u << 0,     /* writes, discards and zeroes fail with -EROFS */
        ORION_CAP_FLUSH = 1u << 1,        /* the node caches: flush does real work */
        ORION_CAP_FUA = 1u << 2,          /* native FUA (else the core emulates it with write + flush) */
        ORION_CAP_DISCARD = 1u << 3,      /* .discard frees space */
        ORION_CAP_WRITE_ZEROES = 1u << 4, /* .write_zeroes is native (else the core writes zero buffers) */
        ORION_CAP_FAST_ZERO = 1u << 5,    /* write_zeroes with ORION_FAST_ZERO can succeed */
        ORION_CAP_BLOCK_STATUS = 1u << 6, /* .block_status reports holes/zeroes (else: all data) */
        ORION_CAP_MULTI_CONN = 1u << 7,   /* a flush on any caller covers writes from every caller */
        ORION_CAP_ROTATIONAL = 1u << 8,   /* backed by spinning media (hint only) */
};

/* ---- Request flags ----------------------------------------------------------------------- */
enum {
        ORION_FUA = 1u << 0,       /* pwrite/write_zeroes/discard: durable before returning */
        ORION_NO_HOLE = 1u << 1,   /* write_zeroes: keep the range allocated (no hole punching) */
        ORION_FAST_ZERO = 1u << 2, /* write_zeroes: fail with -ENOTSUP unless faster than writing zeroes */
};

/* ---- Block status ------------------------------------------------------------------------ */
enum {
        ORION_EXTENT_HOLE = 1u << 0, /* not allocated (NBD_STATE_HOLE) */
        ORION_EXTENT_ZERO = 1u << 1, /* reads as zeroes (NBD_STATE_ZERO) */
};

/* Append an extent; extents must be added in ascending, contiguous order starting at the
 * requested offset. Adjacent extents with equal flags are merged. Returns 0 or -errno
 * (-E2BIG once the collector is full: stop and return 0, the caller has enough). */
int orion_extents_add(struct orion_extents *ext, uint64_t offset, uint64_t length, uint32_t flags);

/* ---- Batched requests -------------------------------------------------------------------- */
enum orion_op {
        ORION_OP_READ,
        ORION_OP_WRITE,
        ORION_OP_FLUSH,
        ORION_OP_DISCARD,
        ORION_OP_WRITE_ZEROES,
        _ORION_OP_MAX,
        _ORION_OP_INVALID = -22,
};

struct orion_req {
        struct orion_bdev *bdev; /* target node (any node: requests of one batch may differ) */
        enum orion_op op;
        uint32_t flags;          /* ORION_FUA, ... */
        void *buf;               /* READ: filled; WRITE: source (const) */
        uint64_t len;
        uint64_t off;
        int result;              /* OUT: 0 or -errno */
};

/* An asynchronous request (orion_submit_async): req as above; done(a) is called exactly once
 * when req.result is set, from any thread, possibly before the submitting call returns. done
 * must not block (it may run on a node's I/O thread); priv is the caller's. */
struct orion_areq {
        struct orion_req req;
        void (*done)(struct orion_areq *a);
        void *priv;
};

/* ---- Per-node operations ----------------------------------------------------------------
 * Every op returns 0 (or a count where stated) on success, a negative errno on failure, and may
 * be called from many threads at once: the node protects its own state. Requests are within
 * the node's size and aligned to its block_size, and len <= max_size (the core checks).
 * An op left NULL gets the core's default, stated per op. */
struct orion_bdev_ops {
        /* Required. */
        int (*pread)(struct orion_bdev *b, void *buf, uint64_t len, uint64_t off, uint32_t flags);
        /* Optional zero-copy read (see orion_bdev_read_view). Call fn for consecutive pieces
         * covering [off, off+len) in order, data pointing into the node's own memory (NULL: the
         * piece reads as zeroes), valid only during that call; piece boundaries are the node's
         * choice. The node holds whatever keeps data alive and unchanged by discard/zeroing for
         * the call (the memory leaf: its read lock), so fn must not send requests to this node.
         * fn's negative return stops the walk and is returned. Requests are aligned and within
         * max_size as for pread. Default: pread into a buffer. */
        int (*read_view)(struct orion_bdev *b, uint64_t len, uint64_t off,
                         int (*fn)(void *arg, const void *data, uint64_t n), void *arg);
        /* Required unless the node is read-only. flags: ORION_FUA. */
        int (*pwrite)(struct orion_bdev *b, const void *buf, uint64_t len, uint64_t off, uint32_t flags);
        /* Optional. Default: flush every child (a leaf without it has nothing to flush). After it
         * returns 0, every write acknowledged before the call survives a crash. */
        int (*flush)(struct orion_bdev *b, uint32_t flags);
        /* Optional (advertise ORION_CAP_DISCARD). Default: -EOPNOTSUPP. Advisory: the data
         * afterwards is unspecified unless the node documents otherwise. */
        int (*discard)(struct orion_bdev *b, uint64_t len, uint64_t off, uint32_t flags);
        /* Optional. Default: the core writes zero buffers (or fails ORION_FAST_ZERO with -ENOTSUP). */
        int (*write_zeroes)(struct orion_bdev *b, uint64_t len, uint64_t off, uint32_t flags);
        /* Optional. Describe [off, off+len) with orion_extents_add(); may stop early (the caller
         * asks again from where it stopped). Default: one data extent. */
        int (*block_status)(struct orion_bdev *b, uint64_t len, uint64_t off, struct orion_extents *ext);
        /* Optional. Run n requests all addressed to this node concurrently, set each result,
         * return 0 or the first error. Default: the core runs them on its worker pool. */
        int (*submit)(struct orion_bdev *b, struct orion_req *reqs, size_t n);
        /* Optional. Add layer-specific counters with orion_stats_put(). */
        void (*stats)(struct orion_bdev *b, struct json_object *sink);
        /* Optional. Layer-specific management verb (e.g. "replace"). *ret_reply may be set to a
         * new JSON object returned to the caller. Unknown verb: return orion_error_set(err,
         * EOPNOTSUPP, ...). */
        int (*ctl)(struct orion_bdev *b, const char *verb, struct json_object *args,
                   struct json_object **ret_reply, struct orion_error *err);
        /* Optional. Node-specific status for `orionctl status` / node-info (health details). */
        void (*status)(struct orion_bdev *b, struct json_object *out);
        /* Optional. Release everything; called once, after the last request returned. Children
         * are released by the core afterwards, so close may still flush them. */
        void (*close)(struct orion_bdev *b);
        /* Optional, additive (session 3). Start one request without waiting: READ, WRITE or
         * FLUSH, already checked by the core (aligned, in range, len <= max_size, FUA only with
         * ORION_CAP_FUA, not read-only). Return 0 when accepted: the node then sets a->req.result
         * and calls a->done(a) exactly once, from any thread, possibly before returning. Return
         * -errno to refuse (done is not called; the core runs the request synchronously).
         * Nodes without it get orion_submit_async's default: the synchronous op on the pool. */
        int (*submit_async)(struct orion_bdev *b, struct orion_areq *a);
};

/* ---- Node accessors ---------------------------------------------------------------------- */
void *orion_bdev_priv(struct orion_bdev *b);                /* instance_size bytes, zeroed */
const char *orion_bdev_name(const struct orion_bdev *b);
const char *orion_bdev_type(const struct orion_bdev *b);
const struct orion_geometry *orion_bdev_geometry(const struct orion_bdev *b);
uint64_t orion_bdev_size(const struct orion_bdev *b);
uint32_t orion_bdev_block_size(const struct orion_bdev *b);
uint32_t orion_bdev_caps(const struct orion_bdev *b);

/* Set from open (and, for size changes, at run time by the node itself). Geometry is checked:
 * block_size 512 or 4096 (or a power of two between), size a multiple of it. */
int orion_bdev_set_geometry(struct orion_bdev *b, const struct orion_geometry *g);
void orion_bdev_set_caps(struct orion_bdev *b, uint32_t caps);

/* Health, shown by `orionctl status`: a remote leaf that lost its server, a raid with a failed
 * member. message may be NULL for ORION_HEALTH_OK. Thread-safe. */
enum orion_health { ORION_HEALTH_OK, ORION_HEALTH_DEGRADED, ORION_HEALTH_FAILED, _ORION_HEALTH_MAX };
void orion_bdev_set_health(struct orion_bdev *b, enum orion_health h, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/* ---- Calling a node (children, and exports) ---------------------------------------------
 * These go through the core: range check, statistics, splitting to the node's max_size,
 * read-modify-write for requests not aligned to its block_size (pread/pwrite only; discard is
 * shrunk to whole blocks, write_zeroes is done unaligned with RMW at the edges), FUA emulation,
 * read-only enforcement. Out of range: -EINVAL (-ENOSPC for writes past the end). */
int orion_bdev_pread(struct orion_bdev *b, void *buf, uint64_t len, uint64_t off, uint32_t flags);
int orion_bdev_pwrite(struct orion_bdev *b, const void *buf, uint64_t len, uint64_t off, uint32_t flags);
/* Read [off, off+len) without copying it to a buffer of the caller's: fn(arg, data, n) is called
 * for consecutive pieces in order, data valid only during the call, NULL for a piece of zeroes;
 * pieces may end anywhere (not only on block boundaries), so fn must carry partial units over.
 * Counted as a read (statistics and range checks as pread). A node with a .read_view op gives
 * its own memory (a consumer that transforms the bytes, like decryption, then writes its output
 * once, with no copy in between); otherwise, and for unaligned requests, the core preads pieces
 * of at most 256 KiB into a buffer and calls fn on them. fn may run under the node's locks: keep
 * it to CPU work on the bytes (the node's read latency statistics leave fn's time out). Returns
 * 0, fn's negative return, or the read's -errno. */
int orion_bdev_read_view(struct orion_bdev *b, uint64_t len, uint64_t off,
                         int (*fn)(void *arg, const void *data, uint64_t n), void *arg);
int orion_bdev_flush(struct orion_bdev *b, uint32_t flags);
int orion_bdev_discard(struct orion_bdev *b, uint64_t len, uint64_t off, uint32_t flags);
int orion_bdev_write_zeroes(struct orion_bdev *b, uint64_t len, uint64_t off, uint32_t flags);
/* Fills ext from off for up to len bytes; returns 0 or -errno. */
int orion_bdev_block_status(struct orion_bdev *b, uint64_t len, uint64_t off, struct orion_extents *ext);
/* Standalone collector for layers that query children: */
struct orion_extents *orion_extents_new(uint64_t offset, uint64_t max_extents);
struct orion_extents *orion_extents_free(struct orion_extents *ext);
size_t orion_extents_count(const struct orion_extents *ext);
/* i-th extent; returns false past the end. */
bool orion_extents_get(const struct orion_extents *ext, size_t i, uint64_t *ret_off, uint64_t *ret_len,
                       uint32_t *ret_flags);

/* Run a batch of requests (to one or many nodes) concurrently; returns when all are done.
 * Sets each req->result; returns 0 or the first error. Nodes with a native .submit get their
 * share in one call (the file backend: one io_uring submission). */
int orion_submit(struct orion_req *reqs, size_t n);
/* Start one request and return at once; a->done(a) is called exactly once with a->req.result
 * set (0 or -errno), from any thread, possibly before this returns. Same checks, statistics and
 * emulation as orion_bdev_pread/pwrite/flush/...: requests a node's native .submit_async can
 * take as they are go to it directly; every other one (unaligned, split, FUA emulation, other
 * ops, nodes without it) runs synchronously on the worker pool. */
void orion_submit_async(struct orion_areq *a);
/* True when the node has a native .submit_async (no thread waits per request). */
bool orion_bdev_has_async(const struct orion_bdev *b);
/* Run fn(args[i]) for every i < n concurrently on the worker pool (the caller runs a share
 * itself, so nesting never deadlocks); returns when all are done. For layers that split CPU
 * work of one request across threads (encryption). */
void orion_parallel(void (*fn)(void *arg), void **args, size_t n);

/* Management verb on a node (as `orionctl ctl NODE VERB JSON` does). */
int orion_bdev_ctl(struct orion_bdev *b, const char *verb, struct json_object *args,
                   struct json_object **ret_reply, struct orion_error *err);

/* Add a counter to a stats sink (from the .stats op). */
void orion_stats_put(struct json_object *sink, const char *name, uint64_t value);

/* Buffers aligned for O_DIRECT (4096). Free with free(). NULL on failure. */
void *orion_alloc_aligned(size_t len);

#ifdef __cplusplus
}
#endif
