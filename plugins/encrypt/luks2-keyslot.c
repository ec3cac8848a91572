/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* LUKS2 keyslots: PBKDF2/Argon2 through libgcrypt (cost chosen by a short benchmark), the
 * LUKS1 anti-forensic splitter, keyslot area en/decryption, and the volume key digest. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "common/cleanup.h"
#include "luks2.h"

static uint64_t mono_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

/* ---- Argon2 lanes on threads ----------------------------------------------------------------- */
#define KDF_THREADS_MAX 16

struct kdf_job {
        gcry_kdf_job_fn_t fn;
        void *priv;
        pthread_t th;
        bool threaded;
};

struct kdf_jobs {
        struct kdf_job job[KDF_THREADS_MAX];
        int n;
};

static void *kdf_job_main(void *arg) {
        struct kdf_job *j = arg;
        j->fn(j->priv);
        return NULL;
}

static int kdf_dispatch_cb(void *ctx, gcry_kdf_job_fn_t fn, void *priv) {
        struct kdf_jobs *jobs = ctx;
        struct kdf_job *j;

        if (jobs->n == KDF_THREADS_MAX) {
                fn(priv);
                return 0;
        }
        j = &jobs->job[jobs->n++];
        j->fn = fn;
        j->priv = priv;
        j->threaded = pthread_create(&j->th, NULL, kdf_job_main, j) == 0;
        if (!j->threaded)
                fn(priv); /* no thread: the lane still gets computed */
        return 0;
}

static int kdf_wait_cb(void *ctx) {
        struct kdf_jobs *jobs = ctx;
        for (int i = 0; i < jobs->n; i++)
                if (jobs->job[i].threaded)
                        pthread_join(jobs->job[i].th, NULL);
        jobs->n = 0;
        return 0;
}

static int argon2(int sub, uint32_t t, uint32_t m, uint32_t p, const void *pass, size_t pass_len,
                  const uint8_t *salt, size_t salt_len, void *out, size_t out_len) {
        unsigned long param[4] = { out_len, t, m, p };
        struct kdf_jobs jobs = { .n = 0 };
        const gcry_kdf_thread_ops_t ops = { &jobs, kdf_dispatch_cb, kdf_wait_cb };
        gcry_kdf_hd_t hd;
        gcry_error_t e;

        e = gcry_kdf_open(&hd, GCRY_KDF_ARGON2, sub, param, 4, pass, pass_len, salt, salt_len, NULL, 0, NULL, 0);
        if (e)
                return gcry_err_code(e) == GPG_ERR_ENOMEM ? -ENOMEM : -EINVAL;
        e = gcry_kdf_compute(hd, &ops);
        if (!e)
                e = gcry_kdf_final(hd, out_len, out);
        gcry_kdf_close(hd);
        if (e)
                return gcry_err_code(e) == GPG_ERR_ENOMEM ? -ENOMEM : -EIO;
        return 0;
}

static int pbkdf2(const char *hash, const void *pass, size_t pass_len, const uint8_t *salt, size_t salt_len,
                  uint32_t iterations, void *out, size_t out_len) {
        int md = gcry_md_map_name(hash);
        if (!md)
                return -ENOTSUP;
        if (gcry_kdf_derive(pass, pass_len, GCRY_KDF_PBKDF2, md, salt, salt_len, iterations, out_len, out))
                return -EINVAL;
        return 0;
}

int luks2_kdf_derive(const struct luks2_kdf *k, const void *pass, size_t pass_len, void *out, size_t out_len) {
        int r = crypt_init();
        if (r < 0)
                return r;
        if (k->type == LUKS2_KDF_PBKDF2)
                return pbkdf2(k->hash, pass, pass_len, k->salt, k->salt_len, k->iterations, out, out_len);
        return argon2(k->type == LUKS2_KDF_ARGON2I ? GCRY_KDF_ARGON2I : GCRY_KDF_ARGON2ID, k->iterations, k->memory,
                      k->cpus, pass, pass_len, k->salt, k->salt_len, out, out_len);
}

/* ---- Cost benchmark ---------------------------------------------------------------------- */
/* PBKDF2 iterations that take time_ms here (at least 1000, as cryptsetup). */
static int pbkdf2_bench(const char *hash, size_t out_len, uint32_t time_ms, uint32_t *ret) {
        static const char pass[] = "benchmark passphrase";
        uint8_t salt[LUKS2_SALT_LEN] = { 0 }, out[LUKS2_KEY_MAX];
        uint64_t iters = 1000, elapsed;
        int r;

        for (;;) {
                uint64_t t0 = mono_ms();
                r = pbkdf2(hash, pass, sizeof(pass) - 1, salt, sizeof(salt), (uint32_t) iters, out,
                           MIN(out_len, sizeof(out)));
                if (r < 0)
                        return r;
                elapsed = mono_ms() - t0;
                if (elapsed >= 40 || iters >= (1u << 30))
                        break;
                iters *= 4;
        }
        iters = iters * time_ms / MAX(elapsed, (uint64_t) 1);
        *ret = (uint32_t) MIN(MAX(iters, (uint64_t) 1000), (uint64_t) UINT32_MAX);
        return 0;
}

static uint32_t ram_half_kib(void) {
        long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
        if (pages <= 0 || psz <= 0)
                return 1u << 20;
        return (uint32_t) MIN((uint64_t) pages * (uint64_t) psz / 2048, (uint64_t) 4 << 20);
}

/* Argon2: keep the memory ceiling and raise the time cost, or, when even 4 passes take too
 * long, shrink the memory (cryptsetup's policy). */
static int argon2_bench(int sub, uint32_t max_kib, uint32_t p, uint32_t time_ms, uint32_t *ret_t,
                        uint32_t *ret_m) {
        static const char pass[] = "benchmark passphrase";
        uint8_t salt[LUKS2_SALT_LEN] = { 0 }, out[32];
        uint32_t m = MIN(max_kib, (uint32_t) 64 * 1024);
        uint64_t t0, elapsed, budget;
        int r;

        t0 = mono_ms();
        r = argon2(sub, 1, m, p, pass, sizeof(pass) - 1, salt, sizeof(salt), out, sizeof(out));
        if (r < 0)
                return r;
        elapsed = MAX(mono_ms() - t0, (uint64_t) 1);
        budget = (uint64_t) m * time_ms / elapsed; /* KiB-passes that fit the target time */
        if (budget >= 4 * (uint64_t) max_kib) {
                *ret_m = max_kib;
                *ret_t = (uint32_t) MIN(budget / max_kib, (uint64_t) UINT32_MAX);
        } else {
                *ret_t = 4;
                *ret_m = (uint32_t) MAX(budget / 4, (uint64_t) 32);
        }
        *ret_m = MAX(*ret_m, 8 * p);
        return 0;
}

int luks2_kdf_choose(const struct luks2_pbkdf_params *pp, size_t key_len, struct luks2_kdf *k,
                     struct orion_error *err) {
        uint32_t time_ms = pp->time_ms ? pp->time_ms : 1000;
        const char *hash = pp->hash ? pp->hash : "sha256";
        int r = crypt_init();

        if (r < 0)
                return orion_error_set(err, -r, "libgcrypt is too old");
        memset(k, 0, sizeof(*k));
        k->type = pp->type;
        k->salt_len = LUKS2_SALT_LEN;
        gcry_randomize(k->salt, k->salt_len, GCRY_STRONG_RANDOM);
        if (k->type == LUKS2_KDF_PBKDF2) {
                if (!gcry_md_map_name(hash) || strlen(hash) >= sizeof(k->hash))
                        return orion_error_set(err, EINVAL, "unknown hash '%s'", hash);
                snprintf(k->hash, sizeof(k->hash), "%s", hash);
                if (pp->iterations) {
                        k->iterations = pp->iterations;
                        return 0;
                }
                r = pbkdf2_bench(hash, key_len, time_ms, &k->iterations);
                return r < 0 ? orion_error_set(err, -r, "PBKDF2 benchmark failed") : 0;
        }
        long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        k->cpus = pp->parallel ? pp->parallel : (uint32_t) MIN(MAX(ncpu, 1L), 4L);
        if (k->cpus > 16)
                return orion_error_set(err, EINVAL, "argon2 parallel cost %u is above 16", k->cpus);
        uint32_t max_kib = pp->max_memory ? pp->max_memory : MIN((uint32_t) 1 << 20, ram_half_kib());
        if (pp->iterations) {
                k->iterations = pp->iterations;
                k->memory = pp->memory ? pp->memory : max_kib;
        } else {
                r = argon2_bench(k->type == LUKS2_KDF_ARGON2I ? GCRY_KDF_ARGON2I : GCRY_KDF_ARGON2ID, max_kib,
                                 k->cpus, time_ms, &k->iterations, &k->memory);
                if (r < 0)
                        return orion_error_set(err, -r, "argon2 benchmark failed");
        }
        if (k->memory < 8 * k->cpus || k->memory > 4u << 20)
                return orion_error_set(err, EINVAL, "argon2 memory %u KiB out of range (%u..4194304)", k->memory,
                                       8 * k->cpus);
        return 0;
}

/* ---- AF splitter (LUKS1 spec: hash diffusion between stripes) ---------------------------- */
static int diffuse(uint8_t *buf, size_t len, int md) {
        size_t ds = gcry_md_get_algo_dlen(md);
        gcry_md_hd_t h;

        if (ds == 0 || gcry_md_open(&h, md, GCRY_MD_FLAG_SECURE))
                return -ENOTSUP;
        for (size_t i = 0, off = 0; off < len; i++, off += ds) {
                uint8_t iv[4] = { (uint8_t) (i >> 24), (uint8_t) (i >> 16), (uint8_t) (i >> 8), (uint8_t) i };
                size_t n = MIN(ds, len - off);
                gcry_md_reset(h);
                gcry_md_write(h, iv, sizeof(iv));
                gcry_md_write(h, buf + off, n);
                memcpy(buf + off, gcry_md_read(h, md), n);
        }
        gcry_md_close(h);
        return 0;
}

size_t luks2_af_area_len(size_t key_len, unsigned stripes) {
        return ALIGN_UP(key_len * stripes, (size_t) 512);
}

static int af_run(const uint8_t *in, uint8_t *out, size_t key_len, unsigned stripes, const char *hash,
                  bool split, const uint8_t *key) {
        int md = gcry_md_map_name(hash), r = 0;
        uint8_t d[LUKS2_KEY_MAX] = { 0 };

        if (!md || key_len == 0 || key_len > LUKS2_KEY_MAX || stripes == 0)
                return -EINVAL;
        for (unsigned i = 0; i + 1 < stripes; i++) {
                const uint8_t *s = split ? out + (size_t) i * key_len : in + (size_t) i * key_len;
                if (split)
                        gcry_create_nonce(out + (size_t) i * key_len, key_len);
                for (size_t k = 0; k < key_len; k++)
                        d[k] ^= s[k];
                r = diffuse(d, key_len, md);
                if (r < 0)
                        goto out;
        }
        if (split)
                for (size_t k = 0; k < key_len; k++)
                        out[(size_t) (stripes - 1) * key_len + k] = d[k] ^ key[k];
        else
                for (size_t k = 0; k < key_len; k++)
                        out[k] = d[k] ^ in[(size_t) (stripes - 1) * key_len + k];
out:
        explicit_bzero(d, sizeof(d));
        return r;
}

int luks2_af_split(const uint8_t *key, size_t key_len, unsigned stripes, const char *hash, uint8_t *out) {
        return af_run(NULL, out, key_len, stripes, hash, true, key);
}

int luks2_af_merge(const uint8_t *in, size_t key_len, unsigned stripes, const char *hash, uint8_t *key) {
        return af_run(in, key, key_len, stripes, hash, false, NULL);
}

/* ---- Volume key digest --------------------------------------------------------------------- */
int luks2_digest_create(const uint8_t *vk, size_t vk_len, const char *hash, uint32_t time_ms,
                        struct luks2_digest *d, struct orion_error *err) {
        int md = gcry_md_map_name(hash), r;

        memset(d, 0, sizeof(*d));
        if (!md || strlen(hash) >= sizeof(d->hash))
                return orion_error_set(err, EINVAL, "unknown hash '%s'", hash);
        snprintf(d->hash, sizeof(d->hash), "%s", hash);
        d->digest_len = MIN((size_t) gcry_md_get_algo_dlen(md), sizeof(d->digest));
        d->salt_len = LUKS2_SALT_LEN;
        gcry_randomize(d->salt, d->salt_len, GCRY_STRONG_RANDOM);
        r = pbkdf2_bench(hash, d->digest_len, time_ms, &d->iterations);
        if (r >= 0)
                r = pbkdf2(hash, vk, vk_len, d->salt, d->salt_len, d->iterations, d->digest, d->digest_len);
        return r < 0 ? orion_error_set(err, -r, "cannot compute the volume key digest") : 0;
}

int luks2_digest_verify(const struct luks2_digest *d, const uint8_t *vk, size_t vk_len) {
        uint8_t out[LUKS2_DIGEST_MAX];
        uint8_t diff = 0;
        int r = pbkdf2(d->hash, vk, vk_len, d->salt, d->salt_len, d->iterations, out, d->digest_len);

        if (r < 0)
                return r;
        for (size_t i = 0; i < d->digest_len; i++) /* constant time */
                diff |= (uint8_t) (out[i] ^ d->digest[i]);
        return diff ? -EPERM : 0;
}

/* ---- Keyslots -------------------------------------------------------------------------------- */
int luks2_keyslot_open(const struct luks2_io *io, const struct luks2_hdr *hdr, int id, const void *pass,
                       size_t pass_len, uint8_t *vk, size_t *ret_vk_len, struct orion_error *err) {
        struct luks2_keyslot ks;
        struct luks2_digest d;
        uint8_t *kek = NULL, *buf = NULL, *key = NULL;
        gcry_cipher_hd_t hd = NULL;
        size_t len;
        int r;

        r = luks2_keyslot_get(hdr, id, &ks, err);
        if (r < 0)
                return r;
        r = luks2_digest_get(hdr, &d, err);
        if (r < 0)
                return r;
        if (!luks2_digest_has_keyslot(hdr, d.id, id))
                return orion_error_set(err, ENOENT, "keyslot %d is not bound to the data segment", id);
        len = luks2_af_area_len(ks.key_size, ks.stripes);
        if (ks.area_offset + len > io->size)
                return orion_error_set(err, EINVAL, "keyslot %d area lies beyond the device end", id);
        kek = secure_alloc(ks.area_key_size);
        buf = secure_alloc(len);
        key = secure_alloc(LUKS2_KEY_MAX);
        if (!kek || !buf || !key) {
                r = orion_error_set(err, ENOMEM, "out of memory for keyslot %d", id);
                goto out;
        }
        r = luks2_kdf_derive(&ks.kdf, pass, pass_len, kek, ks.area_key_size);
        if (r < 0) {
                orion_error_set(err, -r, "keyslot %d: key derivation failed", id);
                goto out;
        }
        r = io->read(io->ctx, buf, len, ks.area_offset);
        if (r < 0) {
                orion_error_set(err, -r, "keyslot %d: cannot read its area", id);
                goto out;
        }
        r = crypt_cipher_open(ks.area_cipher, kek, ks.area_key_size, &hd);
        if (r < 0) {
                orion_error_set(err, -r, "keyslot %d: cipher '%s' unusable", id, ks.area_cipher);
                goto out;
        }
        r = crypt_sectors(hd, false, buf, buf, len, 512, 0, 1);
        if (r >= 0)
                r = luks2_af_merge(buf, ks.key_size, ks.stripes, ks.af_hash, key);
        if (r < 0) {
                orion_error_set(err, -r, "keyslot %d: cannot decrypt its area", id);
                goto out;
        }
        r = luks2_digest_verify(&d, key, ks.key_size);
        if (r == -EPERM) {
                orion_error_set(err, EPERM, "no key available with this passphrase");
                goto out;
        } else if (r < 0) {
                orion_error_set(err, -r, "digest check failed");
                goto out;
        }
        memcpy(vk, key, ks.key_size);
        *ret_vk_len = ks.key_size;
out:
        if (hd)
                gcry_cipher_close(hd);
        secure_free(kek);
        secure_free(buf);
        secure_free(key);
        return r;
}

int luks2_unlock(const struct luks2_io *io, const struct luks2_hdr *hdr, int id, const void *pass,
                 size_t pass_len, uint8_t *vk, size_t *ret_vk_len, struct orion_error *err) {
        struct orion_error other = { 0 };
        int ids[LUKS2_OBJECTS_MAX], n, r;

        if (id >= 0) {
                r = luks2_keyslot_open(io, hdr, id, pass, pass_len, vk, ret_vk_len, err);
                return r < 0 ? r : id;
        }
        n = luks2_keyslot_list(hdr, ids);
        /* Preferred keyslots first, then normal ones; "ignore" ones only when named. */
        for (int prio = 2; prio >= 1; prio--)
                for (int i = 0; i < n; i++) {
                        struct orion_error e = { 0 };
                        struct luks2_keyslot ks;
                        if (luks2_keyslot_get(hdr, ids[i], &ks, &e) < 0 || ks.priority != prio)
                                continue;
                        r = luks2_keyslot_open(io, hdr, ids[i], pass, pass_len, vk, ret_vk_len, &e);
                        if (r >= 0)
                                return ids[i];
                        if (r != -EPERM && !orion_error_is_set(&other))
                                other = e;
                }
        if (orion_error_is_set(&other))
                return orion_error_set(err, EPERM, "no key available with this passphrase (also: %s)", other.msg);
        return orion_error_set(err, EPERM, "no key available with this passphrase");
}

int luks2_area_wipe(const struct luks2_io *io, uint64_t off, uint64_t len) {
        size_t chunk = (size_t) MIN(len, (uint64_t) 1 << 20);
        _cleanup_free_ uint8_t *zero = calloc(1, chunk ? chunk : 1);
        int r;

        if (!zero)
                return -ENOMEM;
        for (uint64_t done = 0; done < len; done += chunk) {
                size_t n = (size_t) MIN((uint64_t) chunk, len - done);
                r = io->write(io->ctx, zero, n, off + done);
                if (r < 0)
                        return r;
        }
        return io->flush ? io->flush(io->ctx) : 0;
}

int luks2_keyslot_create(const struct luks2_io *io, struct luks2_hdr *hdr, int id, const void *pass,
                         size_t pass_len, const uint8_t *vk, size_t vk_len,
                         const struct luks2_pbkdf_params *pp, struct orion_error *err) {
        /* Authenticated segments keep their keyslots in aes-xts-plain64 with a 512-bit key,
         * as cryptsetup does for integrity-protected volumes. */
        bool aead = hdr->seg.integrity[0] != '\0';
        struct luks2_keyslot ks = { .id = id, .key_size = (uint32_t) vk_len, .priority = 1,
                                    .stripes = LUKS2_STRIPES, .area_key_size = aead ? 64 : (uint32_t) vk_len };
        const char *hash = pp->hash ? pp->hash : "sha256";
        size_t len = luks2_af_area_len(vk_len, LUKS2_STRIPES);
        uint8_t *kek = NULL, *buf = NULL;
        gcry_cipher_hd_t hd = NULL;
        int r;

        if (!io->write)
                return orion_error_set(err, EROFS, "the device is read-only");
        if (luks2_keyslot_exists(hdr, id))
                return orion_error_set(err, EEXIST, "keyslot %d is in use", id);
        snprintf(ks.af_hash, sizeof(ks.af_hash), "%s", hash);
        snprintf(ks.area_cipher, sizeof(ks.area_cipher), "%s", aead ? "aes-xts-plain64" : hdr->seg.cipher);
        ks.area_size = ALIGN_UP((uint64_t) len, (uint64_t) 4096);
        if (luks2_area_find(hdr, ks.area_size, &ks.area_offset) < 0)
                return orion_error_set(err, ENOSPC, "no room left in the keyslots area");
        r = luks2_kdf_choose(pp, ks.area_key_size, &ks.kdf, err);
        if (r < 0)
                return r;
        kek = secure_alloc(ks.area_key_size);
        buf = secure_alloc(ks.area_size);
        if (!kek || !buf) {
                r = orion_error_set(err, ENOMEM, "out of memory");
                goto out;
        }
        memset(buf, 0, ks.area_size);
        r = luks2_kdf_derive(&ks.kdf, pass, pass_len, kek, ks.area_key_size);
        if (r < 0) {
                orion_error_set(err, -r, "key derivation failed (argon2 memory %u KiB too large?)", ks.kdf.memory);
                goto out;
        }
        r = luks2_af_split(vk, vk_len, ks.stripes, ks.af_hash, buf);
        if (r >= 0)
                r = crypt_cipher_open(ks.area_cipher, kek, ks.area_key_size, &hd);
        if (r >= 0)
                r = crypt_sectors(hd, true, buf, buf, len, 512, 0, 1);
        if (r < 0) {
                orion_error_set(err, -r, "cannot build the keyslot");
                goto out;
        }
        r = io->write(io->ctx, buf, ks.area_size, ks.area_offset);
        if (r >= 0 && io->flush)
                r = io->flush(io->ctx);
        if (r < 0) {
                orion_error_set(err, -r, "cannot write keyslot %d", id);
                goto out;
        }
        r = luks2_keyslot_add_json(hdr, &ks);
        if (r < 0)
                orion_error_set(err, -r, "the header has no volume key digest");
out:
        if (hd)
                gcry_cipher_close(hd);
        secure_free(kek);
        secure_free(buf);
        return r;
}
