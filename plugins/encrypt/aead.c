/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Authenticated data segments (aes-gcm-random, chacha20-random + poly1305): each sector is
 * sealed with a fresh random nonce and a 16-byte tag kept in a tag area after the data. The
 * layout is Orion's own (not dm-integrity's); see orion-encrypt(7), AUTHENTICATED MODES. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "encrypt.h"

uint64_t aead_sectors_for(uint64_t room, uint32_t sector_size) {
        /* Per tag block: AEAD_TAGS_PER_BLOCK sectors of data plus the block itself. */
        uint64_t group = (uint64_t) AEAD_TAGS_PER_BLOCK * sector_size + AEAD_TAG_BLOCK;
        uint64_t n = room / group * AEAD_TAGS_PER_BLOCK, rest = room % group;

        if (rest > AEAD_TAG_BLOCK)
                n += MIN((rest - AEAD_TAG_BLOCK) / sector_size, (uint64_t) AEAD_TAGS_PER_BLOCK - 1);
        return n;
}

uint64_t aead_tag_area_len(uint64_t sectors) {
        return (sectors + AEAD_TAGS_PER_BLOCK - 1) / AEAD_TAGS_PER_BLOCK * AEAD_TAG_BLOCK;
}

/* ---- Tag block locks: a write's read-modify-write of its tag blocks excludes readers and
 * other writers of those blocks; striped, taken in ascending order. */
static size_t stripes_of(uint64_t b0, uint64_t b1, unsigned out[AEAD_LOCKS]) {
        bool take[AEAD_LOCKS] = { false };
        size_t n = 0;

        for (uint64_t b = b0; b <= b1 && b - b0 < AEAD_LOCKS; b++)
                take[b % AEAD_LOCKS] = true;
        for (unsigned i = 0; i < AEAD_LOCKS; i++)
                if (take[i])
                        out[n++] = i;
        return n;
}

static void tags_lock(struct encrypt *e, uint64_t b0, uint64_t b1, bool write) {
        unsigned s[AEAD_LOCKS];
        size_t n = stripes_of(b0, b1, s);

        for (size_t i = 0; i < n; i++) {
                if (write)
                        pthread_rwlock_wrlock(&e->tag_locks[s[i]]);
                else
                        pthread_rwlock_rdlock(&e->tag_locks[s[i]]);
        }
}

static void tags_unlock(struct encrypt *e, uint64_t b0, uint64_t b1) {
        unsigned s[AEAD_LOCKS];
        size_t n = stripes_of(b0, b1, s);

        while (n > 0)
                pthread_rwlock_unlock(&e->tag_locks[s[--n]]);
}

static int ctx_tags(struct crypt_ctx *c, size_t len) {
        if (c->tags_len >= len)
                return 0;
        free(c->tags);
        c->tags = orion_alloc_aligned(len);
        c->tags_len = c->tags ? len : 0;
        return c->tags ? 0 : -ENOMEM;
}

/* The additional data of a sector: its number in 512-byte units (plus iv_tweak), so a sector
 * and its tag copied to another place do not authenticate there. */
static void sector_aad(const struct encrypt *e, uint64_t off, uint8_t aad[8]) {
        uint64_t n = e->iv_tweak + off / 512;
        for (int k = 0; k < 8; k++)
                aad[k] = (uint8_t) (n >> (8 * k));
}

struct span {
        uint64_t first, count; /* sectors */
        uint64_t b0, b1;       /* tag blocks */
        size_t tlen;           /* bytes of tag blocks */
};

static struct span span_of(const struct encrypt *e, uint64_t len, uint64_t off) {
        struct span s = { .first = off / e->sector_size, .count = len / e->sector_size };
        s.b0 = s.first / AEAD_TAGS_PER_BLOCK;
        s.b1 = (s.first + s.count - 1) / AEAD_TAGS_PER_BLOCK;
        s.tlen = (size_t) (s.b1 - s.b0 + 1) * AEAD_TAG_BLOCK;
        return s;
}

static uint8_t *tag_slot(const struct span *s, uint8_t *tags, uint64_t sector) {
        return tags + (sector / AEAD_TAGS_PER_BLOCK - s->b0) * AEAD_TAG_BLOCK +
               (sector % AEAD_TAGS_PER_BLOCK) * AEAD_TAG_LEN;
}

/* A read's sectors, decrypted and authenticated out of the child's memory (sector_view). */
struct aead_view {
        struct sector_view v; /* first */
        struct encrypt *e;
        struct crypt_ctx *c;
        const struct span *s;
        uint8_t *dst;         /* next plaintext sector */
        uint64_t off;         /* its segment offset */
        uint64_t sector;      /* its number */
};

static int aead_sectors(struct sector_view *v, const uint8_t *in, uint64_t n) {
        struct aead_view *av = (struct aead_view *) v;
        struct encrypt *e = av->e;
        uint32_t ss = e->sector_size;

        for (uint64_t done = 0; done < n; done += ss) {
                uint8_t *slot = tag_slot(av->s, av->c->tags, av->sector), aad[8];
                const uint8_t *src = in ? in + done : NULL;

                if (!src)
                        memset(av->dst, 0, ss); /* the child's zeroes, decrypted as ciphertext */
                sector_aad(e, av->off, aad);
                if (gcry_cipher_setiv(av->c->hd, slot, AEAD_NONCE_LEN) || gcry_cipher_authenticate(av->c->hd, aad, 8) ||
                    gcry_cipher_decrypt(av->c->hd, av->dst, ss, src, src ? ss : 0))
                        return -EIO;
                if (gcry_cipher_checktag(av->c->hd, slot + AEAD_NONCE_LEN, AEAD_MAC_LEN)) {
                        orion_warn("encrypt '%s': sector %" PRIu64 " (%u bytes) fails authentication",
                                   orion_bdev_name(e->self), av->sector, ss);
                        return -EILSEQ;
                }
                av->dst += ss;
                av->off += ss;
                av->sector++;
        }
        return 0;
}

/* Read and authenticate len bytes (at most one piece) at off into buf: the tags first, then
 * the data decrypted straight out of the child (orion_bdev_read_view), both under the tag
 * blocks' read locks. A sector that fails authentication fails the request with -EILSEQ, and
 * no plaintext of the request is left. */
int aead_read(struct encrypt *e, struct crypt_ctx *c, uint8_t *buf, size_t len, uint64_t off, uint32_t flags) {
        struct span s = span_of(e, len, off);
        struct aead_view av = { .v = { .sector_size = e->sector_size, .sectors = aead_sectors },
                                .e = e, .c = c, .s = &s, .dst = buf, .off = off, .sector = s.first };
        int r = ctx_tags(c, s.tlen);

        if (r < 0)
                return r;
        tags_lock(e, s.b0, s.b1, false);
        r = orion_bdev_pread(e->child, c->tags, s.tlen, e->tag_offset + s.b0 * AEAD_TAG_BLOCK, 0);
        if (r >= 0)
                r = orion_bdev_read_view(e->child, len, e->data_offset + off, sector_view_piece, &av.v);
        if (r >= 0 && av.v.have)
                r = -EIO; /* the child's pieces did not add up to whole sectors */
        tags_unlock(e, s.b0, s.b1);
        if (r < 0)
                explicit_bzero(buf, len);
        return r;
}

/* Seal len bytes (at most one piece) from src (NULL: zeros) and write them with their tags. */
int aead_write(struct encrypt *e, struct crypt_ctx *c, const uint8_t *src, size_t len, uint64_t off,
               uint32_t flags) {
        struct span s = span_of(e, len, off);
        uint32_t ss = e->sector_size;
        int r = ctx_tags(c, s.tlen + s.count * AEAD_NONCE_LEN);
        uint8_t *nonces = c->tags + s.tlen;

        if (r < 0)
                return r;
        if (!src)
                memset(c->bounce, 0, len);
        /* Nonces from libgcrypt's nonce generator: unpredictable, never reused in practice
         * (96 bits; re-key before about 2^32 writes per sector area, as for dm-crypt). */
        gcry_create_nonce(nonces, s.count * AEAD_NONCE_LEN);
        tags_lock(e, s.b0, s.b1, true);
        r = orion_bdev_pread(e->child, c->tags, s.tlen, e->tag_offset + s.b0 * AEAD_TAG_BLOCK, 0);
        for (uint64_t i = 0; i < s.count && r >= 0; i++) {
                uint8_t *slot = tag_slot(&s, c->tags, s.first + i), aad[8], *out = c->bounce + i * ss;

                memcpy(slot, nonces + i * AEAD_NONCE_LEN, AEAD_NONCE_LEN);
                sector_aad(e, off + i * ss, aad);
                if (gcry_cipher_setiv(c->hd, slot, AEAD_NONCE_LEN) || gcry_cipher_authenticate(c->hd, aad, 8) ||
                    gcry_cipher_encrypt(c->hd, out, ss, src ? src + i * ss : NULL, src ? ss : 0) ||
                    gcry_cipher_gettag(c->hd, slot + AEAD_NONCE_LEN, AEAD_MAC_LEN))
                        r = -EIO;
        }
        /* Data first, then tags: a crash in between leaves these sectors failing
         * authentication (-EILSEQ) until rewritten, never returning unauthenticated data. */
        if (r >= 0)
                r = orion_bdev_pwrite(e->child, c->bounce, len, e->data_offset + off, flags);
        if (r >= 0)
                r = orion_bdev_pwrite(e->child, c->tags, s.tlen, e->tag_offset + s.b0 * AEAD_TAG_BLOCK, flags);
        tags_unlock(e, s.b0, s.b1);
        return r;
}
