/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The encrypt layer's LUKS2 code without a daemon: IEEE 1619 AES-XTS vectors, the AF
 * splitter, base64, header write/read round trips on a memory device, keyslot unlock with
 * PBKDF2 and Argon2, and damaged, truncated and malformed headers. */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "common/cleanup.h"
#include "plugins/encrypt/luks2.h"

/* ---- helpers -------------------------------------------------------------------------------- */
static size_t unhex(const char *s, uint8_t *out, size_t max) {
        size_t n = strlen(s) / 2;
        ck_assert_uint_le(n, max);
        for (size_t i = 0; i < n; i++) {
                unsigned v;
                ck_assert_int_eq(sscanf(s + 2 * i, "%2x", &v), 1);
                out[i] = (uint8_t) v;
        }
        return n;
}

struct memdev {
        uint8_t *buf;
        size_t size;
        unsigned writes;
};

static int md_read(void *ctx, void *buf, size_t len, uint64_t off) {
        struct memdev *m = ctx;
        if (off > m->size || len > m->size - off)
                return -EIO;
        memcpy(buf, m->buf + off, len);
        return 0;
}

static int md_write(void *ctx, const void *buf, size_t len, uint64_t off) {
        struct memdev *m = ctx;
        if (off > m->size || len > m->size - off)
                return -ENOSPC;
        memcpy(m->buf + off, buf, len);
        m->writes++;
        return 0;
}

static struct memdev g_dev;
static struct luks2_io g_io;

static void dev_setup(size_t size) {
        g_dev.buf = calloc(1, size);
        ck_assert_ptr_nonnull(g_dev.buf);
        g_dev.size = size;
        g_dev.writes = 0;
        g_io = (struct luks2_io) { .ctx = &g_dev, .size = size, .read = md_read, .write = md_write };
}

static void dev_free(void) {
        free(g_dev.buf);
        memset(&g_dev, 0, sizeof(g_dev));
}

static const struct luks2_pbkdf_params g_fast_pbkdf2 = { .type = LUKS2_KDF_PBKDF2, .iterations = 1000 };
static const struct luks2_pbkdf_params g_fast_argon = { .type = LUKS2_KDF_ARGON2ID, .iterations = 1,
                                                        .memory = 64, .parallel = 2 };

/* Format a fresh LUKS2 volume on g_dev: 16K headers, data at 1 MiB. Returns the key. */
static void make_volume(struct luks2_hdr *hdr, uint8_t vk[64], const char *pass,
                        const struct luks2_pbkdf_params *pp, uint32_t sector) {
        struct orion_error err = { 0 };
        struct luks2_digest d;

        for (int i = 0; i < 64; i++)
                vk[i] = (uint8_t) (i * 7 + 1);
        ck_assert_int_eq(luks2_hdr_init(hdr, 16384, (1 << 20) - 32768, "aes-xts-plain64", sector, 64, "test", &err), 0);
        ck_assert_int_eq(luks2_digest_create(vk, 64, "sha256", 1, &d, &err), 0);
        ck_assert_int_eq(luks2_digest_set_json(hdr, &d), 0);
        ck_assert_msg(luks2_keyslot_create(&g_io, hdr, 0, pass, strlen(pass), vk, 64, pp, &err) == 0, "%s", err.msg);
        ck_assert_msg(luks2_hdr_write(&g_io, hdr, &err) == 0, "%s", err.msg);
}

/* ---- AES-XTS: IEEE 1619-2007 annex B vectors --------------------------------------------------- */
struct xts_vec {
        const char *key, *pt, *ct;
        uint64_t seq;
};

static const struct xts_vec g_xts[] = {
        /* vector 2 */
        { "1111111111111111111111111111111122222222222222222222222222222222",
          "4444444444444444444444444444444444444444444444444444444444444444",
          "c454185e6a16936e39334038acef838bfb186fff7480adc4289382ecd6d394f0", 0x3333333333 },
        /* vector 3 */
        { "fffefdfcfbfaf9f8f7f6f5f4f3f2f1f022222222222222222222222222222222",
          "4444444444444444444444444444444444444444444444444444444444444444",
          "af85336b597afc1a900b2eb21ec949d292df4c047e0b21532186a5971a227a89", 0x3333333333 },
        /* vector 4 (512 bytes, 00..ff twice) */
        { "2718281828459045235360287471352631415926535897932384626433832795", NULL,
          "27a7479befa1d476489f308cd4cfa6e2a96e4bbe3208ff25287dd3819616e89cc78cf7f5e543445f8333d8fa7f560000"
          "05279fa5d8b5e4ad40e736ddb4d35412328063fd2aab53e5ea1e0a9f332500a5df9487d07a5c92cc512c8866c7e860ce"
          "93fdf166a24912b422976146ae20ce846bb7dc9ba94a767aaef20c0d61ad02655ea92dc4c4e41a8952c651d33174be51"
          "a10c421110e6d81588ede82103a252d8a750e8768defffed9122810aaeb99f9172af82b604dc4b8e51bcb08235a6f434"
          "1332e4ca60482a4ba1a03b3e65008fc5da76b70bf1690db4eae29c5f1badd03c5ccf2a55d705ddcd86d449511ceb7ec3"
          "0bf12b1fa35b913f9f747a8afd1b130e94bff94effd01a91735ca1726acd0b197c4e5b03393697e126826fb6bbde8ecc"
          "1e08298516e2c9ed03ff3c1b7860f6de76d4cecd94c8119855ef5297ca67e9f3e7ff72b1e99785ca0a7e7720c5b36dc6"
          "d72cac9574c8cbbc2f801e23e56fd344b07f22154beba0f08ce8891e643ed995c94d9a69c9f1b5f499027a78572aeebd"
          "74d20cc39881c213ee770b1010e4bea718846977ae119f7a023ab58cca0ad752afe656bb3c17256a9f6e9bf19fdd5a38"
          "fc82bbe872c5539edb609ef4f79c203ebb140f2e583cb2ad15b4aa5b655016a8449277dbd477ef2c8d6c017db738b18d"
          "eb4a427d1923ce3ff262735779a418f20a282df920147beabe421ee5319d0568", 0 },
        /* vector 10 (AES-256, data unit 0xff) */
        { "27182818284590452353602874713526624977572470936999595749669676273141592653589793238462643383279502884197169399375105820974944592",
          NULL,
          "1c3b3a102f770386e4836c99e370cf9bea00803f5e482357a4ae12d414a3e63b5d31e276f8fe4a8d66b317f9ac683f44"
          "680a86ac35adfc3345befecb4bb188fd5776926c49a3095eb108fd1098baec70aaa66999a72a82f27d848b21d4a741b0"
          "c5cd4d5fff9dac89aeba122961d03a757123e9870f8acf1000020887891429ca2a3e7a7d7df7b10355165c8b9a6d0a7d"
          "e8b062c4500dc4cd120c0f7418dae3d0b5781c34803fa75421c790dfe1de1834f280d7667b327f6c8cd7557e12ac3a0f"
          "93ec05c52e0493ef31a12d3d9260f79a289d6a379bc70c50841473d1a8cc81ec583e9645e07b8d9670655ba5bbcfecc6"
          "dc3966380ad8fecb17b6ba02469a020a84e18e8f84252070c13e9f1f289be54fbc481457778f616015e1327a02b140f1"
          "505eb309326d68378f8374595c849d84f4c333ec4423885143cb47bd71c5edae9be69a2ffeceb1bec9de244fbe15992b"
          "11b77c040f12bd8f6a975a44a0f90c29a9abc3d4d893927284c58754cce294529f8614dcd2aba991925fedc4ae74ffac"
          "6e333b93eb4aff0479da9a410e4450e0dd7ae4c6e2910900575da401fc07059f645e8b7e9bfdef33943054ff84011493"
          "c27b3429eaedb4ed5376441a77ed43851ad77f16f541dfd269d50d6a5f14fb0aab1cbb4c1550be97f7ab4066193c4caa"
          "773dad38014bd2092fa755c824bb5e54c4f36ffda9fcea70b9c6e693e148c151", 0xff },
};

START_TEST(test_xts_vectors) {
        const struct xts_vec *v = &g_xts[_i];
        uint8_t key[64], pt[512], ct[512], out[512];
        size_t klen = unhex(v->key, key, sizeof(key)), len;
        gcry_cipher_hd_t hd;

        if (v->pt)
                len = unhex(v->pt, pt, sizeof(pt));
        else
                for (len = 0; len < 512; len++)
                        pt[len] = (uint8_t) len;
        ck_assert_uint_eq(unhex(v->ct, ct, sizeof(ct)), len);
        ck_assert_int_eq(crypt_cipher_open("aes-xts-plain64", key, klen, &hd), 0);
        /* One "sector" of len bytes whose plain64 IV is the data unit number. */
        ck_assert_int_eq(crypt_sectors(hd, true, out, pt, len, (uint32_t) len, v->seq, 1), 0);
        ck_assert_mem_eq(out, ct, len);
        ck_assert_int_eq(crypt_sectors(hd, false, out, out, len, (uint32_t) len, v->seq, 1), 0);
        ck_assert_mem_eq(out, pt, len);
        gcry_cipher_close(hd);
}
END_TEST

/* Sectors are independent: encrypting two 512-byte sectors at once equals encrypting each
 * with its own IV; and the IV step is honoured (4096-byte sectors step by 8). */
START_TEST(test_xts_sectors) {
        uint8_t key[64], buf[8192], a[8192], b[8192];
        gcry_cipher_hd_t hd;

        for (int i = 0; i < 64; i++)
                key[i] = (uint8_t) (i + 1);
        for (size_t i = 0; i < sizeof(buf); i++)
                buf[i] = (uint8_t) (i * 31);
        ck_assert_int_eq(crypt_cipher_open("aes-xts-plain64", key, 64, &hd), 0);
        ck_assert_int_eq(crypt_sectors(hd, true, a, buf, 1024, 512, 10, 1), 0);
        ck_assert_int_eq(crypt_sectors(hd, true, b, buf, 512, 512, 10, 1), 0);
        ck_assert_int_eq(crypt_sectors(hd, true, b + 512, buf + 512, 512, 512, 11, 1), 0);
        ck_assert_mem_eq(a, b, 1024);
        ck_assert_int_eq(crypt_sectors(hd, true, a, buf, 8192, 4096, 16, 8), 0);
        ck_assert_int_eq(crypt_sectors(hd, true, b + 4096, buf + 4096, 4096, 4096, 24, 8), 0);
        ck_assert_mem_eq(a + 4096, b + 4096, 4096);
        ck_assert_int_eq(crypt_sectors(hd, true, b, buf, 4096, 4096, 17, 8), 0);
        ck_assert(memcmp(a, b, 4096) != 0);
        ck_assert_int_eq(crypt_sectors(hd, true, a, buf, 100, 512, 0, 1), -EINVAL);
        gcry_cipher_close(hd);
}
END_TEST

START_TEST(test_cipher_specs) {
        int algo;
        ck_assert_int_eq(crypt_cipher_parse("aes-xts-plain64", 64, &algo), 0);
        ck_assert_int_eq(algo, GCRY_CIPHER_AES256);
        ck_assert_int_eq(crypt_cipher_parse("aes-xts-plain64", 32, &algo), 0);
        ck_assert_int_eq(algo, GCRY_CIPHER_AES128);
        ck_assert_int_eq(crypt_cipher_parse("serpent-xts-plain64", 64, &algo), 0);
        ck_assert_int_eq(crypt_cipher_parse("aes-cbc-essiv:sha256", 32, &algo), -ENOTSUP);
        ck_assert_int_eq(crypt_cipher_parse("aes-xts-plain", 64, &algo), -ENOTSUP);
        ck_assert_int_eq(crypt_cipher_parse("des-xts-plain64", 64, &algo), -ENOTSUP);
        ck_assert_int_eq(crypt_cipher_parse("aes-xts-plain64", 20, &algo), -EINVAL);
        ck_assert_int_eq(crypt_cipher_parse("twofish-xts-plain64", 48, &algo), -EINVAL);
}
END_TEST

/* ---- AF splitter ------------------------------------------------------------------------------- */
START_TEST(test_af_roundtrip) {
        static const char *const hashes[] = { "sha256", "sha1", "sha512" };
        const size_t klen = _i == 2 ? 32 : 64;
        uint8_t key[64], back[64];
        size_t len = luks2_af_area_len(klen, LUKS2_STRIPES);
        uint8_t *split = calloc(1, len);

        ck_assert_uint_eq(len % 512, 0);
        ck_assert_uint_ge(len, klen * LUKS2_STRIPES);
        for (size_t i = 0; i < klen; i++)
                key[i] = (uint8_t) (0xa5 ^ i);
        ck_assert_int_eq(luks2_af_split(key, klen, LUKS2_STRIPES, hashes[_i], split), 0);
        /* The key itself does not appear in the split material. */
        ck_assert(memmem(split, klen * LUKS2_STRIPES, key, klen) == NULL);
        ck_assert_int_eq(luks2_af_merge(split, klen, LUKS2_STRIPES, hashes[_i], back), 0);
        ck_assert_mem_eq(back, key, klen);
        /* Any damaged stripe destroys the key (the anti-forensic property). */
        split[1234 * klen] ^= 1;
        ck_assert_int_eq(luks2_af_merge(split, klen, LUKS2_STRIPES, hashes[_i], back), 0);
        ck_assert(memcmp(back, key, klen) != 0);
        ck_assert_int_eq(luks2_af_merge(split, klen, LUKS2_STRIPES, "nohash", back), -EINVAL);
        free(split);
}
END_TEST

/* One stripe is the identity, two stripes: s1 = diffuse(s0) ^ key (sha256, 64-byte key uses two
 * hash blocks numbered 0 and 1). */
START_TEST(test_af_small) {
        uint8_t key[64], split[128], back[64], d[64];
        for (int i = 0; i < 64; i++)
                key[i] = (uint8_t) i;
        ck_assert_int_eq(luks2_af_split(key, 64, 1, "sha256", split), 0);
        ck_assert_mem_eq(split, key, 64);
        ck_assert_int_eq(luks2_af_split(key, 64, 2, "sha256", split), 0);
        for (int blk = 0; blk < 2; blk++) {
                uint8_t in[4 + 32] = { 0, 0, 0, (uint8_t) blk };
                memcpy(in + 4, split + 32 * blk, 32);
                gcry_md_hash_buffer(GCRY_MD_SHA256, d + 32 * blk, in, sizeof(in));
        }
        for (int i = 0; i < 64; i++)
                ck_assert_uint_eq(split[64 + i], d[i] ^ key[i]);
        ck_assert_int_eq(luks2_af_merge(split, 64, 2, "sha256", back), 0);
        ck_assert_mem_eq(back, key, 64);
}
END_TEST

START_TEST(test_base64) {
        uint8_t in[7] = { 0xff, 0x00, 0x10, 0x80, 0x7f, 0x3e, 0x3f }, out[16];
        size_t n;
        for (size_t len = 0; len <= sizeof(in); len++) {
                _cleanup_free_ char *s = luks2_b64_encode(in, len);
                ck_assert_uint_eq(strlen(s), (len + 2) / 3 * 4);
                ck_assert_int_eq(luks2_b64_decode(s, out, sizeof(out), &n), 0);
                ck_assert_uint_eq(n, len);
                ck_assert_mem_eq(out, in, len);
        }
        ck_assert_int_eq(luks2_b64_decode("AAA", out, sizeof(out), &n), -EINVAL);
        ck_assert_int_eq(luks2_b64_decode("A=AA", out, sizeof(out), &n), -EINVAL);
        ck_assert_int_eq(luks2_b64_decode("AA!A", out, sizeof(out), &n), -EINVAL);
        ck_assert_int_eq(luks2_b64_decode("AAAAAAAA", out, 5, &n), -E2BIG);
        uint64_t v;
        ck_assert(luks2_str_u64("18446744073709551615", &v) && v == UINT64_MAX);
        ck_assert(!luks2_str_u64("18446744073709551616", &v));
        ck_assert(!luks2_str_u64("-1", &v) && !luks2_str_u64("", &v) && !luks2_str_u64("12a", &v));
}
END_TEST

/* ---- Headers ------------------------------------------------------------------------------------ */
START_TEST(test_header_roundtrip) {
        struct orion_error err = { 0 };
        struct luks2_hdr hdr, back;
        uint8_t vk[64], out[64];
        size_t vk_len = 0;

        dev_setup(2 << 20);
        make_volume(&hdr, vk, "correct horse", _i ? &g_fast_argon : &g_fast_pbkdf2, 4096);
        ck_assert_int_eq(luks2_hdr_read(&g_io, &back, &err), 0);
        ck_assert_int_eq(back.state[0], LUKS2_COPY_OK);
        ck_assert_int_eq(back.state[1], LUKS2_COPY_OK);
        ck_assert_uint_eq(back.seqid, hdr.seqid);
        ck_assert_str_eq(back.uuid, hdr.uuid);
        ck_assert_str_eq(back.label, "test");
        ck_assert_uint_eq(back.seg.offset, 1 << 20);
        ck_assert_uint_eq(back.seg.sector_size, 4096);
        ck_assert_str_eq(back.seg.cipher, "aes-xts-plain64");
        ck_assert_str_eq(json_object_to_json_string(back.jobj), json_object_to_json_string(hdr.jobj));
        /* unlock: right passphrase gives the key, a wrong one EPERM */
        ck_assert_int_eq(luks2_unlock(&g_io, &back, -1, "correct horse", 13, out, &vk_len, &err), 0);
        ck_assert_uint_eq(vk_len, 64);
        ck_assert_mem_eq(out, vk, 64);
        memset(&err, 0, sizeof(err));
        ck_assert_int_eq(luks2_unlock(&g_io, &back, -1, "wrong horse", 11, out, &vk_len, &err), -EPERM);
        ck_assert_ptr_nonnull(strstr(err.msg, "no key available"));
        ck_assert_int_eq(luks2_unlock(&g_io, &back, 3, "correct horse", 13, out, &vk_len, &err), -ENOENT);
        luks2_hdr_done(&back);
        luks2_hdr_done(&hdr);
        dev_free();
}
END_TEST

/* Tokens and keys we do not know survive a rewrite. */
START_TEST(test_header_preserves_unknown) {
        struct orion_error err = { 0 };
        struct luks2_hdr hdr, back;
        uint8_t vk[64];

        dev_setup(2 << 20);
        make_volume(&hdr, vk, "pw", &g_fast_pbkdf2, 512);
        struct json_object *tok = json_tokener_parse("{\"type\":\"systemd-tpm2\",\"keyslots\":[\"0\"],\"x\":[1,2]}");
        struct json_object *tokens;
        ck_assert(json_object_object_get_ex(hdr.jobj, "tokens", &tokens));
        json_object_object_add(tokens, "0", tok);
        json_object_object_add(hdr.jobj, "vendor-extension", json_object_new_string("keep me"));
        ck_assert_int_eq(luks2_hdr_write(&g_io, &hdr, &err), 0);
        ck_assert_int_eq(luks2_hdr_read(&g_io, &back, &err), 0);
        ck_assert_str_eq(json_object_to_json_string(back.jobj), json_object_to_json_string(hdr.jobj));
        ck_assert_ptr_nonnull(strstr(json_object_to_json_string(back.jobj), "systemd-tpm2"));
        /* Removing keyslot 0 unbinds it from the token and the digest but keeps the token. */
        luks2_keyslot_remove_json(&back, 0);
        ck_assert_ptr_nonnull(strstr(json_object_to_json_string(back.jobj), "systemd-tpm2"));
        ck_assert(!luks2_keyslot_exists(&back, 0));
        ck_assert(!luks2_digest_has_keyslot(&back, 0, 0));
        luks2_hdr_done(&back);
        luks2_hdr_done(&hdr);
        dev_free();
}
END_TEST

/* Damaged primary -> secondary used; damaged secondary -> primary used; both -> EINVAL; a
 * newer secondary wins over an older primary. */
START_TEST(test_header_damage) {
        struct orion_error err = { 0 };
        struct luks2_hdr hdr, back;
        uint8_t vk[64], out[64];
        size_t vk_len;

        dev_setup(2 << 20);
        make_volume(&hdr, vk, "pw", &g_fast_pbkdf2, 4096);

        g_dev.buf[4096 + 10] ^= 0x40; /* primary JSON */
        ck_assert_int_eq(luks2_hdr_read(&g_io, &back, &err), 0);
        ck_assert_int_eq(back.state[0], LUKS2_COPY_BAD);
        ck_assert_int_eq(back.state[1], LUKS2_COPY_OK);
        ck_assert_int_eq(luks2_unlock(&g_io, &back, -1, "pw", 2, out, &vk_len, &err), 0);
        ck_assert_mem_eq(out, vk, 64);
        luks2_hdr_done(&back);

        memset(g_dev.buf, 0, 16384); /* primary wiped: the secondary is found by scanning */
        ck_assert_int_eq(luks2_hdr_read(&g_io, &back, &err), 0);
        ck_assert_int_eq(back.state[0], LUKS2_COPY_MISSING);
        luks2_hdr_done(&back);

        g_dev.buf[16384 + 4096 + 3] ^= 1; /* and now the secondary too */
        ck_assert_int_eq(luks2_hdr_read(&g_io, &back, &err), -EINVAL);
        ck_assert_ptr_nonnull(strstr(err.msg, "both LUKS2 header copies are damaged"));

        /* Rewrite; then make the secondary newer by hand: it wins. */
        ck_assert_int_eq(luks2_hdr_write(&g_io, &hdr, &err), 0);
        hdr.seqid += 5;
        ck_assert_int_eq(luks2_hdr_write_copy(&g_io, &hdr, 1), 0);
        memset(&err, 0, sizeof(err));
        ck_assert_int_eq(luks2_hdr_read(&g_io, &back, &err), 0);
        ck_assert_uint_eq(back.seqid, hdr.seqid);
        ck_assert_int_eq(back.state[0], LUKS2_COPY_OBSOLETE);
        luks2_hdr_done(&back);

        /* Damaged binary checksum of the secondary only. */
        ck_assert_int_eq(luks2_hdr_write(&g_io, &hdr, &err), 0);
        g_dev.buf[16384 + 448] ^= 0xff;
        ck_assert_int_eq(luks2_hdr_read(&g_io, &back, &err), 0);
        ck_assert_int_eq(back.state[0], LUKS2_COPY_OK);
        ck_assert_int_eq(back.state[1], LUKS2_COPY_BAD);
        luks2_hdr_done(&back);
        luks2_hdr_done(&hdr);
        dev_free();
}
END_TEST

START_TEST(test_header_truncated_and_absent) {
        struct orion_error err = { 0 };
        struct luks2_hdr hdr, back;
        uint8_t vk[64];

        dev_setup(2 << 20);
        ck_assert_int_eq(luks2_hdr_read(&g_io, &back, &err), -ENODEV);
        make_volume(&hdr, vk, "pw", &g_fast_pbkdf2, 4096);
        /* A device that ends inside the primary JSON area. */
        g_io.size = 8192;
        memset(&err, 0, sizeof(err));
        ck_assert_int_eq(luks2_hdr_read(&g_io, &back, &err), -EINVAL);
        ck_assert_ptr_nonnull(strstr(err.msg, "truncated"));
        /* LUKS1 is recognised and refused. */
        g_io.size = g_dev.size;
        g_dev.buf[7] = 1;
        memset(&err, 0, sizeof(err));
        memset(g_dev.buf + 16384, 0, 16384);
        ck_assert_int_eq(luks2_hdr_read(&g_io, &back, &err), -ENOTSUP);
        ck_assert_ptr_nonnull(strstr(err.msg, "LUKS1"));
        luks2_hdr_done(&hdr);
        dev_free();
}
END_TEST

/* JSON areas a reader must refuse. */
START_TEST(test_json_malformed) {
        static const char *const bad[] = {
                " {}",
                "{\"keyslots\":{},\"tokens\":{},\"segments\":{},\"digests\":{}}",
                "{\"keyslots\":{},\"tokens\":{},\"segments\":{},\"digests\":{},\"config\":{\"json_size\":\"1\",\"keyslots_size\":\"4096\"}}",
                "{\"keyslots\":{},\"tokens\":{},\"segments\":{},\"digests\":{},\"config\":{\"json_size\":\"12288\",\"keyslots_size\":\"4095\"}}",
                /* area outside the keyslots area */
                "{\"keyslots\":{\"0\":{\"type\":\"luks2\",\"key_size\":64,\"area\":{\"type\":\"raw\",\"offset\":\"4096\",\"size\":\"4096\"}}},"
                "\"tokens\":{},\"segments\":{},\"digests\":{},\"config\":{\"json_size\":\"12288\",\"keyslots_size\":\"65536\"}}",
                /* overlapping areas */
                "{\"keyslots\":{\"0\":{\"type\":\"luks2\",\"key_size\":64,\"area\":{\"type\":\"raw\",\"offset\":\"32768\",\"size\":\"8192\"}},"
                "\"1\":{\"type\":\"luks2\",\"key_size\":64,\"area\":{\"type\":\"raw\",\"offset\":\"36864\",\"size\":\"4096\"}}},"
                "\"tokens\":{},\"segments\":{},\"digests\":{},\"config\":{\"json_size\":\"12288\",\"keyslots_size\":\"65536\"}}",
                /* keyslot id out of range, digest naming a missing keyslot */
                "{\"keyslots\":{\"32\":{}},\"tokens\":{},\"segments\":{},\"digests\":{},\"config\":{\"json_size\":\"12288\",\"keyslots_size\":\"65536\"}}",
                "{\"keyslots\":{},\"tokens\":{},\"segments\":{},\"digests\":{\"0\":{\"type\":\"pbkdf2\",\"keyslots\":[\"1\"],\"segments\":[]}},"
                "\"config\":{\"json_size\":\"12288\",\"keyslots_size\":\"65536\"}}",
                /* crypt segment with a bad sector size, and one inside the metadata */
                "{\"keyslots\":{},\"tokens\":{},\"segments\":{\"0\":{\"type\":\"crypt\",\"offset\":\"1048576\",\"size\":\"dynamic\","
                "\"iv_tweak\":\"0\",\"encryption\":\"aes-xts-plain64\",\"sector_size\":768}},\"digests\":{},"
                "\"config\":{\"json_size\":\"12288\",\"keyslots_size\":\"65536\"}}",
                "{\"keyslots\":{},\"tokens\":{},\"segments\":{\"0\":{\"type\":\"crypt\",\"offset\":\"4096\",\"size\":\"dynamic\","
                "\"iv_tweak\":\"0\",\"encryption\":\"aes-xts-plain64\",\"sector_size\":512}},\"digests\":{},"
                "\"config\":{\"json_size\":\"12288\",\"keyslots_size\":\"65536\"}}",
                "[1,2,3]",
                "{\"a\":",
        };
        char area[12288];

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                struct orion_error err = { 0 };
                struct json_object *o = NULL;
                memset(area, 0, sizeof(area));
                memcpy(area, bad[i], strlen(bad[i]));
                ck_assert_msg(luks2_json_parse(area, sizeof(area), 16384, &o, &err) < 0, "case %zu accepted", i);
                ck_assert_ptr_null(o);
        }
        /* Good text, but garbage in the padding, or no room for the NUL. */
        const char *good = "{\"keyslots\":{},\"tokens\":{},\"segments\":{},\"digests\":{},"
                           "\"config\":{\"json_size\":\"12288\",\"keyslots_size\":\"65536\"}}";
        struct orion_error err = { 0 };
        struct json_object *o = NULL;
        memset(area, 0, sizeof(area));
        memcpy(area, good, strlen(good));
        ck_assert_int_eq(luks2_json_parse(area, sizeof(area), 16384, &o, &err), 0);
        json_object_put(o);
        area[9000] = 'x';
        ck_assert_int_eq(luks2_json_parse(area, sizeof(area), 16384, &o, &err), -EINVAL);
        ck_assert_int_eq(luks2_json_parse(area, strlen(good), 16384, &o, &err), -EINVAL);
}
END_TEST

/* Keyslot JSON edits: add in a free area, move, remove; areas never overlap. */
START_TEST(test_keyslot_management) {
        struct orion_error err = { 0 };
        struct luks2_hdr hdr, back;
        struct luks2_keyslot k0, k1;
        uint8_t vk[64], out[64];
        size_t vk_len;
        int ids[LUKS2_OBJECTS_MAX];

        dev_setup(2 << 20);
        make_volume(&hdr, vk, "one", &g_fast_pbkdf2, 4096);
        ck_assert_int_eq(luks2_keyslot_create(&g_io, &hdr, 1, "two", 3, vk, 64, &g_fast_argon, &err), 0);
        ck_assert_int_eq(luks2_keyslot_create(&g_io, &hdr, 1, "two", 3, vk, 64, &g_fast_argon, &err), -EEXIST);
        ck_assert_int_eq(luks2_keyslot_get(&hdr, 0, &k0, &err), 0);
        ck_assert_int_eq(luks2_keyslot_get(&hdr, 1, &k1, &err), 0);
        ck_assert_uint_eq(k0.area_offset, 32768);
        ck_assert_uint_eq(k0.area_size, 258048);
        ck_assert_uint_ge(k1.area_offset, k0.area_offset + k0.area_size);
        ck_assert_int_eq(k1.kdf.type, LUKS2_KDF_ARGON2ID);
        ck_assert_uint_eq(k1.kdf.memory, 64);
        ck_assert_uint_eq(k1.kdf.cpus, 2);
        ck_assert_int_eq(luks2_hdr_write(&g_io, &hdr, &err), 0);
        ck_assert_int_eq(luks2_hdr_read(&g_io, &back, &err), 0);
        ck_assert_int_eq(luks2_unlock(&g_io, &back, -1, "two", 3, out, &vk_len, &err), 1);
        ck_assert_mem_eq(out, vk, 64);
        ck_assert_int_eq(luks2_keyslot_move_json(&back, 1, 5), 0);
        ck_assert_int_eq(luks2_keyslot_list(&back, ids), 2);
        ck_assert_int_eq(ids[1], 5);
        ck_assert_int_eq(luks2_unlock(&g_io, &back, 5, "two", 3, out, &vk_len, &err), 5);
        luks2_keyslot_remove_json(&back, 0);
        ck_assert_int_eq(luks2_unlock(&g_io, &back, -1, "one", 3, out, &vk_len, &err), -EPERM);
        /* The freed area is found again first. */
        uint64_t off;
        ck_assert_int_eq(luks2_area_find(&back, 258048, &off), 0);
        ck_assert_uint_eq(off, 32768);
        struct json_object *dump = luks2_hdr_dump(&back);
        ck_assert_ptr_nonnull(strstr(json_object_to_json_string(dump), "\"argon2id\""));
        json_object_put(dump);
        luks2_hdr_done(&back);
        luks2_hdr_done(&hdr);
        dev_free();
}
END_TEST

/* Cost selection: fixed costs are kept; a benchmark gives at least cryptsetup's minimums. */
START_TEST(test_kdf_choose) {
        struct orion_error err = { 0 };
        struct luks2_kdf k;
        struct luks2_pbkdf_params pp = { .type = LUKS2_KDF_PBKDF2, .time_ms = 20 };

        ck_assert_int_eq(luks2_kdf_choose(&pp, 64, &k, &err), 0);
        ck_assert_uint_ge(k.iterations, 1000);
        ck_assert_uint_eq(k.salt_len, 32);
        pp = (struct luks2_pbkdf_params) { .type = LUKS2_KDF_ARGON2I, .time_ms = 20, .max_memory = 1024, .parallel = 1 };
        ck_assert_int_eq(luks2_kdf_choose(&pp, 64, &k, &err), 0);
        ck_assert_uint_ge(k.iterations, 4);
        ck_assert_uint_le(k.memory, 1024);
        ck_assert_uint_ge(k.memory, 32);
        pp = (struct luks2_pbkdf_params) { .type = LUKS2_KDF_ARGON2ID, .iterations = 3, .memory = 4096, .parallel = 40 };
        ck_assert_int_eq(luks2_kdf_choose(&pp, 64, &k, &err), -EINVAL);
}
END_TEST

static Suite *luks2_suite(void) {
        Suite *s = suite_create("luks2");
        TCase *tc = tcase_create("core");

        tcase_set_timeout(tc, 60);
        tcase_add_loop_test(tc, test_xts_vectors, 0, sizeof(g_xts) / sizeof(g_xts[0]));
        tcase_add_test(tc, test_xts_sectors);
        tcase_add_test(tc, test_cipher_specs);
        tcase_add_loop_test(tc, test_af_roundtrip, 0, 3);
        tcase_add_test(tc, test_af_small);
        tcase_add_test(tc, test_base64);
        tcase_add_loop_test(tc, test_header_roundtrip, 0, 2);
        tcase_add_test(tc, test_header_preserves_unknown);
        tcase_add_test(tc, test_header_damage);
        tcase_add_test(tc, test_header_truncated_and_absent);
        tcase_add_test(tc, test_json_malformed);
        tcase_add_test(tc, test_keyslot_management);
        tcase_add_test(tc, test_kdf_choose);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        SRunner *sr = srunner_create(luks2_suite());
        int failed;

        srunner_set_tap(sr, "-");
        srunner_run_all(sr, CK_SILENT);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
