/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* SCSI command dispatch for a disk LU: unit attentions, reservation conflicts, then the SPC,
 * SBC and persistent-reservation handlers; sense data and errno mapping. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iscsi.h"

int scsi_check_info(struct scsi_cmd *c, uint8_t sk, uint16_t asc, uint64_t info) {
        c->status = SAM_CHECK_CONDITION;
        memset(c->sense, 0, sizeof(c->sense));
        c->sense[0] = 0x70;
        c->sense[2] = sk;
        c->sense[7] = 10;
        c->sense[12] = (uint8_t) (asc >> 8);
        c->sense[13] = (uint8_t) asc;
        if (info != UINT64_MAX) {
                c->sense[0] |= 0x80;
                put_be32(c->sense + 3, (uint32_t) info);
        }
        c->sense_len = 18;
        c->in_len = 0;
        return 0;
}

int scsi_check(struct scsi_cmd *c, uint8_t sk, uint16_t asc) {
        return scsi_check_info(c, sk, asc, UINT64_MAX);
}

/* ILLEGAL REQUEST with the sense-key specific field pointer (SPC-4 4.5.2.4.2) naming the
 * offending CDB byte (cdb = true) or parameter-list byte, and bit when bit >= 0. */
int scsi_check_field(struct scsi_cmd *c, bool cdb, uint16_t byte, int bit) {
        scsi_check(c, SK_ILLEGAL_REQUEST, cdb ? ASC_INVALID_FIELD_IN_CDB : ASC_INVALID_FIELD_IN_PARAM);
        c->sense[15] = (uint8_t) (0x80 | (cdb ? 0x40 : 0) | (bit >= 0 ? 0x08 | (bit & 7) : 0));
        put_be16(c->sense + 16, byte);
        return 0;
}

int scsi_errno(struct scsi_cmd *c, int r, bool write) {
        switch (r) {
        case -EROFS:
                return scsi_check(c, SK_DATA_PROTECT, ASC_WRITE_PROTECTED);
        case -ENOSPC:
        case -EINVAL:
                return scsi_check(c, SK_ILLEGAL_REQUEST, ASC_LBA_OUT_OF_RANGE);
        case -ENOMEM:
                return scsi_check(c, SK_ABORTED_COMMAND, ASC_OUT_OF_MEMORY);
        default:
                return scsi_check(c, SK_MEDIUM_ERROR, write ? ASC_WRITE_ERROR : ASC_READ_ERROR);
        }
}

int scsi_alloc_in(struct scsi_cmd *c, uint32_t len) {
        free(c->in);
        c->in = calloc(1, len ? len : 1);
        if (!c->in)
                return -ENOMEM;
        c->in_len = len;
        c->xfer_len = len;
        return 0;
}

/* Return len bytes of data, truncated to the allocation length. */
int scsi_reply(struct scsi_cmd *c, const void *data, uint32_t len, uint32_t alloc_len) {
        uint32_t n = MIN(len, alloc_len);
        if (scsi_alloc_in(c, n) < 0)
                return scsi_check(c, SK_ABORTED_COMMAND, ASC_OUT_OF_MEMORY);
        if (n)
                memcpy(c->in, data, n);
        c->status = SAM_GOOD;
        return 0;
}

static uint64_t fnv1a(const char *s) {
        uint64_t h = 0xcbf29ce484222325ull;
        for (; *s; s++) {
                h ^= (uint8_t) *s;
                h *= 0x100000001b3ull;
        }
        return h;
}

/* Stable identity from the export name: an NAA locally-assigned designator and a serial. */
void scsi_lu_fill_identity(struct iscsi_lu *lu, const char *name) {
        char key[300];
        snprintf(key, sizeof(key), "orion:%s", name);
        uint64_t h = fnv1a(key);
        uint64_t naa = (3ull << 60) | (h & 0x0fffffffffffffffull);
        put_be64(lu->naa, naa);
        snprintf(lu->serial, sizeof(lu->serial), "%016llx", (unsigned long long) h);
}

bool scsi_write_protected(struct scsi_cmd *c) {
        struct iscsi_lu *lu = c->lu;
        if (lu->readonly) {
                scsi_check(c, SK_DATA_PROTECT, ASC_WRITE_PROTECTED);
                return true;
        }
        pthread_mutex_lock(&lu->lock);
        bool swp = lu->swp;
        pthread_mutex_unlock(&lu->lock);
        if (swp)
                scsi_check(c, SK_DATA_PROTECT, ASC_SOFTWARE_WRITE_PROTECTED);
        return swp;
}

static bool ua_exempt(uint8_t op) {
        return op == 0x12 || op == 0xa0 || op == 0x03;
}

/* Unit attentions, reported once to every nexus: a LUN reset, then mode parameters another
 * nexus changed (MODE SELECT). */
static bool check_ua(struct scsi_cmd *c) {
        unsigned idx = (unsigned) c->lu->lun;
        unsigned gen = atomic_load(&c->lu->ua_gen), mgen = atomic_load(&c->lu->mode_gen);
        uint16_t asc = 0;
        if (idx >= TARGET_MAX_LUNS)
                return false;
        /* several commands of one session may race here: report the UA once */
        pthread_mutex_lock(&c->lu->lock);
        if (c->sess->ua_seen[idx] != gen) {
                c->sess->ua_seen[idx] = gen;
                asc = ASC_BUS_DEVICE_RESET;
        } else if (c->sess->mode_seen[idx] != mgen) {
                c->sess->mode_seen[idx] = mgen;
                asc = ASC_MODE_PARAMS_CHANGED;
        }
        pthread_mutex_unlock(&c->lu->lock);
        if (!asc)
                return false;
        scsi_check(c, SK_UNIT_ATTENTION, asc);
        return true;
}

static int no_lun(struct scsi_cmd *c) {
        uint8_t op = c->cdb[0];
        if (op == 0x12) { /* INQUIRY: peripheral qualifier 3, no device */
                uint8_t d[36] = { 0x7f, 0, 0x06, 0x12, 31 };
                if (c->cdb[1] & 1)
                        return scsi_check(c, SK_ILLEGAL_REQUEST, ASC_LUN_NOT_SUPPORTED);
                return scsi_reply(c, d, sizeof(d), get_be16(c->cdb + 3));
        }
        if (op == 0xa0)
                return spc_report_luns(c);
        if (op == 0x03) {
                uint8_t s[18] = { 0x70, 0, SK_ILLEGAL_REQUEST, 0, 0, 0, 0, 10 };
                s[12] = 0x25;
                return scsi_reply(c, s, sizeof(s), c->cdb[4]);
        }
        return scsi_check(c, SK_ILLEGAL_REQUEST, ASC_LUN_NOT_SUPPORTED);
}

int64_t scsi_data_out_len(const struct iscsi_lu *lu, const uint8_t *cdb, uint32_t cdb_len) {
        (void) cdb_len;
        uint32_t bs = lu ? lu->block_size : 512;
        switch (cdb[0]) {
        case 0x0a:
                return (int64_t) (cdb[4] ? cdb[4] : 256) * bs;
        case 0x2a:
        case 0x2e:
                return (int64_t) get_be16(cdb + 7) * bs;
        case 0xaa:
        case 0xae:
                return (int64_t) get_be32(cdb + 6) * bs;
        case 0x8a:
        case 0x8e:
        case 0x8b:
                return (int64_t) get_be32(cdb + 10) * bs;
        default:
                return -1;
        }
}

static int dispatch(struct scsi_cmd *c) {
        const uint8_t *cdb = c->cdb;
        switch (cdb[0]) {
        case 0x00: /* TEST UNIT READY */
                c->status = SAM_GOOD;
                return 0;
        case 0x03:
                return spc_request_sense(c);
        case 0x12:
                return spc_inquiry(c);
        case 0x1a:
        case 0x5a:
                return spc_mode_sense(c);
        case 0x15:
        case 0x55:
                return spc_mode_select(c);
        case 0xa0:
                return spc_report_luns(c);
        case 0xa3:
                if ((cdb[1] & 0x1f) == 0x0c)
                        return spc_report_opcodes(c);
                break;
        case 0x16:
                return pr_reserve6(c);
        case 0x17:
                return pr_release6(c);
        case 0x5e:
                return pr_in(c);
        case 0x5f:
                return pr_out(c);
        case 0x25:
                return sbc_read_capacity10(c);
        case 0x9e:
                return sbc_service_in16(c);
        case 0x08:
        case 0x0a:
        case 0x28:
        case 0x2a:
        case 0xa8:
        case 0xaa:
        case 0x88:
        case 0x8a:
        case 0x2e:
        case 0xae:
        case 0x8e:
                return sbc_rw(c);
        case 0x2f:
        case 0xaf:
        case 0x8f:
                return sbc_verify(c);
        case 0x41:
        case 0x93:
                return sbc_write_same(c);
        case 0x42:
                return sbc_unmap(c);
        case 0x35:
        case 0x91:
                return sbc_sync_cache(c);
        case 0x89:
                return sbc_compare_and_write(c);
        case 0x34:
        case 0x90:
                return sbc_prefetch(c);
        case 0x8b:
                return sbc_orwrite(c);
        case 0x37:
        case 0xb7:
                return sbc_read_defect_data(c);
        case 0x48:
                return sbc_sanitize(c);
        case 0x83:
                return spc_extended_copy(c);
        case 0x84:
                return spc_receive_copy_results(c);
        default:
                break;
        }
        return scsi_check(c, SK_ILLEGAL_REQUEST, ASC_INVALID_OPCODE);
}

bool scsi_precheck(struct scsi_cmd *c) {
        if (!ua_exempt(c->cdb[0]) && check_ua(c))
                return true;
        if (sanitize_refuses(c))
                return true;
        if (pr_conflicts(c)) {
                c->status = SAM_RESERVATION_CONFLICT;
                return true;
        }
        return false;
}

void scsi_exec(struct scsi_cmd *c) {
        c->status = SAM_GOOD;
        c->in = NULL;
        c->in_len = 0;
        c->xfer_len = 0;
        c->sense_len = 0;
        if (!c->lu) {
                (void) no_lun(c);
                return;
        }
        if (scsi_precheck(c))
                return;
        (void) dispatch(c);
        if (c->status != SAM_GOOD && c->status != SAM_CONDITION_MET) {
                free(c->in);
                c->in = NULL;
                c->in_len = 0;
        }
}
