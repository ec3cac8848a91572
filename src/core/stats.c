/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Per-node statistics: operations, bytes, errors and a log2 latency histogram per op type. */
#include <stdio.h>
#include <time.h>

#include <json-c/json.h>

#include "core/core.h"

uint64_t now_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000000ULL + (uint64_t) ts.tv_nsec;
}

const char *op_name(enum orion_op op) {
        static const char *const names[_ORION_OP_MAX] = { "read", "write", "flush", "discard", "write-zeroes" };
        return (unsigned) op < _ORION_OP_MAX ? names[op] : "?";
}

void stats_record(struct node_stats *s, enum orion_op op, uint64_t bytes, int r, uint64_t lat_ns) {
        if ((unsigned) op >= _ORION_OP_MAX)
                return;
        struct op_stats *o = &s->op[op];
        atomic_fetch_add_explicit(&o->ops, 1, memory_order_relaxed);
        if (r < 0)
                atomic_fetch_add_explicit(&o->errors, 1, memory_order_relaxed);
        else
                atomic_fetch_add_explicit(&o->bytes, bytes, memory_order_relaxed);
        uint64_t us = lat_ns / 1000;
        atomic_fetch_add_explicit(&o->lat_sum_us, us, memory_order_relaxed);
        unsigned b = 0;
        while (b < STATS_LAT_BUCKETS - 1 && us >= (1ULL << b))
                b++;
        atomic_fetch_add_explicit(&o->lat[b], 1, memory_order_relaxed);
}

void stats_to_json(const struct node_stats *s, struct json_object *out) {
        for (int op = 0; op < _ORION_OP_MAX; op++) {
                const struct op_stats *o = &s->op[op];
                uint64_t ops = atomic_load(&o->ops);
                struct json_object *j = json_object_new_object();
                json_object_object_add(j, "ops", json_object_new_uint64(ops));
                json_object_object_add(j, "bytes", json_object_new_uint64(atomic_load(&o->bytes)));
                json_object_object_add(j, "errors", json_object_new_uint64(atomic_load(&o->errors)));
                json_object_object_add(j, "avg-latency-us",
                                       json_object_new_uint64(ops ? atomic_load(&o->lat_sum_us) / ops : 0));
                /* Histogram as {"<1us":n, "<2us":n, ...}, only non-empty buckets. */
                struct json_object *h = json_object_new_object();
                for (int b = 0; b < STATS_LAT_BUCKETS; b++) {
                        uint64_t c = atomic_load(&o->lat[b]);
                        if (!c)
                                continue;
                        char key[32];
                        if (b == STATS_LAT_BUCKETS - 1)
                                snprintf(key, sizeof key, ">=%lluus", 1ULL << (b - 1));
                        else
                                snprintf(key, sizeof key, "<%lluus", 1ULL << b);
                        json_object_object_add(h, key, json_object_new_uint64(c));
                }
                json_object_object_add(j, "latency-histogram", h);
                json_object_object_add(out, op_name((enum orion_op) op), j);
        }
}
