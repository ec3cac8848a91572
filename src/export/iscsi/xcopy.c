/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* EXTENDED COPY (LID1) and RECEIVE COPY RESULTS (SPC-4 6.4, 6.18): the LU is a copy manager
 * for block-to-block segments between LUs of the session's target, named by identification
 * descriptors (their NAA designators). The copy runs in the command, 1 MiB at a time; results
 * of copies with a held list identifier are kept per I_T nexus for COPY STATUS. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "iscsi.h"

#define MAX_TGT_DESC 8
#define MAX_SEG_DESC 64
#define TGT_DESC_LEN 32
#define B2B_DESC_LEN 28
#define MAX_DESC_LIST (MAX_TGT_DESC * TGT_DESC_LEN + MAX_SEG_DESC * B2B_DESC_LEN)
#define MAX_SEG_BYTES (256u << 20)
#define CHUNK (1u << 20)

enum {
        ASC_TOO_MANY_TGT = 0x2606,
        ASC_UNSUPP_TGT_TYPE = 0x2607,
        ASC_TOO_MANY_SEG = 0x2608,
        ASC_UNSUPP_SEG_TYPE = 0x2609,
        ASC_UNREACHABLE_TARGET = 0x0804,
        ASC_OPERATION_IN_PROGRESS = 0x0016,
        SK_COPY_ABORTED = 0x0a,
};

/* The LU of the session's target whose NAA designator a target descriptor names, or NULL. */
static struct iscsi_lu *resolve_target(struct scsi_cmd *c, const uint8_t *d) {
        /* d[4..]: designation descriptor; only binary NAA designators of 8 bytes name our LUs */
        if ((d[4] & 0x0f) != 1 || (d[5] & 0x0f) != 3 || d[7] != 8 || ((d[5] >> 4) & 3) != 0)
                return NULL;
        if ((d[1] & 0x1f) != 0) /* peripheral device type: only block devices */
                return NULL;
        for (unsigned l = 0; c->sess->target && l < TARGET_MAX_LUNS; l++) {
                struct iscsi_lu *lu = target_lu_get(c->sess->target, l);
                if (lu && memcmp(lu->naa, d + 8, 8) == 0) {
                        uint32_t bl = get_be24(d + 29);
                        if (bl == lu->block_size)
                                return lu;
                }
                lu_unref(lu);
        }
        return NULL;
}

/* Whether this nexus may read src / write dst now (reservations, sanitize, write protect). */
static bool target_usable(struct scsi_cmd *c, struct iscsi_lu *lu, bool write) {
        uint8_t cdb[16] = { write ? 0x8a : 0x88 };
        struct scsi_cmd sub = { .lu = lu, .sess = c->sess, .cdb = cdb, .cdb_len = 16 };
        if (sanitize_refuses(&sub) || pr_conflicts(&sub))
                return false;
        return !(write && scsi_write_protected(&sub));
}

struct copy_state {
        uint16_t segs_done;
        uint64_t bytes_done;
};

static int copy_segment(struct scsi_cmd *c, const uint8_t *s, struct iscsi_lu **tgts, unsigned ntgt,
                        struct copy_state *st, uint8_t *buf) {
        uint16_t si = get_be16(s + 4), di = get_be16(s + 6);
        if (si >= ntgt || di >= ntgt)
                return scsi_check(c, SK_COPY_ABORTED, ASC_UNREACHABLE_TARGET);
        struct iscsi_lu *src = tgts[si], *dst = tgts[di];
        uint32_t bs = (s[1] & 0x02) ? dst->block_size : src->block_size; /* DC */
        uint64_t bytes = (uint64_t) get_be16(s + 10) * bs;
        uint64_t sl = get_be64(s + 12), dl = get_be64(s + 20);
        if (bytes % src->block_size || bytes % dst->block_size || bytes > MAX_SEG_BYTES)
                return scsi_check(c, SK_COPY_ABORTED, ASC_NO_ADDITIONAL);
        uint64_t sn = bytes / src->block_size, dn = bytes / dst->block_size;
        if (sl > src->nblocks || sn > src->nblocks - sl || dl > dst->nblocks || dn > dst->nblocks - dl)
                return scsi_check(c, SK_COPY_ABORTED, ASC_NO_ADDITIONAL);
        if (!target_usable(c, src, false) || !target_usable(c, dst, true))
                return scsi_check(c, SK_COPY_ABORTED, ASC_NO_ADDITIONAL);
        for (uint64_t done = 0; done < bytes;) {
                uint32_t n = (uint32_t) MIN((uint64_t) CHUNK, bytes - done);
                int r = orion_bdev_pread(src->bdev, buf, n, sl * src->block_size + done, 0);
                if (r >= 0) {
                        pthread_rwlock_rdlock(&dst->caw_lock);
                        r = orion_bdev_pwrite(dst->bdev, buf, n, dl * dst->block_size + done, 0);
                        pthread_rwlock_unlock(&dst->caw_lock);
                }
                if (r < 0)
                        return scsi_check(c, SK_COPY_ABORTED, ASC_NO_ADDITIONAL);
                done += n;
                st->bytes_done += n;
        }
        st->segs_done++;
        return 0;
}

/* Parse and check the parameter list; tgts gets references to the named LUs. */
static int parse_list(struct scsi_cmd *c, uint32_t plen, struct iscsi_lu **tgts, unsigned *ntgt,
                      uint32_t *seg_off, uint32_t *seg_len) {
        const uint8_t *p = c->out;
        if (plen < 16 || c->out_len < plen)
                return scsi_check(c, SK_ILLEGAL_REQUEST, ASC_PARAM_LIST_LENGTH_ERROR);
        uint32_t tl = get_be16(p + 2), sl = get_be32(p + 8), il = get_be32(p + 12);
        if ((uint64_t) tl + sl + il + 16 > plen)
                return scsi_check(c, SK_ILLEGAL_REQUEST, ASC_PARAM_LIST_LENGTH_ERROR);
        if ((uint64_t) tl + sl > MAX_DESC_LIST)
                return scsi_check(c, SK_ILLEGAL_REQUEST, ASC_PARAM_LIST_LENGTH_ERROR);
        if (il != 0) /* no inline data: only block-to-block segments are supported */
                return scsi_check_field(c, false, 12, -1);
        if (tl % TGT_DESC_LEN)
                return scsi_check(c, SK_ILLEGAL_REQUEST, ASC_PARAM_LIST_LENGTH_ERROR);
        if (tl / TGT_DESC_LEN > MAX_TGT_DESC)
                return scsi_check(c, SK_ILLEGAL_REQUEST, ASC_TOO_MANY_TGT);
        /* segment descriptors: count them (each states its own length) */
        unsigned nseg = 0;
        for (uint32_t off = 16 + tl; off < 16 + tl + sl; nseg++) {
                if (off + 4 > 16 + tl + sl)
                        return scsi_check(c, SK_ILLEGAL_REQUEST, ASC_PARAM_LIST_LENGTH_ERROR);
                uint32_t dl = get_be16(p + off + 2) + 4u;
                if (p[off] != 0x02)
                        return scsi_check(c, SK_ILLEGAL_REQUEST, ASC_UNSUPP_SEG_TYPE);
                if (dl != B2B_DESC_LEN || off + dl > 16 + tl + sl)
                        return scsi_check(c, SK_ILLEGAL_REQUEST, ASC_PARAM_LIST_LENGTH_ERROR);
                off += dl;
        }
        if (nseg > MAX_SEG_DESC)
                return scsi_check(c, SK_ILLEGAL_REQUEST, ASC_TOO_MANY_SEG);
        for (uint32_t off = 16; off < 16 + tl; off += TGT_DESC_LEN) {
                if (p[off] != 0xe4)
                        return scsi_check(c, SK_ILLEGAL_REQUEST, ASC_UNSUPP_TGT_TYPE);
                if (p[off + 1] & 0x20) /* NUL: obsolete in SPC-4 */
                        return scsi_check(c, SK_COPY_ABORTED, ASC_NO_ADDITIONAL);
                struct iscsi_lu *lu = resolve_target(c, p + off);
                if (!lu)
                        return scsi_check(c, SK_COPY_ABORTED, ASC_UNREACHABLE_TARGET);
                tgts[(*ntgt)++] = lu;
        }
        *seg_off = 16 + tl;
        *seg_len = sl;
        return 1;
}

/* ---- Held results (LIST ID USAGE 00b), per I_T nexus ------------------------------------- */
static struct xcopy_result *result_slot(struct iscsi_session *s, uint8_t id, bool create) {
        struct xcopy_result *free_slot = NULL;
        for (unsigned i = 0; i < ELEMENTSOF(s->xcopy); i++) {
                if (s->xcopy[i].used && s->xcopy[i].list_id == id)
                        return &s->xcopy[i];
                if (!s->xcopy[i].used && !free_slot)
                        free_slot = &s->xcopy[i];
        }
        if (!create)
                return NULL;
        if (!free_slot) { /* forget the oldest finished one */
                for (unsigned i = 0; i < ELEMENTSOF(s->xcopy) && !free_slot; i++)
                        if (!s->xcopy[i].running)
                                free_slot = &s->xcopy[i];
        }
        return free_slot;
}

int spc_extended_copy(struct scsi_cmd *c) {
        uint32_t plen = get_be32(c->cdb + 10);
        struct iscsi_lu *tgts[MAX_TGT_DESC] = { 0 };
        unsigned ntgt = 0;
        uint32_t seg_off = 0, seg_len = 0;
        struct copy_state st = { 0 };
        struct xcopy_result *res = NULL;
        uint8_t *buf = NULL;
        int r;

        c->xfer_len = plen;
        if ((c->cdb[1] & 0x1f) != 0) /* LID4 and others */
                return scsi_check_field(c, true, 1, 4);
        if (plen == 0)
                return 0;
        if ((r = parse_list(c, plen, tgts, &ntgt, &seg_off, &seg_len)) <= 0)
                goto out;
        uint8_t id = c->out[0], usage = (c->out[1] >> 3) & 3;
        if (usage == 0) {
                LOCK_GUARD(&c->sess->xcopy_lock);
                res = result_slot(c->sess, id, true);
                if (res && res->used && res->running) {
                        res = NULL;
                        r = scsi_check(c, SK_ILLEGAL_REQUEST, ASC_OPERATION_IN_PROGRESS);
                        goto out;
                }
                if (res)
                        *res = (struct xcopy_result){ .used = true, .running = true, .list_id = id };
        }
        buf = malloc(CHUNK);
        if (!buf) {
                r = scsi_check(c, SK_ABORTED_COMMAND, ASC_OUT_OF_MEMORY);
                goto out;
        }
        for (uint32_t off = seg_off; off < seg_off + seg_len && c->status == SAM_GOOD; off += B2B_DESC_LEN)
                r = copy_segment(c, c->out + off, tgts, ntgt, &st, buf);
out:
        if (res) {
                LOCK_GUARD(&c->sess->xcopy_lock);
                res->running = false;
                res->status = c->status == SAM_GOOD ? 0x01 : 0x02;
                res->segs = st.segs_done;
                res->bytes = st.bytes_done;
        }
        free(buf);
        for (unsigned i = 0; i < ntgt; i++)
                lu_unref(tgts[i]);
        return r < 0 ? r : 0;
}

static int copy_status(struct scsi_cmd *c, uint32_t alloc) {
        uint8_t d[12] = { 0 };
        LOCK_GUARD(&c->sess->xcopy_lock);
        struct xcopy_result *res = result_slot(c->sess, c->cdb[2], false);
        if (!res)
                return scsi_check_field(c, true, 2, -1);
        put_be32(d, 8);
        d[4] = res->running ? 0x00 : res->status; /* HDD = 0: no held data */
        put_be16(d + 5, res->segs);
        uint64_t kib = res->bytes >> 10;
        d[7] = (res->bytes & 1023) ? 0x00 : 0x01; /* transfer count in bytes, or KiB if exact */
        put_be32(d + 8, (uint32_t) MIN(d[7] ? kib : res->bytes, 0xffffffffull));
        return scsi_reply(c, d, sizeof(d), alloc);
}

static int operating_parameters(struct scsi_cmd *c, uint32_t alloc) {
        uint8_t d[46] = { 0 };
        put_be32(d, sizeof(d) - 4);
        d[4] = 0x00; /* SNLID = 0: a list identifier is always used */
        put_be16(d + 8, MAX_TGT_DESC);
        put_be16(d + 10, MAX_SEG_DESC);
        put_be32(d + 12, MAX_DESC_LIST);
        put_be32(d + 16, MAX_SEG_BYTES);
        put_be32(d + 20, 0);   /* no inline data */
        put_be32(d + 24, 0);   /* no held data */
        put_be32(d + 28, 0);   /* no stream devices */
        put_be16(d + 34, 1);   /* total concurrent copies (per I_T nexus, in the command) */
        d[36] = 1;
        d[37] = 9;             /* data segment granularity: 512 bytes (log2) */
        d[38] = 0;
        d[39] = 0;
        d[43] = 2;             /* implemented descriptor type codes: */
        d[44] = 0x02;          /* block to block */
        d[45] = 0xe4;          /* identification descriptor target descriptor */
        return scsi_reply(c, d, sizeof(d), alloc);
}

int spc_receive_copy_results(struct scsi_cmd *c) {
        uint32_t alloc = get_be32(c->cdb + 10);
        switch (c->cdb[1] & 0x1f) {
        case 0x00:
                return copy_status(c, alloc);
        case 0x03:
                return operating_parameters(c, alloc);
        default:
                return scsi_check_field(c, true, 1, 4);
        }
}
