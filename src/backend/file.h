/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The file leaf: shared state of file.c (node, params, ops) and file-ring.c (per-thread
 * io_uring engine that runs a batch of reads, writes and fsyncs as one submission). */
#pragma once

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "orion/bdev.h"

struct file_node {
        int fd;
        char *path;
        bool direct;              /* opened O_DIRECT: buffers must be aligned (bounce otherwise) */
        bool readonly;
        bool blkdev;              /* a block device (BLKDISCARD, no SEEK_HOLE) */
        uint32_t mem_align;       /* buffer alignment O_DIRECT needs */
        atomic_bool no_punch;     /* fallocate(PUNCH_HOLE) said EOPNOTSUPP once */
        atomic_bool no_zero_range; /* fallocate(ZERO_RANGE) said EOPNOTSUPP once */
        atomic_uint_fast64_t n_submits, n_resubmits, n_bounces, n_sync_fallback;
        /* The last data run SEEK_DATA/SEEK_HOLE found, [data_lo, data_hi), and a generation
         * the leaf's own fallocate calls bump (file.c, block status). */
        pthread_mutex_t data_lock;
        uint64_t data_lo, data_hi, data_gen;
        atomic_uint_fast64_t n_status_cached;
};

/* One piece of I/O for the engine. The caller fills opcode..off; the engine sets result. */
enum file_io_kind { FILE_IO_READ, FILE_IO_WRITE, FILE_IO_FSYNC };
struct file_io {
        enum file_io_kind kind;
        bool fua;                 /* WRITE: RWF_DSYNC */
        char *buf;
        uint64_t len;
        uint64_t off;
        /* engine state */
        uint64_t done;            /* bytes completed so far (short reads/writes resubmit the rest) */
        uint8_t state;            /* 0 = to submit, 1 = in flight, 2 = finished */
        int result;               /* OUT: 0 or -errno */
};

/* Run n pieces of I/O on f concurrently through this thread's ring; returns when all are done.
 * Returns 0 or the first error (each io->result is set). Falls back to synchronous system calls
 * when io_uring is unavailable. */
int file_ring_run(struct file_node *f, struct file_io *ios, size_t n);
