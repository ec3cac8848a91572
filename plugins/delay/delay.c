/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* `delay` layer: adds a fixed latency per operation type before passing each request on
 * (slow disks and networks in tests; changeable at run time with `ctl NODE set`), and
 * optionally a transfer rate that requests share one after another, as on a single disk. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "common/cleanup.h"
#include "orion/plugin.h"

#define MAX_DELAY_NS (3600ull * 1000000000ull) /* an hour: anything longer is a typo */

static const char *const g_keys[_ORION_OP_MAX] = {
        [ORION_OP_READ] = "read-delay", [ORION_OP_WRITE] = "write-delay", [ORION_OP_FLUSH] = "flush-delay",
        [ORION_OP_DISCARD] = "discard-delay", [ORION_OP_WRITE_ZEROES] = "zeroes-delay",
};

struct delay_node {
        struct orion_bdev *child;
        atomic_uint_fast64_t ns[_ORION_OP_MAX]; /* latency added to each op */
        atomic_uint_fast64_t delayed;           /* requests slowed down */
        uint64_t rate;                          /* bytes/s of reads and writes, 0 = unlimited */
        pthread_mutex_t busy_lock;
        uint64_t busy_until; /* CLOCK_MONOTONIC ns when the transfers booked so far end */
};

/* "10ms", "250us", "2s", "1.5s", "500ns"; a bare number is seconds (as nbdkit's delay filter). */
static int parse_duration(const char *s, uint64_t *ret_ns) {
        static const struct {
                const char *sfx;
                double mult;
        } units[] = { { "ns", 1 }, { "us", 1e3 }, { "ms", 1e6 }, { "s", 1e9 }, { "", 1e9 } };
        char *end;
        double v;

        errno = 0;
        v = strtod(s, &end);
        if (errno || end == s || !(v >= 0))
                return -EINVAL;
        for (size_t i = 0; i < ELEMENTSOF(units); i++)
                if (strcmp(end, units[i].sfx) == 0) {
                        double ns = v * units[i].mult;

                        if (ns > (double) MAX_DELAY_NS)
                                return -ERANGE;
                        *ret_ns = (uint64_t) ns;
                        return 0;
                }
        return -EINVAL;
}

static void sleep_ns(uint64_t ns) {
        struct timespec ts = { .tv_sec = (time_t) (ns / 1000000000u), .tv_nsec = (long) (ns % 1000000000u) };

        /* a signal must not shorten the delay: sleep the remainder again */
        while (clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, &ts) == EINTR)
                ;
}

static uint64_t mono_ns(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

/* The latency of op (requests overlap theirs), then, with a rate, the request's turn on the
 * node: transfers are booked one after another, so that many requests in flight share the
 * rate as they share a disk's bandwidth. */
static void delay_op(struct delay_node *d, enum orion_op op, uint64_t len) {
        uint64_t ns = atomic_load(&d->ns[op]), end, now;

        if (ns == 0 && (d->rate == 0 || len == 0))
                return;
        atomic_fetch_add(&d->delayed, 1);
        if (ns)
                sleep_ns(ns);
        if (d->rate == 0 || len == 0)
                return;
        now = mono_ns();
        WITH_LOCK(&d->busy_lock) {
                d->busy_until = MAX(d->busy_until, now) + (uint64_t) ((double) len * 1e9 / (double) d->rate);
                end = d->busy_until;
        }
        if (end > now)
                sleep_ns(end - now);
}

/* ---- Operations ------------------------------------------------------------------------------ */
static int delay_pread(struct orion_bdev *b, void *buf, uint64_t len, uint64_t off, uint32_t flags) {
        struct delay_node *d = orion_bdev_priv(b);

        delay_op(d, ORION_OP_READ, len);
        return orion_bdev_pread(d->child, buf, len, off, flags);
}

static int delay_pwrite(struct orion_bdev *b, const void *buf, uint64_t len, uint64_t off, uint32_t flags) {
        struct delay_node *d = orion_bdev_priv(b);

        delay_op(d, ORION_OP_WRITE, len);
        return orion_bdev_pwrite(d->child, buf, len, off, flags);
}

static int delay_flush(struct orion_bdev *b, uint32_t flags) {
        struct delay_node *d = orion_bdev_priv(b);

        delay_op(d, ORION_OP_FLUSH, 0);
        return orion_bdev_flush(d->child, flags);
}

static int delay_discard(struct orion_bdev *b, uint64_t len, uint64_t off, uint32_t flags) {
        struct delay_node *d = orion_bdev_priv(b);

        delay_op(d, ORION_OP_DISCARD, 0);
        return orion_bdev_discard(d->child, len, off, flags);
}

static int delay_write_zeroes(struct orion_bdev *b, uint64_t len, uint64_t off, uint32_t flags) {
        struct delay_node *d = orion_bdev_priv(b);

        delay_op(d, ORION_OP_WRITE_ZEROES, 0);
        return orion_bdev_write_zeroes(d->child, len, off, flags);
}

static int delay_block_status(struct orion_bdev *b, uint64_t len, uint64_t off, struct orion_extents *ext) {
        struct delay_node *d = orion_bdev_priv(b);

        return orion_bdev_block_status(d->child, len, off, ext);
}

/* ---- Control --------------------------------------------------------------------------------- */
static struct json_object *delays_to_json(struct delay_node *d) {
        struct json_object *o = json_object_new_object();

        for (int op = 0; op < _ORION_OP_MAX; op++)
                json_object_object_add(o, g_keys[op], json_object_new_uint64(atomic_load(&d->ns[op]) / 1000));
        json_object_object_add(o, "unit", json_object_new_string("us"));
        json_object_object_add(o, "rate", json_object_new_uint64(d->rate));
        return o;
}

/* `set {"read-delay": "10ms", ...}` changes the named delays; `status` shows them. */
static int delay_ctl(struct orion_bdev *b, const char *verb, struct json_object *args,
                     struct json_object **ret_reply, struct orion_error *err) {
        struct delay_node *d = orion_bdev_priv(b);
        uint64_t ns[_ORION_OP_MAX];

        if (strcmp(verb, "set") == 0) {
                if (!args || !json_object_is_type(args, json_type_object))
                        return orion_error_set(err, EINVAL, "delay: set needs an object, e.g. {\"read-delay\":\"10ms\"}");
                for (int op = 0; op < _ORION_OP_MAX; op++)
                        ns[op] = atomic_load(&d->ns[op]);
                json_object_object_foreach(args, key, val) {
                        int op;

                        for (op = 0; op < _ORION_OP_MAX; op++)
                                if (strcmp(key, g_keys[op]) == 0)
                                        break;
                        if (op == _ORION_OP_MAX)
                                return orion_error_set(err, EINVAL, "delay: unknown key '%s'", key);
                        if (parse_duration(json_object_get_string(val), &ns[op]) < 0)
                                return orion_error_set(err, EINVAL, "delay: %s '%s' is not a duration (10ms, 250us, 1s)",
                                                       key, json_object_get_string(val));
                }
                for (int op = 0; op < _ORION_OP_MAX; op++)
                        atomic_store(&d->ns[op], ns[op]);
        } else if (strcmp(verb, "status") != 0)
                return orion_error_set(err, EOPNOTSUPP, "delay: unknown verb '%s' (set, status)", verb);
        if (ret_reply)
                *ret_reply = delays_to_json(d);
        return 0;
}

static void delay_status(struct orion_bdev *b, struct json_object *out) {
        json_object_object_add(out, "delays", delays_to_json(orion_bdev_priv(b)));
}

static void delay_stats(struct orion_bdev *b, struct json_object *sink) {
        struct delay_node *d = orion_bdev_priv(b);

        orion_stats_put(sink, "delayed", atomic_load(&d->delayed));
}

/* ---- Lifecycle ------------------------------------------------------------------------------- */
static int delay_open(struct orion_bdev *b, const struct orion_params *p, struct orion_error *err) {
        struct delay_node *d = orion_bdev_priv(b);
        int r;

        d->child = orion_param_node(p, "child");
        if (!d->child)
                return orion_error_set(err, EINVAL, "delay: child= is required");
        for (int op = 0; op < _ORION_OP_MAX; op++) {
                const char *v = orion_param_str(p, g_keys[op]);
                uint64_t ns = 0;

                if (parse_duration(v, &ns) < 0)
                        return orion_error_set(err, EINVAL, "delay: %s '%s' is not a duration (10ms, 250us, 1s)",
                                               g_keys[op], v);
                atomic_store(&d->ns[op], ns);
        }
        d->rate = orion_param_size(p, "rate");
        pthread_mutex_init(&d->busy_lock, NULL);
        r = orion_bdev_set_geometry(b, orion_bdev_geometry(d->child));
        if (r < 0) {
                pthread_mutex_destroy(&d->busy_lock);
                return orion_error_set(err, -r, "delay: cannot take the geometry of '%s'", orion_bdev_name(d->child));
        }
        orion_bdev_set_caps(b, orion_bdev_caps(d->child));
        return 0;
}

static const struct orion_param delay_params[] = {
        { .name = "child", .type = ORION_PARAM_NODE, .help = "The node requests pass through to." },
        { .name = "read-delay", .type = ORION_PARAM_STRING, .def = "0",
          .help = "Latency added to each read: 10ms, 250us, 1s (a bare number is seconds)." },
        { .name = "write-delay", .type = ORION_PARAM_STRING, .def = "0", .help = "Latency added to each write." },
        { .name = "flush-delay", .type = ORION_PARAM_STRING, .def = "0", .help = "Latency added to each flush." },
        { .name = "discard-delay", .type = ORION_PARAM_STRING, .def = "0", .help = "Latency added to each discard." },
        { .name = "zeroes-delay", .type = ORION_PARAM_STRING, .def = "0",
          .help = "Latency added to each write-zeroes." },
        { .name = "rate", .type = ORION_PARAM_SIZE, .def = "0",
          .help = "Bytes per second that reads and writes share, one transfer after another (0 = unlimited)." },
        {},
};

static void delay_close(struct orion_bdev *b) {
        struct delay_node *d = orion_bdev_priv(b);

        pthread_mutex_destroy(&d->busy_lock);
}

static const struct orion_bdev_ops delay_ops = {
        .pread = delay_pread,
        .pwrite = delay_pwrite,
        .flush = delay_flush,
        .discard = delay_discard,
        .write_zeroes = delay_write_zeroes,
        .block_status = delay_block_status,
        .stats = delay_stats,
        .ctl = delay_ctl,
        .status = delay_status,
        .close = delay_close,
};

ORION_PLUGIN(.name = "delay", .description = "Adds latency per operation type (slow devices in tests)",
             .params = delay_params, .instance_size = sizeof(struct delay_node), .ops = &delay_ops,
             .open = delay_open);
