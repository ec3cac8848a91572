/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* `nbd` leaf: a remote NBD export through libnbd's asynchronous API. One I/O thread per
 * connection drives the socket; callers issue commands from any thread and wait for their own
 * completion, so many requests are in flight. Lost connections are re-established (remote.c). */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <json-c/json.h>
#include <libnbd.h>

#include "backend/remote.h"
#include "common/cleanup.h"
#include "orion/plugin.h"

#define NBD_MAX_CONNS 16
#define NBD_MAX_REQUEST (32u << 20) /* libnbd refuses more than 64M per command */

struct nbd_conn {
        struct nbd_leaf *leaf;
        pthread_rwlock_t hlock;  /* readers issue commands on h; the I/O thread swaps h */
        struct nbd_handle *h;    /* NULL while disconnected */
        int efd;                 /* eventfd: wakes the I/O thread after a command was queued */
        pthread_t thread;
        bool started;
        bool sr;                 /* structured replies (block status); see nbd_connect_one */
        atomic_uint inflight;    /* commands issued on h and not yet freed by libnbd */
        _Atomic uint64_t progress_ns; /* last reply, or the issue that made inflight non-zero */
};

struct nbd_leaf {
        char *uri;
        char *what;                   /* "nbd: 'URI'" */
        const struct orion_params *p; /* TLS options, valid while the node lives */
        struct remote_state rs;
        struct nbd_conn conns[NBD_MAX_CONNS];
        unsigned nconns;
        atomic_uint rr;               /* round robin over connections */
        uint64_t size;
        bool can_flush, can_fua, can_trim, can_zero, can_fast_zero, can_bs, readonly;
        atomic_uint_fast64_t retried; /* commands re-issued after a connection loss */
        atomic_uint_fast64_t hung;    /* connections dropped for not answering */
        uint64_t req_timeout_ns;      /* request-timeout: 0 = wait forever */
        /* Asynchronous requests whose connection went away wait here for the retry thread,
         * which waits for a connection (up to retry-timeout) and issues them again. */
        pthread_mutex_t retry_lock;
        pthread_cond_t retry_cond;
        struct nbd_areq *retry_head;
        pthread_t retry_thread;
        bool retry_started;
};

/* One command in flight: the caller waits on it until libnbd frees the completion closure.
 * A semaphore, not a mutex and condition: the thread that completes the command wakes the
 * caller with one futex call and the caller never contends for a lock on waking. */
struct nbd_wait {
        sem_t freed;             /* posted when libnbd will not touch this again */
        bool completed;          /* completion callback ran */
        int err;                 /* errno from the completion callback */
        struct nbd_conn *conn;   /* where it was issued */
        /* block status */
        struct orion_extents *ext;
        uint64_t ext_next;       /* next offset expected (extents must be contiguous) */
        uint64_t ext_end;
        bool ext_full;
};

/* ---- Connecting ------------------------------------------------------------------------------ */
/* sr: ask for structured replies, which block status needs. Without them a reply is one
 * header and the data, which libnbd reads with two recv calls instead of four: connections
 * other than the first do without when there are several. */
static struct nbd_handle *nbd_connect_one(struct nbd_leaf *l, bool sr, char *errbuf, size_t errlen) {
        const struct orion_params *p = l->p;
        struct nbd_handle *h = nbd_create();
        const char *s;

        if (!h) {
                snprintf(errbuf, errlen, "%s", nbd_get_error());
                return NULL;
        }
        if (sr)
                (void) nbd_add_meta_context(h, LIBNBD_CONTEXT_BASE_ALLOCATION);
        else if (nbd_set_request_structured_replies(h, false) < 0)
                goto fail;
        if ((s = orion_param_str(p, "tls-certificates")) && nbd_set_tls_certificates(h, s) < 0)
                goto fail;
        if ((s = orion_param_str(p, "tls-psk-file")) && nbd_set_tls_psk_file(h, s) < 0)
                goto fail;
        if ((s = orion_param_str(p, "tls-username")) && nbd_set_tls_username(h, s) < 0)
                goto fail;
        if (nbd_set_tls_verify_peer(h, orion_param_bool(p, "tls-verify-peer")) < 0)
                goto fail;
        if (l->req_timeout_ns == 0) {
                if (nbd_connect_uri(h, l->uri) < 0)
                        goto fail;
                return h;
        }
        if (nbd_aio_connect_uri(h, l->uri) < 0)
                goto fail;
        /* A server that accepts and then stays silent must not hold this thread (and the
         * node's open or close) forever: the handshake gets request-timeout too. */
        for (uint64_t deadline = remote_now_ns() + l->req_timeout_ns; nbd_aio_is_connecting(h);) {
                if (remote_now_ns() >= deadline || __atomic_load_n(&l->rs.stopping, __ATOMIC_ACQUIRE)) {
                        snprintf(errbuf, errlen, "no answer to the handshake within request-timeout");
                        nbd_close(h);
                        return NULL;
                }
                if (nbd_poll(h, 100) < 0)
                        goto fail;
        }
        if (nbd_aio_is_ready(h))
                return h;
fail:
        snprintf(errbuf, errlen, "%s", nbd_get_error() ? nbd_get_error() : "connection closed");
        nbd_close(h);
        return NULL;
}

/* A reconnected server must still be the same export. */
static bool same_export(struct nbd_leaf *l, struct nbd_handle *h, char *errbuf, size_t errlen) {
        int64_t size = nbd_get_size(h);

        if (size < 0 || (uint64_t) size != l->size) {
                snprintf(errbuf, errlen, "export size changed from %" PRIu64 " to %" PRId64, l->size, size);
                return false;
        }
        if (l->can_flush && nbd_can_flush(h) != 1) {
                snprintf(errbuf, errlen, "server no longer supports flush");
                return false;
        }
        return true;
}

/* ---- I/O thread ------------------------------------------------------------------------------ */
static void conn_set_handle(struct nbd_conn *c, struct nbd_handle *h) {
        pthread_rwlock_wrlock(&c->hlock);
        c->h = h;
        pthread_rwlock_unlock(&c->hlock);
}

/* A command has waited longer than request-timeout while no reply came at all. */
static bool conn_hung(struct nbd_conn *c) {
        uint64_t t = c->leaf->req_timeout_ns;

        return t > 0 && atomic_load(&c->inflight) > 0 && remote_now_ns() - atomic_load(&c->progress_ns) > t;
}

/* Poll the socket once: 0, -1 when the connection is dead, -2 when the server stopped
 * answering. Callers issue commands on the same handle and every libnbd call takes its lock,
 * so this loop makes two per round (direction, notify) and polls the fd it was given rather
 * than asking libnbd again. */
static int conn_poll(struct nbd_conn *c, struct nbd_handle *h, int fd) {
        unsigned dir = nbd_aio_get_direction(h);
        struct pollfd fds[2] = {
                { .fd = fd, .events = 0 },
                { .fd = c->efd, .events = POLLIN },
        };
        uint64_t t = c->leaf->req_timeout_ns;
        int ms = t ? (int) MIN(t / 2000000u + 1, (uint64_t) 1000) : -1;
        uint64_t junk;
        int n;

        if (dir == 0 && (nbd_aio_is_dead(h) || nbd_aio_is_closed(h)))
                return -1;
        if (dir & LIBNBD_AIO_DIRECTION_READ)
                fds[0].events |= POLLIN;
        if (dir & LIBNBD_AIO_DIRECTION_WRITE)
                fds[0].events |= POLLOUT;
        n = poll(fds, 2, ms);
        if (n < 0)
                return errno == EINTR ? 0 : -1;
        if (fds[1].revents & POLLIN)
                (void) read(c->efd, &junk, sizeof(junk)); /* only a wake-up */
        /* A dead handle fails the notify calls; a closed one shows as direction 0 next round. */
        if (fds[0].revents & (POLLIN | POLLHUP | POLLERR))
                return nbd_aio_notify_read(h) == 0 ? 0 : -1;
        if (fds[0].revents & POLLOUT)
                return nbd_aio_notify_write(h) == 0 ? 0 : -1;
        return conn_hung(c) ? -2 : 0;
}

static void *conn_thread(void *arg) {
        struct nbd_conn *c = arg;
        struct nbd_leaf *l = c->leaf;
        unsigned attempt = 0;
        int fd = -1; /* of c->h */
        char err[256];
        int r;

        for (;;) {
                struct nbd_handle *h = c->h; /* only this thread changes c->h */

                if (__atomic_load_n(&l->rs.stopping, __ATOMIC_ACQUIRE))
                        break;
                if (!h) {
                        if (!remote_sleep(&l->rs, remote_backoff_ns(attempt++)))
                                break;
                        h = nbd_connect_one(l, c->sr, err, sizeof(err));
                        if (h && !same_export(l, h, err, sizeof(err))) {
                                nbd_close(h);
                                h = NULL;
                        }
                        if (!h) {
                                orion_debug("%s: reconnect attempt %u: %s", l->what, attempt, err);
                                continue;
                        }
                        attempt = 0;
                        conn_set_handle(c, h);
                        remote_conn_up(&l->rs, true);
                        continue;
                }
                if (fd < 0)
                        fd = nbd_aio_get_fd(h);
                r = fd >= 0 ? conn_poll(c, h, fd) : -1;
                if (r == 0)
                        continue;
                fd = -1;
                if (r == -2) {
                        snprintf(err, sizeof(err), "no reply within request-timeout (%" PRIu64 " s)",
                                 l->req_timeout_ns / 1000000000u);
                        atomic_fetch_add(&l->hung, 1);
                } else
                        snprintf(err, sizeof(err), "%s", nbd_get_error() ? nbd_get_error() : "connection closed");
                conn_set_handle(c, NULL);
                nbd_close(h); /* retires every command: their waiters wake and retry */
                remote_conn_down(&l->rs, err);
        }
        return NULL;
}

/* ---- Commands -------------------------------------------------------------------------------- */
static int wait_completion_cb(void *ud, int *error) {
        struct nbd_wait *w = ud;

        w->err = *error;
        w->completed = true;
        atomic_store(&w->conn->progress_ns, remote_now_ns());
        return 1; /* retire */
}

static void wait_free_cb(void *ud) {
        struct nbd_wait *w = ud;

        atomic_fetch_sub(&w->conn->inflight, 1);
        sem_post(&w->freed); /* w may be gone after this */
}

static int extent_cb(void *ud, const char *metacontext, uint64_t offset, uint32_t *entries, size_t n, int *error) {
        struct nbd_wait *w = ud;

        if (strcmp(metacontext, LIBNBD_CONTEXT_BASE_ALLOCATION) != 0 || w->ext_full || offset != w->ext_next)
                return 0;
        for (size_t i = 0; i + 1 < n && w->ext_next < w->ext_end; i += 2) {
                uint64_t len = MIN((uint64_t) entries[i], w->ext_end - w->ext_next);
                uint32_t flags = 0;
                int r;

                if (entries[i + 1] & LIBNBD_STATE_HOLE)
                        flags |= ORION_EXTENT_HOLE;
                if (entries[i + 1] & LIBNBD_STATE_ZERO)
                        flags |= ORION_EXTENT_ZERO;
                if (len == 0)
                        break;
                r = orion_extents_add(w->ext, w->ext_next, len, flags);
                if (r < 0) {
                        w->ext_full = true;
                        break;
                }
                w->ext_next += len;
        }
        return 0;
}

/* Errors that mean "the connection went away", not "the server refused the command". */
static bool conn_error(int e) {
        return e == ENOTCONN || e == ESHUTDOWN || e == ECONNRESET || e == EPIPE || e == ECONNREFUSED ||
               e == ECONNABORTED || e == ETIMEDOUT;
}

enum nbd_cmd { CMD_READ, CMD_WRITE, CMD_FLUSH, CMD_TRIM, CMD_ZERO, CMD_BLOCK_STATUS };

static int64_t start_cmd(struct nbd_handle *h, enum nbd_cmd cmd, void *buf, uint64_t len, uint64_t off,
                         uint32_t flags, nbd_completion_callback cb, struct nbd_wait *w) {
        switch (cmd) {
        case CMD_READ:
                return nbd_aio_pread(h, buf, len, off, cb, 0);
        case CMD_WRITE:
                return nbd_aio_pwrite(h, buf, len, off, cb, flags);
        case CMD_FLUSH:
                return nbd_aio_flush(h, cb, 0);
        case CMD_TRIM:
                return nbd_aio_trim(h, len, off, cb, flags);
        case CMD_ZERO:
                return nbd_aio_zero(h, len, off, cb, flags);
        case CMD_BLOCK_STATUS:
                return nbd_aio_block_status(h, len, off,
                                            (nbd_extent_callback) { .callback = extent_cb, .user_data = w }, cb, 0);
        }
        return -1;
}

/* A live connection for cmd, returned with its handle lock read-held (the handle cannot be
 * closed under the caller), or NULL. Block status needs the connection with structured
 * replies; other commands avoid it while another is up, because libnbd reads a structured
 * reply with twice the system calls of a simple one. */
static struct nbd_conn *pick_conn(struct nbd_leaf *l, enum nbd_cmd cmd) {
        unsigned start = atomic_fetch_add(&l->rr, 1);

        for (unsigned pass = l->nconns > 1 && cmd != CMD_BLOCK_STATUS ? 0 : 1; pass < 2; pass++)
                for (unsigned i = 0; i < l->nconns; i++) {
                        struct nbd_conn *k = &l->conns[(start + i) % l->nconns];

                        if (pass == 0 && k->sr)
                                continue;
                        pthread_rwlock_rdlock(&k->hlock);
                        if (k->h && (cmd != CMD_BLOCK_STATUS || k->sr))
                                return k;
                        pthread_rwlock_unlock(&k->hlock);
                }
        return NULL;
}

/* Issue on one live connection and wait. Returns 0, -errno from the server, 1 when the
 * connection failed under the command (the caller retries it elsewhere or later), or 2 for
 * block status when no connection with structured replies is up. */
static int issue_once(struct nbd_leaf *l, enum nbd_cmd cmd, void *buf, uint64_t len, uint64_t off, uint32_t flags,
                      struct nbd_wait *w) {
        struct nbd_conn *c = pick_conn(l, cmd);
        int64_t cookie = -1;
        int e = 0;
        uint64_t one = 1;
        bool wake;

        if (!c)
                return cmd == CMD_BLOCK_STATUS ? 2 : 1;
        w->completed = false;
        w->err = 0;
        w->conn = c;
        if (atomic_fetch_add(&c->inflight, 1) == 0)
                atomic_store(&c->progress_ns, remote_now_ns()); /* the clock starts for an idle connection */
        cookie = start_cmd(c->h, cmd, buf, len, off, flags,
                           (nbd_completion_callback) { .callback = wait_completion_cb, .user_data = w,
                                                       .free = wait_free_cb },
                           w);
        if (cookie < 0) {
                /* libnbd says EINVAL both for bad arguments and for a dead handle */
                e = nbd_get_errno();
                if (nbd_aio_is_dead(c->h) || nbd_aio_is_closed(c->h))
                        e = ENOTCONN;
        }
        /* libnbd sent what it could from this thread. Only when data is left to send must the
         * I/O thread, which may be polling for input only, learn that it should poll for output
         * too; waking it for every command costs a context switch each. */
        wake = cookie < 0 || (nbd_aio_get_direction(c->h) & LIBNBD_AIO_DIRECTION_WRITE);
        pthread_rwlock_unlock(&c->hlock);
        if (wake)
                (void) write(c->efd, &one, sizeof(one));

        /* libnbd calls the free callback exactly once, also when the command did not start */
        while (sem_wait(&w->freed) < 0 && errno == EINTR)
                ;
        if (cookie < 0)
                return e == 0 || conn_error(e) ? 1 : -e;
        if (!w->completed)
                return 1; /* retired by nbd_close without an answer */
        if (w->err == 0)
                return 0;
        return conn_error(w->err) ? 1 : -w->err;
}

static int nbd_cmd_run(struct nbd_leaf *l, enum nbd_cmd cmd, void *buf, uint64_t len, uint64_t off, uint32_t flags,
                       struct orion_extents *ext) {
        struct nbd_wait w = { .ext = ext, .ext_next = off, .ext_end = off + len };
        /* A server that answers handshakes but is always slower than request-timeout for this
         * request (each attempt dropped, each reconnect fine) must not keep it going round
         * forever: past request-timeout + retry-timeout, and resent more often than there are
         * connections, it fails. A frozen server is not caught here: it drops each connection
         * at most once (reconnects then fail), and remote_wait_up gives EIO and degraded. */
        uint64_t give_up = l->req_timeout_ns ? remote_now_ns() + l->req_timeout_ns + l->rs.window_ns : 0;
        unsigned resent = 0;
        int r;

        sem_init(&w.freed, 0, 0);
        for (;;) {
                r = remote_wait_up(&l->rs);
                if (r < 0)
                        break;
                if (resent > l->nconns && give_up && remote_now_ns() >= give_up) {
                        orion_log_ratelimited(ORION_LOG_ERR,
                                              "%s: a request got no answer within request-timeout + retry-timeout: EIO",
                                              l->what);
                        r = -EIO;
                        break;
                }
                if (cmd == CMD_BLOCK_STATUS) {
                        /* a retry continues where the extents stopped */
                        off = w.ext_next;
                        len = w.ext_end - w.ext_next;
                        if (len == 0 || w.ext_full) {
                                r = 0;
                                break;
                        }
                }
                r = issue_once(l, cmd, buf, len, off, flags, &w);
                if (r == 2) {
                        /* only the block-status connection is down: "all data" is always true */
                        r = orion_extents_add(ext, off, len, 0);
                        r = r == -E2BIG ? 0 : r;
                        break;
                }
                if (r <= 0)
                        break;
                /* The connection died under the command: nothing was acknowledged, so it is
                 * safe to send again once a connection is back (writes are idempotent). */
                resent++;
                atomic_fetch_add(&l->retried, 1);
                (void) remote_sleep(&l->rs, 10000000u);
        }
        sem_destroy(&w.freed);
        return r == -ESHUTDOWN ? -EIO : r;
}

/* ---- Asynchronous commands (submit_async) ----------------------------------------------------
 * The command is issued from the caller's thread and nobody waits for it: the connection's I/O
 * thread runs the completion, which calls done(). The guarantees are those of nbd_cmd_run: done
 * reports success only for the server's acknowledgement; a command lost with its connection
 * goes to the retry thread, which waits (up to retry-timeout) for a connection and sends it
 * again, or fails it with EIO. */
enum { AREQ_ISSUING, AREQ_ISSUED, AREQ_FREED };

struct nbd_areq {
        struct nbd_leaf *l;
        struct orion_areq *a;
        struct nbd_conn *conn;
        enum nbd_cmd cmd;
        uint32_t flags;          /* LIBNBD_CMD_FLAG_* */
        int err;                 /* from the completion callback */
        bool completed;
        atomic_int state;        /* who finishes: the issuer or libnbd's free callback */
        unsigned resent;
        uint64_t give_up;        /* see nbd_cmd_run; 0 = never */
        struct nbd_areq *next;   /* retry list */
};

static void areq_finish(struct nbd_areq *r, int result) {
        struct orion_areq *a = r->a;

        free(r);
        a->req.result = result;
        a->done(a);
}

static void areq_retry(struct nbd_areq *r) {
        struct nbd_leaf *l = r->l;

        WITH_LOCK(&l->retry_lock) {
                r->next = l->retry_head;
                l->retry_head = r;
                pthread_cond_signal(&l->retry_cond);
        }
}

/* The command is over for libnbd: start_errno is set when it never started. */
static void areq_settle(struct nbd_areq *r, int start_errno) {
        if (start_errno && !conn_error(start_errno)) {
                areq_finish(r, -start_errno);
                return;
        }
        if (!start_errno && r->completed && (r->err == 0 || !conn_error(r->err))) {
                areq_finish(r, -r->err);
                return;
        }
        /* Nothing was acknowledged: safe to send again once a connection is back. */
        if (!start_errno) {
                r->resent++;
                atomic_fetch_add(&r->l->retried, 1);
        }
        areq_retry(r);
}

static int areq_completion_cb(void *ud, int *error) {
        struct nbd_areq *r = ud;

        r->err = *error;
        r->completed = true;
        atomic_store(&r->conn->progress_ns, remote_now_ns());
        return 1;
}

static void areq_free_cb(void *ud) {
        struct nbd_areq *r = ud;

        atomic_fetch_sub(&r->conn->inflight, 1);
        if (atomic_exchange(&r->state, AREQ_FREED) == AREQ_ISSUED)
                areq_settle(r, 0); /* else the issuer, still in areq_issue, settles it */
}

/* Issue r on a live connection, or queue it for the retry thread. Never blocks. */
static void areq_issue(struct nbd_areq *r) {
        struct nbd_leaf *l = r->l;
        struct nbd_conn *c = pick_conn(l, r->cmd);
        struct orion_req *q = &r->a->req;
        uint64_t one = 1;
        int64_t cookie;
        int e = 0;
        bool wake;

        if (!c) {
                areq_retry(r);
                return;
        }
        r->conn = c;
        r->completed = false;
        r->err = 0;
        atomic_store(&r->state, AREQ_ISSUING);
        if (atomic_fetch_add(&c->inflight, 1) == 0)
                atomic_store(&c->progress_ns, remote_now_ns());
        cookie = start_cmd(c->h, r->cmd, q->buf, q->len, q->off, r->flags,
                           (nbd_completion_callback) { .callback = areq_completion_cb, .user_data = r,
                                                       .free = areq_free_cb },
                           NULL);
        if (cookie < 0) {
                e = nbd_get_errno();
                if (e == 0 || nbd_aio_is_dead(c->h) || nbd_aio_is_closed(c->h))
                        e = ENOTCONN;
        }
        wake = cookie < 0 || (nbd_aio_get_direction(c->h) & LIBNBD_AIO_DIRECTION_WRITE);
        pthread_rwlock_unlock(&c->hlock);
        if (wake)
                (void) write(c->efd, &one, sizeof(one));
        /* After this exchange r may be gone (settled by the free callback) unless it was freed
         * already, in which case settling is ours. */
        if (atomic_exchange(&r->state, AREQ_ISSUED) == AREQ_FREED)
                areq_settle(r, cookie < 0 ? e : 0);
}

static void *retry_thread(void *arg) {
        struct nbd_leaf *l = arg;

        for (;;) {
                struct nbd_areq *list;
                int r;

                WITH_LOCK(&l->retry_lock) {
                        while (!l->retry_head && !__atomic_load_n(&l->rs.stopping, __ATOMIC_ACQUIRE))
                                pthread_cond_wait(&l->retry_cond, &l->retry_lock);
                        list = l->retry_head;
                        l->retry_head = NULL;
                }
                if (!list)
                        break; /* stopping, nothing left */
                /* Like nbd_cmd_run after a loss: a short pause, then wait for a connection. */
                (void) remote_sleep(&l->rs, 10000000u);
                r = remote_wait_up(&l->rs);
                while (list) {
                        struct nbd_areq *q = list;

                        list = q->next;
                        if (r < 0)
                                areq_finish(q, -EIO);
                        else if (q->resent > l->nconns && q->give_up && remote_now_ns() >= q->give_up) {
                                orion_log_ratelimited(ORION_LOG_ERR,
                                                      "%s: a request got no answer within request-timeout + "
                                                      "retry-timeout: EIO", l->what);
                                areq_finish(q, -EIO);
                        } else
                                areq_issue(q);
                }
        }
        return NULL;
}

static int nbd_submit_async_op(struct orion_bdev *b, struct orion_areq *a) {
        struct nbd_leaf *l = orion_bdev_priv(b);
        struct nbd_areq *r;
        enum nbd_cmd cmd;

        switch (a->req.op) {
        case ORION_OP_READ:
                cmd = CMD_READ;
                break;
        case ORION_OP_WRITE:
                cmd = CMD_WRITE;
                break;
        case ORION_OP_FLUSH:
                if (!l->can_flush) {
                        a->req.result = 0; /* the server says it has nothing to flush */
                        a->done(a);
                        return 0;
                }
                cmd = CMD_FLUSH;
                break;
        default:
                return -EOPNOTSUPP;
        }
        if (!l->retry_started || !(r = calloc(1, sizeof(*r))))
                return -ENOMEM; /* the core runs it synchronously */
        r->l = l;
        r->a = a;
        r->cmd = cmd;
        r->flags = a->req.op == ORION_OP_WRITE && (a->req.flags & ORION_FUA) ? LIBNBD_CMD_FLAG_FUA : 0;
        r->give_up = l->req_timeout_ns ? remote_now_ns() + l->req_timeout_ns + l->rs.window_ns : 0;
        areq_issue(r);
        return 0;
}

/* ---- Operations ------------------------------------------------------------------------------ */
static int nbd_pread_op(struct orion_bdev *b, void *buf, uint64_t len, uint64_t off, uint32_t flags) {
        return nbd_cmd_run(orion_bdev_priv(b), CMD_READ, buf, len, off, 0, NULL);
}

static int nbd_pwrite_op(struct orion_bdev *b, const void *buf, uint64_t len, uint64_t off, uint32_t flags) {
        struct nbd_leaf *l = orion_bdev_priv(b);

        return nbd_cmd_run(l, CMD_WRITE, (void *) buf, len, off, (flags & ORION_FUA) ? LIBNBD_CMD_FLAG_FUA : 0, NULL);
}

static int nbd_flush_op(struct orion_bdev *b, uint32_t flags) {
        struct nbd_leaf *l = orion_bdev_priv(b);

        if (!l->can_flush)
                return 0; /* the server says it has nothing to flush */
        return nbd_cmd_run(l, CMD_FLUSH, NULL, 0, 0, 0, NULL);
}

static int nbd_discard_op(struct orion_bdev *b, uint64_t len, uint64_t off, uint32_t flags) {
        struct nbd_leaf *l = orion_bdev_priv(b);

        return nbd_cmd_run(l, CMD_TRIM, NULL, len, off, (flags & ORION_FUA) ? LIBNBD_CMD_FLAG_FUA : 0, NULL);
}

static int nbd_write_zeroes_op(struct orion_bdev *b, uint64_t len, uint64_t off, uint32_t flags) {
        struct nbd_leaf *l = orion_bdev_priv(b);
        uint32_t f = 0;

        if (flags & ORION_FUA)
                f |= LIBNBD_CMD_FLAG_FUA;
        if (flags & ORION_NO_HOLE)
                f |= LIBNBD_CMD_FLAG_NO_HOLE;
        if (flags & ORION_FAST_ZERO) {
                if (!l->can_fast_zero)
                        return -ENOTSUP;
                f |= LIBNBD_CMD_FLAG_FAST_ZERO;
        }
        return nbd_cmd_run(l, CMD_ZERO, NULL, len, off, f, NULL);
}

static int nbd_block_status_op(struct orion_bdev *b, uint64_t len, uint64_t off, struct orion_extents *ext) {
        /* NBD counts are 32 bit: ask for at most 2 GiB, the caller asks again for the rest */
        return nbd_cmd_run(orion_bdev_priv(b), CMD_BLOCK_STATUS, NULL, MIN(len, (uint64_t) 1 << 31), off, 0, ext);
}

static void nbd_stats_op(struct orion_bdev *b, struct json_object *sink) {
        struct nbd_leaf *l = orion_bdev_priv(b);

        orion_stats_put(sink, "retried_after_disconnect", atomic_load(&l->retried));
        orion_stats_put(sink, "dropped_unanswering", atomic_load(&l->hung));
        WITH_LOCK(&l->rs.lock) orion_stats_put(sink, "reconnects", l->rs.reconnects);
}

static void nbd_status_op(struct orion_bdev *b, struct json_object *out) {
        struct nbd_leaf *l = orion_bdev_priv(b);

        json_object_object_add(out, "uri", json_object_new_string(l->uri));
        json_object_object_add(out, "connections", json_object_new_int((int) l->nconns));
        WITH_LOCK(&l->rs.lock) {
                json_object_object_add(out, "connected", json_object_new_int((int) l->rs.up));
                json_object_object_add(out, "reconnects", json_object_new_uint64(l->rs.reconnects));
        }
}

/* ---- Lifecycle ------------------------------------------------------------------------------- */
static void nbd_close_op(struct orion_bdev *b) {
        struct nbd_leaf *l = orion_bdev_priv(b);
        uint64_t one = 1;

        WITH_LOCK(&l->rs.lock) {
                __atomic_store_n(&l->rs.stopping, true, __ATOMIC_RELEASE);
                pthread_cond_broadcast(&l->rs.cond);
        }
        if (l->retry_started) {
                WITH_LOCK(&l->retry_lock)
                        pthread_cond_broadcast(&l->retry_cond);
                pthread_join(l->retry_thread, NULL);
                l->retry_started = false;
        }
        for (unsigned i = 0; i < NBD_MAX_CONNS; i++) {
                struct nbd_conn *c = &l->conns[i];

                if (c->started) {
                        (void) write(c->efd, &one, sizeof(one));
                        pthread_join(c->thread, NULL);
                }
                if (c->h) {
                        (void) nbd_shutdown(c->h, 0); /* polite NBD_CMD_DISC */
                        nbd_close(c->h);
                }
                if (c->efd >= 0)
                        close(c->efd);
                pthread_rwlock_destroy(&c->hlock);
        }
        l->nconns = 0;
        pthread_cond_destroy(&l->retry_cond);
        pthread_mutex_destroy(&l->retry_lock);
        remote_done(&l->rs);
        free(l->uri);
        free(l->what);
}

static void read_caps(struct orion_bdev *b, struct nbd_leaf *l, struct nbd_handle *h) {
        uint32_t caps = 0;

        l->readonly = nbd_is_read_only(h) == 1;
        l->can_flush = nbd_can_flush(h) == 1;
        l->can_fua = nbd_can_fua(h) == 1;
        l->can_trim = nbd_can_trim(h) == 1;
        l->can_zero = nbd_can_zero(h) == 1;
        l->can_fast_zero = nbd_can_fast_zero(h) == 1;
        l->can_bs = nbd_can_meta_context(h, LIBNBD_CONTEXT_BASE_ALLOCATION) == 1;
        if (l->readonly)
                caps |= ORION_CAP_READONLY;
        if (l->can_flush)
                caps |= ORION_CAP_FLUSH;
        if (l->can_fua)
                caps |= ORION_CAP_FUA;
        if (l->can_trim)
                caps |= ORION_CAP_DISCARD;
        if (l->can_zero)
                caps |= ORION_CAP_WRITE_ZEROES;
        if (l->can_zero && l->can_fast_zero)
                caps |= ORION_CAP_FAST_ZERO;
        if (l->can_bs)
                caps |= ORION_CAP_BLOCK_STATUS;
        /* Several connections of ours share the server's consistency: only with its multi-conn
         * (or a single connection) is a flush on one visible to all. */
        if (nbd_can_multi_conn(h) == 1 || l->nconns == 1)
                caps |= ORION_CAP_MULTI_CONN;
        orion_bdev_set_caps(b, caps);
}

static int set_geometry(struct orion_bdev *b, struct nbd_leaf *l, struct nbd_handle *h, struct orion_error *err) {
        int64_t size = nbd_get_size(h), min = nbd_get_block_size(h, LIBNBD_SIZE_MINIMUM),
                pref = nbd_get_block_size(h, LIBNBD_SIZE_PREFERRED), max = nbd_get_block_size(h, LIBNBD_SIZE_MAXIMUM);
        struct orion_geometry g = { 0 };

        if (size < 0)
                return orion_error_set(err, EIO, "%s: cannot get the export size: %s", l->what, nbd_get_error());
        g.block_size = min > 512 ? 4096 : 512;
        if (min > 4096)
                return orion_error_set(err, EINVAL, "%s: server's minimum block size %" PRId64 " is above 4096",
                                       l->what, min);
        l->size = (uint64_t) size;
        if (size % g.block_size) {
                orion_warn("%s: export size %" PRId64 " is not a multiple of %u: the tail is not used", l->what, size,
                           g.block_size);
                size -= size % g.block_size;
        }
        if (size == 0)
                return orion_error_set(err, EINVAL, "%s: the export is empty", l->what);
        g.size = (uint64_t) size;
        g.pref_size = pref > 0 && IS_POW2((uint64_t) pref) && pref >= g.block_size ? (uint32_t) MIN(pref, 1 << 20)
                                                                                   : MAX(g.block_size, 4096u);
        g.max_size = max > 0 ? (uint32_t) MIN((uint64_t) max, (uint64_t) NBD_MAX_REQUEST) : NBD_MAX_REQUEST;
        g.max_size -= g.max_size % g.block_size;
        if (g.pref_size > g.max_size)
                g.pref_size = g.block_size;
        return orion_bdev_set_geometry(b, &g);
}

static int start_conn(struct nbd_leaf *l, struct nbd_conn *c, struct nbd_handle *h, struct orion_error *err) {
        c->leaf = l;
        c->h = h;
        if (pthread_create(&c->thread, NULL, conn_thread, c) != 0)
                return orion_error_set(err, EAGAIN, "%s: cannot start an I/O thread", l->what);
        c->started = true;
        remote_conn_up(&l->rs, false);
        return 0;
}

static int nbd_open_op(struct orion_bdev *b, const struct orion_params *p, struct orion_error *err) {
        struct nbd_leaf *l = orion_bdev_priv(b);
        int64_t want = orion_param_int(p, "connections"), timeout = orion_param_int(p, "retry-timeout");
        int64_t req_timeout = orion_param_int(p, "request-timeout");
        struct nbd_handle *first;
        char msg[256];
        int r;

        for (unsigned i = 0; i < NBD_MAX_CONNS; i++) {
                l->conns[i].efd = -1;
                pthread_rwlock_init(&l->conns[i].hlock, NULL);
        }
        pthread_mutex_init(&l->retry_lock, NULL);
        pthread_cond_init(&l->retry_cond, NULL);
        l->p = p;
        remote_init(&l->rs, b, "nbd", (uint64_t) MAX(timeout, 0) * 1000000000u);
        l->uri = strdup(orion_param_str(p, "uri"));
        if (!l->uri || asprintf(&l->what, "nbd: '%s'", l->uri) < 0) {
                l->what = NULL;
                r = orion_error_set(err, ENOMEM, "nbd: out of memory");
                goto fail;
        }
        l->rs.what = l->what;
        if (want < 1 || want > NBD_MAX_CONNS || timeout < 0 || req_timeout < 0 || req_timeout > 86400) {
                r = orion_error_set(err, EINVAL,
                                    "nbd: connections must be 1..%d, retry-timeout >= 0, request-timeout 0..86400",
                                    NBD_MAX_CONNS);
                goto fail;
        }
        l->req_timeout_ns = (uint64_t) req_timeout * 1000000000u;
        first = nbd_connect_one(l, true, msg, sizeof(msg));
        if (!first) {
                r = orion_error_set(err, EIO, "%s: cannot connect: %s", l->what, msg);
                goto fail;
        }
        /* More than one connection only when the server promises multi-conn consistency. */
        l->nconns = nbd_can_multi_conn(first) == 1 ? (unsigned) want : 1;
        r = set_geometry(b, l, first, err);
        if (r < 0) {
                nbd_close(first);
                goto fail;
        }
        read_caps(b, l, first);
        for (unsigned i = 0; i < l->nconns; i++) {
                struct nbd_handle *h = i == 0 ? first : nbd_connect_one(l, false, msg, sizeof(msg));

                l->conns[i].sr = i == 0;
                l->conns[i].efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
                if (!h || l->conns[i].efd < 0) {
                        if (h)
                                nbd_close(h);
                        r = orion_error_set(err, EIO, "%s: connection %u: %s", l->what, i + 1,
                                            h ? "no eventfd" : msg);
                        goto fail;
                }
                r = start_conn(l, &l->conns[i], h, err);
                if (r < 0) {
                        nbd_close(h);
                        l->conns[i].h = NULL;
                        goto fail;
                }
        }
        if (pthread_create(&l->retry_thread, NULL, retry_thread, l) != 0) {
                r = orion_error_set(err, EAGAIN, "%s: cannot start the retry thread", l->what);
                goto fail;
        }
        l->retry_started = true;
        orion_debug("%s: %u connection(s), %" PRIu64 " bytes", l->what, l->nconns, orion_bdev_size(b));
        return 0;
fail:
        nbd_close_op(b);
        return r;
}

static const struct orion_param nbd_params[] = {
        { .name = "uri", .type = ORION_PARAM_STRING,
          .help = "nbd://host[:port]/export, nbds://... (TLS), nbd+unix:///export?socket=PATH" },
        { .name = "connections", .type = ORION_PARAM_INT, .def = "4",
          .help = "Connections to open when the server advertises multi-conn (else one)." },
        { .name = "retry-timeout", .type = ORION_PARAM_INT, .def = "60",
          .help = "Seconds requests wait for a lost server to come back; then they fail with EIO." },
        { .name = "request-timeout", .type = ORION_PARAM_INT, .def = "60",
          .help = "Seconds a connection may leave requests unanswered (or a handshake unfinished) before "
                  "it counts as lost: reconnect and resend. 0 = wait forever." },
        { .name = "tls-certificates", .type = ORION_PARAM_PATH, .optional = true,
          .help = "Directory with the X.509 client certificates (ca-cert.pem, client-cert.pem, client-key.pem)." },
        { .name = "tls-psk-file", .type = ORION_PARAM_PATH, .optional = true,
          .help = "Pre-shared keys file (username:hexkey) for TLS-PSK." },
        { .name = "tls-username", .type = ORION_PARAM_STRING, .optional = true,
          .help = "TLS-PSK user name (default: the login name)." },
        { .name = "tls-verify-peer", .type = ORION_PARAM_BOOL, .def = "on",
          .help = "Verify the server's certificate (x509)." },
        {},
};

static const struct orion_bdev_ops nbd_ops = {
        .pread = nbd_pread_op,
        .pwrite = nbd_pwrite_op,
        .flush = nbd_flush_op,
        .discard = nbd_discard_op,
        .write_zeroes = nbd_write_zeroes_op,
        .block_status = nbd_block_status_op,
        .stats = nbd_stats_op,
        .status = nbd_status_op,
        .close = nbd_close_op,
        .submit_async = nbd_submit_async_op,
};

ORION_BUILTIN_TYPE(orion_type_nbd, .name = "nbd",
                   .description = "Remote NBD export through libnbd (multi-conn, TLS, reconnects)",
                   .params = nbd_params, .instance_size = sizeof(struct nbd_leaf), .ops = &nbd_ops,
                   .open = nbd_open_op);
