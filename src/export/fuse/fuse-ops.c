/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* FUSE export: the low-level operations. The root directory lists one regular file per export;
 * I/O on a file goes to its node through the core's request path. */
#include "export/fuse/fuse-export.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "common/cleanup.h"

#define ALLOC_CACHE_NS 1000000000ull /* st_blocks is recomputed at most once a second */
#define ALLOC_MAX_ROUNDS 64          /* bound the block-status walk for st_blocks */
#define EXTENTS_PER_CALL 1024

/* ---- Helpers ------------------------------------------------------------------------------ */

/* A node error as an errno the kernel accepts; anything odd becomes EIO. */
static int to_errno(int r) {
        if (r >= 0)
                return 0;
        r = -r;
        if (r >= 4096)
                return EIO;
        if (r == ENOTSUP)
                return EOPNOTSUPP;
        return r;
}

static struct fexp_file *file_of(struct fuse_file_info *fi) {
        return (struct fexp_file *) (uintptr_t) fi->fh;
}

/* Per-thread read buffer, grown on demand; freed when a worker thread exits. */
static pthread_key_t g_buf_key;
static pthread_once_t g_buf_once = PTHREAD_ONCE_INIT;
struct tbuf {
        void *p;
        size_t len;
};
static void tbuf_free(void *v) {
        struct tbuf *t = v;
        if (t)
                free(t->p);
        free(t);
}
static void tbuf_key_init(void) {
        (void) pthread_key_create(&g_buf_key, tbuf_free); /* failure: tbuf_get allocates per call */
}
static void *tbuf_get(size_t len, bool *ret_owned) {
        (void) pthread_once(&g_buf_once, tbuf_key_init);
        struct tbuf *t = pthread_getspecific(g_buf_key);

        *ret_owned = false;
        if (!t) {
                t = calloc(1, sizeof *t);
                if (!t || pthread_setspecific(g_buf_key, t) != 0) {
                        free(t);
                        *ret_owned = true;
                        return orion_alloc_aligned(len ? len : 1);
                }
        }
        if (t->len < len) {
                size_t n = MAX(len, (size_t) 65536);
                void *p = orion_alloc_aligned(n);
                if (!p)
                        return NULL;
                free(t->p);
                t->p = p;
                t->len = n;
        }
        return t->p;
}

/* Bytes of the node that are allocated (not holes), from block status; cached for a second. */
static uint64_t file_allocated(struct fexp_file *f, uint64_t size) {
        uint64_t now = now_ns(), alloc = 0, off = 0;

        if (!(orion_bdev_caps(f->node) & ORION_CAP_BLOCK_STATUS))
                return size;
        WITH_LOCK(&g_fexp.lock) {
                uint64_t at = atomic_load(&f->alloc_ns);
                if (at && now - at < ALLOC_CACHE_NS)
                        return f->alloc_bytes;
        }

        for (unsigned round = 0; off < size; round++) {
                if (round == ALLOC_MAX_ROUNDS) {
                        alloc += size - off; /* too fragmented to count: call the rest allocated */
                        break;
                }
                struct orion_extents *ext = orion_extents_new(off, EXTENTS_PER_CALL);
                if (!ext)
                        return size;
                int r = orion_bdev_block_status(f->node, size - off, off, ext);
                size_t n = r < 0 ? 0 : orion_extents_count(ext);
                uint64_t end = off;
                for (size_t i = 0; i < n; i++) {
                        uint64_t eo, el;
                        uint32_t fl;
                        if (!orion_extents_get(ext, i, &eo, &el, &fl))
                                break;
                        end = MIN(eo + el, size);
                        if (!(fl & ORION_EXTENT_HOLE) && end > MAX(eo, off))
                                alloc += end - MAX(eo, off);
                }
                orion_extents_free(ext);
                if (r < 0 || end <= off)
                        return size; /* unknown: do not pretend the file is sparse */
                off = end;
        }
        WITH_LOCK(&g_fexp.lock) {
                f->alloc_bytes = alloc;
                f->alloc_ns = now;
        }
        return alloc;
}

static void file_stat(struct fexp_file *f, struct stat *st) {
        const struct orion_geometry *g = orion_bdev_geometry(f->node);
        uint64_t size = g->size;

        memset(st, 0, sizeof *st);
        st->st_ino = f->ino;
        st->st_mode = S_IFREG | (f->readonly ? f->set.mode & ~0222u : f->set.mode);
        st->st_nlink = 1;
        st->st_uid = f->set.uid;
        st->st_gid = f->set.gid;
        st->st_size = (off_t) size;
        st->st_blksize = MAX(4096u, MAX(g->block_size, g->pref_size));
        st->st_blocks = (blkcnt_t) ((file_allocated(f, size) + 511) / 512);
        st->st_atim = st->st_mtim = st->st_ctim = f->created;
}

static void root_stat(struct stat *st) {
        memset(st, 0, sizeof *st);
        st->st_ino = FUSE_ROOT_ID;
        st->st_mode = S_IFDIR | 0755;
        st->st_nlink = 2;
        st->st_uid = g_fexp.root_uid;
        st->st_gid = g_fexp.root_gid;
        st->st_blksize = 4096;
        st->st_atim = st->st_mtim = st->st_ctim = g_fexp.started;
}

/* ---- Names and attributes ----------------------------------------------------------------- */

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name) {
        struct fuse_entry_param e = { 0 };

        if (parent != FUSE_ROOT_ID) {
                fuse_reply_err(req, ENOTDIR);
                return;
        }
        struct fexp_file *f = fexp_lookup(name);
        if (!f) {
                fuse_reply_err(req, ENOENT);
                return;
        }
        e.ino = f->ino;
        e.attr_timeout = FEXP_ATTR_TIMEOUT;
        e.entry_timeout = FEXP_ENTRY_TIMEOUT;
        file_stat(f, &e.attr);
        if (fuse_reply_entry(req, &e) != 0)
                fexp_forget(f->ino, 1); /* the kernel never saw it */
        fexp_put(f);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
        fexp_forget(ino, nlookup);
        fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets) {
        for (size_t i = 0; i < count; i++)
                fexp_forget(forgets[i].ino, forgets[i].nlookup);
        fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
        struct stat st;

        if (ino == FUSE_ROOT_ID) {
                root_stat(&st);
                fuse_reply_attr(req, &st, FEXP_ATTR_TIMEOUT);
                return;
        }
        struct fexp_file *f = fexp_get(ino);
        if (!f) {
                fuse_reply_err(req, ENOENT);
                return;
        }
        file_stat(f, &st);
        fexp_put(f);
        fuse_reply_attr(req, &st, FEXP_ATTR_TIMEOUT);
}

/* Owner and mode come from the config; the size is the node's. Time changes are accepted and
 * ignored so that touch and tools that preserve times do not fail. */
static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set, struct fuse_file_info *fi) {
        struct stat st;
        int err = 0;

        if (ino == FUSE_ROOT_ID) {
                fuse_reply_err(req, EPERM);
                return;
        }
        struct fexp_file *f = fexp_get(ino);
        if (!f) {
                fuse_reply_err(req, ENOENT);
                return;
        }
        if (to_set & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID))
                err = EPERM;
        else if ((to_set & FUSE_SET_ATTR_SIZE) && (uint64_t) attr->st_size != orion_bdev_size(f->node))
                err = f->readonly ? EROFS : EPERM; /* an image has the size of its node */
        if (!err)
                file_stat(f, &st);
        fexp_put(f);
        if (err)
                fuse_reply_err(req, err);
        else
                fuse_reply_attr(req, &st, FEXP_ATTR_TIMEOUT);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino) {
        struct statvfs sv = { 0 };
        uint64_t bytes, files;

        /* The files are fixed-size images and no file can be created: every block is in use. */
        fexp_totals(&bytes, &files);
        sv.f_bsize = 4096;
        sv.f_frsize = 4096;
        sv.f_blocks = (fsblkcnt_t) ((bytes + 4095) / 4096);
        sv.f_files = (fsfilcnt_t) (files + 1);
        sv.f_namemax = 255;
        fuse_reply_statfs(req, &sv);
}

/* ---- Directory ---------------------------------------------------------------------------- */

struct dir_handle {
        struct fexp_dirent *ents;
        size_t n;
};

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
        if (ino != FUSE_ROOT_ID) {
                fuse_reply_err(req, ENOTDIR);
                return;
        }
        struct dir_handle *d = calloc(1, sizeof *d);
        int r = d ? fexp_snapshot(&d->ents) : -ENOMEM;
        if (r < 0) {
                free(d);
                fuse_reply_err(req, -r);
                return;
        }
        d->n = (size_t) r;
        fi->fh = (uintptr_t) d;
        if (fuse_reply_open(req, fi) != 0) {
                fexp_snapshot_free(d->ents, d->n);
                free(d);
        }
}

/* Offsets: 1 after ".", 2 after "..", 3 + i after the i-th file of the snapshot. */
static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
        struct dir_handle *d = (struct dir_handle *) (uintptr_t) fi->fh;
        _cleanup_free_ char *buf = malloc(size);
        size_t pos = 0;

        if (!buf) {
                fuse_reply_err(req, ENOMEM);
                return;
        }
        for (uint64_t i = (uint64_t) MAX(off, 0); i < 2 + d->n; i++) {
                struct stat st = { 0 };
                const char *name;
                if (i < 2) {
                        name = i == 0 ? "." : "..";
                        st.st_ino = FUSE_ROOT_ID;
                        st.st_mode = S_IFDIR;
                } else {
                        name = d->ents[i - 2].name;
                        st.st_ino = d->ents[i - 2].ino;
                        st.st_mode = S_IFREG;
                }
                size_t need = fuse_add_direntry(req, buf + pos, size - pos, name, &st, (off_t) (i + 1));
                if (need > size - pos)
                        break;
                pos += need;
        }
        fuse_reply_buf(req, buf, pos);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
        struct dir_handle *d = (struct dir_handle *) (uintptr_t) fi->fh;

        if (d)
                fexp_snapshot_free(d->ents, d->n);
        free(d);
        fuse_reply_err(req, 0);
}

/* ---- Open and close ----------------------------------------------------------------------- */

/* Each open file pins its export (and so the node) until release, so an export removed while
 * the file is open keeps working for that opener. */
static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
        if (ino == FUSE_ROOT_ID) {
                fuse_reply_err(req, EISDIR);
                return;
        }
        struct fexp_file *f = fexp_get(ino);
        if (!f) {
                fuse_reply_err(req, ENOENT);
                return;
        }
        if (f->readonly && (fi->flags & O_ACCMODE) != O_RDONLY) {
                fexp_put(f);
                fuse_reply_err(req, EROFS);
                return;
        }
        fi->fh = (uintptr_t) f;
        fi->direct_io = f->set.direct;
        fi->keep_cache = !f->set.direct;
        fi->noflush = 1; /* close is not fsync: nothing to do on flush */
        if (fuse_reply_open(req, fi) != 0)
                fexp_put(f);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
        fexp_put(file_of(fi));
        fuse_reply_err(req, 0);
}

static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
        fuse_reply_err(req, 0);
}

/* fsync and fdatasync both mean: every acknowledged write is durable in the node. With the
 * page cache the kernel has already sent the dirty pages before this request. */
static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi) {
        struct fexp_file *f = file_of(fi);
        int r = f->readonly ? 0 : orion_bdev_flush(f->node, 0);

        if (r < 0)
                orion_log_ratelimited(ORION_LOG_WARNING, "fuse: flush of '%s' failed: %s", f->name, strerror(-r));
        fuse_reply_err(req, to_errno(r));
}

/* ---- Data --------------------------------------------------------------------------------- */

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
        struct fexp_file *f = file_of(fi);
        uint64_t dev = orion_bdev_size(f->node);
        bool owned;

        if (off < 0 || (uint64_t) off >= dev || size == 0) {
                fuse_reply_buf(req, NULL, 0);
                return;
        }
        size_t len = (size_t) MIN((uint64_t) size, dev - (uint64_t) off);
        void *buf = tbuf_get(len, &owned);
        if (!buf) {
                fuse_reply_err(req, ENOMEM);
                return;
        }
        int r = orion_bdev_pread(f->node, buf, len, (uint64_t) off, 0);
        if (r < 0) {
                orion_log_ratelimited(ORION_LOG_WARNING, "fuse: read of '%s' at %lld failed: %s", f->name,
                                      (long long) off, strerror(-r));
                fuse_reply_err(req, to_errno(r));
        } else
                fuse_reply_buf(req, buf, len);
        if (owned)
                free(buf);
}

/* Writes never extend the file: the part past the end is refused, as on a block device. */
static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
                     struct fuse_file_info *fi) {
        struct fexp_file *f = file_of(fi);
        uint64_t dev = orion_bdev_size(f->node);

        if (f->readonly) {
                fuse_reply_err(req, EROFS);
                return;
        }
        if (off < 0) {
                fuse_reply_err(req, EINVAL);
                return;
        }
        if ((uint64_t) off >= dev) {
                fuse_reply_err(req, size ? ENOSPC : 0);
                return;
        }
        size_t len = (size_t) MIN((uint64_t) size, dev - (uint64_t) off);
        uint32_t flags = (fi->flags & (O_SYNC | O_DSYNC)) ? ORION_FUA : 0;
        int r = orion_bdev_pwrite(f->node, buf, len, (uint64_t) off, flags);
        if (r < 0) {
                orion_log_ratelimited(ORION_LOG_WARNING, "fuse: write of '%s' at %lld failed: %s", f->name,
                                      (long long) off, strerror(-r));
                fuse_reply_err(req, to_errno(r));
                return;
        }
        if (atomic_load_explicit(&f->alloc_ns, memory_order_relaxed))
                atomic_store_explicit(&f->alloc_ns, 0, memory_order_relaxed); /* allocation may have grown */
        fuse_reply_write(req, len);
}

/* PUNCH_HOLE must read back as zeroes (loop devices and mkfs rely on it) while a node's discard
 * is only advisory, so it becomes write-zeroes that may unmap (no ORION_NO_HOLE): the file leaf
 * punches a hole in its backing file. ZERO_RANGE keeps the range allocated. Plain allocation
 * inside the file is already satisfied. */
static void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t length,
                         struct fuse_file_info *fi) {
        struct fexp_file *f = file_of(fi);
        uint64_t dev = orion_bdev_size(f->node);
        int r;

        if (mode & ~(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE)) {
                fuse_reply_err(req, EOPNOTSUPP);
                return;
        }
        if (off < 0 || length <= 0) {
                fuse_reply_err(req, EINVAL);
                return;
        }
        if (f->readonly) {
                fuse_reply_err(req, EROFS);
                return;
        }
        uint64_t o = (uint64_t) off, l = (uint64_t) length;
        if (o >= dev || l > dev - o) {
                if (!(mode & FALLOC_FL_KEEP_SIZE)) {
                        fuse_reply_err(req, ENOSPC); /* the file cannot grow */
                        return;
                }
                l = o >= dev ? 0 : dev - o; /* KEEP_SIZE: only the part inside the file */
        }
        if (l == 0)
                r = 0;
        else if (mode & FALLOC_FL_PUNCH_HOLE)
                r = orion_bdev_write_zeroes(f->node, l, o, 0);
        else if (mode & FALLOC_FL_ZERO_RANGE)
                r = orion_bdev_write_zeroes(f->node, l, o, ORION_NO_HOLE);
        else
                r = 0;
        if (r < 0)
                orion_log_ratelimited(ORION_LOG_WARNING, "fuse: fallocate of '%s' at %lld failed: %s", f->name,
                                      (long long) off, strerror(-r));
        else
                atomic_store(&f->alloc_ns, 0);
        fuse_reply_err(req, to_errno(r));
}

/* SEEK_DATA / SEEK_HOLE from the node's block status: holes are extents flagged HOLE (zero but
 * allocated ranges are data); the end of the file is a hole. */
static int file_seek(struct fexp_file *f, uint64_t off, int whence, uint64_t *ret) {
        uint64_t size = orion_bdev_size(f->node);

        if (off >= size)
                return -ENXIO;
        while (off < size) {
                struct orion_extents *ext = orion_extents_new(off, EXTENTS_PER_CALL);
                if (!ext)
                        return -ENOMEM;
                int r = orion_bdev_block_status(f->node, size - off, off, ext);
                if (r < 0) {
                        orion_extents_free(ext);
                        return r;
                }
                uint64_t end = off;
                size_t n = orion_extents_count(ext);
                for (size_t i = 0; i < n; i++) {
                        uint64_t eo, el;
                        uint32_t fl;
                        if (!orion_extents_get(ext, i, &eo, &el, &fl))
                                break;
                        bool hole = fl & ORION_EXTENT_HOLE;
                        if (hole == (whence == SEEK_HOLE) && eo + el > off) {
                                *ret = MAX(eo, off);
                                orion_extents_free(ext);
                                return 0;
                        }
                        end = MIN(eo + el, size);
                }
                orion_extents_free(ext);
                if (end <= off)
                        return -EIO; /* the node made no progress */
                off = end;
        }
        if (whence == SEEK_DATA)
                return -ENXIO;
        *ret = size;
        return 0;
}

static void op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, struct fuse_file_info *fi) {
        struct fexp_file *f = file_of(fi);
        uint64_t pos;

        if (whence != SEEK_DATA && whence != SEEK_HOLE) {
                fuse_reply_err(req, EINVAL); /* the kernel handles SEEK_SET/CUR/END itself */
                return;
        }
        if (off < 0) {
                fuse_reply_err(req, ENXIO);
                return;
        }
        int r = file_seek(f, (uint64_t) off, whence, &pos);
        if (r < 0)
                fuse_reply_err(req, to_errno(r));
        else
                fuse_reply_lseek(req, (off_t) pos);
}

/* ---- Session ------------------------------------------------------------------------------ */

/* Large requests: 1 MiB reads and writes, and enough background requests for QD32 async
 * direct I/O (the kernel default of 12 would queue them). */
static void op_init(void *userdata, struct fuse_conn_info *conn) {
        conn->max_write = FEXP_MAX_IO;
        conn->max_read = FEXP_MAX_IO;
        conn->max_readahead = MIN(conn->max_readahead, FEXP_MAX_IO);
        conn->max_background = 128;
        conn->congestion_threshold = 96;
        conn->want &= ~(unsigned) (FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE);
        if (conn->capable & FUSE_CAP_ASYNC_DIO)
                conn->want |= FUSE_CAP_ASYNC_DIO;
        /* Times are static; cached data of keep_cache files must not be dropped by mtime checks. */
        conn->want &= ~(unsigned) FUSE_CAP_AUTO_INVAL_DATA;
        /* fuse-cache=page is write-through: every write reaches the node before it returns. */
        conn->want &= ~(unsigned) FUSE_CAP_WRITEBACK_CACHE;
        orion_debug("fuse: kernel protocol %u.%u, max_write %u, max_read %u, max_background %u", conn->proto_major,
                    conn->proto_minor, conn->max_write, conn->max_read, conn->max_background);
}

const struct fuse_lowlevel_ops fexp_ops = {
        .init = op_init,
        .lookup = op_lookup,
        .forget = op_forget,
        .forget_multi = op_forget_multi,
        .getattr = op_getattr,
        .setattr = op_setattr,
        .statfs = op_statfs,
        .opendir = op_opendir,
        .readdir = op_readdir,
        .releasedir = op_releasedir,
        .open = op_open,
        .release = op_release,
        .flush = op_flush,
        .fsync = op_fsync,
        .read = op_read,
        .write = op_write,
        .fallocate = op_fallocate,
        .lseek = op_lseek,
};
