/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Node types: the descriptor a plugin (or built-in leaf) exports, its parameter table and open(). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "orion/bdev.h"
#include "orion/log.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped on any incompatible change of this header or bdev.h. The loader refuses a mismatch. */
#define ORION_PLUGIN_API_VERSION 1

enum orion_param_type {
        ORION_PARAM_STRING, /* any text */
        ORION_PARAM_SIZE,   /* bytes with optional suffix: 512, 64K, 10G, 1T (binary units) */
        ORION_PARAM_INT,    /* signed 64-bit decimal (or 0x hex) */
        ORION_PARAM_BOOL,   /* on/off, yes/no, true/false, 1/0 */
        ORION_PARAM_ENUM,   /* one of the words in .choices (space separated) */
        ORION_PARAM_NODE,   /* name of another node: becomes a child */
        ORION_PARAM_NODES,  /* space-separated node names: each becomes a child, in order */
        ORION_PARAM_PATH,   /* a file name */
        _ORION_PARAM_TYPE_MAX,
        _ORION_PARAM_TYPE_INVALID = -22,
};

struct orion_param {
        const char *name;           /* config key, e.g. "chunk" */
        enum orion_param_type type;
        const char *def;            /* default as text; NULL = required (or optional if .optional) */
        const char *help;           /* one line, shown by --list-types and in man pages */
        const char *choices;        /* ORION_PARAM_ENUM: "zstd lz4" */
        bool optional;              /* with def == NULL: may be absent */
        bool secret;                /* a passphrase or key: never shown by node-info or logs */
};

/* Parameters of one node, validated by the core against the type's table before open():
 * unknown keys, missing required keys and malformed values are refused with a reason. */
struct orion_params;

/* Accessors. They return the configured value or the table's default. Asking for a name that
 * is not in the table is a programming error (assert). *_is_set tells whether the user gave it. */
const char *orion_param_str(const struct orion_params *p, const char *name);   /* NULL if absent */
uint64_t orion_param_size(const struct orion_params *p, const char *name);
int64_t orion_param_int(const struct orion_params *p, const char *name);
bool orion_param_bool(const struct orion_params *p, const char *name);
bool orion_param_is_set(const struct orion_params *p, const char *name);
/* ORION_PARAM_NODE: the child node (NULL if optional and absent). */
struct orion_bdev *orion_param_node(const struct orion_params *p, const char *name);
/* ORION_PARAM_NODES: number of nodes, and the i-th. */
size_t orion_param_nodes_count(const struct orion_params *p, const char *name);
struct orion_bdev *orion_param_nodes_get(const struct orion_params *p, const char *name, size_t i);

/* Run-time children (e.g. raid `add` of a spare): resolve a node by name and make it a child of
 * b (it then cannot be removed while b holds it). Release with orion_bdev_release_child(). */
struct orion_bdev *orion_bdev_attach_child(struct orion_bdev *b, const char *name, struct orion_error *err);
void orion_bdev_release_child(struct orion_bdev *b, struct orion_bdev *child);

/* State directory of the daemon (for layers that keep side files); never NULL. */
const char *orion_state_dir(void);

struct orion_plugin {
        uint32_t api_version;                  /* stamped by ORION_PLUGIN */
        const char *name;                      /* type name: "raid" */
        const char *description;               /* one line */
        const struct orion_param *params;      /* table, terminated by { NULL } */
        size_t instance_size;                  /* bytes of per-node state (orion_bdev_priv) */
        const struct orion_bdev_ops *ops;
        /* Build the node: read params, check children, set geometry and caps. On failure set err
         * and return -errno; the core then frees the node without calling close. */
        int (*open)(struct orion_bdev *b, const struct orion_params *p, struct orion_error *err);
        /* Optional. `orionctl format TYPE ...`: write a fresh on-disk format on the child(ren)
         * named in p. force: overwrite a recognised superblock. Returns 0 or -errno. */
        int (*format)(const struct orion_params *p, bool force, struct json_object *args,
                      struct orion_error *err);
        /* Optional. `orionctl inspect`: if this type recognises what node b holds, describe it
         * into out and return 1; 0 if not recognised; -errno on I/O error. */
        int (*inspect)(struct orion_bdev *b, struct json_object *out);
};

/* In a plugin's source: ORION_PLUGIN(.name = "delay", .params = ..., .ops = &..., .open = ...);
 * defines the one exported entry point the loader looks for. Built-in types use
 * ORION_BUILTIN_TYPE(ident, ...) instead, which defines a struct the core lists statically. */
#define ORION_PLUGIN(...)                                                           \
        __attribute__((visibility("default"))) const struct orion_plugin *orion_plugin_init(void); \
        const struct orion_plugin *orion_plugin_init(void) {                        \
                static const struct orion_plugin p = {                              \
                        .api_version = ORION_PLUGIN_API_VERSION, __VA_ARGS__};       \
                return &p;                                                          \
        }

#define ORION_BUILTIN_TYPE(ident, ...)                                             \
        const struct orion_plugin ident = { .api_version = ORION_PLUGIN_API_VERSION, __VA_ARGS__ }

#ifdef __cplusplus
}
#endif
