/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Orion logging and control-path errors: the only way library and plugin code reports anything. */
#pragma once

#include <stdarg.h>
#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Levels follow syslog(3) numbering so that journald prefixes are direct. */
enum orion_log_level {
        ORION_LOG_ERR = 3,
        ORION_LOG_WARNING = 4,
        ORION_LOG_NOTICE = 5,
        ORION_LOG_INFO = 6,
        ORION_LOG_DEBUG = 7,
};

/* Log one line. Keeps errno, so "%m" works and the caller can still read errno afterwards.
 * Lines go to stderr; under systemd (JOURNAL_STREAM set) they carry "<N>" level prefixes. */
void orion_log(enum orion_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void orion_logv(enum orion_log_level level, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

/* Messages above this level are dropped. Default ORION_LOG_INFO; -v sets DEBUG. */
void orion_log_set_level(enum orion_log_level level);
enum orion_log_level orion_log_get_level(void);
bool orion_log_debug_enabled(void);

#define orion_error(...) orion_log(ORION_LOG_ERR, __VA_ARGS__)
#define orion_warn(...) orion_log(ORION_LOG_WARNING, __VA_ARGS__)
#define orion_notice(...) orion_log(ORION_LOG_NOTICE, __VA_ARGS__)
#define orion_info(...) orion_log(ORION_LOG_INFO, __VA_ARGS__)
#define orion_debug(...)                                                  \
        do {                                                              \
                if (orion_log_debug_enabled())                            \
                        orion_log(ORION_LOG_DEBUG, __VA_ARGS__);          \
        } while (0)

/* Log at most `burst` lines per `interval_s` seconds from one call site (data-path errors).
 * Usage: orion_log_ratelimited(ORION_LOG_ERR, "raid: read error on '%s'", name); */
#define orion_log_ratelimited(level, ...)                                                 \
        do {                                                                              \
                static struct orion_ratelimit orion__rl_ = { .interval_s = 5, .burst = 10 }; \
                if (orion_ratelimit_test(&orion__rl_))                                    \
                        orion_log(level, __VA_ARGS__);                                    \
        } while (0)

struct orion_ratelimit {
        unsigned interval_s;
        unsigned burst;
        /* private */
        long long begin_s;
        unsigned count;
        int lock;
};
bool orion_ratelimit_test(struct orion_ratelimit *rl);

/* ---- Control-path errors ----------------------------------------------------------------
 * Config, open and management calls take `struct orion_error *err` as their last parameter.
 * On failure they set it once (first error wins) and return a negative errno; on success they
 * leave it alone. err may be NULL. The control server sends {errno, message} to orionctl. */
struct orion_error {
        int code;           /* positive errno, 0 = unset */
        char msg[512];
};

/* Sets err (if not yet set) and returns -code, so: return orion_error_set(err, EINVAL, "..."); */
int orion_error_set(struct orion_error *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static inline bool orion_error_is_set(const struct orion_error *err) {
        return err && err->code != 0;
}

#ifdef __cplusplus
}
#endif
