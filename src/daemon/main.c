/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* oriond: reads the config, builds the node graph, starts the exports and the control socket,
 * reports readiness (pidfile, sd_notify, the parent of a daemonised child), then waits for
 * SIGTERM/SIGINT to drain, flush and close everything. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
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
#include "daemon/notify.h"

static const char *arg_config;
static bool arg_foreground;
static const char *arg_pidfile;
static const char *arg_state_dir;
static const char *arg_control_socket;
static const char *arg_plugin_dir;
static char **arg_nbd_listen; /* NULL-terminated */
static size_t arg_n_nbd_listen;
static bool arg_list_types;
static bool arg_json;
static int arg_verbose;

static void help(void) {
        printf("Usage: oriond [OPTIONS]\n"
               "Orion block-virtualisation daemon.\n\n"
               "  -c, --config FILE          configuration file (default %s;\n"
               "                             without it and without the file: a built-in default)\n"
               "  -f, --foreground           do not daemonise\n"
               "      --pidfile FILE         write the pid once every export listens\n"
               "  -v, --verbose              debug logging\n"
               "      --state-dir DIR        state directory (default %s)\n"
               "      --control-socket PATH  control socket (default %s)\n"
               "      --nbd-listen ADDR      NBD listen address, repeatable: HOST:PORT or unix:PATH\n"
               "                             (default %s)\n"
               "      --plugin-dir DIR       layer plugins (default %s; $ORION_PLUGIN_DIR wins)\n"
               "      --list-types [--json]  print every node type with its parameters and exit\n"
               "  -h, --help                 this help\n"
               "  -V, --version              print the version\n\n"
               "See oriond(8) and oriond.conf(5).\n",
               DEFAULT_CONFIG_PATH, DEFAULT_STATE_DIR, DEFAULT_CONTROL_SOCKET, DEFAULT_NBD_LISTEN, ORION_PLUGINDIR);
}

enum {
        OPT_PIDFILE = 0x100,
        OPT_STATE_DIR,
        OPT_CONTROL_SOCKET,
        OPT_NBD_LISTEN,
        OPT_PLUGIN_DIR,
        OPT_LIST_TYPES,
        OPT_JSON,
};

/* 0 to go on, 1 to exit 0 (help, version), -1 on a usage error. */
static int parse_argv(int argc, char **argv) {
        static const struct option options[] = {
                { "config", required_argument, NULL, 'c' },
                { "foreground", no_argument, NULL, 'f' },
                { "pidfile", required_argument, NULL, OPT_PIDFILE },
                { "verbose", no_argument, NULL, 'v' },
                { "state-dir", required_argument, NULL, OPT_STATE_DIR },
                { "control-socket", required_argument, NULL, OPT_CONTROL_SOCKET },
                { "nbd-listen", required_argument, NULL, OPT_NBD_LISTEN },
                { "plugin-dir", required_argument, NULL, OPT_PLUGIN_DIR },
                { "list-types", no_argument, NULL, OPT_LIST_TYPES },
                { "json", no_argument, NULL, OPT_JSON },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, 'V' },
                {},
        };
        int c;
        while ((c = getopt_long(argc, argv, "c:fvhV", options, NULL)) >= 0) {
                switch (c) {
                case 'c': arg_config = optarg; break;
                case 'f': arg_foreground = true; break;
                case 'v': arg_verbose++; break;
                case OPT_PIDFILE: arg_pidfile = optarg; break;
                case OPT_STATE_DIR: arg_state_dir = optarg; break;
                case OPT_CONTROL_SOCKET: arg_control_socket = optarg; break;
                case OPT_PLUGIN_DIR: arg_plugin_dir = optarg; break;
                case OPT_LIST_TYPES: arg_list_types = true; break;
                case OPT_JSON: arg_json = true; break;
                case OPT_NBD_LISTEN: {
                        char **n = realloc(arg_nbd_listen, (arg_n_nbd_listen + 2) * sizeof *n);
                        if (!n)
                                return -1;
                        arg_nbd_listen = n;
                        arg_nbd_listen[arg_n_nbd_listen++] = optarg;
                        arg_nbd_listen[arg_n_nbd_listen] = NULL;
                        break;
                }
                case 'h': help(); return 1;
                case 'V': printf("oriond %s\n", ORION_VERSION); return 1;
                default: return -1;
                }
        }
        if (optind < argc) {
                fprintf(stderr, "oriond: unexpected argument '%s' (see --help)\n", argv[optind]);
                return -1;
        }
        if (arg_json && !arg_list_types) {
                fprintf(stderr, "oriond: --json only goes with --list-types\n");
                return -1;
        }
        return 0;
}

/* $ORION_PLUGIN_DIR overrides everything (tests point it at the build tree). */
static const char *plugin_dir(const struct daemon_config *cfg) {
        const char *env = getenv("ORION_PLUGIN_DIR");
        if (env && *env)
                return env;
        if (arg_plugin_dir)
                return arg_plugin_dir;
        return cfg && cfg->plugin_dir ? cfg->plugin_dir : NULL;
}

/* ---- --list-types ------------------------------------------------------------------------- */
static void print_type(struct json_object *t) {
        struct json_object *v, *params;
        json_object_object_get_ex(t, "name", &v);
        printf("%s", json_object_get_string(v));
        if (json_object_object_get_ex(t, "description", &v) && *json_object_get_string(v))
                printf(" - %s", json_object_get_string(v));
        if (json_object_object_get_ex(t, "format", &v) && json_object_get_boolean(v))
                printf(" [format]");
        printf("\n");
        if (!json_object_object_get_ex(t, "params", &params))
                return;
        for (size_t i = 0; i < json_object_array_length(params); i++) {
                struct json_object *p = json_object_array_get_idx(params, i), *name, *type, *def, *req, *hlp, *ch;
                json_object_object_get_ex(p, "name", &name);
                json_object_object_get_ex(p, "type", &type);
                bool has_def = json_object_object_get_ex(p, "default", &def) && def;
                bool required = json_object_object_get_ex(p, "required", &req) && json_object_get_boolean(req);
                char deftext[64];
                snprintf(deftext, sizeof deftext, "%s%s", has_def ? "= " : "",
                         has_def ? json_object_get_string(def) : required ? "(required)" : "(optional)");
                printf("    %-16s %-7s %-14s", json_object_get_string(name), json_object_get_string(type), deftext);
                if (json_object_object_get_ex(p, "help", &hlp))
                        printf(" %s", json_object_get_string(hlp));
                if (json_object_object_get_ex(p, "choices", &ch))
                        printf(" (%s)", json_object_get_string(ch));
                printf("\n");
        }
}

static int list_types(const struct daemon_config *cfg) {
        int r = registry_init(plugin_dir(cfg));
        if (r < 0) {
                orion_error("cannot initialise the type registry: %s", strerror(-r));
                return 1;
        }
        registry_load_all();
        const struct orion_plugin *types[256];
        size_t n = MIN(registry_list(types, ELEMENTSOF(types)), ELEMENTSOF(types));
        struct json_object *a = json_object_new_array();
        for (size_t i = 0; i < n; i++)
                json_object_array_add(a, registry_describe(types[i]));
        if (arg_json)
                printf("%s\n", json_object_to_json_string_ext(a, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
        else
                for (size_t i = 0; i < n; i++) {
                        if (i)
                                printf("\n");
                        print_type(json_object_array_get_idx(a, i));
                }
        json_object_put(a);
        registry_done();
        return fflush(stdout) == 0 ? 0 : 1;
}

/* ---- Configuration ------------------------------------------------------------------------ */
static int replace_str(char **field, const char *value) {
        char *s = strdup(value);
        if (!s)
                return -ENOMEM;
        free(*field);
        *field = s;
        return 0;
}

/* Command-line options win over the file. */
static int apply_overrides(struct daemon_config *cfg) {
        if (arg_state_dir && replace_str(&cfg->state_dir, arg_state_dir) < 0)
                return -ENOMEM;
        if (arg_control_socket && replace_str(&cfg->control_socket, arg_control_socket) < 0)
                return -ENOMEM;
        if (arg_plugin_dir && replace_str(&cfg->plugin_dir, arg_plugin_dir) < 0)
                return -ENOMEM;
        if (arg_nbd_listen) {
                char **v = calloc(arg_n_nbd_listen + 1, sizeof *v);
                if (!v)
                        return -ENOMEM;
                for (size_t i = 0; i < arg_n_nbd_listen; i++)
                        if (!(v[i] = strdup(arg_nbd_listen[i]))) {
                                for (size_t k = 0; k < i; k++)
                                        free(v[k]);
                                free(v);
                                return -ENOMEM;
                        }
                for (size_t i = 0; cfg->nbd_listen && cfg->nbd_listen[i]; i++)
                        free(cfg->nbd_listen[i]);
                free(cfg->nbd_listen);
                cfg->nbd_listen = v;
        }
        return 0;
}

/* The default exports over every protocol it can; one whose server is not built into this
 * oriond is left out rather than failing the start. */
static void default_protocols_available(struct daemon_config *cfg) {
        uint32_t have = 0;
        for (size_t i = 0; export_drivers[i]; i++)
                have |= export_drivers[i]->proto;
        for (size_t i = 0; i < cfg->nexports; i++) {
                uint32_t p = cfg->exports[i].protocols & have;
                if (p != cfg->exports[i].protocols)
                        orion_info("export '%s': leaving out protocols without a server in this build",
                                   cfg->exports[i].name);
                if (p)
                        cfg->exports[i].protocols = p;
        }
}

static bool socket_activated(void) {
        const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
        int64_t p, n;
        return pid && fds && parse_int64(pid, &p) == 0 && p == getpid() && parse_int64(fds, &n) == 0 && n > 0;
}

static int load_config(struct daemon_config *cfg) {
        struct orion_error err = { 0 };
        config_init(cfg);
        const char *path = arg_config;
        if (!path && access(DEFAULT_CONFIG_PATH, F_OK) == 0)
                path = DEFAULT_CONFIG_PATH;
        if (path && config_parse_file(cfg, path, &err) < 0) {
                orion_error("%s", err.msg);
                return -err.code;
        }
        if (apply_overrides(cfg) < 0) {
                orion_error("out of memory");
                return -ENOMEM;
        }
        if (!path) {
                orion_info("no %s: serving the built-in default", DEFAULT_CONFIG_PATH);
                if (config_add_default(cfg, &err) < 0) {
                        orion_error("built-in default: %s", err.msg);
                        return -err.code;
                }
                default_protocols_available(cfg);
        }
        return 0;
}

/* ---- Daemonising ----------------------------------------------------------------------------
 * The parent stays until the child is ready, so `oriond && nbdinfo ...` works and a startup
 * error is the parent's exit status. */
static int g_ready_fd = -1;

static int daemonise(void) {
        int p[2];
        if (pipe2(p, O_CLOEXEC) < 0) {
                orion_error("pipe: %m");
                return -errno;
        }
        pid_t pid = fork();
        if (pid < 0) {
                orion_error("fork: %m");
                return -errno;
        }
        if (pid > 0) {
                close(p[1]);
                char c = 0;
                ssize_t n;
                do
                        n = read(p[0], &c, 1);
                while (n < 0 && errno == EINTR);
                _exit(n == 1 && c == 'R' ? 0 : 1);
        }
        close(p[0]);
        g_ready_fd = p[1];
        if (setsid() < 0)
                orion_warn("setsid: %m, ignoring");
        return 0;
}

static void daemonise_ready(void) {
        if (g_ready_fd < 0)
                return;
        int null = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (null >= 0) {
                (void) dup2(null, STDIN_FILENO);
                (void) dup2(null, STDOUT_FILENO);
                if (null > STDERR_FILENO)
                        close(null);
        }
        (void) write(g_ready_fd, "R", 1); /* the parent exits 1 if this fails: that is the right report */
        close(g_ready_fd);
        g_ready_fd = -1;
}

/* ---- Readiness ------------------------------------------------------------------------------ */
static int write_pidfile(const char *path) {
        _cleanup_free_ char *tmp = NULL;
        if (asprintf(&tmp, "%s.tmp%d", path, (int) getpid()) < 0)
                return -ENOMEM;
        FILE *f = fopen(tmp, "we");
        if (!f)
                return -errno;
        fprintf(f, "%d\n", (int) getpid());
        if (fclose(f) != 0) {
                int r = -errno;
                (void) unlink(tmp);
                return r;
        }
        /* rename: readers never see a half-written pidfile */
        if (rename(tmp, path) < 0) {
                int r = -errno;
                (void) unlink(tmp);
                return r;
        }
        return 0;
}

static int mkdir_p(const char *path, mode_t mode) {
        _cleanup_free_ char *p = strdup(path);
        if (!p)
                return -ENOMEM;
        for (char *s = p + 1; *s; s++) {
                if (*s != '/')
                        continue;
                *s = '\0';
                if (mkdir(p, 0755) < 0 && errno != EEXIST)
                        return -errno;
                *s = '/';
        }
        if (mkdir(p, mode) < 0 && errno != EEXIST)
                return -errno;
        return 0;
}

/* ---- Startup and shutdown ------------------------------------------------------------------ */
static void request_shutdown(void *userdata) {
        /* Every thread blocks SIGTERM; the main thread collects it with sigwaitinfo. */
        (void) kill(getpid(), SIGTERM);
}

static int build_graph(const struct daemon_config *cfg) {
        for (size_t i = 0; i < cfg->nnodes; i++) {
                struct orion_error err = { 0 };
                const struct config_node *n = &cfg->nodes[i];
                if (graph_node_add(n->name, n->type, n->params, NULL, &err) < 0) {
                        orion_error("node '%s': %s", n->name, err.msg);
                        return -err.code;
                }
        }
        for (size_t i = 0; i < cfg->nexports; i++) {
                struct orion_error err = { 0 };
                const struct config_export *e = &cfg->exports[i];
                if (export_add(e->name, e->node, e->protocols, e->readonly, e->description, e->opts, &err) < 0) {
                        orion_error("export '%s': %s", e->name, err.msg);
                        return -err.code;
                }
        }
        return 0;
}

static bool g_control_running;

static int start_control(const struct daemon_config *cfg, bool activated) {
        struct orion_error err = { 0 };
        const char *path = cfg->control_socket ? cfg->control_socket : DEFAULT_CONTROL_SOCKET;
        if (control_server_start(path, &err) < 0) {
                /* Under socket activation (e.g. `nbdinfo -- [ oriond ]`) another oriond may own the
                 * default socket: serve the activation socket anyway. */
                if (activated) {
                        orion_warn("%s; running without a control socket", err.msg);
                        return 0;
                }
                orion_error("%s", err.msg);
                return -err.code;
        }
        g_control_running = true;
        return 0;
}

static int startup(struct daemon_config *cfg, bool activated) {
        const char *state = cfg->state_dir ? cfg->state_dir : DEFAULT_STATE_DIR;
        int r = mkdir_p(state, 0700);
        if (r < 0) {
                orion_error("cannot create the state directory '%s': %s", state, strerror(-r));
                return r;
        }
        core_set_state_dir(state);
        r = registry_init(plugin_dir(cfg));
        if (r < 0) {
                orion_error("cannot initialise the type registry: %s", strerror(-r));
                return r;
        }
        r = pool_init(cfg->workers);
        if (r < 0) {
                orion_error("cannot start the worker pool: %s", strerror(-r));
                return r;
        }
        struct orion_error err = { 0 };
        r = exports_start(cfg, &err);
        if (r < 0) {
                orion_error("cannot start the exports: %s", err.msg);
                return r;
        }
        /* The control socket first: if another oriond owns it, stop before touching its files. */
        r = start_control(cfg, activated);
        if (r < 0)
                return r;
        return build_graph(cfg);
}

/* Returns 0, or -errno if flushing failed (data may be lost: exit non-zero). */
static int teardown(void) {
        if (g_control_running) {
                control_server_stop();
                g_control_running = false;
        }
        exports_stop();
        export_remove_all();
        int r = graph_flush_all();
        graph_close_all();
        pool_done();
        registry_done();
        return r;
}

static void wait_for_signal(const sigset_t *mask) {
        for (;;) {
                siginfo_t si;
                int sig = sigwaitinfo(mask, &si);
                if (sig < 0) {
                        if (errno == EINTR)
                                continue;
                        orion_error("sigwaitinfo: %m");
                        return;
                }
                if (sig == SIGHUP) {
                        /* Logs go to stderr (journald under systemd): nothing to reopen, and the
                         * graph changes through orionctl, never by re-reading the file. */
                        orion_notice("SIGHUP ignored: the configuration is not reloaded (use orionctl)");
                        continue;
                }
                orion_info("received %s, shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
                return;
        }
}

int main(int argc, char **argv) {
        int r = parse_argv(argc, argv);
        if (r != 0)
                return r > 0 ? 0 : 2;
        if (arg_verbose)
                orion_log_set_level(ORION_LOG_DEBUG);

        struct daemon_config cfg;
        if (arg_list_types) {
                config_init(&cfg);
                struct orion_error err = { 0 };
                if (arg_config && config_parse_file(&cfg, arg_config, &err) < 0) {
                        orion_error("%s", err.msg);
                        config_done(&cfg);
                        return 1;
                }
                r = list_types(&cfg);
                config_done(&cfg);
                return r;
        }

        /* Signals are blocked before any thread starts, so every thread inherits the mask and
         * only the main thread's sigwaitinfo sees them. */
        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        pthread_sigmask(SIG_BLOCK, &mask, NULL);
        signal(SIGPIPE, SIG_IGN);

        bool activated = socket_activated();
        if (load_config(&cfg) < 0) {
                config_done(&cfg);
                return 1;
        }
        if (!arg_foreground && !activated && daemonise() < 0) {
                config_done(&cfg);
                return 1;
        }

        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        control_set_context(&(struct control_context) {
                .cfg = &cfg,
                .control_socket = cfg.control_socket,
                .start_time = ts.tv_sec,
                .shutdown = request_shutdown,
        });

        if (startup(&cfg, activated) < 0) {
                (void) teardown();
                config_done(&cfg);
                return 1;
        }
        if (arg_pidfile && (r = write_pidfile(arg_pidfile)) < 0) {
                orion_error("cannot write pidfile '%s': %s", arg_pidfile, strerror(-r));
                (void) teardown();
                config_done(&cfg);
                return 1;
        }
        r = notify_send("READY=1\nSTATUS=Serving");
        if (r < 0)
                orion_warn("sd_notify READY failed: %s, ignoring", strerror(-r));
        orion_info("ready (%zu node%s, %zu export%s)", graph_node_list(NULL, 0), graph_node_list(NULL, 0) == 1 ? "" : "s",
                   export_list(NULL, 0), export_list(NULL, 0) == 1 ? "" : "s");
        daemonise_ready();

        wait_for_signal(&mask);
        (void) notify_send("STOPPING=1\nSTATUS=Shutting down");
        r = teardown();
        if (arg_pidfile)
                (void) unlink(arg_pidfile); /* nothing to do if it is already gone */
        config_done(&cfg);
        if (r < 0) {
                orion_error("flushing at shutdown failed: %s; data may be lost", strerror(-r));
                return 1;
        }
        orion_info("stopped");
        return 0;
}
