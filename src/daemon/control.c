/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Control protocol: parsing of one request line and dispatch of its verb to the core. Every
 * reply is {"ok":true,"result":...} or {"ok":false,"errno":N,"error":"..."}. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "common/cleanup.h"
#include "core/core.h"
#include "daemon/control.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(struct json_object *, json_object_put);

/* Verbs that change the graph or the exports take the write side; the rest the read side, so a
 * node cannot be removed while another client runs a ctl or an inspect on it. */
static pthread_rwlock_t g_ctl_lock = PTHREAD_RWLOCK_INITIALIZER;
static struct control_context g_ctx;

void control_set_context(const struct control_context *ctx) {
        g_ctx = *ctx;
}

const struct control_context *control_get_context(void) {
        return &g_ctx;
}

/* ---- Request parsing ------------------------------------------------------------------------ */
void control_request_done(struct control_request *req) {
        if (!req)
                return;
        free(req->cmd);
        json_object_put(req->args);
        json_object_put(req->id);
        *req = (struct control_request) { 0 };
}

int control_parse_request(const char *line, size_t len, struct control_request *ret, struct orion_error *err) {
        *ret = (struct control_request) { 0 };
        if (len > CONTROL_MAX_REQUEST)
                return orion_error_set(err, E2BIG, "request longer than %d bytes", CONTROL_MAX_REQUEST);
        /* Trailing whitespace (the newline, a CR) is allowed; anything else after the object is not. */
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r' || line[len - 1] == ' ' ||
                           line[len - 1] == '\t'))
                len--;
        if (len == 0)
                return orion_error_set(err, EINVAL, "empty request");
        if (memchr(line, '\0', len))
                return orion_error_set(err, EINVAL, "request contains a NUL byte");

        /* Only objects are requests; checking first also spares numbers, which the tokener
         * cannot end without seeing a byte after them. */
        size_t first = 0;
        while (first < len && (line[first] == ' ' || line[first] == '\t'))
                first++;
        if (line[first] != '{')
                return orion_error_set(err, EINVAL, "a request must be a JSON object");

        struct json_tokener *tok = json_tokener_new_ex(CONTROL_MAX_DEPTH);
        if (!tok)
                return orion_error_set(err, ENOMEM, "out of memory");
        struct json_object *o = json_tokener_parse_ex(tok, line, (int) len);
        enum json_tokener_error jerr = json_tokener_get_error(tok);
        size_t used = json_tokener_get_parse_end(tok);
        json_tokener_free(tok);
        if (!o || jerr != json_tokener_success) {
                json_object_put(o);
                if (jerr == json_tokener_continue)
                        return orion_error_set(err, EINVAL, "invalid JSON: incomplete object");
                return orion_error_set(err, EINVAL, "invalid JSON: %s at offset %zu", json_tokener_error_desc(jerr),
                                       used);
        }
        int r;
        if (used != len) {
                r = orion_error_set(err, EINVAL, "invalid JSON: trailing data at offset %zu", used);
                goto fail;
        }
        if (!json_object_is_type(o, json_type_object)) { /* not reached: checked above */
                r = orion_error_set(err, EINVAL, "a request must be a JSON object");
                goto fail;
        }
        struct json_object *cmd = NULL, *args = NULL, *id = NULL;
        json_object_object_foreach(o, key, val) {
                if (strcmp(key, "cmd") == 0)
                        cmd = val;
                else if (strcmp(key, "args") == 0)
                        args = val;
                else if (strcmp(key, "id") == 0)
                        id = val;
                else {
                        r = orion_error_set(err, EINVAL, "unknown request field '%.64s'", key);
                        goto fail;
                }
        }
        if (!cmd || !json_object_is_type(cmd, json_type_string)) {
                r = orion_error_set(err, EINVAL, "request lacks a string \"cmd\"");
                goto fail;
        }
        if (args && !json_object_is_type(args, json_type_object)) {
                r = orion_error_set(err, EINVAL, "\"args\" must be a JSON object");
                goto fail;
        }
        ret->cmd = strdup(json_object_get_string(cmd));
        ret->args = args ? json_object_get(args) : json_object_new_object();
        ret->id = id ? json_object_get(id) : NULL;
        json_object_put(o);
        if (!ret->cmd || !ret->args) {
                control_request_done(ret);
                return orion_error_set(err, ENOMEM, "out of memory");
        }
        return 0;
fail:
        json_object_put(o);
        return r;
}

/* ---- Argument helpers ------------------------------------------------------------------------ */
static int arg_string(struct json_object *args, const char *key, bool required, const char **ret,
                      struct orion_error *err) {
        struct json_object *v = NULL;
        *ret = NULL;
        if (!json_object_object_get_ex(args, key, &v) || json_object_is_type(v, json_type_null)) {
                if (required)
                        return orion_error_set(err, EINVAL, "missing argument '%s'", key);
                return 0;
        }
        if (!json_object_is_type(v, json_type_string))
                return orion_error_set(err, EINVAL, "argument '%s' must be a string", key);
        *ret = json_object_get_string(v);
        return 0;
}

static int arg_bool(struct json_object *args, const char *key, bool def, bool *ret, struct orion_error *err) {
        struct json_object *v = NULL;
        *ret = def;
        if (!json_object_object_get_ex(args, key, &v) || json_object_is_type(v, json_type_null))
                return 0;
        if (json_object_is_type(v, json_type_boolean)) {
                *ret = json_object_get_boolean(v);
                return 0;
        }
        if (json_object_is_type(v, json_type_string)) {
                int b = parse_bool(json_object_get_string(v));
                if (b >= 0) {
                        *ret = b;
                        return 0;
                }
        }
        return orion_error_set(err, EINVAL, "argument '%s' must be a boolean (on/off)", key);
}

/* Borrowed object, or NULL when absent. */
static int arg_object(struct json_object *args, const char *key, struct json_object **ret, struct orion_error *err) {
        struct json_object *v = NULL;
        *ret = NULL;
        if (!json_object_object_get_ex(args, key, &v) || json_object_is_type(v, json_type_null))
                return 0;
        if (!json_object_is_type(v, json_type_object))
                return orion_error_set(err, EINVAL, "argument '%s' must be a JSON object", key);
        *ret = v;
        return 0;
}

static bool is_proto_key(const char *k) {
        return strncmp(k, "nbd-", 4) == 0 || strncmp(k, "fuse-", 5) == 0 || strncmp(k, "iscsi-", 6) == 0;
}

/* Refuse keys a verb does not know, so that a typo is an error rather than silently ignored. */
static int check_keys(const char *verb, struct json_object *args, const char *const *keys, bool proto_keys,
                      struct orion_error *err) {
        json_object_object_foreach(args, key, val) {
                (void) val;
                bool ok = proto_keys && is_proto_key(key);
                for (size_t i = 0; keys && keys[i] && !ok; i++)
                        ok = strcmp(keys[i], key) == 0;
                if (!ok)
                        return orion_error_set(err, EINVAL, "unknown argument '%.64s' for '%s'", key, verb);
        }
        return 0;
}

static const char *const health_words[] = { "ok", "degraded", "failed" };

/* ---- Verbs -------------------------------------------------------------------------------- */
static struct json_object *export_to_json(const struct orion_export *e) {
        struct json_object *o = json_object_new_object();
        json_object_object_add(o, "name", json_object_new_string(e->name));
        json_object_object_add(o, "node", json_object_new_string(e->node->name));
        json_object_object_add(o, "protocols", protocols_to_json(e->protocols));
        json_object_object_add(o, "read-only", json_object_new_boolean(e->readonly));
        if (e->description)
                json_object_object_add(o, "description", json_object_new_string(e->description));
        struct json_object *opts = NULL;
        if (e->opts && json_object_deep_copy(e->opts, &opts, NULL) == 0)
                json_object_object_add(o, "opts", opts);
        return o;
}

/* Snapshot of the node list; free the array. */
static size_t nodes_snapshot(struct orion_bdev ***ret) {
        graph_lock();
        size_t n = graph_node_list(NULL, 0);
        struct orion_bdev **v = calloc(n ? n : 1, sizeof *v);
        if (v && n)
                n = graph_node_list(v, n);
        graph_unlock();
        *ret = v;
        return v ? n : 0;
}

static size_t exports_snapshot(struct orion_export ***ret) {
        size_t n = export_list(NULL, 0);
        /* A few spare slots: an export may be added between the two calls. */
        struct orion_export **v = calloc(n + 8, sizeof *v);
        if (!v) {
                *ret = NULL;
                return 0;
        }
        *ret = v;
        return export_list(v, n + 8);
}

static void exports_release(struct orion_export **v, size_t n) {
        for (size_t i = 0; i < n; i++)
                export_unref(v[i]);
        free(v);
}

static int verb_status(struct json_object *args, struct json_object **ret, struct orion_error *err) {
        struct json_object *o = json_object_new_object();
        json_object_object_add(o, "version", json_object_new_string(ORION_VERSION));
        json_object_object_add(o, "pid", json_object_new_int((int) getpid()));
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        json_object_object_add(o, "uptime", json_object_new_int64(ts.tv_sec - g_ctx.start_time));
        if (g_ctx.cfg && g_ctx.cfg->state_dir)
                json_object_object_add(o, "state-dir", json_object_new_string(g_ctx.cfg->state_dir));
        if (g_ctx.control_socket)
                json_object_object_add(o, "control-socket", json_object_new_string(g_ctx.control_socket));
        json_object_object_add(o, "plugin-dir", json_object_new_string(registry_plugin_dir()));

        struct json_object *drivers = json_object_new_object();
        for (size_t i = 0; export_drivers[i]; i++) {
                struct json_object *d = json_object_new_object();
                if (export_drivers[i]->status)
                        export_drivers[i]->status(d);
                json_object_object_add(drivers, export_drivers[i]->name, d);
        }
        json_object_object_add(o, "drivers", drivers);

        struct orion_bdev **nodes;
        size_t n = nodes_snapshot(&nodes);
        unsigned count[3] = { 0 };
        struct json_object *jn = json_object_new_array();
        for (size_t i = 0; i < n; i++) {
                struct json_object *j = json_object_new_object();
                pthread_mutex_lock(&nodes[i]->lock);
                enum orion_health h = nodes[i]->health;
                const char *msg = nodes[i]->health_msg;
                json_object_object_add(j, "name", json_object_new_string(nodes[i]->name));
                json_object_object_add(j, "type", json_object_new_string(nodes[i]->type->name));
                json_object_object_add(j, "size", json_object_new_uint64(orion_bdev_size(nodes[i])));
                json_object_object_add(j, "health", json_object_new_string(h < 3 ? health_words[h] : "?"));
                if (msg)
                        json_object_object_add(j, "health-message", json_object_new_string(msg));
                pthread_mutex_unlock(&nodes[i]->lock);
                if (h < 3)
                        count[h]++;
                json_object_array_add(jn, j);
        }
        free(nodes);
        json_object_object_add(o, "nodes", jn);
        json_object_object_add(o, "health", json_object_new_string(count[2] ? "failed" : count[1] ? "degraded" : "ok"));

        struct orion_export **exps;
        size_t ne = exports_snapshot(&exps);
        struct json_object *je = json_object_new_array();
        for (size_t i = 0; i < ne; i++)
                json_object_array_add(je, export_to_json(exps[i]));
        exports_release(exps, ne);
        json_object_object_add(o, "exports", je);
        *ret = o;
        return 0;
}

static int verb_node_list(struct json_object *args, struct json_object **ret, struct orion_error *err) {
        struct orion_bdev **nodes;
        size_t n = nodes_snapshot(&nodes);
        struct json_object *a = json_object_new_array();
        for (size_t i = 0; i < n; i++) {
                struct json_object *j = json_object_new_object();
                graph_node_info(nodes[i], j, false);
                json_object_array_add(a, j);
        }
        free(nodes);
        *ret = a;
        return 0;
}

static int find_node(struct json_object *args, const char *key, struct orion_bdev **ret, struct orion_error *err) {
        const char *name;
        int r = arg_string(args, key, true, &name, err);
        if (r < 0)
                return r;
        *ret = graph_node_find(name);
        if (!*ret)
                return orion_error_set(err, ENOENT, "no node named '%s'", name);
        return 0;
}

static int verb_node_info(struct json_object *args, struct json_object **ret, struct orion_error *err) {
        struct orion_bdev *b;
        bool stats;
        int r = find_node(args, "name", &b, err);
        if (r < 0 || (r = arg_bool(args, "stats", false, &stats, err)) < 0)
                return r;
        struct json_object *o = json_object_new_object();
        graph_node_info(b, o, stats);
        *ret = o;
        return 0;
}

static int verb_node_add(struct json_object *args, struct json_object **ret, struct orion_error *err) {
        const char *name, *type;
        struct json_object *params;
        int r;
        if ((r = arg_string(args, "name", true, &name, err)) < 0 || (r = arg_string(args, "type", true, &type, err)) < 0 ||
            (r = arg_object(args, "params", &params, err)) < 0)
                return r;
        _cleanup_(json_object_putp) struct json_object *empty = params ? NULL : json_object_new_object();
        struct orion_bdev *b;
        r = graph_node_add(name, type, params ? params : empty, &b, err);
        if (r < 0)
                return r;
        struct json_object *o = json_object_new_object();
        graph_node_info(b, o, false);
        *ret = o;
        return 0;
}

static int verb_node_remove(struct json_object *args, struct json_object **ret, struct orion_error *err) {
        const char *name;
        int r = arg_string(args, "name", true, &name, err);
        if (r < 0)
                return r;
        return graph_node_remove(name, err);
}

static int verb_node_ctl(struct json_object *args, struct json_object **ret, struct orion_error *err) {
        struct orion_bdev *b;
        const char *verb;
        struct json_object *cargs;
        int r;
        if ((r = find_node(args, "node", &b, err)) < 0 || (r = arg_string(args, "verb", true, &verb, err)) < 0 ||
            (r = arg_object(args, "args", &cargs, err)) < 0)
                return r;
        _cleanup_(json_object_putp) struct json_object *empty = cargs ? NULL : json_object_new_object();
        struct json_object *reply = NULL;
        r = orion_bdev_ctl(b, verb, cargs ? cargs : empty, &reply, err);
        if (r < 0) {
                json_object_put(reply);
                if (!orion_error_is_set(err))
                        orion_error_set(err, -r, "node '%s': %s failed: %s", b->name, verb, strerror(-r));
                return r;
        }
        *ret = reply;
        return 0;
}

static int verb_export_list(struct json_object *args, struct json_object **ret, struct orion_error *err) {
        struct orion_export **exps;
        size_t n = exports_snapshot(&exps);
        struct json_object *a = json_object_new_array();
        for (size_t i = 0; i < n; i++)
                json_object_array_add(a, export_to_json(exps[i]));
        exports_release(exps, n);
        *ret = a;
        return 0;
}

/* "protocols" as "nbd fuse", "nbd,fuse" or ["nbd","fuse"]. Absent: nbd. */
static int arg_protocols(struct json_object *args, uint32_t *ret, struct orion_error *err) {
        struct json_object *v = NULL;
        *ret = PROTO_NBD;
        if (!json_object_object_get_ex(args, "protocols", &v) || json_object_is_type(v, json_type_null))
                return 0;
        if (json_object_is_type(v, json_type_string)) {
                if (parse_protocols(json_object_get_string(v), ret) < 0)
                        return orion_error_set(err, EINVAL, "invalid protocols '%s' (nbd, fuse, iscsi)",
                                               json_object_get_string(v));
                return 0;
        }
        if (!json_object_is_type(v, json_type_array))
                return orion_error_set(err, EINVAL, "argument 'protocols' must be a string or an array");
        uint32_t all = 0;
        for (size_t i = 0; i < json_object_array_length(v); i++) {
                struct json_object *w = json_object_array_get_idx(v, i);
                uint32_t p;
                if (!json_object_is_type(w, json_type_string) || parse_protocols(json_object_get_string(w), &p) < 0)
                        return orion_error_set(err, EINVAL, "invalid protocol '%s' (nbd, fuse, iscsi)",
                                               json_object_get_string(w));
                all |= p;
        }
        if (!all)
                return orion_error_set(err, EINVAL, "argument 'protocols' is empty");
        *ret = all;
        return 0;
}

static int verb_export_add(struct json_object *args, struct json_object **ret, struct orion_error *err) {
        const char *name, *node, *desc;
        struct json_object *opts_in;
        uint32_t protocols;
        bool ro;
        int r;
        if ((r = arg_string(args, "name", true, &name, err)) < 0 || (r = arg_string(args, "node", true, &node, err)) < 0 ||
            (r = arg_string(args, "description", false, &desc, err)) < 0 ||
            (r = arg_bool(args, "read-only", false, &ro, err)) < 0 || (r = arg_protocols(args, &protocols, err)) < 0 ||
            (r = arg_object(args, "opts", &opts_in, err)) < 0)
                return r;
        /* Protocol keys may come in "opts" or at the top level (as in the config file). */
        _cleanup_(json_object_putp) struct json_object *opts = json_object_new_object();
        if (!opts)
                return orion_error_set(err, ENOMEM, "out of memory");
        if (opts_in) {
                json_object_object_foreach(opts_in, k1, v1) {
                        if (!is_proto_key(k1))
                                return orion_error_set(err, EINVAL,
                                                       "export option '%.64s' is not a nbd-*, fuse-* or iscsi-* key", k1);
                        json_object_object_add(opts, k1, json_object_get(v1));
                }
        }
        json_object_object_foreach(args, k2, v2) {
                if (is_proto_key(k2))
                        json_object_object_add(opts, k2, json_object_get(v2));
        }
        r = export_add(name, node, protocols, ro, desc, opts, err);
        if (r < 0)
                return r;
        struct orion_export *e = export_find(name);
        if (e) {
                *ret = export_to_json(e);
                export_unref(e);
        }
        return 0;
}

static int verb_export_remove(struct json_object *args, struct json_object **ret, struct orion_error *err) {
        const char *name;
        int r = arg_string(args, "name", true, &name, err);
        if (r < 0)
                return r;
        return export_remove(name, err);
}

static int verb_stats(struct json_object *args, struct json_object **ret, struct orion_error *err) {
        const char *name;
        int r = arg_string(args, "name", false, &name, err);
        if (r < 0)
                return r;
        struct orion_bdev **nodes;
        size_t n = nodes_snapshot(&nodes);
        struct json_object *o = json_object_new_object();
        bool found = false;
        for (size_t i = 0; i < n; i++) {
                if (name && strcmp(name, nodes[i]->name) != 0)
                        continue;
                struct json_object *info = json_object_new_object(), *st = NULL;
                graph_node_info(nodes[i], info, true);
                if (json_object_object_get_ex(info, "stats", &st))
                        json_object_object_add(o, nodes[i]->name, json_object_get(st));
                json_object_put(info);
                found = true;
        }
        free(nodes);
        if (name && !found) {
                json_object_put(o);
                return orion_error_set(err, ENOENT, "no node named '%s'", name);
        }
        *ret = o;
        return 0;
}

static int verb_format(struct json_object *args, struct json_object **ret, struct orion_error *err) {
        const char *type;
        struct json_object *params, *fargs;
        bool force;
        int r;
        if ((r = arg_string(args, "type", true, &type, err)) < 0 || (r = arg_object(args, "params", &params, err)) < 0 ||
            (r = arg_object(args, "args", &fargs, err)) < 0 || (r = arg_bool(args, "force", false, &force, err)) < 0)
                return r;
        const struct orion_plugin *p = registry_find(type, err);
        if (!p)
                return -(orion_error_is_set(err) ? err->code : ENOENT);
        if (!p->format)
                return orion_error_set(err, EOPNOTSUPP, "type '%s' has no on-disk format", type);
        _cleanup_(json_object_putp) struct json_object *empty_p = json_object_new_object();
        _cleanup_(json_object_putp) struct json_object *empty_a = json_object_new_object();
        struct orion_params *pp = params_new(p, params ? params : empty_p, err);
        if (!pp)
                return -(orion_error_is_set(err) ? err->code : EINVAL);
        r = p->format(pp, force, fargs ? fargs : empty_a, err);
        params_free(pp);
        if (r < 0) {
                if (!orion_error_is_set(err))
                        orion_error_set(err, -r, "format (%s) failed: %s", type, strerror(-r));
                return r;
        }
        struct json_object *o = json_object_new_object();
        json_object_object_add(o, "type", json_object_new_string(type));
        json_object_object_add(o, "formatted", json_object_new_boolean(true));
        *ret = o;
        return 0;
}

/* Ask every type that can recognise a format. */
static int inspect_node(struct orion_bdev *b, struct json_object *out, struct orion_error *err) {
        registry_load_all();
        const struct orion_plugin *types[256];
        size_t n = registry_list(types, ELEMENTSOF(types));
        n = MIN(n, ELEMENTSOF(types));
        struct json_object *found = json_object_new_array();
        json_object_object_add(out, "size", json_object_new_uint64(orion_bdev_size(b)));
        json_object_object_add(out, "block-size", json_object_new_int((int) orion_bdev_block_size(b)));
        for (size_t i = 0; i < n; i++) {
                if (!types[i]->inspect)
                        continue;
                struct json_object *d = json_object_new_object();
                int r = types[i]->inspect(b, d);
                if (r < 0) {
                        json_object_put(d);
                        json_object_put(found);
                        return orion_error_set(err, -r, "inspect (%s): %s", types[i]->name, strerror(-r));
                }
                if (r > 0) {
                        json_object_object_add(d, "type", json_object_new_string(types[i]->name));
                        json_object_array_add(found, d);
                } else
                        json_object_put(d);
        }
        json_object_object_add(out, "formats", found);
        return 0;
}

static int verb_inspect(struct json_object *args, struct json_object **ret, struct orion_error *err) {
        const char *target;
        int r = arg_string(args, "target", true, &target, err);
        if (r < 0)
                return r;
        _cleanup_(json_object_putp) struct json_object *o = json_object_new_object();
        json_object_object_add(o, "target", json_object_new_string(target));
        struct orion_bdev *b = graph_node_find(target);
        if (b) {
                json_object_object_add(o, "node", json_object_new_string(b->name));
                r = inspect_node(b, o, err);
        } else {
                /* Not a node: a file or device path, opened read-only outside the graph. */
                struct stat st;
                if (!strchr(target, '/') || stat(target, &st) < 0)
                        return orion_error_set(err, ENOENT, "'%s' is neither a node nor an existing path", target);
                if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
                        return orion_error_set(err, EINVAL, "'%s' is not a regular file or block device", target);
                const struct orion_plugin *file = registry_find("file", err);
                if (!file)
                        return -(orion_error_is_set(err) ? err->code : ENOENT);
                _cleanup_(json_object_putp) struct json_object *p = json_object_new_object();
                json_object_object_add(p, "path", json_object_new_string(target));
                json_object_object_add(p, "read-only", json_object_new_string("on"));
                r = node_open_detached("inspect", file, p, &b, err);
                if (r < 0)
                        return r;
                json_object_object_add(o, "path", json_object_new_string(target));
                r = inspect_node(b, o, err);
                node_close(b);
        }
        if (r < 0)
                return r;
        *ret = TAKE_PTR(o);
        return 0;
}

static int verb_types(struct json_object *args, struct json_object **ret, struct orion_error *err) {
        const char *name;
        int r = arg_string(args, "name", false, &name, err);
        if (r < 0)
                return r;
        if (name) {
                const struct orion_plugin *p = registry_find(name, err);
                if (!p)
                        return -(orion_error_is_set(err) ? err->code : ENOENT);
                *ret = registry_describe(p);
                return 0;
        }
        registry_load_all();
        const struct orion_plugin *types[256];
        size_t n = MIN(registry_list(types, ELEMENTSOF(types)), ELEMENTSOF(types));
        struct json_object *a = json_object_new_array();
        for (size_t i = 0; i < n; i++)
                json_object_array_add(a, registry_describe(types[i]));
        *ret = a;
        return 0;
}

static int verb_shutdown(struct json_object *args, struct json_object **ret, struct orion_error *err) {
        if (!g_ctx.shutdown)
                return orion_error_set(err, EOPNOTSUPP, "shutdown is not available here");
        return 0;
}

/* ---- Dispatch ------------------------------------------------------------------------------ */
enum lock_mode { LOCK_NONE, LOCK_READ, LOCK_WRITE };

struct verb {
        const char *name;
        int (*fn)(struct json_object *args, struct json_object **ret, struct orion_error *err);
        enum lock_mode lock;
        const char *keys[8]; /* accepted argument keys */
        bool proto_keys;     /* also nbd-* fuse-* iscsi-* */
};

static const struct verb verbs[] = {
        { "status", verb_status, LOCK_READ, { NULL }, false },
        { "node-list", verb_node_list, LOCK_READ, { NULL }, false },
        { "node-info", verb_node_info, LOCK_READ, { "name", "stats" }, false },
        { "node-add", verb_node_add, LOCK_WRITE, { "name", "type", "params" }, false },
        { "node-remove", verb_node_remove, LOCK_WRITE, { "name" }, false },
        { "node-ctl", verb_node_ctl, LOCK_READ, { "node", "verb", "args" }, false },
        { "export-list", verb_export_list, LOCK_READ, { NULL }, false },
        { "export-add", verb_export_add, LOCK_WRITE,
          { "name", "node", "protocols", "read-only", "description", "opts" }, true },
        { "export-remove", verb_export_remove, LOCK_WRITE, { "name" }, false },
        { "stats", verb_stats, LOCK_READ, { "name" }, false },
        { "format", verb_format, LOCK_WRITE, { "type", "params", "args", "force" }, false },
        { "inspect", verb_inspect, LOCK_READ, { "target" }, false },
        { "types", verb_types, LOCK_READ, { "name" }, false },
        { "shutdown", verb_shutdown, LOCK_NONE, { NULL }, false },
};

static const struct verb *verb_find(const char *cmd) {
        for (size_t i = 0; cmd && i < ELEMENTSOF(verbs); i++)
                if (strcmp(verbs[i].name, cmd) == 0)
                        return &verbs[i];
        return NULL;
}

bool control_verb_known(const char *cmd) {
        return verb_find(cmd) != NULL;
}

bool control_verb_is_readonly(const char *cmd) {
        const struct verb *v = verb_find(cmd);
        /* node-ctl and inspect take the read lock but may write (a ctl verb, a plugin's probe). */
        return v && v->lock == LOCK_READ && strcmp(cmd, "node-ctl") != 0 && strcmp(cmd, "inspect") != 0;
}

int control_dispatch(const struct control_request *req, struct json_object **ret_result, struct orion_error *err) {
        *ret_result = NULL;
        const struct verb *v = verb_find(req->cmd);
        if (!v)
                return orion_error_set(err, EOPNOTSUPP, "unknown command '%.64s'", req->cmd);
        int r = check_keys(v->name, req->args, v->keys, v->proto_keys, err);
        if (r < 0)
                return r;
        if (v->lock == LOCK_READ)
                pthread_rwlock_rdlock(&g_ctl_lock);
        else if (v->lock == LOCK_WRITE)
                pthread_rwlock_wrlock(&g_ctl_lock);
        struct orion_error lerr = { 0 };
        r = v->fn(req->args, ret_result, &lerr);
        if (v->lock != LOCK_NONE)
                pthread_rwlock_unlock(&g_ctl_lock);
        if (r < 0) {
                json_object_put(*ret_result);
                *ret_result = NULL;
                if (!lerr.code)
                        orion_error_set(&lerr, -r, "%s failed: %s", v->name, strerror(-r));
                orion_error_set(err, lerr.code, "%s", lerr.msg);
                return -lerr.code;
        }
        return 0;
}

static char *reply_text(struct json_object *reply) {
        const char *s = json_object_to_json_string_ext(reply, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
        return s ? strdup(s) : NULL;
}

char *control_handle_line_ex(const char *line, size_t len, bool *ret_shutdown) {
        struct control_request req;
        struct orion_error err = { 0 };
        struct json_object *result = NULL;
        *ret_shutdown = false;
        int r = control_parse_request(line, len, &req, &err);
        if (r >= 0) {
                orion_debug("control: %s", req.cmd);
                r = control_dispatch(&req, &result, &err);
        }
        struct json_object *reply = json_object_new_object();
        if (!reply) {
                json_object_put(result);
                control_request_done(&req);
                return NULL;
        }
        if (req.id)
                json_object_object_add(reply, "id", json_object_get(req.id));
        if (r >= 0) {
                json_object_object_add(reply, "ok", json_object_new_boolean(true));
                json_object_object_add(reply, "result", result);
                *ret_shutdown = strcmp(req.cmd, "shutdown") == 0;
        } else {
                json_object_object_add(reply, "ok", json_object_new_boolean(false));
                json_object_object_add(reply, "errno", json_object_new_int(err.code ? err.code : -r));
                json_object_object_add(reply, "error", json_object_new_string(err.msg));
        }
        control_request_done(&req);
        char *text = reply_text(reply);
        json_object_put(reply);
        return text;
}

char *control_handle_line(const char *line, size_t len) {
        bool shut;
        char *text = control_handle_line_ex(line, len, &shut);
        if (shut && g_ctx.shutdown)
                g_ctx.shutdown(g_ctx.userdata);
        return text;
}
