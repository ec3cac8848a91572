/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Protocol fuzz targets' client side: one thread sends the fuzz input into a socketpair, another
 * drains whatever the server answers, so the server is driven exactly as by a real peer. */
#pragma once

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

struct feed {
        int fd;
        const uint8_t *data;
        size_t size;
};

/* pthread start routine: send all of f->data, then half-close. */
static inline void *feed_writer(void *arg) {
        struct feed *f = arg;
        size_t off = 0;

        while (off < f->size) {
                ssize_t n = send(f->fd, f->data + off, f->size - off, MSG_NOSIGNAL);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break; /* the server hung up: the rest is not wanted */
                off += (size_t) n;
        }
        (void) shutdown(f->fd, SHUT_WR);
        return NULL;
}

/* pthread start routine: read and discard until the server closes. */
static inline void *feed_reader(void *arg) {
        struct feed *f = arg;
        char buf[65536];

        while (recv(f->fd, buf, sizeof(buf), 0) > 0)
                ;
        return NULL;
}
