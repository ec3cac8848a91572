/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* LUKS2 headers: the two binary header copies with their checksums, the JSON metadata area
 * (parsed and validated as untrusted input, re-serialised with unknown keys kept), and the
 * JSON edits keyslot management needs. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "common/cleanup.h"
#include "luks2.h"

/* Binary header field offsets (big-endian integers). */
enum {
        OFF_MAGIC = 0,
        OFF_VERSION = 6,
        OFF_HDR_SIZE = 8,
        OFF_SEQID = 16,
        OFF_LABEL = 24,
        OFF_CSUM_ALG = 72,
        OFF_SALT = 104,
        OFF_UUID = 168,
        OFF_SUBSYSTEM = 208,
        OFF_HDR_OFFSET = 256,
        OFF_CSUM = 448,
        CSUM_LEN = 64,
        SALT_LEN = 64,
};

static const uint64_t g_hdr2_offsets[] = { 0x4000, 0x8000, 0x10000, 0x20000, 0x40000,
                                           0x80000, 0x100000, 0x200000, 0x400000 };

static uint64_t get_be(const uint8_t *p, int n) {
        uint64_t v = 0;
        for (int i = 0; i < n; i++)
                v = (v << 8) | p[i];
        return v;
}

static void put_be(uint8_t *p, int n, uint64_t v) {
        for (int i = n - 1; i >= 0; i--, v >>= 8)
                p[i] = (uint8_t) v;
}

static bool valid_hdr_size(uint64_t s) {
        for (size_t i = 0; i < ELEMENTSOF(g_hdr2_offsets); i++)
                if (g_hdr2_offsets[i] == s)
                        return true;
        return false;
}

/* Copy a fixed-size, possibly unterminated field into a C string. */
static void field_str(char *dst, const uint8_t *src, size_t n) {
        memcpy(dst, src, n);
        dst[n - 1] = '\0';
}

/* ---- base64 and numbers ------------------------------------------------------------------- */
static const char g_b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *luks2_b64_encode(const uint8_t *in, size_t len) {
        char *out = malloc((len + 2) / 3 * 4 + 1), *o = out;

        if (!out)
                return NULL;
        for (size_t i = 0; i < len; i += 3) {
                uint32_t v = (uint32_t) in[i] << 16;
                if (i + 1 < len)
                        v |= (uint32_t) in[i + 1] << 8;
                if (i + 2 < len)
                        v |= in[i + 2];
                *o++ = g_b64[(v >> 18) & 63];
                *o++ = g_b64[(v >> 12) & 63];
                *o++ = i + 1 < len ? g_b64[(v >> 6) & 63] : '=';
                *o++ = i + 2 < len ? g_b64[v & 63] : '=';
        }
        *o = '\0';
        return out;
}

static int b64_val(char c) {
        const char *p = c ? strchr(g_b64, c) : NULL;
        return p ? (int) (p - g_b64) : -1;
}

int luks2_b64_decode(const char *in, uint8_t *out, size_t max, size_t *ret_len) {
        size_t n = strlen(in), len = 0;

        if (n % 4)
                return -EINVAL;
        for (size_t i = 0; i < n; i += 4) {
                int v[4], pad = 0;
                for (int k = 0; k < 4; k++) {
                        if (in[i + k] == '=' && i + 4 == n && k >= 2) {
                                v[k] = 0;
                                pad++;
                                continue;
                        }
                        if (pad || (v[k] = b64_val(in[i + k])) < 0)
                                return -EINVAL;
                }
                uint32_t w = (uint32_t) v[0] << 18 | (uint32_t) v[1] << 12 | (uint32_t) v[2] << 6 | (uint32_t) v[3];
                for (int k = 0; k < 3 - pad; k++) {
                        if (len >= max)
                                return -E2BIG;
                        out[len++] = (uint8_t) (w >> (16 - 8 * k));
                }
        }
        *ret_len = len;
        return 0;
}

bool luks2_str_u64(const char *s, uint64_t *ret) {
        uint64_t v = 0;

        if (!s || !*s)
                return false;
        for (; *s; s++) {
                if (*s < '0' || *s > '9')
                        return false;
                if (v > (UINT64_MAX - (uint64_t) (*s - '0')) / 10)
                        return false;
                v = v * 10 + (uint64_t) (*s - '0');
        }
        *ret = v;
        return true;
}

/* ---- JSON helpers --------------------------------------------------------------------------- */
struct json_object *luks2_jget(struct json_object *o, const char *key, int t) {
        struct json_object *v;

        if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, (enum json_type) t))
                return NULL;
        return v;
}

const char *luks2_jstr(struct json_object *o, const char *key) {
        struct json_object *v = luks2_jget(o, key, json_type_string);
        return v ? json_object_get_string(v) : NULL;
}

bool luks2_ju64s(struct json_object *o, const char *key, uint64_t *ret) {
        return luks2_str_u64(luks2_jstr(o, key), ret);
}

bool luks2_ju32(struct json_object *o, const char *key, uint32_t *ret) {
        struct json_object *v = luks2_jget(o, key, json_type_int);
        int64_t x;

        if (!v)
                return false;
        x = json_object_get_int64(v);
        if (x < 0 || x > UINT32_MAX)
                return false;
        *ret = (uint32_t) x;
        return true;
}

/* Object keys of the sections are decimal ids below LUKS2_OBJECTS_MAX. */
int luks2_id_of(const char *key) {
        uint64_t v;
        if (!luks2_str_u64(key, &v) || v >= LUKS2_OBJECTS_MAX || (key[0] == '0' && key[1]))
                return -1;
        return (int) v;
}

struct json_object *luks2_jstr_u64(uint64_t v) {
        char buf[24];
        snprintf(buf, sizeof(buf), "%" PRIu64, v);
        return json_object_new_string(buf);
}

static bool array_refs_valid(struct json_object *arr, struct json_object *section) {
        size_t n = json_object_array_length(arr);
        for (size_t i = 0; i < n; i++) {
                struct json_object *e = json_object_array_get_idx(arr, i);
                if (!json_object_is_type(e, json_type_string) || luks2_id_of(json_object_get_string(e)) < 0 ||
                    !luks2_jget(section, json_object_get_string(e), json_type_object))
                        return false;
        }
        return true;
}

bool luks2_array_has(struct json_object *arr, const char *id) {
        size_t n = arr ? json_object_array_length(arr) : 0;
        for (size_t i = 0; i < n; i++) {
                struct json_object *e = json_object_array_get_idx(arr, i);
                if (json_object_is_type(e, json_type_string) && strcmp(json_object_get_string(e), id) == 0)
                        return true;
        }
        return false;
}

/* ---- Structural validation (what every LUKS2 reader must check) ----------------------------- */
static int validate_config(struct json_object *root, uint64_t hdr_size, uint64_t *ret_ks_size,
                           struct orion_error *err) {
        struct json_object *cfg = luks2_jget(root, "config", json_type_object), *v;
        uint64_t json_size, ks;

        if (!cfg || !luks2_ju64s(cfg, "json_size", &json_size) || !luks2_ju64s(cfg, "keyslots_size", &ks))
                return orion_error_set(err, EINVAL, "config section missing or malformed");
        if (json_size != hdr_size - LUKS2_HDR_BIN_LEN)
                return orion_error_set(err, EINVAL, "config.json_size %" PRIu64 " does not match the header size",
                                       json_size);
        if (ks % 4096 || ks > LUKS2_KEYSLOTS_SIZE_MAX)
                return orion_error_set(err, EINVAL, "bad config.keyslots_size %" PRIu64, ks);
        if (json_object_object_get_ex(cfg, "flags", &v)) {
                if (!json_object_is_type(v, json_type_array))
                        return orion_error_set(err, EINVAL, "config.flags is not an array");
                for (size_t i = 0; i < json_object_array_length(v); i++)
                        if (!json_object_is_type(json_object_array_get_idx(v, i), json_type_string))
                                return orion_error_set(err, EINVAL, "config.flags holds a non-string");
        }
        if (json_object_object_get_ex(cfg, "requirements", &v)) {
                struct json_object *m;
                if (!json_object_is_type(v, json_type_object))
                        return orion_error_set(err, EINVAL, "config.requirements is not an object");
                if (json_object_object_get_ex(v, "mandatory", &m)) {
                        if (!json_object_is_type(m, json_type_array))
                                return orion_error_set(err, EINVAL, "requirements.mandatory is not an array");
                        for (size_t i = 0; i < json_object_array_length(m); i++)
                                if (!json_object_is_type(json_object_array_get_idx(m, i), json_type_string))
                                        return orion_error_set(err, EINVAL, "requirements hold a non-string");
                }
        }
        *ret_ks_size = ks;
        return 0;
}

static int validate_keyslots(struct json_object *root, uint64_t hdr_size, uint64_t ks_size,
                             struct orion_error *err) {
        struct json_object *kss = luks2_jget(root, "keyslots", json_type_object);
        uint64_t off[LUKS2_OBJECTS_MAX], len[LUKS2_OBJECTS_MAX], end = 2 * hdr_size + ks_size;
        int n = 0;

        if (!kss)
                return orion_error_set(err, EINVAL, "keyslots section missing");
        json_object_object_foreach(kss, key, val) {
                struct json_object *area = luks2_jget(val, "area", json_type_object);
                uint32_t ksz;

                if (luks2_id_of(key) < 0 || !json_object_is_type(val, json_type_object) || !luks2_jstr(val, "type") ||
                    !luks2_ju32(val, "key_size", &ksz))
                        return orion_error_set(err, EINVAL, "keyslot '%s' is malformed", key);
                if (!area || !luks2_jstr(area, "type") || !luks2_ju64s(area, "offset", &off[n]) || !luks2_ju64s(area, "size", &len[n]))
                        return orion_error_set(err, EINVAL, "keyslot '%s' has a malformed area", key);
                if (off[n] < 2 * hdr_size || len[n] == 0 || off[n] > end || len[n] > end - off[n])
                        return orion_error_set(err, EINVAL, "keyslot '%s' area lies outside the keyslots area", key);
                for (int j = 0; j < n; j++)
                        if (off[n] < off[j] + len[j] && off[j] < off[n] + len[n])
                                return orion_error_set(err, EINVAL, "keyslot '%s' area overlaps another", key);
                n++;
        }
        return 0;
}

static int validate_segments(struct json_object *root, uint64_t areas_end, struct orion_error *err) {
        struct json_object *segs = luks2_jget(root, "segments", json_type_object);

        if (!segs)
                return orion_error_set(err, EINVAL, "segments section missing");
        json_object_object_foreach(segs, key, val) {
                uint64_t off, size = 0, tweak;
                uint32_t ss;
                const char *sz = luks2_jstr(val, "size"), *type = luks2_jstr(val, "type");

                if (luks2_id_of(key) < 0 || !type || !luks2_ju64s(val, "offset", &off) || !sz ||
                    (strcmp(sz, "dynamic") != 0 && !luks2_str_u64(sz, &size)))
                        return orion_error_set(err, EINVAL, "segment '%s' is malformed", key);
                if (off && off < areas_end)
                        return orion_error_set(err, EINVAL, "segment '%s' overlaps the metadata", key);
                if (strcmp(type, "crypt") != 0)
                        continue;
                if (!luks2_ju64s(val, "iv_tweak", &tweak) || !luks2_jstr(val, "encryption") || !luks2_ju32(val, "sector_size", &ss))
                        return orion_error_set(err, EINVAL, "crypt segment '%s' is malformed", key);
                if (ss < 512 || ss > 4096 || (ss & (ss - 1)) || size % ss || off % 512)
                        return orion_error_set(err, EINVAL, "crypt segment '%s' has a bad sector size or alignment",
                                               key);
        }
        return 0;
}

static int validate_refs(struct json_object *root, struct orion_error *err) {
        struct json_object *kss = luks2_jget(root, "keyslots", json_type_object);
        struct json_object *segs = luks2_jget(root, "segments", json_type_object);
        struct json_object *digests = luks2_jget(root, "digests", json_type_object);
        struct json_object *tokens = luks2_jget(root, "tokens", json_type_object);

        if (!digests || !tokens)
                return orion_error_set(err, EINVAL, "digests or tokens section missing");
        json_object_object_foreach(digests, key, val) {
                struct json_object *k = luks2_jget(val, "keyslots", json_type_array);
                struct json_object *s = luks2_jget(val, "segments", json_type_array);
                if (luks2_id_of(key) < 0 || !luks2_jstr(val, "type") || !k || !s || !array_refs_valid(k, kss) ||
                    !array_refs_valid(s, segs))
                        return orion_error_set(err, EINVAL, "digest '%s' is malformed", key);
        }
        json_object_object_foreach(tokens, tkey, tval) {
                struct json_object *k = luks2_jget(tval, "keyslots", json_type_array);
                if (luks2_id_of(tkey) < 0 || !luks2_jstr(tval, "type") || !k || !array_refs_valid(k, kss))
                        return orion_error_set(err, EINVAL, "token '%s' is malformed", tkey);
        }
        return 0;
}

int luks2_json_parse(const char *area, size_t len, uint64_t hdr_size, struct json_object **ret,
                     struct orion_error *err) {
        struct json_tokener *tok;
        struct json_object *root;
        uint64_t ks_size = 0;
        size_t used;
        int r;

        if (len == 0 || len > INT32_MAX || area[0] != '{')
                return orion_error_set(err, EINVAL, "JSON area does not start with '{'");
        tok = json_tokener_new();
        if (!tok)
                return -ENOMEM;
        root = json_tokener_parse_ex(tok, area, (int) len);
        used = (size_t) json_tokener_get_parse_end(tok);
        json_tokener_free(tok);
        if (!root)
                return orion_error_set(err, EINVAL, "JSON area does not parse");
        /* The text must be followed by NUL padding only, within the area. */
        r = -EINVAL;
        if (used >= len) {
                orion_error_set(err, EINVAL, "JSON area lacks its terminating NUL");
                goto fail;
        }
        for (size_t i = used; i < len; i++)
                if (area[i] != '\0') {
                        orion_error_set(err, EINVAL, "garbage after the JSON text at offset %zu", i);
                        goto fail;
                }
        if (!json_object_is_type(root, json_type_object)) {
                orion_error_set(err, EINVAL, "JSON metadata is not an object");
                goto fail;
        }
        if ((r = validate_config(root, hdr_size, &ks_size, err)) < 0 ||
            (r = validate_keyslots(root, hdr_size, ks_size, err)) < 0 ||
            (r = validate_segments(root, 2 * hdr_size + ks_size, err)) < 0 || (r = validate_refs(root, err)) < 0)
                goto fail;
        *ret = root;
        return 0;
fail:
        json_object_put(root);
        return r;
}

/* ---- What Orion supports: one crypt segment, no pending requirements -------------------- */
int luks2_hdr_validate(struct luks2_hdr *hdr, struct orion_error *err) {
        struct json_object *cfg = luks2_jget(hdr->jobj, "config", json_type_object);
        struct json_object *segs = luks2_jget(hdr->jobj, "segments", json_type_object);
        struct json_object *req = luks2_jget(cfg, "requirements", json_type_object);
        struct json_object *mand = luks2_jget(req, "mandatory", json_type_array), *seg = NULL;
        struct luks2_segment *s = &hdr->seg;
        const char *size, *enc;
        int n = 0;

        if (!luks2_ju64s(cfg, "keyslots_size", &hdr->keyslots_size))
                return orion_error_set(err, EINVAL, "config.keyslots_size missing");
        struct json_object *m0 = mand && json_object_array_length(mand) == 1 ? json_object_array_get_idx(mand, 0) : NULL;
        bool ours = m0 && json_object_is_type(m0, json_type_string) &&
                    strcmp(json_object_get_string(m0), LUKS2_AEAD_REQUIREMENT) == 0;
        struct json_object *integ;

        if (mand && json_object_array_length(mand) > 0 && !ours)
                return orion_error_set(err, ENOTSUP, "the header has requirements Orion does not implement (%s)",
                                       json_object_to_json_string_ext(mand, JSON_C_TO_STRING_PLAIN));
        json_object_object_foreach(segs, key, val) {
                seg = val;
                snprintf(s->id, sizeof(s->id), "%s", key);
                n++;
        }
        if (n != 1)
                return orion_error_set(err, ENOTSUP, "%d data segments (only one is supported; reencryption?)", n);
        if (strcmp(luks2_jstr(seg, "type"), "crypt") != 0)
                return orion_error_set(err, ENOTSUP, "segment type '%s' is not supported", luks2_jstr(seg, "type"));
        integ = luks2_jget(seg, "integrity", json_type_object);
        s->integrity[0] = '\0';
        if (integ && !ours)
                return orion_error_set(err, ENOTSUP, "segments with dm-integrity (cryptsetup's authenticated "
                                       "encryption) are not supported");
        if (ours) {
                const char *t = luks2_jstr(integ, "type");
                if (!t || strlen(t) >= sizeof(s->integrity))
                        return orion_error_set(err, EINVAL, "requirement %s without a valid segment integrity",
                                               LUKS2_AEAD_REQUIREMENT);
                snprintf(s->integrity, sizeof(s->integrity), "%s", t);
        }
        size = luks2_jstr(seg, "size");
        enc = luks2_jstr(seg, "encryption");
        if (!luks2_ju64s(seg, "offset", &s->offset) || !luks2_ju64s(seg, "iv_tweak", &s->iv_tweak) ||
            !luks2_ju32(seg, "sector_size", &s->sector_size) || !enc || strlen(enc) >= sizeof(s->cipher))
                return orion_error_set(err, EINVAL, "malformed data segment");
        if (strcmp(size, "dynamic") == 0)
                s->size = 0;
        else if (!luks2_str_u64(size, &s->size) || s->size == 0)
                return orion_error_set(err, EINVAL, "malformed data segment size");
        if (s->offset == 0)
                return orion_error_set(err, ENOTSUP, "detached headers (data offset 0) are not supported");
        snprintf(s->cipher, sizeof(s->cipher), "%s", enc);
        return 0;
}

/* ---- Binary header copies --------------------------------------------------------------- */
static int checksum(const char *alg, const uint8_t *bin, const uint8_t *json, size_t json_len,
                    uint8_t out[CSUM_LEN]) {
        int md = gcry_md_map_name(alg);
        unsigned dlen = md ? gcry_md_get_algo_dlen(md) : 0;
        gcry_md_hd_t h;
        uint8_t zero[CSUM_LEN] = { 0 };

        if (!md || dlen == 0 || dlen > CSUM_LEN || gcry_md_open(&h, md, 0))
                return -ENOTSUP;
        gcry_md_write(h, bin, OFF_CSUM);
        gcry_md_write(h, zero, CSUM_LEN);
        gcry_md_write(h, bin + OFF_CSUM + CSUM_LEN, LUKS2_HDR_BIN_LEN - OFF_CSUM - CSUM_LEN);
        gcry_md_write(h, json, json_len);
        memset(out, 0, CSUM_LEN);
        memcpy(out, gcry_md_read(h, md), dlen);
        gcry_md_close(h);
        return 0;
}

struct copy {
        enum luks2_copy_state state;
        uint8_t bin[LUKS2_HDR_BIN_LEN];
        struct json_object *jobj;
        uint64_t hdr_size, seqid;
        bool luks1;
        char why[160];
};

/* Read and check one copy at off. secondary: expect the SKUL magic and hdr_size == off. */
static void read_copy(const struct luks2_io *io, uint64_t off, bool secondary, struct copy *c) {
        struct orion_error e = { 0 };
        _cleanup_free_ uint8_t *json = NULL;
        uint8_t csum[CSUM_LEN];
        char alg[LUKS2_CSUM_ALG_LEN];
        size_t json_len;
        int r;

        memset(c, 0, sizeof(*c));
        c->state = LUKS2_COPY_MISSING;
        if (off + LUKS2_HDR_BIN_LEN > io->size)
                return;
        r = io->read(io->ctx, c->bin, LUKS2_HDR_BIN_LEN, off);
        if (r < 0) {
                c->state = LUKS2_COPY_IOERR;
                return;
        }
        if (memcmp(c->bin, secondary ? LUKS2_MAGIC_2ND : LUKS2_MAGIC_1ST, LUKS2_MAGIC_LEN) != 0)
                return;
        c->state = LUKS2_COPY_BAD;
        if (get_be(c->bin + OFF_VERSION, 2) != 2) {
                c->luks1 = !secondary && get_be(c->bin + OFF_VERSION, 2) == 1;
                snprintf(c->why, sizeof(c->why), "version %u", (unsigned) get_be(c->bin + OFF_VERSION, 2));
                return;
        }
        c->hdr_size = get_be(c->bin + OFF_HDR_SIZE, 8);
        c->seqid = get_be(c->bin + OFF_SEQID, 8);
        if (!valid_hdr_size(c->hdr_size) || get_be(c->bin + OFF_HDR_OFFSET, 8) != off ||
            (secondary && c->hdr_size != off)) {
                snprintf(c->why, sizeof(c->why), "bad size or offset fields");
                return;
        }
        if (off + c->hdr_size > io->size) {
                snprintf(c->why, sizeof(c->why), "truncated (device ends inside the header)");
                return;
        }
        json_len = c->hdr_size - LUKS2_HDR_BIN_LEN;
        json = malloc(json_len);
        if (!json || io->read(io->ctx, json, json_len, off + LUKS2_HDR_BIN_LEN) < 0) {
                c->state = json ? LUKS2_COPY_IOERR : LUKS2_COPY_BAD;
                return;
        }
        field_str(alg, c->bin + OFF_CSUM_ALG, sizeof(alg));
        if (checksum(alg, c->bin, json, json_len, csum) < 0) {
                snprintf(c->why, sizeof(c->why), "unknown checksum algorithm '%.31s'", alg);
                return;
        }
        if (memcmp(csum, c->bin + OFF_CSUM, CSUM_LEN) != 0) {
                snprintf(c->why, sizeof(c->why), "checksum mismatch");
                return;
        }
        r = luks2_json_parse((const char *) json, json_len, c->hdr_size, &c->jobj, &e);
        if (r < 0) {
                snprintf(c->why, sizeof(c->why), "%.150s", e.msg);
                return;
        }
        c->state = LUKS2_COPY_OK;
}

static void adopt_copy(struct luks2_hdr *hdr, struct copy *c) {
        hdr->hdr_size = c->hdr_size;
        hdr->seqid = c->seqid;
        field_str(hdr->label, c->bin + OFF_LABEL, LUKS2_LABEL_LEN);
        field_str(hdr->subsystem, c->bin + OFF_SUBSYSTEM, LUKS2_LABEL_LEN);
        field_str(hdr->csum_alg, c->bin + OFF_CSUM_ALG, LUKS2_CSUM_ALG_LEN);
        field_str(hdr->uuid, c->bin + OFF_UUID, LUKS2_UUID_LEN);
        hdr->jobj = TAKE_PTR(c->jobj);
}

int luks2_hdr_read(const struct luks2_io *io, struct luks2_hdr *hdr, struct orion_error *err) {
        struct copy *c = calloc(3, sizeof(*c)); /* primary, secondary, scratch */
        int r = 0;

        if (!c)
                return -ENOMEM;
        memset(hdr, 0, sizeof(*hdr));
        r = crypt_init();
        if (r < 0)
                goto out;
        read_copy(io, 0, false, &c[0]);
        c[1].state = LUKS2_COPY_MISSING;
        if (c[0].state == LUKS2_COPY_OK)
                read_copy(io, c[0].hdr_size, true, &c[1]);
        else /* the primary cannot tell where the secondary is: try every legal place */
                for (size_t i = 0; i < ELEMENTSOF(g_hdr2_offsets) && c[1].state != LUKS2_COPY_OK; i++) {
                        read_copy(io, g_hdr2_offsets[i], true, &c[2]);
                        /* keep the most telling failure: a damaged copy beats none */
                        if (c[2].state == LUKS2_COPY_OK || c[2].state == LUKS2_COPY_IOERR ||
                            (c[2].state == LUKS2_COPY_BAD && c[1].state == LUKS2_COPY_MISSING)) {
                                json_object_put(c[1].jobj);
                                c[1] = c[2];
                                c[2].jobj = NULL;
                        } else
                                json_object_put(TAKE_PTR(c[2].jobj));
                        if (c[1].state == LUKS2_COPY_IOERR)
                                break;
                }
        if (c[0].state == LUKS2_COPY_OK && c[1].state == LUKS2_COPY_OK && c[0].seqid != c[1].seqid)
                c[c[0].seqid > c[1].seqid ? 1 : 0].state = LUKS2_COPY_OBSOLETE;
        hdr->state[0] = c[0].state;
        hdr->state[1] = c[1].state;
        if (c[0].state == LUKS2_COPY_OK)
                adopt_copy(hdr, &c[0]);
        else if (c[1].state == LUKS2_COPY_OK)
                adopt_copy(hdr, &c[1]);
        else if (c[0].luks1)
                r = orion_error_set(err, ENOTSUP, "LUKS1 header: only LUKS2 is supported "
                                    "(cryptsetup convert --type luks2 upgrades it)");
        else if (c[0].state == LUKS2_COPY_IOERR || c[1].state == LUKS2_COPY_IOERR)
                r = orion_error_set(err, EIO, "I/O error reading the LUKS2 header");
        else if (c[0].state == LUKS2_COPY_MISSING && c[1].state == LUKS2_COPY_MISSING)
                r = orion_error_set(err, ENODEV, "no LUKS2 header found");
        else
                r = orion_error_set(err, EINVAL, "both LUKS2 header copies are damaged (primary: %s; secondary: %s)",
                                    c[0].state == LUKS2_COPY_MISSING ? "missing" : c[0].why,
                                    c[1].state == LUKS2_COPY_MISSING ? "missing" : c[1].why);
        if (r == 0 && c[0].state != LUKS2_COPY_OK)
                orion_warn("encrypt: primary LUKS2 header is %s (%s); using the secondary copy",
                           c[0].state == LUKS2_COPY_OBSOLETE ? "older than the secondary" : "damaged",
                           c[0].state == LUKS2_COPY_MISSING ? "missing" : c[0].why);
        else if (r == 0 && c[1].state != LUKS2_COPY_OK)
                orion_warn("encrypt: secondary LUKS2 header is %s (%s)",
                           c[1].state == LUKS2_COPY_OBSOLETE ? "older than the primary" : "damaged",
                           c[1].state == LUKS2_COPY_MISSING ? "missing" : c[1].why);
        if (r == 0) {
                r = luks2_hdr_validate(hdr, err);
                if (r < 0)
                        luks2_hdr_done(hdr);
        }
out:
        json_object_put(c[0].jobj);
        json_object_put(c[1].jobj);
        free(c);
        return r;
}

int luks2_hdr_encode(struct luks2_hdr *hdr, int copy, uint8_t *out) {
        size_t json_len = hdr->hdr_size - LUKS2_HDR_BIN_LEN;
        const char *text = json_object_to_json_string_ext(hdr->jobj,
                                                          JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
        uint8_t csum[CSUM_LEN];
        int r;

        if (!text)
                return -ENOMEM;
        if (strlen(text) >= json_len)
                return -ENOSPC;
        memset(out, 0, hdr->hdr_size);
        memcpy(out + OFF_MAGIC, copy ? LUKS2_MAGIC_2ND : LUKS2_MAGIC_1ST, LUKS2_MAGIC_LEN);
        put_be(out + OFF_VERSION, 2, 2);
        put_be(out + OFF_HDR_SIZE, 8, hdr->hdr_size);
        put_be(out + OFF_SEQID, 8, hdr->seqid);
        memcpy(out + OFF_LABEL, hdr->label, strnlen(hdr->label, LUKS2_LABEL_LEN - 1));
        memcpy(out + OFF_CSUM_ALG, hdr->csum_alg, strnlen(hdr->csum_alg, LUKS2_CSUM_ALG_LEN - 1));
        gcry_create_nonce(out + OFF_SALT, SALT_LEN); /* a fresh salt per copy and write */
        memcpy(out + OFF_UUID, hdr->uuid, strnlen(hdr->uuid, LUKS2_UUID_LEN - 1));
        memcpy(out + OFF_SUBSYSTEM, hdr->subsystem, strnlen(hdr->subsystem, LUKS2_LABEL_LEN - 1));
        put_be(out + OFF_HDR_OFFSET, 8, copy ? hdr->hdr_size : 0);
        memcpy(out + LUKS2_HDR_BIN_LEN, text, strlen(text));
        r = checksum(hdr->csum_alg, out, out + LUKS2_HDR_BIN_LEN, json_len, csum);
        if (r < 0)
                return r;
        memcpy(out + OFF_CSUM, csum, CSUM_LEN);
        return 0;
}

int luks2_hdr_write_copy(const struct luks2_io *io, struct luks2_hdr *hdr, int copy) {
        _cleanup_free_ uint8_t *buf = malloc(hdr->hdr_size);
        int r;

        if (!buf)
                return -ENOMEM;
        if (!io->write)
                return -EROFS;
        r = luks2_hdr_encode(hdr, copy, buf);
        if (r < 0)
                return r;
        return io->write(io->ctx, buf, hdr->hdr_size, copy ? hdr->hdr_size : 0);
}

int luks2_hdr_write(const struct luks2_io *io, struct luks2_hdr *hdr, struct orion_error *err) {
        int r;

        r = luks2_hdr_validate(hdr, err);
        if (r < 0)
                return r;
        hdr->seqid++;
        /* Both copies carry the new seqid: a crash between the writes leaves one copy newer,
         * and the reader takes the newer valid one. */
        for (int copy = 0; copy < 2; copy++) {
                r = luks2_hdr_write_copy(io, hdr, copy);
                if (r == -ENOSPC)
                        return orion_error_set(err, ENOSPC, "the JSON metadata no longer fits the %" PRIu64
                                               "-byte header", hdr->hdr_size);
                if (r < 0)
                        return orion_error_set(err, -r, "cannot write the %s LUKS2 header: %s",
                                               copy ? "secondary" : "primary", strerror(-r));
                if (io->flush && (r = io->flush(io->ctx)) < 0)
                        return orion_error_set(err, -r, "flush after the header write failed: %s", strerror(-r));
        }
        hdr->state[0] = hdr->state[1] = LUKS2_COPY_OK;
        return 0;
}

void luks2_hdr_done(struct luks2_hdr *hdr) {
        json_object_put(hdr->jobj);
        hdr->jobj = NULL;
}

uint64_t luks2_hdr_areas_size(const struct luks2_hdr *hdr) {
        return 2 * hdr->hdr_size + hdr->keyslots_size;
}
