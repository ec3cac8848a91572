/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Node parameters: validated against the type's table before open, then read by accessors. */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "common/cleanup.h"
#include "core/core.h"

struct param_value {
        const struct orion_param *def;
        bool set;                 /* given by the user */
        const char *text;         /* effective text (user's or default), owned by kv or the table */
        uint64_t u;
        int64_t i;
        bool b;
        struct orion_bdev **nodes;
        size_t nnodes;
};

struct orion_params {
        const struct orion_plugin *type;
        struct json_object *kv;   /* the values as given, all strings */
        size_t n;
        struct param_value v[];
};

static const struct orion_param *table_find(const struct orion_plugin *t, const char *name) {
        for (const struct orion_param *q = t->params; q && q->name; q++)
                if (strcmp(q->name, name) == 0)
                        return q;
        return NULL;
}

static bool enum_has(const char *choices, const char *word) {
        size_t n = strlen(word);
        for (const char *c = choices; c && *c;) {
                while (*c == ' ')
                        c++;
                const char *e = strchr(c, ' ');
                size_t len = e ? (size_t) (e - c) : strlen(c);
                if (len == n && n && strncmp(c, word, n) == 0)
                        return true;
                c += len;
        }
        return false;
}

static int parse_nodes(struct param_value *v, const char *text, struct orion_error *err) {
        _cleanup_free_ char *copy = strdup(text);
        if (!copy)
                return -ENOMEM;
        char *save = NULL;
        for (char *w = strtok_r(copy, " \t,", &save); w; w = strtok_r(NULL, " \t,", &save)) {
                struct orion_bdev *b = graph_node_find(w);
                if (!b)
                        return orion_error_set(err, ENOENT, "parameter '%s': no node named '%s'", v->def->name, w);
                for (size_t k = 0; k < v->nnodes; k++)
                        if (v->nodes[k] == b)
                                return orion_error_set(err, EINVAL, "parameter '%s': node '%s' named twice",
                                                       v->def->name, w);
                struct orion_bdev **n = realloc(v->nodes, (v->nnodes + 1) * sizeof *n);
                if (!n)
                        return -ENOMEM;
                v->nodes = n;
                v->nodes[v->nnodes++] = b;
        }
        if (v->def->type == ORION_PARAM_NODE && v->nnodes != 1)
                return orion_error_set(err, EINVAL, "parameter '%s' takes exactly one node name", v->def->name);
        return 0;
}

static int parse_value(struct param_value *v, const char *text, struct orion_error *err) {
        const struct orion_param *d = v->def;
        int r;
        v->text = text;
        switch (d->type) {
        case ORION_PARAM_STRING:
        case ORION_PARAM_PATH:
                if (d->type == ORION_PARAM_PATH && !*text)
                        return orion_error_set(err, EINVAL, "parameter '%s': empty path", d->name);
                return 0;
        case ORION_PARAM_SIZE:
                r = parse_size(text, &v->u);
                if (r < 0)
                        return orion_error_set(err, -r, "parameter '%s': '%s' is not a size (e.g. 4096, 64K, 10G)",
                                               d->name, text);
                return 0;
        case ORION_PARAM_INT:
                r = parse_int64(text, &v->i);
                if (r < 0)
                        return orion_error_set(err, -r, "parameter '%s': '%s' is not an integer", d->name, text);
                return 0;
        case ORION_PARAM_BOOL:
                r = parse_bool(text);
                if (r < 0)
                        return orion_error_set(err, EINVAL, "parameter '%s': '%s' is not on/off", d->name, text);
                v->b = r;
                return 0;
        case ORION_PARAM_ENUM:
                if (!enum_has(d->choices, text))
                        return orion_error_set(err, EINVAL, "parameter '%s': '%s' is not one of: %s", d->name, text,
                                               d->choices ? d->choices : "");
                return 0;
        case ORION_PARAM_NODE:
        case ORION_PARAM_NODES:
                return parse_nodes(v, text, err);
        default:
                return orion_error_set(err, EINVAL, "parameter '%s' has an unknown type", d->name);
        }
}

/* JSON scalar → string, so config text and control JSON are handled alike. */
static const char *value_text(struct json_object *val) {
        if (json_object_is_type(val, json_type_array))
                return NULL;
        if (json_object_is_type(val, json_type_object))
                return NULL;
        return json_object_get_string(val);
}

struct orion_params *params_new(const struct orion_plugin *t, struct json_object *kv, struct orion_error *err) {
        size_t n = 0;
        for (const struct orion_param *q = t->params; q && q->name; q++)
                n++;
        struct orion_params *p = calloc(1, sizeof *p + n * sizeof p->v[0]);
        if (!p) {
                orion_error_set(err, ENOMEM, "out of memory");
                return NULL;
        }
        p->type = t;
        p->n = n;
        p->kv = json_object_new_object();
        if (!p->kv)
                goto fail_nomem;
        for (size_t k = 0; k < n; k++)
                p->v[k].def = &t->params[k];

        /* Unknown keys first: a typo must not be silently ignored. */
        if (kv) {
                json_object_object_foreach(kv, key, val) {
                        const struct orion_param *q = table_find(t, key);
                        if (!q) {
                                orion_error_set(err, EINVAL, "node type '%s' has no parameter '%s'", t->name, key);
                                goto fail;
                        }
                        /* Arrays of node names are accepted from JSON and joined. */
                        if (json_object_is_type(val, json_type_array)) {
                                size_t len = json_object_array_length(val), tot = 1;
                                for (size_t k = 0; k < len; k++)
                                        tot += strlen(json_object_get_string(json_object_array_get_idx(val, k))) + 1;
                                _cleanup_free_ char *joined = calloc(1, tot);
                                if (!joined)
                                        goto fail_nomem;
                                size_t pos = 0;
                                for (size_t k = 0; k < len; k++) {
                                        const char *w = json_object_get_string(json_object_array_get_idx(val, k));
                                        size_t wl = strlen(w);
                                        if (k)
                                                joined[pos++] = ' ';
                                        memcpy(joined + pos, w, wl);
                                        pos += wl;
                                }
                                joined[pos] = 0;
                                json_object_object_add(p->kv, key, json_object_new_string(joined));
                                continue;
                        }
                        const char *text = value_text(val);
                        if (!text) {
                                orion_error_set(err, EINVAL, "parameter '%s' must be a string or a number", key);
                                goto fail;
                        }
                        json_object_object_add(p->kv, key, json_object_new_string(text));
                }
        }

        for (size_t k = 0; k < n; k++) {
                struct param_value *v = &p->v[k];
                struct json_object *val;
                const char *text = NULL;
                if (json_object_object_get_ex(p->kv, v->def->name, &val)) {
                        text = json_object_get_string(val);
                        v->set = true;
                } else if (v->def->def)
                        text = v->def->def;
                else if (!v->def->optional) {
                        orion_error_set(err, EINVAL, "node type '%s' needs parameter '%s' (%s)", t->name,
                                        v->def->name, v->def->help ? v->def->help : "");
                        goto fail;
                }
                if (text && parse_value(v, text, err) < 0) {
                        if (!orion_error_is_set(err))
                                orion_error_set(err, ENOMEM, "out of memory");
                        goto fail;
                }
        }
        return p;

fail_nomem:
        orion_error_set(err, ENOMEM, "out of memory");
fail:
        params_free(p);
        return NULL;
}

struct orion_params *params_free(struct orion_params *p) {
        if (!p)
                return NULL;
        for (size_t k = 0; k < p->n; k++)
                free(p->v[k].nodes);
        json_object_put(p->kv);
        free(p);
        return NULL;
}

size_t params_children(const struct orion_params *p, struct orion_bdev ***ret) {
        size_t total = 0;
        for (size_t k = 0; k < p->n; k++)
                total += p->v[k].nnodes;
        *ret = NULL;
        if (!total)
                return 0;
        struct orion_bdev **a = calloc(total, sizeof *a);
        if (!a)
                return (size_t) -1;
        size_t i = 0;
        for (size_t k = 0; k < p->n; k++)
                for (size_t j = 0; j < p->v[k].nnodes; j++)
                        a[i++] = p->v[k].nodes[j];
        *ret = a;
        return total;
}

struct json_object *params_json(const struct orion_params *p) {
        return p->kv;
}

static const struct param_value *get(const struct orion_params *p, const char *name) {
        for (size_t k = 0; k < p->n; k++)
                if (strcmp(p->v[k].def->name, name) == 0)
                        return &p->v[k];
        orion_error("plugin '%s' asked for undeclared parameter '%s'", p->type->name, name);
        assert(!"undeclared parameter");
        abort();
}

const char *orion_param_str(const struct orion_params *p, const char *name) {
        return get(p, name)->text;
}

uint64_t orion_param_size(const struct orion_params *p, const char *name) {
        return get(p, name)->u;
}

int64_t orion_param_int(const struct orion_params *p, const char *name) {
        return get(p, name)->i;
}

bool orion_param_bool(const struct orion_params *p, const char *name) {
        return get(p, name)->b;
}

bool orion_param_is_set(const struct orion_params *p, const char *name) {
        return get(p, name)->set;
}

struct orion_bdev *orion_param_node(const struct orion_params *p, const char *name) {
        const struct param_value *v = get(p, name);
        return v->nnodes ? v->nodes[0] : NULL;
}

size_t orion_param_nodes_count(const struct orion_params *p, const char *name) {
        return get(p, name)->nnodes;
}

struct orion_bdev *orion_param_nodes_get(const struct orion_params *p, const char *name, size_t i) {
        const struct param_value *v = get(p, name);
        return i < v->nnodes ? v->nodes[i] : NULL;
}
