/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The node graph: creation from a type and params, child edges with reference counts, removal,
 * and per-node accessors. Data-path requests are in request.c. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "common/cleanup.h"
#include "core/core.h"

static pthread_mutex_t g_graph_lock;
static pthread_once_t g_graph_once = PTHREAD_ONCE_INIT;
static struct orion_bdev **g_nodes;
static size_t g_nnodes;
static char *g_state_dir;

static void graph_lock_init(void) {
        pthread_mutexattr_t a;
        pthread_mutexattr_init(&a);
        pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
        pthread_mutex_init(&g_graph_lock, &a);
        pthread_mutexattr_destroy(&a);
}

void graph_lock(void) {
        pthread_once(&g_graph_once, graph_lock_init);
        pthread_mutex_lock(&g_graph_lock);
}

void graph_unlock(void) {
        pthread_mutex_unlock(&g_graph_lock);
}

void core_set_state_dir(const char *dir) {
        char *d = strdup(dir);
        if (!d)
                return;
        free(g_state_dir);
        g_state_dir = d;
}

const char *orion_state_dir(void) {
        return g_state_dir ? g_state_dir : DEFAULT_STATE_DIR;
}

bool valid_name(const char *s, size_t maxlen) {
        size_t n = 0;
        if (!s || !*s || *s == '.' || *s == '-')
                return false;
        for (; s[n]; n++) {
                char c = s[n];
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                      c == '_' || c == '-'))
                        return false;
        }
        return n <= maxlen;
}

/* ---- Accessors ---------------------------------------------------------------------------- */
void *orion_bdev_priv(struct orion_bdev *b) {
        return b->priv;
}
const char *orion_bdev_name(const struct orion_bdev *b) {
        return b->name;
}
const char *orion_bdev_type(const struct orion_bdev *b) {
        return b->type->name;
}
const struct orion_geometry *orion_bdev_geometry(const struct orion_bdev *b) {
        return &b->geom;
}
uint64_t orion_bdev_size(const struct orion_bdev *b) {
        return __atomic_load_n(&b->geom.size, __ATOMIC_ACQUIRE);
}
uint32_t orion_bdev_block_size(const struct orion_bdev *b) {
        return b->geom.block_size;
}
uint32_t orion_bdev_caps(const struct orion_bdev *b) {
        return b->caps;
}

int orion_bdev_set_geometry(struct orion_bdev *b, const struct orion_geometry *g) {
        if (g->block_size < 512 || g->block_size > 65536 || !IS_POW2(g->block_size)) {
                orion_error("node '%s': block size %u is not a power of two in 512..65536", b->name, g->block_size);
                return -EINVAL;
        }
        if (g->size % g->block_size) {
                orion_error("node '%s': size %llu is not a multiple of the block size %u", b->name,
                            (unsigned long long) g->size, g->block_size);
                return -EINVAL;
        }
        if (g->max_size && (g->max_size < g->block_size || g->max_size % g->block_size)) {
                orion_error("node '%s': max request size %u is not a multiple of the block size", b->name,
                            g->max_size);
                return -EINVAL;
        }
        b->geom.block_size = g->block_size;
        b->geom.pref_size = g->pref_size && IS_POW2(g->pref_size) && g->pref_size >= g->block_size
                                    ? g->pref_size
                                    : (g->block_size > 4096 ? g->block_size : 4096);
        b->geom.max_size = g->max_size;
        __atomic_store_n(&b->geom.size, g->size, __ATOMIC_RELEASE);
        return 0;
}

void orion_bdev_set_caps(struct orion_bdev *b, uint32_t caps) {
        b->caps = caps;
}

void orion_bdev_set_health(struct orion_bdev *b, enum orion_health h, const char *fmt, ...) {
        char *msg = NULL;
        if (fmt) {
                va_list ap;
                va_start(ap, fmt);
                if (vasprintf(&msg, fmt, ap) < 0)
                        msg = NULL;
                va_end(ap);
        }
        pthread_mutex_lock(&b->lock);
        bool changed = b->health != h;
        b->health = h;
        free(b->health_msg);
        b->health_msg = msg;
        pthread_mutex_unlock(&b->lock);
        if (changed) {
                if (h == ORION_HEALTH_OK)
                        orion_notice("node '%s': healthy again", b->name);
                else
                        orion_warn("node '%s': %s%s%s", b->name, h == ORION_HEALTH_DEGRADED ? "degraded" : "failed",
                                   msg ? ": " : "", msg ? msg : "");
        }
}

/* ---- Creation and removal ----------------------------------------------------------------- */
static struct orion_bdev *node_alloc(const char *name, const struct orion_plugin *t) {
        struct orion_bdev *b = calloc(1, sizeof *b);
        if (!b)
                return NULL;
        b->name = strdup(name);
        b->type = t;
        b->priv = calloc(1, t->instance_size ? t->instance_size : 1);
        if (!b->name || !b->priv) {
                free(b->name);
                free(b->priv);
                free(b);
                return NULL;
        }
        pthread_mutex_init(&b->lock, NULL);
        for (int i = 0; i < RMW_LOCKS; i++)
                pthread_mutex_init(&b->rmw_lock[i], NULL);
        return b;
}

static void node_free(struct orion_bdev *b) {
        if (!b)
                return;
        graph_lock();
        for (size_t i = 0; i < b->nchildren; i++)
                b->children[i]->nparents--;
        graph_unlock();
        free(b->children);
        params_free(b->params);
        pthread_mutex_destroy(&b->lock);
        for (int i = 0; i < RMW_LOCKS; i++)
                pthread_mutex_destroy(&b->rmw_lock[i]);
        free(b->health_msg);
        free(b->priv);
        free(b->name);
        free(b);
}

int node_open_detached(const char *name, const struct orion_plugin *t, struct json_object *params,
                       struct orion_bdev **ret, struct orion_error *err) {
        graph_lock();
        struct orion_bdev *b = node_alloc(name, t);
        if (!b) {
                graph_unlock();
                return orion_error_set(err, ENOMEM, "out of memory");
        }
        b->params = params_new(t, params, err);
        if (!b->params) {
                graph_unlock();
                node_free(b);
                return -(err && err->code ? err->code : EINVAL);
        }
        size_t n = params_children(b->params, &b->children);
        if (n == (size_t) -1) {
                graph_unlock();
                node_free(b);
                return orion_error_set(err, ENOMEM, "out of memory");
        }
        b->nchildren = n;
        for (size_t i = 0; i < n; i++)
                b->children[i]->nparents++;
        graph_unlock();

        /* Defaults a type can rely on; open overrides them. */
        b->geom.block_size = 512;
        b->geom.pref_size = 4096;
        struct orion_error lerr = { 0 };
        int r = t->open(b, b->params, &lerr);
        if (r < 0) {
                if (!lerr.code)
                        orion_error_set(&lerr, -r, "cannot open: %s", strerror(-r));
                orion_error_set(err, lerr.code, "node '%s' (%s): %s", name, t->name, lerr.msg);
                node_free(b);
                return -lerr.code;
        }
        if (b->geom.block_size < 512 || !IS_POW2(b->geom.block_size) || b->geom.size % b->geom.block_size) {
                orion_error_set(err, EINVAL, "node '%s' (%s): invalid geometry", name, t->name);
                b->opened = true;
                node_close(b);
                return -EINVAL;
        }
        if (b->caps & ORION_CAP_READONLY)
                b->caps &= ~(uint32_t) (ORION_CAP_DISCARD | ORION_CAP_WRITE_ZEROES | ORION_CAP_FAST_ZERO);
        b->opened = true;
        *ret = b;
        return 0;
}

void node_close(struct orion_bdev *b) {
        if (!b)
                return;
        if (b->opened && b->type->ops->close)
                b->type->ops->close(b);
        node_free(b);
}

int graph_node_add(const char *name, const char *type, struct json_object *params, struct orion_bdev **ret,
                   struct orion_error *err) {
        if (!valid_name(name, 64))
                return orion_error_set(err, EINVAL,
                                       "invalid node name '%s' (letters, digits, '.', '_', '-'; at most 64)",
                                       name ? name : "");
        const struct orion_plugin *t = registry_find(type, err);
        if (!t)
                return -(err && err->code ? err->code : ENOENT);

        /* The graph lock is held across open so that two adds of one name cannot race, and
         * children cannot be removed while the new node takes them. */
        graph_lock();
        if (graph_node_find(name)) {
                graph_unlock();
                return orion_error_set(err, EEXIST, "a node named '%s' already exists", name);
        }
        struct orion_bdev *b;
        int r = node_open_detached(name, t, params, &b, err);
        if (r < 0) {
                graph_unlock();
                return r;
        }
        struct orion_bdev **n = realloc(g_nodes, (g_nnodes + 1) * sizeof *n);
        if (!n) {
                graph_unlock();
                node_close(b);
                return orion_error_set(err, ENOMEM, "out of memory");
        }
        g_nodes = n;
        g_nodes[g_nnodes++] = b;
        graph_unlock();
        char sz[32];
        orion_info("node '%s' (%s): %s, block size %u", name, t->name, format_size(b->geom.size, sz, sizeof sz),
                   b->geom.block_size);
        if (ret)
                *ret = b;
        return 0;
}

struct orion_bdev *graph_node_find(const char *name) {
        graph_lock();
        struct orion_bdev *b = NULL;
        for (size_t i = 0; i < g_nnodes && name; i++)
                if (strcmp(g_nodes[i]->name, name) == 0) {
                        b = g_nodes[i];
                        break;
                }
        graph_unlock();
        return b;
}

int graph_node_remove(const char *name, struct orion_error *err) {
        graph_lock();
        size_t i;
        for (i = 0; i < g_nnodes; i++)
                if (strcmp(g_nodes[i]->name, name) == 0)
                        break;
        if (i == g_nnodes) {
                graph_unlock();
                return orion_error_set(err, ENOENT, "no node named '%s'", name);
        }
        struct orion_bdev *b = g_nodes[i];
        if (b->nparents || b->nexports) {
                unsigned p = b->nparents, e = b->nexports;
                graph_unlock();
                return orion_error_set(err, EBUSY, "node '%s' is in use (%u parent node%s, %u export%s)", name, p,
                                       p == 1 ? "" : "s", e, e == 1 ? "" : "s");
        }
        memmove(&g_nodes[i], &g_nodes[i + 1], (g_nnodes - i - 1) * sizeof *g_nodes);
        g_nnodes--;
        graph_unlock();

        int r = orion_bdev_flush(b, 0);
        if (r < 0)
                orion_warn("node '%s': flush before removal failed: %s", name, strerror(-r));
        node_close(b);
        orion_info("node '%s' removed", name);
        return 0;
}

size_t graph_node_list(struct orion_bdev **ret, size_t max) {
        graph_lock();
        size_t n = g_nnodes;
        if (ret && n && max)
                memcpy(ret, g_nodes, (n < max ? n : max) * sizeof *ret);
        graph_unlock();
        return n;
}

struct orion_bdev *orion_bdev_attach_child(struct orion_bdev *b, const char *name, struct orion_error *err) {
        graph_lock();
        struct orion_bdev *c = graph_node_find(name);
        if (!c) {
                graph_unlock();
                orion_error_set(err, ENOENT, "no node named '%s'", name);
                return NULL;
        }
        if (c == b) {
                graph_unlock();
                orion_error_set(err, EINVAL, "node '%s' cannot be its own child", name);
                return NULL;
        }
        pthread_mutex_lock(&b->lock);
        struct orion_bdev **n = realloc(b->children, (b->nchildren + 1) * sizeof *n);
        if (!n) {
                pthread_mutex_unlock(&b->lock);
                graph_unlock();
                orion_error_set(err, ENOMEM, "out of memory");
                return NULL;
        }
        b->children = n;
        b->children[b->nchildren++] = c;
        pthread_mutex_unlock(&b->lock);
        c->nparents++;
        graph_unlock();
        return c;
}

void orion_bdev_release_child(struct orion_bdev *b, struct orion_bdev *child) {
        graph_lock();
        pthread_mutex_lock(&b->lock);
        for (size_t i = 0; i < b->nchildren; i++)
                if (b->children[i] == child) {
                        memmove(&b->children[i], &b->children[i + 1], (b->nchildren - i - 1) * sizeof *b->children);
                        b->nchildren--;
                        child->nparents--;
                        break;
                }
        pthread_mutex_unlock(&b->lock);
        graph_unlock();
}

/* ---- Describing ------------------------------------------------------------------------------ */
struct json_object *caps_to_json(uint32_t caps) {
        static const char *const names[] = { "read-only", "flush",        "fua",        "discard",   "write-zeroes",
                                             "fast-zero", "block-status", "multi-conn", "rotational" };
        struct json_object *a = json_object_new_array();
        for (unsigned i = 0; i < ELEMENTSOF(names); i++)
                if (caps & (1u << i))
                        json_object_array_add(a, json_object_new_string(names[i]));
        return a;
}

/* "iscsi://user%secret@host/..." -> "iscsi://user%***@host/...": node-info must not show
 * credentials given in a URL (nbds:// and iscsi:// accept them). Other text is copied as is. */
static char *redact_url(const char *v) {
        char *s = strdup(v ? v : "");
        if (!s)
                return NULL;
        char *scheme = strstr(s, "://");
        if (!scheme)
                return s;
        char *user = scheme + 3;
        char *at = strchr(user, '@');
        char *slash = strchr(user, '/');
        if (!at || (slash && slash < at))
                return s;
        char *sep = memchr(user, '%', (size_t) (at - user));
        if (!sep)
                sep = memchr(user, ':', (size_t) (at - user));
        if (!sep)
                return s;
        char *out = NULL;
        if (asprintf(&out, "%.*s***%s", (int) (sep + 1 - s), s, at) < 0)
                out = NULL;
        free(s);
        return out;
}

static bool param_is_secret(const struct orion_plugin *t, const char *key) {
        for (const struct orion_param *q = t->params; q && q->name; q++)
                if (strcmp(q->name, key) == 0)
                        return q->secret;
        return false;
}

static const char *const health_names[_ORION_HEALTH_MAX] = { "ok", "degraded", "failed" };

void graph_node_info(struct orion_bdev *b, struct json_object *out, bool with_stats) {
        json_object_object_add(out, "name", json_object_new_string(b->name));
        json_object_object_add(out, "type", json_object_new_string(b->type->name));
        json_object_object_add(out, "size", json_object_new_uint64(orion_bdev_size(b)));
        json_object_object_add(out, "block-size", json_object_new_int((int) b->geom.block_size));
        json_object_object_add(out, "max-request", json_object_new_int64(b->geom.max_size));
        json_object_object_add(out, "caps", caps_to_json(b->caps));
        pthread_mutex_lock(&b->lock);
        json_object_object_add(out, "health", json_object_new_string(health_names[b->health]));
        if (b->health_msg)
                json_object_object_add(out, "health-message", json_object_new_string(b->health_msg));
        struct json_object *ch = json_object_new_array();
        for (size_t i = 0; i < b->nchildren; i++)
                json_object_array_add(ch, json_object_new_string(b->children[i]->name));
        pthread_mutex_unlock(&b->lock);
        json_object_object_add(out, "children", ch);
        graph_lock();
        json_object_object_add(out, "parents", json_object_new_int((int) b->nparents));
        json_object_object_add(out, "exports", json_object_new_int((int) b->nexports));
        graph_unlock();
        struct json_object *params = json_object_new_object();
        json_object_object_foreach(params_json(b->params), key, val) {
                if (param_is_secret(b->type, key)) {
                        json_object_object_add(params, key, json_object_new_string("***"));
                        continue;
                }
                _cleanup_free_ char *shown = redact_url(json_object_get_string(val));
                json_object_object_add(params, key, json_object_new_string(shown ? shown : ""));
        }
        json_object_object_add(out, "params", params);
        if (b->type->ops->status) {
                struct json_object *st = json_object_new_object();
                b->type->ops->status(b, st);
                json_object_object_add(out, "status", st);
        }
        if (with_stats) {
                struct json_object *st = json_object_new_object();
                stats_to_json(&b->stats, st);
                if (b->type->ops->stats)
                        b->type->ops->stats(b, st);
                json_object_object_add(out, "stats", st);
        }
}

void orion_stats_put(struct json_object *sink, const char *name, uint64_t value) {
        json_object_object_add(sink, name, json_object_new_uint64(value));
}

/* ---- Whole-graph operations ------------------------------------------------------------------
 * Nodes are created children first, so walking the list backwards visits parents first. */
int graph_flush_all(void) {
        graph_lock();
        size_t n = g_nnodes;
        struct orion_bdev **copy = n ? malloc(n * sizeof *copy) : NULL;
        if (n && !copy) {
                graph_unlock();
                return -ENOMEM;
        }
        if (n)
                memcpy(copy, g_nodes, n * sizeof *copy);
        graph_unlock();
        int ret = 0;
        for (size_t i = n; i-- > 0;) {
                if (copy[i]->caps & ORION_CAP_READONLY)
                        continue;
                int r = orion_bdev_flush(copy[i], 0);
                if (r < 0) {
                        orion_error("node '%s': flush failed: %s", copy[i]->name, strerror(-r));
                        if (!ret)
                                ret = r;
                }
        }
        free(copy);
        return ret;
}

void graph_close_all(void) {
        graph_lock();
        while (g_nnodes) {
                /* The newest node nothing else holds: children attached at run time (raid
                 * spares, replacements) are newer than their parent but must outlive it. */
                size_t i = g_nnodes - 1;
                while (i > 0 && g_nodes[i]->nparents > 0)
                        i--;
                struct orion_bdev *b = g_nodes[i];
                memmove(&g_nodes[i], &g_nodes[i + 1], (g_nnodes - i - 1) * sizeof *g_nodes);
                g_nnodes--;
                node_close(b);
        }
        free(g_nodes);
        g_nodes = NULL;
        graph_unlock();
}
