/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The encrypt layer loaded as a plugin and stacked on a memory node through the core: format,
 * open, data round trips (ciphertext on the child, never plaintext), reopen, wrong
 * passphrase, write-zeroes and discard behaviour, and the ctl verbs. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "t-core.h"

static char g_dir[64];
static char g_key1[96], g_key2[96], g_key3[96];

static void write_file(const char *path, const char *text) {
        FILE *f = fopen(path, "w");
        ck_assert_ptr_nonnull(f);
        fputs(text, f);
        fclose(f);
}

static void setup(void) {
        t_core_setup();
        snprintf(g_dir, sizeof(g_dir), "/tmp/check-encrypt.XXXXXX");
        ck_assert_ptr_nonnull(mkdtemp(g_dir));
        snprintf(g_key1, sizeof(g_key1), "%s/k1", g_dir);
        snprintf(g_key2, sizeof(g_key2), "%s/k2", g_dir);
        snprintf(g_key3, sizeof(g_key3), "%s/k3", g_dir);
        write_file(g_key1, "first passphrase\n"); /* the newline is part of it */
        write_file(g_key2, "second");
        write_file(g_key3, "third");
        t_node_add("mem", "memory", t_params("size", "24M", NULL));
}

static void teardown(void) {
        char cmd[128];
        t_core_teardown();
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_dir);
        ck_assert_int_eq(system(cmd), 0);
}

static int format_cipher(const char *sector, const char *cipher, bool force, struct orion_error *err) {
        const struct orion_plugin *t = registry_find("encrypt", err);
        struct json_object *kv = t_params("child", "mem", "key-file", g_key1, "sector-size", sector, "pbkdf", "pbkdf2",
                                          "pbkdf-force-iterations", "1000", "label", "unit", "cipher", cipher, NULL);
        struct orion_params *p;
        int r;

        ck_assert_ptr_nonnull(t);
        ck_assert_ptr_nonnull(t->format);
        p = params_new(t, kv, err);
        json_object_put(kv);
        ck_assert_ptr_nonnull(p);
        r = t->format(p, force, NULL, err);
        params_free(p);
        return r;
}

static int format(const char *sector, bool force, struct orion_error *err) {
        return format_cipher(sector, "aes-xts-plain64", force, err);
}

static struct orion_bdev *open_vol(const char *key_file) {
        return t_node_add("vol", "encrypt", t_params("child", "mem", "key-file", key_file, NULL));
}

static int ctl(struct orion_bdev *b, const char *verb, const char *json, struct json_object **reply,
               struct orion_error *err) {
        struct json_object *args = json_tokener_parse(json);
        int r;

        ck_assert_ptr_nonnull(args);
        *reply = NULL;
        r = orion_bdev_ctl(b, verb, args, reply, err);
        json_object_put(args);
        return r;
}

START_TEST(test_format_open_io) {
        const char *sector = _i ? "512" : "4096";
        struct orion_error err = { 0 };
        struct orion_bdev *vol, *mem;
        static char w[65536], r[65536], raw[65536];

        ck_assert_msg(format(sector, false, &err) == 0, "%s", err.msg);
        vol = open_vol(g_key1);
        mem = graph_node_find("mem");
        ck_assert_uint_eq(orion_bdev_size(vol), (24u << 20) - (16u << 20));
        ck_assert_uint_eq(orion_bdev_block_size(vol), (uint32_t) strtoul(sector, NULL, 10));
        t_pattern(w, sizeof(w), 0, 7);
        ck_assert_int_eq(orion_bdev_pwrite(vol, w, sizeof(w), 1 << 20, 0), 0);
        ck_assert_int_eq(orion_bdev_pread(vol, r, sizeof(r), 1 << 20, 0), 0);
        ck_assert_mem_eq(w, r, sizeof(w));
        /* The child holds ciphertext at data offset + off, not the plaintext. */
        ck_assert_int_eq(orion_bdev_pread(mem, raw, sizeof(raw), (16u << 20) + (1u << 20), 0), 0);
        ck_assert(memcmp(raw, w, sizeof(w)) != 0);
        ck_assert(memmem(raw, sizeof(raw), w, 64) == NULL);
        /* Requests larger than the layer's 256 KiB pieces (and split across CPUs): the IV of
         * every piece follows on, whatever split the reader uses. */
        {
                size_t big = (3u << 19) + 8192;
                uint8_t *bw = malloc(big), *br = malloc(big);
                t_pattern(bw, big, 2u << 20, 9);
                ck_assert_int_eq(orion_bdev_pwrite(vol, bw, big, 2u << 20, 0), 0);
                for (size_t o = 0; o < big; o += 4096)
                        ck_assert_int_eq(orion_bdev_pread(vol, br + o, 4096, (2u << 20) + o, 0), 0);
                ck_assert_mem_eq(bw, br, big);
                memset(br, 0, big);
                ck_assert_int_eq(orion_bdev_pread(vol, br, big, 2u << 20, 0), 0);
                ck_assert_mem_eq(bw, br, big);
                /* Large requests are cut into one share per CPU, run concurrently: zeroes too. */
                ck_assert_int_eq(orion_bdev_write_zeroes(vol, big - 4096, (2u << 20) + 4096, 0), 0);
                for (size_t o = 0; o < big; o += 4096)
                        ck_assert_int_eq(orion_bdev_pread(vol, br + o, 4096, (2u << 20) + o, 0), 0);
                ck_assert_mem_eq(bw, br, 4096);
                ck_assert(t_is_zero(br + 4096, big - 4096));
                free(bw);
                free(br);
        }
        /* Unaligned I/O goes through the core's read-modify-write. */
        ck_assert_int_eq(orion_bdev_pwrite(vol, "hello", 5, 100, 0), 0);
        ck_assert_int_eq(orion_bdev_pread(vol, r, 5, 100, 0), 0);
        ck_assert_mem_eq(r, "hello", 5);
        /* write-zeroes reads back as zeroes, stored encrypted; discard is refused by default. */
        ck_assert_int_eq(orion_bdev_write_zeroes(vol, 8192, 1 << 20, 0), 0);
        ck_assert_int_eq(orion_bdev_pread(vol, r, 8192, 1 << 20, 0), 0);
        ck_assert(t_is_zero(r, 8192));
        ck_assert_int_eq(orion_bdev_pread(mem, raw, 8192, (16u << 20) + (1u << 20), 0), 0);
        ck_assert(!t_is_zero(raw, 8192));
        ck_assert_int_eq(orion_bdev_write_zeroes(vol, 8192, 0, ORION_FAST_ZERO), -ENOTSUP);
        ck_assert_int_lt(orion_bdev_discard(vol, 8192, 0, 0), 0);
        ck_assert_int_eq(orion_bdev_flush(vol, 0), 0);
        /* Reopen: the same plaintext. */
        t_node_remove("vol");
        vol = open_vol(g_key1);
        ck_assert_int_eq(orion_bdev_pread(vol, r, sizeof(r), (1 << 20) + 8192, 0), 0);
        ck_assert_mem_eq(w + 8192, r, sizeof(r) - 8192);
        t_node_remove("vol");
}
END_TEST

START_TEST(test_wrong_passphrase_and_refusals) {
        struct orion_error err = { 0 };
        struct orion_bdev *b = NULL;
        static uint8_t before[1 << 16], after[1 << 16];
        struct orion_bdev *mem = graph_node_find("mem");

        /* No header yet. */
        ck_assert_int_eq(t_node_add_err("vol", "encrypt", t_params("child", "mem", "key-file", g_key1, NULL), &b, &err),
                         -ENODEV);
        ck_assert_ptr_nonnull(strstr(err.msg, "no LUKS2 header"));
        ck_assert_int_eq(format("4096", false, &err), 0);
        ck_assert_int_eq(orion_bdev_pread(mem, before, sizeof(before), 0, 0), 0);
        memset(&err, 0, sizeof(err));
        ck_assert_int_eq(t_node_add_err("vol", "encrypt", t_params("child", "mem", "key-file", g_key2, NULL), &b, &err),
                         -EPERM);
        ck_assert_ptr_nonnull(strstr(err.msg, "no key available with this passphrase"));
        ck_assert_int_eq(orion_bdev_pread(mem, after, sizeof(after), 0, 0), 0);
        ck_assert_mem_eq(before, after, sizeof(before)); /* touched nothing */
        memset(&err, 0, sizeof(err));
        ck_assert_int_eq(t_node_add_err("vol", "encrypt", t_params("child", "mem", "key-file", "/nonexistent", NULL), &b,
                                        &err),
                         -ENOENT);
        memset(&err, 0, sizeof(err));
        ck_assert_int_eq(t_node_add_err("vol", "encrypt", t_params("child", "mem", NULL), &b, &err), -EINVAL);
        /* Format refuses to overwrite a LUKS header without force. */
        memset(&err, 0, sizeof(err));
        ck_assert_int_eq(format("4096", false, &err), -EEXIST);
        ck_assert_ptr_nonnull(strstr(err.msg, "LUKS"));
        ck_assert_int_eq(format("512", true, &err), 0);
        /* An ext4 superblock is refused too. */
        static const uint8_t ext4_magic[2] = { 0x53, 0xef };
        ck_assert_int_eq(orion_bdev_write_zeroes(mem, 1 << 20, 0, 0), 0);
        uint8_t blk[4096] = { 0 };
        memcpy(blk + 0x438, ext4_magic, 2);
        ck_assert_int_eq(orion_bdev_pwrite(mem, blk, sizeof(blk), 0, 0), 0);
        memset(&err, 0, sizeof(err));
        ck_assert_int_eq(format("4096", false, &err), -EEXIST);
        ck_assert_ptr_nonnull(strstr(err.msg, "ext2/3/4"));
}
END_TEST

START_TEST(test_ctl_verbs) {
        struct orion_error err = { 0 };
        struct json_object *reply = NULL, *v;
        struct orion_bdev *vol;
        char json[512], backup[128];

        ck_assert_int_eq(format("4096", false, &err), 0);
        vol = open_vol(g_key1);
        /* add-key with a new key file; checked existing passphrase */
        snprintf(json, sizeof(json),
                 "{\"new-key-file\":\"%s\",\"key-file\":\"%s\",\"pbkdf\":\"argon2id\",\"pbkdf-force-iterations\":1,"
                 "\"pbkdf-memory\":\"64\",\"pbkdf-parallel\":1}",
                 g_key2, g_key1);
        ck_assert_msg(ctl(vol, "add-key", json, &reply, &err) == 0, "%s", err.msg);
        ck_assert(json_object_object_get_ex(reply, "keyslot", &v));
        ck_assert_int_eq(json_object_get_int(v), 1);
        json_object_put(reply);
        /* orionctl --passphrase-prompt: the prompted "passphrase" is the new one for add-key */
        ck_assert_msg(ctl(vol, "add-key", "{\"passphrase\":\"prompted\",\"pbkdf\":\"pbkdf2\","
                                          "\"pbkdf-force-iterations\":1000}", &reply, &err) == 0, "%s", err.msg);
        ck_assert(json_object_object_get_ex(reply, "keyslot", &v));
        ck_assert_int_eq(json_object_get_int(v), 2);
        json_object_put(reply);
        ck_assert_int_eq(ctl(vol, "remove-key", "{\"passphrase\":\"prompted\"}", &reply, &err), 0);
        ck_assert(json_object_object_get_ex(reply, "removed", &v));
        ck_assert_int_eq(json_object_get_int(v), 2);
        json_object_put(reply);
        /* a wrong existing passphrase is refused */
        snprintf(json, sizeof(json), "{\"new-passphrase\":\"x\",\"passphrase\":\"nope\",\"pbkdf\":\"pbkdf2\","
                                     "\"pbkdf-force-iterations\":1000}");
        ck_assert_int_eq(ctl(vol, "add-key", json, &reply, &err), -EPERM);
        /* dump shows both keyslots */
        memset(&err, 0, sizeof(err));
        ck_assert_int_eq(ctl(vol, "dump", "{}", &reply, &err), 0);
        ck_assert(json_object_object_get_ex(reply, "keyslots", &v));
        ck_assert_int_eq(json_object_object_length(v), 2);
        ck_assert_ptr_nonnull(strstr(json_object_to_json_string(reply), "\"unit\""));
        json_object_put(reply);
        /* backup now, then change key 2 -> 3 and remove key 1 */
        snprintf(backup, sizeof(backup), "%s/hdr.bak", g_dir);
        snprintf(json, sizeof(json), "{\"argv\":[\"%s\"]}", backup);
        ck_assert_msg(ctl(vol, "header-backup", json, &reply, &err) == 0, "%s", err.msg);
        json_object_put(reply);
        ck_assert_int_eq(ctl(vol, "header-backup", json, &reply, &err), -EEXIST);
        snprintf(json, sizeof(json), "{\"key-file\":\"%s\",\"new-key-file\":\"%s\",\"pbkdf\":\"pbkdf2\","
                                     "\"pbkdf-force-iterations\":1000}", g_key2, g_key3);
        memset(&err, 0, sizeof(err));
        ck_assert_msg(ctl(vol, "change-key", json, &reply, &err) == 0, "%s", err.msg);
        ck_assert(json_object_object_get_ex(reply, "keyslot", &v));
        ck_assert_int_eq(json_object_get_int(v), 1);
        json_object_put(reply);
        ck_assert_int_eq(ctl(vol, "remove-key", "{\"keyslot\":0}", &reply, &err), 0);
        json_object_put(reply);
        /* the last one is protected */
        memset(&err, 0, sizeof(err));
        ck_assert_int_eq(ctl(vol, "remove-key", "{\"keyslot\":1}", &reply, &err), -EBUSY);
        ck_assert_int_eq(ctl(vol, "frobnicate", "{}", &reply, &err), -EOPNOTSUPP);
        t_node_remove("vol");
        /* key 1 and 2 no longer open; key 3 does */
        struct orion_bdev *b = NULL;
        ck_assert_int_eq(t_node_add_err("vol", "encrypt", t_params("child", "mem", "key-file", g_key1, NULL), &b, &err),
                         -EPERM);
        ck_assert_int_eq(t_node_add_err("vol", "encrypt", t_params("child", "mem", "key-file", g_key2, NULL), &b, &err),
                         -EPERM);
        vol = open_vol(g_key3);
        /* restore the backup: keys 1 and 2 are back */
        snprintf(json, sizeof(json), "{\"file\":\"%s\"}", backup);
        memset(&err, 0, sizeof(err));
        ck_assert_msg(ctl(vol, "header-restore", json, &reply, &err) == 0, "%s", err.msg);
        json_object_put(reply);
        t_node_remove("vol");
        vol = open_vol(g_key1);
        t_node_remove("vol");
        vol = open_vol(g_key2);
        t_node_remove("vol");
}
END_TEST

/* Authenticated modes: round trips, every sector sealed at format, tampering with data or
 * tags, or moving a sector with its tag, fails the read with -EILSEQ (and only reads that
 * touch that sector); a rewrite heals it. Layout: tags of 28 bytes (nonce, MAC), 146 per
 * 4096-byte block, after the data segment. */
static uint64_t tag_pos(uint64_t tag_off, uint64_t sector) {
        return tag_off + sector / 146 * 4096 + sector % 146 * 28;
}

static void flip(struct orion_bdev *mem, uint64_t pos) {
        uint8_t blk[512];
        uint64_t base = pos & ~511ull;
        ck_assert_int_eq(orion_bdev_pread(mem, blk, 512, base, 0), 0);
        blk[pos - base] ^= 0x01;
        ck_assert_int_eq(orion_bdev_pwrite(mem, blk, 512, base, 0), 0);
}

START_TEST(test_aead) {
        static const char *const ciphers[] = { "aes-gcm-random", "chacha20-random", "aes-gcm-random" };
        static const char *const sectors[] = { "4096", "512", "512" };
        const uint32_t ss = (uint32_t) strtoul(sectors[_i], NULL, 10);
        const struct orion_plugin *t = registry_find("encrypt", NULL);
        struct orion_error err = { 0 };
        struct orion_bdev *mem = graph_node_find("mem"), *vol, *b = NULL;
        struct json_object *kv, *st;
        struct orion_params *p;
        static uint8_t w[65536], r[65536];
        uint64_t size, tag_off, big = (3u << 19) + 8192;
        uint8_t *bw = malloc(big), *br = malloc(big);

        kv = t_params("child", "mem", "key-file", g_key1, "sector-size", sectors[_i], "cipher", ciphers[_i], "pbkdf",
                      "pbkdf2", "pbkdf-force-iterations", "1000", NULL);
        p = params_new(t, kv, &err);
        json_object_put(kv);
        ck_assert_ptr_nonnull(p);
        ck_assert_msg(t->format(p, true, NULL, &err) == 0, "%s", err.msg);
        params_free(p);
        vol = open_vol(g_key1);
        size = orion_bdev_size(vol);
        tag_off = (16u << 20) + size;
        /* Data plus tags fill the 8 MiB after the metadata, and no more. */
        ck_assert_uint_eq(size % ss, 0);
        ck_assert_uint_le(tag_off + (size / ss + 145) / 146 * 4096, 24u << 20);
        ck_assert_uint_gt(tag_off + (size / ss + 145) / 146 * 4096 + ss + 4096, 24u << 20);
        st = json_object_new_object();
        graph_node_info(vol, st, false);
        ck_assert_ptr_nonnull(strstr(json_object_to_json_string_ext(st, JSON_C_TO_STRING_PLAIN),
                                     _i == 1 ? "\"integrity\":\"poly1305\"" : "\"integrity\":\"aead\""));
        json_object_put(st);
        /* Sealed zeros from format. */
        ck_assert_int_eq(orion_bdev_pread(vol, r, sizeof(r), size - sizeof(r), 0), 0);
        ck_assert(t_is_zero(r, sizeof(r)));
        t_pattern(w, sizeof(w), 0, 11);
        ck_assert_int_eq(orion_bdev_pwrite(vol, w, sizeof(w), 1 << 20, 0), 0);
        ck_assert_int_eq(orion_bdev_pread(vol, r, sizeof(r), 1 << 20, 0), 0);
        ck_assert_mem_eq(w, r, sizeof(r));
        ck_assert_int_eq(orion_bdev_pread(mem, r, sizeof(r), (16u << 20) + (1u << 20), 0), 0);
        ck_assert(memmem(r, sizeof(r), w, 64) == NULL);
        /* Large requests (split across CPUs), read back sector by sector. */
        t_pattern(bw, big, 2u << 20, 5);
        ck_assert_int_eq(orion_bdev_pwrite(vol, bw, big, 2u << 20, 0), 0);
        for (size_t o = 0; o < big; o += ss)
                ck_assert_int_eq(orion_bdev_pread(vol, br + o, ss, (2u << 20) + o, 0), 0);
        ck_assert_mem_eq(bw, br, big);
        ck_assert_int_eq(orion_bdev_pread(vol, br, big, 2u << 20, 0), 0);
        ck_assert_mem_eq(bw, br, big);

        /* One flipped ciphertext bit: that sector fails, its neighbours do not. */
        uint64_t x = ((1u << 20) + 2 * ss) / ss;
        flip(mem, (16u << 20) + x * ss + 7);
        ck_assert_int_eq(orion_bdev_pread(vol, r, ss, x * ss, 0), -EILSEQ);
        ck_assert_int_eq(orion_bdev_pread(vol, r, sizeof(r), 1 << 20, 0), -EILSEQ);
        ck_assert(t_is_zero(r, sizeof(r))); /* no unauthenticated plaintext handed out */
        ck_assert_int_eq(orion_bdev_pread(vol, r, ss, (x - 1) * ss, 0), 0);
        ck_assert_mem_eq(r, w + ss, ss);
        ck_assert_int_eq(orion_bdev_pread(vol, r, ss, (x + 1) * ss, 0), 0);
        ck_assert_mem_eq(r, w + 3 * ss, ss);
        flip(mem, (16u << 20) + x * ss + 7);
        ck_assert_int_eq(orion_bdev_pread(vol, r, ss, x * ss, 0), 0);
        ck_assert_mem_eq(r, w + 2 * ss, ss);
        /* A flipped bit in the nonce or in the MAC. */
        flip(mem, tag_pos(tag_off, x) + 3);
        ck_assert_int_eq(orion_bdev_pread(vol, r, ss, x * ss, 0), -EILSEQ);
        flip(mem, tag_pos(tag_off, x) + 3);
        flip(mem, tag_pos(tag_off, x) + 20);
        ck_assert_int_eq(orion_bdev_pread(vol, r, ss, x * ss, 0), -EILSEQ);
        /* A rewrite seals it again. */
        ck_assert_int_eq(orion_bdev_pwrite(vol, w, ss, x * ss, 0), 0);
        ck_assert_int_eq(orion_bdev_pread(vol, r, ss, x * ss, 0), 0);
        ck_assert_mem_eq(r, w, ss);
        /* Sector x+1 with its tag copied over sector x: authentic, but not there. */
        {
                uint8_t *sec = malloc(ss), tag[28], blk[4096];
                uint64_t tp = tag_pos(tag_off, x + 1), tx = tag_pos(tag_off, x);
                ck_assert_int_eq(orion_bdev_pread(mem, sec, ss, (16u << 20) + (x + 1) * ss, 0), 0);
                ck_assert_int_eq(orion_bdev_pread(mem, blk, 4096, tp & ~4095ull, 0), 0);
                memcpy(tag, blk + (tp & 4095), 28);
                ck_assert_int_eq(orion_bdev_pread(mem, blk, 4096, tx & ~4095ull, 0), 0);
                memcpy(blk + (tx & 4095), tag, 28);
                ck_assert_int_eq(orion_bdev_pwrite(mem, blk, 4096, tx & ~4095ull, 0), 0);
                ck_assert_int_eq(orion_bdev_pwrite(mem, sec, ss, (16u << 20) + x * ss, 0), 0);
                ck_assert_int_eq(orion_bdev_pread(vol, r, ss, x * ss, 0), -EILSEQ);
                free(sec);
        }
        /* write-zeroes seals zeros; discard is refused (it would drop tags); unaligned I/O. */
        ck_assert_int_eq(orion_bdev_write_zeroes(vol, big - ss, (2u << 20) + ss, 0), 0);
        ck_assert_int_eq(orion_bdev_pread(vol, br, big, 2u << 20, 0), 0);
        ck_assert_mem_eq(br, bw, ss);
        ck_assert(t_is_zero(br + ss, big - ss));
        ck_assert_int_eq(orion_bdev_write_zeroes(vol, ss, x * ss, 0), 0);
        ck_assert_int_eq(orion_bdev_pread(vol, r, ss, x * ss, 0), 0);
        ck_assert(t_is_zero(r, ss));
        ck_assert_int_lt(orion_bdev_discard(vol, ss, 0, 0), 0);
        ck_assert_int_eq(orion_bdev_pwrite(vol, "hello", 5, 100, 0), 0);
        ck_assert_int_eq(orion_bdev_pread(vol, r, 5, 100, 0), 0);
        ck_assert_mem_eq(r, "hello", 5);
        t_node_remove("vol");
        /* Reopen; a wrong passphrase touches nothing. */
        ck_assert_int_eq(t_node_add_err("vol", "encrypt", t_params("child", "mem", "key-file", g_key2, NULL), &b, &err),
                         -EPERM);
        vol = open_vol(g_key1);
        ck_assert_int_eq(orion_bdev_pread(vol, r, sizeof(r), 1 << 20, 0), 0);
        ck_assert_mem_eq(r + ss, w + ss, ss);
        ck_assert_int_eq(orion_bdev_pread(vol, br, ss, 2u << 20, 0), 0);
        ck_assert_mem_eq(br, bw, ss);
        t_node_remove("vol");
        free(bw);
        free(br);
}
END_TEST

/* A damaged primary header is repaired from the secondary after a successful unlock. */
START_TEST(test_repair) {
        struct orion_error err = { 0 };
        struct orion_bdev *mem = graph_node_find("mem"), *vol;
        uint8_t blk[4096], blk2[4096];
        struct json_object *st;

        ck_assert_int_eq(format("4096", false, &err), 0);
        ck_assert_int_eq(orion_bdev_pread(mem, blk, sizeof(blk), 4096, 0), 0);
        blk[5] ^= 0x20;
        ck_assert_int_eq(orion_bdev_pwrite(mem, blk, sizeof(blk), 4096, 0), 0);
        vol = open_vol(g_key1);
        st = json_object_new_object();
        graph_node_info(vol, st, false);
        ck_assert_ptr_nonnull(strstr(json_object_to_json_string_ext(st, JSON_C_TO_STRING_PLAIN), "\"header-primary\":\"ok\""));
        json_object_put(st);
        ck_assert_int_eq(orion_bdev_pread(mem, blk2, sizeof(blk2), 4096, 0), 0);
        blk[5] ^= 0x20;
        ck_assert_mem_eq(blk, blk2, sizeof(blk));
        t_node_remove("vol");
        /* A child that refuses writes: the damaged copy cannot be repaired, the node opens
         * (reads work) but reports itself degraded. */
        ck_assert_int_eq(orion_bdev_pread(mem, blk, sizeof(blk), 4096, 0), 0);
        blk[5] ^= 0x20;
        ck_assert_int_eq(orion_bdev_pwrite(mem, blk, sizeof(blk), 4096, 0), 0);
        t_node_add("ro", "error", t_params("child", "mem", "ops", "write", "error", "EIO", NULL));
        vol = t_node_add("vol", "encrypt", t_params("child", "ro", "key-file", g_key1, NULL));
        st = json_object_new_object();
        graph_node_info(vol, st, false);
        ck_assert_ptr_nonnull(strstr(json_object_to_json_string_ext(st, JSON_C_TO_STRING_PLAIN), "\"health\":\"degraded\""));
        json_object_put(st);
        ck_assert_int_eq(orion_bdev_pread(vol, blk2, sizeof(blk2), 0, 0), 0);
        t_node_remove("vol");
        t_node_remove("ro");
        blk[5] ^= 0x20;
        /* both copies damaged: a clear error */
        blk[5] ^= 0x20;
        ck_assert_int_eq(orion_bdev_pwrite(mem, blk, sizeof(blk), 4096, 0), 0);
        ck_assert_int_eq(orion_bdev_pwrite(mem, blk, sizeof(blk), 16384 + 4096, 0), 0);
        struct orion_bdev *b = NULL;
        memset(&err, 0, sizeof(err));
        ck_assert_int_eq(t_node_add_err("vol", "encrypt", t_params("child", "mem", "key-file", g_key1, NULL), &b, &err),
                         -EINVAL);
        ck_assert_ptr_nonnull(strstr(err.msg, "both LUKS2 header copies are damaged"));
}
END_TEST

/* Chain conformance: passthru above and below, the same checks check-chain makes. */
START_TEST(test_sandwich) {
        struct orion_error err = { 0 };
        static char buf[65536 + 1000], back[65536 + 1000];
        const struct orion_plugin *t = registry_find("encrypt", &err);
        struct json_object *kv;
        struct orion_params *p;
        struct orion_bdev *top;

        t_node_add("below", "passthru", t_params("child", "mem", NULL));
        kv = t_params("child", "below", "key-file", g_key1, "pbkdf", "pbkdf2", "pbkdf-force-iterations", "1000", NULL);
        p = params_new(t, kv, &err);
        json_object_put(kv);
        ck_assert_ptr_nonnull(p);
        ck_assert_msg(t->format(p, false, NULL, &err) == 0, "%s", err.msg);
        params_free(p);
        t_node_add("vol", "encrypt", t_params("child", "below", "key-file", g_key1, NULL));
        top = t_node_add("above", "passthru", t_params("child", "vol", NULL));
        t_pattern(buf, sizeof buf, 77, 3);
        ck_assert_int_eq(orion_bdev_pwrite(top, buf, sizeof buf, 12345, 0), 0);
        ck_assert_int_eq(orion_bdev_flush(top, 0), 0);
        ck_assert_int_eq(orion_bdev_pread(top, back, sizeof back, 12345, 0), 0);
        ck_assert_mem_eq(buf, back, sizeof buf);
        ck_assert_int_eq(orion_bdev_write_zeroes(top, 4096, 16384, 0), 0);
        ck_assert_int_eq(orion_bdev_pread(top, back, 4096, 16384, 0), 0);
        ck_assert(t_is_zero(back, 4096));
        t_node_remove("above");
        t_node_remove("vol");
        t_node_remove("below");
}
END_TEST

/* A layer whose .read_view cuts the child's bytes into odd pieces (1000, 3000, 513, 7000, ...),
 * NULL where a piece is all zeroes: sectors split across pieces, zero pieces mid-sector. */
struct oddview {
        struct orion_bdev *child;
};
static int odd_pread(struct orion_bdev *b, void *buf, uint64_t len, uint64_t off, uint32_t flags) {
        struct oddview *o = orion_bdev_priv(b);
        return orion_bdev_pread(o->child, buf, len, off, flags);
}
static int odd_pwrite(struct orion_bdev *b, const void *buf, uint64_t len, uint64_t off, uint32_t flags) {
        struct oddview *o = orion_bdev_priv(b);
        return orion_bdev_pwrite(o->child, buf, len, off, flags);
}
static int odd_view(struct orion_bdev *b, uint64_t len, uint64_t off,
                    int (*fn)(void *arg, const void *data, uint64_t n), void *arg) {
        static const uint64_t cut[] = { 1000, 3000, 513, 7000, 4096, 12288, 1 };
        struct oddview *o = orion_bdev_priv(b);
        uint8_t *buf = malloc(len);
        int r = buf ? orion_bdev_pread(o->child, buf, len, off, 0) : -ENOMEM;
        for (uint64_t done = 0, i = 0; done < len && r >= 0; i++) {
                uint64_t n = MIN(cut[i % ELEMENTSOF(cut)], len - done);
                r = fn(arg, t_is_zero(buf + done, n) ? NULL : buf + done, n);
                done += n;
        }
        free(buf);
        return r;
}
static int odd_open(struct orion_bdev *b, const struct orion_params *p, struct orion_error *err) {
        struct oddview *o = orion_bdev_priv(b);
        o->child = orion_param_node(p, "child");
        orion_bdev_set_caps(b, orion_bdev_caps(o->child));
        return orion_bdev_set_geometry(b, orion_bdev_geometry(o->child));
}
static const struct orion_param odd_params[] = { { "child", ORION_PARAM_NODE, NULL, "child" }, { NULL } };
static const struct orion_bdev_ops odd_ops = { .pread = odd_pread, .pwrite = odd_pwrite, .read_view = odd_view };
static const struct orion_plugin odd_type = { .api_version = ORION_PLUGIN_API_VERSION, .name = "oddview",
                                              .params = odd_params, .instance_size = sizeof(struct oddview),
                                              .ops = &odd_ops, .open = odd_open };

/* Reads decrypt out of the child's memory (the memory leaf's view), out of a buffer (a child
 * without a view: passthru), and out of odd pieces: all three give the same bytes, for
 * written, zeroed and never-written (zero ciphertext on the child) sectors, across the
 * memory leaf's 64 KiB chunks, for requests split across CPUs, XTS and authenticated modes. */
START_TEST(test_read_paths) {
        static const char *const ciphers[] = { "aes-xts-plain64", "aes-xts-plain64", "aes-gcm-random", "chacha20-random" };
        static const char *const sectors[] = { "4096", "512", "4096", "512" };
        const bool aead = _i >= 2; /* format seals every sector: unwritten ones read as zeroes */
        const size_t span = 3u << 20; /* two 1.5 MiB requests: split across CPUs */
        struct orion_error err = { 0 };
        uint8_t *w = malloc(span), *a = malloc(span), *b = malloc(span), *c = malloc(span);
        struct orion_bdev *direct, *buffered, *odd;

        ck_assert_int_eq(registry_add(&odd_type, &err), 0);
        ck_assert_msg(format_cipher(sectors[_i], ciphers[_i], false, &err) == 0, "%s", err.msg);
        direct = open_vol(g_key1);
        t_node_add("below", "passthru", t_params("child", "mem", NULL));
        t_node_add("oddly", "oddview", t_params("child", "mem", NULL));
        buffered = t_node_add("vol2", "encrypt", t_params("child", "below", "key-file", g_key1, NULL));
        odd = t_node_add("vol3", "encrypt", t_params("child", "oddly", "key-file", g_key1, NULL));
        t_pattern(w, span, 0, 5);
        /* Written: [60K, 60K + 200K) and [1M, 2.5M); zeroed: [400K, 420K); never written: the rest. */
        ck_assert_int_eq(orion_bdev_pwrite(direct, w + 61440, 204800, 61440, 0), 0);
        ck_assert_int_eq(orion_bdev_pwrite(direct, w + (1u << 20), 3u << 19, 1u << 20, 0), 0);
        ck_assert_int_eq(orion_bdev_write_zeroes(direct, 20480, 409600, 0), 0);
        for (size_t off = 0; off < span; off += span / 2) {
                ck_assert_int_eq(orion_bdev_pread(direct, a + off, span / 2, off, 0), 0);
                ck_assert_int_eq(orion_bdev_pread(buffered, b + off, span / 2, off, 0), 0);
                ck_assert_int_eq(orion_bdev_pread(odd, c + off, span / 2, off, 0), 0);
        }
        ck_assert_mem_eq(a, b, span);
        ck_assert_mem_eq(a, c, span);
        ck_assert_mem_eq(a + 61440, w + 61440, 204800);
        ck_assert_mem_eq(a + (1u << 20), w + (1u << 20), 3u << 19);
        ck_assert(t_is_zero(a + 409600, 20480));
        /* XTS: the child's zeroes decrypt to noise, as before. */
        ck_assert(t_is_zero(a + 300000, 4096) == aead);
        ck_assert(t_is_zero(a, 4096) == aead);
        /* Small and unaligned requests, and sector by sector. */
        for (size_t off = 60000; off < 70000; off += 1111) {
                ck_assert_int_eq(orion_bdev_pread(direct, b, 3333, off, 0), 0);
                ck_assert_mem_eq(a + off, b, 3333);
                ck_assert_int_eq(orion_bdev_pread(odd, b, 3333, off, 0), 0);
                ck_assert_mem_eq(a + off, b, 3333);
        }
        for (size_t off = 0; off < span; off += 65536 - 4096) {
                ck_assert_int_eq(orion_bdev_pread(direct, b, 8192, off, 0), 0);
                ck_assert_mem_eq(a + off, b, 8192);
        }
        /* A chunk of the child zeroed under the layer (freed: a NULL piece of the view) reads
         * as the ciphertext of zeroes: noise for XTS, a failed authentication for AEAD. */
        ck_assert_int_eq(orion_bdev_write_zeroes(graph_node_find("mem"), 65536, (16u << 20) + (1u << 20), 0), 0);
        ck_assert_int_eq(orion_bdev_pread(direct, a, 65536, 1u << 20, 0), aead ? -EILSEQ : 0);
        ck_assert_int_eq(orion_bdev_pread(buffered, b, 65536, 1u << 20, 0), aead ? -EILSEQ : 0);
        ck_assert_mem_eq(a, b, 65536);
        ck_assert(t_is_zero(a, 65536) == aead);
        free(w);
        free(a);
        free(b);
        free(c);
}
END_TEST

int main(void) {
        Suite *s = suite_create("encrypt");
        TCase *tc = tcase_create("layer");

        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_set_timeout(tc, 60);
        tcase_add_loop_test(tc, test_format_open_io, 0, 2);
        tcase_add_test(tc, test_wrong_passphrase_and_refusals);
        tcase_add_test(tc, test_ctl_verbs);
        tcase_add_test(tc, test_repair);
        tcase_add_test(tc, test_sandwich);
        tcase_add_loop_test(tc, test_aead, 0, 3);
        tcase_add_loop_test(tc, test_read_paths, 0, 4);
        suite_add_tcase(s, tc);
        return t_run(s);
}
