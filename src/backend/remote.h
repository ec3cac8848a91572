/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Connection-loss policy shared by the remote leaves (nbd, iscsi): requests wait while the
 * leaf reconnects, up to retry-timeout; past it they fail with EIO and the node is degraded. */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "orion/bdev.h"

struct remote_state {
        pthread_mutex_t lock;
        pthread_cond_t cond;      /* signalled when a connection comes up or the leaf stops */
        struct orion_bdev *bdev;
        const char *what;         /* "nbd: 'nbd://...'" for messages */
        uint64_t window_ns;       /* retry-timeout */
        unsigned up;              /* live connections */
        uint64_t down_since;      /* when the last live connection went away (0 = not down) */
        bool gave_up;             /* past the window: requests fail at once until a reconnect */
        bool stopping;
        uint64_t reconnects;      /* successful reconnects, for stats */
        uint64_t generation;      /* bumped on every connection loss */
};

uint64_t remote_now_ns(void);
void remote_init(struct remote_state *rs, struct orion_bdev *b, const char *what, uint64_t window_ns);
void remote_done(struct remote_state *rs);
/* A connection came up / went down (called by the connection owner). */
void remote_conn_up(struct remote_state *rs, bool reconnect);
void remote_conn_down(struct remote_state *rs, const char *reason);
/* Wait until a connection is up. Returns 0, or -EIO once the window has passed (and marks
 * the node degraded), or -ESHUTDOWN when the leaf is closing. */
int remote_wait_up(struct remote_state *rs);
/* Back-off delay for reconnect attempt n (0, 1, ...): 50 ms doubling up to 2 s. */
uint64_t remote_backoff_ns(unsigned attempt);
/* Sleep up to ns, waking early when the leaf stops. Returns false when stopping. */
bool remote_sleep(struct remote_state *rs, uint64_t ns);
/* For requests already queued while disconnected: true once they must fail (past the window,
 * node marked degraded, or stopping). */
bool remote_expired(struct remote_state *rs);
