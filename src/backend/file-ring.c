/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The file leaf's I/O engine: every thread owns one io_uring (created on first use, torn down
 * when the thread exits); a batch of reads, writes and fsyncs becomes one submission. */
#include <errno.h>
#include <liburing.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "backend/file.h"
#include "common/cleanup.h"
#include "orion/log.h"

#define RING_ENTRIES 128
#define MAX_SQE_LEN (1u << 30) /* larger pieces go in several rounds, like a short read */

struct thread_ring {
        struct io_uring ring;
        bool broken;            /* setup failed: use system calls on this thread */
};

static pthread_key_t g_ring_key;
static pthread_once_t g_ring_once = PTHREAD_ONCE_INIT;
static _Thread_local struct thread_ring *tl_ring;

static void ring_free_cb(void *p) {
        struct thread_ring *r = p;

        if (!r->broken)
                io_uring_queue_exit(&r->ring);
        free(r);
}

static void ring_key_init(void) {
        /* Without the key a ring would leak at thread exit; still usable, so only warn. */
        if (pthread_key_create(&g_ring_key, ring_free_cb) != 0)
                orion_warn("file: cannot create thread key for io_uring cleanup, ignoring");
}

static struct thread_ring *ring_get(void) {
        struct thread_ring *r;
        int k;

        if (tl_ring)
                return tl_ring;
        (void) pthread_once(&g_ring_once, ring_key_init);
        r = calloc(1, sizeof(*r));
        if (!r)
                return NULL;
        k = io_uring_queue_init(RING_ENTRIES, &r->ring, 0);
        if (k < 0) {
                r->broken = true;
                orion_log_ratelimited(ORION_LOG_WARNING,
                                      "file: io_uring unavailable (%s), using system calls", strerror(-k));
        }
        (void) pthread_setspecific(g_ring_key, r);
        tl_ring = r;
        return r;
}

/* ---- Synchronous fallback ------------------------------------------------------------------ */
static int io_sync_one(struct file_node *f, struct file_io *io) {
        while (io->kind != FILE_IO_FSYNC && io->done < io->len) {
                size_t chunk = MIN(io->len - io->done, (uint64_t) MAX_SQE_LEN);
                struct iovec iov = { io->buf + io->done, chunk };
                ssize_t k;

                if (io->kind == FILE_IO_READ)
                        k = preadv2(f->fd, &iov, 1, (off_t) (io->off + io->done), 0);
                else
                        k = pwritev2(f->fd, &iov, 1, (off_t) (io->off + io->done), io->fua ? RWF_DSYNC : 0);
                if (k < 0 && (errno == EINTR || errno == EAGAIN))
                        continue;
                if (k < 0)
                        return -errno;
                if (k == 0)
                        return -EIO; /* end of file inside the device: truncated behind our back */
                io->done += (uint64_t) k;
        }
        if (io->kind == FILE_IO_FSYNC && fdatasync(f->fd) < 0)
                return -errno;
        return 0;
}

static int run_sync(struct file_node *f, struct file_io *ios, size_t n) {
        int first = 0;

        atomic_fetch_add(&f->n_sync_fallback, 1);
        for (size_t i = 0; i < n; i++) {
                if (ios[i].state != 2) {
                        ios[i].result = io_sync_one(f, &ios[i]);
                        ios[i].state = 2;
                }
                if (ios[i].result < 0 && first == 0)
                        first = ios[i].result;
        }
        return first;
}

/* ---- Ring ------------------------------------------------------------------------------------ */
static void prep_one(struct io_uring_sqe *sqe, struct file_node *f, struct file_io *io, size_t idx) {
        uint64_t rest = io->len - io->done;
        unsigned chunk = (unsigned) MIN(rest, (uint64_t) MAX_SQE_LEN);

        switch (io->kind) {
        case FILE_IO_READ:
                io_uring_prep_read(sqe, f->fd, io->buf + io->done, chunk, io->off + io->done);
                break;
        case FILE_IO_WRITE:
                io_uring_prep_write(sqe, f->fd, io->buf + io->done, chunk, io->off + io->done);
                if (io->fua)
                        sqe->rw_flags = RWF_DSYNC;
                break;
        case FILE_IO_FSYNC:
                io_uring_prep_fsync(sqe, f->fd, IORING_FSYNC_DATASYNC);
                break;
        }
        io_uring_sqe_set_data64(sqe, idx);
        io->state = 1;
}

/* Account one completion; returns true when the piece must be submitted again. */
static bool complete_one(struct file_io *io, int res) {
        if (res == -EAGAIN || res == -EINTR)
                return true;
        if (res < 0) {
                io->result = res;
                return false;
        }
        if (io->kind == FILE_IO_FSYNC)
                return false;
        if (res == 0) {
                io->result = -EIO; /* end of file inside the device: truncated behind our back */
                return false;
        }
        io->done += (uint64_t) res;
        return io->done < io->len; /* short read/write: the rest goes again */
}

int file_ring_run(struct file_node *f, struct file_io *ios, size_t n) {
        struct thread_ring *tr = ring_get();
        struct io_uring *ring;
        size_t finished = 0, cursor = 0, requeued = 0;
        unsigned inflight = 0, failures = 0;
        int first = 0;

        for (size_t i = 0; i < n; i++) {
                ios[i].done = 0;
                ios[i].state = 0;
                ios[i].result = 0;
        }
        if (!tr || tr->broken)
                return run_sync(f, ios, n);
        /* One buffered request, or one fsync, gains nothing from the ring: the kernel hands
         * either to an io-wq worker, two context switches per request that the caller's own
         * thread (one per in-flight request above us) avoids by doing the system call itself. */
        if (n == 1 && (!f->direct || ios[0].kind == FILE_IO_FSYNC)) {
                ios[0].result = io_sync_one(f, &ios[0]);
                ios[0].state = 2;
                return ios[0].result;
        }
        ring = &tr->ring;
        atomic_fetch_add(&f->n_submits, 1);

        while (finished < n) {
                struct io_uring_cqe *cqe;
                unsigned head, seen = 0;
                int k;

                /* Queue everything that waits, as far as the ring has room. Resubmissions are
                 * rare, so a rescan from the start is fine for them. */
                if (requeued > 0) {
                        cursor = 0;
                        requeued = 0;
                }
                for (; cursor < n && io_uring_sq_space_left(ring) > 0; cursor++) {
                        if (ios[cursor].state != 0)
                                continue;
                        prep_one(io_uring_get_sqe(ring), f, &ios[cursor], cursor);
                        inflight++;
                }
                k = io_uring_submit_and_wait(ring, 1);
                if (k < 0 && k != -EINTR && k != -EAGAIN && k != -EBUSY && ++failures > 3) {
                        /* The ring itself keeps failing: drop it (the kernel finishes or cancels
                         * what it holds before the ring goes away) and use system calls. */
                        orion_log_ratelimited(ORION_LOG_ERR, "file: io_uring_submit: %s, using system calls",
                                              strerror(-k));
                        io_uring_queue_exit(ring);
                        tr->broken = true;
                        return run_sync(f, ios, n);
                }
                io_uring_for_each_cqe(ring, head, cqe) {
                        size_t idx = (size_t) io_uring_cqe_get_data64(cqe);
                        struct file_io *io = &ios[idx];

                        seen++;
                        inflight--;
                        if (complete_one(io, cqe->res)) {
                                io->state = 0;
                                requeued++;
                                atomic_fetch_add(&f->n_resubmits, 1);
                                continue;
                        }
                        io->state = 2;
                        finished++;
                        if (io->result < 0 && first == 0)
                                first = io->result;
                }
                io_uring_cq_advance(ring, seen);
        }
        return first;
}
