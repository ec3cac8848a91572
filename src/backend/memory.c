/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* `memory` leaf: a sparse RAM disk (64 KiB chunks allocated on first write), for tests and demos. */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include <json-c/json.h>

#include "common/cleanup.h"
#include "orion/plugin.h"

#define CHUNK_SHIFT 16
#define CHUNK_SIZE (1u << CHUNK_SHIFT)
#define GROUP_SHIFT 14 /* 16384 chunks = 1 GiB per group */
#define GROUP_CHUNKS (1u << GROUP_SHIFT)

struct memdisk {
        uint64_t size;
        uint64_t ngroups;
        char ***groups;          /* groups[g][c] = chunk or NULL */
        pthread_rwlock_t lock;   /* read: data ops; write: freeing chunks */
        pthread_mutex_t alloc_lock;
        uint64_t allocated;      /* chunks in use */
};

/* Writes of 4 KiB and more go around the CPU cache (non-temporal stores): a RAM disk larger than
 * the cache would otherwise read every destination line before overwriting it, and what was
 * just written is seldom read back at once. Measured here, 1 MiB writes into a 64 MiB disk:
 * memcpy 6.5 GB/s, SSE2 streaming stores 10, AVX2 streaming stores 13-14. */
#define STREAM_MIN 4096u
#if defined(__x86_64__)
__attribute__((target("avx2"))) static void stream_avx2(char *d, const char *s, size_t n) {
        for (size_t i = 0; i < n; i += 128) {
                __m256i a = _mm256_loadu_si256((const __m256i *) (s + i));
                __m256i b = _mm256_loadu_si256((const __m256i *) (s + i + 32));
                __m256i c = _mm256_loadu_si256((const __m256i *) (s + i + 64));
                __m256i e = _mm256_loadu_si256((const __m256i *) (s + i + 96));
                _mm256_stream_si256((__m256i *) (d + i), a);
                _mm256_stream_si256((__m256i *) (d + i + 32), b);
                _mm256_stream_si256((__m256i *) (d + i + 64), c);
                _mm256_stream_si256((__m256i *) (d + i + 96), e);
        }
        _mm_sfence(); /* the data is in memory before the write is reported done */
}

static void stream_sse2(char *d, const char *s, size_t n) {
        for (size_t i = 0; i < n; i += 64) {
                __m128i a = _mm_loadu_si128((const __m128i *) (s + i));
                __m128i b = _mm_loadu_si128((const __m128i *) (s + i + 16));
                __m128i c = _mm_loadu_si128((const __m128i *) (s + i + 32));
                __m128i e = _mm_loadu_si128((const __m128i *) (s + i + 48));
                _mm_stream_si128((__m128i *) (d + i), a);
                _mm_stream_si128((__m128i *) (d + i + 16), b);
                _mm_stream_si128((__m128i *) (d + i + 32), c);
                _mm_stream_si128((__m128i *) (d + i + 48), e);
        }
        _mm_sfence();
}
#endif

static void store(char *d, const char *s, size_t n) {
#if defined(__x86_64__)
        if (n >= STREAM_MIN && !((uintptr_t) d & 63) && !(n & 127)) {
                if (__builtin_cpu_supports("avx2"))
                        stream_avx2(d, s, n);
                else
                        stream_sse2(d, s, n);
                return;
        }
#endif
        memcpy(d, s, n);
}

static char **chunk_slot(struct memdisk *m, uint64_t chunk, bool create) {
        uint64_t g = chunk >> GROUP_SHIFT;
        char **grp = __atomic_load_n(&m->groups[g], __ATOMIC_ACQUIRE);
        if (!grp) {
                if (!create)
                        return NULL;
                LOCK_GUARD(&m->alloc_lock);
                grp = m->groups[g];
                if (!grp) {
                        grp = calloc(GROUP_CHUNKS, sizeof *grp);
                        if (!grp)
                                return NULL;
                        __atomic_store_n(&m->groups[g], grp, __ATOMIC_RELEASE);
                }
        }
        return &grp[chunk & (GROUP_CHUNKS - 1)];
}

static char *chunk_get(struct memdisk *m, uint64_t chunk, bool create) {
        char **slot = chunk_slot(m, chunk, create);
        if (!slot)
                return NULL;
        char *c = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
        if (c || !create)
                return c;
        LOCK_GUARD(&m->alloc_lock);
        c = *slot;
        if (!c) {
                c = aligned_alloc(64, CHUNK_SIZE); /* streaming stores want aligned lines */
                if (!c)
                        return NULL;
                memset(c, 0, CHUNK_SIZE);
                m->allocated++;
                __atomic_store_n(slot, c, __ATOMIC_RELEASE);
        }
        return c;
}

static int memory_pread(struct orion_bdev *b, void *buf, uint64_t len, uint64_t off, uint32_t flags) {
        struct memdisk *m = orion_bdev_priv(b);
        char *p = buf;
        pthread_rwlock_rdlock(&m->lock);
        while (len) {
                uint64_t in = off & (CHUNK_SIZE - 1), n = CHUNK_SIZE - in < len ? CHUNK_SIZE - in : len;
                char *c = chunk_get(m, off >> CHUNK_SHIFT, false);
                if (c)
                        memcpy(p, c + in, n);
                else
                        memset(p, 0, n);
                p += n;
                off += n;
                len -= n;
        }
        pthread_rwlock_unlock(&m->lock);
        return 0;
}

/* Zero-copy read: each chunk's own memory (NULL for an unallocated one), under the read lock
 * so that discard and zeroing, which free chunks under the write lock, wait for fn. */
static int memory_read_view(struct orion_bdev *b, uint64_t len, uint64_t off,
                            int (*fn)(void *arg, const void *data, uint64_t n), void *arg) {
        struct memdisk *m = orion_bdev_priv(b);
        int r = 0;
        pthread_rwlock_rdlock(&m->lock);
        while (len && r >= 0) {
                uint64_t in = off & (CHUNK_SIZE - 1), n = CHUNK_SIZE - in < len ? CHUNK_SIZE - in : len;
                char *c = chunk_get(m, off >> CHUNK_SHIFT, false);
                r = fn(arg, c ? c + in : NULL, n);
                off += n;
                len -= n;
        }
        pthread_rwlock_unlock(&m->lock);
        return r < 0 ? r : 0;
}

/* A write that covers a whole chunk not allocated yet: fill a new chunk before it is published,
 * instead of zeroing it first and then overwriting it. Readers never see it half filled (nor
 * uninitialised: it may hold another node's freed data). false: do the ordinary store. */
static bool chunk_create_filled(struct memdisk *m, uint64_t chunk, const char *src) {
        char **slot = chunk_slot(m, chunk, true);
        char *c;

        if (!slot || __atomic_load_n(slot, __ATOMIC_ACQUIRE) || !(c = aligned_alloc(64, CHUNK_SIZE)))
                return false;
        store(c, src, CHUNK_SIZE);
        WITH_LOCK(&m->alloc_lock) {
                if (!*slot) {
                        m->allocated++;
                        __atomic_store_n(slot, c, __ATOMIC_RELEASE);
                        return true;
                }
        }
        free(c); /* another writer created it meanwhile */
        return false;
}

static int memory_pwrite(struct orion_bdev *b, const void *buf, uint64_t len, uint64_t off, uint32_t flags) {
        struct memdisk *m = orion_bdev_priv(b);
        const char *p = buf;
        int r = 0;
        pthread_rwlock_rdlock(&m->lock);
        while (len) {
                uint64_t in = off & (CHUNK_SIZE - 1), n = CHUNK_SIZE - in < len ? CHUNK_SIZE - in : len;
                char *c;
                if (n == CHUNK_SIZE && chunk_create_filled(m, off >> CHUNK_SHIFT, p))
                        goto next;
                c = chunk_get(m, off >> CHUNK_SHIFT, true);
                if (!c) {
                        r = -ENOSPC; /* out of memory is "no space" to a block device client */
                        break;
                }
                store(c + in, p, n);
        next:
                p += n;
                off += n;
                len -= n;
        }
        pthread_rwlock_unlock(&m->lock);
        return r;
}

/* Whole chunks are freed, partial ones zeroed: the range reads back as zeroes either way. */
static int memory_zero(struct orion_bdev *b, uint64_t len, uint64_t off, uint32_t flags) {
        struct memdisk *m = orion_bdev_priv(b);
        pthread_rwlock_wrlock(&m->lock);
        while (len) {
                uint64_t in = off & (CHUNK_SIZE - 1), n = CHUNK_SIZE - in < len ? CHUNK_SIZE - in : len;
                char **slot = chunk_slot(m, off >> CHUNK_SHIFT, false);
                if (slot && *slot) {
                        if (n == CHUNK_SIZE && !(flags & ORION_NO_HOLE)) {
                                free(*slot);
                                *slot = NULL;
                                m->allocated--;
                        } else
                                memset(*slot + in, 0, n);
                }
                off += n;
                len -= n;
        }
        pthread_rwlock_unlock(&m->lock);
        return 0;
}

static int memory_discard(struct orion_bdev *b, uint64_t len, uint64_t off, uint32_t flags) {
        return memory_zero(b, len, off, flags & ~(uint32_t) ORION_NO_HOLE);
}

static int memory_block_status(struct orion_bdev *b, uint64_t len, uint64_t off, struct orion_extents *ext) {
        struct memdisk *m = orion_bdev_priv(b);
        int r = 0;
        pthread_rwlock_rdlock(&m->lock);
        while (len && r == 0) {
                uint64_t in = off & (CHUNK_SIZE - 1), n = CHUNK_SIZE - in < len ? CHUNK_SIZE - in : len;
                bool data = chunk_get(m, off >> CHUNK_SHIFT, false) != NULL;
                r = orion_extents_add(ext, off, n, data ? 0 : ORION_EXTENT_HOLE | ORION_EXTENT_ZERO);
                off += n;
                len -= n;
        }
        pthread_rwlock_unlock(&m->lock);
        return r == -E2BIG ? 0 : r;
}

static int memory_flush(struct orion_bdev *b, uint32_t flags) {
        return 0; /* RAM: nothing outlives the process, and nothing is cached in front of it */
}

static void memory_stats(struct orion_bdev *b, struct json_object *sink) {
        struct memdisk *m = orion_bdev_priv(b);
        pthread_mutex_lock(&m->alloc_lock);
        uint64_t a = m->allocated;
        pthread_mutex_unlock(&m->alloc_lock);
        orion_stats_put(sink, "allocated-bytes", a * CHUNK_SIZE);
}

static void memory_close(struct orion_bdev *b) {
        struct memdisk *m = orion_bdev_priv(b);
        for (uint64_t g = 0; g < m->ngroups; g++) {
                if (!m->groups[g])
                        continue;
                for (unsigned c = 0; c < GROUP_CHUNKS; c++)
                        free(m->groups[g][c]);
                free(m->groups[g]);
        }
        free(m->groups);
        pthread_rwlock_destroy(&m->lock);
        pthread_mutex_destroy(&m->alloc_lock);
}

static int memory_open(struct orion_bdev *b, const struct orion_params *p, struct orion_error *err) {
        struct memdisk *m = orion_bdev_priv(b);
        uint64_t size = orion_param_size(p, "size");
        uint64_t bs = orion_param_size(p, "block-size");
        if (bs != 512 && bs != 4096)
                return orion_error_set(err, EINVAL, "block-size must be 512 or 4096");
        if (size == 0 || size % bs)
                return orion_error_set(err, EINVAL, "size must be a non-zero multiple of %llu", (unsigned long long) bs);
        if (size > (1ULL << 50))
                return orion_error_set(err, EFBIG, "size is larger than 1 PiB");
        m->size = size;
        m->ngroups = ((size + CHUNK_SIZE - 1) >> CHUNK_SHIFT) + GROUP_CHUNKS - 1;
        m->ngroups >>= GROUP_SHIFT;
        m->groups = calloc(m->ngroups, sizeof *m->groups);
        if (!m->groups)
                return orion_error_set(err, ENOMEM, "out of memory");
        pthread_rwlock_init(&m->lock, NULL);
        pthread_mutex_init(&m->alloc_lock, NULL);
        struct orion_geometry g = { .size = size, .block_size = (uint32_t) bs, .pref_size = 4096, .max_size = 0 };
        int r = orion_bdev_set_geometry(b, &g);
        if (r < 0) {
                memory_close(b);
                return orion_error_set(err, -r, "invalid geometry");
        }
        orion_bdev_set_caps(b, ORION_CAP_FUA | ORION_CAP_DISCARD | ORION_CAP_WRITE_ZEROES | ORION_CAP_FAST_ZERO |
                                       ORION_CAP_BLOCK_STATUS | ORION_CAP_MULTI_CONN);
        return 0;
}

static const struct orion_param memory_params[] = {
        { "size", ORION_PARAM_SIZE, NULL, "Size of the RAM disk (sparse: only written chunks use memory)." },
        { "block-size", ORION_PARAM_SIZE, "512", "Logical block size: 512 or 4096." },
        { NULL },
};

static const struct orion_bdev_ops memory_ops = {
        .pread = memory_pread,
        .read_view = memory_read_view,
        .pwrite = memory_pwrite,
        .flush = memory_flush,
        .discard = memory_discard,
        .write_zeroes = memory_zero,
        .block_status = memory_block_status,
        .stats = memory_stats,
        .close = memory_close,
};

ORION_BUILTIN_TYPE(orion_type_memory, .name = "memory",
                   .description = "Sparse RAM disk; contents are lost when oriond stops.",
                   .params = memory_params, .instance_size = sizeof(struct memdisk), .ops = &memory_ops,
                   .open = memory_open);
