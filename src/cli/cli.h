/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* orionctl helpers: the control-socket client, tables and JSON printing for people, passphrase
 * prompts and the progress bar. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "common/cleanup.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(struct json_object *, json_object_put);

/* Exit codes (documented in orionctl(8)). */
enum {
        EXIT_OK = 0,
        EXIT_FAILED = 1,   /* the daemon refused or the operation failed */
        EXIT_USAGE = 2,    /* bad command line */
        EXIT_CONNECT = 3,  /* cannot reach oriond */
        EXIT_PROTOCOL = 4, /* the daemon's reply was not understood, or the connection broke */
};

/* Longest reply accepted from the daemon. */
#define CLI_MAX_REPLY (64 * 1024 * 1024)

struct conn {
        int fd;
        const char *path;
        char *buf;
        size_t len, cap;
};

/* Connect; prints the error and returns EXIT_CONNECT on failure. */
int conn_open(struct conn *c, const char *path);
void conn_close(struct conn *c);
/* One request. On EXIT_OK *ret_result is the result (NULL for null; owned). On EXIT_FAILED
 * *ret_errno and *ret_msg (static until the next call) describe the daemon's refusal. Protocol
 * errors are printed and return EXIT_PROTOCOL. args is borrowed (may be NULL). */
int conn_call(struct conn *c, const char *cmd, struct json_object *args, struct json_object **ret_result,
              int *ret_errno, const char **ret_msg);

/* "1G", "1.5M", "512" into buf. */
char *human_size(uint64_t v, char *buf, size_t len);

/* Tables: add cells row by row, then print with aligned columns. */
struct table;
struct table *table_new(size_t ncols, ...); /* header cells */
void table_add(struct table *t, ...);       /* ncols cells (NULL prints "-") */
void table_print(struct table *t);          /* prints and frees */
void table_free(struct table *t);

/* Human-readable dump of any JSON value ("key: value" lines, nested indented). */
void print_json_human(struct json_object *o, int indent);
void print_json(struct json_object *o); /* pretty JSON for scripts */
/* Short text of a scalar or a list of scalars ("nbd, fuse"). */
const char *json_short(struct json_object *o, char *buf, size_t len);

/* Read a passphrase without echo when stdin is a terminal (else one line from stdin).
 * verify: ask twice on a terminal. Returns a malloc'ed string or NULL (error printed). */
char *read_passphrase(const char *prompt, bool verify);
/* Wipe and free. */
void free_secret(char *s);

/* Progress bar on stderr (only on a terminal); progress_end finishes the line. */
void progress_draw(const char *label, double fraction);
void progress_end(void);
