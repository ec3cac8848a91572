/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Reservations of an LU: SPC-2 RESERVE/RELEASE(6) and SPC-4 persistent reservations (all six
 * types, registration by I_T nexus), and the conflict check every command goes through.
 * State is in memory only (APTPL is not supported). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/cleanup.h"
#include "iscsi.h"

enum {
        PR_WE = 1,
        PR_EA = 3,
        PR_WE_RO = 5,
        PR_EA_RO = 6,
        PR_WE_AR = 7,
        PR_EA_AR = 8,
};

static bool type_valid(uint8_t t) {
        return t == PR_WE || t == PR_EA || t == PR_WE_RO || t == PR_EA_RO || t == PR_WE_AR || t == PR_EA_AR;
}
static bool type_ar(uint8_t t) {
        return t == PR_WE_AR || t == PR_EA_AR;
}
static bool type_regs(uint8_t t) { /* registrants-only or all-registrants */
        return t >= PR_WE_RO;
}
static bool type_ea(uint8_t t) {
        return t == PR_EA || t == PR_EA_RO || t == PR_EA_AR;
}

static struct pr_reg *reg_find(struct iscsi_lu *lu, const char *nexus) {
        for (unsigned i = 0; i < lu->pr_nregs; i++)
                if (strcmp(lu->pr_regs[i].nexus, nexus) == 0)
                        return &lu->pr_regs[i];
        return NULL;
}

static void reg_remove(struct iscsi_lu *lu, struct pr_reg *r) {
        unsigned i = (unsigned) (r - lu->pr_regs);
        bool holder = lu->pr_held && !type_ar(lu->pr_type) && strcmp(lu->pr_holder, r->nexus) == 0;
        memmove(&lu->pr_regs[i], &lu->pr_regs[i + 1], (lu->pr_nregs - i - 1) * sizeof(*r));
        lu->pr_nregs--;
        if (holder || (lu->pr_held && type_ar(lu->pr_type) && lu->pr_nregs == 0))
                lu->pr_held = false;
}

static bool is_holder(struct iscsi_lu *lu, const char *nexus) {
        if (!lu->pr_held)
                return false;
        if (type_ar(lu->pr_type))
                return reg_find(lu, nexus) != NULL;
        return strcmp(lu->pr_holder, nexus) == 0;
}

/* ---- Conflicts ------------------------------------------------------------------------------ */
enum access { ACC_ANY, ACC_READ, ACC_WRITE, ACC_PR };

static enum access classify(uint8_t op) {
        switch (op) {
        case 0x00: case 0x03: case 0x12: case 0xa0: case 0x25: case 0xa3:
                return ACC_ANY;
        case 0x9e: /* RC16 / GET LBA STATUS */
                return ACC_ANY;
        case 0x5e: case 0x5f:
                return ACC_PR;
        case 0x08: case 0x28: case 0xa8: case 0x88:
        case 0x2f: case 0xaf: case 0x8f:
        case 0x34: case 0x90: case 0x1a: case 0x5a:
                return ACC_READ;
        default:
                return ACC_WRITE;
        }
}

bool pr_conflicts(struct scsi_cmd *c) {
        struct iscsi_lu *lu = c->lu;
        const char *me = c->sess->nexus;
        uint8_t op = c->cdb[0];
        enum access acc = classify(op);
        LOCK_GUARD(&lu->lock);

        if (lu->res6_holder[0] && strcmp(lu->res6_holder, me) != 0) {
                /* SPC-2 reservation: everything but a few informational commands conflicts. */
                if (op == 0x12 || op == 0xa0 || op == 0x03 || op == 0x17 || op == 0x5e || op == 0xa3)
                        return false;
                return true;
        }
        if (op == 0x16 && lu->pr_held)
                return true; /* RESERVE(6) while a persistent reservation exists */
        if (!lu->pr_held || acc == ACC_ANY || acc == ACC_PR || is_holder(lu, me))
                return false;
        bool registered = reg_find(lu, me) != NULL;
        if (type_regs(lu->pr_type) && registered)
                return false;
        if (acc == ACC_READ && op != 0x1a && op != 0x5a)
                return type_ea(lu->pr_type);
        if (op == 0x1a || op == 0x5a)
                return type_ea(lu->pr_type);
        return true;
}

/* ---- RESERVE / RELEASE (6) ------------------------------------------------------------------ */
int pr_reserve6(struct scsi_cmd *c) {
        struct iscsi_lu *lu = c->lu;
        if (c->cdb[1] & 0x01) /* third-party / extents: obsolete */
                return scsi_check(c, SK_ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_CDB);
        LOCK_GUARD(&lu->lock);
        if (lu->res6_holder[0] && strcmp(lu->res6_holder, c->sess->nexus) != 0) {
                c->status = SAM_RESERVATION_CONFLICT;
                return 0;
        }
        snprintf(lu->res6_holder, sizeof(lu->res6_holder), "%s", c->sess->nexus);
        return 0;
}

int pr_release6(struct scsi_cmd *c) {
        struct iscsi_lu *lu = c->lu;
        LOCK_GUARD(&lu->lock);
        if (strcmp(lu->res6_holder, c->sess->nexus) == 0)
                lu->res6_holder[0] = 0;
        return 0; /* releasing someone else's reservation is a no-op */
}

void pr_nexus_gone(struct iscsi_lu *lu, const char *nexus) {
        LOCK_GUARD(&lu->lock);
        if (strcmp(lu->res6_holder, nexus) == 0)
                lu->res6_holder[0] = 0;
}

void pr_lun_reset(struct iscsi_lu *lu) {
        LOCK_GUARD(&lu->lock);
        lu->res6_holder[0] = 0; /* persistent reservations survive a reset */
        atomic_fetch_add(&lu->ua_gen, 1);
}

/* ---- PERSISTENT RESERVE IN ------------------------------------------------------------------- */
static uint32_t full_status(struct iscsi_lu *lu, uint8_t *d, uint32_t cap) {
        uint32_t n = 8;
        for (unsigned i = 0; i < lu->pr_nregs; i++) {
                struct pr_reg *r = &lu->pr_regs[i];
                uint32_t nl = (uint32_t) strlen(r->nexus) + 1;
                uint32_t tl = 4 + ((nl + 3) & ~3u);
                if (n + 24 + tl > cap)
                        break;
                uint8_t *p = d + n;
                memset(p, 0, 24 + tl);
                put_be64(p, r->key);
                if (is_holder(lu, r->nexus)) {
                        p[12] = 0x01;
                        p[13] = lu->pr_type;
                }
                put_be16(p + 18, 1);
                put_be32(p + 20, tl);
                p[24] = 0x45; /* iSCSI, TransportID format 01b (name + ISID) */
                put_be16(p + 26, (uint16_t) (tl - 4));
                memcpy(p + 28, r->nexus, nl - 1);
                n += 24 + tl;
        }
        return n;
}

int pr_in(struct scsi_cmd *c) {
        struct iscsi_lu *lu = c->lu;
        uint8_t sa = c->cdb[1] & 0x1f;
        uint32_t alloc = get_be16(c->cdb + 7);
        uint8_t d[8 + PR_MAX_REG * 340];
        uint32_t n = 8;

        memset(d, 0, 64);
        LOCK_GUARD(&lu->lock);
        put_be32(d, lu->pr_generation);
        switch (sa) {
        case 0: /* READ KEYS */
                for (unsigned i = 0; i < lu->pr_nregs; i++, n += 8)
                        put_be64(d + n, lu->pr_regs[i].key);
                put_be32(d + 4, n - 8);
                break;
        case 1: /* READ RESERVATION */
                if (lu->pr_held) {
                        memset(d + 8, 0, 16);
                        put_be64(d + 8, type_ar(lu->pr_type) ? 0 : lu->pr_key);
                        d[21] = lu->pr_type;
                        n += 16;
                }
                put_be32(d + 4, n - 8);
                break;
        case 2: /* REPORT CAPABILITIES */
                memset(d, 0, 8);
                put_be16(d, 8);
                d[2] = 0x10;  /* CRH: RESERVE(6) conflicts with PR handled as SPC-4 says */
                d[3] = 0x80;  /* TMV: the type mask is valid */
                d[4] = 0x80 | 0x40 | 0x20 | 0x08 | 0x02;
                d[5] = 0x01;
                n = 8;
                break;
        case 3: /* READ FULL STATUS */
                n = full_status(lu, d, sizeof(d));
                put_be32(d + 4, n - 8);
                break;
        default:
                return scsi_check(c, SK_ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_CDB);
        }
        return scsi_reply(c, d, n, alloc);
}

/* ---- PERSISTENT RESERVE OUT ------------------------------------------------------------------ */
static int conflict(struct scsi_cmd *c) {
        c->status = SAM_RESERVATION_CONFLICT;
        return 0;
}

static int pr_register(struct scsi_cmd *c, struct pr_reg *me, uint64_t key, uint64_t sakey, bool ignore) {
        struct iscsi_lu *lu = c->lu;
        if (!me) {
                if (!ignore && key != 0)
                        return conflict(c);
                if (sakey == 0)
                        return 0;
                if (lu->pr_nregs >= PR_MAX_REG)
                        return scsi_check(c, SK_ILLEGAL_REQUEST, ASC_INSUFFICIENT_REG_RESOURCES);
                me = &lu->pr_regs[lu->pr_nregs++];
                snprintf(me->nexus, sizeof(me->nexus), "%s", c->sess->nexus);
                me->key = sakey;
        } else {
                if (!ignore && key != me->key)
                        return conflict(c);
                if (sakey == 0)
                        reg_remove(lu, me);
                else {
                        me->key = sakey;
                        if (lu->pr_held && strcmp(lu->pr_holder, me->nexus) == 0)
                                lu->pr_key = sakey;
                }
        }
        lu->pr_generation++;
        return 0;
}

static int pr_preempt(struct scsi_cmd *c, struct pr_reg *me, uint8_t type, uint64_t sakey) {
        struct iscsi_lu *lu = c->lu;
        bool found = false;

        if (lu->pr_held && type_ar(lu->pr_type) && sakey == 0) {
                /* preempt every other registrant and take the reservation */
                for (unsigned i = 0; i < lu->pr_nregs;) {
                        if (&lu->pr_regs[i] != me && strcmp(lu->pr_regs[i].nexus, me->nexus) != 0) {
                                memmove(&lu->pr_regs[i], &lu->pr_regs[i + 1],
                                        (lu->pr_nregs - i - 1) * sizeof(lu->pr_regs[0]));
                                lu->pr_nregs--;
                                if (&lu->pr_regs[i] < me)
                                        me--;
                        } else
                                i++;
                }
                found = true;
        } else {
                if (sakey == 0)
                        return scsi_check(c, SK_ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_PARAM);
                bool was_holder_key = lu->pr_held && !type_ar(lu->pr_type) && lu->pr_key == sakey;
                char mynexus[300];
                snprintf(mynexus, sizeof(mynexus), "%s", me->nexus);
                for (unsigned i = 0; i < lu->pr_nregs;) {
                        if (lu->pr_regs[i].key == sakey && strcmp(lu->pr_regs[i].nexus, mynexus) != 0) {
                                memmove(&lu->pr_regs[i], &lu->pr_regs[i + 1],
                                        (lu->pr_nregs - i - 1) * sizeof(lu->pr_regs[0]));
                                lu->pr_nregs--;
                                found = true;
                        } else
                                i++;
                }
                me = reg_find(lu, mynexus);
                if (!found && !was_holder_key)
                        return conflict(c);
                if (!was_holder_key) {
                        lu->pr_generation++;
                        return 0;
                }
        }
        lu->pr_held = true;
        lu->pr_type = type;
        lu->pr_key = me->key;
        snprintf(lu->pr_holder, sizeof(lu->pr_holder), "%s", me->nexus);
        lu->pr_generation++;
        return 0;
}

int pr_out(struct scsi_cmd *c) {
        struct iscsi_lu *lu = c->lu;
        uint8_t sa = c->cdb[1] & 0x1f, scope = c->cdb[2] >> 4, type = c->cdb[2] & 0x0f;
        uint32_t plen = get_be32(c->cdb + 5);
        const uint8_t *p = c->out;

        c->xfer_len = plen;
        if (sa > 6)
                return scsi_check(c, SK_ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_CDB);
        if (plen != 24 || c->out_len < 24)
                return scsi_check(c, SK_ILLEGAL_REQUEST, ASC_PARAM_LIST_LENGTH_ERROR);
        uint64_t key = get_be64(p), sakey = get_be64(p + 8);
        uint8_t flags = p[20];
        if (flags & 0x08) /* SPEC_I_PT */
                return scsi_check(c, SK_ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_PARAM);
        if ((flags & 0x01) && sa != 0 && sa != 6) /* APTPL is not kept */
                return scsi_check(c, SK_ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_PARAM);
        LOCK_GUARD(&lu->lock);
        struct pr_reg *me = reg_find(lu, c->sess->nexus);
        if (sa == 0 || sa == 6)
                return pr_register(c, me, key, sakey, sa == 6);
        if (!me || me->key != key)
                return conflict(c);
        if ((sa == 1 || sa == 4 || sa == 5) && (scope != 0 || !type_valid(type)))
                return scsi_check(c, SK_ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_CDB);
        switch (sa) {
        case 1: /* RESERVE */
                if (lu->pr_held) {
                        if (is_holder(lu, me->nexus) && lu->pr_type == type)
                                return 0;
                        return conflict(c);
                }
                lu->pr_held = true;
                lu->pr_type = type;
                lu->pr_key = key;
                snprintf(lu->pr_holder, sizeof(lu->pr_holder), "%s", me->nexus);
                return 0;
        case 2: /* RELEASE */
                if (!lu->pr_held || !is_holder(lu, me->nexus))
                        return 0;
                if (lu->pr_type != type)
                        return scsi_check(c, SK_ILLEGAL_REQUEST, 0x2604); /* invalid release */
                lu->pr_held = false;
                return 0;
        case 3: /* CLEAR */
                lu->pr_nregs = 0;
                lu->pr_held = false;
                lu->pr_generation++;
                return 0;
        case 4: /* PREEMPT */
        case 5: /* PREEMPT AND ABORT: tasks of the preempted nexus finish on their own */
                return pr_preempt(c, me, type, sakey);
        default:
                return scsi_check(c, SK_ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_CDB);
        }
}
