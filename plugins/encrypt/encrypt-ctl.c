/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Management verbs of the encrypt layer (`orionctl encrypt VERB NODE ...`): add-key,
 * remove-key, change-key, dump, header-backup, header-restore. Header edits are made on a
 * copy and adopted only once both header copies are on disk. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "common/cleanup.h"
#include "encrypt.h"

static inline void json_object_putp(struct json_object **o) {
        json_object_put(*o);
}

/* ---- Arguments ------------------------------------------------------------------------------ */
/* 0 absent, 1 set, -EINVAL malformed. Accepts JSON numbers and decimal strings. */
static int arg_u32(struct json_object *args, const char *name, uint32_t *ret, struct orion_error *err) {
        struct json_object *v;
        uint64_t x;

        if (!args || !json_object_object_get_ex(args, name, &v))
                return 0;
        if (json_object_is_type(v, json_type_int)) {
                int64_t i = json_object_get_int64(v);
                if (i < 0 || i > UINT32_MAX)
                        return orion_error_set(err, EINVAL, "%s: %" PRId64 " is out of range", name, i);
                *ret = (uint32_t) i;
                return 1;
        }
        if (!json_object_is_type(v, json_type_string) || !luks2_str_u64(json_object_get_string(v), &x) ||
            x > UINT32_MAX)
                return orion_error_set(err, EINVAL, "%s: not a number", name);
        *ret = (uint32_t) x;
        return 1;
}

static bool arg_bool(struct json_object *args, const char *name) {
        struct json_object *v;
        const char *s;

        if (!args || !json_object_object_get_ex(args, name, &v))
                return false;
        if (json_object_is_type(v, json_type_boolean))
                return json_object_get_boolean(v);
        s = json_object_get_string(v);
        return s && (!strcmp(s, "1") || !strcmp(s, "on") || !strcmp(s, "yes") || !strcmp(s, "true"));
}

/* Positional argument i ("argv" array), or NULL. */
static const char *arg_pos(struct json_object *args, size_t i) {
        struct json_object *argv = luks2_jget(args, "argv", json_type_array), *v;
        if (!argv || i >= json_object_array_length(argv))
                return NULL;
        v = json_object_array_get_idx(argv, i);
        return json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

int encrypt_pbkdf_from_args(struct json_object *args, struct luks2_pbkdf_params *pp, struct orion_error *err) {
        const char *kdf = luks2_jstr(args, "pbkdf");
        static const char *const names[] = { "iter-time", "pbkdf-memory", "pbkdf-parallel", "pbkdf-force-iterations" };
        uint32_t *dst[] = { &pp->time_ms, &pp->max_memory, &pp->parallel, &pp->iterations };
        int r;

        memset(pp, 0, sizeof(*pp));
        pp->type = LUKS2_KDF_ARGON2ID;
        if (kdf && !strcmp(kdf, "pbkdf2"))
                pp->type = LUKS2_KDF_PBKDF2;
        else if (kdf && !strcmp(kdf, "argon2i"))
                pp->type = LUKS2_KDF_ARGON2I;
        else if (kdf && strcmp(kdf, "argon2id") != 0)
                return orion_error_set(err, EINVAL, "pbkdf must be argon2id, argon2i or pbkdf2");
        pp->hash = luks2_jstr(args, "hash");
        for (size_t i = 0; i < ELEMENTSOF(names); i++)
                if ((r = arg_u32(args, names[i], dst[i], err)) < 0)
                        return r;
        if (pp->iterations)
                pp->memory = pp->max_memory;
        return 0;
}

/* ---- Helpers -------------------------------------------------------------------------------- */
/* Adopt an edited header: write both copies, then make it the node's. */
static int commit(struct encrypt *e, struct luks2_hdr *edited, struct orion_error *err) {
        int r = luks2_hdr_write(&e->io, edited, err);
        if (r < 0) {
                luks2_hdr_done(edited);
                return r;
        }
        luks2_hdr_done(&e->hdr);
        e->hdr = *edited;
        orion_bdev_set_health(e->self, ORION_HEALTH_OK, NULL); /* both copies are good again */
        return 0;
}

/* The passphrase named by prefix ("" or "new-") in args, or positional argv[pos] as a key
 * file. Required. */
static int need_passphrase(struct json_object *args, const char *prefix, int pos, uint8_t **pass, size_t *len,
                           struct orion_error *err) {
        int r = encrypt_passphrase_from_args(args, prefix, pass, len, err);
        const char *file;

        if (r != 0)
                return r < 0 ? r : 0;
        if (pos >= 0 && (file = arg_pos(args, (size_t) pos)))
                return encrypt_read_key_file(file, pass, len, err);
        return orion_error_set(err, EINVAL, "give %spassphrase= or %skey-file=", prefix, prefix);
}

/* `orionctl --passphrase-prompt` sends what it read as "passphrase". For add-key and
 * change-key without any new-* argument, that prompted passphrase is the new one (the old
 * one then comes from key-file=). Returns a reference to the args to use. */
static struct json_object *prompt_is_new(struct json_object *args) {
        struct json_object *copy = NULL, *v;

        if (!args || luks2_jget(args, "new-passphrase", json_type_string) || arg_pos(args, 0) ||
            json_object_object_get_ex(args, "new-key-file", &v) || !json_object_object_get_ex(args, "passphrase", &v) ||
            json_object_deep_copy(args, &copy, NULL) < 0 || !copy)
                return json_object_get(args);
        json_object_object_add(copy, "new-passphrase", json_object_get(v));
        json_object_object_del(copy, "passphrase");
        return copy;
}

/* Unlock with a passphrase from args; the key must be this node's volume key. Returns the slot. */
static int check_passphrase(struct encrypt *e, const uint8_t *pass, size_t len, int slot, struct orion_error *err) {
        uint8_t *vk = secure_alloc(LUKS2_KEY_MAX);
        size_t vk_len = 0;
        int r;

        if (!vk)
                return orion_error_set(err, ENOMEM, "out of memory");
        r = luks2_unlock(&e->io, &e->hdr, slot, pass, len, vk, &vk_len, err);
        if (r >= 0 && (vk_len != e->vk_len || memcmp(vk, e->vk, vk_len) != 0))
                r = orion_error_set(err, EINVAL, "the header no longer matches the open volume");
        secure_free(vk);
        return r;
}

/* ---- Verbs ---------------------------------------------------------------------------------- */
/* add-key new-key-file=F | new-passphrase=P [key-file=|passphrase= to check an existing key]
 * [keyslot=N] [pbkdf=...]. Without an existing passphrase the open node's key is used: the
 * control socket is root-only, and whoever holds it can read the plaintext anyway. */
static int ctl_add_key(struct encrypt *e, struct json_object *given, struct json_object **reply,
                       struct orion_error *err) {
        _cleanup_(json_object_putp) struct json_object *args = prompt_is_new(given);
        struct luks2_pbkdf_params pp;
        struct luks2_hdr edited;
        uint8_t *old = NULL, *pass = NULL;
        size_t old_len = 0, len = 0;
        uint32_t slot;
        int id, r;

        r = encrypt_pbkdf_from_args(args, &pp, err);
        if (r < 0)
                return r;
        r = need_passphrase(args, "new-", 0, &pass, &len, err);
        if (r < 0)
                return r;
        r = encrypt_passphrase_from_args(args, "", &old, &old_len, err);
        if (r > 0)
                r = check_passphrase(e, old, old_len, -1, err);
        if (r < 0)
                goto out;
        r = arg_u32(args, "keyslot", &slot, err);
        if (r < 0)
                goto out;
        id = r ? (int) slot : luks2_keyslot_free_id(&e->hdr);
        if (id < 0 || id >= LUKS2_OBJECTS_MAX) {
                r = orion_error_set(err, ENOSPC, "no free keyslot (0..31)");
                goto out;
        }
        r = luks2_hdr_clone(&e->hdr, &edited);
        if (r < 0)
                goto out;
        r = luks2_keyslot_create(&e->io, &edited, id, pass, len, e->vk, e->vk_len, &pp, err);
        if (r < 0) {
                luks2_hdr_done(&edited);
                goto out;
        }
        r = commit(e, &edited, err);
        if (r >= 0) {
                *reply = json_object_new_object();
                json_object_object_add(*reply, "keyslot", json_object_new_int(id));
                orion_info("encrypt '%s': added keyslot %d", orion_bdev_name(e->self), id);
        }
out:
        secure_free(pass);
        secure_free(old);
        return r;
}

/* remove-key keyslot=N | passphrase=P | key-file=F [force=on to remove the last one] */
static int ctl_remove_key(struct encrypt *e, struct json_object *args, struct json_object **reply,
                          struct orion_error *err) {
        struct luks2_keyslot ks;
        struct luks2_hdr edited;
        uint8_t *pass = NULL;
        size_t len = 0;
        uint32_t slot;
        int ids[LUKS2_OBJECTS_MAX], id, r;
        const char *pos = arg_pos(args, 0);
        uint64_t v;

        r = arg_u32(args, "keyslot", &slot, err);
        if (r == 0 && pos && luks2_str_u64(pos, &v) && v < LUKS2_OBJECTS_MAX) {
                slot = (uint32_t) v;
                r = 1;
        }
        if (r < 0)
                return r;
        if (r > 0)
                id = (int) slot;
        else {
                r = need_passphrase(args, "", -1, &pass, &len, err);
                if (r < 0)
                        return r;
                id = check_passphrase(e, pass, len, -1, err);
                secure_free(pass);
                if (id < 0)
                        return id;
        }
        if (!luks2_keyslot_exists(&e->hdr, id))
                return orion_error_set(err, ENOENT, "keyslot %d does not exist", id);
        if (luks2_keyslot_list(&e->hdr, ids) == 1 && !arg_bool(args, "force"))
                return orion_error_set(err, EBUSY, "keyslot %d is the last one: without it the data cannot be "
                                       "unlocked again (force=on to remove it anyway)", id);
        r = luks2_keyslot_get(&e->hdr, id, &ks, NULL);
        r = luks2_hdr_clone(&e->hdr, &edited);
        if (r < 0)
                return orion_error_set(err, ENOMEM, "out of memory");
        luks2_keyslot_remove_json(&edited, id);
        r = commit(e, &edited, err);
        if (r < 0)
                return r;
        /* The header no longer names the area: now destroy the key material in it. */
        if (ks.area_size && luks2_area_wipe(&e->io, ks.area_offset, ks.area_size) < 0)
                orion_warn("encrypt '%s': could not wipe the area of keyslot %d", orion_bdev_name(e->self), id);
        *reply = json_object_new_object();
        json_object_object_add(*reply, "removed", json_object_new_int(id));
        orion_info("encrypt '%s': removed keyslot %d", orion_bdev_name(e->self), id);
        return 0;
}

/* change-key passphrase=|key-file= (old) new-passphrase=|new-key-file= [pbkdf=...]: the new
 * key goes to a fresh area first, then the header swaps it in under the old keyslot number. */
static int ctl_change_key(struct encrypt *e, struct json_object *given, struct json_object **reply,
                          struct orion_error *err) {
        _cleanup_(json_object_putp) struct json_object *args = prompt_is_new(given);
        struct luks2_pbkdf_params pp;
        struct luks2_keyslot ks;
        struct luks2_hdr edited;
        uint8_t *old = NULL, *pass = NULL;
        size_t old_len = 0, len = 0;
        int id, tmp, r;

        r = encrypt_pbkdf_from_args(args, &pp, err);
        if (r < 0)
                return r;
        r = need_passphrase(args, "", -1, &old, &old_len, err);
        if (r >= 0)
                r = need_passphrase(args, "new-", 0, &pass, &len, err);
        if (r < 0)
                goto out;
        r = id = check_passphrase(e, old, old_len, -1, err);
        if (r < 0)
                goto out;
        tmp = luks2_keyslot_free_id(&e->hdr);
        if (tmp < 0) {
                r = orion_error_set(err, ENOSPC, "no free keyslot to stage the new key in");
                goto out;
        }
        (void) luks2_keyslot_get(&e->hdr, id, &ks, NULL);
        r = luks2_hdr_clone(&e->hdr, &edited);
        if (r < 0)
                goto out;
        r = luks2_keyslot_create(&e->io, &edited, tmp, pass, len, e->vk, e->vk_len, &pp, err);
        if (r >= 0) {
                luks2_keyslot_remove_json(&edited, id);
                r = luks2_keyslot_move_json(&edited, tmp, id);
                if (r < 0)
                        orion_error_set(err, -r, "cannot renumber the new keyslot");
        }
        if (r < 0) {
                luks2_hdr_done(&edited);
                goto out;
        }
        r = commit(e, &edited, err);
        if (r < 0)
                goto out;
        if (luks2_area_wipe(&e->io, ks.area_offset, ks.area_size) < 0)
                orion_warn("encrypt '%s': could not wipe the old area of keyslot %d", orion_bdev_name(e->self), id);
        *reply = json_object_new_object();
        json_object_object_add(*reply, "keyslot", json_object_new_int(id));
        orion_info("encrypt '%s': changed the passphrase of keyslot %d", orion_bdev_name(e->self), id);
out:
        secure_free(pass);
        secure_free(old);
        return r;
}

static const char *file_arg(struct json_object *args) {
        const char *f = luks2_jstr(args, "file");
        return f ? f : arg_pos(args, 0);
}

/* header-backup FILE: the metadata and keyslot areas, to a new file (mode 0600), like
 * cryptsetup luksHeaderBackup; cryptsetup luksHeaderRestore accepts it. */
static int ctl_header_backup(struct encrypt *e, struct json_object *args, struct json_object **reply,
                             struct orion_error *err) {
        const char *path = file_arg(args);
        uint64_t len = luks2_hdr_areas_size(&e->hdr);
        _cleanup_free_ uint8_t *buf = NULL;
        _cleanup_close_ int fd = -1;
        int r;

        if (!path)
                return orion_error_set(err, EINVAL, "header-backup needs a file name");
        buf = malloc(len);
        if (!buf)
                return orion_error_set(err, ENOMEM, "out of memory");
        r = e->io.read(e->io.ctx, buf, len, 0);
        if (r < 0)
                return orion_error_set(err, -r, "cannot read the header areas");
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0)
                return orion_error_set(err, errno, "cannot create '%s': %s", path, strerror(errno));
        for (uint64_t done = 0; done < len;) {
                ssize_t n = write(fd, buf + done, len - done);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0) {
                        r = n < 0 ? errno : EIO;
                        (void) unlink(path);
                        return orion_error_set(err, r, "cannot write '%s'", path);
                }
                done += (uint64_t) n;
        }
        if (fsync(fd) < 0)
                return orion_error_set(err, errno, "cannot sync '%s'", path);
        *reply = json_object_new_object();
        json_object_object_add(*reply, "file", json_object_new_string(path));
        json_object_object_add(*reply, "bytes", json_object_new_uint64(len));
        return 0;
}

struct mem_io {
        const uint8_t *buf;
        size_t len;
};

static int mem_read(void *ctx, void *buf, size_t len, uint64_t off) {
        struct mem_io *m = ctx;
        if (off > m->len || len > m->len - off)
                return -EIO;
        memcpy(buf, m->buf + off, len);
        return 0;
}

static int read_whole(const char *path, uint64_t max, uint8_t **ret, size_t *ret_len, struct orion_error *err) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        struct stat st;
        size_t len = 0;
        uint8_t *buf;

        if (fd < 0)
                return orion_error_set(err, errno, "cannot open '%s': %s", path, strerror(errno));
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size <= 0 || (uint64_t) st.st_size > max)
                return orion_error_set(err, EINVAL, "'%s' is not a header backup (size)", path);
        buf = malloc((size_t) st.st_size);
        if (!buf)
                return orion_error_set(err, ENOMEM, "out of memory");
        while (len < (size_t) st.st_size) {
                ssize_t n = read(fd, buf + len, (size_t) st.st_size - len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0) {
                        free(buf);
                        return orion_error_set(err, EIO, "cannot read '%s'", path);
                }
                len += (size_t) n;
        }
        *ret = buf;
        *ret_len = len;
        return 0;
}

/* header-restore FILE: only a backup of this very volume (its digest accepts the open key
 * and the data segment is the same), so a restore can never make the open data unreadable. */
static int ctl_header_restore(struct encrypt *e, struct json_object *args, struct json_object **reply,
                              struct orion_error *err) {
        const char *path = file_arg(args);
        _cleanup_free_ uint8_t *buf = NULL;
        struct luks2_hdr nh, disk;
        struct luks2_digest d;
        struct mem_io m;
        struct luks2_io io = { .ctx = &m, .read = mem_read };
        size_t len = 0;
        int r;

        if (!path)
                return orion_error_set(err, EINVAL, "header-restore needs a file name");
        if (!e->io.write)
                return orion_error_set(err, EROFS, "the child is read-only");
        r = read_whole(path, 2 * (uint64_t) LUKS2_HDR_MAX + LUKS2_KEYSLOTS_SIZE_MAX, &buf, &len, err);
        if (r < 0)
                return r;
        m = (struct mem_io) { buf, len };
        io.size = len;
        r = luks2_hdr_read(&io, &nh, err);
        if (r < 0)
                return r;
        if (luks2_hdr_areas_size(&nh) > len || luks2_hdr_areas_size(&nh) > e->data_offset ||
            nh.seg.offset != e->data_offset || nh.seg.sector_size != e->sector_size ||
            nh.seg.iv_tweak != e->iv_tweak || strcmp(nh.seg.cipher, e->cipher) != 0 ||
            luks2_digest_get(&nh, &d, NULL) < 0 || luks2_digest_verify(&d, e->vk, e->vk_len) < 0) {
                luks2_hdr_done(&nh);
                return orion_error_set(err, EINVAL, "'%s' is not a header of this volume", path);
        }
        r = e->io.write(e->io.ctx, buf, luks2_hdr_areas_size(&nh), 0);
        if (r >= 0)
                r = e->io.flush(e->io.ctx);
        luks2_hdr_done(&nh);
        if (r < 0)
                return orion_error_set(err, -r, "writing the header failed: %s", strerror(-r));
        r = luks2_hdr_read(&e->io, &disk, err);
        if (r < 0)
                return r;
        luks2_hdr_done(&e->hdr);
        e->hdr = disk;
        *reply = json_object_new_object();
        json_object_object_add(*reply, "restored", json_object_new_string(path));
        orion_info("encrypt '%s': header restored from '%s'", orion_bdev_name(e->self), path);
        return 0;
}

/* cryptsetup may have changed the header behind our back (luksAddKey on the image): take
 * the disk's newer header if it still describes this volume, so that our next write keeps
 * its changes. */
static void refresh(struct encrypt *e) {
        struct orion_error err = { 0 };
        struct luks2_digest d;
        struct luks2_hdr disk;

        if (luks2_hdr_read(&e->io, &disk, &err) < 0)
                return; /* unreadable now: ours is the good copy, a write repairs the disk */
        if (disk.seqid == e->hdr.seqid && strcmp(disk.uuid, e->hdr.uuid) == 0) {
                e->hdr.state[0] = disk.state[0];
                e->hdr.state[1] = disk.state[1];
                luks2_hdr_done(&disk);
                return;
        }
        if (disk.seg.offset != e->data_offset || disk.seg.sector_size != e->sector_size ||
            disk.seg.iv_tweak != e->iv_tweak || strcmp(disk.seg.cipher, e->cipher) != 0 ||
            luks2_digest_get(&disk, &d, NULL) < 0 || luks2_digest_verify(&d, e->vk, e->vk_len) < 0) {
                orion_warn("encrypt '%s': the header on disk no longer matches the open volume; keeping ours",
                           orion_bdev_name(e->self));
                luks2_hdr_done(&disk);
                return;
        }
        orion_info("encrypt '%s': header changed on disk (epoch %" PRIu64 " -> %" PRIu64 "), reloaded",
                   orion_bdev_name(e->self), e->hdr.seqid, disk.seqid);
        luks2_hdr_done(&e->hdr);
        e->hdr = disk;
}

static int ctl_locked(struct encrypt *e, const char *verb, struct json_object *args, struct json_object **reply,
                      struct orion_error *err) {
        refresh(e);
        if (!strcmp(verb, "dump")) {
                *reply = luks2_hdr_dump(&e->hdr);
                return 0;
        }
        if (!strcmp(verb, "add-key"))
                return ctl_add_key(e, args, reply, err);
        if (!strcmp(verb, "remove-key"))
                return ctl_remove_key(e, args, reply, err);
        if (!strcmp(verb, "change-key"))
                return ctl_change_key(e, args, reply, err);
        if (!strcmp(verb, "header-backup"))
                return ctl_header_backup(e, args, reply, err);
        if (!strcmp(verb, "header-restore"))
                return ctl_header_restore(e, args, reply, err);
        return orion_error_set(err, EOPNOTSUPP, "encrypt: unknown verb '%s' (add-key, remove-key, change-key, dump, "
                               "header-backup, header-restore)", verb);
}

int encrypt_ctl(struct orion_bdev *b, const char *verb, struct json_object *args, struct json_object **reply,
                struct orion_error *err) {
        struct encrypt *e = orion_bdev_priv(b);
        int r;

        pthread_mutex_lock(&e->meta_lock);
        r = ctl_locked(e, verb, args, reply, err);
        pthread_mutex_unlock(&e->meta_lock);
        return r;
}
