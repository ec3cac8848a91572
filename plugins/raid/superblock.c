/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Superblock encoding: fixed little-endian offsets, CRC-32C over the block, every field
 * range-checked on decode because a member's first block is untrusted input. */
#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <isa-l/crc.h>

#include "superblock.h"

/* Field offsets */
#define O_MAGIC 0
#define O_VERSION 8
#define O_SIZE 12
#define O_UUID 16
#define O_LEVEL 32
#define O_LAYOUT 36
#define O_CHUNK 40
#define O_DISKS 44
#define O_ROLE 48
#define O_FLAGS 52
#define O_EVENTS 56
#define O_DATA_OFF 64
#define O_DATA_SIZE 72
#define O_BM_OFF 80
#define O_BM_CHUNK 88
#define O_RECOVERY 96
#define O_CTIME 104
#define O_UTIME 112
#define O_DEV_STATE 120
#define O_CSUM (RAID_SB_SIZE - 4)

static void put32(uint8_t *b, size_t o, uint32_t v) {
        v = htole32(v);
        memcpy(b + o, &v, 4);
}
static void put64(uint8_t *b, size_t o, uint64_t v) {
        v = htole64(v);
        memcpy(b + o, &v, 8);
}
static uint32_t get32(const uint8_t *b, size_t o) {
        uint32_t v;
        memcpy(&v, b + o, 4);
        return le32toh(v);
}
static uint64_t get64(const uint8_t *b, size_t o) {
        uint64_t v;
        memcpy(&v, b + o, 8);
        return le64toh(v);
}

static uint32_t sb_csum(const uint8_t *buf) {
        return crc32_iscsi((unsigned char *) buf, O_CSUM, 0xFFFFFFFFu);
}

void sb_encode(const struct raid_sb *sb, uint8_t *buf) {
        memset(buf, 0, RAID_SB_SIZE);
        memcpy(buf + O_MAGIC, RAID_SB_MAGIC, 8);
        put32(buf, O_VERSION, RAID_SB_VERSION);
        put32(buf, O_SIZE, RAID_SB_SIZE);
        memcpy(buf + O_UUID, sb->uuid, 16);
        put32(buf, O_LEVEL, sb->level);
        put32(buf, O_LAYOUT, sb->layout);
        put32(buf, O_CHUNK, sb->chunk);
        put32(buf, O_DISKS, sb->raid_disks);
        put32(buf, O_ROLE, sb->role);
        put32(buf, O_FLAGS, sb->flags);
        put64(buf, O_EVENTS, sb->events);
        put64(buf, O_DATA_OFF, sb->data_offset);
        put64(buf, O_DATA_SIZE, sb->data_size);
        put64(buf, O_BM_OFF, sb->bitmap_offset);
        put64(buf, O_BM_CHUNK, sb->bitmap_chunk);
        put64(buf, O_RECOVERY, sb->recovery_offset);
        put64(buf, O_CTIME, sb->ctime);
        put64(buf, O_UTIME, sb->utime);
        memcpy(buf + O_DEV_STATE, sb->dev_state, RAID_MAX_MEMBERS);
        put32(buf, O_CSUM, sb_csum(buf));
}

unsigned sb_min_members(uint32_t level) {
        switch (level) {
        case 0:
        case 1:
        case 10: return 2;
        case 5: return 3;
        case 6: return 4;
        default: return 0;
        }
}

uint64_t sb_bitmap_bytes(uint64_t data_size, uint64_t bitmap_chunk) {
        uint64_t bits = bitmap_chunk ? (data_size + bitmap_chunk - 1) / bitmap_chunk : 0;

        return (bits + 7) / 8;
}

static bool pow2(uint64_t v) {
        return v != 0 && (v & (v - 1)) == 0;
}

static int sb_validate(const struct raid_sb *sb) {
        unsigned min = sb_min_members(sb->level);

        if (min == 0 || sb->raid_disks < min || sb->raid_disks > RAID_MAX_MEMBERS)
                return -EBADMSG;
        if (sb->layout != 0 || !pow2(sb->chunk) || sb->chunk < 4096 || sb->chunk > (64u << 20))
                return -EBADMSG;
        if (sb->role != RAID_ROLE_SPARE && sb->role >= sb->raid_disks)
                return -EBADMSG;
        if (sb->data_offset < RAID_SB_SIZE || sb->data_offset % 4096 || sb->data_offset > (1ull << 40))
                return -EBADMSG;
        if (sb->data_size == 0 || sb->data_size % sb->chunk || sb->data_size > (1ull << 56))
                return -EBADMSG;
        if (sb->bitmap_offset < RAID_SB_SIZE || sb->bitmap_offset >= sb->data_offset ||
            !pow2(sb->bitmap_chunk) || sb->bitmap_chunk < sb->chunk)
                return -EBADMSG;
        if (sb_bitmap_bytes(sb->data_size, sb->bitmap_chunk) > sb->data_offset - sb->bitmap_offset)
                return -EBADMSG;
        if (sb->recovery_offset != RAID_RECOVERY_DONE &&
            (sb->recovery_offset > sb->data_size || sb->recovery_offset % sb->chunk))
                return -EBADMSG;
        for (unsigned i = 0; i < sb->raid_disks; i++)
                if (sb->dev_state[i] >= _RAID_DEV_STATE_MAX)
                        return -EBADMSG;
        return 0;
}

int sb_decode(const uint8_t *buf, size_t len, struct raid_sb *ret) {
        struct raid_sb sb = {};

        if (len < RAID_SB_SIZE)
                return -EINVAL;
        if (memcmp(buf + O_MAGIC, RAID_SB_MAGIC, 8) != 0)
                return -ENODATA;
        if (get32(buf, O_VERSION) != RAID_SB_VERSION || get32(buf, O_SIZE) != RAID_SB_SIZE)
                return -EBADMSG;
        if (get32(buf, O_CSUM) != sb_csum(buf))
                return -EBADMSG;
        memcpy(sb.uuid, buf + O_UUID, 16);
        sb.level = get32(buf, O_LEVEL);
        sb.layout = get32(buf, O_LAYOUT);
        sb.chunk = get32(buf, O_CHUNK);
        sb.raid_disks = get32(buf, O_DISKS);
        sb.role = get32(buf, O_ROLE);
        sb.flags = get32(buf, O_FLAGS);
        sb.events = get64(buf, O_EVENTS);
        sb.data_offset = get64(buf, O_DATA_OFF);
        sb.data_size = get64(buf, O_DATA_SIZE);
        sb.bitmap_offset = get64(buf, O_BM_OFF);
        sb.bitmap_chunk = get64(buf, O_BM_CHUNK);
        sb.recovery_offset = get64(buf, O_RECOVERY);
        sb.ctime = get64(buf, O_CTIME);
        sb.utime = get64(buf, O_UTIME);
        memcpy(sb.dev_state, buf + O_DEV_STATE, RAID_MAX_MEMBERS);
        if (sb_validate(&sb) < 0)
                return -EBADMSG;
        *ret = sb;
        return 0;
}

const char *dev_state_name(enum raid_dev_state s) {
        static const char *const names[] = {"active", "rebuilding", "faulty", "missing"};

        return (unsigned) s < _RAID_DEV_STATE_MAX ? names[s] : "invalid";
}

void uuid_format(const uint8_t u[16], char out[37]) {
        (void) snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
                        u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12],
                        u[13], u[14], u[15]);
}
