/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libgcrypt set-up, locked memory for key material, the XTS sector cipher (plain64 IVs)
 * used for keyslot areas and the data segment, and the authenticated modes' handles. */
#include <endian.h>
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "luks2.h"

static pthread_once_t g_init_once = PTHREAD_ONCE_INIT;
static int g_init_result;

static void crypt_init_once(void) {
        /* Another part of the process may have initialised libgcrypt already; then keep its
         * settings. Otherwise reserve locked memory for cipher handles (it grows on demand). */
        if (!gcry_control(GCRYCTL_INITIALIZATION_FINISHED_P)) {
                if (!gcry_check_version("1.10.0")) {
                        g_init_result = -ENOTSUP;
                        return;
                }
                gcry_control(GCRYCTL_DISABLE_SECMEM_WARN);
                gcry_control(GCRYCTL_AUTO_EXPAND_SECMEM, 1u << 20);
                gcry_control(GCRYCTL_INIT_SECMEM, 1u << 20, 0);
                gcry_control(GCRYCTL_INITIALIZATION_FINISHED, 0);
        }
        g_init_result = 0;
}

int crypt_init(void) {
        (void) pthread_once(&g_init_once, crypt_init_once);
        return g_init_result;
}

/* ---- Locked memory ------------------------------------------------------------------------ */
#define SECURE_HDR 64 /* keeps the mapping length in front of the caller's bytes */

void *secure_alloc(size_t len) {
        long page = sysconf(_SC_PAGESIZE);
        size_t total = ALIGN_UP(len + SECURE_HDR, (size_t) (page > 0 ? page : 4096));
        uint8_t *m = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

        if (m == MAP_FAILED)
                return NULL;
        /* Locking can fail without CAP_IPC_LOCK and a small RLIMIT_MEMLOCK: keep going (the
         * key still never reaches a core dump), but say so once. */
        if (mlock(m, total) < 0) {
                static bool warned;
                if (!warned) {
                        warned = true;
                        orion_warn("encrypt: cannot lock key memory, it may be swapped: %m");
                }
        }
        (void) madvise(m, total, MADV_DONTDUMP);
        memcpy(m, &total, sizeof(total));
        return m + SECURE_HDR;
}

void *secure_free(void *p) {
        size_t total;
        uint8_t *m;

        if (!p)
                return NULL;
        m = (uint8_t *) p - SECURE_HDR;
        memcpy(&total, m, sizeof(total));
        explicit_bzero(m, total);
        (void) munlock(m, total);
        (void) munmap(m, total);
        return NULL;
}

/* ---- Cipher specs ------------------------------------------------------------------------- */
struct cipher_name {
        const char *name;
        int algo[3]; /* for 128-, 192- and 256-bit halves of the XTS key; 0 = unsupported */
};

static const struct cipher_name g_ciphers[] = {
        { "aes", { GCRY_CIPHER_AES128, GCRY_CIPHER_AES192, GCRY_CIPHER_AES256 } },
        { "serpent", { GCRY_CIPHER_SERPENT128, GCRY_CIPHER_SERPENT192, GCRY_CIPHER_SERPENT256 } },
        { "twofish", { GCRY_CIPHER_TWOFISH128, 0, GCRY_CIPHER_TWOFISH } },
        { "camellia", { GCRY_CIPHER_CAMELLIA128, GCRY_CIPHER_CAMELLIA192, GCRY_CIPHER_CAMELLIA256 } },
};

int crypt_cipher_parse(const char *spec, size_t key_len, int *ret_algo) {
        const char *dash = strchr(spec, '-');
        size_t nlen;
        int idx;

        if (!dash || strcmp(dash, "-xts-plain64") != 0)
                return -ENOTSUP;
        nlen = (size_t) (dash - spec);
        switch (key_len) {
        case 32: idx = 0; break;
        case 48: idx = 1; break;
        case 64: idx = 2; break;
        default: return -EINVAL;
        }
        for (size_t i = 0; i < sizeof(g_ciphers) / sizeof(g_ciphers[0]); i++) {
                if (strlen(g_ciphers[i].name) != nlen || strncmp(g_ciphers[i].name, spec, nlen) != 0)
                        continue;
                if (!g_ciphers[i].algo[idx])
                        return -EINVAL;
                *ret_algo = g_ciphers[i].algo[idx];
                return 0;
        }
        return -ENOTSUP;
}

const char *crypt_aead_integrity(const char *cipher) {
        if (strcmp(cipher, "aes-gcm-random") == 0)
                return "aead";
        if (strcmp(cipher, "chacha20-random") == 0)
                return "poly1305";
        return NULL;
}

int crypt_aead_open(const char *cipher, const char *integrity, const void *key, size_t key_len,
                    gcry_cipher_hd_t *ret) {
        const char *want = crypt_aead_integrity(cipher);
        bool gcm = strcmp(cipher, "aes-gcm-random") == 0;
        gcry_cipher_hd_t hd;
        int r = crypt_init();

        if (r < 0)
                return r;
        if (!want || !integrity || strcmp(want, integrity) != 0)
                return -ENOTSUP;
        if (key_len != LUKS2_AEAD_KEY_LEN)
                return -EINVAL;
        if (gcry_cipher_open(&hd, gcm ? GCRY_CIPHER_AES256 : GCRY_CIPHER_CHACHA20,
                             gcm ? GCRY_CIPHER_MODE_GCM : GCRY_CIPHER_MODE_POLY1305, GCRY_CIPHER_SECURE))
                return -ENOMEM;
        if (gcry_cipher_setkey(hd, key, key_len)) {
                gcry_cipher_close(hd);
                return -EINVAL;
        }
        *ret = hd;
        return 0;
}

int crypt_cipher_open(const char *spec, const void *key, size_t key_len, gcry_cipher_hd_t *ret) {
        gcry_cipher_hd_t hd;
        int algo, r;

        r = crypt_init();
        if (r < 0)
                return r;
        r = crypt_cipher_parse(spec, key_len, &algo);
        if (r < 0)
                return r;
        if (gcry_cipher_open(&hd, algo, GCRY_CIPHER_MODE_XTS, GCRY_CIPHER_SECURE))
                return -ENOMEM;
        if (gcry_cipher_setkey(hd, key, key_len)) {
                /* libgcrypt refuses XTS keys whose halves are equal (a weak key) */
                gcry_cipher_close(hd);
                return -EINVAL;
        }
        *ret = hd;
        return 0;
}

int crypt_sectors(gcry_cipher_hd_t hd, bool encrypt, void *out, const void *in, size_t len,
                  uint32_t sector_size, uint64_t iv, uint64_t iv_step) {
        uint8_t ivbuf[16] = { 0 };
        uint8_t *o = out;
        const uint8_t *p = in;
        bool inplace = out == in;

        if (len % sector_size)
                return -EINVAL;
        for (size_t done = 0; done < len; done += sector_size, iv += iv_step) {
                gcry_error_t e;

                uint64_t le = htole64(iv); /* plain64: the sector number, little-endian */
                memcpy(ivbuf, &le, sizeof(le));
                if (gcry_cipher_setiv(hd, ivbuf, sizeof(ivbuf)))
                        return -EIO;
                if (encrypt)
                        e = gcry_cipher_encrypt(hd, o + done, sector_size, inplace ? NULL : p + done,
                                                inplace ? 0 : sector_size);
                else
                        e = gcry_cipher_decrypt(hd, o + done, sector_size, inplace ? NULL : p + done,
                                                inplace ? 0 : sector_size);
                if (e)
                        return -EIO;
        }
        return 0;
}
