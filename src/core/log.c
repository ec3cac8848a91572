/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The logger (stderr, with journald level prefixes under systemd) and control-path errors. */
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "orion/log.h"

static _Atomic int g_log_level = ORION_LOG_INFO;
static int g_journal = -1; /* -1 unknown, 0 plain, 1 journald prefixes */

void orion_log_set_level(enum orion_log_level level) {
        g_log_level = level;
}

enum orion_log_level orion_log_get_level(void) {
        return g_log_level;
}

bool orion_log_debug_enabled(void) {
        return g_log_level >= ORION_LOG_DEBUG;
}

static const char *level_name(enum orion_log_level level) {
        switch (level) {
        case ORION_LOG_ERR: return "error";
        case ORION_LOG_WARNING: return "warning";
        case ORION_LOG_NOTICE: return "notice";
        case ORION_LOG_INFO: return "info";
        default: return "debug";
        }
}

void orion_logv(enum orion_log_level level, const char *fmt, va_list ap) {
        int saved = errno;
        if ((int) level > g_log_level) {
                errno = saved;
                return;
        }
        if (g_journal < 0)
                g_journal = getenv("JOURNAL_STREAM") != NULL;

        /* One buffer, one write: lines from concurrent threads never interleave. */
        char line[2048];
        size_t n = 0;
        if (g_journal)
                n = (size_t) snprintf(line, sizeof line, "<%d>", (int) level);
        else {
                struct timespec ts;
                struct tm tm;
                clock_gettime(CLOCK_REALTIME, &ts);
                localtime_r(&ts.tv_sec, &tm);
                n = strftime(line, sizeof line, "%H:%M:%S", &tm);
                n += (size_t) snprintf(line + n, sizeof line - n, ".%03ld oriond %s: ", ts.tv_nsec / 1000000L,
                                       level_name(level));
        }
        errno = saved; /* for %m */
        int r = vsnprintf(line + n, sizeof line - n, fmt, ap);
        if (r < 0)
                r = 0;
        n += (size_t) r;
        if (n > sizeof line - 2)
                n = sizeof line - 2;
        line[n++] = '\n';
        fwrite(line, 1, n, stderr);
        errno = saved;
}

void orion_log(enum orion_log_level level, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        orion_logv(level, fmt, ap);
        va_end(ap);
}

bool orion_ratelimit_test(struct orion_ratelimit *rl) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        bool ok;
        while (__atomic_exchange_n(&rl->lock, 1, __ATOMIC_ACQUIRE))
                ;
        if (ts.tv_sec - rl->begin_s >= (long long) rl->interval_s) {
                rl->begin_s = ts.tv_sec;
                rl->count = 0;
        }
        ok = rl->count++ < rl->burst;
        __atomic_store_n(&rl->lock, 0, __ATOMIC_RELEASE);
        return ok;
}

int orion_error_set(struct orion_error *err, int code, const char *fmt, ...) {
        if (code < 0)
                code = -code;
        if (code == 0)
                code = EIO;
        if (err && err->code == 0) {
                int saved = errno;
                va_list ap;
                va_start(ap, fmt);
                errno = code; /* %m names the error being set */
                vsnprintf(err->msg, sizeof err->msg, fmt, ap);
                va_end(ap);
                err->code = code;
                errno = saved;
        }
        return -code;
}
