/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The control protocol: one JSON request per line in, one JSON reply per line out. Parsing and
 * dispatch (control.c) are separate from the socket server (control-server.c) so that tests and
 * fuzzers can drive them without a socket. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "orion/log.h"

struct json_object;
struct daemon_config;

/* Longest request line the server accepts (bytes, without the newline). */
#define CONTROL_MAX_REQUEST (1024 * 1024)
/* Deepest JSON nesting accepted in a request. */
#define CONTROL_MAX_DEPTH 32

struct control_request {
        char *cmd;                /* verb */
        struct json_object *args; /* always an object (empty when absent); owned */
        struct json_object *id;   /* optional "id", echoed in the reply; owned, may be NULL */
};

/* What the dispatcher needs from the daemon. All fields optional. */
struct control_context {
        const struct daemon_config *cfg; /* for status */
        const char *control_socket;      /* shown by status */
        long long start_time;            /* CLOCK_MONOTONIC seconds at start */
        /* Called by the "shutdown" verb after the reply is built. */
        void (*shutdown)(void *userdata);
        void *userdata;
};

/* Parse one request line (no newline needed; trailing whitespace allowed). Refuses non-objects,
 * a missing or non-string "cmd", "args" that is not an object, trailing garbage, and lines longer
 * than CONTROL_MAX_REQUEST. Returns 0 or -errno with err set. */
int control_parse_request(const char *line, size_t len, struct control_request *ret, struct orion_error *err);
void control_request_done(struct control_request *req);

/* Set the context used by control_handle_line (copied). */
void control_set_context(const struct control_context *ctx);
const struct control_context *control_get_context(void);

/* Run one request. Returns 0 or -errno; on success *ret_result is the result (may be NULL for
 * "null"), on failure err is set. */
int control_dispatch(const struct control_request *req, struct json_object **ret_result, struct orion_error *err);

/* Handle one line end to end: parse, dispatch, build the reply. Returns the reply text (without
 * a newline, malloc'ed) or NULL when out of memory. Never fails on bad input: errors become
 * {"ok":false,...} replies. */
char *control_handle_line(const char *line, size_t len);
/* The same, but instead of running the shutdown hook it sets *ret_shutdown, so the server can
 * send the reply first. */
char *control_handle_line_ex(const char *line, size_t len, bool *ret_shutdown);

/* True for verbs that never change daemon state (used by the fuzzer to stay side-effect free). */
bool control_verb_is_readonly(const char *cmd);
/* True if cmd is a verb of the protocol. */
bool control_verb_known(const char *cmd);

/* ---- Socket server (control-server.c) ----------------------------------------------------
 * Listen on path (mode 0600, peer credentials: root or our own uid). A stale socket file is
 * replaced; one that answers is "in use" (-EADDRINUSE). One thread per client. */
int control_server_start(const char *path, struct orion_error *err);
/* Stop accepting, wake and wait for client threads, remove the socket file. */
void control_server_stop(void);
