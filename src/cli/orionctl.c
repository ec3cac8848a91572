/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* orionctl: the command-line client of oriond's control socket. Tables for people, --json for
 * scripts; every verb of the control protocol, plus `orionctl TYPE VERB NODE ...` sugar for
 * node-ctl and a progress bar for long jobs. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "cli/cli.h"
#include "common/cleanup.h"
#include "core/core.h" /* default paths only: orionctl does not link the core */

static const char *arg_socket = DEFAULT_CONTROL_SOCKET;
static bool arg_json;
static bool arg_force;
static bool arg_wait;
static bool arg_passphrase_prompt;
static bool arg_new_passphrase_prompt;
static bool arg_stats;
static bool arg_help;

static struct conn g_conn = { .fd = -1 };

struct verb {
        const char *name;
        const char *usage;
        const char *help;
        int min_args, max_args; /* positional words after the verb; -1 = any */
        int (*fn)(char **args, int n);
};
static const struct verb *verb_find(const char *name);

/* ---- Requests ------------------------------------------------------------------------------ */
static int connect_once(void) {
        if (g_conn.fd >= 0)
                return EXIT_OK;
        return conn_open(&g_conn, arg_socket);
}

/* Call a verb; on a refusal print "orionctl: MESSAGE" and return EXIT_FAILED. */
static int call(const char *cmd, struct json_object *args, struct json_object **ret) {
        int r = connect_once();
        if (r != EXIT_OK)
                return r;
        int code = 0;
        const char *msg = NULL;
        r = conn_call(&g_conn, cmd, args, ret, &code, &msg);
        if (r == EXIT_FAILED)
                fprintf(stderr, "orionctl: %s\n", msg);
        return r;
}

static struct json_object *get(struct json_object *o, const char *key) {
        struct json_object *v = NULL;
        return o && json_object_object_get_ex(o, key, &v) ? v : NULL;
}

static const char *get_str(struct json_object *o, const char *key) {
        struct json_object *v = get(o, key);
        return v ? json_object_get_string(v) : NULL;
}

static const char *size_str(struct json_object *o, const char *key, char *buf, size_t len) {
        struct json_object *v = get(o, key);
        return v ? human_size((uint64_t) json_object_get_int64(v), buf, len) : "-";
}

/* ---- Argument words ------------------------------------------------------------------------ */
/* key=value with a plausible key; anything else is a positional word. */
static bool split_kv(const char *arg, char *key, size_t keylen, const char **ret_value) {
        const char *eq = strchr(arg, '=');
        if (!eq || eq == arg || (size_t) (eq - arg) >= keylen)
                return false;
        for (const char *p = arg; p < eq; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '-' ||
                      *p == '_' || *p == '.'))
                        return false;
        memcpy(key, arg, (size_t) (eq - arg));
        key[eq - arg] = '\0';
        *ret_value = eq + 1;
        return true;
}

/* For ctl arguments: numbers and true/false become JSON numbers and booleans. */
static struct json_object *typed_value(const char *v) {
        if (strcmp(v, "true") == 0 || strcmp(v, "false") == 0)
                return json_object_new_boolean(v[0] == 't');
        if (*v) {
                char *end;
                errno = 0;
                long long i = strtoll(v, &end, 10);
                if (!*end && !errno)
                        return json_object_new_int64(i);
                double d = strtod(v, &end);
                if (!*end && !errno && (v[0] == '-' || v[0] == '.' || (v[0] >= '0' && v[0] <= '9')))
                        return json_object_new_double(d);
        }
        return json_object_new_string(v);
}

/* Fill obj from words. positional: where non key=value words go (NULL: they are an error). */
static int parse_words(char **words, int n, struct json_object *obj, struct json_object *positional, bool typed) {
        for (int i = 0; i < n; i++) {
                char key[128];
                const char *val;
                if (split_kv(words[i], key, sizeof key, &val))
                        json_object_object_add(obj, key, typed ? typed_value(val) : json_object_new_string(val));
                else if (positional)
                        json_object_array_add(positional, json_object_new_string(words[i]));
                else {
                        fprintf(stderr, "orionctl: expected key=value, got '%s'\n", words[i]);
                        return EXIT_USAGE;
                }
        }
        return EXIT_OK;
}

static int prompt_into(struct json_object *obj, const char *key, const char *prompt, bool verify) {
        char *p = read_passphrase(prompt, verify);
        if (!p)
                return EXIT_FAILED;
        json_object_object_add(obj, key, json_object_new_string(p));
        free_secret(p);
        return EXIT_OK;
}

static int add_passphrase(struct json_object *obj, const char *prompt, bool verify) {
        return arg_passphrase_prompt ? prompt_into(obj, "passphrase", prompt, verify) : EXIT_OK;
}

/* ---- Verbs ------------------------------------------------------------------------------- */
static int print_result(struct json_object *res) {
        if (arg_json)
                print_json(res);
        else if (res)
                print_json_human(res, 0);
        return EXIT_OK;
}

static void print_nodes_table(struct json_object *nodes) {
        struct table *t = table_new(8, "NAME", "TYPE", "SIZE", "BLOCK", "HEALTH", "CHILDREN", "PARENTS", "EXPORTS");
        for (size_t i = 0; i < json_object_array_length(nodes); i++) {
                struct json_object *n = json_object_array_get_idx(nodes, i);
                char sz[32], ch[512], bs[16];
                snprintf(bs, sizeof bs, "%d", json_object_get_int(get(n, "block-size")));
                table_add(t, get_str(n, "name"), get_str(n, "type"), size_str(n, "size", sz, sizeof sz), bs,
                          get_str(n, "health"), json_short(get(n, "children"), ch, sizeof ch), get_str(n, "parents"),
                          get_str(n, "exports"));
        }
        table_print(t);
}

static void print_exports_table(struct json_object *exps) {
        struct table *t = table_new(5, "NAME", "NODE", "PROTOCOLS", "ACCESS", "DESCRIPTION");
        for (size_t i = 0; i < json_object_array_length(exps); i++) {
                struct json_object *e = json_object_array_get_idx(exps, i);
                char pr[128];
                struct json_object *ro = get(e, "read-only");
                table_add(t, get_str(e, "name"), get_str(e, "node"), json_short(get(e, "protocols"), pr, sizeof pr),
                          ro && json_object_get_boolean(ro) ? "ro" : "rw", get_str(e, "description"));
        }
        table_print(t);
}

static int verb_status(char **args, int n) {
        _cleanup_(json_object_putp) struct json_object *res = NULL;
        int r = call("status", NULL, &res);
        if (r != EXIT_OK || arg_json)
                return r == EXIT_OK ? print_result(res) : r;
        long long up = json_object_get_int64(get(res, "uptime"));
        printf("oriond %s, pid %s, up %lldh %02lldm %02llds, health %s\n", get_str(res, "version"), get_str(res, "pid"),
               up / 3600, up / 60 % 60, up % 60, get_str(res, "health"));
        printf("state dir %s, control socket %s\n", get_str(res, "state-dir"), get_str(res, "control-socket"));
        json_object_object_foreach(get(res, "drivers"), name, d) {
                printf("%s server:%s\n", name, json_object_object_length(d) ? "" : " (not started)");
                print_json_human(d, 2);
        }
        struct json_object *nodes = get(res, "nodes"), *exps = get(res, "exports");
        printf("\n");
        struct table *t = table_new(5, "NODE", "TYPE", "SIZE", "HEALTH", "MESSAGE");
        for (size_t i = 0; nodes && i < json_object_array_length(nodes); i++) {
                struct json_object *o = json_object_array_get_idx(nodes, i);
                char sz[32];
                table_add(t, get_str(o, "name"), get_str(o, "type"), size_str(o, "size", sz, sizeof sz),
                          get_str(o, "health"), get_str(o, "health-message"));
        }
        table_print(t);
        printf("\n");
        if (exps)
                print_exports_table(exps);
        return EXIT_OK;
}

static int verb_node_list(char **args, int n) {
        _cleanup_(json_object_putp) struct json_object *res = NULL;
        int r = call("node-list", NULL, &res);
        if (r != EXIT_OK)
                return r;
        if (arg_json)
                return print_result(res);
        print_nodes_table(res);
        return EXIT_OK;
}

static int verb_node_info(char **args, int n) {
        _cleanup_(json_object_putp) struct json_object *a = json_object_new_object(), *res = NULL;
        json_object_object_add(a, "name", json_object_new_string(args[0]));
        if (arg_stats)
                json_object_object_add(a, "stats", json_object_new_boolean(true));
        int r = call("node-info", a, &res);
        return r == EXIT_OK ? print_result(res) : r;
}

static int verb_node_add(char **args, int n) {
        _cleanup_(json_object_putp) struct json_object *a = json_object_new_object(), *res = NULL;
        struct json_object *params = json_object_new_object();
        json_object_object_add(a, "name", json_object_new_string(args[0]));
        json_object_object_add(a, "type", json_object_new_string(args[1]));
        json_object_object_add(a, "params", params);
        int r = parse_words(args + 2, n - 2, params, NULL, false);
        if (r == EXIT_OK)
                r = add_passphrase(params, "Passphrase: ", false);
        if (r == EXIT_OK)
                r = call("node-add", a, &res);
        if (r != EXIT_OK)
                return r;
        if (arg_json)
                return print_result(res);
        char sz[32];
        printf("node '%s' added (%s, %s)\n", args[0], get_str(res, "type"), size_str(res, "size", sz, sizeof sz));
        return EXIT_OK;
}

static int simple_name_verb(const char *cmd, const char *name, const char *what, const char *done) {
        _cleanup_(json_object_putp) struct json_object *a = json_object_new_object(), *res = NULL;
        json_object_object_add(a, "name", json_object_new_string(name));
        int r = call(cmd, a, &res);
        if (r != EXIT_OK)
                return r;
        if (arg_json)
                return print_result(res);
        printf("%s '%s' %s\n", what, name, done);
        return EXIT_OK;
}

static int verb_node_remove(char **args, int n) {
        return simple_name_verb("node-remove", args[0], "node", "removed");
}

static int verb_export_list(char **args, int n) {
        _cleanup_(json_object_putp) struct json_object *res = NULL;
        int r = call("export-list", NULL, &res);
        if (r != EXIT_OK)
                return r;
        if (arg_json)
                return print_result(res);
        print_exports_table(res);
        return EXIT_OK;
}

static int verb_export_add(char **args, int n) {
        _cleanup_(json_object_putp) struct json_object *a = json_object_new_object(), *res = NULL;
        json_object_object_add(a, "name", json_object_new_string(args[0]));
        json_object_object_add(a, "node", json_object_new_string(args[1]));
        int r = parse_words(args + 2, n - 2, a, NULL, false);
        if (r == EXIT_OK)
                r = call("export-add", a, &res);
        if (r != EXIT_OK)
                return r;
        if (arg_json)
                return print_result(res);
        char pr[128];
        printf("export '%s' added (node '%s', %s)\n", args[0], args[1], json_short(get(res, "protocols"), pr, sizeof pr));
        return EXIT_OK;
}

static int verb_export_remove(char **args, int n) {
        return simple_name_verb("export-remove", args[0], "export", "removed");
}

static int verb_stats(char **args, int n) {
        _cleanup_(json_object_putp) struct json_object *a = json_object_new_object(), *res = NULL;
        if (n > 0)
                json_object_object_add(a, "name", json_object_new_string(args[0]));
        int r = call("stats", a, &res);
        if (r != EXIT_OK || arg_json)
                return r == EXIT_OK ? print_result(res) : r;
        struct table *t = table_new(6, "NODE", "OP", "OPS", "BYTES", "ERRORS", "AVG-LAT-US");
        struct table *extra = table_new(3, "NODE", "COUNTER", "VALUE");
        bool have_extra = false;
        json_object_object_foreach(res, node, st) {
                json_object_object_foreach(st, key, val) {
                        if (json_object_is_type(val, json_type_object)) {
                                char b[32];
                                table_add(t, node, key, get_str(val, "ops"), human_size((uint64_t) json_object_get_int64(get(val, "bytes")), b, sizeof b),
                                          get_str(val, "errors"), get_str(val, "avg-latency-us"));
                        } else {
                                table_add(extra, node, key, json_object_get_string(val));
                                have_extra = true;
                        }
                }
        }
        table_print(t);
        if (have_extra) {
                printf("\n");
                table_print(extra);
        } else
                table_free(extra);
        return EXIT_OK;
}

/* ---- Node verbs and long jobs ------------------------------------------------------------- */
static void sleep_ms(long ms) {
        struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

/* --wait: poll the node's "status" ctl verb until it reports done. */
static int wait_job(const char *node, const char *verb) {
        char label[160];
        snprintf(label, sizeof label, "%s %s", node, verb);
        for (;;) {
                _cleanup_(json_object_putp) struct json_object *a = json_object_new_object(), *res = NULL;
                json_object_object_add(a, "node", json_object_new_string(node));
                json_object_object_add(a, "verb", json_object_new_string("status"));
                int r = call("node-ctl", a, &res);
                if (r != EXIT_OK) {
                        progress_end();
                        return r;
                }
                struct json_object *prog = get(res, "progress"), *done = get(res, "done");
                if (!done || !json_object_is_type(done, json_type_boolean)) {
                        progress_end();
                        fprintf(stderr, "orionctl: node '%s' does not report job progress ('status' lacks \"done\")\n",
                                node);
                        return EXIT_FAILED;
                }
                if (prog)
                        progress_draw(label, json_object_get_double(prog));
                if (json_object_get_boolean(done)) {
                        progress_end();
                        const char *e = get_str(res, "error");
                        if (e) {
                                fprintf(stderr, "orionctl: %s: %s\n", label, e);
                                return EXIT_FAILED;
                        }
                        if (arg_json)
                                print_json(res);
                        else
                                printf("%s: done\n", label);
                        return EXIT_OK;
                }
                sleep_ms(500);
        }
}

static int do_ctl(const char *node, const char *verb, struct json_object *cargs) {
        _cleanup_(json_object_putp) struct json_object *a = json_object_new_object(), *res = NULL;
        char prompt[160];
        snprintf(prompt, sizeof prompt, "Passphrase for '%s': ", node);
        int r = add_passphrase(cargs, prompt, false);
        if (r != EXIT_OK)
                return r;
        if (arg_new_passphrase_prompt) {
                snprintf(prompt, sizeof prompt, "New passphrase for '%s': ", node);
                r = prompt_into(cargs, "new-passphrase", prompt, true);
                if (r != EXIT_OK)
                        return r;
        }
        json_object_object_add(a, "node", json_object_new_string(node));
        json_object_object_add(a, "verb", json_object_new_string(verb));
        json_object_object_add(a, "args", json_object_get(cargs));
        r = call("node-ctl", a, &res);
        if (r != EXIT_OK)
                return r;
        if (!arg_wait)
                return print_result(res);
        if (!arg_json)
                print_result(res);
        return wait_job(node, verb);
}

/* Words after NODE VERB: one JSON object, or positional words (args.argv) and key=value. */
static int ctl_args(char **words, int n, struct json_object **ret) {
        if (n == 1 && words[0][0] == '{') {
                struct json_object *o = json_tokener_parse(words[0]);
                if (!o || !json_object_is_type(o, json_type_object)) {
                        json_object_put(o);
                        fprintf(stderr, "orionctl: '%s' is not a JSON object\n", words[0]);
                        return EXIT_USAGE;
                }
                *ret = o;
                return EXIT_OK;
        }
        struct json_object *o = json_object_new_object(), *argv = json_object_new_array();
        int r = parse_words(words, n, o, argv, true);
        if (json_object_array_length(argv) > 0)
                json_object_object_add(o, "argv", argv);
        else
                json_object_put(argv);
        if (r != EXIT_OK) {
                json_object_put(o);
                return r;
        }
        *ret = o;
        return EXIT_OK;
}

static int verb_ctl(char **args, int n) {
        _cleanup_(json_object_putp) struct json_object *cargs = NULL;
        int r = ctl_args(args + 2, n - 2, &cargs);
        return r == EXIT_OK ? do_ctl(args[0], args[1], cargs) : r;
}

/* orionctl TYPE VERB NODE [ARG...] [key=value...] */
static int type_verb(char **args, int n) {
        const char *type = args[0], *verb = args[1], *node = args[2];
        _cleanup_(json_object_putp) struct json_object *a = json_object_new_object(), *info = NULL;
        json_object_object_add(a, "name", json_object_new_string(node));
        int r = call("node-info", a, &info);
        if (r != EXIT_OK)
                return r;
        const char *actual = get_str(info, "type");
        if (!actual || strcmp(actual, type) != 0) {
                fprintf(stderr, "orionctl: '%s' is not a verb, and node '%s' is a '%s', not a '%s' (see orionctl help)\n",
                        type, node, actual ? actual : "?", type);
                return EXIT_USAGE;
        }
        _cleanup_(json_object_putp) struct json_object *cargs = NULL;
        r = ctl_args(args + 3, n - 3, &cargs);
        return r == EXIT_OK ? do_ctl(node, verb, cargs) : r;
}

/* ---- Formats and types ---------------------------------------------------------------------- */
static int verb_format(char **args, int n) {
        _cleanup_(json_object_putp) struct json_object *a = json_object_new_object(), *res = NULL;
        struct json_object *params = json_object_new_object(), *fargs = json_object_new_object();
        json_object_object_add(a, "type", json_object_new_string(args[0]));
        json_object_object_add(a, "params", params);
        json_object_object_add(a, "args", fargs);
        json_object_object_add(a, "force", json_object_new_boolean(arg_force));
        int r = parse_words(args + 1, n - 1, params, NULL, false);
        if (r == EXIT_OK)
                r = add_passphrase(fargs, "New passphrase: ", true);
        if (r == EXIT_OK)
                r = call("format", a, &res);
        if (r != EXIT_OK)
                return r;
        if (arg_json)
                return print_result(res);
        printf("%s format written\n", args[0]);
        return EXIT_OK;
}

static int verb_inspect(char **args, int n) {
        _cleanup_(json_object_putp) struct json_object *a = json_object_new_object(), *res = NULL;
        /* A path is resolved here: the daemon's working directory is not ours. */
        char abs[PATH_MAX];
        const char *target = args[0];
        if (strchr(target, '/') && realpath(target, abs))
                target = abs;
        json_object_object_add(a, "target", json_object_new_string(target));
        int r = call("inspect", a, &res);
        if (r != EXIT_OK || arg_json)
                return r == EXIT_OK ? print_result(res) : r;
        char sz[32];
        printf("%s: %s, block size %s\n", args[0], size_str(res, "size", sz, sizeof sz), get_str(res, "block-size"));
        struct json_object *f = get(res, "formats");
        if (!f || json_object_array_length(f) == 0) {
                printf("no known on-disk format found\n");
                return EXIT_OK;
        }
        for (size_t i = 0; i < json_object_array_length(f); i++) {
                struct json_object *o = json_object_array_get_idx(f, i);
                printf("%s format:\n", get_str(o, "type"));
                json_object_object_del(o, "type");
                print_json_human(o, 2);
        }
        return EXIT_OK;
}

static int verb_types(char **args, int n) {
        _cleanup_(json_object_putp) struct json_object *a = json_object_new_object(), *res = NULL;
        if (n > 0)
                json_object_object_add(a, "name", json_object_new_string(args[0]));
        int r = call("types", a, &res);
        if (r != EXIT_OK || arg_json)
                return r == EXIT_OK ? print_result(res) : r;
        if (n == 0) {
                struct table *t = table_new(3, "TYPE", "FORMAT", "DESCRIPTION");
                for (size_t i = 0; i < json_object_array_length(res); i++) {
                        struct json_object *o = json_object_array_get_idx(res, i), *f = get(o, "format");
                        table_add(t, get_str(o, "name"), f && json_object_get_boolean(f) ? "yes" : "no",
                                  get_str(o, "description"));
                }
                table_print(t);
                return EXIT_OK;
        }
        printf("%s - %s\n\n", get_str(res, "name"), get_str(res, "description"));
        struct table *t = table_new(4, "PARAMETER", "TYPE", "DEFAULT", "HELP");
        struct json_object *ps = get(res, "params");
        for (size_t i = 0; ps && i < json_object_array_length(ps); i++) {
                struct json_object *p = json_object_array_get_idx(ps, i), *req = get(p, "required");
                const char *def = get_str(p, "default");
                table_add(t, get_str(p, "name"), get_str(p, "type"),
                          def ? def : req && json_object_get_boolean(req) ? "(required)" : "(optional)",
                          get_str(p, "help"));
        }
        table_print(t);
        return EXIT_OK;
}

static int verb_shutdown(char **args, int n) {
        _cleanup_(json_object_putp) struct json_object *res = NULL;
        int r = call("shutdown", NULL, &res);
        if (r != EXIT_OK)
                return r;
        if (arg_json)
                return print_result(res);
        printf("oriond is shutting down\n");
        return EXIT_OK;
}

static int verb_help(char **args, int n);

static const struct verb verbs[] = {
        { "status", "status", "Daemon version, health, protocol servers, nodes and exports.", 0, 0, verb_status },
        { "node-list", "node-list", "Every node with type, size, health and edges.", 0, 0, verb_node_list },
        { "node-info", "node-info NODE [--stats]", "Everything about one node (with --stats: its counters).", 1, 1,
          verb_node_info },
        { "node-add", "node-add NAME TYPE [key=value...] [--passphrase-prompt]",
          "Create a node of TYPE with the type's parameters (see `orionctl types TYPE`).", 2, -1, verb_node_add },
        { "node-remove", "node-remove NODE", "Flush and close a node; refused (EBUSY) while a node or export uses it.",
          1, 1, verb_node_remove },
        { "ctl", "ctl NODE VERB [JSON | ARG... key=value...] [--wait] [--[new-]passphrase-prompt]",
          "Run a node's management verb. Words become args.argv, key=value become args keys.", 2, -1, verb_ctl },
        { "export-list", "export-list", "Every export with its node and protocols.", 0, 0, verb_export_list },
        { "export-add",
          "export-add NAME NODE [protocols=nbd,fuse,iscsi] [read-only=on] [description=TEXT] [nbd-*|fuse-*|iscsi-*=V...]",
          "Export NODE as NAME (default protocol: nbd).", 2, -1, verb_export_add },
        { "export-remove", "export-remove NAME", "Stop serving an export (clients are disconnected).", 1, 1,
          verb_export_remove },
        { "stats", "stats [NODE]", "I/O counters of every node, or one.", 0, 1, verb_stats },
        { "format", "format TYPE key=value... [--force] [--passphrase-prompt]",
          "Write a fresh on-disk format of TYPE on the child node(s) named in the parameters.", 1, -1, verb_format },
        { "inspect", "inspect NODE|PATH", "Tell which on-disk format a node or a file holds (PATH contains a '/').",
          1, 1, verb_inspect },
        { "types", "types [TYPE]", "Node types, or one type's parameters.", 0, 1, verb_types },
        { "shutdown", "shutdown", "Stop oriond (drain, flush, close: as SIGTERM).", 0, 0, verb_shutdown },
        { "help", "help [VERB]", "This help, or one verb's.", 0, 1, verb_help },
};

static const struct verb *verb_find(const char *name) {
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                if (strcmp(verbs[i].name, name) == 0)
                        return &verbs[i];
        return NULL;
}

static void usage(FILE *f) {
        fprintf(f, "Usage: orionctl [--socket PATH] [--json] VERB [ARGS...]\n"
                   "       orionctl [--socket PATH] [--json] TYPE VERB NODE [ARG...] [key=value...] [--wait]\n\n"
                   "Verbs:\n");
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                fprintf(f, "  %s\n", verbs[i].usage);
        fprintf(f, "\nOptions:\n"
                   "  --socket PATH        control socket (default %s)\n"
                   "  --json               print results as JSON (for scripts)\n"
                   "  --wait               after a ctl verb, follow the node's 'status' job with a progress bar\n"
                   "  --passphrase-prompt  read a passphrase without echo and send it as \"passphrase\"\n"
                   "  --new-passphrase-prompt  ctl: read a new passphrase (twice on a terminal) as\n"
                   "                       \"new-passphrase\" (e.g. encrypt add-key, change-key)\n"
                   "  --force              format: overwrite a recognised on-disk format\n"
                   "  -h, --help           help (after a verb: that verb's)\n"
                   "  -V, --version        print the version\n\n"
                   "Exit status: 0 ok, 1 refused or failed, 2 usage error, 3 oriond not reachable,\n"
                   "4 protocol error. See orionctl(8).\n",
                DEFAULT_CONTROL_SOCKET);
}

static int verb_help(char **args, int n) {
        if (n == 0) {
                usage(stdout);
                return EXIT_OK;
        }
        const struct verb *v = verb_find(args[0]);
        if (!v) {
                printf("orionctl %s: not a verb; `orionctl TYPE VERB NODE ...` runs a node's own verb.\n", args[0]);
                return EXIT_USAGE;
        }
        printf("Usage: orionctl %s\n%s\n", v->usage, v->help);
        return EXIT_OK;
}

/* ---- Command line ------------------------------------------------------------------------- */
static bool is_option(const char *a) {
        /* "-1" is a (negative number) argument, not an option */
        return a[0] == '-' && a[1] && !(a[1] >= '0' && a[1] <= '9');
}

static int parse_options(int argc, char **argv, char ***ret_words, int *ret_n) {
        char **w = calloc((size_t) argc + 1, sizeof *w);
        int n = 0;
        bool dashdash = false;
        if (!w)
                return EXIT_FAILED;
        for (int i = 1; i < argc; i++) {
                const char *a = argv[i];
                if (dashdash || !is_option(a)) {
                        w[n++] = argv[i];
                        continue;
                }
                if (strcmp(a, "--") == 0)
                        dashdash = true;
                else if (strcmp(a, "--socket") == 0 || strcmp(a, "-s") == 0) {
                        if (++i >= argc) {
                                fprintf(stderr, "orionctl: --socket needs a path\n");
                                free(w);
                                return EXIT_USAGE;
                        }
                        arg_socket = argv[i];
                } else if (strncmp(a, "--socket=", 9) == 0)
                        arg_socket = a + 9;
                else if (strcmp(a, "--json") == 0 || strcmp(a, "-j") == 0)
                        arg_json = true;
                else if (strcmp(a, "--force") == 0)
                        arg_force = true;
                else if (strcmp(a, "--wait") == 0)
                        arg_wait = true;
                else if (strcmp(a, "--passphrase-prompt") == 0)
                        arg_passphrase_prompt = true;
                else if (strcmp(a, "--new-passphrase-prompt") == 0)
                        arg_new_passphrase_prompt = true;
                else if (strcmp(a, "--stats") == 0)
                        arg_stats = true;
                else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
                        arg_help = true;
                else if (strcmp(a, "--version") == 0 || strcmp(a, "-V") == 0) {
                        printf("orionctl %s\n", ORION_VERSION);
                        free(w);
                        return -1;
                } else {
                        fprintf(stderr, "orionctl: unknown option '%s' (see orionctl --help)\n", a);
                        free(w);
                        return EXIT_USAGE;
                }
        }
        *ret_words = w;
        *ret_n = n;
        return EXIT_OK;
}

/* Options that only make sense with some verbs are refused elsewhere, so a typo is not ignored. */
static int check_flags(const char *verb, bool sugar) {
        struct {
                bool set;
                const char *name;
                bool ok;
        } f[] = {
                { arg_force, "--force", strcmp(verb, "format") == 0 },
                { arg_wait, "--wait", sugar || strcmp(verb, "ctl") == 0 },
                { arg_passphrase_prompt, "--passphrase-prompt",
                  sugar || strcmp(verb, "ctl") == 0 || strcmp(verb, "node-add") == 0 || strcmp(verb, "format") == 0 },
                { arg_new_passphrase_prompt, "--new-passphrase-prompt", sugar || strcmp(verb, "ctl") == 0 },
                { arg_stats, "--stats", strcmp(verb, "node-info") == 0 },
        };
        for (size_t i = 0; i < ELEMENTSOF(f); i++)
                if (f[i].set && !f[i].ok) {
                        fprintf(stderr, "orionctl: %s does not apply to '%s'\n", f[i].name, verb);
                        return EXIT_USAGE;
                }
        return EXIT_OK;
}

static int run(char **w, int n) {
        if (n == 0) {
                if (arg_help) {
                        usage(stdout);
                        return EXIT_OK;
                }
                usage(stderr);
                return EXIT_USAGE;
        }
        const struct verb *v = verb_find(w[0]);
        if (arg_help)
                return verb_help(w, 1);
        int r = check_flags(w[0], !v);
        if (r != EXIT_OK)
                return r;
        if (!v) {
                if (n < 3) {
                        fprintf(stderr,
                                "orionctl: unknown verb '%s' (a node verb is `orionctl TYPE VERB NODE ...`; see --help)\n",
                                w[0]);
                        return EXIT_USAGE;
                }
                return type_verb(w, n);
        }
        int nargs = n - 1;
        if (nargs < v->min_args || (v->max_args >= 0 && nargs > v->max_args)) {
                fprintf(stderr, "orionctl: usage: orionctl %s\n", v->usage);
                return EXIT_USAGE;
        }
        return v->fn(w + 1, nargs);
}

int main(int argc, char **argv) {
        char **w = NULL;
        int n = 0;
        int r = parse_options(argc, argv, &w, &n);
        if (r != EXIT_OK)
                return r < 0 ? EXIT_OK : r;
        r = run(w, n);
        free(w);
        conn_close(&g_conn);
        if (fflush(stdout) != 0 && r == EXIT_OK)
                r = EXIT_FAILED;
        return r;
}
