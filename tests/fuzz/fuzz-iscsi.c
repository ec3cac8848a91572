/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Fuzz target for the iSCSI target: the input is an initiator byte stream (login, then SCSI
 * commands, Data-Out, TMF, Text, NOP, Logout), fed over a socketpair to one connection handler
 * serving two small memory LUNs of one target and a read-only one of another. */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <json-c/json.h>

#include "core/core.h"
#include "export/iscsi/iscsi.h"
#include "fuzz-feed.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct daemon_config g_cfg;

static void add_node(const char *name, const char *size, const char *bs) {
        struct orion_error err = { 0 };
        struct json_object *p = json_object_new_object();
        json_object_object_add(p, "size", json_object_new_string(size));
        if (bs)
                json_object_object_add(p, "block-size", json_object_new_string(bs));
        if (graph_node_add(name, "memory", p, NULL, &err) < 0) {
                (void) fprintf(stderr, "fuzz-iscsi: %s\n", err.msg);
                abort();
        }
        json_object_put(p);
}

static void add_export(const char *name, const char *node, bool ro, const char *target, const char *lun) {
        struct orion_error err = { 0 };
        struct json_object *o = json_object_new_object();
        if (target)
                json_object_object_add(o, "iscsi-target", json_object_new_string(target));
        if (lun)
                json_object_object_add(o, "iscsi-lun", json_object_new_string(lun));
        if (export_add(name, node, PROTO_ISCSI, ro, NULL, o, &err) < 0) {
                (void) fprintf(stderr, "fuzz-iscsi: %s\n", err.msg);
                abort();
        }
        json_object_put(o);
}

static void setup(void) {
        struct orion_error err = { 0 };

        orion_log_set_level(getenv("ISCSI_FUZZ_DEBUG") ? ORION_LOG_DEBUG : ORION_LOG_ERR);
        if (registry_init(NULL) < 0 || pool_init(4) < 0)
                abort();
        config_init(&g_cfg);
        free(g_cfg.iscsi_listen);
        g_cfg.iscsi_listen = strdup(""); /* the driver starts without a socket */
        if (!g_cfg.iscsi_listen || exports_start(&g_cfg, &err) < 0)
                abort();
        add_node("mem0", "1M", NULL);
        add_node("mem1", "256K", "4096");
        add_node("mem2", "64K", NULL);
        add_export("disk", "mem0", false, NULL, NULL);
        add_export("disk4k", "mem1", false, "disk", "3");
        add_export("ro", "mem2", true, NULL, NULL);
}

/* A SANITIZE with IMMED runs on past its connection: wait for it, so that one input's work
 * (and its buffer) does not spill into the next. */
static void sanitize_settle(void) {
        static const char *const iqns[] = { "iqn.2026-11.org.orion:disk", "iqn.2026-11.org.orion:ro" };

        for (size_t i = 0; i < sizeof(iqns) / sizeof(iqns[0]); i++)
                for (uint64_t lun = 0; lun < 4; lun++) {
                        struct iscsi_lu *lu = NULL;

                        pthread_mutex_lock(&g_tgt_lock);
                        struct iscsi_target *t = target_find_locked(iqns[i]);
                        pthread_mutex_unlock(&g_tgt_lock);
                        /* targets live as long as their exports: all of this process */
                        lu = target_lu_get(t, lun);
                        if (!lu)
                                continue;
                        pthread_mutex_lock(&lu->lock);
                        while (lu->sanitizing)
                                pthread_cond_wait(&lu->sanitize_cond, &lu->lock);
                        pthread_mutex_unlock(&lu->lock);
                        lu_unref(lu);
                }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static pthread_once_t once = PTHREAD_ONCE_INIT;
        int sv[2];
        pthread_t w, r;
        struct feed f;

        pthread_once(&once, setup);
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
                return 0;
        f = (struct feed){ .fd = sv[1], .data = data, .size = size };
        if (pthread_create(&w, NULL, feed_writer, &f) != 0) {
                (void) close(sv[0]);
                (void) close(sv[1]);
                return 0;
        }
        if (pthread_create(&r, NULL, feed_reader, &f) != 0) {
                (void) shutdown(sv[0], SHUT_RDWR);
                (void) pthread_join(w, NULL);
                (void) close(sv[0]);
                (void) close(sv[1]);
                return 0;
        }
        conn_serve(sv[0], NULL);
        (void) shutdown(sv[0], SHUT_RDWR);
        (void) pthread_join(w, NULL);
        (void) pthread_join(r, NULL);
        (void) close(sv[0]);
        (void) close(sv[1]);
        sanitize_settle();
        return 0;
}
