/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* One iSCSI connection in Full Feature Phase: CmdSN window, SCSI commands with immediate,
 * unsolicited and R2T-solicited data, Data-In/SCSI Response with residuals, NOP, task
 * management, Text (SendTargets), Logout and Reject. Commands run on the worker pool. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "iscsi.h"

#define CMD_WINDOW 64
#define MAX_TASK_DATA (32u << 20) /* largest EDTL of a write we buffer */
#define MAX_CONN_DATA (256u << 20) /* write data one connection may hold at once */
#define RECV_BUF (128u << 10)      /* receive buffer; larger data segments bypass it */
#define BATCH_MAX_XFER (128u << 10) /* larger reads/writes go to the worker pool */

static uint32_t exp_sn(struct iscsi_conn *c) {
        return __atomic_load_n(&c->exp_cmd_sn, __ATOMIC_ACQUIRE);
}

void conn_fill_sn_locked(struct iscsi_conn *c, uint8_t *bhs, bool advance_stat) {
        uint32_t e = exp_sn(c);
        put_be32(bhs + 24, advance_stat ? c->stat_sn++ : c->stat_sn);
        put_be32(bhs + 28, e);
        put_be32(bhs + 32, e + c->window - 1);
}

static int send_locked(struct iscsi_conn *c, uint8_t *bhs, const void *data, uint32_t len) {
        if (c->dead)
                return -EPIPE;
        int r = pdu_send(c->fd, bhs, data, len, c->lim.header_digest, c->lim.data_digest, c->more);
        if (r < 0) {
                c->dead = true;
                (void) shutdown(c->fd, SHUT_RDWR); /* wakes the reader */
        }
        return r;
}

/* Response PDUs that carry a StatSN of their own. */
int conn_send(struct iscsi_conn *c, uint8_t *bhs, const void *data, uint32_t len) {
        LOCK_GUARD(&c->send_lock);
        conn_fill_sn_locked(c, bhs, true);
        return send_locked(c, bhs, data, len);
}

static int send_reject(struct iscsi_conn *c, const uint8_t *bad, uint8_t reason) {
        uint8_t bhs[BHS_LEN] = { 0 };
        bhs[0] = OP_REJECT;
        bhs[1] = 0x80;
        bhs[2] = reason;
        put_be32(bhs + 16, RSVD_TAG);
        orion_debug("iscsi: %s: reject opcode 0x%02x reason 0x%02x", c->peer_str, pdu_opcode(bad), reason);
        return conn_send(c, bhs, bad, BHS_LEN);
}

/* ---- Tasks ----------------------------------------------------------------------------- */
static void task_free(struct iscsi_task *t) {
        if (!t)
                return;
        if (t->buf)
                atomic_fetch_sub(&t->conn->buffered, t->edtl);
        lu_unref(t->lu);
        free(t->buf);
        free(t);
}

static void task_unlink_locked(struct iscsi_conn *c, struct iscsi_task *t) {
        for (struct iscsi_task **pp = &c->tasks; *pp; pp = &(*pp)->next)
                if (*pp == t) {
                        *pp = t->next;
                        return;
                }
}

static struct iscsi_task *task_find_locked(struct iscsi_conn *c, uint32_t itt) {
        for (struct iscsi_task *t = c->tasks; t; t = t->next)
                if (t->itt == itt)
                        return t;
        return NULL;
}

static void residual(uint32_t want, uint32_t edtl, uint8_t *flags, uint32_t *count) {
        if (want > edtl) {
                *flags |= 0x04;
                *count = want - edtl;
        } else if (want < edtl) {
                *flags |= 0x02;
                *count = edtl - want;
        }
}

static int send_scsi_rsp(struct iscsi_conn *c, struct iscsi_task *t, const struct scsi_cmd *sc, uint32_t datasn) {
        uint8_t bhs[BHS_LEN] = { 0 }, sense[2 + sizeof(sc->sense)];
        uint8_t flags = 0;
        uint32_t count = 0, slen = 0;

        bhs[0] = OP_SCSI_RSP;
        if (sc->status == SAM_GOOD)
                residual(sc->xfer_len, t->edtl, &flags, &count);
        bhs[1] = 0x80 | flags;
        bhs[2] = 0x00;
        bhs[3] = sc->status;
        put_be32(bhs + 16, t->itt);
        put_be32(bhs + 36, datasn);
        put_be32(bhs + 44, count);
        if (sc->status == SAM_CHECK_CONDITION && sc->sense_len) {
                put_be16(sense, (uint16_t) sc->sense_len);
                memcpy(sense + 2, sc->sense, sc->sense_len);
                slen = 2 + sc->sense_len;
        }
        return conn_send(c, bhs, slen ? sense : NULL, slen);
}

/* Data-In PDUs, the last one carrying the status when it is GOOD (phase collapse). */
static int send_data_in(struct iscsi_conn *c, struct iscsi_task *t, const struct scsi_cmd *sc) {
        uint32_t total = MIN(sc->in_len, t->edtl);
        uint32_t max_pdu = c->sess->params.max_xmit_dsl, burst = c->sess->params.max_burst;
        uint32_t off = 0, datasn = 0, in_burst = 0;

        while (off < total) {
                uint8_t bhs[BHS_LEN] = { 0 };
                uint32_t n = MIN(total - off, max_pdu);
                n = MIN(n, burst - in_burst);
                bool last = off + n == total;
                bhs[0] = OP_DATA_IN;
                in_burst += n;
                if (last || in_burst == burst) {
                        bhs[1] |= 0x80;
                        in_burst = 0;
                }
                memcpy(bhs + 8, &t->lun_field, 8);
                put_be32(bhs + 16, t->itt);
                put_be32(bhs + 20, RSVD_TAG);
                put_be32(bhs + 36, datasn++);
                put_be32(bhs + 40, off);
                LOCK_GUARD(&c->send_lock);
                if (last && sc->status == SAM_GOOD) {
                        uint8_t flags = 0;
                        uint32_t count = 0;
                        residual(sc->xfer_len, t->edtl, &flags, &count);
                        bhs[1] |= 0x01 | flags;
                        bhs[3] = sc->status;
                        put_be32(bhs + 44, count);
                        conn_fill_sn_locked(c, bhs, true);
                } else
                        conn_fill_sn_locked(c, bhs, false);
                int r = send_locked(c, bhs, sc->in + off, n);
                if (r < 0)
                        return r;
                off += n;
        }
        if (total == 0 || sc->status != SAM_GOOD)
                return send_scsi_rsp(c, t, sc, datasn);
        return 0;
}

static void task_done(struct iscsi_task *t) {
        struct iscsi_conn *c = t->conn;
        LOCK_GUARD(&c->lock);
        task_unlink_locked(c, t);
        c->ntasks_running--;
        pthread_cond_broadcast(&c->cond);
        task_free(t);
}

/* Answer a task that ran (unless aborted), then forget it. */
static void task_respond(struct iscsi_conn *c, struct iscsi_task *t, struct scsi_cmd *sc) {
        /* Decide under the lock: either an ABORT TASK got here first (no response), or the
         * task leaves the list now, so that an ABORT TASK arriving while or after the response
         * is sent finds no task instead of reporting it aborted. */
        bool respond;
        {
                LOCK_GUARD(&c->lock);
                respond = !__atomic_load_n(&t->aborted, __ATOMIC_ACQUIRE);
                if (respond)
                        task_unlink_locked(c, t);
        }
        if (respond) {
                if (t->read && sc->status == SAM_GOOD)
                        (void) send_data_in(c, t, sc);
                else
                        (void) send_scsi_rsp(c, t, sc, 0);
        }
        free(sc->in);
        task_done(t);
}

static struct scsi_cmd task_cmd(struct iscsi_conn *c, struct iscsi_task *t) {
        return (struct scsi_cmd){
                .lu = t->lu,
                .sess = c->sess,
                .cdb = t->cdb,
                .cdb_len = t->cdb_len,
                .out = t->buf,
                .out_len = t->received,
                .aborted = &t->aborted,
        };
}

static void task_run(void *arg) {
        struct iscsi_task *t = arg;
        struct iscsi_conn *c = t->conn;
        struct scsi_cmd sc = task_cmd(c, t);

        if (!__atomic_load_n(&t->aborted, __ATOMIC_ACQUIRE)) {
                if (t->lu)
                        atomic_fetch_add(&t->lu->inflight, 1);
                scsi_exec(&sc);
                if (t->lu)
                        atomic_fetch_sub(&t->lu->inflight, 1);
        }
        task_respond(c, t, &sc);
}

static void set_more(struct iscsi_conn *c, bool more) {
        LOCK_GUARD(&c->send_lock);
        c->more = more;
}

/* Run the collected reads/writes: their checks, one orion_submit() for all the I/O (writes
 * hold their LU's COMPARE AND WRITE lock shared, as write_blocks() does), then the responses,
 * corked until the last. Runs on the reader thread. */
static void batch_flush(struct iscsi_conn *c) {
        unsigned n = c->nbatch;
        struct scsi_cmd sc[ELEMENTSOF(c->batch)];
        struct orion_req rq[ELEMENTSOF(c->batch)];
        int slot[ELEMENTSOF(c->batch)];
        struct iscsi_lu *locked[ELEMENTSOF(c->batch)];
        unsigned nlocked = 0;
        size_t nrq = 0;

        c->nbatch = 0;
        for (unsigned i = 0; i < n; i++) {
                struct iscsi_task *t = c->batch[i];
                sc[i] = task_cmd(c, t);
                slot[i] = -2; /* not run */
                if (__atomic_load_n(&t->aborted, __ATOMIC_ACQUIRE))
                        continue;
                atomic_fetch_add(&t->lu->inflight, 1);
                slot[i] = -1;
                int r = sbc_rw_prepare(&sc[i], &rq[nrq]);
                if (r < 0)
                        scsi_exec(&sc[i]);
                if (r != 1)
                        continue;
                if (rq[nrq].op == ORION_OP_WRITE) {
                        bool have = false;
                        for (unsigned k = 0; k < nlocked; k++)
                                have |= locked[k] == t->lu;
                        if (!have) {
                                pthread_rwlock_rdlock(&t->lu->caw_lock);
                                locked[nlocked++] = t->lu;
                        }
                }
                slot[i] = (int) nrq++;
        }
        (void) orion_submit(rq, nrq);
        for (unsigned k = 0; k < nlocked; k++)
                pthread_rwlock_unlock(&locked[k]->caw_lock);
        for (unsigned i = 0; i < n; i++) {
                struct iscsi_task *t = c->batch[i];
                if (slot[i] >= 0)
                        sbc_rw_finish(&sc[i], &rq[slot[i]]);
                if (slot[i] != -2)
                        atomic_fetch_sub(&t->lu->inflight, 1);
                set_more(c, i + 1 < n);
                task_respond(c, t, &sc[i]);
        }
}

/* Small plain reads/writes: their cost is mostly per command, which the batch saves. Large
 * ones are mostly copying, which worker threads do in parallel. */
static bool batchable(const struct iscsi_task *t) {
        switch (t->cdb[0]) {
        case 0x08: case 0x0a: case 0x28: case 0x2a: case 0xa8: case 0xaa: case 0x88: case 0x8a:
                return t->lu != NULL && t->edtl <= BATCH_MAX_XFER;
        default:
                return false;
        }
}

static void task_dispatch(struct iscsi_conn *c, struct iscsi_task *t) {
        {
                LOCK_GUARD(&c->lock);
                t->running = true;
                c->ntasks_running++;
        }
        if (batchable(t)) {
                if (c->nbatch == ELEMENTSOF(c->batch))
                        batch_flush(c);
                c->batch[c->nbatch++] = t;
                return;
        }
        /* other commands start after the reads/writes that came before them */
        batch_flush(c);
        if (pool_queue(task_run, t) < 0)
                task_run(t);
}

/* A write whose data sequence broke: answer CHECK CONDITION and forget it. */
static void task_fail_data(struct iscsi_conn *c, struct iscsi_task *t, uint16_t asc) {
        struct scsi_cmd sc = { .status = SAM_CHECK_CONDITION };
        scsi_check(&sc, SK_ABORTED_COMMAND, asc);
        {
                LOCK_GUARD(&c->lock);
                task_unlink_locked(c, t);
        }
        (void) send_scsi_rsp(c, t, &sc, 0);
        task_free(t);
}

static int send_r2t(struct iscsi_conn *c, struct iscsi_task *t) {
        uint8_t bhs[BHS_LEN] = { 0 };
        uint32_t len = MIN(t->edtl - t->received, c->sess->params.max_burst);

        t->ttt = c->next_ttt++;
        if (t->ttt == RSVD_TAG)
                t->ttt = c->next_ttt++;
        t->seq_end = t->received + len;
        t->data_sn = 0;
        t->unsolicited = false;
        bhs[0] = OP_R2T;
        bhs[1] = 0x80;
        memcpy(bhs + 8, &t->lun_field, 8);
        put_be32(bhs + 16, t->itt);
        put_be32(bhs + 20, t->ttt);
        put_be32(bhs + 36, t->r2t_sn++);
        put_be32(bhs + 40, t->received);
        put_be32(bhs + 44, len);
        LOCK_GUARD(&c->send_lock);
        conn_fill_sn_locked(c, bhs, false);
        return send_locked(c, bhs, NULL, 0);
}

/* After data arrived: dispatch when complete, or ask for the next burst. */
static int task_data_progress(struct iscsi_conn *c, struct iscsi_task *t, bool final) {
        if (t->received == t->edtl) {
                task_dispatch(c, t);
                return 0;
        }
        if (!final)
                return 0;
        if (t->received != t->seq_end) {
                task_fail_data(c, t, ASC_DATA_PHASE_ERROR);
                return 0;
        }
        return send_r2t(c, t);
}

/* LUN field (SAM-5 peripheral / flat addressing of single-level LUNs). */
static int64_t lun_decode(const uint8_t *f) {
        for (int i = 2; i < 8; i++)
                if (f[i])
                        return -1;
        switch (f[0] >> 6) {
        case 0:
                return f[0] & 0x3f ? -1 : f[1];
        case 1:
                return (int64_t) (f[0] & 0x3f) << 8 | f[1];
        default:
                return -1;
        }
}

/* ---- CmdSN window ------------------------------------------------------------------------- */
/* Returns true if the PDU should be processed. Non-immediate PDUs advance ExpCmdSN. */
static bool cmdsn_accept(struct iscsi_conn *c, const uint8_t *bhs) {
        uint32_t sn = get_be32(bhs + 24), e = exp_sn(c);
        if (bhs[0] & 0x40) /* immediate delivery */
                return true;
        if (sn_lt(sn, e) || sn_lt(e + c->window - 1, sn)) {
                orion_debug("iscsi: %s: CmdSN %u outside [%u, %u], dropped", c->peer_str, sn, e, e + c->window - 1);
                return false;
        }
        __atomic_store_n(&c->exp_cmd_sn, sn + 1, __ATOMIC_RELEASE);
        return true;
}

/* ---- SCSI Command ------------------------------------------------------------------------- */
/* A SCSI Command PDU's task: tags, LUN, CDB (with an extended CDB AHS). NULL with *ret_reject
 * set when the PDU is malformed, NULL with it 0 when out of memory. */
static struct iscsi_task *task_from_pdu(struct iscsi_conn *c, const struct iscsi_pdu *p, int *ret_reject) {
        const uint8_t *b = p->bhs;
        bool rd = b[1] & 0x40, wr = b[1] & 0x20;
        uint32_t edtl = get_be32(b + 20);
        int64_t lun;

        *ret_reject = 0;
        _cleanup_free_ struct iscsi_task *t = calloc(1, sizeof(*t));
        if (!t)
                return NULL;
        t->conn = c;
        t->itt = pdu_itt(b);
        t->cmd_sn = get_be32(b + 24);
        t->read = rd;
        t->write = wr;
        t->edtl = (rd || wr) ? edtl : 0;
        memcpy(&t->lun_field, b + 8, 8);
        memcpy(t->cdb, b + 32, 16);
        t->cdb_len = 16;
        if (p->ahs_len >= 4 && p->ahs[2] == 0x01) { /* extended CDB AHS */
                uint32_t alen = get_be16(p->ahs);
                if (alen < 2 || alen + 3 > p->ahs_len || 16 + alen - 1 > sizeof(t->cdb)) {
                        *ret_reject = REJECT_INVALID_FIELD;
                        return NULL;
                }
                memcpy(t->cdb + 16, p->ahs + 4, alen - 1);
                t->cdb_len = 16 + alen - 1;
        }
        lun = lun_decode(b + 8);
        t->lu = lun >= 0 ? target_lu_get(c->sess->target, (uint64_t) lun) : NULL;
        return TAKE_PTR(t);
}

/* Answer a write task that will not run with a bare status (and sense when asc is set), and
 * drop it. Unsolicited data may follow; it is dropped as its task is gone. */
static void task_refuse(struct iscsi_conn *c, struct iscsi_task *t, uint8_t status, uint16_t asc) {
        struct scsi_cmd sc = { .status = status };

        if (asc)
                scsi_check(&sc, SK_ILLEGAL_REQUEST, asc);
        WITH_LOCK(&c->lock)
                task_unlink_locked(c, t);
        (void) send_scsi_rsp(c, t, &sc, 0);
        task_free(t);
}

/* The write task's buffer, with the PDU's immediate data in it (taken over without a copy
 * when it is all the data). */
static int task_take_immediate(struct iscsi_conn *c, struct iscsi_task *t, struct iscsi_pdu *p) {
        if (p->data_len == t->edtl) {
                t->buf = TAKE_PTR(p->data);
        } else {
                t->buf = malloc(t->edtl);
                if (t->buf && p->data_len)
                        memcpy(t->buf, p->data, p->data_len);
        }
        if (!t->buf) {
                WITH_LOCK(&c->lock)
                        task_unlink_locked(c, t);
                lu_unref(t->lu);
                return -ENOMEM;
        }
        atomic_fetch_add(&c->buffered, t->edtl);
        t->received = p->data_len;
        t->ttt = RSVD_TAG;
        return 0;
}

static int handle_scsi_cmd(struct iscsi_conn *c, struct iscsi_pdu *p) {
        const uint8_t *b = p->bhs;
        bool final = b[1] & 0x80, rd = b[1] & 0x40, wr = b[1] & 0x20;
        uint32_t edtl = get_be32(b + 20);
        struct iscsi_params *prm = &c->sess->params;
        int reject;

        if (c->sess->discovery)
                return send_reject(c, b, REJECT_PROTOCOL);
        if ((p->data_len > 0 && (!wr || !prm->immediate_data)) || p->data_len > edtl ||
            p->data_len > prm->first_burst || (!final && (!wr || prm->initial_r2t)))
                return send_reject(c, b, REJECT_PROTOCOL);
        if (!cmdsn_accept(c, b))
                return 0;

        _cleanup_free_ struct iscsi_task *t = task_from_pdu(c, p, &reject);
        if (!t)
                return reject ? send_reject(c, b, reject) : -ENOMEM;
        {
                LOCK_GUARD(&c->lock);
                if (task_find_locked(c, t->itt)) {
                        lu_unref(t->lu);
                        return send_reject(c, b, REJECT_TASK_IN_PROGRESS);
                }
                t->next = c->tasks;
                c->tasks = t;
        }
        if (!wr || t->edtl == 0) {
                task_dispatch(c, TAKE_PTR(t));
                return 0;
        }
        if (t->edtl > MAX_TASK_DATA || (rd && wr)) {
                task_refuse(c, TAKE_PTR(t), SAM_CHECK_CONDITION, ASC_INVALID_FIELD_IN_CDB);
                return 0;
        }
        if (atomic_load(&c->buffered) + t->edtl > MAX_CONN_DATA) {
                /* Too much write data in flight on this connection: ask the initiator to retry. */
                task_refuse(c, TAKE_PTR(t), SAM_TASK_SET_FULL, 0);
                return 0;
        }
        if (task_take_immediate(c, t, p) < 0)
                return -ENOMEM;
        if (!final) {
                t->unsolicited = true;
                t->seq_end = MIN(prm->first_burst, t->edtl);
                t->data_sn = 0;
                if (t->received >= t->seq_end) { /* nothing left for unsolicited PDUs */
                        struct iscsi_task *tt = TAKE_PTR(t);
                        task_fail_data(c, tt, ASC_DATA_PHASE_ERROR);
                }
                TAKE_PTR(t);
                return 0;
        }
        t->seq_end = t->received;
        struct iscsi_task *tt = TAKE_PTR(t);
        return task_data_progress(c, tt, true);
}

static int handle_data_out(struct iscsi_conn *c, struct iscsi_pdu *p) {
        const uint8_t *b = p->bhs;
        bool final = b[1] & 0x80;
        uint32_t ttt = get_be32(b + 20), datasn = get_be32(b + 36), off = get_be32(b + 40);
        struct iscsi_task *t;

        {
                LOCK_GUARD(&c->lock);
                t = task_find_locked(c, pdu_itt(b));
                if (t && t->running)
                        t = NULL;
        }
        if (!t) /* task already answered (aborted or failed): its trailing data is dropped */
                return 0;
        if (t->aborted) {
                if (final || t->received + p->data_len >= t->seq_end) {
                        LOCK_GUARD(&c->lock);
                        task_unlink_locked(c, t);
                        task_free(t);
                }
                return 0;
        }
        if (ttt != t->ttt || (t->unsolicited && ttt != RSVD_TAG)) {
                task_fail_data(c, t, ASC_DATA_PHASE_ERROR);
                return 0;
        }
        if (datasn != t->data_sn || off != t->received || p->data_len > t->seq_end - t->received) {
                orion_debug("iscsi: %s: bad Data-Out ITT 0x%x DataSN %u (want %u) offset %u (want %u) len %u",
                            c->peer_str, t->itt, datasn, t->data_sn, off, t->received, p->data_len);
                task_fail_data(c, t, ASC_DATA_OFFSET_ERROR);
                return 0;
        }
        memcpy(t->buf + t->received, p->data, p->data_len);
        t->received += p->data_len;
        t->data_sn++;
        if (!final && t->received == t->seq_end) {
                task_fail_data(c, t, ASC_DATA_PHASE_ERROR);
                return 0;
        }
        return task_data_progress(c, t, final);
}

/* ---- NOP, Text, Logout --------------------------------------------------------------------- */
static int handle_nop_out(struct iscsi_conn *c, struct iscsi_pdu *p) {
        const uint8_t *b = p->bhs;
        uint8_t bhs[BHS_LEN] = { 0 };
        uint32_t itt = pdu_itt(b);

        if (itt == RSVD_TAG) { /* answer to our ping */
                if (get_be32(b + 20) == RSVD_TAG)
                        return send_reject(c, b, REJECT_PROTOCOL);
                c->nop_outstanding = 0;
                return 0;
        }
        if (!cmdsn_accept(c, b))
                return 0;
        bhs[0] = OP_NOP_IN;
        bhs[1] = 0x80;
        memcpy(bhs + 8, b + 8, 8);
        put_be32(bhs + 16, itt);
        put_be32(bhs + 20, RSVD_TAG);
        return conn_send(c, bhs, p->data, MIN(p->data_len, c->sess->params.max_xmit_dsl));
}

static int send_ping(struct iscsi_conn *c) {
        uint8_t bhs[BHS_LEN] = { 0 };
        bhs[0] = OP_NOP_IN;
        bhs[1] = 0x80;
        put_be32(bhs + 16, RSVD_TAG);
        c->nop_ttt = c->next_ttt++;
        put_be32(bhs + 20, c->nop_ttt);
        c->nop_outstanding++;
        LOCK_GUARD(&c->send_lock);
        conn_fill_sn_locked(c, bhs, false);
        return send_locked(c, bhs, NULL, 0);
}

/* Our address as the initiator reached it: what SendTargets advertises. */
static void local_portal(struct iscsi_conn *c, char *buf, size_t len) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        char host[INET6_ADDRSTRLEN + 2] = "127.0.0.1";
        unsigned port = 3260;
        if (getsockname(c->fd, (struct sockaddr *) &ss, &sl) == 0) {
                if (ss.ss_family == AF_INET) {
                        struct sockaddr_in *a = (struct sockaddr_in *) &ss;
                        (void) inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
                        port = ntohs(a->sin_port);
                } else if (ss.ss_family == AF_INET6) {
                        struct sockaddr_in6 *a = (struct sockaddr_in6 *) &ss;
                        char h6[INET6_ADDRSTRLEN];
                        (void) inet_ntop(AF_INET6, &a->sin6_addr, h6, sizeof(h6));
                        snprintf(host, sizeof(host), "[%s]", h6);
                        port = ntohs(a->sin6_port);
                }
        }
        snprintf(buf, len, "%s:%u", host, port);
}

static int handle_text(struct iscsi_conn *c, struct iscsi_pdu *p) {
        const uint8_t *b = p->bhs;
        uint8_t bhs[BHS_LEN] = { 0 };
        struct text_buf out = { 0 };
        int r = 0;

        char portal[96];
        if (b[1] & 0x40) /* C bit: we never need continued text requests */
                return send_reject(c, b, REJECT_NOT_SUPPORTED);
        local_portal(c, portal, sizeof(portal));
        if (!cmdsn_accept(c, b))
                return 0;
        for (uint32_t off = 0; off < p->data_len;) {
                char *kv = (char *) p->data + off;
                size_t l = strnlen(kv, p->data_len - off);
                off += (uint32_t) l + 1;
                char *eq = memchr(kv, '=', l);
                if (!eq)
                        continue;
                *eq = 0;
                if (strcmp(kv, "SendTargets") == 0) {
                        const char *v = eq + 1;
                        if (c->sess->discovery)
                                r = target_sendtargets(&out, v, c->sess->initiator, &c->peer, NULL, portal);
                        else if (!*v || strcmp(v, "All") == 0 || strcasecmp(v, c->sess->target->iqn) == 0)
                                /* a normal session only ever learns about its own target */
                                r = target_sendtargets(&out, c->sess->target->iqn, c->sess->initiator, &c->peer,
                                                       c->sess->target->iqn, portal);
                        else
                                r = text_add(&out, "SendTargets", "Reject");
                } else
                        r = text_add(&out, kv, "NotUnderstood");
                if (r < 0)
                        break;
        }
        if (r >= 0 && out.len > c->sess->params.max_xmit_dsl)
                r = -EMSGSIZE; /* multi-PDU text responses are not implemented */
        bhs[0] = OP_TEXT_RSP;
        bhs[1] = 0x80;
        memcpy(bhs + 8, b + 8, 8);
        put_be32(bhs + 16, pdu_itt(b));
        put_be32(bhs + 20, RSVD_TAG);
        if (r < 0) {
                text_free(&out);
                return send_reject(c, b, REJECT_OUT_OF_RESOURCES);
        }
        r = conn_send(c, bhs, out.buf, (uint32_t) out.len);
        text_free(&out);
        return r;
}

static void wait_tasks(struct iscsi_conn *c) {
        LOCK_GUARD(&c->lock);
        while (c->ntasks_running > 0)
                pthread_cond_wait(&c->cond, &c->lock);
}

static int handle_logout(struct iscsi_conn *c, struct iscsi_pdu *p) {
        const uint8_t *b = p->bhs;
        uint8_t bhs[BHS_LEN] = { 0 };
        uint8_t reason = b[1] & 0x7f;

        (void) cmdsn_accept(c, b);
        wait_tasks(c);
        bhs[0] = OP_LOGOUT_RSP;
        bhs[1] = 0x80;
        bhs[2] = reason == 2 ? 2 : 0; /* recovery not supported at ERL 0 */
        put_be32(bhs + 16, pdu_itt(b));
        put_be16(bhs + 40, (uint16_t) c->sess->params.time2wait);
        put_be16(bhs + 42, (uint16_t) c->sess->params.time2retain);
        (void) conn_send(c, bhs, NULL, 0);
        return reason == 2 ? 0 : 1;
}

/* ---- Task management ---------------------------------------------------------------------- */
/* Mark tasks aborted; wait for those running. Tasks still waiting for data are dropped. */
static void abort_tasks(struct iscsi_conn *c, bool (*match)(struct iscsi_task *, const void *), const void *arg) {
        LOCK_GUARD(&c->lock);
        for (struct iscsi_task **pp = &c->tasks; *pp;) {
                struct iscsi_task *t = *pp;
                if (!match(t, arg)) {
                        pp = &t->next;
                        continue;
                }
                __atomic_store_n(&t->aborted, true, __ATOMIC_RELEASE);
                if (!t->running) {
                        *pp = t->next;
                        task_free(t);
                        continue;
                }
                pp = &t->next;
        }
        for (;;) {
                bool busy = false;
                for (struct iscsi_task *t = c->tasks; t; t = t->next)
                        if (t->running && match(t, arg))
                                busy = true;
                if (!busy)
                        break;
                pthread_cond_wait(&c->cond, &c->lock);
        }
}

static bool match_itt(struct iscsi_task *t, const void *arg) {
        return t->itt == *(const uint32_t *) arg;
}
static bool match_lun(struct iscsi_task *t, const void *arg) {
        return t->lun_field == *(const uint64_t *) arg;
}

static bool match_lu(struct iscsi_task *t, const void *arg) {
        return t->lu == arg;
}

/* TARGET WARM/COLD RESET: a LUN reset of every LU of the session's target. */
static void target_reset(struct iscsi_conn *c) {
        for (unsigned l = 0; l < TARGET_MAX_LUNS; l++) {
                struct iscsi_lu *lu = target_lu_get(c->sess->target, l);
                if (!lu)
                        continue;
                abort_tasks(c, match_lu, lu);
                sessions_abort_lu(lu, c);
                pr_lun_reset(lu);
                lu_unref(lu);
        }
}

void conn_abort_lu(struct iscsi_conn *c, struct iscsi_lu *lu, bool wait) {
        LOCK_GUARD(&c->lock);
        for (struct iscsi_task *t = c->tasks; t; t = t->next)
                if (t->lu == lu)
                        __atomic_store_n(&t->aborted, true, __ATOMIC_RELEASE);
        (void) wait;
}

static int handle_tmf(struct iscsi_conn *c, struct iscsi_pdu *p) {
        const uint8_t *b = p->bhs;
        uint8_t bhs[BHS_LEN] = { 0 }, resp = 0;
        uint8_t fn = b[1] & 0x7f;
        uint32_t ref = get_be32(b + 20), refsn = get_be32(b + 32);
        uint64_t lunf;
        int64_t lun = lun_decode(b + 8);
        struct iscsi_lu *lu = NULL;

        if (c->sess->discovery)
                return send_reject(c, b, REJECT_PROTOCOL);
        if (!cmdsn_accept(c, b))
                return 0;
        memcpy(&lunf, b + 8, 8);
        if (fn >= 1 && fn <= 5 && fn != 3) {
                lu = lun >= 0 ? target_lu_get(c->sess->target, (uint64_t) lun) : NULL;
                if (!lu && fn != 1)
                        resp = 2;
        }
        if (resp == 0) {
                switch (fn) {
                case 1: { /* ABORT TASK */
                        bool found;
                        {
                                LOCK_GUARD(&c->lock);
                                found = task_find_locked(c, ref) != NULL;
                        }
                        if (found)
                                abort_tasks(c, match_itt, &ref);
                        else {
                                /* RFC 7143 §11.5.1: a RefCmdSN inside the window not yet received is
                                 * "Function complete"; anything else (already answered) does not exist. */
                                uint32_t e = exp_sn(c);
                                resp = (sn_le(e, refsn) && sn_le(refsn, e + c->window - 1)) ? 0 : 1;
                        }
                        break;
                }
                case 2: /* ABORT TASK SET */
                case 4: /* CLEAR TASK SET */
                        abort_tasks(c, match_lun, &lunf);
                        break;
                case 5: /* LOGICAL UNIT RESET */
                        abort_tasks(c, match_lun, &lunf);
                        sessions_abort_lu(lu, c);
                        pr_lun_reset(lu);
                        break;
                case 3: /* CLEAR ACA: we never establish ACA */
                        break;
                case 6: /* TARGET WARM RESET */
                case 7: /* TARGET COLD RESET: also ends every session of the target */
                        target_reset(c);
                        break;
                case 8:
                        resp = 4;
                        break;
                default:
                        resp = 5;
                        break;
                }
        }
        lu_unref(lu);
        bhs[0] = OP_TMF_RSP;
        bhs[1] = 0x80;
        bhs[2] = resp;
        put_be32(bhs + 16, pdu_itt(b));
        int r = conn_send(c, bhs, NULL, 0);
        if (fn == 7 && resp == 0) {
                sessions_drop_target(c->sess->target);
                return 1;
        }
        return r;
}

/* ---- Main loop ---------------------------------------------------------------------------- */
static int handle_ffp(struct iscsi_conn *c, struct iscsi_pdu *p, bool ddig_bad) {
        uint8_t op = pdu_opcode(p->bhs);

        /* Task management, logout, text and NOP see the collected commands answered. */
        if (op != OP_SCSI_CMD && op != OP_DATA_OUT)
                batch_flush(c);

        if (ddig_bad) {
                /* ERL 0: reject the PDU (a lost command or data sequence fails on its own) */
                return send_reject(c, p->bhs, REJECT_DIGEST);
        }
        switch (op) {
        case OP_NOP_OUT:
                return handle_nop_out(c, p);
        case OP_SCSI_CMD:
                return handle_scsi_cmd(c, p);
        case OP_TMF_REQ:
                return handle_tmf(c, p);
        case OP_TEXT_REQ:
                return handle_text(c, p);
        case OP_DATA_OUT:
                return handle_data_out(c, p);
        case OP_LOGOUT_REQ:
                return handle_logout(c, p);
        case OP_SNACK:
                return send_reject(c, p->bhs, REJECT_SNACK);
        case OP_LOGIN_REQ:
                return send_reject(c, p->bhs, REJECT_PROTOCOL);
        default:
                return send_reject(c, p->bhs, REJECT_NOT_SUPPORTED);
        }
}

/* Wait for input, pinging an idle initiator; false when the connection should close. */
static bool wait_readable(struct iscsi_conn *c) {
        if (pdu_reader_has_bytes(&c->rd))
                return true;
        for (;;) {
                struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
                int timeout = (c->full_feature && c->nop_interval_s) ? (int) c->nop_interval_s * 1000 : -1;
                if (!c->full_feature)
                        timeout = 30000; /* a login that stalls is dropped */
                int r = poll(&pfd, 1, timeout);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0)
                        return false;
                if (r > 0)
                        return true;
                if (!c->full_feature || c->nop_outstanding >= c->nop_count) {
                        orion_info("iscsi: %s: no answer from initiator, closing", c->peer_str);
                        return false;
                }
                if (c->sess->discovery)
                        continue;
                if (send_ping(c) < 0)
                        return false;
        }
}

void conn_serve(int fd, const struct sockaddr_storage *peer) {
        struct iscsi_conn *c = calloc(1, sizeof(*c));
        int one = 1;
        if (!c)
                return;
        c->fd = fd;
        if (peer)
                c->peer = *peer;
        (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        conn_peer_string(c);
        pthread_mutex_init(&c->send_lock, NULL);
        pthread_mutex_init(&c->lock, NULL);
        pthread_cond_init(&c->cond, NULL);
        c->window = CMD_WINDOW;
        c->lim.max_recv_dsl = 8192; /* the login-phase default */
        c->next_ttt = 1;
        conn_apply_config(c);
        uint8_t *rbuf = malloc(RECV_BUF);
        pdu_reader_init(&c->rd, fd, rbuf, rbuf ? RECV_BUF : 0);

        for (;;) {
                struct iscsi_pdu p;
                bool bad = false;
                int r;
                /* before waiting for more input, answer what was collected */
                if (c->nbatch && !pdu_reader_has_pdu(&c->rd, &c->lim))
                        batch_flush(c);
                if (!wait_readable(c))
                        break;
                r = pdu_read(&c->rd, &p, &c->lim, &bad);
                if (r < 0) {
                        if (r != -ECONNRESET)
                                orion_info("iscsi: %s: closing connection: %s", c->peer_str, strerror(-r));
                        break;
                }
                if (!c->full_feature) {
                        r = bad ? -EBADMSG : login_handle(c, &p);
                        if (r == 1) {
                                c->full_feature = true;
                                r = 0;
                        }
                } else
                        r = handle_ffp(c, &p, bad);
                pdu_clear(&p);
                c->nop_outstanding = 0;
                if (r != 0 || c->dead)
                        break;
        }
        /* Stop: abort what is queued and wait for the workers still using c. */
        {
                LOCK_GUARD(&c->lock);
                c->closing = true;
        }
        (void) shutdown(fd, SHUT_RDWR);
        {
                LOCK_GUARD(&c->lock);
                for (struct iscsi_task **pp = &c->tasks; *pp;) {
                        struct iscsi_task *t = *pp;
                        __atomic_store_n(&t->aborted, true, __ATOMIC_RELEASE);
                        if (!t->running) {
                                *pp = t->next;
                                task_free(t);
                        } else
                                pp = &t->next;
                }
        }
        batch_flush(c); /* collected tasks are aborted now: they end without running */
        wait_tasks(c);
        free(rbuf);
        login_free(c);
        if (c->sess) {
                session_unregister(c->sess);
                c->sess->conn = NULL;
                session_unref(c->sess);
        }
        pthread_cond_destroy(&c->cond);
        pthread_mutex_destroy(&c->lock);
        pthread_mutex_destroy(&c->send_lock);
        free(c);
}
