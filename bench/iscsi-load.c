/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Benchmark client for bench/iscsi.sh: libiscsi straight to a target, N commands in flight,
 * random or sequential READ(16)/WRITE(16) of one size for a fixed time; prints IOPS and MB/s.
 * Usage: iscsi-load URL randread|randwrite|read|write BYTES QD SECONDS */
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <iscsi/iscsi.h>
#include <iscsi/scsi-lowlevel.h>

struct load {
        struct iscsi_context *iscsi;
        int lun;
        uint32_t bs, xfer;
        uint64_t nblocks, next, done_ops;
        int rnd, write, inflight, stop, failed;
        unsigned char *buf;
        unsigned seed;
};

static void issue(struct load *l);

static void cb(struct iscsi_context *iscsi, int status, void *data, void *priv) {
        struct load *l = priv;
        (void) iscsi;
        scsi_free_scsi_task(data);
        l->inflight--;
        if (status != SCSI_STATUS_GOOD) {
                l->failed = 1;
                return;
        }
        l->done_ops++;
        if (!l->stop)
                issue(l);
}

static void issue(struct load *l) {
        uint64_t per = l->xfer / l->bs, slots = l->nblocks / per, lba;
        if (l->rnd)
                lba = ((uint64_t) rand_r(&l->seed) << 16 ^ (uint64_t) rand_r(&l->seed)) % slots * per;
        else {
                lba = l->next * per;
                l->next = (l->next + 1) % slots;
        }
        struct scsi_task *t = l->write
                ? iscsi_write16_task(l->iscsi, l->lun, lba, l->buf, l->xfer, (int) l->bs, 0, 0, 0, 0, 0, cb, l)
                : iscsi_read16_task(l->iscsi, l->lun, lba, l->xfer, (int) l->bs, 0, 0, 0, 0, 0, cb, l);
        if (!t) {
                l->failed = 1;
                return;
        }
        l->inflight++;
}

static double now(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
        struct load l = { .seed = 42 };
        if (argc != 6) {
                fprintf(stderr, "usage: %s URL randread|randwrite|read|write BYTES QD SECONDS\n", argv[0]);
                return 2;
        }
        l.rnd = strncmp(argv[2], "rand", 4) == 0;
        l.write = strstr(argv[2], "write") != NULL;
        l.xfer = (uint32_t) strtoul(argv[3], NULL, 0);
        int qd = (int) strtol(argv[4], NULL, 10);
        double secs = atof(argv[5]);
        l.iscsi = iscsi_create_context("iqn.2026-11.org.orion:bench-client");
        struct iscsi_url *u = iscsi_parse_full_url(l.iscsi, argv[1]);
        if (!u) {
                fprintf(stderr, "%s\n", iscsi_get_error(l.iscsi));
                return 1;
        }
        iscsi_set_targetname(l.iscsi, u->target);
        iscsi_set_session_type(l.iscsi, ISCSI_SESSION_NORMAL);
        iscsi_set_header_digest(l.iscsi, ISCSI_HEADER_DIGEST_NONE);
        l.lun = u->lun;
        if (iscsi_full_connect_sync(l.iscsi, u->portal, u->lun) != 0) {
                fprintf(stderr, "login: %s\n", iscsi_get_error(l.iscsi));
                return 1;
        }
        struct scsi_task *rc = iscsi_readcapacity16_sync(l.iscsi, l.lun);
        struct scsi_readcapacity16 *rc16 = rc ? scsi_datain_unmarshall(rc) : NULL;
        if (!rc16) {
                fprintf(stderr, "READ CAPACITY(16) failed\n");
                return 1;
        }
        l.bs = rc16->block_length;
        l.nblocks = rc16->returned_lba + 1;
        scsi_free_scsi_task(rc);
        l.buf = malloc(l.xfer);
        memset(l.buf, 0xa5, l.xfer);
        double t0 = now(), end = t0 + secs;
        for (int i = 0; i < qd; i++)
                issue(&l);
        while (!l.failed && (l.inflight > 0)) {
                struct pollfd pfd = { .fd = iscsi_get_fd(l.iscsi), .events = (short) iscsi_which_events(l.iscsi) };
                if (poll(&pfd, 1, 1000) < 0 || iscsi_service(l.iscsi, pfd.revents) < 0) {
                        l.failed = 1;
                        break;
                }
                if (!l.stop && now() >= end)
                        l.stop = 1;
        }
        double el = now() - t0;
        if (l.failed) {
                fprintf(stderr, "I/O failed: %s\n", iscsi_get_error(l.iscsi));
                return 1;
        }
        printf("%.0f IOPS %.1f MB/s\n", l.done_ops / el, l.done_ops * (double) l.xfer / el / 1e6);
        iscsi_logout_sync(l.iscsi);
        iscsi_destroy_context(l.iscsi);
        iscsi_destroy_url(u);
        free(l.buf);
        return 0;
}
