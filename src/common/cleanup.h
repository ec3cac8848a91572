/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Scope-bound cleanup helpers (systemd style): _cleanup_free_, _cleanup_close_, TAKE_PTR, LOCK_GUARD. */
#pragma once

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))

static inline void freep(void *p) {
        free(*(void **)p);
}
#define _cleanup_free_ _cleanup_(freep)

static inline void closep(int *fd) {
        if (*fd >= 0) {
                int saved = errno;
                (void) close(*fd); /* nothing useful to do on a close error in cleanup */
                errno = saved;
        }
}
#define _cleanup_close_ _cleanup_(closep)

#define DEFINE_TRIVIAL_CLEANUP_FUNC(type, func)          \
        static inline void func##p(type *p) {            \
                if (*p)                                  \
                        func(*p);                        \
        }

#define TAKE_PTR(p)                              \
        ({                                       \
                __typeof__(p) _tp_ = (p);        \
                (p) = NULL;                      \
                _tp_;                            \
        })
#define TAKE_FD(fd)                              \
        ({                                       \
                int _tf_ = (fd);                 \
                (fd) = -1;                       \
                _tf_;                            \
        })

static inline void mutex_unlockp(pthread_mutex_t **m) {
        if (*m)
                pthread_mutex_unlock(*m);
}
#define _LG_CAT2(a, b) a##b
#define _LG_CAT(a, b) _LG_CAT2(a, b)
/* Hold m until the end of the enclosing scope. */
#define LOCK_GUARD(m)                                                                        \
        _cleanup_(mutex_unlockp) __attribute__((unused)) pthread_mutex_t *_LG_CAT(_lock_guard_, __COUNTER__) = \
                (pthread_mutex_lock(m), (m))
/* WITH_LOCK(&m) { ... } */
#define WITH_LOCK(m)                                                                         \
        for (_cleanup_(mutex_unlockp) pthread_mutex_t *_wl_ = (pthread_mutex_lock(m), (m)); _wl_; \
             pthread_mutex_unlock(_wl_), _wl_ = NULL)

#define ELEMENTSOF(a) (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))
#define ALIGN_DOWN(x, a) ((x) & ~((__typeof__(x))(a) - 1))
#define ALIGN_UP(x, a) ALIGN_DOWN((x) + (a) - 1, (a))
#define IS_POW2(x) ((x) != 0 && (((x) & ((x) - 1)) == 0))
