/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The NBD export driver: listening sockets (TCP, Unix, systemd socket activation), one thread
 * per connection, graceful stop, and status for `orionctl status`. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>

#include <json-c/json.h>

#include "common/cleanup.h"
#include "export/nbd/nbd-internal.h"
#include "export/nbd/nbd-server.h"

#define MAX_LISTEN 32
#define DEFAULT_PORT "10809"
#define DEFAULT_MAX_CONNECTIONS 256

unsigned nbd_handshake_timeout = 60;
unsigned nbd_conn_threads = NBD_DEFAULT_THREADS;

struct listener {
        int fd;
        char addr[128];      /* as shown in status */
        char *unix_path;     /* unlinked at stop (not for inherited sockets) */
};

struct nbd_server {
        pthread_mutex_t lock;
        pthread_cond_t cond;           /* a connection ended */
        struct listener l[MAX_LISTEN];
        size_t nl;
        int wake_fd;                   /* eventfd: stop the acceptor */
        pthread_t acceptor;
        bool running;
        bool stopping;
        struct nbd_conn *conns;        /* live connections */
        unsigned nconns;
        unsigned max_conns;
        uint64_t total_conns;
        uint64_t refused_conns;
        uint64_t started_ns;
};

static struct nbd_server g_srv = {
        .lock = PTHREAD_MUTEX_INITIALIZER,
        .cond = PTHREAD_COND_INITIALIZER,
        .wake_fd = -1,
};

#define STARTUP_GRACE_NS (UINT64_C(2) * 1000000000)

bool nbd_server_starting(const struct nbd_server *srv) {
        return srv && now_ns() - srv->started_ns < STARTUP_GRACE_NS;
}

/* ---- Connections ---------------------------------------------------------------------------- */

static void conn_free(struct nbd_conn *c) {
        nbd_tls_close(c);
        if (c->exp)
                export_unref(c->exp);
        free(c->meta_export);
        pthread_mutex_destroy(&c->write_lock);
        pthread_mutex_destroy(&c->lock);
        pthread_mutex_destroy(&c->read_lock);
        if (c->fd >= 0)
                (void) close(c->fd);
        free(c);
}

static void set_rcv_timeout(int fd, unsigned seconds) {
        struct timeval tv = { .tv_sec = seconds };
        /* Fails only for non-sockets (tests may hand us a pipe-like fd): no timeout then. */
        (void) setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

/* A client that stops reading its replies cannot hold a worker (and the daemon's shutdown)
 * forever: a send blocked this long fails and ends the connection. */
#define SEND_TIMEOUT_S 60

static void conn_run(struct nbd_conn *c) {
        struct timeval snd = { .tv_sec = SEND_TIMEOUT_S };
        int r;

        (void) setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &snd, sizeof(snd)); /* not a socket: no limit */
        if (nbd_handshake_timeout)
                set_rcv_timeout(c->fd, nbd_handshake_timeout);
        r = nbd_handshake(c);
        if (r == 1) {
                set_rcv_timeout(c->fd, 0);
                orion_debug("nbd: %s: serving export '%s'%s", c->peer, c->exp->name,
                            c->structured ? " (structured replies)" : "");
                r = nbd_transmission(c);
        }
        if (r < 0 && r != -ECONNRESET && r != -EPIPE)
                orion_debug("nbd: %s: connection ended: %s", c->peer, strerror(-r));
}

static struct nbd_conn *conn_new(struct nbd_server *srv, int fd, const char *peer) {
        struct nbd_conn *c = calloc(1, sizeof(*c));

        if (!c)
                return NULL;
        c->fd = fd;
        c->srv = srv;
        (void) snprintf(c->peer, sizeof(c->peer), "%s", peer);
        pthread_mutex_init(&c->write_lock, NULL);
        pthread_mutex_init(&c->lock, NULL);
        pthread_mutex_init(&c->read_lock, NULL);
        return c;
}

void nbd_conn_serve(struct nbd_server *srv, int fd, const char *peer) {
        struct nbd_conn *c = conn_new(srv, fd, peer);

        if (!c) {
                (void) close(fd);
                return;
        }
        conn_run(c);
        conn_free(c);
}

static void *conn_thread(void *arg) {
        struct nbd_conn *c = arg;
        struct nbd_server *srv = c->srv;

        conn_run(c);
        WITH_LOCK(&srv->lock) {
                for (struct nbd_conn **p = &srv->conns; *p; p = &(*p)->next)
                        if (*p == c) {
                                *p = c->next;
                                break;
                        }
                srv->nconns--;
                pthread_cond_broadcast(&srv->cond);
        }
        conn_free(c);
        return NULL;
}

static void peer_name(const struct sockaddr_storage *ss, socklen_t len, const char *via, char *buf, size_t size) {
        char host[INET6_ADDRSTRLEN + 1] = "", port[16] = "";

        if (ss->ss_family == AF_UNIX || len <= sizeof(sa_family_t) ||
            getnameinfo((const struct sockaddr *) ss, len, host, sizeof(host), port, sizeof(port),
                        NI_NUMERICHOST | NI_NUMERICSERV) != 0)
                (void) snprintf(buf, size, "%s", via);
        else if (ss->ss_family == AF_INET6)
                (void) snprintf(buf, size, "[%s]:%s", host, port);
        else
                (void) snprintf(buf, size, "%s:%s", host, port);
}

static void accept_one(struct nbd_server *srv, struct listener *l) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        char peer[80];
        pthread_attr_t attr;
        pthread_t t;
        int one = 1;

        int fd = accept4(l->fd, (struct sockaddr *) &ss, &len, SOCK_CLOEXEC);
        if (fd < 0) {
                if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                        orion_log_ratelimited(ORION_LOG_ERR, "nbd: accept on %s failed: %m", l->addr);
                return;
        }
        if (ss.ss_family == AF_INET || ss.ss_family == AF_INET6)
                (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)); /* latency only */
        peer_name(&ss, len, l->addr, peer, sizeof(peer));

        WITH_LOCK(&srv->lock) {
                if (srv->nconns >= srv->max_conns || srv->stopping) {
                        srv->refused_conns++;
                        orion_log_ratelimited(ORION_LOG_WARNING, "nbd: %s: too many connections (%u), refusing",
                                              peer, srv->max_conns);
                        (void) close(fd);
                        return;
                }
                struct nbd_conn *c = conn_new(srv, fd, peer);
                if (!c) {
                        (void) close(fd);
                        return;
                }
                pthread_attr_init(&attr);
                pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
                if (pthread_create(&t, &attr, conn_thread, c) != 0) {
                        orion_log_ratelimited(ORION_LOG_ERR, "nbd: %s: cannot start a thread", peer);
                        conn_free(c);
                } else {
                        c->next = srv->conns;
                        srv->conns = c;
                        srv->nconns++;
                        srv->total_conns++;
                }
                pthread_attr_destroy(&attr);
        }
}

static void *acceptor_thread(void *arg) {
        struct nbd_server *srv = arg;
        struct pollfd pfd[MAX_LISTEN + 1];

        for (size_t i = 0; i < srv->nl; i++)
                pfd[i] = (struct pollfd) { .fd = srv->l[i].fd, .events = POLLIN };
        pfd[srv->nl] = (struct pollfd) { .fd = srv->wake_fd, .events = POLLIN };
        for (;;) {
                int n = poll(pfd, srv->nl + 1, -1);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        orion_error("nbd: poll failed: %m");
                        break;
                }
                if (pfd[srv->nl].revents)
                        break;
                for (size_t i = 0; i < srv->nl; i++)
                        if (pfd[i].revents & POLLIN)
                                accept_one(srv, &srv->l[i]);
        }
        return NULL;
}

/* ---- Listening sockets ---------------------------------------------------------------------- */

static int listen_unix(struct nbd_server *srv, const char *path, struct orion_error *err) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        struct stat st;

        if (strlen(path) >= sizeof(sa.sun_path))
                return orion_error_set(err, ENAMETOOLONG, "nbd: unix socket path too long: '%s'", path);
        if (srv->nl >= MAX_LISTEN)
                return orion_error_set(err, E2BIG, "nbd: too many listen addresses");
        memcpy(sa.sun_path, path, strlen(path) + 1);
        /* A stale socket from an earlier run is replaced; anything else is left alone. */
        if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
                (void) unlink(path);
        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return orion_error_set(err, errno, "nbd: socket: %m");
        if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0)
                return orion_error_set(err, errno, "nbd: cannot bind unix:%s: %m", path);
        if (listen(fd, SOMAXCONN) < 0)
                return orion_error_set(err, errno, "nbd: listen on unix:%s: %m", path);
        struct listener *l = &srv->l[srv->nl];
        l->unix_path = strdup(path);
        if (!l->unix_path)
                return orion_error_set(err, ENOMEM, "nbd: out of memory");
        l->fd = TAKE_FD(fd);
        (void) snprintf(l->addr, sizeof(l->addr), "unix:%s", path);
        srv->nl++;
        return 0;
}

/* "host:port", "[v6addr]:port", "host" (port 10809), ":port" or "*:port" (all addresses). */
static int split_host_port(const char *spec, char *host, size_t hlen, char *port, size_t plen) {
        const char *colon;

        if (spec[0] == '[') {
                const char *end = strchr(spec, ']');
                if (!end || (size_t) (end - spec - 1) >= hlen)
                        return -EINVAL;
                memcpy(host, spec + 1, (size_t) (end - spec - 1));
                host[end - spec - 1] = '\0';
                colon = end[1] == ':' ? end + 1 : NULL;
                if (!colon && end[1] != '\0')
                        return -EINVAL;
        } else {
                colon = strrchr(spec, ':');
                size_t n = colon ? (size_t) (colon - spec) : strlen(spec);
                if (n >= hlen || (colon && strchr(spec, ':') != colon))
                        return -EINVAL;
                memcpy(host, spec, n);
                host[n] = '\0';
        }
        const char *p = colon ? colon + 1 : DEFAULT_PORT;
        if (*p == '\0' || strlen(p) >= plen || strspn(p, "0123456789") != strlen(p))
                return -EINVAL;
        memcpy(port, p, strlen(p) + 1);
        if (strcmp(host, "*") == 0)
                host[0] = '\0';
        return 0;
}

static int listen_tcp(struct nbd_server *srv, const char *spec, struct orion_error *err) {
        char host[256], port[16];
        struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE };
        struct addrinfo *res = NULL;
        int r, bound = 0;

        if (split_host_port(spec, host, sizeof(host), port, sizeof(port)) < 0)
                return orion_error_set(err, EINVAL, "nbd: bad listen address '%s' (host:port, [v6]:port, unix:PATH)",
                                       spec);
        r = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
        if (r != 0)
                return orion_error_set(err, EADDRNOTAVAIL, "nbd: cannot resolve '%s': %s", spec, gai_strerror(r));
        for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
                int one = 1;
                if (srv->nl >= MAX_LISTEN) {
                        r = orion_error_set(err, E2BIG, "nbd: too many listen addresses");
                        break;
                }
                _cleanup_close_ int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
                                                ai->ai_protocol);
                if (fd < 0)
                        continue; /* e.g. no IPv6 on this host */
                (void) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
                if (ai->ai_family == AF_INET6)
                        (void) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
                if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, SOMAXCONN) < 0) {
                        r = orion_error_set(err, errno, "nbd: cannot listen on %s: %m", spec);
                        break;
                }
                struct listener *l = &srv->l[srv->nl++];
                l->fd = TAKE_FD(fd);
                char h[INET6_ADDRSTRLEN + 1] = "?";
                (void) getnameinfo(ai->ai_addr, ai->ai_addrlen, h, sizeof(h), NULL, 0, NI_NUMERICHOST);
                (void) snprintf(l->addr, sizeof(l->addr), ai->ai_family == AF_INET6 ? "[%s]:%s" : "%s:%s", h, port);
                bound++;
        }
        freeaddrinfo(res);
        if (r < 0)
                return r;
        if (bound == 0)
                return orion_error_set(err, EADDRNOTAVAIL, "nbd: no usable address for '%s'", spec);
        return 0;
}

/* systemd socket activation: fds 3.. when LISTEN_PID is us. With LISTEN_FDNAMES, only fds
 * named "nbd" (or left unnamed) are ours. Returns the number taken, or -errno. */
static int listen_activated(struct nbd_server *srv, struct orion_error *err) {
        const char *pid_s = getenv("LISTEN_PID"), *fds_s = getenv("LISTEN_FDS");
        const char *names = getenv("LISTEN_FDNAMES");
        int64_t pid, nfds;
        int taken = 0;

        if (!pid_s || !fds_s || parse_int64(pid_s, &pid) < 0 || pid != (int64_t) getpid())
                return 0;
        if (parse_int64(fds_s, &nfds) < 0 || nfds < 1 || nfds > MAX_LISTEN)
                return orion_error_set(err, EINVAL, "nbd: bad LISTEN_FDS '%s'", fds_s);
        const char *name = names; /* walks the colon-separated list alongside the fds */
        for (int i = 0; i < nfds; i++) {
                int fd = 3 + i;
                size_t nlen = name ? strcspn(name, ":") : 0;
                bool ours = !name || nlen == 0 || (nlen == 3 && strncmp(name, "nbd", 3) == 0) ||
                            (nlen == 7 && strncmp(name, "unknown", 7) == 0);
                if (name)
                        name = name[nlen] == ':' ? name + nlen + 1 : NULL;
                if (!ours)
                        continue;
                (void) fcntl(fd, F_SETFD, FD_CLOEXEC);
                (void) fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
                struct listener *l = &srv->l[srv->nl++];
                l->fd = fd;
                (void) snprintf(l->addr, sizeof(l->addr), "systemd:fd%d", fd);
                taken++;
        }
        /* Children must not think these are theirs. */
        (void) unsetenv("LISTEN_PID");
        (void) unsetenv("LISTEN_FDS");
        (void) unsetenv("LISTEN_FDNAMES");
        return taken;
}

static void close_listeners(struct nbd_server *srv) {
        for (size_t i = 0; i < srv->nl; i++) {
                (void) close(srv->l[i].fd);
                if (srv->l[i].unix_path) {
                        (void) unlink(srv->l[i].unix_path);
                        free(srv->l[i].unix_path);
                }
        }
        memset(srv->l, 0, sizeof(srv->l));
        srv->nl = 0;
}

/* ---- Driver --------------------------------------------------------------------------------- */

static int read_uint_opt(const struct daemon_config *cfg, const char *key, unsigned *ret, struct orion_error *err) {
        const char *v = config_opt(cfg, key);
        int64_t n;

        if (!v)
                return 0;
        if (parse_int64(v, &n) < 0 || n < 0 || n > 1000000)
                return orion_error_set(err, EINVAL, "nbd: bad value '%s' for %s", v, key);
        *ret = (unsigned) n;
        return 0;
}

static int nbd_start(const struct daemon_config *cfg, struct orion_error *err) {
        struct nbd_server *srv = &g_srv;
        int r;

        srv->max_conns = DEFAULT_MAX_CONNECTIONS;
        r = read_uint_opt(cfg, "nbd-max-connections", &srv->max_conns, err);
        if (r >= 0)
                r = read_uint_opt(cfg, "nbd-handshake-timeout", &nbd_handshake_timeout, err);
        if (r >= 0)
                r = read_uint_opt(cfg, "nbd-threads", &nbd_conn_threads, err);
        if (r >= 0 && (nbd_conn_threads < 1 || nbd_conn_threads > NBD_MAX_THREADS))
                r = orion_error_set(err, EINVAL, "nbd: nbd-threads must be 1..%u", NBD_MAX_THREADS);
        if (r < 0)
                return r;
        if (r >= 0)
                r = nbd_tls_setup(cfg, err);

        r = listen_activated(srv, err);
        if (r == 0)
                for (char **a = cfg->nbd_listen; a && *a && r >= 0; a++)
                        r = strncmp(*a, "unix:", 5) == 0 ? listen_unix(srv, *a + 5, err) : listen_tcp(srv, *a, err);
        if (r < 0)
                goto fail;
        if (srv->nl == 0) {
                orion_info("nbd: no listen address configured, NBD server not started");
                return 0;
        }
        srv->wake_fd = eventfd(0, EFD_CLOEXEC);
        if (srv->wake_fd < 0) {
                r = orion_error_set(err, errno, "nbd: eventfd: %m");
                goto fail;
        }
        srv->stopping = false;
        if (pthread_create(&srv->acceptor, NULL, acceptor_thread, srv) != 0) {
                r = orion_error_set(err, EAGAIN, "nbd: cannot start the acceptor thread");
                goto fail;
        }
        srv->running = true;
        srv->started_ns = now_ns();
        for (size_t i = 0; i < srv->nl; i++)
                orion_info("nbd: listening on %s", srv->l[i].addr);
        return 0;
fail:
        if (srv->wake_fd >= 0)
                (void) close(srv->wake_fd);
        srv->wake_fd = -1;
        close_listeners(srv);
        nbd_tls_done();
        return r;
}

static void nbd_stop(void) {
        struct nbd_server *srv = &g_srv;
        uint64_t one = 1;

        if (!srv->running)
                return;
        /* Stop accepting. */
        WITH_LOCK(&srv->lock)
                srv->stopping = true;
        (void) write(srv->wake_fd, &one, sizeof(one));
        (void) pthread_join(srv->acceptor, NULL);
        close_listeners(srv);
        (void) close(srv->wake_fd);
        srv->wake_fd = -1;

        /* Each connection stops reading, finishes (and answers) what is in flight, then closes. */
        LOCK_GUARD(&srv->lock);
        for (struct nbd_conn *c = srv->conns; c; c = c->next)
                (void) shutdown(c->fd, SHUT_RD);
        while (srv->nconns > 0)
                pthread_cond_wait(&srv->cond, &srv->lock);
        srv->running = false;
        nbd_tls_done();
        orion_info("nbd: server stopped");
}

static int nbd_export_added(struct orion_export *e, struct orion_error *err) {
        return 0;
}

/* Clients of a removed export are disconnected (after their in-flight requests), so that the
 * export's reference on the node goes away. */
static void nbd_export_removed(struct orion_export *e) {
        struct nbd_server *srv = &g_srv;
        struct timespec deadline;
        bool any = true;

        clock_gettime(CLOCK_REALTIME, &deadline);
        deadline.tv_sec += 30;
        LOCK_GUARD(&srv->lock);
        for (struct nbd_conn *c = srv->conns; c; c = c->next)
                if (c->exp == e)
                        (void) shutdown(c->fd, SHUT_RD);
        while (any) {
                any = false;
                for (struct nbd_conn *c = srv->conns; c; c = c->next)
                        any |= c->exp == e;
                if (any && pthread_cond_timedwait(&srv->cond, &srv->lock, &deadline) == ETIMEDOUT) {
                        orion_warn("nbd: clients of export '%s' still connected after 30s", e->name);
                        break;
                }
        }
}

static void nbd_status(struct json_object *out) {
        struct nbd_server *srv = &g_srv;
        struct json_object *listen = json_object_new_array(), *clients = json_object_new_array();

        LOCK_GUARD(&srv->lock);
        for (size_t i = 0; i < srv->nl; i++)
                json_object_array_add(listen, json_object_new_string(srv->l[i].addr));
        for (struct nbd_conn *c = srv->conns; c; c = c->next) {
                struct json_object *o = json_object_new_object();
                json_object_object_add(o, "peer", json_object_new_string(c->peer));
                json_object_object_add(o, "export", c->exp ? json_object_new_string(c->exp->name) : NULL);
                json_object_object_add(o, "structured-replies", json_object_new_boolean(c->structured));
                json_object_object_add(o, "tls", json_object_new_boolean(c->tls != NULL));
                json_object_object_add(o, "requests", json_object_new_uint64(atomic_load(&c->requests)));
                json_object_object_add(o, "bytes-read", json_object_new_uint64(atomic_load(&c->bytes_read)));
                json_object_object_add(o, "bytes-written", json_object_new_uint64(atomic_load(&c->bytes_written)));
                json_object_object_add(o, "errors", json_object_new_uint64(atomic_load(&c->errors)));
                json_object_array_add(clients, o);
        }
        json_object_object_add(out, "listen", listen);
        json_object_object_add(out, "connections", json_object_new_int64(srv->nconns));
        json_object_object_add(out, "max-connections", json_object_new_int64(srv->max_conns));
        json_object_object_add(out, "total-connections", json_object_new_uint64(srv->total_conns));
        json_object_object_add(out, "refused-connections", json_object_new_uint64(srv->refused_conns));
        json_object_object_add(out, "tls", json_object_new_string(nbd_tls_mode == NBD_TLS_REQUIRE ? "require"
                                                                  : nbd_tls_mode == NBD_TLS_ON    ? "on"
                                                                                                  : "off"));
        json_object_object_add(out, "clients", clients);
}

const struct export_driver nbd_export_driver = {
        .name = "nbd",
        .proto = PROTO_NBD,
        .start = nbd_start,
        .stop = nbd_stop,
        .export_added = nbd_export_added,
        .export_removed = nbd_export_removed,
        .status = nbd_status,
};
