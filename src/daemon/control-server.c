/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The control socket: a Unix stream socket (mode 0600, peer credentials checked), one thread per
 * client, one JSON request per line. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "core/core.h"
#include "daemon/control.h"

#define MAX_CLIENTS 64
#define READ_CHUNK 65536

static int g_listen_fd = -1;
static int g_wake[2] = { -1, -1 };
static pthread_t g_accept_thread;
static bool g_accept_running;
static char *g_path;

static pthread_mutex_t g_clients_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_clients_cond = PTHREAD_COND_INITIALIZER;
static int g_client_fds[MAX_CLIENTS];
static unsigned g_nclients;
static bool g_stopping;

static int send_all(int fd, const char *buf, size_t len) {
        while (len > 0) {
                ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                buf += n;
                len -= (size_t) n;
        }
        return 0;
}

static int send_reply(int fd, char *text) {
        if (!text)
                return send_all(fd, "{\"ok\":false,\"errno\":12,\"error\":\"out of memory\"}\n", 48);
        int r = send_all(fd, text, strlen(text));
        if (r >= 0)
                r = send_all(fd, "\n", 1);
        free(text);
        return r;
}

static void send_error(int fd, int code, const char *msg) {
        char buf[256];
        int n = snprintf(buf, sizeof buf, "{\"ok\":false,\"errno\":%d,\"error\":\"%s\"}\n", code, msg);
        if (n > 0 && (size_t) n < sizeof buf)
                (void) send_all(fd, buf, (size_t) n); /* the client goes away either way */
}

/* Handle one line; returns false when the connection should end. */
static bool handle_line(int fd, const char *line, size_t len, bool *ret_shutdown) {
        /* Blank lines are keep-alives, not requests. */
        size_t i = 0;
        while (i < len && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r'))
                i++;
        if (i == len)
                return true;
        bool shut = false;
        char *reply = control_handle_line_ex(line, len, &shut);
        if (shut)
                *ret_shutdown = true;
        return send_reply(fd, reply) >= 0;
}

static void client_unregister(int fd) {
        pthread_mutex_lock(&g_clients_lock);
        for (unsigned i = 0; i < MAX_CLIENTS; i++)
                if (g_client_fds[i] == fd) {
                        g_client_fds[i] = -1;
                        break;
                }
        g_nclients--;
        pthread_cond_broadcast(&g_clients_cond);
        pthread_mutex_unlock(&g_clients_lock);
}

static void client_loop(int fd, bool *ret_shutdown) {
        _cleanup_free_ char *buf = NULL;
        size_t len = 0, cap = 0;
        for (;;) {
                if (cap - len < READ_CHUNK) {
                        size_t ncap = cap ? cap * 2 : 2 * READ_CHUNK;
                        if (ncap > CONTROL_MAX_REQUEST + 2 * READ_CHUNK)
                                ncap = CONTROL_MAX_REQUEST + 2 * READ_CHUNK;
                        char *n = ncap > cap ? realloc(buf, ncap) : buf;
                        if (!n) {
                                send_error(fd, ENOMEM, "out of memory");
                                return;
                        }
                        buf = n;
                        cap = ncap;
                }
                ssize_t n = read(fd, buf + len, cap - len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0) {
                        /* A last request without a newline, then EOF: still answer it. */
                        if (n == 0 && len > 0)
                                (void) handle_line(fd, buf, len, ret_shutdown);
                        return;
                }
                size_t scan = len;
                len += (size_t) n;
                char *start = buf, *nl;
                while ((nl = memchr(buf + scan, '\n', len - scan))) {
                        if (!handle_line(fd, start, (size_t) (nl - start), ret_shutdown) || *ret_shutdown)
                                return;
                        start = nl + 1;
                        scan = (size_t) (start - buf);
                }
                size_t rest = len - (size_t) (start - buf);
                memmove(buf, start, rest);
                len = rest;
                if (len > CONTROL_MAX_REQUEST) {
                        send_error(fd, E2BIG, "request line too long");
                        return;
                }
        }
}

static void *client_thread(void *arg) {
        int fd = (int) (intptr_t) arg;
        bool shut = false;
        client_loop(fd, &shut);
        client_unregister(fd);
        close(fd);
        if (shut) {
                const struct control_context *ctx = control_get_context();
                if (ctx->shutdown)
                        ctx->shutdown(ctx->userdata);
        }
        return NULL;
}

static bool peer_allowed(int fd) {
        struct ucred uc;
        socklen_t l = sizeof uc;
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &l) < 0) {
                orion_warn("control: cannot read peer credentials: %m");
                return false;
        }
        if (uc.uid == 0 || uc.uid == geteuid())
                return true;
        orion_warn("control: refused a client with uid %u (pid %d)", (unsigned) uc.uid, (int) uc.pid);
        return false;
}

static void accept_one(void) {
        int fd = accept4(g_listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
                if (errno != EINTR && errno != EAGAIN && errno != ECONNABORTED)
                        orion_warn("control: accept failed: %m");
                return;
        }
        if (!peer_allowed(fd)) {
                send_error(fd, EACCES, "permission denied");
                close(fd);
                return;
        }
        pthread_mutex_lock(&g_clients_lock);
        if (g_stopping || g_nclients >= MAX_CLIENTS) {
                pthread_mutex_unlock(&g_clients_lock);
                send_error(fd, EBUSY, "too many control clients");
                close(fd);
                return;
        }
        for (unsigned i = 0; i < MAX_CLIENTS; i++)
                if (g_client_fds[i] < 0) {
                        g_client_fds[i] = fd;
                        break;
                }
        g_nclients++;
        pthread_mutex_unlock(&g_clients_lock);

        pthread_attr_t a;
        pthread_t t;
        pthread_attr_init(&a);
        pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
        int r = pthread_create(&t, &a, client_thread, (void *) (intptr_t) fd);
        pthread_attr_destroy(&a);
        if (r != 0) {
                orion_warn("control: cannot start a client thread: %s", strerror(r));
                send_error(fd, r, "cannot start a thread");
                client_unregister(fd);
                close(fd);
        }
}

static void *accept_thread(void *arg) {
        for (;;) {
                struct pollfd p[2] = { { g_listen_fd, POLLIN, 0 }, { g_wake[0], POLLIN, 0 } };
                if (poll(p, 2, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        orion_error("control: poll failed: %m");
                        return NULL;
                }
                if (p[1].revents)
                        return NULL;
                if (p[0].revents & POLLIN)
                        accept_one();
        }
}

/* Bind path; a socket file nobody answers on is stale and replaced. */
static int bind_socket(int fd, const char *path, struct orion_error *err) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        if (strlen(path) >= sizeof sa.sun_path)
                return orion_error_set(err, ENAMETOOLONG, "control socket path '%s' is too long", path);
        memcpy(sa.sun_path, path, strlen(path) + 1);
        for (int attempt = 0;; attempt++) {
                /* umask makes the socket 0600 from the start; chmod below is belt and braces. */
                mode_t old = umask(0177);
                int r = bind(fd, (struct sockaddr *) &sa, sizeof sa);
                int e = errno;
                umask(old);
                if (r == 0)
                        break;
                if (e != EADDRINUSE || attempt > 0)
                        return orion_error_set(err, e, "cannot bind control socket '%s': %s", path, strerror(e));
                _cleanup_close_ int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (probe < 0)
                        return orion_error_set(err, errno, "socket: %s", strerror(errno));
                if (connect(probe, (struct sockaddr *) &sa, sizeof sa) == 0)
                        return orion_error_set(err, EADDRINUSE, "control socket '%s' is in use (another oriond?)",
                                               path);
                orion_info("control: removing stale socket '%s'", path);
                if (unlink(path) < 0 && errno != ENOENT)
                        return orion_error_set(err, errno, "cannot remove stale '%s': %s", path, strerror(errno));
        }
        if (chmod(path, 0600) < 0)
                return orion_error_set(err, errno, "cannot chmod '%s': %s", path, strerror(errno));
        return 0;
}

static int make_parent_dir(const char *path) {
        _cleanup_free_ char *dir = strdup(path);
        if (!dir)
                return -ENOMEM;
        char *slash = strrchr(dir, '/');
        if (!slash || slash == dir)
                return 0;
        *slash = '\0';
        if (mkdir(dir, 0755) < 0 && errno != EEXIST)
                return -errno;
        return 0;
}

int control_server_start(const char *path, struct orion_error *err) {
        for (unsigned i = 0; i < MAX_CLIENTS; i++)
                g_client_fds[i] = -1;
        g_stopping = false;
        int r = make_parent_dir(path);
        if (r < 0)
                return orion_error_set(err, -r, "cannot create the directory of '%s': %s", path, strerror(-r));
        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return orion_error_set(err, errno, "socket: %s", strerror(errno));
        r = bind_socket(fd, path, err);
        if (r < 0)
                return r;
        if (listen(fd, 16) < 0) {
                r = orion_error_set(err, errno, "listen on '%s': %s", path, strerror(errno));
                (void) unlink(path);
                return r;
        }
        if (pipe2(g_wake, O_CLOEXEC) < 0) {
                r = orion_error_set(err, errno, "pipe: %s", strerror(errno));
                (void) unlink(path);
                return r;
        }
        g_path = strdup(path);
        g_listen_fd = TAKE_FD(fd);
        r = pthread_create(&g_accept_thread, NULL, accept_thread, NULL);
        if (r != 0) {
                control_server_stop();
                return orion_error_set(err, r, "cannot start the control thread: %s", strerror(r));
        }
        g_accept_running = true;
        orion_info("control: listening on '%s'", path);
        return 0;
}

void control_server_stop(void) {
        if (g_accept_running) {
                (void) write(g_wake[1], "x", 1); /* a full pipe already wakes the thread */
                pthread_join(g_accept_thread, NULL);
                g_accept_running = false;
        }
        if (g_listen_fd >= 0) {
                close(g_listen_fd);
                g_listen_fd = -1;
        }
        for (int i = 0; i < 2; i++)
                if (g_wake[i] >= 0) {
                        close(g_wake[i]);
                        g_wake[i] = -1;
                }
        if (g_path) {
                (void) unlink(g_path); /* it may already be gone */
                free(g_path);
                g_path = NULL;
        }

        /* Wake clients blocked in read; one busy in a request finishes it first. */
        pthread_mutex_lock(&g_clients_lock);
        g_stopping = true;
        for (unsigned i = 0; i < MAX_CLIENTS; i++)
                if (g_client_fds[i] >= 0)
                        (void) shutdown(g_client_fds[i], SHUT_RDWR);
        time_t warn_at = time(NULL) + 10;
        while (g_nclients > 0) {
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_sec += 1;
                (void) pthread_cond_timedwait(&g_clients_cond, &g_clients_lock, &ts);
                if (g_nclients > 0 && time(NULL) >= warn_at) {
                        orion_warn("control: waiting for %u client request(s) to finish", g_nclients);
                        warn_at = time(NULL) + 10;
                }
        }
        pthread_mutex_unlock(&g_clients_lock);
}
