/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* FUSE export internals: the table of image files (one per export) shared by the driver
 * lifecycle (fuse-export.c) and the low-level operations (fuse-ops.c). */
#pragma once

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "core/core.h"

#define FEXP_MAX_IO (1u << 20)  /* max_read / max_write: libfuse 3.14 buffers hold 256 pages */
#define FEXP_ATTR_TIMEOUT 1.0   /* node sizes may change at run time */
#define FEXP_ENTRY_TIMEOUT 60.0 /* names change only through export add/remove, which invalidate */

/* Per-file settings: daemon keys fuse-uid/-gid/-mode/-cache give the defaults, export keys of
 * the same names override them. */
struct fexp_settings {
        uid_t uid;
        gid_t gid;
        mode_t mode;  /* permission bits only */
        bool direct;  /* fuse-cache=direct: FOPEN_DIRECT_IO; page: kernel page cache + keep_cache */
};

/* One image file "<export>.img". Lifetime: listed while the export exists; `users` counts open
 * files and short pins of request handlers, `nlookup` the kernel's references to the inode.
 * The export reference is dropped once it is unlisted and unused; the struct is freed once the
 * kernel has forgotten the inode too. All counters under g_fexp.lock. */
struct fexp_file {
        struct fexp_file *next;
        char *name;                 /* "<export>.img" */
        fuse_ino_t ino;             /* never reused while the daemon runs */
        struct orion_export *exp;   /* reference; NULL once detached */
        struct orion_bdev *node;    /* valid while exp is held */
        struct fexp_settings set;
        bool readonly;
        bool listed;
        uint64_t nlookup;
        unsigned users;
        struct timespec created;
        uint64_t alloc_bytes;       /* cached allocation for st_blocks */
        _Atomic uint64_t alloc_ns;  /* when alloc_bytes was computed, 0 = never or stale */
};

struct fexp_state {
        pthread_mutex_t lock;       /* files list and counters */
        struct fexp_file *files;
        fuse_ino_t next_ino;
        struct fexp_settings defaults;
        struct timespec started;
        uid_t root_uid;
        gid_t root_gid;

        pthread_rwlock_t se_lock;   /* readers: notifications; writer: session teardown */
        struct fuse_session *se;
        char *mountpoint;
        pthread_t loop_thread;
        bool loop_running;          /* a session thread exists (joined by stop) */
        atomic_bool loop_ended;     /* the session ended: unmounted from outside, or stopping */
        atomic_bool stopping;
        unsigned threads;
        bool allow_other;
};
extern struct fexp_state g_fexp;

extern const struct fuse_lowlevel_ops fexp_ops;

/* Pin the listed-or-still-open file with inode ino (users++), or NULL. */
struct fexp_file *fexp_get(fuse_ino_t ino);
/* Find a listed file by name and add one kernel lookup reference, or NULL. */
struct fexp_file *fexp_lookup(const char *name);
/* Drop a pin (users--); detaches the export and frees the file when nothing holds it. */
void fexp_put(struct fexp_file *f);
/* Kernel FORGET. */
void fexp_forget(fuse_ino_t ino, uint64_t nlookup);
/* Names and inodes of the listed files, for readdir. Returns count, or -ENOMEM. */
struct fexp_dirent {
        char *name;
        fuse_ino_t ino;
};
int fexp_snapshot(struct fexp_dirent **ret);
void fexp_snapshot_free(struct fexp_dirent *d, size_t n);
/* Sum of node sizes and number of listed files (statfs). */
void fexp_totals(uint64_t *ret_bytes, uint64_t *ret_files);
