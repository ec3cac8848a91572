/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* SPC-4 primary commands for a disk LU: INQUIRY and its VPD pages, MODE SENSE/SELECT, REPORT
 * LUNS, REQUEST SENSE and REPORT SUPPORTED OPERATION CODES. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iscsi.h"

#define VENDOR "ORION   "
#define PRODUCT "VIRTUAL-DISK    "
#define REVISION "0001"

static int inquiry_std(struct scsi_cmd *c, uint32_t alloc) {
        uint8_t d[96] = { 0 };
        d[0] = 0x00;        /* connected, direct access */
        d[2] = 0x06;        /* SPC-4 */
        d[3] = 0x12;        /* HiSup, response format 2 */
        d[4] = sizeof(d) - 5;
        d[5] = 0x00;
        d[6] = 0x00;
        d[7] = 0x02;        /* CmdQue */
        memcpy(d + 8, VENDOR, 8);
        memcpy(d + 16, PRODUCT, 16);
        memcpy(d + 32, REVISION, 4);
        put_be16(d + 58, 0x00a0); /* SAM-5 */
        put_be16(d + 60, 0x0960); /* iSCSI */
        put_be16(d + 62, 0x0460); /* SPC-4 */
        put_be16(d + 64, 0x04c0); /* SBC-3 */
        return scsi_reply(c, d, sizeof(d), alloc);
}

static const uint8_t vpd_pages[] = { 0x00, 0x80, 0x83, 0xb0, 0xb1, 0xb2 };

static uint32_t vpd_device_id(struct iscsi_lu *lu, const struct iscsi_session *s, uint8_t *d) {
        uint32_t n = 4;
        /* NAA, logical unit */
        d[n++] = 0x01;
        d[n++] = 0x03;
        d[n++] = 0;
        d[n++] = 8;
        memcpy(d + n, lu->naa, 8);
        n += 8;
        /* T10 vendor ID, logical unit */
        char t10[8 + 33];
        snprintf(t10, sizeof(t10), "%s%s", VENDOR, lu->serial);
        uint32_t l = (uint32_t) strlen(t10);
        d[n++] = 0x02;
        d[n++] = 0x01;
        d[n++] = 0;
        d[n++] = (uint8_t) l;
        memcpy(d + n, t10, l);
        n += l;
        /* Relative target port 1 (iSCSI, target port association) */
        d[n++] = 0x51;
        d[n++] = 0x94;
        d[n++] = 0;
        d[n++] = 4;
        put_be32(d + n, 1);
        n += 4;
        /* SCSI name string of the target device (UTF-8, padded to a multiple of 4 with NULs) */
        if (s->target) {
                l = (uint32_t) strlen(s->target->iqn) + 1;
                l = (l + 3) & ~3u;
                d[n++] = 0x53;
                d[n++] = 0xa8;
                d[n++] = 0;
                d[n++] = (uint8_t) l;
                memset(d + n, 0, l);
                memcpy(d + n, s->target->iqn, strlen(s->target->iqn));
                n += l;
        }
        put_be16(d + 2, (uint16_t) (n - 4));
        return n;
}

static int inquiry_vpd(struct scsi_cmd *c, uint8_t page, uint32_t alloc) {
        struct iscsi_lu *lu = c->lu;
        uint8_t d[512] = { 0 };
        uint32_t n;

        d[1] = page;
        switch (page) {
        case 0x00:
                memcpy(d + 4, vpd_pages, sizeof(vpd_pages));
                n = 4 + sizeof(vpd_pages);
                break;
        case 0x80:
                n = 4 + (uint32_t) strlen(lu->serial);
                memcpy(d + 4, lu->serial, n - 4);
                break;
        case 0x83:
                n = vpd_device_id(lu, c->sess, d);
                break;
        case 0xb0: {
                uint32_t maxx = sbc_max_xfer_blocks(lu);
                n = 64;
                d[4] = 0x00;  /* WSNZ = 0: WRITE SAME of 0 blocks runs to the end of the LU */
                d[5] = 0xff;  /* MAXIMUM COMPARE AND WRITE LENGTH */
                put_be16(d + 6, 1);
                put_be32(d + 8, maxx);
                put_be32(d + 12, MIN(maxx, 1048576u / lu->block_size));
                put_be32(d + 16, maxx);
                if (lu->thin) {
                        put_be32(d + 20, 0xffffffffu); /* MAX UNMAP LBA COUNT */
                        put_be32(d + 24, 256);         /* MAX UNMAP BLOCK DESCRIPTOR COUNT */
                        put_be32(d + 28, MAX(1u, 4096u / lu->block_size));
                }
                put_be64(d + 36, SBC_MAX_WRITE_SAME);
                break;
        }
        case 0xb1:
                n = 64;
                put_be16(d + 4, (orion_bdev_caps(lu->bdev) & ORION_CAP_ROTATIONAL) ? 0 : 1);
                if (sanitize_supports(lu, 0x02))
                        d[7] = 0x40; /* WABEREQ 01b: blocks read back (as zeroes) after BLOCK ERASE */
                break;
        case 0xb2:
                n = 8;
                if (lu->thin) {
                        d[5] = 0x80 | 0x40 | 0x20 | 0x04; /* LBPU LBPWS LBPWS10 LBPRZ */
                        d[6] = 0x02;                      /* thin provisioned */
                }
                break;
        default:
                return scsi_check(c, SK_ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_CDB);
        }
        if (page != 0x83)
                put_be16(d + 2, (uint16_t) (n - 4));
        return scsi_reply(c, d, n, alloc);
}

int spc_inquiry(struct scsi_cmd *c) {
        const uint8_t *cdb = c->cdb;
        uint32_t alloc = get_be16(cdb + 3);
        if (cdb[1] & 0x02) /* CMDDT (obsolete) */
                return scsi_check(c, SK_ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_CDB);
        if (cdb[1] & 0x01)
                return inquiry_vpd(c, cdb[2], alloc);
        if (cdb[2])
                return scsi_check(c, SK_ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_CDB);
        return inquiry_std(c, alloc);
}

/* ---- MODE SENSE ---------------------------------------------------------------------------- */
static uint32_t page_caching(struct iscsi_lu *lu, uint8_t pc, uint8_t *d) {
        memset(d, 0, 20);
        d[0] = 0x08;
        d[1] = 0x12;
        if (pc != 1 && lu->wce)
                d[2] = 0x04; /* WCE: the node caches writes until flush */
        return 20;
}

static bool lu_swp(struct iscsi_lu *lu) {
        LOCK_GUARD(&lu->lock);
        return lu->swp;
}

/* pc: 0 current, 1 changeable (only SWP), 2 default */
static uint32_t page_control(struct iscsi_lu *lu, uint8_t pc, uint8_t *d) {
        memset(d, 0, 12);
        d[0] = 0x0a;
        d[1] = 0x0a;
        if (pc == 1) {
                d[4] = 0x08;
                return 12;
        }
        d[3] = 0x10;             /* unrestricted reordering */
        if (pc == 0 && lu_swp(lu))
                d[4] = 0x08;     /* SWP: software write protect */
        put_be16(d + 8, 0xffff); /* busy timeout: unlimited */
        return 12;
}

int spc_mode_sense(struct scsi_cmd *c) {
        const uint8_t *cdb = c->cdb;
        struct iscsi_lu *lu = c->lu;
        bool ten = cdb[0] == 0x5a;
        bool dbd = cdb[1] & 0x08, llba = ten && (cdb[1] & 0x10);
        uint8_t pc = cdb[2] >> 6, page = cdb[2] & 0x3f, sub = cdb[3];
        uint32_t alloc = ten ? get_be16(cdb + 7) : cdb[4];
        uint8_t d[256] = { 0 };
        uint32_t hl = ten ? 8 : 4, n;

        if (pc == 3)
                return scsi_check(c, SK_ILLEGAL_REQUEST, ASC_SAVING_PARAMS_UNSUP);
        if (sub != 0 && !(sub == 0xff && page == 0x3f))
                return scsi_check(c, SK_ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_CDB);
        n = hl;
        if (!dbd) {
                uint32_t bdl = llba ? 16 : 8;
                if (llba) {
                        put_be64(d + n, lu->nblocks);
                        put_be32(d + n + 12, lu->block_size);
                } else {
                        put_be24(d + n + 1, lu->nblocks > 0xffffff ? 0xffffff : (uint32_t) lu->nblocks);
                        put_be24(d + n + 5, lu->block_size);
                }
                if (ten) {
                        d[4] = llba ? 1 : 0;
                        put_be16(d + 6, (uint16_t) bdl);
                } else
                        d[3] = (uint8_t) bdl;
                n += bdl;
        }
        switch (page) {
        case 0x08:
                n += page_caching(lu, pc, d + n);
                break;
        case 0x0a:
                n += page_control(lu, pc, d + n);
                break;
        case 0x3f:
                n += page_caching(lu, pc, d + n);
                n += page_control(lu, pc, d + n);
                break;
        default:
                return scsi_check(c, SK_ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_CDB);
        }
        uint8_t dev = 0x10; /* DPOFUA */
        if (lu->readonly || lu_swp(lu))
                dev |= 0x80;
        if (ten) {
                put_be16(d, (uint16_t) (n - 2));
                d[3] = dev;
        } else {
                d[0] = (uint8_t) (n - 1);
                d[2] = dev;
        }
        return scsi_reply(c, d, n, alloc);
}

/* One page of a MODE SELECT parameter list: every bit must equal the current value except the
 * changeable ones (the control page's SWP). *swp gets the requested SWP. */
static int select_page(struct scsi_cmd *c, const uint8_t *p, uint32_t off, uint32_t len, bool *swp) {
        uint8_t cur[20], mask[20] = { 0 };
        uint32_t n;

        if (p[0] & 0x40) /* SPF: no subpages here */
                return scsi_check_field(c, false, (uint16_t) off, 6);
        switch (p[0] & 0x3f) {
        case 0x08:
                n = page_caching(c->lu, 0, cur);
                break;
        case 0x0a:
                n = page_control(c->lu, 0, cur);
                (void) page_control(c->lu, 1, mask);
                break;
        default:
                return scsi_check_field(c, false, (uint16_t) off, -1);
        }
        if (len != n)
                return scsi_check_field(c, false, (uint16_t) (off + 1), -1);
        if (p[0] & 0x80) /* PS is reserved in MODE SELECT */
                return scsi_check_field(c, false, (uint16_t) off, 7);
        for (uint32_t i = 2; i < n; i++)
                if ((p[i] ^ cur[i]) & ~mask[i])
                        return scsi_check_field(c, false, (uint16_t) (off + i), -1);
        if ((p[0] & 0x3f) == 0x0a)
                *swp = p[4] & 0x08;
        return 1;
}

/* MODE SELECT (6)/(10): the control page's SWP is the one changeable parameter; a block
 * descriptor may restate the current geometry. Nothing can be saved. */
int spc_mode_select(struct scsi_cmd *c) {
        struct iscsi_lu *lu = c->lu;
        bool ten = c->cdb[0] == 0x55;
        uint32_t plen = ten ? get_be16(c->cdb + 7) : c->cdb[4];
        uint32_t hl = ten ? 8 : 4, off, bdl;
        const uint8_t *p = c->out;
        bool swp = lu_swp(lu);
        int r;

        c->xfer_len = plen;
        if (c->cdb[1] & 0x01) /* SP: saving pages */
                return scsi_check_field(c, true, 1, 0);
        if (plen == 0) {
                c->status = SAM_GOOD;
                return 0;
        }
        if (plen < hl || c->out_len < plen)
                return scsi_check(c, SK_ILLEGAL_REQUEST, ASC_PARAM_LIST_LENGTH_ERROR);
        bdl = ten ? get_be16(p + 6) : p[3];
        if (bdl > plen - hl)
                return scsi_check(c, SK_ILLEGAL_REQUEST, ASC_PARAM_LIST_LENGTH_ERROR);
        for (off = hl; off < hl + bdl; off += (ten && (p[4] & 1)) ? 16 : 8) {
                bool l = ten && (p[4] & 1);
                if (off + (l ? 16u : 8u) > hl + bdl)
                        return scsi_check(c, SK_ILLEGAL_REQUEST, ASC_PARAM_LIST_LENGTH_ERROR);
                uint64_t nb = l ? get_be64(p + off) : get_be32(p + off);
                uint32_t bl = l ? get_be32(p + off + 12) : get_be24(p + off + 5);
                /* the geometry cannot change: 0 blocks means "unchanged" */
                if (bl != lu->block_size || (nb != 0 && nb != MIN(lu->nblocks, l ? UINT64_MAX : 0xffffffull)))
                        return scsi_check_field(c, false, (uint16_t) off, -1);
        }
        if (off < plen && !(c->cdb[1] & 0x10)) /* pages need PF = 1 (SPC format) */
                return scsi_check_field(c, true, 1, 4);
        while (off < plen) {
                if (plen - off < 2 || plen - off - 2 < p[off + 1])
                        return scsi_check(c, SK_ILLEGAL_REQUEST, ASC_PARAM_LIST_LENGTH_ERROR);
                if ((r = select_page(c, p + off, off, p[off + 1] + 2u, &swp)) <= 0)
                        return r;
                off += p[off + 1] + 2u;
        }
        LOCK_GUARD(&lu->lock);
        if (swp != lu->swp) {
                lu->swp = swp;
                /* SPC-4 7.5.1: the other I_T nexuses get MODE PARAMETERS CHANGED */
                unsigned g = atomic_fetch_add(&lu->mode_gen, 1) + 1;
                if (lu->lun < TARGET_MAX_LUNS)
                        c->sess->mode_seen[lu->lun] = g;
                orion_info("iscsi: LUN %llu: software write protect %s by %s", (unsigned long long) lu->lun,
                           swp ? "on" : "off", c->sess->initiator);
        }
        c->status = SAM_GOOD;
        return 0;
}

/* ---- REPORT LUNS / REQUEST SENSE ------------------------------------------------------------ */
int spc_report_luns(struct scsi_cmd *c) {
        uint32_t alloc = get_be32(c->cdb + 6);
        uint8_t sel = c->cdb[2];
        uint8_t *d;
        uint32_t n = 8;

        if (alloc < 16)
                return scsi_check(c, SK_ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_CDB);
        if (sel > 2 && sel != 0x10 && sel != 0x11 && sel != 0x12)
                return scsi_check(c, SK_ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_CDB);
        d = calloc(1, 8 + 8 * TARGET_MAX_LUNS);
        if (!d)
                return scsi_check(c, SK_ABORTED_COMMAND, ASC_OUT_OF_MEMORY);
        if (sel != 1 && c->sess->target) {
                pthread_mutex_lock(&g_tgt_lock);
                for (unsigned i = 0; i < TARGET_MAX_LUNS; i++)
                        if (c->sess->target->luns[i]) {
                                if (i < 256)
                                        d[n + 1] = (uint8_t) i;
                                else {
                                        d[n] = (uint8_t) (0x40 | (i >> 8));
                                        d[n + 1] = (uint8_t) i;
                                }
                                n += 8;
                        }
                pthread_mutex_unlock(&g_tgt_lock);
        }
        put_be32(d, n - 8);
        int r = scsi_reply(c, d, n, alloc);
        free(d);
        return r;
}

int spc_request_sense(struct scsi_cmd *c) {
        uint8_t d[18] = { 0 };
        if (c->lu) {
                /* during a sanitize: NOT READY, SANITIZE IN PROGRESS with its progress */
                LOCK_GUARD(&c->lu->lock);
                if (c->lu->sanitizing) {
                        uint64_t t = MAX(c->lu->sanitize_total, 1);
                        d[0] = 0x70;
                        d[2] = SK_NOT_READY;
                        d[7] = 10;
                        d[12] = ASC_SANITIZE_IN_PROGRESS >> 8;
                        d[13] = ASC_SANITIZE_IN_PROGRESS & 0xff;
                        d[15] = 0x80;
                        put_be16(d + 16, (uint16_t) MIN(c->lu->sanitize_done * 65536 / t, 65535));
                }
        }
        if (d[0])
                return scsi_reply(c, d, sizeof(d), c->cdb[4]);
        if (c->cdb[1] & 0x01) { /* descriptor format */
                uint8_t dd[8] = { 0x72, SK_NO_SENSE, 0, 0, 0, 0, 0, 0 };
                return scsi_reply(c, dd, sizeof(dd), c->cdb[4]);
        }
        d[0] = 0x70;
        d[2] = SK_NO_SENSE;
        d[7] = 10;
        return scsi_reply(c, d, sizeof(d), c->cdb[4]);
}

/* ---- REPORT SUPPORTED OPERATION CODES ----------------------------------------------------- */
struct opdesc {
        uint8_t op;
        uint16_t sa;
        bool has_sa;
        uint8_t len;
        uint8_t usage[16]; /* CDB usage bitmap, byte 0 = opcode */
};

static const struct opdesc g_ops[] = {
        { 0x00, 0, false, 6, { 0x00, 0x00, 0x00, 0x00, 0x00, 0x07 } },
        { 0x03, 0, false, 6, { 0x03, 0x01, 0x00, 0x00, 0xff, 0x07 } },
        { 0x08, 0, false, 6, { 0x08, 0x1f, 0xff, 0xff, 0xff, 0x07 } },
        { 0x0a, 0, false, 6, { 0x0a, 0x1f, 0xff, 0xff, 0xff, 0x07 } },
        { 0x12, 0, false, 6, { 0x12, 0x01, 0xff, 0xff, 0xff, 0x07 } },
        { 0x15, 0, false, 6, { 0x15, 0x11, 0x00, 0x00, 0xff, 0x07 } },
        { 0x16, 0, false, 6, { 0x16, 0x00, 0x00, 0x00, 0x00, 0x07 } },
        { 0x17, 0, false, 6, { 0x17, 0x00, 0x00, 0x00, 0x00, 0x07 } },
        { 0x1a, 0, false, 6, { 0x1a, 0x08, 0xff, 0xff, 0xff, 0x07 } },
        { 0x25, 0, false, 10, { 0x25, 0x00, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x01, 0x07 } },
        { 0x28, 0, false, 10, { 0x28, 0xfa, 0xff, 0xff, 0xff, 0xff, 0x1f, 0xff, 0xff, 0x07 } },
        { 0x2a, 0, false, 10, { 0x2a, 0xfa, 0xff, 0xff, 0xff, 0xff, 0x1f, 0xff, 0xff, 0x07 } },
        { 0x2e, 0, false, 10, { 0x2e, 0xf2, 0xff, 0xff, 0xff, 0xff, 0x1f, 0xff, 0xff, 0x07 } },
        { 0x2f, 0, false, 10, { 0x2f, 0xf6, 0xff, 0xff, 0xff, 0xff, 0x1f, 0xff, 0xff, 0x07 } },
        { 0x34, 0, false, 10, { 0x34, 0x02, 0xff, 0xff, 0xff, 0xff, 0x1f, 0xff, 0xff, 0x07 } },
        { 0x35, 0, false, 10, { 0x35, 0x02, 0xff, 0xff, 0xff, 0xff, 0x1f, 0xff, 0xff, 0x07 } },
        { 0x37, 0, false, 10, { 0x37, 0x00, 0x1f, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0x07 } },
        { 0x41, 0, false, 10, { 0x41, 0xf8, 0xff, 0xff, 0xff, 0xff, 0x1f, 0xff, 0xff, 0x07 } },
        { 0x42, 0, false, 10, { 0x42, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1f, 0xff, 0xff, 0x07 } },
        { 0x48, 0x01, true, 10, { 0x48, 0xbf, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0x07 } },
        { 0x48, 0x02, true, 10, { 0x48, 0xbf, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0x07 } },
        { 0x48, 0x1f, true, 10, { 0x48, 0xbf, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0x07 } },
        { 0x55, 0, false, 10, { 0x55, 0x11, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0x07 } },
        { 0x5a, 0, false, 10, { 0x5a, 0x18, 0xff, 0xff, 0x00, 0x00, 0x00, 0xff, 0xff, 0x07 } },
        { 0x5e, 0x00, true, 10, { 0x5e, 0x1f, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0x07 } },
        { 0x5e, 0x01, true, 10, { 0x5e, 0x1f, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0x07 } },
        { 0x5e, 0x02, true, 10, { 0x5e, 0x1f, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0x07 } },
        { 0x5e, 0x03, true, 10, { 0x5e, 0x1f, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0x07 } },
        { 0x5f, 0x00, true, 10, { 0x5f, 0x1f, 0xff, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0x07 } },
        { 0x5f, 0x01, true, 10, { 0x5f, 0x1f, 0xff, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0x07 } },
        { 0x5f, 0x02, true, 10, { 0x5f, 0x1f, 0xff, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0x07 } },
        { 0x5f, 0x03, true, 10, { 0x5f, 0x1f, 0xff, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0x07 } },
        { 0x5f, 0x04, true, 10, { 0x5f, 0x1f, 0xff, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0x07 } },
        { 0x5f, 0x05, true, 10, { 0x5f, 0x1f, 0xff, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0x07 } },
        { 0x5f, 0x06, true, 10, { 0x5f, 0x1f, 0xff, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0x07 } },
        { 0x83, 0x00, true, 16, { 0x83, 0x1f, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0x00, 0x07 } },
        { 0x84, 0x00, true, 16, { 0x84, 0x1f, 0xff, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0x00, 0x07 } },
        { 0x84, 0x03, true, 16, { 0x84, 0x1f, 0xff, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0x00, 0x07 } },
        { 0x88, 0, false, 16, { 0x88, 0xfa, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, 0x07 } },
        { 0x89, 0, false, 16, { 0x89, 0xfa, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0xff, 0x1f, 0x07 } },
        { 0x8a, 0, false, 16, { 0x8a, 0xfa, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, 0x07 } },
        { 0x8b, 0, false, 16, { 0x8b, 0xfa, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, 0x07 } },
        { 0x8e, 0, false, 16, { 0x8e, 0xf2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, 0x07 } },
        { 0x8f, 0, false, 16, { 0x8f, 0xf6, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, 0x07 } },
        { 0x90, 0, false, 16, { 0x90, 0x02, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, 0x07 } },
        { 0x91, 0, false, 16, { 0x91, 0x02, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, 0x07 } },
        { 0x93, 0, false, 16, { 0x93, 0xf9, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, 0x07 } },
        { 0x9e, 0x10, true, 16, { 0x9e, 0x1f, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0x00, 0x07 } },
        { 0x9e, 0x12, true, 16, { 0x9e, 0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0x07 } },
        { 0xa0, 0, false, 12, { 0xa0, 0x00, 0xff, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0x00, 0x07 } },
        { 0xa3, 0x0c, true, 12, { 0xa3, 0x1f, 0x87, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0x07 } },
        { 0xa8, 0, false, 12, { 0xa8, 0xfa, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, 0x07 } },
        { 0xaa, 0, false, 12, { 0xaa, 0xfa, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, 0x07 } },
        { 0xae, 0, false, 12, { 0xae, 0xf2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, 0x07 } },
        { 0xaf, 0, false, 12, { 0xaf, 0xf6, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, 0x07 } },
        { 0xb7, 0, false, 12, { 0xb7, 0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0x07 } },
};

static bool op_available(const struct iscsi_lu *lu, const struct opdesc *o) {
        if (!lu->thin && o->op == 0x42)
                return false;
        if (o->op == 0x48)
                return sanitize_supports(lu, (uint8_t) o->sa);
        return true;
}

int spc_report_opcodes(struct scsi_cmd *c) {
        const uint8_t *cdb = c->cdb;
        uint8_t opts = cdb[2] & 0x07, rop = cdb[3];
        bool rctd = cdb[2] & 0x80;
        uint16_t rsa = get_be16(cdb + 4);
        uint32_t alloc = get_be32(cdb + 6);
        uint8_t d[4 + ELEMENTSOF(g_ops) * 20];
        uint32_t n;

        memset(d, 0, sizeof(d));
        if (opts == 0) {
                n = 4;
                for (size_t i = 0; i < ELEMENTSOF(g_ops); i++) {
                        const struct opdesc *o = &g_ops[i];
                        if (!op_available(c->lu, o))
                                continue;
                        d[n] = o->op;
                        put_be16(d + n + 2, o->sa);
                        d[n + 5] = (uint8_t) ((o->has_sa ? 0x01 : 0) | (rctd ? 0x02 : 0));
                        put_be16(d + n + 6, o->len);
                        n += 8;
                        if (rctd) {
                                put_be16(d + n, 0x0a);
                                n += 12;
                        }
                }
                put_be32(d, n - 4);
                return scsi_reply(c, d, n, alloc);
        }
        /* Errors point at REPORTING OPTIONS (byte 2): an initiator tells "this reporting option
         * does not fit that opcode" from "REPORT SUPPORTED OPCODES is not supported". */
        if (opts > 2)
                return scsi_check_field(c, true, 2, 2);
        bool op_has_sa = false;
        const struct opdesc *hit = NULL;
        for (size_t i = 0; i < ELEMENTSOF(g_ops); i++) {
                if (g_ops[i].op != rop || !op_available(c->lu, &g_ops[i]))
                        continue;
                op_has_sa = g_ops[i].has_sa;
                if (!g_ops[i].has_sa || g_ops[i].sa == rsa)
                        hit = &g_ops[i];
        }
        if ((opts == 1 && op_has_sa) || (opts == 2 && hit && !op_has_sa))
                return scsi_check_field(c, true, 2, 2);
        if (opts == 2 && !op_has_sa) {
                bool known = false;
                for (size_t i = 0; i < ELEMENTSOF(g_ops); i++)
                        known |= g_ops[i].op == rop;
                if (known)
                        return scsi_check_field(c, true, 2, 2);
        }
        if (!hit) {
                d[1] = 0x01; /* not supported */
                return scsi_reply(c, d, 4, alloc);
        }
        d[1] = (uint8_t) ((rctd ? 0x80 : 0) | 0x03);
        put_be16(d + 2, hit->len);
        memcpy(d + 4, hit->usage, hit->len);
        n = 4 + hit->len;
        if (rctd) {
                put_be16(d + n, 0x0a);
                n += 12;
        }
        return scsi_reply(c, d, n, alloc);
}
