/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* SBC-3 block commands over an Orion node: READ CAPACITY, READ/WRITE/VERIFY/WRITE AND VERIFY,
 * WRITE SAME, UNMAP, GET LBA STATUS, SYNCHRONIZE CACHE, COMPARE AND WRITE, PRE-FETCH, ORWRITE,
 * READ DEFECT DATA. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "iscsi.h"

#define MAX_XFER_BYTES (32u << 20) /* = the largest write a connection buffers */

uint32_t sbc_max_xfer_blocks(const struct iscsi_lu *lu) {
        return MAX_XFER_BYTES / lu->block_size;
}

struct rw {
        uint64_t lba;
        uint32_t n;
        uint8_t flags; /* cdb[1] */
};

/* Decode LBA/length of the 6/10/12/16-byte CDB forms. */
static void rw_decode(const uint8_t *cdb, struct rw *rw) {
        switch (cdb[0] >> 5) {
        case 0: /* 6-byte */
                rw->lba = (uint64_t) (cdb[1] & 0x1f) << 16 | get_be16(cdb + 2);
                rw->n = cdb[4] ? cdb[4] : 256;
                rw->flags = 0;
                break;
        case 1:
        case 2: /* 10-byte */
                rw->lba = get_be32(cdb + 2);
                rw->n = get_be16(cdb + 7);
                rw->flags = cdb[1];
                break;
        case 5: /* 12-byte */
                rw->lba = get_be32(cdb + 2);
                rw->n = get_be32(cdb + 6);
                rw->flags = cdb[1];
                break;
        default: /* 16-byte */
                rw->lba = get_be64(cdb + 2);
                rw->n = get_be32(cdb + 10);
                rw->flags = cdb[1];
                break;
        }
}

static bool range_bad(const struct iscsi_lu *lu, uint64_t lba, uint64_t n) {
        return lba > lu->nblocks || n > lu->nblocks - lba;
}

static int check_range(struct scsi_cmd *c, const struct rw *rw) {
        if (range_bad(c->lu, rw->lba, rw->n))
                return scsi_check(c, SK_ILLEGAL_REQUEST, ASC_LBA_OUT_OF_RANGE);
        if (rw->n > sbc_max_xfer_blocks(c->lu))
                return scsi_check(c, SK_ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_CDB);
        return 1;
}

static int write_blocks(struct scsi_cmd *c, const void *buf, uint64_t lba, uint32_t n, uint32_t flags) {
        struct iscsi_lu *lu = c->lu;
        pthread_rwlock_rdlock(&lu->caw_lock);
        int r = orion_bdev_pwrite(lu->bdev, buf, (uint64_t) n * lu->block_size, lba * lu->block_size, flags);
        pthread_rwlock_unlock(&lu->caw_lock);
        return r;
}

static int do_read(struct scsi_cmd *c, const struct rw *rw) {
        struct iscsi_lu *lu = c->lu;
        uint32_t len = rw->n * lu->block_size;
        if (scsi_alloc_in(c, len) < 0)
                return scsi_check(c, SK_ABORTED_COMMAND, ASC_OUT_OF_MEMORY);
        if (len == 0)
                return 0;
        int r = orion_bdev_pread(lu->bdev, c->in, len, rw->lba * lu->block_size, 0);
        if (r < 0)
                return scsi_errno(c, r, false);
        return 0;
}

/* Compare `len` bytes at lba with buf; on a difference report MISCOMPARE with its offset. */
static int compare_blocks(struct scsi_cmd *c, uint64_t lba, const uint8_t *buf, uint32_t len, uint32_t stride) {
        struct iscsi_lu *lu = c->lu;
        uint8_t *tmp = malloc(len ? len : 1);
        if (!tmp)
                return scsi_check(c, SK_ABORTED_COMMAND, ASC_OUT_OF_MEMORY);
        int r = orion_bdev_pread(lu->bdev, tmp, len, lba * lu->block_size, 0);
        if (r < 0) {
                free(tmp);
                return scsi_errno(c, r, false);
        }
        for (uint32_t i = 0; i < len; i++)
                if (tmp[i] != buf[stride ? i % stride : i]) {
                        free(tmp);
                        return scsi_check_info(c, SK_MISCOMPARE, ASC_MISCOMPARE_VERIFY, i);
                }
        free(tmp);
        return 0;
}

int sbc_rw(struct scsi_cmd *c) {
        struct iscsi_lu *lu = c->lu;
        uint8_t op = c->cdb[0];
        bool write = op == 0x0a || op == 0x2a || op == 0xaa || op == 0x8a || op == 0x2e || op == 0xae || op == 0x8e;
        bool verify = op == 0x2e || op == 0xae || op == 0x8e;
        struct rw rw;
        int r;

        rw_decode(c->cdb, &rw);
        c->xfer_len = rw.n * lu->block_size;
        if ((rw.flags >> 5) != 0) /* RDPROTECT/WRPROTECT: no protection information */
                return scsi_check(c, SK_ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_CDB);
        if ((r = check_range(c, &rw)) <= 0)
                return r;
        if (!write)
                return do_read(c, &rw);
        if (scsi_write_protected(c))
                return 0;
        /* Write what arrived: a short Data-Out (EDTL below the CDB) writes whole blocks only. */
        uint32_t avail = MIN(c->out_len, rw.n * lu->block_size);
        uint32_t nb = avail / lu->block_size;
        uint32_t flags = ((rw.flags & 0x08) || verify) ? ORION_FUA : 0;
        if (nb == 0) {
                c->status = SAM_GOOD;
                return 0;
        }
        r = write_blocks(c, c->out, rw.lba, nb, flags);
        if (r < 0)
                return scsi_errno(c, r, true);
        if (verify)
                return compare_blocks(c, rw.lba, c->out, nb * lu->block_size, 0);
        c->status = SAM_GOOD;
        return 0;
}

int sbc_rw_prepare(struct scsi_cmd *c, struct orion_req *rq) {
        struct iscsi_lu *lu = c->lu;
        uint8_t op = c->cdb[0];
        bool write = op == 0x0a || op == 0x2a || op == 0xaa || op == 0x8a;
        struct rw rw;

        if (!lu || !(write || op == 0x08 || op == 0x28 || op == 0xa8 || op == 0x88))
                return -1;
        c->status = SAM_GOOD;
        c->in = NULL;
        c->in_len = c->xfer_len = c->sense_len = 0;
        if (scsi_precheck(c))
                return 0;
        rw_decode(c->cdb, &rw);
        c->xfer_len = rw.n * lu->block_size;
        if ((rw.flags >> 5) != 0)
                return scsi_check(c, SK_ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_CDB);
        if (check_range(c, &rw) <= 0)
                return 0;
        uint32_t len = rw.n * lu->block_size;
        if (len == 0 || (write && c->out_len < len))
                return -1; /* nothing to transfer / a short Data-Out: sbc_rw's rules */
        *rq = (struct orion_req){ .bdev = lu->bdev, .len = len, .off = rw.lba * lu->block_size };
        if (!write) {
                /* not zeroed: the read fills all of it, or the buffer is dropped */
                c->in = malloc(len);
                if (!c->in)
                        return scsi_check(c, SK_ABORTED_COMMAND, ASC_OUT_OF_MEMORY);
                c->in_len = len;
                rq->op = ORION_OP_READ;
                rq->buf = c->in;
                return 1;
        }
        if (scsi_write_protected(c))
                return 0;
        rq->op = ORION_OP_WRITE;
        rq->buf = (void *) c->out;
        rq->flags = (rw.flags & 0x08) ? ORION_FUA : 0;
        return 1;
}

void sbc_rw_finish(struct scsi_cmd *c, const struct orion_req *rq) {
        if (rq->result >= 0)
                return;
        free(c->in);
        c->in = NULL;
        c->in_len = 0;
        (void) scsi_errno(c, rq->result, rq->op == ORION_OP_WRITE);
}

int sbc_verify(struct scsi_cmd *c) {
        struct iscsi_lu *lu = c->lu;
        struct rw rw;
        int r;

        rw_decode(c->cdb, &rw);
        uint8_t bytchk = (rw.flags >> 1) & 3;
        if ((rw.flags >> 5) != 0 || bytchk == 2)
                return scsi_check(c, SK_ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_CDB);
        c->xfer_len = bytchk == 0 ? 0 : bytchk == 3 ? lu->block_size : rw.n * lu->block_size;
        if ((r = check_range(c, &rw)) <= 0)
                return r;
        if (rw.n == 0)
                return 0;
        if (bytchk == 0) { /* medium verification: the blocks must be readable */
                r = do_read(c, &rw);
                free(c->in);
                c->in = NULL;
                c->in_len = 0;
                return r;
        }
        if (c->out_len < c->xfer_len)
                return scsi_check(c, SK_ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_CDB);
        return compare_blocks(c, rw.lba, c->out, rw.n * lu->block_size, bytchk == 3 ? lu->block_size : 0);
}

int sbc_read_capacity10(struct scsi_cmd *c) {
        uint8_t d[8];
        if (!(c->cdb[8] & 1) && get_be32(c->cdb + 2) != 0)
                return scsi_check(c, SK_ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_CDB);
        uint64_t last = c->lu->nblocks - 1;
        put_be32(d, last > 0xffffffffull ? 0xffffffffu : (uint32_t) last);
        put_be32(d + 4, c->lu->block_size);
        return scsi_reply(c, d, sizeof(d), sizeof(d));
}

static int read_capacity16(struct scsi_cmd *c) {
        uint8_t d[32] = { 0 };
        put_be64(d, c->lu->nblocks - 1);
        put_be32(d + 8, c->lu->block_size);
        if (c->lu->thin)
                d[14] = 0x80 | 0x40; /* LBPME, LBPRZ */
        return scsi_reply(c, d, sizeof(d), get_be32(c->cdb + 10));
}

/* GET LBA STATUS: descriptors from the node's block status, starting at the given LBA. */
static int get_lba_status(struct scsi_cmd *c) {
        struct iscsi_lu *lu = c->lu;
        uint64_t lba = get_be64(c->cdb + 2);
        uint32_t alloc = get_be32(c->cdb + 10);
        uint32_t bs = lu->block_size;
        enum { MAXD = 64 };
        uint8_t d[8 + 16 * MAXD] = { 0 };
        uint32_t n = 8;

        if (lba >= lu->nblocks)
                return scsi_check(c, SK_ILLEGAL_REQUEST, ASC_LBA_OUT_OF_RANGE);
        uint64_t off = lba * bs, len = (lu->nblocks - lba) * bs;
        struct orion_extents *ext = orion_extents_new(off, MAXD);
        if (!ext)
                return scsi_check(c, SK_ABORTED_COMMAND, ASC_OUT_OF_MEMORY);
        int r = orion_bdev_block_status(lu->bdev, MIN(len, 1ull << 40), off, ext);
        if (r < 0) {
                orion_extents_free(ext);
                return scsi_errno(c, r, false);
        }
        uint64_t next = lba;
        for (size_t i = 0; i < orion_extents_count(ext) && n + 16 <= sizeof(d); i++) {
                uint64_t eo, el;
                uint32_t fl;
                if (!orion_extents_get(ext, i, &eo, &el, &fl))
                        break;
                uint64_t end = MIN((eo + el) / bs, lu->nblocks);
                if (end <= next)
                        continue;
                uint64_t cnt = MIN(end - next, 0xffffffffull);
                uint8_t st = (lu->thin && (fl & ORION_EXTENT_HOLE)) ? 1 : 0;
                if (n > 8 && d[n - 16 + 12] == st && get_be64(d + n - 16) + get_be32(d + n - 16 + 8) == next &&
                    (uint64_t) get_be32(d + n - 16 + 8) + cnt <= 0xffffffffull) {
                        put_be32(d + n - 16 + 8, get_be32(d + n - 16 + 8) + (uint32_t) cnt);
                } else {
                        put_be64(d + n, next);
                        put_be32(d + n + 8, (uint32_t) cnt);
                        d[n + 12] = st;
                        n += 16;
                }
                next += cnt;
        }
        orion_extents_free(ext);
        if (n == 8) { /* the node described nothing: report the block as mapped */
                put_be64(d + n, lba);
                put_be32(d + n + 8, 1);
                n += 16;
        }
        put_be32(d, n - 4);
        return scsi_reply(c, d, n, alloc);
}

int sbc_service_in16(struct scsi_cmd *c) {
        switch (c->cdb[1] & 0x1f) {
        case 0x10:
                return read_capacity16(c);
        case 0x12:
                return get_lba_status(c);
        default:
                return scsi_check(c, SK_ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_CDB);
        }
}

static bool all_zero(const uint8_t *p, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (p[i])
                        return false;
        return true;
}

/* Deallocate blocks so that they read back as zeroes (we report LBPRZ). */
static int unmap_blocks(struct scsi_cmd *c, uint64_t lba, uint64_t n) {
        struct iscsi_lu *lu = c->lu;
        if (n == 0)
                return 0;
        pthread_rwlock_rdlock(&lu->caw_lock);
        int r = orion_bdev_write_zeroes(lu->bdev, n * lu->block_size, lba * lu->block_size, 0);
        pthread_rwlock_unlock(&lu->caw_lock);
        return r;
}

int sbc_write_same(struct scsi_cmd *c) {
        struct iscsi_lu *lu = c->lu;
        bool sixteen = c->cdb[0] == 0x93;
        uint8_t f = c->cdb[1];
        bool unmap = f & 0x08, ndob = sixteen && (f & 0x01);
        uint64_t lba = sixteen ? get_be64(c->cdb + 2) : get_be32(c->cdb + 2);
        uint64_t n = sixteen ? get_be32(c->cdb + 10) : get_be16(c->cdb + 7);
        uint32_t bs = lu->block_size;
        int r;

        c->xfer_len = ndob ? 0 : bs;
        if ((f >> 5) != 0 || (f & 0x10) || (f & 0x06))
                return scsi_check(c, SK_ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_CDB);
        if (scsi_write_protected(c))
                return 0;
        if (unmap && !lu->thin) /* LBPWS = 0: the UNMAP bit is refused, as VPD B2h says */
                return scsi_check(c, SK_ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_CDB);
        if (range_bad(lu, lba, n))
                return scsi_check(c, SK_ILLEGAL_REQUEST, ASC_LBA_OUT_OF_RANGE);
        if (n == 0) /* WSNZ = 0: zero blocks means up to the end of the LU */
                n = lu->nblocks - lba;
        if (n > SBC_MAX_WRITE_SAME)
                return scsi_check(c, SK_ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_CDB);
        if (n == 0)
                return 0;
        if (scsi_write_protected(c))
                return 0;
        if (!ndob && c->out_len < bs)
                return scsi_check(c, SK_ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_CDB);
        /* UNMAP bit on a thin LU: deallocate whatever the data block holds (SBC-3 5.42; the
         * blocks then read as zeroes, LBPRZ); libiscsi's UnmapUntilEnd checks exactly this. */
        if (unmap) {
                r = unmap_blocks(c, lba, n);
                return r < 0 ? scsi_errno(c, r, true) : 0;
        }
        if (ndob || all_zero(c->out, bs)) {
                pthread_rwlock_rdlock(&lu->caw_lock);
                r = orion_bdev_write_zeroes(lu->bdev, n * bs, lba * bs, ORION_NO_HOLE);
                pthread_rwlock_unlock(&lu->caw_lock);
                return r < 0 ? scsi_errno(c, r, true) : 0;
        }
        /* Replicate the block through a buffer of up to 1 MiB. */
        uint32_t per = MAX(1u, MIN((uint32_t) n, (1u << 20) / bs));
        uint8_t *buf = malloc((size_t) per * bs);
        if (!buf)
                return scsi_check(c, SK_ABORTED_COMMAND, ASC_OUT_OF_MEMORY);
        for (uint32_t i = 0; i < per; i++)
                memcpy(buf + (size_t) i * bs, c->out, bs);
        r = 0;
        for (uint64_t done = 0; done < n && r >= 0;) {
                uint32_t k = (uint32_t) MIN((uint64_t) per, n - done);
                r = write_blocks(c, buf, lba + done, k, 0);
                done += k;
        }
        free(buf);
        return r < 0 ? scsi_errno(c, r, true) : 0;
}

int sbc_unmap(struct scsi_cmd *c) {
        struct iscsi_lu *lu = c->lu;
        uint32_t plen = get_be16(c->cdb + 7);
        const uint8_t *p = c->out;
        int r;

        if (scsi_write_protected(c))
                return 0;
        if (!lu->thin)
                return scsi_check(c, SK_ILLEGAL_REQUEST, ASC_INVALID_OPCODE);
        if (c->cdb[1] & 0x01) /* ANCHOR: not supported */
                return scsi_check(c, SK_ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_CDB);
        c->xfer_len = plen;
        if (plen == 0)
                return 0;
        if (plen < 8 || c->out_len < 8)
                return scsi_check(c, SK_ILLEGAL_REQUEST, ASC_PARAM_LIST_LENGTH_ERROR);
        uint32_t avail = MIN(plen, c->out_len);
        uint32_t bdl = get_be16(p + 2);
        if (bdl > avail - 8)
                bdl = (avail - 8) & ~15u;
        if (bdl / 16 > 256)
                return scsi_check(c, SK_ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_PARAM);
        for (uint32_t off = 8; off + 16 <= 8 + bdl; off += 16)
                if (range_bad(lu, get_be64(p + off), get_be32(p + off + 8)))
                        return scsi_check(c, SK_ILLEGAL_REQUEST, ASC_LBA_OUT_OF_RANGE);
        for (uint32_t off = 8; off + 16 <= 8 + bdl; off += 16) {
                r = unmap_blocks(c, get_be64(p + off), get_be32(p + off + 8));
                if (r < 0)
                        return scsi_errno(c, r, true);
        }
        return 0;
}

int sbc_sync_cache(struct scsi_cmd *c) {
        bool sixteen = c->cdb[0] == 0x91;
        uint64_t lba = sixteen ? get_be64(c->cdb + 2) : get_be32(c->cdb + 2);
        uint64_t n = sixteen ? get_be32(c->cdb + 10) : get_be16(c->cdb + 7);
        if (range_bad(c->lu, lba, n))
                return scsi_check(c, SK_ILLEGAL_REQUEST, ASC_LBA_OUT_OF_RANGE);
        int r = orion_bdev_flush(c->lu->bdev, 0);
        return r < 0 ? scsi_errno(c, r, true) : 0;
}

int sbc_prefetch(struct scsi_cmd *c) {
        bool sixteen = c->cdb[0] == 0x90;
        uint64_t lba = sixteen ? get_be64(c->cdb + 2) : get_be32(c->cdb + 2);
        uint64_t n = sixteen ? get_be32(c->cdb + 10) : get_be16(c->cdb + 7);
        if (range_bad(c->lu, lba, n))
                return scsi_check(c, SK_ILLEGAL_REQUEST, ASC_LBA_OUT_OF_RANGE);
        /* Nothing to stage: the node has its own caching. GOOD, not CONDITION MET, because
         * we promise nothing about the blocks being cached afterwards. */
        return 0;
}

int sbc_compare_and_write(struct scsi_cmd *c) {
        struct iscsi_lu *lu = c->lu;
        uint64_t lba = get_be64(c->cdb + 2);
        uint32_t n = c->cdb[13], bs = lu->block_size;
        uint8_t f = c->cdb[1];
        int r;

        c->xfer_len = 2 * n * bs;
        if ((f >> 5) != 0)
                return scsi_check(c, SK_ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_CDB);
        if (range_bad(lu, lba, n))
                return scsi_check(c, SK_ILLEGAL_REQUEST, ASC_LBA_OUT_OF_RANGE);
        /* The Data-Out must match the CDB exactly (also for 0 blocks: no data at all). */
        if (c->out_len != 2 * n * bs)
                return scsi_check(c, SK_ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_CDB);
        if (n == 0)
                return 0;
        if (scsi_write_protected(c))
                return 0;
        /* Atomic against every other write of this LU: they hold the lock shared. */
        pthread_rwlock_wrlock(&lu->caw_lock);
        r = compare_blocks(c, lba, c->out, n * bs, 0);
        if (r == 0 && c->status == SAM_GOOD) {
                r = orion_bdev_pwrite(lu->bdev, c->out + n * bs, (uint64_t) n * bs, lba * bs,
                                      (f & 0x08) ? ORION_FUA : 0);
                if (r < 0)
                        (void) scsi_errno(c, r, true);
        }
        pthread_rwlock_unlock(&lu->caw_lock);
        return 0;
}

int sbc_orwrite(struct scsi_cmd *c) {
        struct iscsi_lu *lu = c->lu;
        struct rw rw;
        int r;

        rw_decode(c->cdb, &rw);
        c->xfer_len = rw.n * lu->block_size;
        if ((rw.flags >> 5) != 0)
                return scsi_check(c, SK_ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_CDB);
        if ((r = check_range(c, &rw)) <= 0)
                return r;
        if (scsi_write_protected(c))
                return 0;
        uint32_t len = MIN(c->out_len, rw.n * lu->block_size) / lu->block_size * lu->block_size;
        if (len == 0)
                return 0;
        uint8_t *tmp = malloc(len);
        if (!tmp)
                return scsi_check(c, SK_ABORTED_COMMAND, ASC_OUT_OF_MEMORY);
        pthread_rwlock_wrlock(&lu->caw_lock);
        r = orion_bdev_pread(lu->bdev, tmp, len, rw.lba * lu->block_size, 0);
        if (r >= 0) {
                for (uint32_t i = 0; i < len; i++)
                        tmp[i] |= c->out[i];
                r = orion_bdev_pwrite(lu->bdev, tmp, len, rw.lba * lu->block_size, (rw.flags & 0x08) ? ORION_FUA : 0);
        }
        pthread_rwlock_unlock(&lu->caw_lock);
        free(tmp);
        return r < 0 ? scsi_errno(c, r, true) : 0;
}

/* READ DEFECT DATA (10)/(12): a node has no medium defects the target could know of, so both
 * the primary and the grown list are valid and empty, in whatever format was asked for. */
int sbc_read_defect_data(struct scsi_cmd *c) {
        bool twelve = c->cdb[0] == 0xb7;
        uint8_t req = twelve ? c->cdb[1] : c->cdb[2];
        uint32_t alloc = twelve ? get_be32(c->cdb + 6) : get_be16(c->cdb + 7);
        uint8_t d[8] = { 0 };

        if (req & 0xe0)
                return scsi_check_field(c, true, twelve ? 1 : 2, 7);
        d[1] = req & 0x1f; /* PLISTV/GLISTV for the lists asked for, and their format */
        /* list length 0; READ DEFECT DATA (12) reports generation code 0 (not supported) */
        return scsi_reply(c, d, twelve ? 8 : 4, alloc);
}
