/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Connection-loss policy of the remote leaves: waiting within retry-timeout, EIO and
 * DEGRADED health after it, recovery when a connection comes back. */
#include <errno.h>
#include <time.h>

#include "backend/remote.h"
#include "common/cleanup.h"
#include "orion/log.h"

uint64_t remote_now_ns(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

void remote_init(struct remote_state *rs, struct orion_bdev *b, const char *what, uint64_t window_ns) {
        pthread_condattr_t ca;

        pthread_mutex_init(&rs->lock, NULL);
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&rs->cond, &ca);
        pthread_condattr_destroy(&ca);
        rs->bdev = b;
        rs->what = what;
        rs->window_ns = window_ns;
}

void remote_done(struct remote_state *rs) {
        pthread_cond_destroy(&rs->cond);
        pthread_mutex_destroy(&rs->lock);
}

void remote_conn_up(struct remote_state *rs, bool reconnect) {
        bool recovered = false;

        WITH_LOCK(&rs->lock) {
                recovered = rs->up == 0 && rs->down_since != 0;
                __atomic_store_n(&rs->up, rs->up + 1, __ATOMIC_RELEASE);
                if (rs->up == 1) {
                        rs->down_since = 0;
                        rs->gave_up = false;
                }
                if (reconnect)
                        rs->reconnects++;
                pthread_cond_broadcast(&rs->cond);
        }
        if (recovered) {
                orion_info("%s: reconnected", rs->what);
                orion_bdev_set_health(rs->bdev, ORION_HEALTH_OK, NULL);
        }
}

void remote_conn_down(struct remote_state *rs, const char *reason) {
        bool last = false;

        WITH_LOCK(&rs->lock) {
                if (rs->up > 0)
                        __atomic_store_n(&rs->up, rs->up - 1, __ATOMIC_RELEASE);
                rs->generation++;
                last = rs->up == 0 && !rs->stopping;
                if (last && rs->down_since == 0)
                        rs->down_since = remote_now_ns();
        }
        if (last) {
                orion_warn("%s: connection lost (%s), reconnecting", rs->what, reason);
                orion_bdev_set_health(rs->bdev, ORION_HEALTH_DEGRADED, "connection lost (%s), reconnecting", reason);
        }
}

static void give_up_locked(struct remote_state *rs) {
        if (rs->gave_up)
                return;
        rs->gave_up = true;
        orion_error("%s: server unreachable for longer than retry-timeout: failing requests with EIO", rs->what);
        orion_bdev_set_health(rs->bdev, ORION_HEALTH_DEGRADED,
                              "server unreachable past retry-timeout; requests fail with EIO until it returns");
}

int remote_wait_up(struct remote_state *rs) {
        /* Fast path without the lock, which every request would otherwise take: a connection
         * is up and the leaf is not closing. */
        if (__atomic_load_n(&rs->up, __ATOMIC_ACQUIRE) > 0 && !__atomic_load_n(&rs->stopping, __ATOMIC_ACQUIRE))
                return 0;
        LOCK_GUARD(&rs->lock);

        for (;;) {
                uint64_t deadline;
                struct timespec ts;

                if (rs->stopping)
                        return -ESHUTDOWN;
                if (rs->up > 0)
                        return 0;
                if (rs->gave_up)
                        return -EIO;
                deadline = rs->down_since + rs->window_ns;
                if (rs->down_since == 0) /* never connected yet: count from now */
                        deadline = (rs->down_since = remote_now_ns()) + rs->window_ns;
                if (remote_now_ns() >= deadline) {
                        give_up_locked(rs);
                        return -EIO;
                }
                ts.tv_sec = (time_t) (deadline / 1000000000u);
                ts.tv_nsec = (long) (deadline % 1000000000u);
                (void) pthread_cond_timedwait(&rs->cond, &rs->lock, &ts);
        }
}

uint64_t remote_backoff_ns(unsigned attempt) {
        uint64_t ns = 50000000u;

        for (unsigned i = 0; i < attempt && ns < 2000000000u; i++)
                ns *= 2;
        return MIN(ns, (uint64_t) 2000000000u);
}

bool remote_sleep(struct remote_state *rs, uint64_t ns) {
        uint64_t deadline = remote_now_ns() + ns;
        struct timespec ts = { (time_t) (deadline / 1000000000u), (long) (deadline % 1000000000u) };
        LOCK_GUARD(&rs->lock);

        while (!rs->stopping && remote_now_ns() < deadline)
                if (pthread_cond_timedwait(&rs->cond, &rs->lock, &ts) == ETIMEDOUT)
                        break;
        return !rs->stopping;
}

bool remote_expired(struct remote_state *rs) {
        LOCK_GUARD(&rs->lock);

        if (rs->up > 0)
                return false;
        if (rs->stopping || rs->gave_up)
                return true;
        if (rs->down_since != 0 && remote_now_ns() >= rs->down_since + rs->window_ns) {
                give_up_locked(rs);
                return true;
        }
        return false;
}
