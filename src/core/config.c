/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* oriond.conf: INI (inih) with a [daemon] section, [node NAME] and [export NAME] sections. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ini.h>
#include <json-c/json.h>

#include "common/cleanup.h"
#include "core/core.h"

struct parse_state {
        struct daemon_config *cfg;
        struct orion_error *err;
        char section[256];   /* last section seen, to detect a repeated section */
};

static int set_str(char **dst, const char *v) {
        char *s = strdup(v);
        if (!s)
                return -ENOMEM;
        free(*dst);
        *dst = s;
        return 0;
}

static void free_strv(char **v) {
        for (size_t i = 0; v && v[i]; i++)
                free(v[i]);
        free(v);
}

static char **split_words(const char *s) {
        _cleanup_free_ char *copy = strdup(s);
        if (!copy)
                return NULL;
        size_t n = 0;
        char **v = calloc(1, sizeof *v);
        char *save = NULL;
        for (char *w = strtok_r(copy, " \t", &save); v && w; w = strtok_r(NULL, " \t", &save)) {
                char **nv = realloc(v, (n + 2) * sizeof *nv);
                if (!nv || !(nv[n] = strdup(w))) {
                        free_strv(nv ? nv : v);
                        return NULL;
                }
                v = nv;
                v[++n] = NULL;
        }
        return v;
}

void config_init(struct daemon_config *cfg) {
        memset(cfg, 0, sizeof *cfg);
        cfg->state_dir = strdup(DEFAULT_STATE_DIR);
        cfg->control_socket = strdup(DEFAULT_CONTROL_SOCKET);
        cfg->nbd_listen = split_words(DEFAULT_NBD_LISTEN);
        cfg->iscsi_listen = strdup(DEFAULT_ISCSI_LISTEN);
        cfg->fuse_mountpoint = strdup(DEFAULT_FUSE_MOUNTPOINT);
        cfg->opts = json_object_new_object();
}

void config_done(struct daemon_config *cfg) {
        free(cfg->state_dir);
        free(cfg->control_socket);
        free_strv(cfg->nbd_listen);
        free(cfg->iscsi_listen);
        free(cfg->fuse_mountpoint);
        free(cfg->plugin_dir);
        json_object_put(cfg->opts);
        for (size_t i = 0; i < cfg->nnodes; i++) {
                free(cfg->nodes[i].name);
                free(cfg->nodes[i].type);
                json_object_put(cfg->nodes[i].params);
        }
        free(cfg->nodes);
        for (size_t i = 0; i < cfg->nexports; i++) {
                free(cfg->exports[i].name);
                free(cfg->exports[i].node);
                free(cfg->exports[i].description);
                json_object_put(cfg->exports[i].opts);
        }
        free(cfg->exports);
        memset(cfg, 0, sizeof *cfg);
}

const char *config_opt(const struct daemon_config *cfg, const char *key) {
        struct json_object *v;
        if (!cfg || !cfg->opts || !json_object_object_get_ex(cfg->opts, key, &v))
                return NULL;
        return json_object_get_string(v);
}

static bool driver_key(const char *k) {
        return strncmp(k, "nbd-", 4) == 0 || strncmp(k, "iscsi-", 6) == 0 || strncmp(k, "fuse-", 5) == 0;
}

static int daemon_key(struct parse_state *st, const char *name, const char *value) {
        struct daemon_config *cfg = st->cfg;
        if (strcmp(name, "state-dir") == 0)
                return set_str(&cfg->state_dir, value);
        if (strcmp(name, "control-socket") == 0)
                return set_str(&cfg->control_socket, value);
        if (strcmp(name, "iscsi-listen") == 0)
                return set_str(&cfg->iscsi_listen, value);
        if (strcmp(name, "fuse-mountpoint") == 0)
                return set_str(&cfg->fuse_mountpoint, value);
        if (strcmp(name, "plugin-dir") == 0)
                return set_str(&cfg->plugin_dir, value);
        if (strcmp(name, "nbd-listen") == 0) {
                char **v = split_words(value);
                if (!v)
                        return -ENOMEM;
                free_strv(cfg->nbd_listen);
                cfg->nbd_listen = v;
                return 0;
        }
        if (strcmp(name, "workers") == 0) {
                int64_t w;
                if (parse_int64(value, &w) < 0 || w < 0 || w > 1024)
                        return orion_error_set(st->err, EINVAL, "workers = '%s': expected 0..1024", value);
                cfg->workers = (uint32_t) w;
                return 0;
        }
        if (driver_key(name)) {
                json_object_object_add(cfg->opts, name, json_object_new_string(value));
                return 0;
        }
        return orion_error_set(st->err, EINVAL, "unknown key '%s' in [daemon]", name);
}

static struct config_node *find_node(struct daemon_config *cfg, const char *name) {
        for (size_t i = 0; i < cfg->nnodes; i++)
                if (strcmp(cfg->nodes[i].name, name) == 0)
                        return &cfg->nodes[i];
        return NULL;
}

static struct config_export *find_export(struct daemon_config *cfg, const char *name) {
        for (size_t i = 0; i < cfg->nexports; i++)
                if (strcmp(cfg->exports[i].name, name) == 0)
                        return &cfg->exports[i];
        return NULL;
}

static struct config_node *new_node(struct parse_state *st, const char *name) {
        struct daemon_config *cfg = st->cfg;
        if (!valid_name(name, 64)) {
                orion_error_set(st->err, EINVAL, "invalid node name '%s'", name);
                return NULL;
        }
        struct config_node *n = realloc(cfg->nodes, (cfg->nnodes + 1) * sizeof *n);
        if (!n)
                return NULL;
        cfg->nodes = n;
        n = &cfg->nodes[cfg->nnodes];
        memset(n, 0, sizeof *n);
        n->name = strdup(name);
        n->params = json_object_new_object();
        if (!n->name || !n->params) {
                free(n->name);
                json_object_put(n->params);
                return NULL;
        }
        cfg->nnodes++;
        return n;
}

static struct config_export *new_export(struct parse_state *st, const char *name) {
        struct daemon_config *cfg = st->cfg;
        struct config_export *e = realloc(cfg->exports, (cfg->nexports + 1) * sizeof *e);
        if (!e)
                return NULL;
        cfg->exports = e;
        e = &cfg->exports[cfg->nexports];
        memset(e, 0, sizeof *e);
        e->name = strdup(name);
        e->opts = json_object_new_object();
        e->protocols = PROTO_NBD;
        if (!e->name || !e->opts) {
                free(e->name);
                json_object_put(e->opts);
                return NULL;
        }
        cfg->nexports++;
        return e;
}

/* A repeated [node X] or [export X] header is an error; the same section continuing is not. */
static int section_begin(struct parse_state *st, const char *section, bool *ret_new) {
        *ret_new = strcmp(st->section, section) != 0;
        if (*ret_new)
                snprintf(st->section, sizeof st->section, "%s", section);
        return 0;
}

static int node_key(struct parse_state *st, const char *section, const char *name, const char *value) {
        const char *nn = section + 5;
        bool fresh;
        section_begin(st, section, &fresh);
        struct config_node *n = find_node(st->cfg, nn);
        if (fresh && n)
                return orion_error_set(st->err, EEXIST, "node '%s' is declared twice", nn);
        if (!n && !(n = new_node(st, nn)))
                return orion_error_is_set(st->err) ? -st->err->code : -ENOMEM;
        if (strcmp(name, "type") == 0) {
                if (n->type)
                        return orion_error_set(st->err, EINVAL, "node '%s': 'type' given twice", nn);
                return set_str(&n->type, value);
        }
        if (json_object_object_get_ex(n->params, name, NULL))
                return orion_error_set(st->err, EINVAL, "node '%s': '%s' given twice", nn, name);
        json_object_object_add(n->params, name, json_object_new_string(value));
        return 0;
}

static int export_key(struct parse_state *st, const char *section, const char *name, const char *value) {
        const char *en = section + 7;
        bool fresh;
        section_begin(st, section, &fresh);
        struct config_export *e = find_export(st->cfg, en);
        if (fresh && e)
                return orion_error_set(st->err, EEXIST, "export '%s' is declared twice", en);
        if (!e && !(e = new_export(st, en)))
                return -ENOMEM;
        if (strcmp(name, "node") == 0)
                return set_str(&e->node, value);
        if (strcmp(name, "protocols") == 0) {
                if (parse_protocols(value, &e->protocols) < 0)
                        return orion_error_set(st->err, EINVAL, "export '%s': protocols = '%s': expected nbd, fuse, iscsi",
                                               en, value);
                return 0;
        }
        if (strcmp(name, "read-only") == 0) {
                int b = parse_bool(value);
                if (b < 0)
                        return orion_error_set(st->err, EINVAL, "export '%s': read-only = '%s': expected on/off", en, value);
                e->readonly = b;
                return 0;
        }
        if (strcmp(name, "description") == 0)
                return set_str(&e->description, value);
        if (driver_key(name)) {
                json_object_object_add(e->opts, name, json_object_new_string(value));
                return 0;
        }
        return orion_error_set(st->err, EINVAL, "export '%s': unknown key '%s'", en, name);
}

static int handler(void *user, const char *section, const char *name, const char *value) {
        struct parse_state *st = user;
        int r;
        if (strcmp(section, "daemon") == 0) {
                section_begin(st, section, &(bool){ false });
                r = daemon_key(st, name, value);
        } else if (strncmp(section, "node ", 5) == 0)
                r = node_key(st, section, name, value);
        else if (strncmp(section, "export ", 7) == 0)
                r = export_key(st, section, name, value);
        else if (!*section)
                r = orion_error_set(st->err, EINVAL, "key '%s' outside any section", name);
        else
                r = orion_error_set(st->err, EINVAL, "unknown section [%s] (expected [daemon], [node NAME], [export NAME])",
                                    section);
        if (r < 0 && !orion_error_is_set(st->err))
                orion_error_set(st->err, -r, "out of memory");
        return r < 0 ? 0 : 1;
}

static int validate(struct daemon_config *cfg, struct orion_error *err) {
        for (size_t i = 0; i < cfg->nnodes; i++)
                if (!cfg->nodes[i].type)
                        return orion_error_set(err, EINVAL, "node '%s' has no 'type'", cfg->nodes[i].name);
        for (size_t i = 0; i < cfg->nexports; i++) {
                struct config_export *e = &cfg->exports[i];
                if (!e->node)
                        return orion_error_set(err, EINVAL, "export '%s' has no 'node'", e->name);
                if (!find_node(cfg, e->node))
                        return orion_error_set(err, ENOENT, "export '%s': no node named '%s' in the config", e->name,
                                               e->node);
        }
        return 0;
}

int config_parse_string(struct daemon_config *cfg, const char *text, struct orion_error *err) {
        struct orion_error lerr = { 0 };
        struct parse_state st = { .cfg = cfg, .err = &lerr };
        int line = ini_parse_string(text, handler, &st);
        if (line != 0) {
                if (lerr.code)
                        return orion_error_set(err, lerr.code, "line %d: %s", line, lerr.msg);
                return orion_error_set(err, EINVAL, "line %d: syntax error (expected [section] or key = value)", line);
        }
        int r = validate(cfg, &lerr);
        if (r < 0)
                return orion_error_set(err, lerr.code, "%s", lerr.msg);
        return 0;
}

int config_parse_file(struct daemon_config *cfg, const char *path, struct orion_error *err) {
        FILE *f = fopen(path, "re");
        if (!f)
                return orion_error_set(err, errno, "cannot open config '%s': %m", path);
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        FILE *m = open_memstream(&text, &len);
        if (!m) {
                fclose(f);
                return orion_error_set(err, ENOMEM, "out of memory");
        }
        char buf[65536];
        size_t n;
        while ((n = fread(buf, 1, sizeof buf, f)) > 0)
                fwrite(buf, 1, n, m);
        bool bad = ferror(f);
        fclose(f);
        fclose(m);
        if (bad)
                return orion_error_set(err, EIO, "cannot read config '%s'", path);
        if (len > 16 * 1024 * 1024)
                return orion_error_set(err, EFBIG, "config '%s' is larger than 16 MiB", path);
        if (memchr(text, 0, len))
                return orion_error_set(err, EINVAL, "config '%s' contains NUL bytes", path);
        struct orion_error lerr = { 0 };
        int r = config_parse_string(cfg, text, &lerr);
        if (r < 0)
                return orion_error_set(err, lerr.code, "%s: %s", path, lerr.msg);
        return 0;
}

int config_add_default(struct daemon_config *cfg, struct orion_error *err) {
        char path[4096];
        snprintf(path, sizeof path, "%s/vol0.img", cfg->state_dir);
        struct parse_state st = { .cfg = cfg, .err = err };
        if (node_key(&st, "node vol0", "type", "file") < 0 || node_key(&st, "node vol0", "path", path) < 0 ||
            node_key(&st, "node vol0", "size", "1G") < 0)
                return -(err && err->code ? err->code : ENOMEM);
        struct config_export *e = new_export(&st, "vol0");
        if (!e || set_str(&e->node, "vol0") < 0)
                return orion_error_set(err, ENOMEM, "out of memory");
        e->protocols = PROTO_NBD;
#if HAVE_FUSE
        /* The FUSE file too, where FUSE can work (root and /dev/fuse). */
        if (geteuid() == 0 && access("/dev/fuse", R_OK | W_OK) == 0)
                e->protocols |= PROTO_FUSE;
#endif
        return 0;
}
