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
        struct crypt_ctx *next;
};

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
