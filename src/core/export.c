/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Exports: named views of nodes, served by the protocol drivers listed in export_drivers[]. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "common/cleanup.h"
#include "core/core.h"

static pthread_mutex_t g_exp_lock = PTHREAD_MUTEX_INITIALIZER;
static struct orion_export **g_exports;
static size_t g_nexports;
static uint32_t g_started; /* PROTO_* of drivers that started */
static pthread_mutex_t g_start_lock = PTHREAD_MUTEX_INITIALIZER;
static const struct daemon_config *g_cfg;
static bool g_enabled;

static const struct {
        const char *name;
        uint32_t proto;
} proto_names[] = { { "nbd", PROTO_NBD }, { "fuse", PROTO_FUSE }, { "iscsi", PROTO_ISCSI } };

int parse_protocols(const char *s, uint32_t *ret) {
        uint32_t p = 0;
        _cleanup_free_ char *copy = strdup(s ? s : "");
        if (!copy)
                return -ENOMEM;
        char *save = NULL;
        for (char *w = strtok_r(copy, " ,\t", &save); w; w = strtok_r(NULL, " ,\t", &save)) {
                size_t i;
                for (i = 0; i < ELEMENTSOF(proto_names); i++)
                        if (strcmp(w, proto_names[i].name) == 0)
                                break;
                if (i == ELEMENTSOF(proto_names))
                        return -EINVAL;
                p |= proto_names[i].proto;
        }
        if (!p)
                return -EINVAL;
        *ret = p;
        return 0;
}

struct json_object *protocols_to_json(uint32_t protocols) {
        struct json_object *a = json_object_new_array();
        for (size_t i = 0; i < ELEMENTSOF(proto_names); i++)
                if (protocols & proto_names[i].proto)
                        json_object_array_add(a, json_object_new_string(proto_names[i].name));
        return a;
}

static bool valid_export_name(const char *s) {
        if (!s || !*s || strlen(s) > 200 || *s == '.' || *s == '-')
                return false;
        for (const char *p = s; *p; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '.' ||
                      *p == '_' || *p == '-' || *p == ':'))
                        return false;
        return true;
}

static void export_free(struct orion_export *e) {
        graph_lock();
        e->node->nexports--;
        graph_unlock();
        json_object_put(e->opts);
        free(e->description);
        free(e->name);
        free(e);
}

struct orion_export *export_ref(struct orion_export *e) {
        if (e)
                atomic_fetch_add(&e->refs, 1);
        return e;
}

void export_unref(struct orion_export *e) {
        if (e && atomic_fetch_sub(&e->refs, 1) == 1)
                export_free(e);
}

struct orion_export *export_find(const char *name) {
        LOCK_GUARD(&g_exp_lock);
        for (size_t i = 0; i < g_nexports; i++)
                if (strcmp(g_exports[i]->name, name) == 0)
                        return export_ref(g_exports[i]);
        return NULL;
}

size_t export_list(struct orion_export **ret, size_t max) {
        LOCK_GUARD(&g_exp_lock);
        size_t n = g_nexports < max ? g_nexports : max;
        for (size_t i = 0; ret && i < n; i++)
                ret[i] = export_ref(g_exports[i]);
        return ret ? n : g_nexports;
}

/* Protocol servers start on first use, so a daemon binds only the ports its exports need. */
static int start_drivers(uint32_t protocols, struct orion_error *err) {
        LOCK_GUARD(&g_start_lock);
        if (!g_enabled)
                return orion_error_set(err, ESHUTDOWN, "exports are not enabled (shutting down?)");
        for (size_t i = 0; export_drivers[i]; i++) {
                const struct export_driver *d = export_drivers[i];
                if (!(protocols & d->proto) || (g_started & d->proto))
                        continue;
                if (d->start) {
                        int r = d->start(g_cfg, err);
                        if (r < 0) {
                                if (!orion_error_is_set(err))
                                        orion_error_set(err, -r, "cannot start the %s server", d->name);
                                return r;
                        }
                }
                g_started |= d->proto;
        }
        uint32_t missing = protocols & ~g_started;
        if (missing) {
                struct json_object *j = protocols_to_json(missing);
                int r = orion_error_set(err, EPROTONOSUPPORT, "protocol %s not built into this oriond",
                                        json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN));
                json_object_put(j);
                return r;
        }
        return 0;
}

static void unregister(struct orion_export *e) {
        LOCK_GUARD(&g_exp_lock);
        for (size_t k = 0; k < g_nexports; k++)
                if (g_exports[k] == e) {
                        memmove(&g_exports[k], &g_exports[k + 1], (g_nexports - k - 1) * sizeof *g_exports);
                        g_nexports--;
                        break;
                }
}

int export_add(const char *name, const char *node, uint32_t protocols, bool readonly, const char *description,
               struct json_object *opts, struct orion_error *err) {
        if (!valid_export_name(name))
                return orion_error_set(err, EINVAL,
                                       "invalid export name '%s' (letters, digits, '.', '_', '-', ':'; never a path)",
                                       name ? name : "");
        if (!protocols)
                return orion_error_set(err, EINVAL, "export '%s' has no protocols", name);
        int r;
        struct orion_export *e = calloc(1, sizeof *e);
        if (!e)
                return orion_error_set(err, ENOMEM, "out of memory");
        atomic_init(&e->refs, 1);
        e->name = strdup(name);
        e->description = description ? strdup(description) : NULL;
        e->protocols = protocols;
        e->opts = opts ? json_object_get(opts) : json_object_new_object();
        if (!e->name || (description && !e->description) || !e->opts) {
                json_object_put(e->opts);
                free(e->name);
                free(e->description);
                free(e);
                return orion_error_set(err, ENOMEM, "out of memory");
        }

        graph_lock();
        e->node = graph_node_find(node);
        if (!e->node) {
                graph_unlock();
                json_object_put(e->opts);
                free(e->name);
                free(e->description);
                free(e);
                return orion_error_set(err, ENOENT, "export '%s': no node named '%s'", name, node ? node : "");
        }
        e->node->nexports++;
        graph_unlock();
        e->readonly = readonly || (e->node->caps & ORION_CAP_READONLY);

        pthread_mutex_lock(&g_exp_lock);
        for (size_t i = 0; i < g_nexports; i++)
                if (strcmp(g_exports[i]->name, name) == 0) {
                        pthread_mutex_unlock(&g_exp_lock);
                        export_unref(e);
                        return orion_error_set(err, EEXIST, "an export named '%s' already exists", name);
                }
        struct orion_export **n = realloc(g_exports, (g_nexports + 1) * sizeof *n);
        if (!n) {
                pthread_mutex_unlock(&g_exp_lock);
                export_unref(e);
                return orion_error_set(err, ENOMEM, "out of memory");
        }
        g_exports = n;
        g_exports[g_nexports++] = e;
        pthread_mutex_unlock(&g_exp_lock);

        /* Servers start only once the export is listed: a client that a fresh server accepts at
         * once (socket activation connects before oriond is ready) must find it. */
        r = start_drivers(protocols, err);
        if (r < 0) {
                unregister(e);
                e->removed = true;
                export_unref(e);
                return r;
        }

        /* Tell each driver; if one refuses, undo the ones that accepted. */
        for (size_t i = 0; export_drivers[i]; i++) {
                const struct export_driver *d = export_drivers[i];
                if (!(protocols & d->proto) || !d->export_added)
                        continue;
                r = d->export_added(e, err);
                if (r < 0) {
                        for (size_t k = 0; k < i; k++)
                                if ((protocols & export_drivers[k]->proto) && export_drivers[k]->export_removed)
                                        export_drivers[k]->export_removed(e);
                        unregister(e);
                        e->removed = true;
                        export_unref(e);
                        if (!orion_error_is_set(err))
                                orion_error_set(err, -r, "export '%s': %s refused it", name, d->name);
                        return r;
                }
        }
        orion_info("export '%s' of node '%s'%s", name, node, e->readonly ? " (read-only)" : "");
        return 0;
}

int export_remove(const char *name, struct orion_error *err) {
        pthread_mutex_lock(&g_exp_lock);
        struct orion_export *e = NULL;
        for (size_t i = 0; i < g_nexports; i++)
                if (strcmp(g_exports[i]->name, name) == 0) {
                        e = g_exports[i];
                        memmove(&g_exports[i], &g_exports[i + 1], (g_nexports - i - 1) * sizeof *g_exports);
                        g_nexports--;
                        break;
                }
        pthread_mutex_unlock(&g_exp_lock);
        if (!e)
                return orion_error_set(err, ENOENT, "no export named '%s'", name);
        e->removed = true;
        for (size_t i = 0; export_drivers[i]; i++)
                if ((e->protocols & export_drivers[i]->proto) && export_drivers[i]->export_removed)
                        export_drivers[i]->export_removed(e);
        orion_info("export '%s' removed", name);
        export_unref(e);
        return 0;
}

void export_remove_all(void) {
        for (;;) {
                pthread_mutex_lock(&g_exp_lock);
                char *name = g_nexports ? strdup(g_exports[g_nexports - 1]->name) : NULL;
                pthread_mutex_unlock(&g_exp_lock);
                if (!name)
                        return;
                (void) export_remove(name, NULL); /* cannot fail: the name was just listed */
                free(name);
        }
}

int exports_start(const struct daemon_config *cfg, struct orion_error *err) {
        LOCK_GUARD(&g_start_lock);
        g_cfg = cfg;
        g_enabled = true;
        return 0;
}

uint32_t exports_started(void) {
        LOCK_GUARD(&g_start_lock);
        return g_started;
}

void exports_stop(void) {
        LOCK_GUARD(&g_start_lock);
        g_enabled = false;
        for (size_t i = 0; export_drivers[i]; i++) {
                const struct export_driver *d = export_drivers[i];
                if ((g_started & d->proto) && d->stop)
                        d->stop();
        }
        g_started = 0;
}
