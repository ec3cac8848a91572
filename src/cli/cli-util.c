/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* orionctl helpers: socket client, tables, JSON printing, passphrase prompt, progress bar. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include <json-c/json.h>

#include "cli/cli.h"
#include "common/cleanup.h"

/* ---- Client ------------------------------------------------------------------------------- */
int conn_open(struct conn *c, const char *path) {
        *c = (struct conn) { .fd = -1, .path = path };
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        if (strlen(path) >= sizeof sa.sun_path) {
                fprintf(stderr, "orionctl: socket path '%s' is too long\n", path);
                return EXIT_CONNECT;
        }
        memcpy(sa.sun_path, path, strlen(path) + 1);
        c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (c->fd < 0 || connect(c->fd, (struct sockaddr *) &sa, sizeof sa) < 0) {
                fprintf(stderr, "orionctl: cannot connect to %s: %s (is oriond running?)\n", path, strerror(errno));
                conn_close(c);
                return EXIT_CONNECT;
        }
        return EXIT_OK;
}

void conn_close(struct conn *c) {
        if (c->fd >= 0)
                close(c->fd);
        c->fd = -1;
        free(c->buf);
        c->buf = NULL;
        c->len = c->cap = 0;
}

static int send_all(int fd, const char *p, size_t len) {
        while (len) {
                ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                p += n;
                len -= (size_t) n;
        }
        return 0;
}

/* One line from the daemon (without the newline), in c->buf; returns its length or -errno. */
static ssize_t read_line(struct conn *c, size_t *ret_consumed) {
        size_t scan = 0;
        for (;;) {
                char *nl = c->len ? memchr(c->buf + scan, '\n', c->len - scan) : NULL;
                if (nl) {
                        *nl = '\0';
                        *ret_consumed = (size_t) (nl - c->buf) + 1;
                        return nl - c->buf;
                }
                scan = c->len;
                if (c->len >= CLI_MAX_REPLY)
                        return -E2BIG;
                if (c->cap - c->len < 65536) {
                        size_t ncap = c->cap ? c->cap * 2 : 65536 * 2;
                        char *n = realloc(c->buf, ncap + 1);
                        if (!n)
                                return -ENOMEM;
                        c->buf = n;
                        c->cap = ncap;
                }
                ssize_t n = read(c->fd, c->buf + c->len, c->cap - c->len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                if (n == 0)
                        return -ECONNRESET;
                c->len += (size_t) n;
        }
}

int conn_call(struct conn *c, const char *cmd, struct json_object *args, struct json_object **ret_result,
              int *ret_errno, const char **ret_msg) {
        static char msg[1024];
        *ret_result = NULL;
        struct json_object *req = json_object_new_object();
        json_object_object_add(req, "cmd", json_object_new_string(cmd));
        if (args)
                json_object_object_add(req, "args", json_object_get(args));
        const char *text = json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN);
        int r = send_all(c->fd, text, strlen(text));
        if (r >= 0)
                r = send_all(c->fd, "\n", 1);
        json_object_put(req);
        if (r < 0) {
                fprintf(stderr, "orionctl: sending to %s: %s\n", c->path, strerror(-r));
                return EXIT_PROTOCOL;
        }
        size_t consumed = 0;
        ssize_t n = read_line(c, &consumed);
        if (n < 0) {
                fprintf(stderr, "orionctl: no reply from oriond on %s: %s\n", c->path,
                        n == -ECONNRESET ? "connection closed" : strerror((int) -n));
                return EXIT_PROTOCOL;
        }
        struct json_object *reply = json_tokener_parse(c->buf);
        memmove(c->buf, c->buf + consumed, c->len - consumed);
        c->len -= consumed;
        struct json_object *ok = NULL, *v = NULL;
        if (!reply || !json_object_is_type(reply, json_type_object) || !json_object_object_get_ex(reply, "ok", &ok) ||
            !json_object_is_type(ok, json_type_boolean)) {
                json_object_put(reply);
                fprintf(stderr, "orionctl: malformed reply from oriond\n");
                return EXIT_PROTOCOL;
        }
        if (json_object_get_boolean(ok)) {
                if (json_object_object_get_ex(reply, "result", &v) && v)
                        *ret_result = json_object_get(v);
                json_object_put(reply);
                return EXIT_OK;
        }
        *ret_errno = json_object_object_get_ex(reply, "errno", &v) ? json_object_get_int(v) : 0;
        snprintf(msg, sizeof msg, "%s",
                 json_object_object_get_ex(reply, "error", &v) ? json_object_get_string(v) : "unknown error");
        *ret_msg = msg;
        json_object_put(reply);
        return EXIT_FAILED;
}

/* ---- Formatting ------------------------------------------------------------------------------ */
char *human_size(uint64_t v, char *buf, size_t len) {
        static const char units[] = "KMGTPE";
        if (v < 1024) {
                snprintf(buf, len, "%llu", (unsigned long long) v);
                return buf;
        }
        int u = -1;
        double d = (double) v;
        while (d >= 1024 && u < 5) {
                d /= 1024;
                u++;
        }
        if (d == (double) (uint64_t) d)
                snprintf(buf, len, "%llu%c", (unsigned long long) d, units[u]);
        else
                snprintf(buf, len, "%.1f%c", d, units[u]);
        return buf;
}

struct table {
        size_t ncols, nrows;
        char **cells; /* nrows * ncols, row 0 the header */
};

static char *cell_dup(const char *s) {
        return strdup(s ? s : "-");
}

struct table *table_new(size_t ncols, ...) {
        struct table *t = calloc(1, sizeof *t);
        if (!t)
                return NULL;
        t->ncols = ncols;
        va_list ap;
        va_start(ap, ncols);
        t->cells = calloc(ncols, sizeof *t->cells);
        for (size_t i = 0; t->cells && i < ncols; i++)
                t->cells[i] = cell_dup(va_arg(ap, const char *));
        va_end(ap);
        t->nrows = 1;
        return t;
}

void table_add(struct table *t, ...) {
        if (!t || !t->cells)
                return;
        char **n = realloc(t->cells, (t->nrows + 1) * t->ncols * sizeof *n);
        if (!n)
                return;
        t->cells = n;
        va_list ap;
        va_start(ap, t);
        for (size_t i = 0; i < t->ncols; i++)
                t->cells[t->nrows * t->ncols + i] = cell_dup(va_arg(ap, const char *));
        va_end(ap);
        t->nrows++;
}

void table_print(struct table *t) {
        if (!t)
                return;
        size_t *w = calloc(t->ncols, sizeof *w);
        for (size_t r = 0; w && t->cells && r < t->nrows; r++)
                for (size_t c = 0; c < t->ncols; c++) {
                        const char *s = t->cells[r * t->ncols + c];
                        size_t l = s ? strlen(s) : 0;
                        if (l > w[c])
                                w[c] = l;
                }
        for (size_t r = 0; w && t->cells && r < t->nrows; r++) {
                for (size_t c = 0; c < t->ncols; c++) {
                        const char *s = t->cells[r * t->ncols + c];
                        if (c + 1 == t->ncols)
                                printf("%s", s ? s : "");
                        else
                                printf("%-*s  ", (int) w[c], s ? s : "");
                }
                printf("\n");
        }
        free(w);
        table_free(t);
}

void table_free(struct table *t) {
        if (!t)
                return;
        for (size_t i = 0; t->cells && i < t->nrows * t->ncols; i++)
                free(t->cells[i]);
        free(t->cells);
        free(t);
}

static bool is_scalar(struct json_object *o) {
        return !o || (!json_object_is_type(o, json_type_object) && !json_object_is_type(o, json_type_array));
}

const char *json_short(struct json_object *o, char *buf, size_t len) {
        if (!o)
                return "-";
        if (json_object_is_type(o, json_type_string))
                return json_object_get_string(o);
        if (json_object_is_type(o, json_type_boolean))
                return json_object_get_boolean(o) ? "yes" : "no";
        if (json_object_is_type(o, json_type_array)) {
                size_t n = json_object_array_length(o), pos = 0;
                buf[0] = '\0';
                if (n == 0)
                        return "-";
                for (size_t i = 0; i < n && pos < len; i++) {
                        char sub[256];
                        int w = snprintf(buf + pos, len - pos, "%s%s", i ? ", " : "",
                                         json_short(json_object_array_get_idx(o, i), sub, sizeof sub));
                        if (w < 0)
                                break;
                        pos += (size_t) w;
                }
                return buf;
        }
        snprintf(buf, len, "%s", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
        return buf;
}

static bool array_of_scalars(struct json_object *a) {
        for (size_t i = 0; i < json_object_array_length(a); i++)
                if (!is_scalar(json_object_array_get_idx(a, i)))
                        return false;
        return true;
}

void print_json_human(struct json_object *o, int indent) {
        char buf[4096];
        if (is_scalar(o)) {
                printf("%*s%s\n", indent, "", json_short(o, buf, sizeof buf));
                return;
        }
        if (json_object_is_type(o, json_type_array)) {
                for (size_t i = 0; i < json_object_array_length(o); i++) {
                        struct json_object *e = json_object_array_get_idx(o, i);
                        if (is_scalar(e))
                                printf("%*s- %s\n", indent, "", json_short(e, buf, sizeof buf));
                        else {
                                printf("%*s-\n", indent, "");
                                print_json_human(e, indent + 2);
                        }
                }
                return;
        }
        json_object_object_foreach(o, key, val) {
                if (is_scalar(val) || (json_object_is_type(val, json_type_array) && array_of_scalars(val)))
                        printf("%*s%s: %s\n", indent, "", key, json_short(val, buf, sizeof buf));
                else if (json_object_is_type(val, json_type_object) && json_object_object_length(val) == 0)
                        printf("%*s%s: -\n", indent, "", key);
                else {
                        printf("%*s%s:\n", indent, "", key);
                        print_json_human(val, indent + 2);
                }
        }
}

void print_json(struct json_object *o) {
        printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
}

/* ---- Passphrase ---------------------------------------------------------------------------- */
void free_secret(char *s) {
        if (!s)
                return;
        explicit_bzero(s, strlen(s));
        free(s);
}

static char *read_secret_line(FILE *in, FILE *out, const char *prompt) {
        struct termios old, quiet;
        bool tty = isatty(fileno(in)) && tcgetattr(fileno(in), &old) == 0;
        if (tty) {
                fprintf(out, "%s", prompt);
                fflush(out);
                quiet = old;
                quiet.c_lflag &= ~(tcflag_t) (ECHO | ECHONL);
                quiet.c_lflag |= ICANON;
                (void) tcsetattr(fileno(in), TCSAFLUSH, &quiet);
        }
        char *line = NULL;
        size_t cap = 0;
        ssize_t n = getline(&line, &cap, in);
        if (tty) {
                (void) tcsetattr(fileno(in), TCSAFLUSH, &old);
                fprintf(out, "\n");
        }
        if (n < 0) {
                /* nothing read: the buffer holds no string, wipe all of it */
                if (line)
                        explicit_bzero(line, cap);
                free(line);
                return NULL;
        }
        if (n > 0 && line[n - 1] == '\n')
                line[--n] = '\0';
        return line;
}

char *read_passphrase(const char *prompt, bool verify) {
        /* A terminal on stdin: prompt without echo. Otherwise (a pipe, a file): one line each. */
        char *p = read_secret_line(stdin, stderr, prompt);
        if (!p) {
                fprintf(stderr, "orionctl: no passphrase given\n");
                return NULL;
        }
        if (!*p) {
                fprintf(stderr, "orionctl: empty passphrase\n");
                free_secret(p);
                return NULL;
        }
        if (verify && isatty(STDIN_FILENO)) {
                char *again = read_secret_line(stdin, stderr, "Verify passphrase: ");
                bool same = again && strcmp(again, p) == 0;
                free_secret(again);
                if (!same) {
                        fprintf(stderr, "orionctl: passphrases do not match\n");
                        free_secret(p);
                        return NULL;
                }
        }
        return p;
}

/* ---- Progress -------------------------------------------------------------------------------- */
static bool g_progress_shown;

void progress_draw(const char *label, double fraction) {
        if (!isatty(STDERR_FILENO))
                return;
        if (fraction < 0)
                fraction = 0;
        if (fraction > 1)
                fraction = 1;
        const int width = 40;
        int fill = (int) (fraction * width + 0.5);
        char bar[64];
        for (int i = 0; i < width; i++)
                bar[i] = i < fill ? '#' : '.';
        bar[width] = '\0';
        fprintf(stderr, "\r%s [%s] %5.1f%%", label, bar, fraction * 100.0);
        fflush(stderr);
        g_progress_shown = true;
}

void progress_end(void) {
        if (g_progress_shown)
                fprintf(stderr, "\n");
        g_progress_shown = false;
}
