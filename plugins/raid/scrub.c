/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Scrub: read every row, compare mirrors or parity, count inconsistent 512-byte sectors (as
 * md's mismatch_cnt) and, with repair, rewrite them (raid6 first tries to name the bad block). */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "raid.h"

#define SCRUB_STEP_NS (50 * 1000 * 1000ull)

int sync_scrub_start(struct raid *r, bool repair) {
        if (!r->ops->sync_row)
                return -EOPNOTSUPP;
        WITH_LOCK (&r->lock) {
                if (r->scrub.running)
                        return -EBUSY;
                r->scrub = (struct raid_job){
                        .running = true,
                        .end = r->data_size,
                        .repair = repair,
                        .start_ns = mono_ns(),
                };
                r->scrub_stop = false;
        }
        orion_notice("raid '%s': scrub (%s) started", orion_bdev_name(r->bdev), repair ? "repair" : "check");
        sync_kick(r);
        return 0;
}

void sync_scrub_stop(struct raid *r) {
        WITH_LOCK (&r->lock)
                r->scrub_stop = true;
        sync_kick(r);
}

bool scrub_step(struct raid *r) {
        struct raid_job *j = &r->scrub;
        uint64_t t0 = mono_ns(), pos = 0;
        enum sync_mode mode = SYNC_CHECK;

        WITH_LOCK (&r->lock) {
                if (!j->running)
                        return false;
                if (r->scrub_stop) {
                        j->running = false;
                        orion_notice("raid '%s': scrub stopped at %" PRIu64 ", %" PRIu64 " mismatches",
                                     orion_bdev_name(r->bdev), j->pos, j->mismatches);
                        return false;
                }
                pos = j->pos;
                mode = j->repair ? SYNC_REPAIR : SYNC_CHECK;
        }
        while (pos < r->data_size && mono_ns() - t0 < SCRUB_STEP_NS) {
                uint64_t mm = 0;
                int ret = r->ops->sync_row(r, pos / r->chunk, mode, &mm);

                if (ret < 0) {
                        orion_error("raid '%s': scrub aborted at %" PRIu64 ": %s", orion_bdev_name(r->bdev),
                                    pos, strerror(-ret));
                        WITH_LOCK (&r->lock)
                                j->running = false;
                        return false;
                }
                pos += r->chunk;
                atomic_fetch_add(&r->scrubbed_bytes, r->chunk);
                WITH_LOCK (&r->lock) {
                        j->pos = pos;
                        j->mismatches += mm;
                        j->bytes += r->chunk;
                        j->delay_ns = throttle_ns(r, j->start_ns, j->bytes);
                }
                if (mm)
                        orion_log_ratelimited(ORION_LOG_WARNING,
                                              "raid '%s': %" PRIu64 " inconsistent sectors in row %" PRIu64
                                              "%s",
                                              orion_bdev_name(r->bdev), mm, pos / r->chunk - 1,
                                              mode == SYNC_REPAIR ? ", repaired" : "");
                if (j->delay_ns)
                        break;
        }
        if (pos >= r->data_size) {
                WITH_LOCK (&r->lock) {
                        j->running = false;
                        j->ran = true;
                        atomic_store(&r->mismatches, j->mismatches);
                }
                orion_notice("raid '%s': scrub (%s) finished: %" PRIu64 " mismatched sectors",
                             orion_bdev_name(r->bdev), j->repair ? "repair" : "check", j->mismatches);
        }
        return true;
}
