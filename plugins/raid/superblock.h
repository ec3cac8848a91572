/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The per-member raid superblock: what array a device belongs to, its role, its freshness. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RAID_SB_MAGIC "ORIONRD\x01"
#define RAID_SB_VERSION 1
#define RAID_SB_SIZE 4096u              /* at member offset 0 */
#define RAID_BITMAP_OFFSET 4096u        /* write-intent bitmap right after the superblock */
#define RAID_DATA_OFFSET (1024u * 1024) /* data starts here on every member */
#define RAID_MAX_MEMBERS 64
#define RAID_ROLE_SPARE 0xFFFFFFFFu
#define RAID_RECOVERY_DONE UINT64_MAX

enum {
        RAID_SB_CLEAN = 1u << 0,       /* shut down cleanly: parity and mirrors agree */
        RAID_SB_REPLACEMENT = 1u << 1, /* this device was a `replace` target not yet finished */
};

enum raid_dev_state {
        RAID_DEV_ACTIVE = 0,     /* in sync */
        RAID_DEV_REBUILDING = 1, /* valid below its recovery offset */
        RAID_DEV_FAULTY = 2,     /* failed: neither read nor written */
        RAID_DEV_MISSING = 3,    /* no device in this role */
        _RAID_DEV_STATE_MAX,
};

struct raid_sb {
        uint8_t uuid[16];
        uint32_t level;           /* 0 1 5 6 10 */
        uint32_t layout;          /* 0: left-symmetric (5, 6), near-2 (10) */
        uint32_t chunk;           /* bytes */
        uint32_t raid_disks;      /* roles */
        uint32_t role;            /* this device's role, or RAID_ROLE_SPARE */
        uint32_t flags;           /* RAID_SB_* */
        uint64_t events;          /* bumped on every superblock update */
        uint64_t data_offset;     /* bytes */
        uint64_t data_size;       /* bytes of data area used on each member */
        uint64_t bitmap_offset;   /* bytes */
        uint64_t bitmap_chunk;    /* member bytes per bitmap bit */
        uint64_t recovery_offset; /* this device: data valid below it (RAID_RECOVERY_DONE = all) */
        uint64_t ctime, utime;    /* seconds since the epoch */
        uint8_t dev_state[RAID_MAX_MEMBERS]; /* enum raid_dev_state per role, as of `events` */
};

/* Serialise into RAID_SB_SIZE bytes with checksum. */
void sb_encode(const struct raid_sb *sb, uint8_t *buf);
/* Parse RAID_SB_SIZE bytes. 0 ok; -ENODATA no magic (not ours); -EBADMSG bad checksum or
 * invalid fields; -EINVAL buffer too short. */
int sb_decode(const uint8_t *buf, size_t len, struct raid_sb *ret);
/* Bytes of on-disk bitmap for this geometry. */
uint64_t sb_bitmap_bytes(uint64_t data_size, uint64_t bitmap_chunk);
/* Smallest usable members for a level: 0 -> 2, 1 -> 2, 5 -> 3, 6 -> 4, 10 -> 2. 0 if bad level. */
unsigned sb_min_members(uint32_t level);
const char *dev_state_name(enum raid_dev_state s);
void uuid_format(const uint8_t uuid[16], char out[37]);
