/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The LUKS2 JSON metadata model: a fresh header for format, decoding keyslots and digests
 * (validated again, field by field, before use), the edits of keyslot management, and the
 * luksDump-style description. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "common/cleanup.h"
#include "luks2.h"

static struct json_object *section(const struct luks2_hdr *hdr, const char *name) {
        return luks2_jget(hdr->jobj, name, json_type_object);
}

static void id_str(char buf[12], int id) {
        snprintf(buf, 12, "%d", id);
}

int luks2_hdr_init(struct luks2_hdr *hdr, uint64_t hdr_size, uint64_t keyslots_size, const char *cipher,
                   uint32_t sector_size, uint32_t key_size, const char *label, struct orion_error *err) {
        struct json_object *root, *seg, *segs, *cfg;
        uint8_t u[16];
        int algo, r;

        const char *integrity = crypt_aead_integrity(cipher);

        memset(hdr, 0, sizeof(*hdr));
        if (integrity ? key_size != LUKS2_AEAD_KEY_LEN : crypt_cipher_parse(cipher, key_size, &algo) < 0)
                return orion_error_set(err, EINVAL, "cipher '%s' with a %u-bit key is not supported "
                                       "(aes, serpent, twofish or camellia in xts-plain64 mode; aes-gcm-random or "
                                       "chacha20-random with a 256-bit key)", cipher, key_size * 8);
        if (label && strlen(label) >= LUKS2_LABEL_LEN)
                return orion_error_set(err, EINVAL, "label longer than %d characters", LUKS2_LABEL_LEN - 1);
        hdr->hdr_size = hdr_size;
        hdr->keyslots_size = keyslots_size;
        snprintf(hdr->csum_alg, sizeof(hdr->csum_alg), "sha256");
        snprintf(hdr->label, sizeof(hdr->label), "%s", label ? label : "");
        gcry_randomize(u, sizeof(u), GCRY_STRONG_RANDOM);
        u[6] = (uint8_t) ((u[6] & 0x0f) | 0x40); /* version 4 */
        u[8] = (uint8_t) ((u[8] & 0x3f) | 0x80); /* RFC 4122 variant */
        snprintf(hdr->uuid, sizeof(hdr->uuid),
                 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0], u[1], u[2], u[3],
                 u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]);

        root = json_object_new_object();
        json_object_object_add(root, "keyslots", json_object_new_object());
        json_object_object_add(root, "tokens", json_object_new_object());
        seg = json_object_new_object();
        json_object_object_add(seg, "type", json_object_new_string("crypt"));
        json_object_object_add(seg, "offset", luks2_jstr_u64(2 * hdr_size + keyslots_size));
        json_object_object_add(seg, "size", json_object_new_string("dynamic"));
        json_object_object_add(seg, "iv_tweak", json_object_new_string("0"));
        json_object_object_add(seg, "encryption", json_object_new_string(cipher));
        json_object_object_add(seg, "sector_size", json_object_new_int((int) sector_size));
        if (integrity) {
                struct json_object *integ = json_object_new_object();
                json_object_object_add(integ, "type", json_object_new_string(integrity));
                json_object_object_add(integ, "journal_encryption", json_object_new_string("none"));
                json_object_object_add(integ, "journal_integrity", json_object_new_string("none"));
                json_object_object_add(seg, "integrity", integ);
        }
        segs = json_object_new_object();
        json_object_object_add(segs, "0", seg);
        json_object_object_add(root, "segments", segs);
        json_object_object_add(root, "digests", json_object_new_object());
        cfg = json_object_new_object();
        json_object_object_add(cfg, "json_size", luks2_jstr_u64(hdr_size - LUKS2_HDR_BIN_LEN));
        json_object_object_add(cfg, "keyslots_size", luks2_jstr_u64(keyslots_size));
        if (integrity) {
                struct json_object *req = json_object_new_object(), *mand = json_object_new_array();
                json_object_array_add(mand, json_object_new_string(LUKS2_AEAD_REQUIREMENT));
                json_object_object_add(req, "mandatory", mand);
                json_object_object_add(cfg, "requirements", req);
        }
        json_object_object_add(root, "config", cfg);
        hdr->jobj = root;
        hdr->state[0] = hdr->state[1] = LUKS2_COPY_MISSING;
        r = luks2_hdr_validate(hdr, err);
        if (r < 0)
                luks2_hdr_done(hdr);
        return r;
}

int luks2_hdr_set_segment_size(struct luks2_hdr *hdr, uint64_t size, struct orion_error *err) {
        struct json_object *segs = section(hdr, "segments"), *seg = luks2_jget(segs, hdr->seg.id, json_type_object);

        if (!seg)
                return orion_error_set(err, EINVAL, "no data segment");
        json_object_object_add(seg, "size", luks2_jstr_u64(size));
        return luks2_hdr_validate(hdr, err);
}

/* ---- Keyslots -------------------------------------------------------------------------------- */
static int kdf_decode(struct json_object *kdf, struct luks2_kdf *k, struct orion_error *err, int id) {
        const char *type = luks2_jstr(kdf, "type"), *salt = luks2_jstr(kdf, "salt"), *hash;

        memset(k, 0, sizeof(*k));
        if (!type || !salt || luks2_b64_decode(salt, k->salt, sizeof(k->salt), &k->salt_len) < 0 || !k->salt_len)
                return orion_error_set(err, EINVAL, "keyslot %d: malformed kdf", id);
        if (strcmp(type, "pbkdf2") == 0) {
                k->type = LUKS2_KDF_PBKDF2;
                hash = luks2_jstr(kdf, "hash");
                if (!hash || strlen(hash) >= sizeof(k->hash) || !luks2_ju32(kdf, "iterations", &k->iterations) ||
                    k->iterations == 0)
                        return orion_error_set(err, EINVAL, "keyslot %d: malformed pbkdf2 parameters", id);
                snprintf(k->hash, sizeof(k->hash), "%s", hash);
                return 0;
        }
        if (strcmp(type, "argon2i") == 0)
                k->type = LUKS2_KDF_ARGON2I;
        else if (strcmp(type, "argon2id") == 0)
                k->type = LUKS2_KDF_ARGON2ID;
        else
                return orion_error_set(err, ENOTSUP, "keyslot %d: kdf '%s' is not supported", id, type);
        /* Bounds keep a forged header from asking for absurd memory or threads. */
        if (!luks2_ju32(kdf, "time", &k->iterations) || !luks2_ju32(kdf, "memory", &k->memory) ||
            !luks2_ju32(kdf, "cpus", &k->cpus) || k->iterations == 0 || k->cpus == 0 || k->cpus > 16 ||
            k->memory < 8 * k->cpus || k->memory > 4u * 1024 * 1024)
                return orion_error_set(err, EINVAL, "keyslot %d: argon2 parameters out of range", id);
        return 0;
}

int luks2_keyslot_get(const struct luks2_hdr *hdr, int id, struct luks2_keyslot *ks, struct orion_error *err) {
        char key[12];
        struct json_object *o, *area, *af, *kdf, *prio;
        const char *type, *enc, *afh;

        id_str(key, id);
        o = luks2_jget(section(hdr, "keyslots"), key, json_type_object);
        if (!o)
                return orion_error_set(err, ENOENT, "keyslot %d does not exist", id);
        memset(ks, 0, sizeof(*ks));
        ks->id = id;
        type = luks2_jstr(o, "type");
        if (!type || strcmp(type, "luks2") != 0)
                return orion_error_set(err, ENOTSUP, "keyslot %d has type '%s'", id, type ? type : "?");
        area = luks2_jget(o, "area", json_type_object);
        af = luks2_jget(o, "af", json_type_object);
        kdf = luks2_jget(o, "kdf", json_type_object);
        enc = luks2_jstr(area, "encryption");
        afh = luks2_jstr(af, "hash");
        if (!area || !af || !kdf || !enc || !afh || !luks2_ju32(o, "key_size", &ks->key_size) ||
            !luks2_ju32(area, "key_size", &ks->area_key_size) || !luks2_ju64s(area, "offset", &ks->area_offset) ||
            !luks2_ju64s(area, "size", &ks->area_size) || !luks2_ju32(af, "stripes", &ks->stripes) ||
            strlen(enc) >= sizeof(ks->area_cipher) || strlen(afh) >= sizeof(ks->af_hash))
                return orion_error_set(err, EINVAL, "keyslot %d is malformed", id);
        if (strcmp(luks2_jstr(area, "type") ? luks2_jstr(area, "type") : "", "raw") != 0 ||
            strcmp(luks2_jstr(af, "type") ? luks2_jstr(af, "type") : "", "luks1") != 0)
                return orion_error_set(err, ENOTSUP, "keyslot %d: unsupported area or AF type", id);
        if (ks->key_size == 0 || ks->key_size > LUKS2_KEY_MAX || ks->area_key_size == 0 ||
            ks->area_key_size > LUKS2_KEY_MAX || ks->stripes == 0 ||
            luks2_af_area_len(ks->key_size, ks->stripes) > ks->area_size)
                return orion_error_set(err, EINVAL, "keyslot %d: key size or stripes do not fit its area", id);
        snprintf(ks->area_cipher, sizeof(ks->area_cipher), "%s", enc);
        snprintf(ks->af_hash, sizeof(ks->af_hash), "%s", afh);
        ks->priority = 1;
        if (json_object_object_get_ex(o, "priority", &prio)) {
                if (!json_object_is_type(prio, json_type_int) || json_object_get_int(prio) < 0 ||
                    json_object_get_int(prio) > 2)
                        return orion_error_set(err, EINVAL, "keyslot %d: bad priority", id);
                ks->priority = json_object_get_int(prio);
        }
        return kdf_decode(kdf, &ks->kdf, err, id);
}

bool luks2_keyslot_exists(const struct luks2_hdr *hdr, int id) {
        char key[12];
        id_str(key, id);
        return luks2_jget(section(hdr, "keyslots"), key, json_type_object) != NULL;
}

int luks2_keyslot_list(const struct luks2_hdr *hdr, int ids[LUKS2_OBJECTS_MAX]) {
        int n = 0;
        for (int id = 0; id < LUKS2_OBJECTS_MAX; id++)
                if (luks2_keyslot_exists(hdr, id))
                        ids[n++] = id;
        return n;
}

int luks2_keyslot_free_id(const struct luks2_hdr *hdr) {
        for (int id = 0; id < LUKS2_OBJECTS_MAX; id++)
                if (!luks2_keyslot_exists(hdr, id))
                        return id;
        return -ENOSPC;
}

int luks2_area_find(const struct luks2_hdr *hdr, uint64_t len, uint64_t *ret_off) {
        uint64_t start = 2 * hdr->hdr_size, end = start + hdr->keyslots_size;
        uint64_t aoff[LUKS2_OBJECTS_MAX], alen[LUKS2_OBJECTS_MAX], cand[LUKS2_OBJECTS_MAX + 1];
        struct json_object *kss = section(hdr, "keyslots");
        int n = 0, nc = 0;

        cand[nc++] = start;
        json_object_object_foreach(kss, key, val) {
                struct json_object *area = luks2_jget(val, "area", json_type_object);
                (void) key;
                if (n < LUKS2_OBJECTS_MAX && luks2_ju64s(area, "offset", &aoff[n]) &&
                    luks2_ju64s(area, "size", &alen[n])) {
                        cand[nc++] = ALIGN_UP(aoff[n] + alen[n], (uint64_t) 4096);
                        n++;
                }
        }
        /* Lowest free candidate wins, like cryptsetup's first fit. */
        bool found = false;
        uint64_t best = 0;
        for (int c = 0; c < nc; c++) {
                uint64_t o = cand[c];
                bool ok = o >= start && len <= end - MIN(o, end) && o + len <= end;
                for (int j = 0; ok && j < n; j++)
                        if (o < aoff[j] + alen[j] && aoff[j] < o + len)
                                ok = false;
                if (ok && (!found || o < best)) {
                        best = o;
                        found = true;
                }
        }
        if (!found)
                return -ENOSPC;
        *ret_off = best;
        return 0;
}

static struct json_object *kdf_json(const struct luks2_kdf *k) {
        static const char *const names[] = { "pbkdf2", "argon2i", "argon2id" };
        struct json_object *o = json_object_new_object();
        char *salt = luks2_b64_encode(k->salt, k->salt_len);

        json_object_object_add(o, "type", json_object_new_string(names[k->type]));
        if (k->type == LUKS2_KDF_PBKDF2) {
                json_object_object_add(o, "hash", json_object_new_string(k->hash));
                json_object_object_add(o, "iterations", json_object_new_int64(k->iterations));
        } else {
                json_object_object_add(o, "time", json_object_new_int64(k->iterations));
                json_object_object_add(o, "memory", json_object_new_int64(k->memory));
                json_object_object_add(o, "cpus", json_object_new_int64(k->cpus));
        }
        json_object_object_add(o, "salt", json_object_new_string(salt ? salt : ""));
        free(salt);
        return o;
}

int luks2_keyslot_add_json(struct luks2_hdr *hdr, const struct luks2_keyslot *ks) {
        struct json_object *o = json_object_new_object(), *af = json_object_new_object();
        struct json_object *area = json_object_new_object();
        struct luks2_digest d;
        char key[12], dkey[12];

        if (luks2_digest_get(hdr, &d, NULL) < 0) {
                json_object_put(o);
                json_object_put(af);
                json_object_put(area);
                return -ENOENT;
        }
        json_object_object_add(o, "type", json_object_new_string("luks2"));
        json_object_object_add(o, "key_size", json_object_new_int64(ks->key_size));
        json_object_object_add(af, "type", json_object_new_string("luks1"));
        json_object_object_add(af, "stripes", json_object_new_int64(ks->stripes));
        json_object_object_add(af, "hash", json_object_new_string(ks->af_hash));
        json_object_object_add(o, "af", af);
        json_object_object_add(area, "type", json_object_new_string("raw"));
        json_object_object_add(area, "offset", luks2_jstr_u64(ks->area_offset));
        json_object_object_add(area, "size", luks2_jstr_u64(ks->area_size));
        json_object_object_add(area, "encryption", json_object_new_string(ks->area_cipher));
        json_object_object_add(area, "key_size", json_object_new_int64(ks->area_key_size));
        json_object_object_add(o, "area", area);
        json_object_object_add(o, "kdf", kdf_json(&ks->kdf));
        if (ks->priority != 1)
                json_object_object_add(o, "priority", json_object_new_int(ks->priority));
        id_str(key, ks->id);
        json_object_object_add(section(hdr, "keyslots"), key, o);
        id_str(dkey, d.id);
        struct json_object *arr = luks2_jget(luks2_jget(section(hdr, "digests"), dkey, json_type_object), "keyslots",
                                             json_type_array);
        if (!luks2_array_has(arr, key))
                json_object_array_add(arr, json_object_new_string(key));
        return 0;
}

/* Drop id from every "keyslots" array of a section (digests, tokens). */
static void unref_keyslot(struct json_object *sec, const char *key) {
        json_object_object_foreach(sec, k, val) {
                struct json_object *arr = luks2_jget(val, "keyslots", json_type_array);
                (void) k;
                for (size_t i = arr ? json_object_array_length(arr) : 0; i-- > 0;) {
                        struct json_object *e = json_object_array_get_idx(arr, i);
                        if (json_object_is_type(e, json_type_string) && strcmp(json_object_get_string(e), key) == 0)
                                json_object_array_del_idx(arr, i, 1);
                }
        }
}

void luks2_keyslot_remove_json(struct luks2_hdr *hdr, int id) {
        char key[12];
        id_str(key, id);
        json_object_object_del(section(hdr, "keyslots"), key);
        unref_keyslot(section(hdr, "digests"), key);
        unref_keyslot(section(hdr, "tokens"), key);
}

/* ---- Digests -------------------------------------------------------------------------------- */
int luks2_digest_get(const struct luks2_hdr *hdr, struct luks2_digest *d, struct orion_error *err) {
        json_object_object_foreach(section(hdr, "digests"), key, val) {
                const char *type = luks2_jstr(val, "type"), *hash = luks2_jstr(val, "hash");
                const char *salt = luks2_jstr(val, "salt"), *dig = luks2_jstr(val, "digest");

                if (!luks2_array_has(luks2_jget(val, "segments", json_type_array), hdr->seg.id))
                        continue;
                memset(d, 0, sizeof(*d));
                d->id = luks2_id_of(key);
                if (!type || strcmp(type, "pbkdf2") != 0)
                        return orion_error_set(err, ENOTSUP, "digest %s: type '%s' is not supported", key,
                                               type ? type : "?");
                if (!hash || strlen(hash) >= sizeof(d->hash) || !salt || !dig ||
                    !luks2_ju32(val, "iterations", &d->iterations) || d->iterations == 0 ||
                    luks2_b64_decode(salt, d->salt, sizeof(d->salt), &d->salt_len) < 0 ||
                    luks2_b64_decode(dig, d->digest, sizeof(d->digest), &d->digest_len) < 0 || d->digest_len == 0)
                        return orion_error_set(err, EINVAL, "digest %s is malformed", key);
                snprintf(d->hash, sizeof(d->hash), "%s", hash);
                return 0;
        }
        return orion_error_set(err, EINVAL, "no digest covers the data segment");
}

bool luks2_digest_has_keyslot(const struct luks2_hdr *hdr, int digest_id, int keyslot) {
        char dkey[12], kkey[12];
        id_str(dkey, digest_id);
        id_str(kkey, keyslot);
        return luks2_array_has(luks2_jget(luks2_jget(section(hdr, "digests"), dkey, json_type_object), "keyslots",
                                          json_type_array),
                               kkey);
}

int luks2_digest_set_json(struct luks2_hdr *hdr, const struct luks2_digest *d) {
        struct json_object *o = json_object_new_object(), *segs = json_object_new_array();
        _cleanup_free_ char *salt = luks2_b64_encode(d->salt, d->salt_len);
        _cleanup_free_ char *dig = luks2_b64_encode(d->digest, d->digest_len);
        char key[12];

        if (!salt || !dig) {
                json_object_put(o);
                json_object_put(segs);
                return -ENOMEM;
        }
        json_object_object_add(o, "type", json_object_new_string("pbkdf2"));
        json_object_object_add(o, "keyslots", json_object_new_array());
        json_object_array_add(segs, json_object_new_string(hdr->seg.id));
        json_object_object_add(o, "segments", segs);
        json_object_object_add(o, "hash", json_object_new_string(d->hash));
        json_object_object_add(o, "iterations", json_object_new_int64(d->iterations));
        json_object_object_add(o, "salt", json_object_new_string(salt));
        json_object_object_add(o, "digest", json_object_new_string(dig));
        id_str(key, d->id);
        json_object_object_add(section(hdr, "digests"), key, o);
        return 0;
}

/* ---- luksDump ---------------------------------------------------------------------------- */
static struct json_object *hex(const uint8_t *p, size_t n) {
        char buf[2 * 64 + 1];
        n = MIN(n, (size_t) 64);
        for (size_t i = 0; i < n; i++)
                snprintf(buf + 2 * i, 3, "%02x", p[i]);
        buf[2 * n] = '\0';
        return json_object_new_string(buf);
}

static const char *state_name(enum luks2_copy_state s) {
        static const char *const names[] = { "ok", "missing", "damaged", "obsolete", "io-error" };
        return names[s];
}

static struct json_object *dump_keyslot(const struct luks2_hdr *hdr, int id, const struct luks2_digest *d,
                                        bool have_digest) {
        static const char *const prio[] = { "ignored", "normal", "preferred" };
        static const char *const kdfs[] = { "pbkdf2", "argon2i", "argon2id" };
        struct json_object *o = json_object_new_object();
        struct luks2_keyslot ks;
        struct orion_error e = { 0 };

        if (luks2_keyslot_get(hdr, id, &ks, &e) < 0) {
                json_object_object_add(o, "error", json_object_new_string(e.msg));
                return o;
        }
        json_object_object_add(o, "type", json_object_new_string("luks2"));
        json_object_object_add(o, "key-bits", json_object_new_int64(ks.key_size * 8));
        json_object_object_add(o, "priority", json_object_new_string(prio[ks.priority]));
        json_object_object_add(o, "cipher", json_object_new_string(ks.area_cipher));
        json_object_object_add(o, "cipher-key-bits", json_object_new_int64(ks.area_key_size * 8));
        json_object_object_add(o, "pbkdf", json_object_new_string(kdfs[ks.kdf.type]));
        if (ks.kdf.type == LUKS2_KDF_PBKDF2) {
                json_object_object_add(o, "hash", json_object_new_string(ks.kdf.hash));
                json_object_object_add(o, "iterations", json_object_new_int64(ks.kdf.iterations));
        } else {
                json_object_object_add(o, "time-cost", json_object_new_int64(ks.kdf.iterations));
                json_object_object_add(o, "memory", json_object_new_int64(ks.kdf.memory));
                json_object_object_add(o, "threads", json_object_new_int64(ks.kdf.cpus));
        }
        json_object_object_add(o, "salt", hex(ks.kdf.salt, ks.kdf.salt_len));
        json_object_object_add(o, "af-stripes", json_object_new_int64(ks.stripes));
        json_object_object_add(o, "af-hash", json_object_new_string(ks.af_hash));
        json_object_object_add(o, "area-offset", json_object_new_uint64(ks.area_offset));
        json_object_object_add(o, "area-length", json_object_new_uint64(ks.area_size));
        if (have_digest && luks2_digest_has_keyslot(hdr, d->id, id))
                json_object_object_add(o, "digest-id", json_object_new_int(d->id));
        return o;
}

struct json_object *luks2_hdr_dump(const struct luks2_hdr *hdr) {
        struct json_object *o = json_object_new_object(), *v, *kss = json_object_new_object();
        struct json_object *seg = json_object_new_object(), *segs = json_object_new_object();
        struct json_object *copies = json_object_new_object(), *digs = json_object_new_object();
        struct luks2_digest d;
        bool have_digest = luks2_digest_get(hdr, &d, NULL) == 0;
        int ids[LUKS2_OBJECTS_MAX], n;
        char key[12];

        json_object_object_add(o, "version", json_object_new_int(2));
        json_object_object_add(o, "epoch", json_object_new_uint64(hdr->seqid));
        json_object_object_add(o, "metadata-area", json_object_new_uint64(hdr->hdr_size));
        json_object_object_add(o, "keyslots-area", json_object_new_uint64(hdr->keyslots_size));
        json_object_object_add(o, "uuid", json_object_new_string(hdr->uuid));
        json_object_object_add(o, "label", json_object_new_string(hdr->label));
        json_object_object_add(o, "subsystem", json_object_new_string(hdr->subsystem));
        v = luks2_jget(luks2_jget(hdr->jobj, "config", json_type_object), "flags", json_type_array);
        struct json_object *flags = NULL;
        if (!v || json_object_deep_copy(v, &flags, NULL) < 0 || !flags)
                flags = json_object_new_array();
        json_object_object_add(o, "flags", flags);
        json_object_object_add(copies, "primary", json_object_new_string(state_name(hdr->state[0])));
        json_object_object_add(copies, "secondary", json_object_new_string(state_name(hdr->state[1])));
        json_object_object_add(o, "header-copies", copies);

        json_object_object_add(seg, "type", json_object_new_string("crypt"));
        json_object_object_add(seg, "offset", json_object_new_uint64(hdr->seg.offset));
        json_object_object_add(seg, "length", hdr->seg.size ? json_object_new_uint64(hdr->seg.size)
                                                            : json_object_new_string("whole device"));
        json_object_object_add(seg, "cipher", json_object_new_string(hdr->seg.cipher));
        json_object_object_add(seg, "sector", json_object_new_int64(hdr->seg.sector_size));
        if (hdr->seg.integrity[0])
                json_object_object_add(seg, "integrity", json_object_new_string(hdr->seg.integrity));
        json_object_object_add(seg, "iv-tweak", json_object_new_uint64(hdr->seg.iv_tweak));
        json_object_object_add(segs, hdr->seg.id, seg);
        json_object_object_add(o, "segments", segs);

        n = luks2_keyslot_list(hdr, ids);
        for (int i = 0; i < n; i++) {
                id_str(key, ids[i]);
                json_object_object_add(kss, key, dump_keyslot(hdr, ids[i], &d, have_digest));
        }
        json_object_object_add(o, "keyslots", kss);
        struct json_object *tokens = NULL;
        if (json_object_deep_copy(section(hdr, "tokens"), &tokens, NULL) < 0 || !tokens)
                tokens = json_object_new_object();
        json_object_object_add(o, "tokens", tokens);
        if (have_digest) {
                struct json_object *dj = json_object_new_object();
                json_object_object_add(dj, "type", json_object_new_string("pbkdf2"));
                json_object_object_add(dj, "hash", json_object_new_string(d.hash));
                json_object_object_add(dj, "iterations", json_object_new_int64(d.iterations));
                json_object_object_add(dj, "salt", hex(d.salt, d.salt_len));
                json_object_object_add(dj, "digest", hex(d.digest, d.digest_len));
                id_str(key, d.id);
                json_object_object_add(digs, key, dj);
        }
        json_object_object_add(o, "digests", digs);
        return o;
}

int luks2_keyslot_move_json(struct luks2_hdr *hdr, int from, int to) {
        char fkey[12], tkey[12];
        struct json_object *kss = section(hdr, "keyslots"), *o;
        struct luks2_digest d;

        id_str(fkey, from);
        id_str(tkey, to);
        o = luks2_jget(kss, fkey, json_type_object);
        if (!o || luks2_jget(kss, tkey, json_type_object) || luks2_digest_get(hdr, &d, NULL) < 0)
                return -EINVAL;
        json_object_get(o);
        luks2_keyslot_remove_json(hdr, from);
        json_object_object_add(kss, tkey, o);
        char dkey[12];
        id_str(dkey, d.id);
        json_object_array_add(luks2_jget(luks2_jget(section(hdr, "digests"), dkey, json_type_object), "keyslots",
                                         json_type_array),
                              json_object_new_string(tkey));
        return 0;
}

int luks2_hdr_clone(const struct luks2_hdr *src, struct luks2_hdr *dst) {
        *dst = *src;
        dst->jobj = NULL;
        if (json_object_deep_copy(src->jobj, &dst->jobj, NULL) < 0 || !dst->jobj)
                return -ENOMEM;
        return 0;
}
