/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Fuzz the raid member superblock decoder (a member's first block is untrusted): any input is
 * refused or decodes into fields that re-encode to a block that decodes identically. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../plugins/raid/superblock.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        uint8_t buf[RAID_SB_SIZE];
        struct raid_sb sb, again;

        if (sb_decode(data, size, &sb) != 0)
                return 0;
        if (sb_bitmap_bytes(sb.data_size, sb.bitmap_chunk) > sb.data_offset - sb.bitmap_offset)
                abort();
        if (sb.role != RAID_ROLE_SPARE && sb.role >= sb.raid_disks)
                abort();
        sb_encode(&sb, buf);
        if (sb_decode(buf, sizeof(buf), &again) != 0 || memcmp(&sb, &again, sizeof(sb)) != 0)
                abort();
        (void) dev_state_name((enum raid_dev_state) sb.dev_state[0]);
        return 0;
}
