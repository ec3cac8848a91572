/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The encrypt layer's per-node state, shared by the data path (encrypt.c) and the management
 * verbs (encrypt-ctl.c). */
#pragma once

#include <pthread.h>
#include <stdatomic.h>

#include "luks2.h"
#include "orion/plugin.h"

/* A cipher handle (gcrypt handles are not thread-safe) with its write bounce buffer; nodes
 * keep a free list so each concurrent request borrows one. */
struct crypt_ctx {
        gcry_cipher_hd_t hd;
        uint8_t *bounce;
        size_t bounce_len;
        uint8_t *tags;                    /* authenticated modes: tag blocks and nonces */
        size_t tags_len;
        struct crypt_ctx *next;
};

/* Authenticated modes: per sector a 12-byte random nonce and a 16-byte tag, packed into
 * 4096-byte tag blocks after the data (no tag straddles two blocks). */
#define AEAD_NONCE_LEN 12
#define AEAD_MAC_LEN 16
#define AEAD_TAG_LEN (AEAD_NONCE_LEN + AEAD_MAC_LEN)
#define AEAD_TAG_BLOCK 4096u
#define AEAD_TAGS_PER_BLOCK (AEAD_TAG_BLOCK / AEAD_TAG_LEN) /* 146 */
#define AEAD_LOCKS 64

struct encrypt {
        struct orion_bdev *self;
        struct orion_bdev *child;
        struct luks2_io io;               /* the child, for metadata */
        pthread_mutex_t meta_lock;        /* header reads/writes by ctl verbs */
        struct luks2_hdr hdr;             /* under meta_lock */
        int unlocked_slot;
        uint8_t *vk;                      /* volume key, locked memory */
        size_t vk_len;
        char cipher[64];
        uint64_t data_offset;             /* bytes on the child */
        uint64_t iv_tweak;
        uint32_t sector_size;
        bool aead;                        /* authenticated segment (aead.c) */
        char integrity[16];               /* its "integrity" type: "aead" or "poly1305" */
        uint64_t tag_offset;              /* bytes on the child: first tag block */
        pthread_rwlock_t tag_locks[AEAD_LOCKS];
        bool allow_discards;
        unsigned split_ways;              /* shares a large request is cut into (usable CPUs) */
        atomic_uint inflight;             /* requests running in the node */
        pthread_mutex_t pool_lock;
        struct crypt_ctx *free_ctx;
        atomic_uint_fast64_t bytes_encrypted, bytes_decrypted;
        atomic_uint_fast64_t requests_split;  /* requests cut into shares run on several CPUs */
};

/* The child as a luks2_io. */
void encrypt_child_io(struct orion_bdev *child, struct luks2_io *io);
/* Passphrase from the "passphrase" or "key-file" member of a JSON object (ctl args) with the
 * given prefix ("" or "new-"), into locked memory. 0 = absent, 1 = read, -errno. */
int encrypt_passphrase_from_args(struct json_object *args, const char *prefix, uint8_t **ret, size_t *ret_len,
                                 struct orion_error *err);
/* Whole file as the passphrase (like cryptsetup --key-file), into locked memory. */
int encrypt_read_key_file(const char *path, uint8_t **ret, size_t *ret_len, struct orion_error *err);
/* KDF options of format / add-key / change-key from a JSON object of strings or numbers. */
int encrypt_pbkdf_from_args(struct json_object *args, struct luks2_pbkdf_params *pp, struct orion_error *err);

int encrypt_ctl(struct orion_bdev *b, const char *verb, struct json_object *args, struct json_object **ret_reply,
                struct orion_error *err);

/* Reads through orion_bdev_read_view: the child's pieces regrouped into whole sectors for
 * sectors() (in: ciphertext, NULL when the child's bytes are zeroes), a sector split across two
 * pieces gathered in carry first. fn for orion_bdev_read_view, arg = the sector_view. */
struct sector_view {
        uint32_t sector_size;
        int (*sectors)(struct sector_view *v, const uint8_t *in, uint64_t n);
        uint32_t have;          /* bytes of a split sector in carry */
        uint8_t carry[4096];
};
int sector_view_piece(void *arg, const void *data, uint64_t n);

/* aead.c */
/* Sectors that fit in room bytes with their tag blocks; bytes of tag blocks for n sectors. */
uint64_t aead_sectors_for(uint64_t room, uint32_t sector_size);
uint64_t aead_tag_area_len(uint64_t sectors);
/* One piece (at most the bounce buffer's size) of whole sectors. */
int aead_read(struct encrypt *e, struct crypt_ctx *c, uint8_t *buf, size_t len, uint64_t off, uint32_t flags);
int aead_write(struct encrypt *e, struct crypt_ctx *c, const uint8_t *src, size_t len, uint64_t off,
               uint32_t flags);
