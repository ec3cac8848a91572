/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* LUKS2 metadata of the encrypt layer: binary headers, JSON area, keyslots, digests, and the
 * AES-XTS (and friends) sector cipher shared by keyslot areas and the data segment. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <gcrypt.h>

#include "orion/log.h"

struct json_object;

#define LUKS2_HDR_BIN_LEN 4096u
#define LUKS2_MAGIC_LEN 6
#define LUKS2_MAGIC_1ST "LUKS\xba\xbe"
#define LUKS2_MAGIC_2ND "SKUL\xba\xbe"
#define LUKS2_HDR_16K 0x4000u
#define LUKS2_HDR_MAX 0x400000u            /* largest metadata area (one copy) */
#define LUKS2_KEYSLOTS_SIZE_MAX 0x8000000u /* 128 MiB, as cryptsetup */
#define LUKS2_OBJECTS_MAX 32               /* keyslots, tokens, segments, digests */
#define LUKS2_STRIPES 4000
#define LUKS2_SALT_LEN 32                  /* keyslot kdf and digest salts */
#define LUKS2_KEY_MAX 64                   /* largest volume key we handle (512 bits) */
#define LUKS2_DIGEST_MAX 64
#define LUKS2_PASSPHRASE_MAX (8u << 20)    /* key files up to 8 MiB, as cryptsetup */
#define LUKS2_LABEL_LEN 48
#define LUKS2_UUID_LEN 40
#define LUKS2_CSUM_ALG_LEN 32
/* Mandatory requirement of segments in Orion's authenticated layout (see encrypt.h). */
#define LUKS2_AEAD_REQUIREMENT "orion-aead-v1"
#define LUKS2_AEAD_KEY_LEN 32

/* Where the metadata lives: the child node, a header backup file, or memory (tests, fuzzing). */
struct luks2_io {
        void *ctx;
        uint64_t size;                                                          /* bytes */
        int (*read)(void *ctx, void *buf, size_t len, uint64_t off);           /* 0 or -errno */
        int (*write)(void *ctx, const void *buf, size_t len, uint64_t off);    /* NULL: read-only */
        int (*flush)(void *ctx);                                               /* may be NULL */
};

/* State of one header copy after reading. */
enum luks2_copy_state {
        LUKS2_COPY_OK,
        LUKS2_COPY_MISSING,  /* no magic at the expected place */
        LUKS2_COPY_BAD,      /* magic found, but checksum, sizes or JSON are invalid */
        LUKS2_COPY_OBSOLETE, /* valid, but an older seqid than the other copy */
        LUKS2_COPY_IOERR,
};

/* The data segment (segment "0"), validated and decoded. */
struct luks2_segment {
        char id[12];           /* its key in "segments" */
        uint64_t offset;       /* bytes from the device start */
        uint64_t size;         /* bytes; 0 = dynamic (to the end of the device) */
        uint64_t iv_tweak;     /* added to the 512-byte sector number */
        uint32_t sector_size;  /* 512 .. 4096 */
        char cipher[64];       /* "aes-xts-plain64" */
        char integrity[16];    /* authenticated modes: "aead" or "poly1305"; else "" */
};

struct luks2_hdr {
        uint64_t hdr_size;            /* one copy: binary header + JSON area */
        uint64_t seqid;
        char label[LUKS2_LABEL_LEN];
        char subsystem[LUKS2_LABEL_LEN];
        char csum_alg[LUKS2_CSUM_ALG_LEN];
        char uuid[LUKS2_UUID_LEN];
        struct json_object *jobj;     /* the whole JSON metadata (owned; unknown keys kept) */
        uint64_t keyslots_size;       /* config.keyslots_size */
        struct luks2_segment seg;
        enum luks2_copy_state state[2]; /* primary, secondary */
};

enum luks2_kdf_type { LUKS2_KDF_PBKDF2, LUKS2_KDF_ARGON2I, LUKS2_KDF_ARGON2ID, _LUKS2_KDF_MAX };

struct luks2_kdf {
        enum luks2_kdf_type type;
        char hash[32];                /* pbkdf2 */
        uint32_t iterations;          /* pbkdf2 iterations, or argon2 time cost */
        uint32_t memory;              /* argon2: KiB */
        uint32_t cpus;                /* argon2: lanes */
        uint8_t salt[64];
        size_t salt_len;
};

/* Cost wanted for a new keyslot. A zero field means "choose by benchmark" (time_ms) or the
 * default. */
struct luks2_pbkdf_params {
        enum luks2_kdf_type type;
        const char *hash;             /* pbkdf2 and AF hash; default sha256 */
        uint32_t time_ms;             /* target unlock time (benchmark), default 1000 */
        uint32_t max_memory;          /* argon2 KiB ceiling, default 1 GiB (capped by RAM/2) */
        uint32_t parallel;            /* argon2 lanes, default min(4, CPUs) */
        uint32_t iterations;          /* fixed pbkdf2 iterations / argon2 time: no benchmark */
        uint32_t memory;              /* fixed argon2 memory (KiB) with iterations */
};

struct luks2_keyslot {
        int id;
        uint32_t key_size;            /* volume key bytes */
        int priority;                 /* 0 ignore, 1 normal, 2 prefer */
        uint64_t area_offset, area_size;
        char area_cipher[64];
        uint32_t area_key_size;
        struct luks2_kdf kdf;
        uint32_t stripes;
        char af_hash[32];
};

struct luks2_digest {
        int id;
        char hash[32];
        uint32_t iterations;
        uint8_t salt[64];
        size_t salt_len;
        uint8_t digest[LUKS2_DIGEST_MAX];
        size_t digest_len;
};

/* ---- crypt.c: gcrypt set-up, locked memory, the XTS sector cipher ---------------------- */
int crypt_init(void);
/* Page-backed, mlock'ed, excluded from core dumps; wiped on free. NULL on failure. */
void *secure_alloc(size_t len);
void *secure_free(void *p);
/* "aes-xts-plain64" with a key of key_len bytes -> gcrypt algorithm (XTS mode). */
int crypt_cipher_parse(const char *spec, size_t key_len, int *ret_algo);
/* The integrity type of an authenticated cipher ("aes-gcm-random": "aead",
 * "chacha20-random": "poly1305"), or NULL for any other name. */
const char *crypt_aead_integrity(const char *cipher);
/* Authenticated mode handle for (cipher, integrity) with a LUKS2_AEAD_KEY_LEN key. */
int crypt_aead_open(const char *cipher, const char *integrity, const void *key, size_t key_len,
                    gcry_cipher_hd_t *ret);
/* Open a cipher handle (key in secure memory) for spec with key. */
int crypt_cipher_open(const char *spec, const void *key, size_t key_len, gcry_cipher_hd_t *ret);
/* En/decrypt len bytes of whole sectors. The IV of the first sector is iv (plain64,
 * little-endian), and grows by iv_step per sector. in == out is allowed. */
int crypt_sectors(gcry_cipher_hd_t hd, bool encrypt, void *out, const void *in, size_t len,
                  uint32_t sector_size, uint64_t iv, uint64_t iv_step);

/* ---- luks2-header.c -------------------------------------------------------------------- */
/* Read both copies, validate them, keep the newest valid one. Returns 0, -EINVAL with err
 * (no valid header), -ENODEV (no LUKS2 magic at all: not LUKS2), or -EIO. */
int luks2_hdr_read(const struct luks2_io *io, struct luks2_hdr *hdr, struct orion_error *err);
/* Parse and validate a JSON area (bytes after the binary header, NUL-padded). */
int luks2_json_parse(const char *area, size_t len, uint64_t hdr_size, struct json_object **ret,
                     struct orion_error *err);
/* Re-derive the cached fields (segment, keyslots_size) from hdr->jobj, validating it. */
int luks2_hdr_validate(struct luks2_hdr *hdr, struct orion_error *err);
/* seqid++, then write both copies (primary first) and flush. */
int luks2_hdr_write(const struct luks2_io *io, struct luks2_hdr *hdr, struct orion_error *err);
/* Write one copy (0 primary, 1 secondary) with the current seqid. */
int luks2_hdr_write_copy(const struct luks2_io *io, struct luks2_hdr *hdr, int copy);
/* Encode one copy (hdr_size bytes) into out. */
int luks2_hdr_encode(struct luks2_hdr *hdr, int copy, uint8_t *out);
void luks2_hdr_done(struct luks2_hdr *hdr);
/* Fresh header for format (no keyslot yet). */
int luks2_hdr_init(struct luks2_hdr *hdr, uint64_t hdr_size, uint64_t keyslots_size, const char *cipher,
                   uint32_t sector_size, uint32_t key_size, const char *label, struct orion_error *err);
/* Give the data segment a fixed size (authenticated layout: the tag area follows it). */
int luks2_hdr_set_segment_size(struct luks2_hdr *hdr, uint64_t size, struct orion_error *err);
/* Bytes of metadata + keyslot areas (what a header backup holds). */
uint64_t luks2_hdr_areas_size(const struct luks2_hdr *hdr);

int luks2_keyslot_get(const struct luks2_hdr *hdr, int id, struct luks2_keyslot *ret, struct orion_error *err);
bool luks2_keyslot_exists(const struct luks2_hdr *hdr, int id);
/* Ids of keyslots of type luks2, ascending. Returns count. */
int luks2_keyslot_list(const struct luks2_hdr *hdr, int ids[LUKS2_OBJECTS_MAX]);
int luks2_keyslot_free_id(const struct luks2_hdr *hdr);
/* A free, 4 KiB aligned area of len bytes in the keyslots area. */
int luks2_area_find(const struct luks2_hdr *hdr, uint64_t len, uint64_t *ret_off);
/* The digest that covers segment 0. */
int luks2_digest_get(const struct luks2_hdr *hdr, struct luks2_digest *ret, struct orion_error *err);
bool luks2_digest_has_keyslot(const struct luks2_hdr *hdr, int digest_id, int keyslot);
/* JSON edits: add a keyslot object (and list it in the digest), remove one everywhere. */
int luks2_keyslot_add_json(struct luks2_hdr *hdr, const struct luks2_keyslot *ks);
void luks2_keyslot_remove_json(struct luks2_hdr *hdr, int id);
/* Renumber keyslot `from` as `to` (a free id), keeping its digest binding. */
int luks2_keyslot_move_json(struct luks2_hdr *hdr, int from, int to);
/* Deep copy, so an edit can be discarded when writing it fails. */
int luks2_hdr_clone(const struct luks2_hdr *src, struct luks2_hdr *dst);
int luks2_digest_set_json(struct luks2_hdr *hdr, const struct luks2_digest *d);
/* What `cryptsetup luksDump` shows, as JSON. */
struct json_object *luks2_hdr_dump(const struct luks2_hdr *hdr);

/* base64 (RFC 4648, with padding) */
int luks2_b64_decode(const char *in, uint8_t *out, size_t max, size_t *ret_len);
char *luks2_b64_encode(const uint8_t *in, size_t len);
/* Decimal string of a u64 (LUKS2 writes 64-bit values as strings). */
bool luks2_str_u64(const char *s, uint64_t *ret);
/* JSON accessors: NULL/false when absent or of the wrong type. */
struct json_object *luks2_jget(struct json_object *o, const char *key, int type);
const char *luks2_jstr(struct json_object *o, const char *key);
bool luks2_ju64s(struct json_object *o, const char *key, uint64_t *ret); /* "123" */
bool luks2_ju32(struct json_object *o, const char *key, uint32_t *ret);  /* 123 */
int luks2_id_of(const char *key);                                         /* "7" -> 7, else -1 */
struct json_object *luks2_jstr_u64(uint64_t v);
bool luks2_array_has(struct json_object *arr, const char *id);

/* ---- luks2-keyslot.c ------------------------------------------------------------------- */
int luks2_kdf_derive(const struct luks2_kdf *kdf, const void *pass, size_t pass_len, void *out, size_t out_len);
/* Choose the cost for a new keyslot (benchmark unless fixed) and a fresh salt. */
int luks2_kdf_choose(const struct luks2_pbkdf_params *pp, size_t key_len, struct luks2_kdf *ret,
                     struct orion_error *err);
int luks2_af_split(const uint8_t *key, size_t key_len, unsigned stripes, const char *hash, uint8_t *out);
int luks2_af_merge(const uint8_t *in, size_t key_len, unsigned stripes, const char *hash, uint8_t *key);
size_t luks2_af_area_len(size_t key_len, unsigned stripes); /* rounded to 512 */
/* Unlock one keyslot: KDF, decrypt area, AF merge, digest check. 0, -EPERM (wrong
 * passphrase), or another -errno with err. */
int luks2_keyslot_open(const struct luks2_io *io, const struct luks2_hdr *hdr, int id, const void *pass,
                       size_t pass_len, uint8_t *vk, size_t *ret_vk_len, struct orion_error *err);
/* Try keyslot `id`, or (id < 0) every usable keyslot by priority. Returns the slot. */
int luks2_unlock(const struct luks2_io *io, const struct luks2_hdr *hdr, int id, const void *pass,
                 size_t pass_len, uint8_t *vk, size_t *ret_vk_len, struct orion_error *err);
/* Write a new keyslot `id` for vk protected by pass: area on disk + JSON (not yet the header). */
int luks2_keyslot_create(const struct luks2_io *io, struct luks2_hdr *hdr, int id, const void *pass,
                         size_t pass_len, const uint8_t *vk, size_t vk_len,
                         const struct luks2_pbkdf_params *pp, struct orion_error *err);
/* Overwrite a keyslot area with zeros (after the JSON no longer names it). */
int luks2_area_wipe(const struct luks2_io *io, uint64_t off, uint64_t len);
/* The volume key digest (pbkdf2 over vk): create for format, verify on unlock. */
int luks2_digest_create(const uint8_t *vk, size_t vk_len, const char *hash, uint32_t time_ms,
                        struct luks2_digest *ret, struct orion_error *err);
int luks2_digest_verify(const struct luks2_digest *d, const uint8_t *vk, size_t vk_len);
