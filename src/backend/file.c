/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* `file` leaf: a regular file or a block device, read and written through per-thread io_uring
 * rings (file-ring.c); discard and zeroing by fallocate/BLKDISCARD, block status by SEEK_HOLE. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "backend/file.h"
#include "common/cleanup.h"
#include "orion/plugin.h"

#define FILE_MAX_REQUEST (64u << 20) /* bounds bounce buffers; the core splits bigger requests */
#define ZERO_CHUNK (1u << 20)

/* ---- Buffers for O_DIRECT ------------------------------------------------------------------ */
static bool needs_bounce(const struct file_node *f, const void *buf) {
        return f->direct && ((uintptr_t) buf & (f->mem_align - 1)) != 0;
}

/* ---- Reads and writes ---------------------------------------------------------------------- */
static int file_rw(struct orion_bdev *b, enum file_io_kind kind, void *buf, uint64_t len, uint64_t off,
                   bool fua) {
        struct file_node *f = orion_bdev_priv(b);
        _cleanup_free_ char *bounce = NULL;
        struct file_io io = { .kind = kind, .fua = fua, .buf = buf, .len = len, .off = off };
        int r;

        if (needs_bounce(f, buf)) {
                bounce = orion_alloc_aligned(len);
                if (!bounce)
                        return -ENOMEM;
                atomic_fetch_add(&f->n_bounces, 1);
                if (kind == FILE_IO_WRITE)
                        memcpy(bounce, buf, len);
                io.buf = bounce;
        }
        r = file_ring_run(f, &io, 1);
        if (r == 0 && bounce && kind == FILE_IO_READ)
                memcpy(buf, bounce, len);
        return r;
}

static int file_pread(struct orion_bdev *b, void *buf, uint64_t len, uint64_t off, uint32_t flags) {
        return file_rw(b, FILE_IO_READ, buf, len, off, false);
}

static int file_pwrite(struct orion_bdev *b, const void *buf, uint64_t len, uint64_t off, uint32_t flags) {
        /* the engine only reads from buf for writes */
        return file_rw(b, FILE_IO_WRITE, (void *) buf, len, off, flags & ORION_FUA);
}

static int file_flush(struct orion_bdev *b, uint32_t flags) {
        struct file_node *f = orion_bdev_priv(b);
        struct file_io io = { .kind = FILE_IO_FSYNC };

        return file_ring_run(f, &io, 1);
}

/* ---- Discard and zeroes -------------------------------------------------------------------- */
static void data_forget(struct file_node *f);

/* Every hole the leaf makes comes through here (punch, zero range, BLKDISCARD aside). */
static int do_fallocate(struct file_node *f, int mode, uint64_t len, uint64_t off) {
        int r;

        for (;;) {
                r = fallocate(f->fd, mode, (off_t) off, (off_t) len) == 0 ? 0 : -errno;
                if (r != -EINTR)
                        break;
        }
        data_forget(f);
        return r;
}

static bool unsupported(int r) {
        return r == -EOPNOTSUPP || r == -ENOSYS || r == -ENOTTY || r == -EINVAL;
}

static int punch_hole(struct file_node *f, uint64_t len, uint64_t off) {
        int r;

        if (atomic_load(&f->no_punch))
                return -EOPNOTSUPP;
        if (f->blkdev) {
                uint64_t range[2] = { off, len };

                r = ioctl(f->fd, BLKDISCARD, range) < 0 ? -errno : 0;
        } else
                r = do_fallocate(f, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, len, off);
        if (unsupported(r)) {
                atomic_store(&f->no_punch, true);
                return -EOPNOTSUPP;
        }
        return r;
}

static int file_discard(struct orion_bdev *b, uint64_t len, uint64_t off, uint32_t flags) {
        struct file_node *f = orion_bdev_priv(b);
        int r = punch_hole(f, len, off);

        /* Discard is advisory: a file system that cannot punch holes simply keeps the data. */
        if (r == -EOPNOTSUPP)
                r = 0;
        if (r == 0 && (flags & ORION_FUA))
                r = file_flush(b, 0);
        return r;
}

static int zero_range(struct file_node *f, uint64_t len, uint64_t off) {
        int r;

        if (atomic_load(&f->no_zero_range))
                return -EOPNOTSUPP;
        /* On a block device this is blkdev_issue_zeroout without unmapping. */
        r = do_fallocate(f, FALLOC_FL_ZERO_RANGE | (f->blkdev ? FALLOC_FL_KEEP_SIZE : 0), len, off);
        if (unsupported(r)) {
                atomic_store(&f->no_zero_range, true);
                return -EOPNOTSUPP;
        }
        return r;
}

/* Last resort: write zero buffers (never for ORION_FAST_ZERO). */
static int write_zero_buffers(struct orion_bdev *b, uint64_t len, uint64_t off) {
        _cleanup_free_ char *zeroes = orion_alloc_aligned(ZERO_CHUNK);

        if (!zeroes)
                return -ENOMEM;
        memset(zeroes, 0, ZERO_CHUNK);
        while (len > 0) {
                uint64_t n = MIN(len, (uint64_t) ZERO_CHUNK);
                int r = file_rw(b, FILE_IO_WRITE, zeroes, n, off, false);

                if (r < 0)
                        return r;
                len -= n;
                off += n;
        }
        return 0;
}

static int file_write_zeroes(struct orion_bdev *b, uint64_t len, uint64_t off, uint32_t flags) {
        struct file_node *f = orion_bdev_priv(b);
        int r = -EOPNOTSUPP;

        /* A punched hole reads as zeroes on a regular file; a discarded block-device range may
         * not, so block devices zero with ZERO_RANGE (which may unmap only if it reads zero). */
        if (!(flags & ORION_NO_HOLE) && !f->blkdev)
                r = punch_hole(f, len, off);
        else if (f->blkdev && (flags & ORION_FAST_ZERO)) {
                /* ZERO_RANGE on a block device falls back to writing zeroes in the kernel;
                 * PUNCH_HOLE is the no-fallback form (BLKDEV_ZERO_NOFALLBACK), and reads back
                 * zeroes, so it is the one that can promise speed. */
                r = do_fallocate(f, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, len, off);
                if (unsupported(r))
                        return -ENOTSUP;
                return r == 0 && (flags & ORION_FUA) ? file_flush(b, 0) : r;
        }
        if (r == -EOPNOTSUPP)
                r = zero_range(f, len, off);
        if (r == -EOPNOTSUPP) {
                if (flags & ORION_FAST_ZERO)
                        return -ENOTSUP;
                r = write_zero_buffers(b, len, off);
        }
        if (r == 0 && (flags & ORION_FUA))
                r = file_flush(b, 0);
        return r;
}

/* ---- Block status -------------------------------------------------------------------------- */
/* SEEK_HOLE can cost more than the read it decorates (tmpfs walks every page up to the next
 * hole, and each lseek takes the file position lock that all ring threads share), and the NBD
 * export asks before every large read. So the last data run found is remembered. Calling a
 * range data when it has since become a hole is always a correct answer, holes are never
 * remembered (a write may fill them), and the leaf's own fallocate calls forget the run; a run
 * found by a lookup that raced with one of them is not kept (generation check). */
static void data_forget(struct file_node *f) {
        WITH_LOCK (&f->data_lock) {
                f->data_gen++;
                f->data_lo = f->data_hi = 0;
        }
}

static bool data_known(struct file_node *f, uint64_t off, uint64_t end, uint64_t *ret_gen) {
        LOCK_GUARD(&f->data_lock);
        *ret_gen = f->data_gen;
        return off >= f->data_lo && end <= f->data_hi;
}

static void data_remember(struct file_node *f, uint64_t gen, uint64_t lo, uint64_t hi) {
        WITH_LOCK (&f->data_lock)
                if (f->data_gen == gen) {
                        f->data_lo = lo;
                        f->data_hi = hi;
                }
}

static int file_block_status(struct orion_bdev *b, uint64_t len, uint64_t off, struct orion_extents *ext) {
        struct file_node *f = orion_bdev_priv(b);
        uint64_t end = off + len, gen;

        if (data_known(f, off, end, &gen)) {
                atomic_fetch_add(&f->n_status_cached, 1);
                int r = orion_extents_add(ext, off, len, 0);
                return r == -E2BIG ? 0 : r;
        }
        while (off < end) {
                off_t data, hole;
                int r;

                data = lseek(f->fd, (off_t) off, SEEK_DATA);
                if (data < 0 && errno != ENXIO)
                        return -errno;
                if (data < 0 || (uint64_t) data >= end) {
                        /* ENXIO: no data after off, the rest is a hole */
                        r = orion_extents_add(ext, off, end - off, ORION_EXTENT_HOLE | ORION_EXTENT_ZERO);
                        return r == -E2BIG ? 0 : r;
                }
                if ((uint64_t) data > off) {
                        r = orion_extents_add(ext, off, (uint64_t) data - off,
                                              ORION_EXTENT_HOLE | ORION_EXTENT_ZERO);
                        if (r < 0)
                                return r == -E2BIG ? 0 : r;
                        off = (uint64_t) data;
                }
                hole = lseek(f->fd, (off_t) off, SEEK_HOLE);
                if (hole < 0)
                        return -errno;
                if ((uint64_t) hole <= off) /* the file changed under us: call it data */
                        hole = (off_t) end;
                else
                        data_remember(f, gen, off, (uint64_t) hole);
                r = orion_extents_add(ext, off, MIN((uint64_t) hole, end) - off, 0);
                if (r < 0)
                        return r == -E2BIG ? 0 : r;
                off = MIN((uint64_t) hole, end);
        }
        return 0;
}

/* ---- Batches ------------------------------------------------------------------------------- */
static int file_submit(struct orion_bdev *b, struct orion_req *reqs, size_t n) {
        struct file_node *f = orion_bdev_priv(b);
        _cleanup_free_ struct file_io *ios = calloc(n, sizeof(*ios));
        _cleanup_free_ char **bounce = calloc(n, sizeof(*bounce));
        _cleanup_free_ size_t *map = calloc(n, sizeof(*map)); /* io index -> req index */
        size_t nio = 0;
        int first = 0, r = 0;

        if (!ios || !bounce || !map)
                return -ENOMEM;
        /* Reads, writes and flushes share one submission; discard and zeroes are fallocate
         * calls, done here while the ring works (a batch carries no ordering promise). */
        for (size_t i = 0; i < n; i++) {
                struct orion_req *q = &reqs[i];
                struct file_io *io = &ios[nio];

                q->result = 0;
                switch (q->op) {
                case ORION_OP_READ:
                case ORION_OP_WRITE:
                        *io = (struct file_io) { .kind = q->op == ORION_OP_READ ? FILE_IO_READ : FILE_IO_WRITE,
                                                 .fua = q->flags & ORION_FUA, .buf = q->buf, .len = q->len,
                                                 .off = q->off };
                        if (needs_bounce(f, q->buf)) {
                                bounce[nio] = orion_alloc_aligned(q->len);
                                if (!bounce[nio]) {
                                        r = -ENOMEM;
                                        goto out;
                                }
                                atomic_fetch_add(&f->n_bounces, 1);
                                if (q->op == ORION_OP_WRITE)
                                        memcpy(bounce[nio], q->buf, q->len);
                                io->buf = bounce[nio];
                        }
                        map[nio++] = i;
                        break;
                case ORION_OP_FLUSH:
                        *io = (struct file_io) { .kind = FILE_IO_FSYNC };
                        map[nio++] = i;
                        break;
                default:
                        break;
                }
        }
        for (size_t i = 0; i < n; i++) {
                struct orion_req *q = &reqs[i];

                if (q->op == ORION_OP_DISCARD)
                        q->result = file_discard(b, q->len, q->off, q->flags);
                else if (q->op == ORION_OP_WRITE_ZEROES)
                        q->result = file_write_zeroes(b, q->len, q->off, q->flags);
                else if (q->op < 0 || q->op >= _ORION_OP_MAX)
                        q->result = -EINVAL;
        }
        if (nio > 0)
                (void) file_ring_run(f, ios, nio);
        for (size_t k = 0; k < nio; k++) {
                struct orion_req *q = &reqs[map[k]];

                q->result = ios[k].result;
                if (q->result == 0 && bounce[k] && q->op == ORION_OP_READ)
                        memcpy(q->buf, bounce[k], q->len);
        }
        for (size_t i = 0; i < n; i++)
                if (reqs[i].result < 0 && first == 0)
                        first = reqs[i].result;
        r = first;
out:
        for (size_t k = 0; k < nio; k++)
                free(bounce[k]);
        return r;
}

/* ---- Status, stats, close ------------------------------------------------------------------ */
static void file_stats(struct orion_bdev *b, struct json_object *sink) {
        struct file_node *f = orion_bdev_priv(b);

        orion_stats_put(sink, "ring_submissions", atomic_load(&f->n_submits));
        orion_stats_put(sink, "short_or_eagain_resubmits", atomic_load(&f->n_resubmits));
        orion_stats_put(sink, "bounce_buffers", atomic_load(&f->n_bounces));
        orion_stats_put(sink, "syscall_fallbacks", atomic_load(&f->n_sync_fallback));
        orion_stats_put(sink, "block_status_cached", atomic_load(&f->n_status_cached));
}

static void file_status(struct orion_bdev *b, struct json_object *out) {
        struct file_node *f = orion_bdev_priv(b);

        json_object_object_add(out, "path", json_object_new_string(f->path));
        json_object_object_add(out, "kind", json_object_new_string(f->blkdev ? "block-device" : "regular-file"));
        json_object_object_add(out, "direct", json_object_new_boolean(f->direct));
        json_object_object_add(out, "hole-punching", json_object_new_boolean(!atomic_load(&f->no_punch)));
        json_object_object_add(out, "zero-range", json_object_new_boolean(!atomic_load(&f->no_zero_range)));
}

static void file_close(struct orion_bdev *b) {
        struct file_node *f = orion_bdev_priv(b);

        if (f->fd >= 0)
                (void) close(f->fd); /* data was flushed by the core before close */
        f->fd = -1;
        free(f->path);
        f->path = NULL;
        pthread_mutex_destroy(&f->data_lock);
}

/* ---- Open ---------------------------------------------------------------------------------- */
/* Create the file sparse when missing and size= is given; refuse a size mismatch. */
static int open_fd(struct file_node *f, const struct orion_params *p, uint64_t want, bool have_size,
                   struct orion_error *err) {
        int flags = (f->readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC | (f->direct ? O_DIRECT : 0);
        int fd;

        fd = open(f->path, flags);
        if (fd < 0 && errno == ENOENT && have_size) {
                if (f->readonly)
                        return orion_error_set(err, ENOENT, "file: '%s' does not exist (read-only: not creating it)",
                                               f->path);
                fd = open(f->path, flags | O_CREAT | O_EXCL, 0600);
                if (fd >= 0 && ftruncate(fd, (off_t) want) < 0) {
                        int e = errno;

                        (void) close(fd);
                        (void) unlink(f->path);
                        return orion_error_set(err, e, "file: cannot size '%s' to %" PRIu64 " bytes: %s", f->path,
                                               want, strerror(e));
                }
        }
        if (fd < 0) {
                int e = errno;

                if (e == ENOENT && !have_size)
                        return orion_error_set(err, ENOENT, "file: '%s' does not exist (give size= to create it)",
                                               f->path);
                if (e == EINVAL && f->direct)
                        return orion_error_set(err, EINVAL, "file: '%s': the file system refuses O_DIRECT (direct=on)",
                                               f->path);
                return orion_error_set(err, e, "file: cannot open '%s': %s", f->path, strerror(e));
        }
        f->fd = fd;
        return 0;
}

static int file_geometry(struct orion_bdev *b, struct file_node *f, const struct orion_params *p, uint64_t want,
                         bool have_size, struct orion_error *err) {
        struct orion_geometry g = { 0 };
        struct stat st;
        uint64_t size;
        uint32_t bs = 512;

        if (fstat(f->fd, &st) < 0)
                return orion_error_set(err, errno, "file: stat '%s': %m", f->path);
        if (S_ISBLK(st.st_mode)) {
                int ssz = 0;

                f->blkdev = true;
                if (ioctl(f->fd, BLKGETSIZE64, &size) < 0)
                        return orion_error_set(err, errno, "file: BLKGETSIZE64 on '%s': %m", f->path);
                if (ioctl(f->fd, BLKSSZGET, &ssz) == 0 && ssz >= 512)
                        bs = (uint32_t) ssz;
        } else if (S_ISREG(st.st_mode)) {
                size = (uint64_t) st.st_size;
                if (size == 0 && have_size && !f->readonly) {
                        /* an empty file (mktemp, touch) is grown to size= */
                        if (ftruncate(f->fd, (off_t) want) < 0)
                                return orion_error_set(err, errno, "file: cannot size '%s': %m", f->path);
                        size = want;
                }
        } else
                return orion_error_set(err, EINVAL, "file: '%s' is neither a regular file nor a block device",
                                       f->path);

        if (have_size && size != want)
                return orion_error_set(err, EINVAL,
                                       "file: '%s' is %" PRIu64 " bytes but size=%" PRIu64
                                       " (Orion never resizes an existing file; drop size= to use it as is)",
                                       f->path, size, want);
        if (orion_param_is_set(p, "block-size")) {
                uint64_t v = orion_param_size(p, "block-size");

                if (v != 512 && v != 4096)
                        return orion_error_set(err, EINVAL, "file: block-size must be 512 or 4096, not %" PRIu64, v);
                if (v < bs)
                        return orion_error_set(err, EINVAL, "file: block-size %" PRIu64 " is below the device's %u",
                                               v, bs);
                bs = (uint32_t) v;
        }
        f->mem_align = MAX(bs, 512u);
        if (size % bs != 0) {
                if (have_size)
                        return orion_error_set(err, EINVAL, "file: size %" PRIu64 " is not a multiple of block-size %u",
                                               size, bs);
                orion_warn("file: '%s' is %" PRIu64 " bytes, not a multiple of %u: the last %" PRIu64
                           " bytes are not exported", f->path, size, bs, size % bs);
                size -= size % bs;
        }
        if (size == 0)
                return orion_error_set(err, EINVAL, "file: '%s' is empty (give size= to grow an empty file)", f->path);
        g.size = size;
        g.block_size = bs;
        g.pref_size = MAX(bs, 4096u);
        g.max_size = FILE_MAX_REQUEST;
        return orion_bdev_set_geometry(b, &g);
}

static int file_open(struct orion_bdev *b, const struct orion_params *p, struct orion_error *err) {
        struct file_node *f = orion_bdev_priv(b);
        bool have_size = orion_param_is_set(p, "size");
        uint64_t want = have_size ? orion_param_size(p, "size") : 0;
        uint32_t caps;
        int r;

        f->fd = -1;
        pthread_mutex_init(&f->data_lock, NULL);
        f->readonly = orion_param_bool(p, "read-only");
        f->direct = orion_param_bool(p, "direct");
        f->path = strdup(orion_param_str(p, "path"));
        if (!f->path)
                return orion_error_set(err, ENOMEM, "file: out of memory");
        if (have_size && want == 0) {
                r = orion_error_set(err, EINVAL, "file: size= must be above 0");
                goto fail;
        }
        r = open_fd(f, p, want, have_size, err);
        if (r < 0)
                goto fail;
        r = file_geometry(b, f, p, want, have_size, err);
        if (r < 0) {
                if (!orion_error_is_set(err))
                        orion_error_set(err, -r, "file: bad geometry for '%s'", f->path);
                goto fail;
        }
        caps = ORION_CAP_FLUSH | ORION_CAP_FUA | ORION_CAP_DISCARD | ORION_CAP_WRITE_ZEROES | ORION_CAP_MULTI_CONN;
        /* Fast zeroing of a file is hole punching: probe it past the end of the file, where a
         * file system that can punch does nothing and one that cannot says EOPNOTSUPP. */
        if (!f->blkdev && !f->readonly &&
            unsupported(do_fallocate(f, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 4096,
                                     ALIGN_UP(orion_bdev_size(b), (uint64_t) 4096) + 4096)))
                atomic_store(&f->no_punch, true);
        if (f->blkdev || !atomic_load(&f->no_punch))
                caps |= ORION_CAP_FAST_ZERO;
        if (!f->blkdev)
                caps |= ORION_CAP_BLOCK_STATUS;
        if (f->readonly)
                caps = (caps & ~(ORION_CAP_DISCARD | ORION_CAP_WRITE_ZEROES | ORION_CAP_FAST_ZERO)) |
                       ORION_CAP_READONLY;
        orion_bdev_set_caps(b, caps);
        orion_debug("file: '%s' opened (%s, %" PRIu64 " bytes, block %u%s)", f->path,
                    f->blkdev ? "block device" : "regular file", orion_bdev_size(b), orion_bdev_block_size(b),
                    f->direct ? ", O_DIRECT" : "");
        return 0;
fail:
        file_close(b);
        return r;
}

static const struct orion_param file_params[] = {
        { .name = "path", .type = ORION_PARAM_PATH, .help = "Regular file or block device to serve." },
        { .name = "size", .type = ORION_PARAM_SIZE, .optional = true,
          .help = "Create a sparse file of this size if path does not exist (or grow an empty file); an "
                  "existing file must have exactly this size." },
        { .name = "direct", .type = ORION_PARAM_BOOL, .def = "off",
          .help = "Open with O_DIRECT, bypassing the page cache (unaligned buffers are bounced)." },
        { .name = "read-only", .type = ORION_PARAM_BOOL, .def = "off",
          .help = "Open read-only; writes, discards and zeroes fail with EROFS." },
        { .name = "block-size", .type = ORION_PARAM_SIZE, .optional = true,
          .help = "Logical block size, 512 or 4096 (default: 512, or the block device's logical block size)." },
        {},
};

static const struct orion_bdev_ops file_ops = {
        .pread = file_pread,
        .pwrite = file_pwrite,
        .flush = file_flush,
        .discard = file_discard,
        .write_zeroes = file_write_zeroes,
        .block_status = file_block_status,
        .submit = file_submit,
        .stats = file_stats,
        .status = file_status,
        .close = file_close,
};

ORION_BUILTIN_TYPE(orion_type_file, .name = "file",
                   .description = "Regular file or block device through io_uring (sparse create, O_DIRECT, "
                                  "hole punching, SEEK_HOLE block status)",
                   .params = file_params, .instance_size = sizeof(struct file_node), .ops = &file_ops,
                   .open = file_open);
