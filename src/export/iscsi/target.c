/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The "iscsi" export driver: listener, targets and LUNs built from exports (one target per
 * export, or several LUNs per target with iscsi-target/iscsi-lun), CHAP settings and ACLs. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "common/cleanup.h"
#include "iscsi.h"
#include "iscsi-target.h"

#define DEFAULT_IQN_PREFIX "iqn.2026-11.org.orion"
#define MAX_LISTEN 8
#define MAX_TARGETS 1024
#define DEFAULT_MAX_CONNS 256

pthread_mutex_t g_tgt_lock = PTHREAD_MUTEX_INITIALIZER;
static struct iscsi_target *g_targets[MAX_TARGETS];
static unsigned g_ntargets;

struct accepted {
        int fd;
        struct sockaddr_storage peer;
        struct accepted *next;
};

static struct {
        const struct daemon_config *cfg;
        int lfd[MAX_LISTEN];
        char laddr[MAX_LISTEN][96];
        unsigned nl;
        int wake[2];
        pthread_t acceptor;
        bool running;
        pthread_mutex_t lock;
        pthread_cond_t cond;
        struct accepted *conns;
        unsigned nconns, max_conns;
        uint64_t total;
} g_srv = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER, .wake = { -1, -1 } };

const struct daemon_config *target_daemon_config(void) {
        return g_srv.cfg;
}

uint16_t target_portal_group(void) {
        return 1;
}

/* ---- LUs -------------------------------------------------------------------------------------- */
struct iscsi_lu *lu_ref(struct iscsi_lu *lu) {
        if (lu)
                atomic_fetch_add(&lu->refs, 1);
        return lu;
}

void lu_unref(struct iscsi_lu *lu) {
        if (!lu || atomic_fetch_sub(&lu->refs, 1) != 1)
                return;
        export_unref(lu->exp);
        pthread_rwlock_destroy(&lu->caw_lock);
        pthread_mutex_destroy(&lu->lock);
        pthread_cond_destroy(&lu->sanitize_cond);
        free(lu);
}

struct iscsi_lu *iscsi_lu_new(struct orion_export *e, uint64_t lun) {
        struct iscsi_lu *lu = calloc(1, sizeof(*lu));
        if (!lu)
                return NULL;
        atomic_init(&lu->refs, 1);
        lu->exp = export_ref(e);
        lu->bdev = e->node;
        lu->lun = lun;
        lu->readonly = e->readonly;
        uint32_t caps = orion_bdev_caps(e->node);
        lu->thin = (caps & ORION_CAP_DISCARD) && !e->readonly;
        lu->wce = caps & ORION_CAP_FLUSH;
        lu->block_size = orion_bdev_block_size(e->node);
        lu->nblocks = orion_bdev_size(e->node) / lu->block_size;
        pthread_rwlock_init(&lu->caw_lock, NULL);
        pthread_mutex_init(&lu->lock, NULL);
        pthread_cond_init(&lu->sanitize_cond, NULL);
        scsi_lu_fill_identity(lu, e->name);
        return lu;
}

struct iscsi_target *target_find_locked(const char *iqn) {
        for (unsigned i = 0; i < g_ntargets; i++)
                if (strcasecmp(g_targets[i]->iqn, iqn) == 0 && g_targets[i]->nluns > 0)
                        return g_targets[i];
        return NULL;
}

struct iscsi_lu *target_lu_get(struct iscsi_target *t, uint64_t lun) {
        if (!t || lun >= TARGET_MAX_LUNS)
                return NULL;
        LOCK_GUARD(&g_tgt_lock);
        return lu_ref(t->luns[lun]);
}

/* ---- ACLs and CHAP -------------------------------------------------------------------------- */
static bool word_in(const char *list, const char *w, bool nocase) {
        size_t wl = strlen(w);
        for (const char *p = list; *p;) {
                p += strspn(p, " ,\t");
                size_t l = strcspn(p, " ,\t");
                if (l == wl && (nocase ? strncasecmp(p, w, l) : strncmp(p, w, l)) == 0)
                        return true;
                p += l;
        }
        return false;
}

static bool addr_match(const char *pat, size_t plen, const struct sockaddr_storage *peer) {
        char buf[80];
        if (plen >= sizeof(buf))
                return false;
        memcpy(buf, pat, plen);
        buf[plen] = 0;
        char *slash = strchr(buf, '/');
        long bits = -1;
        if (slash) {
                char *end;
                *slash = 0;
                bits = strtol(slash + 1, &end, 10);
                if (*end || bits < 0 || bits > 128)
                        return false;
        }
        if (peer->ss_family == AF_INET) {
                struct in_addr a;
                const struct sockaddr_in *s = (const struct sockaddr_in *) peer;
                if (inet_pton(AF_INET, buf, &a) != 1)
                        return false;
                if (bits < 0 || bits > 32)
                        bits = 32;
                uint32_t mask = bits == 0 ? 0 : htonl(~0u << (32 - bits));
                return (a.s_addr & mask) == (s->sin_addr.s_addr & mask);
        }
        if (peer->ss_family == AF_INET6) {
                struct in6_addr a;
                const struct sockaddr_in6 *s = (const struct sockaddr_in6 *) peer;
                if (inet_pton(AF_INET6, buf, &a) != 1)
                        return false;
                if (bits < 0 || bits > 128)
                        bits = 128;
                for (int i = 0; i < 16; i++) {
                        int b = (int) bits - i * 8;
                        uint8_t m = b >= 8 ? 0xff : b <= 0 ? 0 : (uint8_t) (0xff << (8 - b));
                        if ((a.s6_addr[i] & m) != (s->sin6_addr.s6_addr[i] & m))
                                return false;
                }
                return true;
        }
        return false;
}

static bool addr_allowed(const char *list, const struct sockaddr_storage *peer) {
        for (const char *p = list; *p;) {
                p += strspn(p, " ,\t");
                size_t l = strcspn(p, " ,\t");
                if (l && addr_match(p, l, peer))
                        return true;
                p += l;
        }
        return false;
}

static const char *dopt(const char *key) {
        return config_opt(g_srv.cfg, key);
}

bool target_acl_allows_locked(const struct iscsi_target *t, const char *initiator, const struct sockaddr_storage *peer) {
        const char *ini = t->allow_initiators ? t->allow_initiators : dopt("iscsi-allow-initiators");
        const char *adr = t->allow_addresses ? t->allow_addresses : dopt("iscsi-allow-addresses");
        if (ini && !word_in(ini, initiator, true))
                return false;
        if (adr && !addr_allowed(adr, peer))
                return false;
        return true;
}

void target_chap_locked(const struct iscsi_target *t, bool discovery, struct chap_cfg *ret) {
        *ret = (struct chap_cfg){
                .user = dopt("iscsi-chap-user"),
                .secret = dopt("iscsi-chap-secret"),
                .mutual_user = dopt("iscsi-mutual-user"),
                .mutual_secret = dopt("iscsi-mutual-secret"),
        };
        if (discovery || !t)
                return;
        if (t->chap_secret) {
                ret->user = t->chap_user;
                ret->secret = t->chap_secret;
        }
        if (t->mutual_secret) {
                ret->mutual_user = t->mutual_user;
                ret->mutual_secret = t->mutual_secret;
        }
}

int target_sendtargets(struct text_buf *out, const char *which, const char *initiator,
                       const struct sockaddr_storage *peer, const char *only_iqn, const char *portal) {
        LOCK_GUARD(&g_tgt_lock);
        bool all = strcmp(which, "All") == 0;
        for (unsigned i = 0; i < g_ntargets; i++) {
                struct iscsi_target *t = g_targets[i];
                if (t->nluns == 0 || (only_iqn && strcasecmp(t->iqn, only_iqn) != 0))
                        continue;
                if (!all && strcasecmp(t->iqn, which) != 0)
                        continue;
                if (!target_acl_allows_locked(t, initiator, peer))
                        continue;
                int r = text_add(out, "TargetName", "%s", t->iqn);
                if (r >= 0)
                        r = text_add(out, "TargetAddress", "%s,%u", portal, target_portal_group());
                if (r < 0)
                        return r;
        }
        return 0;
}

/* ---- Export callbacks ------------------------------------------------------------------------- */
static const char *eopt(const struct orion_export *e, const char *key) {
        struct json_object *v;
        if (!e->opts || !json_object_object_get_ex(e->opts, key, &v))
                return NULL;
        return json_object_get_string(v);
}

static bool valid_iqn(const char *s) {
        size_t l = strlen(s);
        if (l < 4 || l > 223)
                return false;
        if (strncmp(s, "iqn.", 4) != 0 && strncmp(s, "eui.", 4) != 0 && strncmp(s, "naa.", 4) != 0)
                return false;
        for (const char *p = s; *p; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '.' || *p == '-' || *p == ':' ||
                      (*p >= 'A' && *p <= 'Z')))
                        return false;
        return true;
}

static int set_str(char **dst, const char *v) {
        if (!v || *dst)
                return 0;
        *dst = strdup(v);
        return *dst ? 0 : -ENOMEM;
}

static void target_free(struct iscsi_target *t) {
        free(t->allow_initiators);
        free(t->allow_addresses);
        free(t->chap_user);
        free(t->chap_secret);
        free(t->mutual_user);
        free(t->mutual_secret);
        free(t);
}

/* Where an export lands: its target IQN and LUN. */
static int export_place(const struct orion_export *e, char *iqn, size_t iqnlen, int64_t *ret_lun,
                        struct orion_error *err) {
        const char *prefix = dopt("iscsi-iqn-prefix") ? dopt("iscsi-iqn-prefix") : DEFAULT_IQN_PREFIX;
        const char *tn = eopt(e, "iscsi-target"), *ls = eopt(e, "iscsi-lun");
        if (tn && (strncmp(tn, "iqn.", 4) == 0 || strncmp(tn, "eui.", 4) == 0 || strncmp(tn, "naa.", 4) == 0))
                snprintf(iqn, iqnlen, "%s", tn);
        else
                snprintf(iqn, iqnlen, "%s:%s", prefix, tn ? tn : e->name);
        for (char *p = iqn; *p; p++) /* IQNs are case-insensitive; keep them lower case */
                if (*p >= 'A' && *p <= 'Z')
                        *p = (char) (*p - 'A' + 'a');
        if (!valid_iqn(iqn))
                return orion_error_set(err, EINVAL, "iscsi: export '%s': invalid target name '%s'", e->name, iqn);
        *ret_lun = -1;
        if (ls) {
                int64_t n;
                if (parse_int64(ls, &n) < 0 || n < 0 || n >= TARGET_MAX_LUNS)
                        return orion_error_set(err, EINVAL, "iscsi: export '%s': iscsi-lun must be 0..%d", e->name,
                                               TARGET_MAX_LUNS - 1);
                *ret_lun = n;
        }
        return 0;
}

static int target_get_locked(const char *iqn, const struct orion_export *e, struct iscsi_target **ret,
                             struct orion_error *err) {
        struct iscsi_target *t = NULL;
        for (unsigned i = 0; i < g_ntargets; i++)
                if (strcasecmp(g_targets[i]->iqn, iqn) == 0)
                        t = g_targets[i];
        if (!t) {
                if (g_ntargets >= MAX_TARGETS)
                        return orion_error_set(err, ENOSPC, "iscsi: too many targets");
                t = calloc(1, sizeof(*t));
                if (!t)
                        return orion_error_set(err, ENOMEM, "out of memory");
                snprintf(t->iqn, sizeof(t->iqn), "%s", iqn);
                g_targets[g_ntargets++] = t;
        }
        /* The first export that sets a key decides it for the whole target. */
        if (set_str(&t->allow_initiators, eopt(e, "iscsi-allow-initiators")) < 0 ||
            set_str(&t->allow_addresses, eopt(e, "iscsi-allow-addresses")) < 0 ||
            set_str(&t->chap_user, eopt(e, "iscsi-chap-user")) < 0 ||
            set_str(&t->chap_secret, eopt(e, "iscsi-chap-secret")) < 0 ||
            set_str(&t->mutual_user, eopt(e, "iscsi-mutual-user")) < 0 ||
            set_str(&t->mutual_secret, eopt(e, "iscsi-mutual-secret")) < 0)
                return orion_error_set(err, ENOMEM, "out of memory");
        *ret = t;
        return 0;
}

static int iscsi_export_added(struct orion_export *e, struct orion_error *err) {
        char iqn[224];
        int64_t lun;
        struct iscsi_target *t = NULL;
        int r;

        r = export_place(e, iqn, sizeof(iqn), &lun, err);
        if (r < 0)
                return r;
        if (eopt(e, "iscsi-thin") && parse_bool(eopt(e, "iscsi-thin")) < 0 && strcmp(eopt(e, "iscsi-thin"), "auto") != 0)
                return orion_error_set(err, EINVAL, "iscsi: export '%s': iscsi-thin must be auto, on or off", e->name);
#if !HAVE_GCRYPT
        if (eopt(e, "iscsi-chap-secret") || dopt("iscsi-chap-secret"))
                return orion_error_set(err, EOPNOTSUPP, "iscsi: CHAP needs libgcrypt, not in this build");
#endif
        if ((eopt(e, "iscsi-chap-secret") && !eopt(e, "iscsi-chap-user")) ||
            (eopt(e, "iscsi-mutual-secret") && !eopt(e, "iscsi-mutual-user")))
                return orion_error_set(err, EINVAL, "iscsi: export '%s': a CHAP secret needs its user name", e->name);
        if (orion_bdev_size(e->node) < orion_bdev_block_size(e->node))
                return orion_error_set(err, EINVAL, "iscsi: export '%s': node smaller than one block", e->name);
        LOCK_GUARD(&g_tgt_lock);
        r = target_get_locked(iqn, e, &t, err);
        if (r < 0)
                return r;
        if (lun < 0) {
                for (lun = 0; lun < TARGET_MAX_LUNS && t->luns[lun]; lun++)
                        ;
                if (lun == TARGET_MAX_LUNS)
                        return orion_error_set(err, ENOSPC, "iscsi: target '%s' has no free LUN", iqn);
        } else if (t->luns[lun])
                return orion_error_set(err, EEXIST, "iscsi: LUN %lld of '%s' is taken by export '%s'",
                                       (long long) lun, iqn, t->luns[lun]->exp->name);
        struct iscsi_lu *lu = iscsi_lu_new(e, (uint64_t) lun);
        if (!lu)
                return orion_error_set(err, ENOMEM, "out of memory");
        /* iscsi-thin = off: present a discard-capable node as a fully provisioned LU. */
        if (eopt(e, "iscsi-thin") && parse_bool(eopt(e, "iscsi-thin")) == 0)
                lu->thin = false;
        if (eopt(e, "iscsi-thin") && parse_bool(eopt(e, "iscsi-thin")) == 1 && !lu->thin) {
                lu_unref(lu);
                return orion_error_set(err, EINVAL, "iscsi: export '%s': iscsi-thin = on needs a node that can discard",
                                       e->name);
        }
        t->luns[lun] = lu;
        t->nluns++;
        orion_info("iscsi: export '%s' is LUN %lld of %s", e->name, (long long) lun, iqn);
        return 0;
}

static void iscsi_export_removed(struct orion_export *e) {
        struct iscsi_lu *gone[TARGET_MAX_LUNS];
        unsigned n = 0;
        {
                LOCK_GUARD(&g_tgt_lock);
                for (unsigned i = 0; i < g_ntargets; i++) {
                        struct iscsi_target *t = g_targets[i];
                        for (unsigned l = 0; l < TARGET_MAX_LUNS; l++)
                                if (t->luns[l] && t->luns[l]->exp == e && n < TARGET_MAX_LUNS) {
                                        gone[n++] = t->luns[l];
                                        t->luns[l] = NULL;
                                        t->nluns--;
                                }
                }
        }
        /* Commands still running on the LU finish unanswered; new ones see no such LUN. */
        for (unsigned i = 0; i < n; i++) {
                sessions_abort_lu(gone[i], NULL);
                sanitize_cancel(gone[i]);
                lu_unref(gone[i]);
        }
}

/* ---- Listener --------------------------------------------------------------------------------- */
static int listen_one(const char *addr, struct orion_error *err) {
        char host[256];
        const char *port = "3260";
        const char *colon = strrchr(addr, ':');
        size_t hl;

        if (addr[0] == '[') {
                const char *rb = strchr(addr, ']');
                if (!rb)
                        return orion_error_set(err, EINVAL, "iscsi: bad listen address '%s'", addr);
                hl = (size_t) (rb - addr - 1);
                if (hl >= sizeof(host))
                        return orion_error_set(err, EINVAL, "iscsi: bad listen address '%s'", addr);
                memcpy(host, addr + 1, hl);
                host[hl] = 0;
                if (rb[1] == ':')
                        port = rb + 2;
        } else {
                hl = colon ? (size_t) (colon - addr) : strlen(addr);
                if (hl >= sizeof(host))
                        return orion_error_set(err, EINVAL, "iscsi: bad listen address '%s'", addr);
                memcpy(host, addr, hl);
                host[hl] = 0;
                if (colon)
                        port = colon + 1;
        }
        struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV }, *ai;
        int r = getaddrinfo(host[0] ? host : NULL, port, &hints, &ai);
        if (r != 0)
                return orion_error_set(err, EINVAL, "iscsi: listen address '%s': %s", addr, gai_strerror(r));
        int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
        if (fd < 0) {
                freeaddrinfo(ai);
                return orion_error_set(err, errno, "iscsi: socket: %m");
        }
        (void) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 64) < 0) {
                r = orion_error_set(err, errno, "iscsi: cannot listen on %s: %m", addr);
                freeaddrinfo(ai);
                (void) close(fd);
                return r;
        }
        freeaddrinfo(ai);
        if (g_srv.nl >= MAX_LISTEN) {
                (void) close(fd);
                return orion_error_set(err, E2BIG, "iscsi: too many listen addresses");
        }
        snprintf(g_srv.laddr[g_srv.nl], sizeof(g_srv.laddr[0]), "%s", addr);
        g_srv.lfd[g_srv.nl++] = fd;
        return 0;
}

static void *conn_thread(void *arg) {
        struct accepted *a = arg;
        conn_serve(a->fd, &a->peer);
        LOCK_GUARD(&g_srv.lock);
        for (struct accepted **pp = &g_srv.conns; *pp; pp = &(*pp)->next)
                if (*pp == a) {
                        *pp = a->next;
                        break;
                }
        (void) close(a->fd);
        free(a);
        g_srv.nconns--;
        pthread_cond_broadcast(&g_srv.cond);
        return NULL;
}

static void accept_one(int lfd) {
        struct accepted *a = calloc(1, sizeof(*a));
        socklen_t sl = sizeof(a->peer);
        pthread_t th;
        pthread_attr_t attr;

        if (!a)
                return;
        a->fd = accept4(lfd, (struct sockaddr *) &a->peer, &sl, SOCK_CLOEXEC);
        if (a->fd < 0) {
                free(a);
                return;
        }
        LOCK_GUARD(&g_srv.lock);
        if (g_srv.nconns >= g_srv.max_conns) {
                orion_log_ratelimited(ORION_LOG_WARNING, "iscsi: connection limit (%u) reached", g_srv.max_conns);
                (void) close(a->fd);
                free(a);
                return;
        }
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&th, &attr, conn_thread, a) != 0) {
                pthread_attr_destroy(&attr);
                (void) close(a->fd);
                free(a);
                return;
        }
        pthread_attr_destroy(&attr);
        a->next = g_srv.conns;
        g_srv.conns = a;
        g_srv.nconns++;
        g_srv.total++;
}

static void *acceptor(void *arg) {
        (void) arg;
        for (;;) {
                struct pollfd pfd[MAX_LISTEN + 1];
                for (unsigned i = 0; i < g_srv.nl; i++)
                        pfd[i] = (struct pollfd){ .fd = g_srv.lfd[i], .events = POLLIN };
                pfd[g_srv.nl] = (struct pollfd){ .fd = g_srv.wake[0], .events = POLLIN };
                if (poll(pfd, g_srv.nl + 1, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        break;
                }
                if (pfd[g_srv.nl].revents)
                        break;
                for (unsigned i = 0; i < g_srv.nl; i++)
                        if (pfd[i].revents & POLLIN)
                                accept_one(g_srv.lfd[i]);
        }
        return NULL;
}

static int uint_opt(const char *key, unsigned def, unsigned max, unsigned *ret, struct orion_error *err) {
        const char *v = dopt(key);
        int64_t n;
        *ret = def;
        if (!v)
                return 0;
        if (parse_int64(v, &n) < 0 || n < 0 || n > max)
                return orion_error_set(err, EINVAL, "iscsi: bad value '%s' for %s (0..%u)", v, key, max);
        *ret = (unsigned) n;
        return 0;
}

static unsigned g_nop_interval = 30, g_nop_count = 3;

void conn_apply_config(struct iscsi_conn *c) {
        c->nop_interval_s = g_nop_interval;
        c->nop_count = g_nop_count ? g_nop_count : 1;
}

static int iscsi_start(const struct daemon_config *cfg, struct orion_error *err) {
        int r;
        g_srv.cfg = cfg;
        if ((r = uint_opt("iscsi-max-connections", DEFAULT_MAX_CONNS, 100000, &g_srv.max_conns, err)) < 0 ||
            (r = uint_opt("iscsi-nop-interval", 30, 3600, &g_nop_interval, err)) < 0 ||
            (r = uint_opt("iscsi-nop-count", 3, 100, &g_nop_count, err)) < 0)
                return r;
#if !HAVE_GCRYPT
        if (dopt("iscsi-chap-secret"))
                return orion_error_set(err, EOPNOTSUPP, "iscsi: CHAP needs libgcrypt, not in this build");
#endif
        if ((dopt("iscsi-chap-secret") && !dopt("iscsi-chap-user")) ||
            (dopt("iscsi-mutual-secret") && !dopt("iscsi-mutual-user")))
                return orion_error_set(err, EINVAL, "iscsi: a CHAP secret needs its user name");
        const char *lst = cfg && cfg->iscsi_listen ? cfg->iscsi_listen : DEFAULT_ISCSI_LISTEN;
        _cleanup_free_ char *copy = strdup(lst);
        if (!copy)
                return orion_error_set(err, ENOMEM, "out of memory");
        char *save = NULL;
        for (char *w = strtok_r(copy, " \t", &save); w; w = strtok_r(NULL, " \t", &save))
                if ((r = listen_one(w, err)) < 0)
                        goto fail;
        if (g_srv.nl == 0) {
                orion_info("iscsi: no listen address configured, target not started");
                return 0;
        }
        if (pipe2(g_srv.wake, O_CLOEXEC) < 0) {
                r = orion_error_set(err, errno, "iscsi: pipe: %m");
                goto fail;
        }
        if (pthread_create(&g_srv.acceptor, NULL, acceptor, NULL) != 0) {
                r = orion_error_set(err, EAGAIN, "iscsi: cannot start the acceptor thread");
                goto fail;
        }
        g_srv.running = true;
        for (unsigned i = 0; i < g_srv.nl; i++)
                orion_info("iscsi: listening on %s", g_srv.laddr[i]);
        return 0;
fail:
        for (unsigned i = 0; i < g_srv.nl; i++)
                (void) close(g_srv.lfd[i]);
        g_srv.nl = 0;
        for (int i = 0; i < 2; i++)
                if (g_srv.wake[i] >= 0) {
                        (void) close(g_srv.wake[i]);
                        g_srv.wake[i] = -1;
                }
        return r;
}

static void iscsi_stop(void) {
        if (g_srv.running) {
                (void) write(g_srv.wake[1], "x", 1);
                (void) pthread_join(g_srv.acceptor, NULL);
                for (unsigned i = 0; i < g_srv.nl; i++)
                        (void) close(g_srv.lfd[i]);
                g_srv.nl = 0;
                for (int i = 0; i < 2; i++) {
                        (void) close(g_srv.wake[i]);
                        g_srv.wake[i] = -1;
                }
                LOCK_GUARD(&g_srv.lock);
                for (struct accepted *a = g_srv.conns; a; a = a->next)
                        (void) shutdown(a->fd, SHUT_RDWR);
                while (g_srv.nconns > 0)
                        pthread_cond_wait(&g_srv.cond, &g_srv.lock);
                g_srv.running = false;
        }
        LOCK_GUARD(&g_tgt_lock);
        for (unsigned i = 0; i < g_ntargets; i++) {
                for (unsigned l = 0; l < TARGET_MAX_LUNS; l++) {
                        if (g_targets[i]->luns[l])
                                sanitize_cancel(g_targets[i]->luns[l]);
                        lu_unref(g_targets[i]->luns[l]);
                }
                target_free(g_targets[i]);
        }
        g_ntargets = 0;
        orion_info("iscsi: target stopped");
}

static void iscsi_status(struct json_object *out) {
        struct json_object *listen = json_object_new_array(), *targets = json_object_new_array();
        for (unsigned i = 0; i < g_srv.nl; i++)
                json_object_array_add(listen, json_object_new_string(g_srv.laddr[i]));
        {
                LOCK_GUARD(&g_tgt_lock);
                for (unsigned i = 0; i < g_ntargets; i++) {
                        struct iscsi_target *t = g_targets[i];
                        if (!t->nluns)
                                continue;
                        struct json_object *o = json_object_new_object(), *luns = json_object_new_array();
                        json_object_object_add(o, "iqn", json_object_new_string(t->iqn));
                        for (unsigned l = 0; l < TARGET_MAX_LUNS; l++)
                                if (t->luns[l]) {
                                        struct json_object *lo = json_object_new_object();
                                        json_object_object_add(lo, "lun", json_object_new_int64(l));
                                        json_object_object_add(lo, "export", json_object_new_string(t->luns[l]->exp->name));
                                        json_object_object_add(lo, "thin", json_object_new_boolean(t->luns[l]->thin));
                                        json_object_array_add(luns, lo);
                                }
                        json_object_object_add(o, "luns", luns);
                        json_object_object_add(o, "chap", json_object_new_boolean(t->chap_secret || dopt("iscsi-chap-secret")));
                        json_object_array_add(targets, o);
                }
        }
        json_object_object_add(out, "listen", listen);
        json_object_object_add(out, "targets", targets);
        WITH_LOCK(&g_srv.lock) {
                json_object_object_add(out, "connections", json_object_new_int64(g_srv.nconns));
                json_object_object_add(out, "total-connections", json_object_new_uint64(g_srv.total));
        }
        json_object_object_add(out, "sessions", json_object_new_int64(sessions_count()));
}

const struct export_driver iscsi_export_driver = {
        .name = "iscsi",
        .proto = PROTO_ISCSI,
        .start = iscsi_start,
        .stop = iscsi_stop,
        .export_added = iscsi_export_added,
        .export_removed = iscsi_export_removed,
        .status = iscsi_status,
};
