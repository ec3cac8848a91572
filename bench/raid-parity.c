/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* In-process parity speed of the raid layer's code (plugins/raid/parity.c, ISA-L) against a
 * plain C byte loop, on streaming data (rotating over a buffer far larger than the caches).
 * Prints GB/s of data bytes per core. Built and run by bench/raid.sh; nothing is asserted. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "parity.h"

#define K 8
#define CHUNK (64 * 1024)

/* CPU time of this thread: GB/s per core even when the machine is shared (wall-clock rates
 * are printed too). */
static double now(void) {
        struct timespec ts;

        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static double wall(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static uint8_t mul2(uint8_t v) {
        return (uint8_t) ((v << 1) ^ ((v & 0x80) ? 0x1D : 0));
}

/* The textbook loop: Horner's rule per byte. */
static void naive_pq(unsigned k, size_t len, uint8_t **d, uint8_t *p, uint8_t *q) {
        for (size_t x = 0; x < len; x++) {
                uint8_t pp = 0, qq = 0;

                for (unsigned i = k; i-- > 0;) {
                        pp ^= d[i][x];
                        qq = mul2(qq) ^ d[i][x];
                }
                p[x] = pp;
                q[x] = qq;
        }
}

int main(int argc, char **argv) {
        size_t total = (argc > 1 ? strtoull(argv[1], NULL, 10) : 512) << 20; /* MiB of data */
        size_t nstripes = total / ((size_t) K * CHUNK);
        uint8_t *mem, *p, *q;
        double t, w, best_pq = 0, best_p = 0, naive = 0, wall_pq = 0, wall_p = 0;

        if (posix_memalign((void **) &mem, 4096, total) || posix_memalign((void **) &p, 4096, 2 * CHUNK))
                return 1;
        q = p + CHUNK;
        for (size_t i = 0; i < total; i++)
                mem[i] = (uint8_t) (i * 2654435761u >> 13);
        for (int rep = 0; rep < 3; rep++) {
                t = now();
                w = wall();
                for (size_t s = 0; s < nstripes; s++) {
                        uint8_t *d[K];

                        for (unsigned i = 0; i < K; i++)
                                d[i] = mem + (s * K + i) * CHUNK;
                        parity_gen_pq(K, CHUNK, d, p, q);
                }
                t = now() - t;
                w = wall() - w;
                best_pq = best_pq > total / t ? best_pq : (double) total / t;
                wall_pq = wall_pq > total / w ? wall_pq : (double) total / w;
                t = now();
                w = wall();
                for (size_t s = 0; s < nstripes; s++) {
                        uint8_t *d[K];

                        for (unsigned i = 0; i < K; i++)
                                d[i] = mem + (s * K + i) * CHUNK;
                        parity_gen_p(K, CHUNK, d, p);
                }
                t = now() - t;
                w = wall() - w;
                best_p = best_p > total / t ? best_p : (double) total / t;
                wall_p = wall_p > total / w ? wall_p : (double) total / w;
        }
        t = now();
        for (size_t s = 0; s < nstripes / 8; s++) {
                uint8_t *d[K];

                for (unsigned i = 0; i < K; i++)
                        d[i] = mem + (s * K + i) * CHUNK;
                naive_pq(K, CHUNK, d, p, q);
        }
        naive = (double) (total / 8) / (now() - t);
        printf("parity over %zu MiB of streaming data, %d+P+Q, %d KiB chunks, one thread:\n", total >> 20, K,
               CHUNK / 1024);
        printf("                                  per CPU-second   wall clock\n");
        printf("  P+Q (pq_gen via parity_gen_pq)  %6.1f GB/s      %6.1f GB/s\n", best_pq / 1e9,
               wall_pq / 1e9);
        printf("  P   (xor_gen via parity_gen_p)  %6.1f GB/s      %6.1f GB/s\n", best_p / 1e9, wall_p / 1e9);
        printf("  P+Q naive C byte loop           %6.1f GB/s\n", naive / 1e9);
        free(mem);
        free(p);
        return 0;
}
