/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* iSCSI session registry: TSIH allocation, session reinstatement on the same initiator name and
 * ISID, LUN-reset fan-out to every nexus, and the shutdown of every connection. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "iscsi.h"

static pthread_mutex_t g_sess_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_sess_cond = PTHREAD_COND_INITIALIZER;
static struct iscsi_session *g_sessions;
static unsigned g_nsessions;
static uint16_t g_next_tsih = 1;

struct iscsi_session *session_new(const char *initiator, const uint8_t isid[6], bool discovery,
                                  struct iscsi_target *t) {
        struct iscsi_session *s = calloc(1, sizeof(*s));
        if (!s)
                return NULL;
        atomic_init(&s->refs, 1);
        pthread_mutex_init(&s->xcopy_lock, NULL);
        snprintf(s->initiator, sizeof(s->initiator), "%s", initiator);
        memcpy(s->isid, isid, 6);
        s->discovery = discovery;
        s->target = t;
        snprintf(s->nexus, sizeof(s->nexus), "%s,i,0x%02x%02x%02x%02x%02x%02x", initiator, isid[0], isid[1],
                 isid[2], isid[3], isid[4], isid[5]);
        params_default(&s->params);
        if (t) {
                LOCK_GUARD(&g_tgt_lock);
                for (unsigned i = 0; i < TARGET_MAX_LUNS; i++)
                        if (t->luns[i]) {
                                s->ua_seen[i] = atomic_load(&t->luns[i]->ua_gen);
                                s->mode_seen[i] = atomic_load(&t->luns[i]->mode_gen);
                        }
        }
        return s;
}

struct iscsi_session *session_unref(struct iscsi_session *s) {
        if (s && atomic_fetch_sub(&s->refs, 1) == 1) {
                pthread_mutex_destroy(&s->xcopy_lock);
                free(s);
        }
        return NULL;
}

void session_register(struct iscsi_session *s) {
        LOCK_GUARD(&g_sess_lock);
        do
                s->tsih = g_next_tsih++;
        while (s->tsih == 0);
        /* Reinstatement: a new login with the same I_T nexus replaces the old session. */
        for (struct iscsi_session *o = g_sessions; o; o = o->next)
                if (o->conn && !o->discovery && !s->discovery && o->target == s->target &&
                    strcmp(o->nexus, s->nexus) == 0) {
                        orion_info("iscsi: reinstating session of '%s' (tsih %u)", o->initiator, o->tsih);
                        (void) shutdown(o->conn->fd, SHUT_RDWR);
                }
        s->next = g_sessions;
        g_sessions = s;
        g_nsessions++;
        atomic_fetch_add(&s->refs, 1);
}

void session_unregister(struct iscsi_session *s) {
        bool found = false;
        {
                LOCK_GUARD(&g_sess_lock);
                for (struct iscsi_session **pp = &g_sessions; *pp; pp = &(*pp)->next)
                        if (*pp == s) {
                                *pp = s->next;
                                g_nsessions--;
                                found = true;
                                break;
                        }
                pthread_cond_broadcast(&g_sess_cond);
        }
        /* The nexus is gone: a RESERVE(6) it held goes with it. */
        if (found && s->target) {
                for (unsigned i = 0; i < TARGET_MAX_LUNS; i++) {
                        struct iscsi_lu *lu = target_lu_get(s->target, i);
                        if (lu) {
                                pr_nexus_gone(lu, s->nexus);
                                lu_unref(lu);
                        }
                }
        }
        if (found)
                session_unref(s);
}

unsigned sessions_count(void) {
        LOCK_GUARD(&g_sess_lock);
        return g_nsessions;
}

void sessions_abort_lu(struct iscsi_lu *lu, struct iscsi_conn *except) {
        {
                LOCK_GUARD(&g_sess_lock);
                for (struct iscsi_session *s = g_sessions; s; s = s->next)
                        if (s->conn && s->conn != except)
                                conn_abort_lu(s->conn, lu, false);
        }
        /* Wait for commands already executing on the LU (they no longer answer). */
        for (int i = 0; i < 30000 && atomic_load(&lu->inflight) > 0; i++)
                usleep(1000);
}

void sessions_shutdown(void) {
        LOCK_GUARD(&g_sess_lock);
        for (struct iscsi_session *s = g_sessions; s; s = s->next)
                if (s->conn)
                        (void) shutdown(s->conn->fd, SHUT_RDWR);
}

void conn_peer_string(struct iscsi_conn *c) {
        char host[INET6_ADDRSTRLEN] = "?";
        unsigned port = 0;
        if (c->peer.ss_family == AF_INET) {
                const struct sockaddr_in *a = (const struct sockaddr_in *) &c->peer;
                (void) inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
                port = ntohs(a->sin_port);
        } else if (c->peer.ss_family == AF_INET6) {
                const struct sockaddr_in6 *a = (const struct sockaddr_in6 *) &c->peer;
                (void) inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
                port = ntohs(a->sin6_port);
        } else
                snprintf(host, sizeof(host), "local");
        snprintf(c->peer_str, sizeof(c->peer_str), "%s:%u", host, port);
}

void sessions_drop_target(const struct iscsi_target *t) {
        LOCK_GUARD(&g_sess_lock);
        for (struct iscsi_session *s = g_sessions; s; s = s->next)
                if (s->conn && s->target == t)
                        (void) shutdown(s->conn->fd, SHUT_RDWR);
}
