/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Node-type registry: built-in leaf types plus layer plugins dlopen'ed from the plugin directory. */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "common/cleanup.h"
#include "core/core.h"

extern const struct orion_plugin *const builtin_types[]; /* src/backend/backends.c */

#define MAX_TYPES 128

static pthread_mutex_t g_reg_lock = PTHREAD_MUTEX_INITIALIZER;
static const struct orion_plugin *g_types[MAX_TYPES];
static void *g_handles[MAX_TYPES];
static size_t g_ntypes;
static char *g_plugin_dir;

static const struct orion_plugin *find_locked(const char *name) {
        for (size_t i = 0; i < g_ntypes; i++)
                if (strcmp(g_types[i]->name, name) == 0)
                        return g_types[i];
        return NULL;
}

static int check_descriptor(const struct orion_plugin *p, struct orion_error *err) {
        if (p->api_version != ORION_PLUGIN_API_VERSION)
                return orion_error_set(err, EPROTO, "plugin '%s' has API version %u, oriond needs %u",
                                       p->name ? p->name : "?", p->api_version, ORION_PLUGIN_API_VERSION);
        if (!p->name || !valid_name(p->name, 32))
                return orion_error_set(err, EINVAL, "plugin has an invalid type name");
        if (!p->ops || !p->ops->pread || !p->open)
                return orion_error_set(err, EINVAL, "plugin '%s' lacks pread or open", p->name);
        for (const struct orion_param *q = p->params; q && q->name; q++)
                if ((unsigned) q->type >= _ORION_PARAM_TYPE_MAX)
                        return orion_error_set(err, EINVAL, "plugin '%s': parameter '%s' has a bad type",
                                               p->name, q->name);
        return 0;
}

static int add_locked(const struct orion_plugin *p, void *handle, struct orion_error *err) {
        int r = check_descriptor(p, err);
        if (r < 0)
                return r;
        if (find_locked(p->name))
                return orion_error_set(err, EEXIST, "node type '%s' is already registered", p->name);
        if (g_ntypes >= MAX_TYPES)
                return orion_error_set(err, ENOSPC, "too many node types");
        g_handles[g_ntypes] = handle;
        g_types[g_ntypes++] = p;
        return 0;
}

int registry_add(const struct orion_plugin *p, struct orion_error *err) {
        LOCK_GUARD(&g_reg_lock);
        return add_locked(p, NULL, err);
}

int registry_init(const char *plugin_dir) {
        const char *env = getenv("ORION_PLUGIN_DIR");
        const char *dir = plugin_dir ? plugin_dir : env && *env ? env : ORION_PLUGINDIR;
        LOCK_GUARD(&g_reg_lock);
        free(g_plugin_dir);
        g_plugin_dir = strdup(dir);
        if (!g_plugin_dir)
                return -ENOMEM;
        for (size_t i = 0; builtin_types[i]; i++) {
                if (find_locked(builtin_types[i]->name))
                        continue;
                struct orion_error err = { 0 };
                int r = add_locked(builtin_types[i], NULL, &err);
                if (r < 0) {
                        orion_error("registry: %s", err.msg);
                        return r;
                }
        }
        return 0;
}

void registry_done(void) {
        LOCK_GUARD(&g_reg_lock);
        /* Handles stay loaded: a node may still point into a plugin during exit. */
        g_ntypes = 0;
        free(g_plugin_dir);
        g_plugin_dir = NULL;
}

const char *registry_plugin_dir(void) {
        return g_plugin_dir ? g_plugin_dir : ORION_PLUGINDIR;
}

static int load_locked(const char *path, const char *want, struct orion_error *err) {
        void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        if (!h)
                return orion_error_set(err, ENOENT, "cannot load plugin '%s': %s", path, dlerror());
        const struct orion_plugin *(*init)(void) = (const struct orion_plugin *(*) (void)) dlsym(h, "orion_plugin_init");
        if (!init) {
                dlclose(h);
                return orion_error_set(err, ENOEXEC, "'%s' is not an Orion plugin (no orion_plugin_init)", path);
        }
        const struct orion_plugin *p = init();
        if (!p) {
                dlclose(h);
                return orion_error_set(err, ENOEXEC, "'%s': orion_plugin_init returned nothing", path);
        }
        if (want && (!p->name || strcmp(p->name, want) != 0)) {
                dlclose(h);
                return orion_error_set(err, ENOEXEC, "'%s' registers type '%s', expected '%s'", path,
                                       p->name ? p->name : "?", want);
        }
        if (find_locked(p->name)) {
                dlclose(h);
                return 0;
        }
        int r = add_locked(p, h, err);
        if (r < 0)
                dlclose(h);
        return r;
}

const struct orion_plugin *registry_find(const char *name, struct orion_error *err) {
        if (!name || !valid_name(name, 32)) {
                orion_error_set(err, EINVAL, "invalid node type name '%s'", name ? name : "");
                return NULL;
        }
        LOCK_GUARD(&g_reg_lock);
        const struct orion_plugin *p = find_locked(name);
        if (p)
                return p;
        char path[4096];
        snprintf(path, sizeof path, "%s/orion-%s.so", registry_plugin_dir(), name);
        struct orion_error lerr = { 0 };
        if (load_locked(path, name, &lerr) < 0) {
                if (lerr.code == ENOENT)
                        orion_error_set(err, ENOENT, "unknown node type '%s' (no built-in type and %s)", name,
                                        lerr.msg);
                else
                        orion_error_set(err, lerr.code, "%s", lerr.msg);
                return NULL;
        }
        return find_locked(name);
}

void registry_load_all(void) {
        LOCK_GUARD(&g_reg_lock);
        DIR *d = opendir(registry_plugin_dir());
        if (!d) {
                orion_warn("registry: cannot list plugin directory '%s': %m", registry_plugin_dir());
                return;
        }
        struct dirent *de;
        while ((de = readdir(d))) {
                size_t n = strlen(de->d_name);
                if (n < 10 || strncmp(de->d_name, "orion-", 6) != 0 || strcmp(de->d_name + n - 3, ".so") != 0)
                        continue;
                char name[64];
                if (n - 9 >= sizeof name)
                        continue;
                memcpy(name, de->d_name + 6, n - 9);
                name[n - 9] = 0;
                if (find_locked(name))
                        continue;
                char path[4096];
                snprintf(path, sizeof path, "%s/%s", registry_plugin_dir(), de->d_name);
                struct orion_error err = { 0 };
                if (load_locked(path, name, &err) < 0)
                        orion_warn("registry: %s, ignoring", err.msg);
        }
        closedir(d);
}

static int cmp_type(const void *a, const void *b) {
        return strcmp((*(const struct orion_plugin *const *) a)->name, (*(const struct orion_plugin *const *) b)->name);
}

size_t registry_list(const struct orion_plugin **ret, size_t max) {
        LOCK_GUARD(&g_reg_lock);
        size_t n = g_ntypes < max ? g_ntypes : max;
        memcpy(ret, g_types, n * sizeof *ret);
        qsort(ret, n, sizeof *ret, cmp_type);
        return n;
}

static const char *const param_type_names[_ORION_PARAM_TYPE_MAX] = {
        [ORION_PARAM_STRING] = "string", [ORION_PARAM_SIZE] = "size", [ORION_PARAM_INT] = "int",
        [ORION_PARAM_BOOL] = "bool",     [ORION_PARAM_ENUM] = "enum", [ORION_PARAM_NODE] = "node",
        [ORION_PARAM_NODES] = "nodes",   [ORION_PARAM_PATH] = "path",
};

struct json_object *registry_describe(const struct orion_plugin *p) {
        struct json_object *o = json_object_new_object(), *params = json_object_new_array();
        json_object_object_add(o, "name", json_object_new_string(p->name));
        json_object_object_add(o, "description", json_object_new_string(p->description ? p->description : ""));
        for (const struct orion_param *q = p->params; q && q->name; q++) {
                struct json_object *j = json_object_new_object();
                json_object_object_add(j, "name", json_object_new_string(q->name));
                json_object_object_add(j, "type", json_object_new_string(param_type_names[q->type]));
                json_object_object_add(j, "default", q->def ? json_object_new_string(q->def) : NULL);
                json_object_object_add(j, "required", json_object_new_boolean(!q->def && !q->optional));
                json_object_object_add(j, "help", json_object_new_string(q->help ? q->help : ""));
                if (q->choices)
                        json_object_object_add(j, "choices", json_object_new_string(q->choices));
                json_object_array_add(params, j);
        }
        json_object_object_add(o, "params", params);
        json_object_object_add(o, "format", json_object_new_boolean(p->format != NULL));
        return o;
}
