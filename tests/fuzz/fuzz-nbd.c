/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Fuzz target for the NBD server: the input is a client byte stream, fed over a socketpair to
 * one connection handler (handshake + transmission) serving small memory nodes, and (export
 * "adsk") a node with a native submit_async, which takes the asynchronous transmission path. */
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
#include "export/nbd/nbd-internal.h"
#include "fuzz-feed.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct daemon_config g_cfg;

/* "amem": 256 KiB of RAM completing every request inline through submit_async. */
#define AMEM_SIZE (256u << 10)
struct amem {
        pthread_mutex_t lock;
        unsigned char data[AMEM_SIZE];
};
static int amem_pread(struct orion_bdev *b, void *buf, uint64_t len, uint64_t off, uint32_t flags) {
        struct amem *m = orion_bdev_priv(b);
        pthread_mutex_lock(&m->lock);
        memcpy(buf, m->data + off, len);
        pthread_mutex_unlock(&m->lock);
        return 0;
}
static int amem_pwrite(struct orion_bdev *b, const void *buf, uint64_t len, uint64_t off, uint32_t flags) {
        struct amem *m = orion_bdev_priv(b);
        pthread_mutex_lock(&m->lock);
        memcpy(m->data + off, buf, len);
        pthread_mutex_unlock(&m->lock);
        return 0;
}
static int amem_flush(struct orion_bdev *b, uint32_t flags) {
        return 0;
}
static int amem_submit_async(struct orion_bdev *b, struct orion_areq *a) {
        struct orion_req *q = &a->req;
        q->result = q->op == ORION_OP_READ    ? amem_pread(b, q->buf, q->len, q->off, 0)
                    : q->op == ORION_OP_WRITE ? amem_pwrite(b, q->buf, q->len, q->off, 0)
                                              : 0;
        a->done(a);
        return 0;
}
static int amem_open(struct orion_bdev *b, const struct orion_params *p, struct orion_error *err) {
        struct orion_geometry g = { .size = AMEM_SIZE, .block_size = 512, .max_size = 64u << 10 };
        pthread_mutex_init(&((struct amem *) orion_bdev_priv(b))->lock, NULL);
        orion_bdev_set_caps(b, ORION_CAP_FLUSH | ORION_CAP_MULTI_CONN);
        return orion_bdev_set_geometry(b, &g);
}
static const struct orion_bdev_ops amem_ops = { .pread = amem_pread, .pwrite = amem_pwrite, .flush = amem_flush,
                                                .submit_async = amem_submit_async };
static const struct orion_plugin amem_type = { .api_version = ORION_PLUGIN_API_VERSION, .name = "amem",
                                               .instance_size = sizeof(struct amem), .ops = &amem_ops,
                                               .open = amem_open };

static void setup(void) {
        struct orion_error err = { 0 };
        struct json_object *p;

        orion_log_set_level(getenv("NBD_FUZZ_DEBUG") ? ORION_LOG_DEBUG : ORION_LOG_ERR);
        if (registry_init(NULL) < 0 || pool_init(4) < 0)
                abort();
        config_init(&g_cfg);
        /* No nbd-listen: the driver starts without sockets. */
        for (char **a = g_cfg.nbd_listen; a && *a; a++)
                free(*a);
        free(g_cfg.nbd_listen);
        g_cfg.nbd_listen = calloc(1, sizeof(char *));
        if (exports_start(&g_cfg, &err) < 0)
                abort();
        p = json_object_new_object();
        json_object_object_add(p, "size", json_object_new_string("1M"));
        if (graph_node_add("mem0", "memory", p, NULL, &err) < 0)
                abort();
        json_object_put(p);
        p = json_object_new_object();
        json_object_object_add(p, "size", json_object_new_string("64K"));
        json_object_object_add(p, "block-size", json_object_new_string("4096"));
        if (graph_node_add("mem1", "memory", p, NULL, &err) < 0)
                abort();
        json_object_put(p);
        if (registry_add(&amem_type, &err) < 0 || graph_node_add("amem0", "amem", NULL, NULL, &err) < 0)
                abort();
        if (export_add("disk", "mem0", PROTO_NBD, false, "fuzz disk", NULL, &err) < 0 ||
            export_add("adsk", "amem0", PROTO_NBD, false, NULL, NULL, &err) < 0 ||
            export_add("ro", "mem1", PROTO_NBD, true, NULL, NULL, &err) < 0) {
                (void) fprintf(stderr, "fuzz-nbd: %s\n", err.msg);
                abort();
        }
        nbd_handshake_timeout = 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static pthread_once_t once = PTHREAD_ONCE_INIT;
        int sv[2];
        pthread_t w, r;

        pthread_once(&once, setup);
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
                abort();
        struct feed f = { .fd = sv[1], .data = data, .size = size };
        if (pthread_create(&w, NULL, feed_writer, &f) != 0 || pthread_create(&r, NULL, feed_reader, &f) != 0)
                abort();
        nbd_conn_serve(NULL, sv[0], "fuzz"); /* closes sv[0] */
        pthread_join(w, NULL);
        pthread_join(r, NULL);
        (void) close(sv[1]);
        return 0;
}
