/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* `iscsi` leaf: a remote LUN through libiscsi. One I/O thread owns the session (libiscsi
 * contexts are not thread-safe); callers queue requests and wait, many commands are in flight.
 * A lost session is rebuilt and unanswered commands are sent again (remote.c policy). */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <iscsi/iscsi.h>
#include <iscsi/scsi-lowlevel.h>
#include <json-c/json.h>

#include "backend/remote.h"
#include "common/cleanup.h"
#include "orion/plugin.h"

#define ISCSI_MAX_REQUEST (8u << 20)
#define ISCSI_MAX_INFLIGHT 64
#define ISCSI_LBA_STATUS_ALLOC 4096u /* GET LBA STATUS answer: 8 + 16 bytes per descriptor */
#define ISCSI_MAX_RETRIES 8 /* per request: UNIT ATTENTION, BUSY, transport errors */

enum iscsi_req_op { IREQ_READ, IREQ_WRITE, IREQ_FLUSH, IREQ_UNMAP, IREQ_ZERO, IREQ_LBA_STATUS };

struct iscsi_req {
        struct iscsi_leaf *leaf;
        enum iscsi_req_op op;
        bool fua, unmap;            /* WRITE: FUA bit; ZERO: WRITE SAME with UNMAP */
        void *buf;
        uint64_t len, off;
        struct orion_extents *ext;  /* LBA_STATUS: filled by task_cb from the descriptors */
        struct scsi_iovec iov;
        unsigned retries;
        uint64_t give_up;           /* request-timeout + retry-timeout after the start; 0 = never */
        bool timed_out;             /* went unanswered once: see issue_queued */
        int result;
        struct orion_areq *a;       /* submit_async: completed through a->done, q is freed */
        sem_t done;                 /* else posted once result is final: one wake-up for this caller */
        struct iscsi_req *next;
};

struct iscsi_leaf {
        char *url;                  /* as given (with the secret: never logged) */
        char *what;                 /* "iscsi: 'portal/target/lun'" (no secret) */
        char *initiator;
        char *chap_user, *chap_secret; /* user= and secret-file= (override the URL's) */
        struct remote_state rs;
        pthread_mutex_t qlock;      /* queue */
        struct iscsi_req *queue, **queue_tail;
        unsigned inflight;          /* I/O thread only */
        int efd;
        bool polling;               /* the I/O thread may be asleep in poll: wake it with efd */
        int req_timeout;            /* request-timeout, seconds (libiscsi's PDU timeout); 0 = none */
        bool timed_out;             /* I/O thread: a command got no answer in time, drop the session */
        atomic_uint_fast64_t hung;  /* sessions dropped for not answering */
        pthread_t thread;
        bool started;
        struct iscsi_context *ctx;  /* I/O thread only, after open */
        int lun;
        uint32_t bs;
        uint64_t size;
        uint32_t max_unmap_blocks, max_ws_blocks;
        bool can_unmap, can_ws, lbprz;
        bool lbpme;                 /* thin LUN: GET LBA STATUS tells holes */
        atomic_bool no_lba_status;  /* the target refused GET LBA STATUS once: stop asking */
        unsigned char *zero_block;  /* WRITE SAME payload */
        atomic_uint_fast64_t resent;
};

/* ---- Session setup --------------------------------------------------------------------------- */
static struct iscsi_context *session_connect(struct iscsi_leaf *l, char *errbuf, size_t errlen) {
        struct iscsi_context *ctx = iscsi_create_context(l->initiator);
        struct iscsi_url *u;

        if (!ctx) {
                snprintf(errbuf, errlen, "cannot create an iSCSI context");
                return NULL;
        }
        u = iscsi_parse_full_url(ctx, l->url);
        if (!u) {
                snprintf(errbuf, errlen, "bad URL: %s", iscsi_get_error(ctx));
                goto fail;
        }
        l->lun = u->lun;
        /* Orion owns reconnection (retry window, EIO, health): libiscsi must not retry forever. */
        iscsi_set_noautoreconnect(ctx, 1);
        /* Every PDU, the login's too, fails with SCSI_STATUS_TIMEOUT when unanswered for this
         * long (libiscsi checks in iscsi_service, which the I/O thread calls at least every
         * second): a target that stops answering cannot hold requests or a reconnect forever. */
        (void) iscsi_set_timeout(ctx, l->req_timeout);
        if (iscsi_set_targetname(ctx, u->target) < 0 || iscsi_set_session_type(ctx, ISCSI_SESSION_NORMAL) < 0 ||
            iscsi_set_header_digest(ctx, ISCSI_HEADER_DIGEST_NONE_CRC32C) < 0 ||
            (l->chap_user && iscsi_set_initiator_username_pwd(ctx, l->chap_user, l->chap_secret) < 0) ||
            (!l->chap_user && u->user[0] && iscsi_set_initiator_username_pwd(ctx, u->user, u->passwd) < 0)) {
                snprintf(errbuf, errlen, "%s", iscsi_get_error(ctx));
                iscsi_destroy_url(u);
                goto fail;
        }
        if (iscsi_full_connect_sync(ctx, u->portal, u->lun) < 0) {
                /* the target and portal are in l->what already */
                snprintf(errbuf, errlen, "login failed: %s", iscsi_get_error(ctx));
                iscsi_destroy_url(u);
                goto fail;
        }
        iscsi_destroy_url(u);
        return ctx;
fail:
        iscsi_destroy_context(ctx);
        return NULL;
}

static int read_capacity(struct iscsi_leaf *l, struct iscsi_context *ctx, uint64_t *ret_size, uint32_t *ret_bs,
                         bool *ret_lbpme, char *errbuf, size_t errlen) {
        struct scsi_task *t = iscsi_readcapacity16_sync(ctx, l->lun);
        struct scsi_readcapacity16 *rc;

        if (!t || t->status != SCSI_STATUS_GOOD || !(rc = scsi_datain_unmarshall(t))) {
                snprintf(errbuf, errlen, "READ CAPACITY(16) failed: %s", iscsi_get_error(ctx));
                if (t)
                        scsi_free_scsi_task(t);
                return -EIO;
        }
        *ret_bs = rc->block_length;
        *ret_size = (rc->returned_lba + 1) * (uint64_t) rc->block_length;
        *ret_lbpme = rc->lbpme;
        scsi_free_scsi_task(t);
        return 0;
}

/* UNMAP and WRITE SAME limits from the Block Limits and Logical Block Provisioning VPD pages. */
static void read_vpd(struct iscsi_leaf *l, struct iscsi_context *ctx, bool lbpme) {
        struct scsi_task *t;

        t = iscsi_inquiry_sync(ctx, l->lun, 1, SCSI_INQUIRY_PAGECODE_LOGICAL_BLOCK_PROVISIONING, 64);
        if (t && t->status == SCSI_STATUS_GOOD) {
                struct scsi_inquiry_logical_block_provisioning *lbp = scsi_datain_unmarshall(t);

                if (lbp) {
                        l->can_unmap = lbpme && lbp->lbpu;
                        l->can_ws = lbp->lbpws;
                        l->lbprz = lbp->lbprz;
                }
        }
        if (t)
                scsi_free_scsi_task(t);
        l->max_unmap_blocks = 0;
        l->max_ws_blocks = 0;
        t = iscsi_inquiry_sync(ctx, l->lun, 1, SCSI_INQUIRY_PAGECODE_BLOCK_LIMITS, 64);
        if (t && t->status == SCSI_STATUS_GOOD) {
                struct scsi_inquiry_block_limits *bl = scsi_datain_unmarshall(t);

                if (bl) {
                        l->max_unmap_blocks = bl->max_unmap;
                        l->max_ws_blocks = (uint32_t) MIN(bl->max_ws_len, (uint64_t) UINT32_MAX);
                }
        }
        if (t)
                scsi_free_scsi_task(t);
}

/* ---- Completion ------------------------------------------------------------------------------ */
/* GET LBA STATUS descriptors into q->ext: contiguous from q->off, clipped to q->len. A target
 * may describe less than asked (the caller asks again from where it stopped); one that answers
 * with nothing usable is told as data, always a correct answer. */
static int lba_status_extents(struct iscsi_leaf *l, struct iscsi_req *q, struct scsi_task *t) {
        struct scsi_get_lba_status *st = t ? scsi_datain_unmarshall(t) : NULL;
        uint64_t pos = q->off, end = q->off + q->len;

        for (uint32_t i = 0; st && i < st->num_descriptors && pos < end; i++) {
                const struct scsi_lba_status_descriptor *d = &st->descriptors[i];
                uint64_t from = d->lba * l->bs, n = (uint64_t) d->num_blocks * l->bs;
                uint32_t flags = 0;

                if (from != pos || n == 0 || d->lba > UINT64_MAX / l->bs)
                        break;
                /* deallocated and anchored blocks read back as zeroes only with LBPRZ */
                if (d->provisioning != SCSI_PROVISIONING_TYPE_MAPPED)
                        flags = ORION_EXTENT_HOLE | (l->lbprz ? ORION_EXTENT_ZERO : 0);
                n = MIN(n, end - pos);
                if (orion_extents_add(q->ext, pos, n, flags) < 0)
                        return 0;
                pos += n;
        }
        return pos == q->off ? orion_extents_add(q->ext, pos, end - pos, 0) : 0;
}

static void req_finish(struct iscsi_leaf *l, struct iscsi_req *q, int result) {
        struct orion_areq *a = q->a;

        q->result = result;
        if (!a) {
                sem_post(&q->done);
                return;
        }
        free(q);
        a->req.result = result;
        a->done(a);
}

/* Put a request back at the head of the queue: it is sent again on the next session. */
static void req_requeue(struct iscsi_leaf *l, struct iscsi_req *q) {
        pthread_mutex_lock(&l->qlock);
        q->next = l->queue;
        l->queue = q;
        if (!q->next)
                l->queue_tail = &q->next;
        pthread_mutex_unlock(&l->qlock);
        atomic_fetch_add(&l->resent, 1);
}

static int sense_to_errno(const struct scsi_sense *s) {
        switch (s->key) {
        case SCSI_SENSE_DATA_PROTECTION:
                return EROFS;
        case SCSI_SENSE_ILLEGAL_REQUEST:
                if (s->ascq == SCSI_SENSE_ASCQ_INVALID_OPERATION_CODE)
                        return EOPNOTSUPP;
                return s->ascq == SCSI_SENSE_ASCQ_LBA_OUT_OF_RANGE ? ENOSPC : EINVAL;
        default:
                return EIO;
        }
}

static void task_cb(struct iscsi_context *ctx, int status, void *command_data, void *private_data) {
        struct iscsi_req *q = private_data;
        struct scsi_task *t = command_data;
        struct iscsi_leaf *l = q->leaf;
        struct scsi_sense sense = { 0 };
        bool retry = false;
        int r = 0;

        l->inflight--;
        if (status == SCSI_STATUS_GOOD)
                r = q->op == IREQ_LBA_STATUS ? lba_status_extents(l, q, t) : 0;
        else if (status == SCSI_STATUS_CANCELLED || status == SCSI_STATUS_TIMEOUT) {
                /* the session went away, or the target stopped answering (the I/O thread drops
                 * the session): never answered, so it is sent again on the next session */
                if (t)
                        scsi_free_scsi_task(t);
                if (status == SCSI_STATUS_TIMEOUT) {
                        l->timed_out = true;
                        q->timed_out = true;
                }
                req_requeue(l, q);
                return;
        } else if (status == SCSI_STATUS_CHECK_CONDITION && t) {
                sense = t->sense;
                retry = sense.key == SCSI_SENSE_UNIT_ATTENTION || sense.key == SCSI_SENSE_NOT_READY;
                r = -sense_to_errno(&sense);
        } else {
                /* BUSY, TASK SET FULL, transport errors: try again a few times */
                retry = status == SCSI_STATUS_BUSY || status == 0x28 /* TASK SET FULL */ || status == SCSI_STATUS_ERROR;
                r = -EIO;
        }
        if (t)
                scsi_free_scsi_task(t);
        if (retry && ++q->retries <= ISCSI_MAX_RETRIES) {
                req_requeue(l, q);
                return;
        }
        /* a target without GET LBA STATUS is not an error: iscsi_block_status_op says so once */
        if (r < 0 && !(q->op == IREQ_LBA_STATUS && (r == -EOPNOTSUPP || r == -EINVAL)))
                orion_log_ratelimited(ORION_LOG_ERR, "%s: command failed (status 0x%x, sense %d/0x%04x): %s", l->what,
                                      (unsigned) status, (int) sense.key, (unsigned) sense.ascq, strerror(-r));
        req_finish(l, q, r);
}

/* ---- Issuing (I/O thread) -------------------------------------------------------------------- */
static struct scsi_task *issue(struct iscsi_leaf *l, struct iscsi_req *q) {
        uint64_t lba = q->off / l->bs;
        uint32_t blocks = (uint32_t) (q->len / l->bs);

        switch (q->op) {
        case IREQ_READ:
                q->iov = (struct scsi_iovec) { q->buf, q->len };
                return iscsi_read16_iov_task(l->ctx, l->lun, lba, (uint32_t) q->len, (int) l->bs, 0, 0, 0, 0, 0, task_cb,
                                             q, &q->iov, 1);
        case IREQ_WRITE:
                q->iov = (struct scsi_iovec) { q->buf, q->len };
                return iscsi_write16_iov_task(l->ctx, l->lun, lba, NULL, (uint32_t) q->len, (int) l->bs, 0, 0, q->fua,
                                              0, 0, task_cb, q, &q->iov, 1);
        case IREQ_FLUSH:
                return iscsi_synchronizecache16_task(l->ctx, l->lun, 0, 0, 0, 0, task_cb, q);
        case IREQ_UNMAP: {
                struct unmap_list ul = { .lba = lba, .num = blocks };

                return iscsi_unmap_task(l->ctx, l->lun, 0, 0, &ul, 1, task_cb, q);
        }
        case IREQ_ZERO:
                return iscsi_writesame16_task(l->ctx, l->lun, lba, l->zero_block, l->bs, blocks, 0, q->unmap, 0, 0,
                                              task_cb, q);
        case IREQ_LBA_STATUS:
                return iscsi_get_lba_status_task(l->ctx, l->lun, lba, ISCSI_LBA_STATUS_ALLOC, task_cb, q);
        }
        return NULL;
}

static void issue_queued(struct iscsi_leaf *l) {
        for (;;) {
                struct iscsi_req *q;

                if (l->inflight >= ISCSI_MAX_INFLIGHT)
                        return;
                pthread_mutex_lock(&l->qlock);
                q = l->queue;
                if (q) {
                        l->queue = q->next;
                        if (!l->queue)
                                l->queue_tail = &l->queue;
                }
                pthread_mutex_unlock(&l->qlock);
                if (!q)
                        return;
                /* A target that logs in fine but is always too slow for this command must not
                 * keep it going round forever. (One that does not come back is failed by
                 * fail_queued past retry-timeout, with the node degraded.) */
                if (q->timed_out && q->give_up && remote_now_ns() >= q->give_up) {
                        orion_log_ratelimited(ORION_LOG_ERR,
                                              "%s: a command got no answer within request-timeout + retry-timeout: EIO",
                                              l->what);
                        req_finish(l, q, -EIO);
                        continue;
                }
                l->inflight++;
                if (!issue(l, q)) {
                        l->inflight--;
                        orion_log_ratelimited(ORION_LOG_ERR, "%s: cannot queue a command: %s", l->what,
                                              iscsi_get_error(l->ctx));
                        req_finish(l, q, -ENOMEM);
                }
        }
}

/* Fail everything queued (past the retry window, or stopping). */
static void fail_queued(struct iscsi_leaf *l) {
        for (;;) {
                struct iscsi_req *q;

                pthread_mutex_lock(&l->qlock);
                q = l->queue;
                if (q) {
                        l->queue = q->next;
                        if (!l->queue)
                                l->queue_tail = &l->queue;
                }
                pthread_mutex_unlock(&l->qlock);
                if (!q)
                        return;
                req_finish(l, q, -EIO);
        }
}

/* Drop the session: every unanswered command comes back through task_cb as CANCELLED and is
 * queued again. */
static void session_lost(struct iscsi_leaf *l, const char *why) {
        char reason[256];

        l->timed_out = false;
        snprintf(reason, sizeof(reason), "%s", why);
        iscsi_destroy_context(l->ctx);
        l->ctx = NULL;
        l->inflight = 0;
        remote_conn_down(&l->rs, reason);
}

static bool session_reconnect(struct iscsi_leaf *l, unsigned attempt) {
        char err[512];
        uint64_t size;
        uint32_t bs;
        bool lbpme;

        l->ctx = session_connect(l, err, sizeof(err));
        if (l->ctx && read_capacity(l, l->ctx, &size, &bs, &lbpme, err, sizeof(err)) == 0 &&
            (size != l->size || bs != l->bs))
                snprintf(err, sizeof(err), "LUN geometry changed (%" PRIu64 " bytes of %u)", size, bs);
        else if (l->ctx) {
                remote_conn_up(&l->rs, true);
                return true;
        }
        if (l->ctx)
                iscsi_destroy_context(l->ctx);
        l->ctx = NULL;
        orion_debug("%s: reconnect attempt %u: %s", l->what, attempt, err);
        return false;
}

/* Announce that the I/O thread is about to sleep, so that callers queueing from now on wake
 * it; a request queued before that is issued without sleeping. Callers queue under qlock and
 * then read polling, so one of the two always sees the other. */
static int poll_timeout(struct iscsi_leaf *l) {
        bool queued;

        __atomic_store_n(&l->polling, true, __ATOMIC_SEQ_CST);
        WITH_LOCK(&l->qlock)
                queued = l->queue != NULL;
        /* 1 s lets libiscsi run its timers when nothing happens */
        return queued && l->inflight < ISCSI_MAX_INFLIGHT ? 0 : 1000;
}

static void *io_thread(void *arg) {
        struct iscsi_leaf *l = arg;
        unsigned attempt = 0;
        uint64_t junk;

        while (!__atomic_load_n(&l->rs.stopping, __ATOMIC_ACQUIRE)) {
                struct pollfd fds[2] = { { .fd = -1 }, { .fd = l->efd, .events = POLLIN } };

                if (!l->ctx) {
                        if (remote_expired(&l->rs))
                                fail_queued(l);
                        if (!remote_sleep(&l->rs, remote_backoff_ns(attempt++)))
                                break;
                        if (session_reconnect(l, attempt))
                                attempt = 0;
                        continue;
                }
                issue_queued(l);
                fds[0].fd = iscsi_get_fd(l->ctx);
                fds[0].events = (short) iscsi_which_events(l->ctx);
                if (poll(fds, 2, poll_timeout(l)) < 0 && errno != EINTR) {
                        __atomic_store_n(&l->polling, false, __ATOMIC_SEQ_CST);
                        continue;
                }
                __atomic_store_n(&l->polling, false, __ATOMIC_SEQ_CST);
                if (fds[1].revents & POLLIN)
                        (void) read(l->efd, &junk, sizeof(junk)); /* only a wake-up */
                /* revents 0 on a timeout still lets libiscsi run its timers */
                if (iscsi_service(l->ctx, fds[0].revents) < 0 || fds[0].revents & (POLLHUP | POLLERR))
                        session_lost(l, iscsi_get_error(l->ctx));
                else if (l->timed_out) {
                        char why[64];

                        snprintf(why, sizeof(why), "no reply within request-timeout (%d s)", l->req_timeout);
                        atomic_fetch_add(&l->hung, 1);
                        session_lost(l, why);
                }
        }
        return NULL;
}

/* ---- Caller side ----------------------------------------------------------------------------- */
/* Queue q for the I/O thread. */
static void req_queue(struct iscsi_leaf *l, struct iscsi_req *q) {
        uint64_t one = 1;

        q->leaf = l;
        q->next = NULL;
        q->give_up = l->req_timeout ? remote_now_ns() + (uint64_t) l->req_timeout * 1000000000u + l->rs.window_ns : 0;
        pthread_mutex_lock(&l->qlock);
        *l->queue_tail = q;
        l->queue_tail = &q->next;
        pthread_mutex_unlock(&l->qlock);
        /* An I/O thread that is awake issues the queue before it polls again (poll_timeout):
         * a write to efd for every request would cost it a wake-up each. */
        if (__atomic_load_n(&l->polling, __ATOMIC_SEQ_CST))
                (void) write(l->efd, &one, sizeof(one));
}

static int run_req(struct iscsi_leaf *l, struct iscsi_req *q) {
        int r = remote_wait_up(&l->rs);

        if (r < 0)
                return r == -ESHUTDOWN ? -EIO : r;
        sem_init(&q->done, 0, 0);
        req_queue(l, q);
        while (sem_wait(&q->done) < 0 && errno == EINTR)
                ;
        sem_destroy(&q->done);
        return q->result;
}

static int iscsi_pread_op(struct orion_bdev *b, void *buf, uint64_t len, uint64_t off, uint32_t flags) {
        struct iscsi_req q = { .op = IREQ_READ, .buf = buf, .len = len, .off = off };

        return run_req(orion_bdev_priv(b), &q);
}

static int iscsi_pwrite_op(struct orion_bdev *b, const void *buf, uint64_t len, uint64_t off, uint32_t flags) {
        struct iscsi_req q = { .op = IREQ_WRITE, .buf = (void *) buf, .len = len, .off = off,
                               .fua = flags & ORION_FUA };

        return run_req(orion_bdev_priv(b), &q);
}

/* Reads, writes and flushes complete from the I/O thread, with no thread waiting for them.
 * While the session is down they are refused, and the core runs them synchronously: they wait
 * for the reconnect (or fail past retry-timeout) like every other request. */
static int iscsi_submit_async_op(struct orion_bdev *b, struct orion_areq *a) {
        struct iscsi_leaf *l = orion_bdev_priv(b);
        const struct orion_req *r = &a->req;
        struct iscsi_req *q;
        bool up;

        if (r->op != ORION_OP_READ && r->op != ORION_OP_WRITE && r->op != ORION_OP_FLUSH)
                return -EOPNOTSUPP;
        WITH_LOCK(&l->rs.lock)
                up = l->rs.up > 0 && !l->rs.stopping;
        if (!up)
                return -EAGAIN;
        q = calloc(1, sizeof(*q));
        if (!q)
                return -ENOMEM;
        q->a = a;
        q->buf = r->buf;
        q->len = r->len;
        q->off = r->off;
        q->op = r->op == ORION_OP_READ ? IREQ_READ : r->op == ORION_OP_WRITE ? IREQ_WRITE : IREQ_FLUSH;
        q->fua = r->op == ORION_OP_WRITE && (r->flags & ORION_FUA);
        req_queue(l, q);
        return 0;
}

static int iscsi_flush_op(struct orion_bdev *b, uint32_t flags) {
        struct iscsi_req q = { .op = IREQ_FLUSH };

        return run_req(orion_bdev_priv(b), &q);
}

/* UNMAP and WRITE SAME in pieces within the target's limits. */
static int ranged(struct orion_bdev *b, enum iscsi_req_op op, uint64_t len, uint64_t off, bool unmap,
                  uint32_t max_blocks) {
        struct iscsi_leaf *l = orion_bdev_priv(b);
        uint64_t step = (uint64_t) (max_blocks ? MIN(max_blocks, 65536u) : 65536u) * l->bs;

        while (len > 0) {
                struct iscsi_req q = { .op = op, .len = MIN(len, step), .off = off, .unmap = unmap };
                int r = run_req(l, &q);

                if (r < 0)
                        return r;
                len -= q.len;
                off += q.len;
        }
        return 0;
}

static int iscsi_discard_op(struct orion_bdev *b, uint64_t len, uint64_t off, uint32_t flags) {
        struct iscsi_leaf *l = orion_bdev_priv(b);
        int r = ranged(b, IREQ_UNMAP, len, off, false, l->max_unmap_blocks);

        return r == 0 && (flags & ORION_FUA) ? iscsi_flush_op(b, 0) : r;
}

static int iscsi_write_zeroes_op(struct orion_bdev *b, uint64_t len, uint64_t off, uint32_t flags) {
        struct iscsi_leaf *l = orion_bdev_priv(b);
        /* WRITE SAME with UNMAP only where unmapped blocks read back as zeroes (LBPRZ) */
        bool unmap = !(flags & ORION_NO_HOLE) && l->can_unmap && l->lbprz;
        int r = ranged(b, IREQ_ZERO, len, off, unmap, l->max_ws_blocks);

        return r == 0 && (flags & ORION_FUA) ? iscsi_flush_op(b, 0) : r;
}

/* GET LBA STATUS on thin LUNs. A target that does not know the command gets asked no more and
 * the range is data, which the core would say without the cap too. */
static int iscsi_block_status_op(struct orion_bdev *b, uint64_t len, uint64_t off, struct orion_extents *ext) {
        struct iscsi_leaf *l = orion_bdev_priv(b);
        struct iscsi_req q = { .op = IREQ_LBA_STATUS, .len = len, .off = off, .ext = ext };
        int r;

        if (atomic_load(&l->no_lba_status))
                r = orion_extents_add(ext, off, len, 0);
        else
                r = run_req(l, &q);
        if (r == -EOPNOTSUPP || r == -EINVAL) {
                if (!atomic_exchange(&l->no_lba_status, true))
                        orion_info("%s: the target refuses GET LBA STATUS; the LUN reads as all data", l->what);
                r = orion_extents_add(ext, off, len, 0);
        }
        return r == -E2BIG ? 0 : r;
}

static void iscsi_stats_op(struct orion_bdev *b, struct json_object *sink) {
        struct iscsi_leaf *l = orion_bdev_priv(b);

        orion_stats_put(sink, "resent_after_disconnect", atomic_load(&l->resent));
        orion_stats_put(sink, "dropped_unanswering", atomic_load(&l->hung));
        WITH_LOCK(&l->rs.lock) orion_stats_put(sink, "reconnects", l->rs.reconnects);
}

static void iscsi_status_op(struct orion_bdev *b, struct json_object *out) {
        struct iscsi_leaf *l = orion_bdev_priv(b);

        json_object_object_add(out, "target", json_object_new_string(l->what));
        json_object_object_add(out, "unmap", json_object_new_boolean(l->can_unmap));
        json_object_object_add(out, "write-same", json_object_new_boolean(l->can_ws));
        json_object_object_add(out, "lba-status",
                               json_object_new_boolean(l->lbpme && !atomic_load(&l->no_lba_status)));
        WITH_LOCK(&l->rs.lock) json_object_object_add(out, "connected", json_object_new_boolean(l->rs.up > 0));
}

/* ---- Lifecycle ------------------------------------------------------------------------------- */
static void iscsi_close_op(struct orion_bdev *b) {
        struct iscsi_leaf *l = orion_bdev_priv(b);
        uint64_t one = 1;

        WITH_LOCK(&l->rs.lock) {
                __atomic_store_n(&l->rs.stopping, true, __ATOMIC_RELEASE);
                pthread_cond_broadcast(&l->rs.cond);
        }
        if (l->started) {
                (void) write(l->efd, &one, sizeof(one));
                pthread_join(l->thread, NULL);
        }
        if (l->ctx) {
                (void) iscsi_logout_sync(l->ctx);
                iscsi_destroy_context(l->ctx);
        }
        fail_queued(l);
        if (l->efd >= 0)
                close(l->efd);
        pthread_mutex_destroy(&l->qlock);
        remote_done(&l->rs);
        free(l->zero_block);
        free(l->url);
        free(l->what);
        free(l->initiator);
        free(l->chap_user);
        if (l->chap_secret) {
                explicit_bzero(l->chap_secret, strlen(l->chap_secret));
                free(l->chap_secret);
        }
}

/* "iscsi: 'host:port/iqn.../lun'" without the user and secret. */
static char *describe_url(const char *url) {
        const char *host = strstr(url, "://"), *at;
        char *s;

        host = host ? host + 3 : url;
        at = strchr(host, '@');
        if (at && at < host + strcspn(host, "/"))
                host = at + 1;
        return asprintf(&s, "iscsi: '%s'", host) < 0 ? NULL : s;
}

static int iscsi_geometry(struct orion_bdev *b, struct iscsi_leaf *l, struct orion_error *err) {
        struct orion_geometry g = { 0 };
        char msg[512];
        bool lbpme;
        uint32_t caps = ORION_CAP_FLUSH | ORION_CAP_FUA | ORION_CAP_MULTI_CONN | ORION_CAP_WRITE_ZEROES;

        if (read_capacity(l, l->ctx, &l->size, &l->bs, &lbpme, msg, sizeof(msg)) < 0)
                return orion_error_set(err, EIO, "%s: %s", l->what, msg);
        if (l->bs != 512 && l->bs != 4096)
                return orion_error_set(err, EINVAL, "%s: LUN block size %u is not 512 or 4096", l->what, l->bs);
        read_vpd(l, l->ctx, lbpme);
        l->lbpme = lbpme;
        if (l->can_unmap)
                caps |= ORION_CAP_DISCARD;
        if (lbpme)
                caps |= ORION_CAP_BLOCK_STATUS;
        /* Without WRITE SAME the core writes zero buffers; keep the cap only when it works. */
        if (!l->can_ws)
                caps &= ~(uint32_t) ORION_CAP_WRITE_ZEROES;
        g.size = l->size;
        g.block_size = l->bs;
        g.pref_size = MAX(l->bs, 4096u);
        g.max_size = ISCSI_MAX_REQUEST;
        orion_bdev_set_caps(b, caps);
        return orion_bdev_set_geometry(b, &g);
}

/* The CHAP secret from a file (first line), so that it stays out of the node's parameters,
 * which `orionctl node-info` shows. */
static int read_secret(struct iscsi_leaf *l, const char *path, struct orion_error *err) {
        _cleanup_free_ char *line = NULL;
        size_t cap = 0;
        ssize_t n;
        FILE *f = fopen(path, "re");

        if (!f)
                return orion_error_set(err, errno, "%s: cannot open secret-file '%s': %m", l->what, path);
        n = getline(&line, &cap, f);
        fclose(f);
        if (n <= 0)
                return orion_error_set(err, EINVAL, "%s: secret-file '%s' is empty", l->what, path);
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0] == '\0' || strlen(line) > 255)
                return orion_error_set(err, EINVAL, "%s: secret in '%s' is empty or longer than 255 bytes", l->what,
                                       path);
        l->chap_secret = TAKE_PTR(line);
        return 0;
}

static int iscsi_open_op(struct orion_bdev *b, const struct orion_params *p, struct orion_error *err) {
        struct iscsi_leaf *l = orion_bdev_priv(b);
        int64_t timeout = orion_param_int(p, "retry-timeout"), req_timeout = orion_param_int(p, "request-timeout");
        char msg[512];
        int r;

        l->efd = -1;
        pthread_mutex_init(&l->qlock, NULL);
        l->queue_tail = &l->queue;
        remote_init(&l->rs, b, "iscsi", (uint64_t) MAX(timeout, 0) * 1000000000u);
        l->url = strdup(orion_param_str(p, "url"));
        l->initiator = strdup(orion_param_str(p, "initiator-name"));
        l->what = l->url ? describe_url(l->url) : NULL;
        l->zero_block = calloc(1, 4096);
        if (!l->url || !l->initiator || !l->what || !l->zero_block) {
                r = orion_error_set(err, ENOMEM, "iscsi: out of memory");
                goto fail;
        }
        l->rs.what = l->what;
        if (orion_param_is_set(p, "user") != orion_param_is_set(p, "secret-file")) {
                r = orion_error_set(err, EINVAL, "iscsi: user= and secret-file= go together");
                goto fail;
        }
        if (orion_param_is_set(p, "user")) {
                l->chap_user = strdup(orion_param_str(p, "user"));
                r = l->chap_user ? read_secret(l, orion_param_str(p, "secret-file"), err)
                                 : orion_error_set(err, ENOMEM, "iscsi: out of memory");
                if (r < 0)
                        goto fail;
        }
        if (timeout < 0 || req_timeout < 0 || req_timeout > 86400) {
                r = orion_error_set(err, EINVAL, "iscsi: retry-timeout must be >= 0, request-timeout 0..86400");
                goto fail;
        }
        l->req_timeout = (int) req_timeout;
        l->ctx = session_connect(l, msg, sizeof(msg));
        if (!l->ctx) {
                r = orion_error_set(err, EIO, "%s: %s", l->what, msg);
                goto fail;
        }
        r = iscsi_geometry(b, l, err);
        if (r < 0)
                goto fail;
        l->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (l->efd < 0) {
                r = orion_error_set(err, errno, "iscsi: eventfd: %m");
                goto fail;
        }
        remote_conn_up(&l->rs, false);
        if (pthread_create(&l->thread, NULL, io_thread, l) != 0) {
                r = orion_error_set(err, EAGAIN, "iscsi: cannot start the I/O thread");
                goto fail;
        }
        l->started = true;
        return 0;
fail:
        iscsi_close_op(b);
        return r;
}

static const struct orion_param iscsi_params[] = {
        { .name = "url", .type = ORION_PARAM_STRING,
          .help = "iscsi://[user%secret@]host[:port]/target-iqn/lun (CHAP when user%secret is given)" },
        { .name = "initiator-name", .type = ORION_PARAM_STRING, .def = "iqn.2026-11.org.orion:initiator",
          .help = "Initiator IQN presented to the target." },
        { .name = "retry-timeout", .type = ORION_PARAM_INT, .def = "60",
          .help = "Seconds requests wait for a lost target to come back; then they fail with EIO." },
        { .name = "request-timeout", .type = ORION_PARAM_INT, .def = "60",
          .help = "Seconds a command (or a login) may stay unanswered before the session counts as lost: "
                  "reconnect and resend. 0 = wait forever." },
        { .name = "user", .type = ORION_PARAM_STRING, .optional = true,
          .help = "CHAP user name (with secret-file=; instead of user%secret in the URL)." },
        { .name = "secret-file", .type = ORION_PARAM_PATH, .optional = true,
          .help = "File whose first line is the CHAP secret (keeps it out of node-info)." },
        {},
};

static const struct orion_bdev_ops iscsi_ops = {
        .pread = iscsi_pread_op,
        .pwrite = iscsi_pwrite_op,
        .flush = iscsi_flush_op,
        .discard = iscsi_discard_op,
        .write_zeroes = iscsi_write_zeroes_op,
        .block_status = iscsi_block_status_op,
        .submit_async = iscsi_submit_async_op,
        .stats = iscsi_stats_op,
        .status = iscsi_status_op,
        .close = iscsi_close_op,
};

ORION_BUILTIN_TYPE(orion_type_iscsi, .name = "iscsi",
                   .description = "Remote iSCSI LUN through libiscsi (CHAP, UNMAP/WRITE SAME, reconnects)",
                   .params = iscsi_params, .instance_size = sizeof(struct iscsi_leaf), .ops = &iscsi_ops,
                   .open = iscsi_open_op);
