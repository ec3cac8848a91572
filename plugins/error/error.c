/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* `error` layer: fault injection for tests. Fails chosen operations with a chosen errno, by
 * rate, byte range, after N operations or N times, switched at run time with ctl verbs. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <json-c/json.h>

#include "common/cleanup.h"
#include "orion/plugin.h"

#define OPBIT(op) (1u << (op))
#define ALL_OPS (OPBIT(ORION_OP_READ) | OPBIT(ORION_OP_WRITE) | OPBIT(ORION_OP_FLUSH) | OPBIT(ORION_OP_DISCARD) | \
                 OPBIT(ORION_OP_WRITE_ZEROES))

static const struct {
        const char *name;
        int code;
} g_errnos[] = {
        { "EIO", EIO }, { "ENOSPC", ENOSPC }, { "EPERM", EPERM }, { "EROFS", EROFS }, { "EINVAL", EINVAL },
        { "ENOMEM", ENOMEM }, { "ESHUTDOWN", ESHUTDOWN }, { "ETIMEDOUT", ETIMEDOUT }, { "EDQUOT", EDQUOT },
        { "ENOTSUP", ENOTSUP },
};

static const char *const g_opnames[_ORION_OP_MAX] = {
        [ORION_OP_READ] = "read", [ORION_OP_WRITE] = "write", [ORION_OP_FLUSH] = "flush",
        [ORION_OP_DISCARD] = "discard", [ORION_OP_WRITE_ZEROES] = "zeroes",
};

/* What to inject; replaced as a whole by `ctl set`. */
struct error_rule {
        bool enabled;
        int code;            /* positive errno */
        uint32_t ops;        /* OPBIT() set */
        double rate;         /* 0..1: chance that a matching request fails */
        uint64_t offset;     /* byte range [offset, offset+length) that requests must touch */
        uint64_t length;     /* 0 = to the end of the device */
        uint64_t after;      /* let this many matching requests through first */
        uint64_t count;      /* inject this many failures, then heal (0 = no limit) */
        bool short_writes;   /* mode=short: write a prefix, then fail */
};

struct error_node {
        struct orion_bdev *child;
        pthread_mutex_t lock; /* rule, counters, rng */
        struct error_rule rule;
        uint64_t seen;        /* matching requests since the rule was set */
        uint64_t injected;    /* failures injected since the rule was set */
        uint64_t rng;         /* xorshift64 state */
};

/* ---- Parsing (config values and ctl arguments) --------------------------------------------- */
static int parse_errno_name(const char *s, int *ret) {
        for (size_t i = 0; i < ELEMENTSOF(g_errnos); i++)
                if (strcasecmp(s, g_errnos[i].name) == 0) {
                        *ret = g_errnos[i].code;
                        return 0;
                }
        return -EINVAL;
}

static const char *errno_name(int code) {
        for (size_t i = 0; i < ELEMENTSOF(g_errnos); i++)
                if (g_errnos[i].code == code)
                        return g_errnos[i].name;
        return "?";
}

/* "read write", "all", "read,flush" */
static int parse_ops(const char *s, uint32_t *ret) {
        uint32_t ops = 0;

        while (*s) {
                size_t n;
                bool found = false;

                s += strspn(s, " ,");
                n = strcspn(s, " ,");
                if (n == 0)
                        break;
                if (n == 3 && strncmp(s, "all", 3) == 0) {
                        ops |= ALL_OPS;
                        found = true;
                }
                for (int op = 0; op < _ORION_OP_MAX && !found; op++)
                        if (strlen(g_opnames[op]) == n && strncmp(s, g_opnames[op], n) == 0) {
                                ops |= OPBIT(op);
                                found = true;
                        }
                if (!found)
                        return -EINVAL;
                s += n;
        }
        if (ops == 0)
                return -EINVAL;
        *ret = ops;
        return 0;
}

static int parse_rate(const char *s, double *ret) {
        char *end;
        double v;

        errno = 0;
        v = strtod(s, &end);
        if (errno || end == s || *end || !(v >= 0.0 && v <= 1.0))
                return -EINVAL;
        *ret = v;
        return 0;
}

/* Bytes with an optional binary suffix (K M G T), for ctl arguments. */
static int parse_bytes(const char *s, uint64_t *ret) {
        static const char sfx[] = "KMGT";
        char *end;
        uint64_t v;
        const char *p;

        if (*s == '-' || *s == '\0')
                return -EINVAL;
        errno = 0;
        v = strtoull(s, &end, 0);
        if (errno || end == s)
                return -EINVAL;
        if (*end) {
                p = strchr(sfx, *end & ~0x20);
                if (!p || end[1] != '\0')
                        return -EINVAL;
                for (int shift = (int) (p - sfx + 1) * 10; shift > 0; shift -= 10) {
                        if (v > (UINT64_MAX >> 10))
                                return -ERANGE;
                        v <<= 10;
                }
        }
        *ret = v;
        return 0;
}

/* Apply one key of a rule (shared by open and ctl set). */
static int rule_set_key(struct error_rule *r, const char *key, const char *val, struct orion_error *err) {
        int b;

        if (strcmp(key, "error") == 0) {
                if (parse_errno_name(val, &r->code) < 0)
                        return orion_error_set(err, EINVAL, "error: unknown errno '%s' (EIO, ENOSPC, EPERM, ...)",
                                               val);
        } else if (strcmp(key, "ops") == 0) {
                if (parse_ops(val, &r->ops) < 0)
                        return orion_error_set(err, EINVAL,
                                               "error: bad ops '%s' (words: read write flush discard zeroes all)", val);
        } else if (strcmp(key, "rate") == 0) {
                if (parse_rate(val, &r->rate) < 0)
                        return orion_error_set(err, EINVAL, "error: rate '%s' is not a number from 0 to 1", val);
        } else if (strcmp(key, "offset") == 0 || strcmp(key, "length") == 0 || strcmp(key, "after") == 0 ||
                   strcmp(key, "count") == 0) {
                uint64_t v;
                uint64_t *dst = key[0] == 'o' ? &r->offset : key[0] == 'l' ? &r->length : key[0] == 'a' ? &r->after
                                                                                                    : &r->count;

                if (parse_bytes(val, &v) < 0)
                        return orion_error_set(err, EINVAL, "error: %s '%s' is not a non-negative number", key, val);
                *dst = v;
        } else if (strcmp(key, "mode") == 0) {
                if (strcmp(val, "fail") != 0 && strcmp(val, "short") != 0)
                        return orion_error_set(err, EINVAL, "error: mode must be fail or short, not '%s'", val);
                r->short_writes = strcmp(val, "short") == 0;
        } else if (strcmp(key, "enabled") == 0) {
                b = strcasecmp(val, "on") == 0 || strcasecmp(val, "true") == 0 || strcasecmp(val, "yes") == 0 ||
                    strcmp(val, "1") == 0;
                if (!b && strcasecmp(val, "off") != 0 && strcasecmp(val, "false") != 0 && strcasecmp(val, "no") != 0 &&
                    strcmp(val, "0") != 0)
                        return orion_error_set(err, EINVAL, "error: enabled must be on or off, not '%s'", val);
                r->enabled = b;
        } else
                return orion_error_set(err, EINVAL, "error: unknown key '%s'", key);
        return 0;
}

/* ---- The decision ---------------------------------------------------------------------------- */
static uint64_t rng_next_locked(struct error_node *e) {
        uint64_t x = e->rng;

        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        e->rng = x;
        return x;
}

/* Returns the -errno to inject, or 0 to let the request through. */
static int should_fail(struct error_node *e, enum orion_op op, uint64_t off, uint64_t len, bool *ret_short) {
        LOCK_GUARD(&e->lock);
        const struct error_rule *r = &e->rule;

        if (!r->enabled || !(r->ops & OPBIT(op)))
                return 0;
        /* flush has no range: it matches whatever the range says */
        if (op != ORION_OP_FLUSH) {
                uint64_t end = r->length ? r->offset + r->length : UINT64_MAX;

                if (off + len <= r->offset || off >= end)
                        return 0;
        }
        e->seen++;
        if (e->seen <= r->after)
                return 0;
        if (r->count && e->injected >= r->count)
                return 0;
        if (r->rate < 1.0 && (double) (rng_next_locked(e) >> 11) * 0x1.0p-53 >= r->rate)
                return 0;
        e->injected++;
        if (ret_short)
                *ret_short = r->short_writes;
        return -r->code;
}

static void log_injected(struct orion_bdev *b, enum orion_op op, int r) {
        orion_log_ratelimited(ORION_LOG_INFO, "error: '%s': injecting %s into %s", orion_bdev_name(b),
                              errno_name(-r), g_opnames[op]);
}

/* ---- Operations ------------------------------------------------------------------------------ */
static int error_pread(struct orion_bdev *b, void *buf, uint64_t len, uint64_t off, uint32_t flags) {
        struct error_node *e = orion_bdev_priv(b);
        int r = should_fail(e, ORION_OP_READ, off, len, NULL);

        if (r < 0) {
                log_injected(b, ORION_OP_READ, r);
                return r;
        }
        return orion_bdev_pread(e->child, buf, len, off, flags);
}

static int error_pwrite(struct orion_bdev *b, const void *buf, uint64_t len, uint64_t off, uint32_t flags) {
        struct error_node *e = orion_bdev_priv(b);
        bool short_write = false;
        int r = should_fail(e, ORION_OP_WRITE, off, len, &short_write);

        if (r < 0) {
                /* mode=short: the first half (whole blocks) reaches the child, then the error:
                 * a torn write, as a device losing power mid-request would leave it. */
                uint64_t part = len / 2 - (len / 2) % orion_bdev_block_size(b);

                log_injected(b, ORION_OP_WRITE, r);
                if (short_write && part > 0)
                        (void) orion_bdev_pwrite(e->child, buf, part, off, flags); /* failing anyway */
                return r;
        }
        return orion_bdev_pwrite(e->child, buf, len, off, flags);
}

static int error_flush(struct orion_bdev *b, uint32_t flags) {
        struct error_node *e = orion_bdev_priv(b);
        int r = should_fail(e, ORION_OP_FLUSH, 0, 0, NULL);

        if (r < 0) {
                log_injected(b, ORION_OP_FLUSH, r);
                return r;
        }
        return orion_bdev_flush(e->child, flags);
}

static int error_discard(struct orion_bdev *b, uint64_t len, uint64_t off, uint32_t flags) {
        struct error_node *e = orion_bdev_priv(b);
        int r = should_fail(e, ORION_OP_DISCARD, off, len, NULL);

        if (r < 0) {
                log_injected(b, ORION_OP_DISCARD, r);
                return r;
        }
        return orion_bdev_discard(e->child, len, off, flags);
}

static int error_write_zeroes(struct orion_bdev *b, uint64_t len, uint64_t off, uint32_t flags) {
        struct error_node *e = orion_bdev_priv(b);
        int r = should_fail(e, ORION_OP_WRITE_ZEROES, off, len, NULL);

        if (r < 0) {
                log_injected(b, ORION_OP_WRITE_ZEROES, r);
                return r;
        }
        return orion_bdev_write_zeroes(e->child, len, off, flags);
}

static int error_block_status(struct orion_bdev *b, uint64_t len, uint64_t off, struct orion_extents *ext) {
        struct error_node *e = orion_bdev_priv(b);

        return orion_bdev_block_status(e->child, len, off, ext);
}

/* ---- Control --------------------------------------------------------------------------------- */
static struct json_object *rule_to_json(struct error_node *e) {
        struct json_object *o = json_object_new_object(), *ops = json_object_new_array();
        const struct error_rule *r = &e->rule;

        for (int op = 0; op < _ORION_OP_MAX; op++)
                if (r->ops & OPBIT(op))
                        json_object_array_add(ops, json_object_new_string(g_opnames[op]));
        json_object_object_add(o, "enabled", json_object_new_boolean(r->enabled));
        json_object_object_add(o, "error", json_object_new_string(errno_name(r->code)));
        json_object_object_add(o, "ops", ops);
        json_object_object_add(o, "rate", json_object_new_double(r->rate));
        json_object_object_add(o, "offset", json_object_new_uint64(r->offset));
        json_object_object_add(o, "length", json_object_new_uint64(r->length));
        json_object_object_add(o, "after", json_object_new_uint64(r->after));
        json_object_object_add(o, "count", json_object_new_uint64(r->count));
        json_object_object_add(o, "mode", json_object_new_string(r->short_writes ? "short" : "fail"));
        json_object_object_add(o, "seen", json_object_new_uint64(e->seen));
        json_object_object_add(o, "injected", json_object_new_uint64(e->injected));
        return o;
}

/* `set {key: value, ...}`: change the named keys (others keep their value), restart counters. */
static int ctl_set(struct error_node *e, struct json_object *args, struct orion_error *err) {
        struct error_rule r;
        int k;

        if (!args || !json_object_is_type(args, json_type_object))
                return orion_error_set(err, EINVAL, "error: set needs an object, e.g. {\"error\":\"EIO\",\"ops\":\"read\"}");
        WITH_LOCK(&e->lock) r = e->rule;
        json_object_object_foreach(args, key, val) {
                k = rule_set_key(&r, key, json_object_get_string(val), err);
                if (k < 0)
                        return k;
        }
        WITH_LOCK(&e->lock) {
                e->rule = r;
                e->seen = 0;
                e->injected = 0;
        }
        return 0;
}

static int error_ctl(struct orion_bdev *b, const char *verb, struct json_object *args,
                     struct json_object **ret_reply, struct orion_error *err) {
        struct error_node *e = orion_bdev_priv(b);
        int r = 0;

        if (strcmp(verb, "set") == 0)
                r = ctl_set(e, args, err);
        else if (strcmp(verb, "enable") == 0 || strcmp(verb, "disable") == 0) {
                WITH_LOCK(&e->lock) {
                        e->rule.enabled = verb[0] == 'e';
                        e->seen = 0;
                        e->injected = 0;
                }
        } else if (strcmp(verb, "reset") == 0) {
                WITH_LOCK(&e->lock) e->seen = e->injected = 0;
        } else if (strcmp(verb, "status") != 0)
                return orion_error_set(err, EOPNOTSUPP, "error: unknown verb '%s' (set, enable, disable, reset, status)",
                                       verb);
        if (r < 0)
                return r;
        if (ret_reply)
                WITH_LOCK(&e->lock) *ret_reply = rule_to_json(e);
        return 0;
}

static void error_status(struct orion_bdev *b, struct json_object *out) {
        struct error_node *e = orion_bdev_priv(b);

        WITH_LOCK(&e->lock) json_object_object_add(out, "injection", rule_to_json(e));
}

static void error_stats(struct orion_bdev *b, struct json_object *sink) {
        struct error_node *e = orion_bdev_priv(b);

        WITH_LOCK(&e->lock) orion_stats_put(sink, "injected", e->injected);
}

/* ---- Lifecycle ------------------------------------------------------------------------------- */
static int error_open(struct orion_bdev *b, const struct orion_params *p, struct orion_error *err) {
        static const char *const keys[] = { "error", "ops", "rate", "mode" };
        struct error_node *e = orion_bdev_priv(b);
        int64_t seed = orion_param_int(p, "seed"), after = orion_param_int(p, "after"),
                count = orion_param_int(p, "count");
        int r;

        e->child = orion_param_node(p, "child");
        if (!e->child)
                return orion_error_set(err, EINVAL, "error: child= is required");
        for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                r = rule_set_key(&e->rule, keys[i], orion_param_str(p, keys[i]), err);
                if (r < 0)
                        return r;
        }
        if (after < 0 || count < 0)
                return orion_error_set(err, EINVAL, "error: after= and count= cannot be negative");
        e->rule.after = (uint64_t) after;
        e->rule.count = (uint64_t) count;
        e->rule.offset = orion_param_size(p, "offset");
        e->rule.length = orion_param_size(p, "length");
        e->rule.enabled = orion_param_bool(p, "enabled");
        e->rng = seed ? (uint64_t) seed : (uint64_t) time(NULL) ^ (uint64_t) (uintptr_t) e;
        if (e->rng == 0)
                e->rng = 0x9E3779B97F4A7C15ull;
        r = orion_bdev_set_geometry(b, orion_bdev_geometry(e->child));
        if (r < 0)
                return orion_error_set(err, -r, "error: cannot take the geometry of '%s'", orion_bdev_name(e->child));
        orion_bdev_set_caps(b, orion_bdev_caps(e->child));
        pthread_mutex_init(&e->lock, NULL);
        return 0;
}

static void error_close(struct orion_bdev *b) {
        struct error_node *e = orion_bdev_priv(b);

        pthread_mutex_destroy(&e->lock);
}

static const struct orion_param error_params[] = {
        { .name = "child", .type = ORION_PARAM_NODE, .help = "The node requests pass through to." },
        { .name = "error", .type = ORION_PARAM_ENUM, .def = "EIO",
          .choices = "EIO ENOSPC EPERM EROFS EINVAL ENOMEM ESHUTDOWN ETIMEDOUT EDQUOT ENOTSUP",
          .help = "The errno injected." },
        { .name = "ops", .type = ORION_PARAM_STRING, .def = "all",
          .help = "Operations that fail: any of read write flush discard zeroes, or all." },
        { .name = "rate", .type = ORION_PARAM_STRING, .def = "1",
          .help = "Chance (0 to 1) that a matching request fails." },
        { .name = "offset", .type = ORION_PARAM_SIZE, .def = "0",
          .help = "Only requests touching [offset, offset+length) fail (flush ignores the range)." },
        { .name = "length", .type = ORION_PARAM_SIZE, .def = "0", .help = "Length of the range; 0 = to the end." },
        { .name = "after", .type = ORION_PARAM_INT, .def = "0",
          .help = "Let this many matching requests succeed before failing." },
        { .name = "count", .type = ORION_PARAM_INT, .def = "0",
          .help = "Fail this many requests, then heal (transient errors); 0 = no limit." },
        { .name = "mode", .type = ORION_PARAM_ENUM, .def = "fail", .choices = "fail short",
          .help = "short: a failing write first writes its first half (whole blocks) to the child." },
        { .name = "enabled", .type = ORION_PARAM_BOOL, .def = "on",
          .help = "Start injecting at once (off: wait for `ctl NODE enable`)." },
        { .name = "seed", .type = ORION_PARAM_INT, .def = "0",
          .help = "Seed of the random choice for rate < 1 (0 = from the clock)." },
        {},
};

static const struct orion_bdev_ops error_ops = {
        .pread = error_pread,
        .pwrite = error_pwrite,
        .flush = error_flush,
        .discard = error_discard,
        .write_zeroes = error_write_zeroes,
        .block_status = error_block_status,
        .stats = error_stats,
        .ctl = error_ctl,
        .status = error_status,
        .close = error_close,
};

ORION_PLUGIN(.name = "error", .description = "Fault injection: fails chosen requests with a chosen errno",
             .params = error_params, .instance_size = sizeof(struct error_node), .ops = &error_ops,
             .open = error_open);
