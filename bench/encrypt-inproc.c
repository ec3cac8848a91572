/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* In-process throughput of the encrypt layer: a memory node, an encrypt node on it (loaded
 * from $ORION_PLUGIN_DIR like oriond does), sequential 1 MiB writes then reads from one
 * thread; beside the memory node alone and the bare libgcrypt XTS loop. Prints MB per CPU
 * second of the whole process, and for the encrypt rows also MB per wall second (a request
 * is split across the CPUs the process may use: run it pinned to one core for per-core rates).
 * Usage: encrypt-inproc [SECONDS] [SECTOR] [CIPHER] (run by bench/encrypt.sh; CIPHER is a
 * format cipher= value, default aes-xts-plain64: with an authenticated one the XTS loop alone
 * still measures XTS) */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "common/cleanup.h"
#include "core/core.h"
#include "plugins/encrypt/luks2.h"

#define REQ (1u << 20)
#define VOL (64u << 20)

/* CPU time of the process (every thread: the layer's worker shares count), like `openssl
 * speed` (which divides by user CPU time unless -elapsed): on a shared machine wall time
 * measures the neighbours too. */
static double now_s(void) {
        struct timespec ts;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static double wall_s(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static double g_last_wall; /* MB/s of wall time of the last run() */

static struct json_object *kv(const char *k, ...) {
        struct json_object *o = json_object_new_object();
        va_list ap;
        va_start(ap, k);
        for (; k; k = va_arg(ap, const char *))
                json_object_object_add(o, k, json_object_new_string(va_arg(ap, const char *)));
        va_end(ap);
        return o;
}

/* MB/s of sequential 1 MiB requests over the first VOL bytes of b for secs seconds. */
static double run(struct orion_bdev *b, bool write, double secs, uint8_t *buf) {
        uint64_t bytes = 0, off = 0;
        double t0 = now_s(), w0 = wall_s(), t;
        do {
                int r = write ? orion_bdev_pwrite(b, buf, REQ, off, 0) : orion_bdev_pread(b, buf, REQ, off, 0);
                if (r < 0) {
                        fprintf(stderr, "I/O error %d\n", r);
                        exit(1);
                }
                bytes += REQ;
                off = (off + REQ) % VOL;
                t = now_s() - t0;
        } while (t < secs);
        g_last_wall = (double) bytes / (wall_s() - w0) / 1e6;
        return (double) bytes / t / 1e6;
}

static double raw_xts(double secs, uint32_t sector, uint8_t *buf) {
        uint8_t key[64];
        gcry_cipher_hd_t hd;
        uint64_t bytes = 0, iv = 0;
        double t0 = now_s(), t;

        for (int i = 0; i < 64; i++)
                key[i] = (uint8_t) (i * 3 + 1);
        if (crypt_cipher_open("aes-xts-plain64", key, 64, &hd) < 0)
                exit(1);
        do {
                crypt_sectors(hd, true, buf, buf, REQ, sector, iv, sector / 512);
                iv += REQ / 512;
                bytes += REQ;
                t = now_s() - t0;
        } while (t < secs);
        gcry_cipher_close(hd);
        return (double) bytes / t / 1e6;
}

int main(int argc, char **argv) {
        double secs = argc > 1 ? atof(argv[1]) : 2.0;
        const char *sector = argc > 2 ? argv[2] : "4096";
        const char *cipher = argc > 3 ? argv[3] : "aes-xts-plain64";
        struct orion_error err = { 0 };
        struct orion_bdev *mem, *vol;
        const struct orion_plugin *t;
        struct orion_params *p;
        char keyfile[] = "/tmp/encrypt-bench-key.XXXXXX";
        uint8_t *buf = orion_alloc_aligned(REQ);
        int fd;

        orion_log_set_level(ORION_LOG_WARNING);
        fd = mkstemp(keyfile);
        if (fd < 0 || write(fd, "bench", 5) != 5 || !buf)
                return 1;
        close(fd);
        memset(buf, 0x5a, REQ);
        if (registry_init(getenv("ORION_PLUGIN_DIR")) < 0 ||
            graph_node_add("mem", "memory", kv("size", "96M", NULL), &mem, &err) < 0 ||
            !(t = registry_find("encrypt", &err))) {
                fprintf(stderr, "setup: %s\n", err.msg);
                return 1;
        }
        struct json_object *fp = kv("child", "mem", "key-file", keyfile, "pbkdf", "pbkdf2", "pbkdf-force-iterations",
                                    "1000", "sector-size", sector, "cipher", cipher, NULL);
        p = params_new(t, fp, &err);
        json_object_put(fp);
        if (!p || t->format(p, false, NULL, &err) < 0 ||
            graph_node_add("vol", "encrypt", kv("child", "mem", "key-file", keyfile, NULL), &vol, &err) < 0) {
                fprintf(stderr, "encrypt: %s\n", err.msg);
                return 1;
        }
        params_free(p);
        unlink(keyfile);
        run(vol, true, 0.2, buf); /* warm up: memory pages allocated, handles created */
        const char *only = getenv("BENCH_ONLY"); /* profiling: one phase */
        if (only) {
                printf("%s %.0f MB/s\n", only,
                       !strcmp(only, "xts")     ? raw_xts(secs, (uint32_t) strtoul(sector, NULL, 10), buf)
                       : !strcmp(only, "read")  ? run(vol, false, secs, buf)
                                                : run(vol, true, secs, buf));
                return 0;
        }
        /* Best of three rounds: the machine is shared, the best round is the least disturbed. */
        double x = 0, mw = 0, mr = 0, ew = 0, er = 0, eww = 0, erw = 0;
        for (int round = 0; round < 3; round++) {
                x = MAX(x, raw_xts(secs, (uint32_t) strtoul(sector, NULL, 10), buf));
                mw = MAX(mw, run(mem, true, secs, buf));
                mr = MAX(mr, run(mem, false, secs, buf));
                ew = MAX(ew, run(vol, true, secs, buf));
                eww = MAX(eww, g_last_wall);
                er = MAX(er, run(vol, false, secs, buf));
                erw = MAX(erw, g_last_wall);
        }
        printf("cipher=%s sector=%s xts_only=%.0f memory_write=%.0f memory_read=%.0f encrypt_write=%.0f encrypt_read=%.0f "
               "encrypt_write_wall=%.0f encrypt_read_wall=%.0f\n", cipher, sector, x, mw, mr, ew, er, eww, erw);
        graph_close_all();
        registry_done();
        free(buf);
        return 0;
}
