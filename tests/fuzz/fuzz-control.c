/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Fuzz target for the control protocol: the input is a stream of request lines. Every line is
 * parsed; lines whose verb cannot touch files or the daemon (read-only verbs, node-add of memory
 * and null nodes, node-remove, export verbs without running servers) are also dispatched and
 * their reply built, against a graph holding one memory node. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "core/core.h"
#include "daemon/control.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool safe_to_run(const struct control_request *req) {
        if (control_verb_is_readonly(req->cmd) && strcmp(req->cmd, "types") != 0)
                return true;
        if (strcmp(req->cmd, "node-remove") == 0 || strcmp(req->cmd, "export-add") == 0 ||
            strcmp(req->cmd, "export-remove") == 0)
                return true;
        if (strcmp(req->cmd, "node-add") == 0) {
                /* only leaves that neither create files nor load plugins */
                struct json_object *t;
                if (!json_object_object_get_ex(req->args, "type", &t) || !json_object_is_type(t, json_type_string))
                        return true; /* refused by the verb itself */
                const char *s = json_object_get_string(t);
                return strcmp(s, "memory") == 0 || strcmp(s, "null") == 0;
        }
        return false;
}

static void one_line(const char *line, size_t len) {
        struct control_request req;
        struct orion_error err = { 0 };
        if (control_parse_request(line, len, &req, &err) < 0)
                return;
        bool run = safe_to_run(&req);
        control_request_done(&req);
        if (!run)
                return;
        char *reply = control_handle_line(line, len);
        /* a reply is always produced and always JSON */
        struct json_object *o = reply ? json_tokener_parse(reply) : NULL;
        if (!o)
                abort();
        json_object_put(o);
        free(reply);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static bool init;
        if (!init) {
                orion_log_set_level(ORION_LOG_ERR - 1); /* quiet */
                if (registry_init(NULL) < 0)
                        abort();
                control_set_context(&(struct control_context) { 0 });
                init = true;
        }
        struct json_object *p = json_object_new_object();
        json_object_object_add(p, "size", json_object_new_string("1M"));
        if (graph_node_add("m0", "memory", p, NULL, NULL) < 0)
                abort();
        json_object_put(p);

        const char *s = (const char *) data, *end = s + size;
        while (s < end) {
                const char *nl = memchr(s, '\n', (size_t) (end - s));
                size_t len = nl ? (size_t) (nl - s) : (size_t) (end - s);
                one_line(s, len);
                s += len + (nl ? 1 : 0);
        }
        export_remove_all();
        graph_close_all();
        return 0;
}
