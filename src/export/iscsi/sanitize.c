/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* SANITIZE (SBC-4 5.30, 4.11): OVERWRITE on every LU and BLOCK ERASE (deallocation) on a thin
 * one, run on a thread of their own so that they outlive aborts, resets and the I_T nexus; the
 * LU answers NOT READY / SANITIZE IN PROGRESS meanwhile and stays in sanitize failure mode when
 * the operation failed. CRYPTOGRAPHIC ERASE is not offered: a plain LU has no media key. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "iscsi.h"

enum { SA_OVERWRITE = 0x01, SA_BLOCK_ERASE = 0x02, SA_EXIT_FAILURE_MODE = 0x1f };

#define CHUNK (1u << 20)

struct sanitize_job {
        atomic_int refs;  /* the thread and the waiting task */
        struct iscsi_lu *lu; /* held */
        uint8_t sa;
        bool ause, invert;
        unsigned passes;
        uint8_t pattern[4096 + 8];
        uint32_t plen;
        bool done;        /* under lu->lock */
        int result;
};

static void job_unref(struct sanitize_job *j) {
        if (atomic_fetch_sub(&j->refs, 1) == 1) {
                lu_unref(j->lu);
                free(j);
        }
}

bool sanitize_supports(const struct iscsi_lu *lu, uint8_t sa) {
        return sa == SA_OVERWRITE || sa == SA_EXIT_FAILURE_MODE || (sa == SA_BLOCK_ERASE && lu->thin);
}

static bool media_access(uint8_t op) {
        switch (op) {
        case 0x08: case 0x0a: case 0x28: case 0x2a: case 0xa8: case 0xaa: case 0x88: case 0x8a:
        case 0x2e: case 0xae: case 0x8e: case 0x2f: case 0xaf: case 0x8f: case 0x41: case 0x93:
        case 0x42: case 0x89: case 0x8b: case 0x34: case 0x90: case 0x35: case 0x91:
                return true;
        default:
                return false;
        }
}

bool sanitize_refuses(struct scsi_cmd *c) {
        struct iscsi_lu *lu = c->lu;
        uint8_t op = c->cdb[0];
        uint16_t asc = 0;
        uint8_t sk = 0;
        pthread_mutex_lock(&lu->lock);
        /* SBC-4 4.11.2: only INQUIRY, REPORT LUNS and REQUEST SENSE are served meanwhile */
        if (lu->sanitizing && op != 0x12 && op != 0xa0 && op != 0x03) {
                sk = SK_NOT_READY;
                asc = ASC_SANITIZE_IN_PROGRESS;
        } else if (lu->sanitize_failed && media_access(op)) {
                sk = SK_MEDIUM_ERROR;
                asc = ASC_SANITIZE_FAILED;
        }
        pthread_mutex_unlock(&lu->lock);
        if (asc)
                scsi_check(c, sk, asc);
        return asc != 0;
}

/* n more blocks done; -ECANCELED once the LU is going away (sanitize_cancel). */
static int sanitize_progress(struct iscsi_lu *lu, uint64_t n) {
        LOCK_GUARD(&lu->lock);
        lu->sanitize_done += n;
        return lu->sanitize_cancel ? -ECANCELED : 0;
}

/* One overwrite pass: every block gets the pattern repeated from its first byte. */
static int overwrite_pass(struct sanitize_job *j, uint8_t *buf, bool inverted) {
        struct iscsi_lu *lu = j->lu;
        uint32_t bs = lu->block_size, per = MAX(CHUNK / bs, 1u);
        for (uint32_t i = 0; i < per * bs; i++)
                buf[i] = (uint8_t) (j->pattern[i % bs % j->plen] ^ (inverted ? 0xff : 0));
        for (uint64_t lba = 0; lba < lu->nblocks;) {
                uint32_t n = (uint32_t) MIN((uint64_t) per, lu->nblocks - lba);
                int r = orion_bdev_pwrite(lu->bdev, buf, (uint64_t) n * bs, lba * bs, 0);
                if (r < 0 || (r = sanitize_progress(lu, n)) < 0)
                        return r;
                lba += n;
        }
        /* each pass reaches the medium before the next one starts */
        return orion_bdev_flush(lu->bdev, 0);
}

static int block_erase(struct sanitize_job *j) {
        struct iscsi_lu *lu = j->lu;
        uint64_t per = (1ull << 30) / lu->block_size;
        for (uint64_t lba = 0; lba < lu->nblocks;) {
                uint64_t n = MIN(per, lu->nblocks - lba);
                int r = orion_bdev_write_zeroes(lu->bdev, n * lu->block_size, lba * lu->block_size, 0);
                if (r < 0 || (r = sanitize_progress(lu, n)) < 0)
                        return r;
                lba += n;
        }
        return orion_bdev_flush(lu->bdev, 0);
}

static void *sanitize_thread(void *arg) {
        struct sanitize_job *j = arg;
        struct iscsi_lu *lu = j->lu;
        int r = 0;

        /* writes already running finish first; new ones are refused while sanitizing */
        pthread_rwlock_wrlock(&lu->caw_lock);
        if (j->sa == SA_BLOCK_ERASE)
                r = block_erase(j);
        else {
                uint8_t *buf = malloc(MAX(CHUNK / lu->block_size, 1u) * lu->block_size);
                if (!buf)
                        r = -ENOMEM;
                for (unsigned p = 0; buf && p < j->passes && r >= 0; p++)
                        r = overwrite_pass(j, buf, j->invert && (p & 1));
                free(buf);
        }
        pthread_rwlock_unlock(&lu->caw_lock);
        if (r == -ECANCELED)
                orion_warn("iscsi: LUN %llu: sanitize cancelled: the LU is going away", (unsigned long long) lu->lun);
        else if (r < 0)
                orion_warn("iscsi: LUN %llu: sanitize failed: %s", (unsigned long long) lu->lun, strerror(-r));
        else
                orion_info("iscsi: LUN %llu: sanitize complete", (unsigned long long) lu->lun);
        {
                LOCK_GUARD(&lu->lock);
                lu->sanitizing = false;
                lu->sanitize_failed = r < 0;
                lu->sanitize_ause = j->ause;
                j->done = true;
                j->result = r;
                pthread_cond_broadcast(&lu->sanitize_cond);
        }
        job_unref(j);
        return NULL;
}

void sanitize_cancel(struct iscsi_lu *lu) {
        LOCK_GUARD(&lu->lock);
        lu->sanitize_cancel = true;
        /* the thread clears sanitizing after its last access to the node */
        while (lu->sanitizing)
                pthread_cond_wait(&lu->sanitize_cond, &lu->lock);
}

/* OVERWRITE parameter list (SBC-4 5.30.3): checks it and copies the pattern into j. */
static int parse_overwrite(struct scsi_cmd *c, uint32_t plen, struct sanitize_job *j) {
        uint32_t bs = c->lu->block_size;
        const uint8_t *p = c->out;
        if (plen < 5 || plen > bs + 4)
                return scsi_check_field(c, true, 7, -1);
        if (c->out_len < plen)
                return scsi_check(c, SK_ILLEGAL_REQUEST, ASC_PARAM_LIST_LENGTH_ERROR);
        j->invert = p[0] & 0x80;
        j->passes = p[0] & 0x1f;
        j->plen = get_be16(p + 2);
        if (p[0] & 0x60) /* TEST */
                return scsi_check_field(c, false, 0, 6);
        if (j->passes == 0)
                return scsi_check_field(c, false, 0, 4);
        if (j->plen == 0 || j->plen > bs || j->plen + 4 != plen || j->plen > sizeof(j->pattern))
                return scsi_check_field(c, false, 2, -1);
        memcpy(j->pattern, p + 4, j->plen);
        return 1;
}

static int exit_failure_mode(struct scsi_cmd *c) {
        struct iscsi_lu *lu = c->lu;
        LOCK_GUARD(&lu->lock);
        if (lu->sanitize_failed && !lu->sanitize_ause) /* only a new SANITIZE may end it */
                return scsi_check_field(c, true, 1, 5);
        lu->sanitize_failed = false;
        return 0;
}

/* Start the job; wait for it unless IMMED (or the task is aborted: the job goes on). */
static int run_job(struct scsi_cmd *c, struct sanitize_job *j, bool immed) {
        struct iscsi_lu *lu = c->lu;
        pthread_t th;
        pthread_attr_t a;

        {
                LOCK_GUARD(&lu->lock);
                if (lu->sanitizing) { /* another SANITIZE got here first */
                        job_unref(j);
                        job_unref(j);
                        return scsi_check(c, SK_NOT_READY, ASC_SANITIZE_IN_PROGRESS);
                }
                if (lu->sanitize_cancel) { /* the LU was removed while this command came in */
                        job_unref(j);
                        job_unref(j);
                        return scsi_check(c, SK_ILLEGAL_REQUEST, ASC_LUN_NOT_SUPPORTED);
                }
                lu->sanitizing = true;
                lu->sanitize_done = 0;
                lu->sanitize_total = lu->nblocks * (j->sa == SA_OVERWRITE ? j->passes : 1);
        }
        pthread_attr_init(&a);
        pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
        int e = pthread_create(&th, &a, sanitize_thread, j);
        pthread_attr_destroy(&a);
        if (e != 0) {
                LOCK_GUARD(&lu->lock);
                lu->sanitizing = false;
                job_unref(j);
                job_unref(j);
                return scsi_check(c, SK_ABORTED_COMMAND, ASC_OUT_OF_MEMORY);
        }
        orion_info("iscsi: LUN %llu: sanitize (%s) started by %s", (unsigned long long) lu->lun,
                   j->sa == SA_OVERWRITE ? "overwrite" : "block erase", c->sess->initiator);
        if (immed) {
                job_unref(j);
                return 0;
        }
        int r = 0;
        {
                LOCK_GUARD(&lu->lock);
                while (!j->done && !(c->aborted && __atomic_load_n(c->aborted, __ATOMIC_ACQUIRE))) {
                        struct timespec ts;
                        clock_gettime(CLOCK_REALTIME, &ts);
                        ts.tv_nsec += 100 * 1000 * 1000;
                        if (ts.tv_nsec >= 1000000000) {
                                ts.tv_sec++;
                                ts.tv_nsec -= 1000000000;
                        }
                        (void) pthread_cond_timedwait(&lu->sanitize_cond, &lu->lock, &ts);
                }
                if (j->done && j->result < 0)
                        r = -1;
        }
        job_unref(j);
        if (r < 0)
                return scsi_check(c, SK_MEDIUM_ERROR, ASC_SANITIZE_FAILED);
        return 0;
}

int sbc_sanitize(struct scsi_cmd *c) {
        struct iscsi_lu *lu = c->lu;
        const uint8_t *cdb = c->cdb;
        uint8_t sa = cdb[1] & 0x1f;
        bool immed = cdb[1] & 0x80, ause = cdb[1] & 0x20;
        uint32_t plen = get_be16(cdb + 7);
        int r;

        c->xfer_len = plen;
        if (cdb[1] & 0x40)
                return scsi_check_field(c, true, 1, 6);
        for (uint16_t i = 2; i <= 6; i++)
                if (cdb[i])
                        return scsi_check_field(c, true, i, -1);
        if (!sanitize_supports(lu, sa))
                return scsi_check_field(c, true, 1, 4);
        if (sa != SA_OVERWRITE && plen != 0)
                return scsi_check_field(c, true, 7, -1);
        if (scsi_write_protected(c))
                return 0;
        if (sa == SA_EXIT_FAILURE_MODE)
                return exit_failure_mode(c);
        struct sanitize_job *j = calloc(1, sizeof(*j));
        if (!j)
                return scsi_check(c, SK_ABORTED_COMMAND, ASC_OUT_OF_MEMORY);
        atomic_init(&j->refs, 2);
        j->lu = lu_ref(lu);
        j->sa = sa;
        j->ause = ause;
        j->passes = 1;
        if (sa == SA_OVERWRITE && (r = parse_overwrite(c, plen, j)) <= 0) {
                job_unref(j);
                job_unref(j);
                return r;
        }
        return run_job(c, j, immed);
}
