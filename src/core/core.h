/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Core internals shared by the daemon, the exports and the tests: registry, node graph,
 * exports, config, worker pool, statistics. Not part of the plugin API. */
#pragma once

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "orion/bdev.h"
#include "orion/log.h"
#include "orion/plugin.h"

struct json_object;
struct daemon_config;

/* ---- Sizes (size.c) ------------------------------------------------------------------------
 * "4096", "64K", "10G", "1.5G" (binary units K M G T P E, optional "iB"/"B"). Rejects empty,
 * negative, trailing junk and overflow with -EINVAL / -ERANGE. */
int parse_size(const char *s, uint64_t *ret);
/* "on off yes no true false 1 0" → 1/0, else -EINVAL. */
int parse_bool(const char *s);
/* signed 64-bit integer, decimal or 0x hex; -EINVAL / -ERANGE. */
int parse_int64(const char *s, int64_t *ret);
/* "1G" style for humans, into buf (>= 16 bytes). Returns buf. */
char *format_size(uint64_t v, char *buf, size_t len);

/* ---- Node-type registry (registry.c) --------------------------------------------------------
 * Built-in leaf types are listed statically; layers are dlopen'ed from the plugin directory
 * ($ORION_PLUGIN_DIR, else the compiled-in one) as orion-<name>.so on first use. */
int registry_init(const char *plugin_dir);
void registry_done(void);
const char *registry_plugin_dir(void);
int registry_add(const struct orion_plugin *p, struct orion_error *err);
/* Find (and load if needed) a type by name. */
const struct orion_plugin *registry_find(const char *name, struct orion_error *err);
/* Load every plugin in the plugin directory (for --list-types). Failures are logged. */
void registry_load_all(void);
/* Types in name order; returns count, fills up to max. */
size_t registry_list(const struct orion_plugin **ret, size_t max);
/* Describe one type: {name, description, params:[{name,type,default,help,choices}]} */
struct json_object *registry_describe(const struct orion_plugin *p);

/* ---- Parameters (params.c) ---------------------------------------------------------------- */
/* Validate and parse a flat JSON object of key → string|number|bool into params for type p.
 * Node names are resolved through graph lookups and recorded as children, in order. */
struct orion_params *params_new(const struct orion_plugin *p, struct json_object *kv, struct orion_error *err);
struct orion_params *params_free(struct orion_params *p);
/* All child nodes the params name, in table order. */
size_t params_children(const struct orion_params *p, struct orion_bdev ***ret);
/* The params as given (for describe). Borrowed. */
struct json_object *params_json(const struct orion_params *p);

/* ---- Statistics (stats.c) ------------------------------------------------------------------ */
#define STATS_LAT_BUCKETS 32 /* bucket i: latency < 2^i microseconds */
struct op_stats {
        atomic_uint_fast64_t ops, bytes, errors, lat_sum_us;
        atomic_uint_fast64_t lat[STATS_LAT_BUCKETS];
};
struct node_stats {
        struct op_stats op[_ORION_OP_MAX];
};
void stats_record(struct node_stats *s, enum orion_op op, uint64_t bytes, int r, uint64_t lat_ns);
void stats_to_json(const struct node_stats *s, struct json_object *out);
uint64_t now_ns(void);
const char *op_name(enum orion_op op);

/* ---- Node graph (graph.c, request.c) ----------------------------------------------------- */
#define RMW_LOCKS 64

struct orion_bdev {
        char *name;
        const struct orion_plugin *type;
        void *priv;
        struct orion_params *params;
        struct orion_geometry geom;
        uint32_t caps;
        struct orion_bdev **children; /* from params and attach_child; owned references */
        size_t nchildren;
        unsigned nparents;            /* edges from other nodes (graph lock) */
        unsigned nexports;            /* exports pointing here (graph lock) */
        bool opened;                  /* open succeeded: close will be called */
        pthread_mutex_t lock;         /* health, children array */
        enum orion_health health;
        char *health_msg;
        struct node_stats stats;
        pthread_mutex_t rmw_lock[RMW_LOCKS]; /* serialises read-modify-write of one block */
};

/* Checks every path into a node op shares (request.c, read-view.c). A node must return 0 or a
 * real negative errno; anything else is turned into -EIO. */
static inline int bdev_op_result(int r) {
        if (r > 0)
                return 0;
        if (r < -4095)
                return -EIO;
        return r;
}

static inline int bdev_check_range(const struct orion_bdev *b, uint64_t len, uint64_t off, bool write) {
        uint64_t size = orion_bdev_size(b); /* may change at run time: read atomically */
        if (off > size || len > size - off)
                return write ? -ENOSPC : -EINVAL;
        return 0;
}

/* The largest request the node takes in one call. */
static inline uint64_t bdev_max_chunk(const struct orion_bdev *b) {
        return b->geom.max_size ? b->geom.max_size : UINT64_MAX;
}

/* Create a node from a type name and a flat JSON params object. The node is added to the graph
 * under name (which must be unique: [A-Za-z0-9._-]+, at most 64). */
int graph_node_add(const char *name, const char *type, struct json_object *params, struct orion_bdev **ret,
                   struct orion_error *err);
/* Open a node that is not in the graph (format/inspect helpers, tests). Close with node_close. */
int node_open_detached(const char *name, const struct orion_plugin *type, struct json_object *params,
                       struct orion_bdev **ret, struct orion_error *err);
void node_close(struct orion_bdev *b);
/* -EBUSY (with the reason) while the node has parents or exports; -ENOENT if unknown. */
int graph_node_remove(const char *name, struct orion_error *err);
/* Borrowed pointer; valid while the node is in the graph (take the graph lock or hold an export). */
struct orion_bdev *graph_node_find(const char *name);
/* Nodes in creation order. Returns count; fills up to max (ret may be NULL to count). */
size_t graph_node_list(struct orion_bdev **ret, size_t max);
/* {name,type,size,block-size,caps:[...],health,params:{},children:[],parents:N,exports:N} */
void graph_node_info(struct orion_bdev *b, struct json_object *out, bool with_stats);
/* Flush every node, parents before children. Returns the first error. */
int graph_flush_all(void);
/* Close every node, parents before children (used at shutdown). */
void graph_close_all(void);
void graph_lock(void);
void graph_unlock(void);
/* Caps as words ("flush", "fua", ...) into a JSON array. */
struct json_object *caps_to_json(uint32_t caps);

/* ---- Exports (export.c) ------------------------------------------------------------------ */
enum {
        PROTO_NBD = 1u << 0,
        PROTO_FUSE = 1u << 1,
        PROTO_ISCSI = 1u << 2,
};

struct orion_export {
        char *name;                 /* export name: [A-Za-z0-9._:-]+ , never a path */
        struct orion_bdev *node;    /* nexports held on it */
        uint32_t protocols;         /* PROTO_* */
        bool readonly;
        char *description;
        struct json_object *opts;   /* protocol-specific keys ("fuse-mode", "iscsi-lun", ...) */
        atomic_int refs;
        bool removed;
};

/* A protocol server. Static table in src/export/export-drivers.c, one entry per HAVE_X. */
struct export_driver {
        const char *name;           /* "nbd" */
        uint32_t proto;             /* PROTO_NBD */
        /* Start listening according to the daemon config. */
        int (*start)(const struct daemon_config *cfg, struct orion_error *err);
        /* Stop accepting, finish in-flight requests, close connections. */
        void (*stop)(void);
        /* An export carrying this protocol appeared / is going away. May refuse an add with
         * -errno and err (then the export is not created). Called with no lock held. */
        int (*export_added)(struct orion_export *e, struct orion_error *err);
        void (*export_removed)(struct orion_export *e);
        /* Optional: driver state for `orionctl status` (listen addresses, connections). */
        void (*status)(struct json_object *out);
};
extern const struct export_driver *const export_drivers[]; /* NULL-terminated */

int export_add(const char *name, const char *node, uint32_t protocols, bool readonly, const char *description,
               struct json_object *opts, struct orion_error *err);
int export_remove(const char *name, struct orion_error *err);
/* Reference to a live export, or NULL. Release with export_unref. */
struct orion_export *export_find(const char *name);
struct orion_export *export_ref(struct orion_export *e);
void export_unref(struct orion_export *e);
/* Live exports in creation order, each referenced; release each with export_unref. */
size_t export_list(struct orion_export **ret, size_t max);
int parse_protocols(const char *s, uint32_t *ret);
struct json_object *protocols_to_json(uint32_t protocols);
void export_remove_all(void);
/* Enable exports with the daemon config (kept by pointer: it must outlive the exports). A driver
 * is started on the first export_add that names its protocol, so a daemon binds only the ports
 * and mounts its exports need. exports_stop stops every started driver (in-flight requests
 * finish first) and refuses further adds. */
int exports_start(const struct daemon_config *cfg, struct orion_error *err);
void exports_stop(void);
/* PROTO_* bits of the drivers running now. */
uint32_t exports_started(void);

/* ---- Config (config.c) ------------------------------------------------------------------- */
struct config_node {
        char *name;
        char *type;
        struct json_object *params; /* key → string */
};
struct config_export {
        char *name;
        char *node;
        uint32_t protocols;
        bool readonly;
        char *description;
        struct json_object *opts;
};
struct daemon_config {
        char *state_dir;          /* state-dir = */
        char *control_socket;     /* control-socket = */
        char **nbd_listen;        /* nbd-listen = host:port | unix:PATH ... (NULL-terminated) */
        char *iscsi_listen;       /* iscsi-listen = */
        char *fuse_mountpoint;    /* fuse-mountpoint = */
        char *plugin_dir;         /* plugin-dir = */
        uint32_t workers;         /* workers = (threads of the worker pool, 0 = auto) */
        struct json_object *opts; /* other driver keys: "nbd-*", "iscsi-*", "fuse-*" */
        struct config_node *nodes;
        size_t nnodes;
        struct config_export *exports;
        size_t nexports;
};
#define DEFAULT_CONFIG_PATH "/etc/orion/oriond.conf"
#define DEFAULT_STATE_DIR "/var/lib/orion"
#define DEFAULT_CONTROL_SOCKET "/run/orion/oriond.sock"
#define DEFAULT_NBD_LISTEN "127.0.0.1:10809"
#define DEFAULT_ISCSI_LISTEN "127.0.0.1:3260"
#define DEFAULT_FUSE_MOUNTPOINT "/run/orion/fuse"

void config_init(struct daemon_config *cfg);      /* defaults, no nodes */
void config_done(struct daemon_config *cfg);
/* Parse INI text; errors name the line. */
int config_parse_string(struct daemon_config *cfg, const char *text, struct orion_error *err);
int config_parse_file(struct daemon_config *cfg, const char *path, struct orion_error *err);
/* The built-in default: one sparse 1 GiB file volume "vol0" in state_dir, exported over NBD
 * (and FUSE when built). */
int config_add_default(struct daemon_config *cfg, struct orion_error *err);
/* Driver option lookup in cfg->opts; NULL when absent. */
const char *config_opt(const struct daemon_config *cfg, const char *key);

/* ---- Worker pool (pool.c) ----------------------------------------------------------------- */
/* The process-wide pool used by orion_submit and the exports. Started lazily with `threads`
 * workers (0 = 2 x CPUs, at least 4). A job may itself wait for a batch: waiters run their
 * own unstarted jobs inline, so nesting never deadlocks. */
int pool_init(unsigned threads);
void pool_done(void);
/* Fire-and-forget job. */
int pool_queue(void (*fn)(void *arg), void *arg);

/* ---- Misc --------------------------------------------------------------------------------- */
/* state dir for orion_state_dir() */
void core_set_state_dir(const char *dir);
/* Name rules for nodes and exports. */
bool valid_name(const char *s, size_t maxlen);
