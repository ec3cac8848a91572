/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* `encrypt` layer: LUKS2 full-disk encryption (aes-xts-plain64 and friends) over one child,
 * compatible with cryptsetup both ways. Open, the data path, format and inspect live here;
 * the management verbs in encrypt-ctl.c; the on-disk format in luks2-*.c. */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "common/cleanup.h"
#include "encrypt.h"

/* Requests are en/decrypted in pieces of this size, each right after (reads) or before
 * (writes) its child I/O, so the cipher works on data still in the CPU cache: about 15%
 * faster than whole 1 MiB requests over a memory node. */
#define PIECE (256u << 10)
/* At most this many shares of one request run concurrently. */
#define SPLIT_MAX 8

/* ---- The child as metadata device ---------------------------------------------------------- */
static int child_read(void *ctx, void *buf, size_t len, uint64_t off) {
        return orion_bdev_pread(ctx, buf, len, off, 0);
}

static int child_write(void *ctx, const void *buf, size_t len, uint64_t off) {
        return orion_bdev_pwrite(ctx, buf, len, off, 0);
}

static int child_flush(void *ctx) {
        return orion_bdev_flush(ctx, 0);
}

void encrypt_child_io(struct orion_bdev *child, struct luks2_io *io) {
        bool ro = orion_bdev_caps(child) & ORION_CAP_READONLY;
        *io = (struct luks2_io) { .ctx = child, .size = orion_bdev_size(child), .read = child_read,
                                  .write = ro ? NULL : child_write, .flush = child_flush };
}

/* ---- Passphrases ---------------------------------------------------------------------------- */
int encrypt_read_key_file(const char *path, uint8_t **ret, size_t *ret_len, struct orion_error *err) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        struct stat st;
        uint8_t *buf;
        size_t len = 0;

        if (fd < 0)
                return orion_error_set(err, errno, "cannot open key file '%s': %s", path, strerror(errno));
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
                return orion_error_set(err, EINVAL, "key file '%s' is not a regular file", path);
        if (st.st_size <= 0 || (uint64_t) st.st_size > LUKS2_PASSPHRASE_MAX)
                return orion_error_set(err, EINVAL, "key file '%s' is empty or larger than 8 MiB", path);
        buf = secure_alloc((size_t) st.st_size);
        if (!buf)
                return orion_error_set(err, ENOMEM, "out of memory");
        /* The whole file is the passphrase, newlines included, as with cryptsetup --key-file. */
        while (len < (size_t) st.st_size) {
                ssize_t n = read(fd, buf + len, (size_t) st.st_size - len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0) {
                        int e = n < 0 ? errno : EIO;
                        secure_free(buf);
                        return orion_error_set(err, e, "cannot read key file '%s'", path);
                }
                len += (size_t) n;
        }
        *ret = buf;
        *ret_len = len;
        return 0;
}

static int passphrase_copy(const char *s, uint8_t **ret, size_t *ret_len, struct orion_error *err) {
        size_t len = strlen(s);
        if (len == 0 || len > LUKS2_PASSPHRASE_MAX)
                return orion_error_set(err, EINVAL, "empty or oversized passphrase");
        *ret = secure_alloc(len);
        if (!*ret)
                return orion_error_set(err, ENOMEM, "out of memory");
        memcpy(*ret, s, len);
        *ret_len = len;
        return 0;
}

/* orionctl turns key=value words into typed JSON ("1234" becomes a number): take any scalar. */
static const char *scalar_text(struct json_object *args, const char *key) {
        struct json_object *v;

        if (!args || !json_object_object_get_ex(args, key, &v) || json_object_is_type(v, json_type_object) ||
            json_object_is_type(v, json_type_array) || json_object_is_type(v, json_type_null))
                return NULL;
        return json_object_get_string(v);
}

int encrypt_passphrase_from_args(struct json_object *args, const char *prefix, uint8_t **ret, size_t *ret_len,
                                 struct orion_error *err) {
        char k1[32], k2[32];
        const char *pass, *file;
        int r;

        snprintf(k1, sizeof(k1), "%spassphrase", prefix);
        snprintf(k2, sizeof(k2), "%skey-file", prefix);
        pass = scalar_text(args, k1);
        file = scalar_text(args, k2);
        if (pass && file)
                return orion_error_set(err, EINVAL, "give either %s or %s, not both", k1, k2);
        if (pass)
                r = passphrase_copy(pass, ret, ret_len, err);
        else if (file)
                r = encrypt_read_key_file(file, ret, ret_len, err);
        else
                return 0;
        return r < 0 ? r : 1;
}

static int passphrase_from_params(const struct orion_params *p, struct json_object *args, uint8_t **ret,
                                  size_t *ret_len, struct orion_error *err) {
        const char *file = orion_param_str(p, "key-file"), *pass = orion_param_str(p, "passphrase");

        if (!pass)
                pass = scalar_text(args, "passphrase");
        if (file && pass)
                return orion_error_set(err, EINVAL, "encrypt: give either key-file= or a passphrase, not both");
        if (file)
                return encrypt_read_key_file(file, ret, ret_len, err);
        if (pass)
                return passphrase_copy(pass, ret, ret_len, err);
        return orion_error_set(err, EINVAL, "encrypt: key-file= (or a passphrase from orionctl) is required");
}

/* ---- Cipher handle pool --------------------------------------------------------------------- */
static struct crypt_ctx *ctx_get(struct encrypt *e) {
        struct crypt_ctx *c;

        pthread_mutex_lock(&e->pool_lock);
        c = e->free_ctx;
        if (c)
                e->free_ctx = c->next;
        pthread_mutex_unlock(&e->pool_lock);
        if (c)
                return c;
        c = calloc(1, sizeof(*c));
        if (!c)
                return NULL;
        if ((e->aead ? crypt_aead_open(e->cipher, e->integrity, e->vk, e->vk_len, &c->hd)
                     : crypt_cipher_open(e->cipher, e->vk, e->vk_len, &c->hd)) < 0) {
                free(c);
                return NULL;
        }
        return c;
}

static void ctx_put(struct encrypt *e, struct crypt_ctx *c) {
        pthread_mutex_lock(&e->pool_lock);
        c->next = e->free_ctx;
        e->free_ctx = c;
        pthread_mutex_unlock(&e->pool_lock);
}

static int ctx_bounce(struct crypt_ctx *c, size_t len) {
        if (c->bounce_len >= len)
                return 0;
        free(c->bounce);
        c->bounce = orion_alloc_aligned(len);
        c->bounce_len = c->bounce ? len : 0;
        return c->bounce ? 0 : -ENOMEM;
}

/* plain64 IV of the sector at byte off of the segment: counted in 512-byte units even for
 * 4096-byte sectors, as cryptsetup does for LUKS2. */
static uint64_t iv_of(const struct encrypt *e, uint64_t off) {
        return e->iv_tweak + off / 512;
}

/* ---- Data path ------------------------------------------------------------------------------ */
/* A read decrypts straight out of the child's memory (orion_bdev_read_view) into the caller's
 * buffer: the ciphertext is read once by the cipher and the plaintext written once, with no
 * copy in between (over a memory node, 1 MiB reads went from about 3900 to 5000-6700 MB per
 * CPU-second against a copy into the buffer and decryption in place). Children without their
 * own view give pieces of a buffer. */
struct read_view {
        struct sector_view v;   /* first: view_sectors gets it back */
        struct encrypt *e;
        gcry_cipher_hd_t hd;
        uint8_t *dst;           /* next plaintext byte */
        uint64_t off;           /* its segment offset */
};

/* Decrypt whole sectors from in (NULL: ciphertext of zeroes, as the child reads) to rv->dst. */
static int view_sectors(struct sector_view *v, const uint8_t *in, uint64_t n) {
        struct read_view *rv = (struct read_view *) v;
        struct encrypt *e = rv->e;
        int r;

        if (!in)
                memset(rv->dst, 0, n);
        r = crypt_sectors(rv->hd, false, rv->dst, in ? in : rv->dst, n, e->sector_size, iv_of(e, rv->off),
                          e->sector_size / 512);
        rv->dst += n;
        rv->off += n;
        return r;
}

int sector_view_piece(void *arg, const void *data, uint64_t n) {
        struct sector_view *v = arg;
        uint32_t ss = v->sector_size;
        const uint8_t *p = data;
        int r = 0;

        while (n && r >= 0) {
                if (v->have || n < ss) {
                        /* A sector split across pieces is gathered first. */
                        uint64_t take = MIN(n, (uint64_t) (ss - v->have));
                        if (p)
                                memcpy(v->carry + v->have, p, take);
                        else
                                memset(v->carry + v->have, 0, take);
                        v->have += (uint32_t) take;
                        n -= take;
                        p = p ? p + take : NULL;
                        if (v->have == ss) {
                                v->have = 0;
                                r = v->sectors(v, v->carry, ss);
                        }
                        continue;
                }
                uint64_t whole = ALIGN_DOWN(n, (uint64_t) ss);
                r = v->sectors(v, p, whole);
                n -= whole;
                p = p ? p + whole : NULL;
        }
        return r;
}

static int read_decrypted(struct encrypt *e, uint8_t *buf, uint64_t len, uint64_t off, uint32_t flags) {
        struct crypt_ctx *c = ctx_get(e);
        int r = 0;

        if (!c)
                return -ENOMEM;
        if (e->sector_size > sizeof(((struct sector_view *) NULL)->carry)) {
                ctx_put(e, c);
                return -EINVAL;
        }
        for (uint64_t done = 0; done < len && r >= 0; done += PIECE) {
                uint64_t n = MIN(len - done, (uint64_t) PIECE);
                if (e->aead) {
                        r = aead_read(e, c, buf + done, (size_t) n, off + done, flags);
                        continue;
                }
                struct read_view rv = { .v = { .sector_size = e->sector_size, .sectors = view_sectors },
                                        .e = e, .hd = c->hd, .dst = buf + done, .off = off + done };
                r = orion_bdev_read_view(e->child, n, e->data_offset + off + done, sector_view_piece, &rv.v);
                if (r >= 0 && rv.v.have)
                        r = -EIO; /* the child's pieces did not add up to whole sectors */
        }
        ctx_put(e, c);
        if (r < 0)
                return r;
        atomic_fetch_add(&e->bytes_decrypted, len);
        return 0;
}

/* Encrypt from src (NULL: zeros) into the handle's bounce buffer and write, piece by piece:
 * the caller's buffer is never modified, and is read once (no copy before encrypting). */
static int write_encrypted(struct encrypt *e, const uint8_t *src, uint64_t len, uint64_t off, uint32_t flags) {
        struct crypt_ctx *c = ctx_get(e);
        size_t piece = (size_t) MIN(len, (uint64_t) PIECE);
        int r = 0;

        if (!c)
                return -ENOMEM;
        if (ctx_bounce(c, piece) < 0) {
                ctx_put(e, c);
                return -ENOMEM;
        }
        for (uint64_t done = 0; done < len && r >= 0; done += piece) {
                size_t n = (size_t) MIN((uint64_t) piece, len - done);
                if (e->aead) {
                        r = aead_write(e, c, src ? src + done : NULL, n, off + done, flags);
                        if (r >= 0)
                                atomic_fetch_add(&e->bytes_encrypted, n);
                        continue;
                }
                if (!src)
                        memset(c->bounce, 0, n);
                r = crypt_sectors(c->hd, true, c->bounce, src ? src + done : c->bounce, n, e->sector_size,
                                  iv_of(e, off + done), e->sector_size / 512);
                if (r >= 0)
                        r = orion_bdev_pwrite(e->child, c->bounce, n, e->data_offset + off + done, flags);
                if (r >= 0)
                        atomic_fetch_add(&e->bytes_encrypted, n);
        }
        ctx_put(e, c);
        return r < 0 ? r : 0;
}

/* One share of a request split across the worker pool. */
struct share {
        struct encrypt *e;
        bool write;
        const uint8_t *src; /* write: NULL for zeroes */
        uint8_t *dst;       /* read */
        uint64_t len, off;
        uint32_t flags;
        int r;
};

static void share_run(void *arg) {
        struct share *s = arg;
        s->r = s->write ? write_encrypted(s->e, s->src, s->len, s->off, s->flags)
                        : read_decrypted(s->e, s->dst, s->len, s->off, s->flags);
}

static int crypt_split(struct encrypt *e, bool write, const uint8_t *src, uint8_t *dst, uint64_t len,
                       uint64_t off, uint32_t flags, uint64_t ways) {
        struct share sh[SPLIT_MAX];
        void *args[SPLIT_MAX];
        uint64_t step, done = 0;
        size_t n = 0;

        step = ALIGN_UP((len + ways - 1) / ways, (uint64_t) e->sector_size);
        for (; done < len; done += step, n++) {
                sh[n] = (struct share) { .e = e, .write = write, .len = MIN(step, len - done), .off = off + done,
                                         .flags = flags };
                if (write)
                        sh[n].src = src ? src + done : NULL;
                else
                        sh[n].dst = dst + done;
                args[n] = &sh[n];
        }
        orion_parallel(share_run, args, n);
        for (size_t i = 0; i < n; i++)
                if (sh[i].r < 0)
                        return sh[i].r;
        return 0;
}

/* A request of two pieces or more, while it is the only one in the node, is cut into one
 * share per usable CPU run concurrently (each share borrows its own cipher handle), so a
 * lone large request does not wait for one core. With other requests in flight the CPUs
 * are busy with them already, and a hand-over would only cost CPU time (about 10% per byte
 * measured); small requests stay on the calling thread for the same reason. */
static int crypt_request(struct encrypt *e, bool write, const uint8_t *src, uint8_t *dst, uint64_t len,
                         uint64_t off, uint32_t flags) {
        uint64_t ways = MIN((uint64_t) e->split_ways, len / PIECE);
        unsigned others = (unsigned) atomic_fetch_add(&e->inflight, 1);
        int r;

        if (ways >= 2 && others == 0) {
                atomic_fetch_add(&e->requests_split, 1);
                r = crypt_split(e, write, src, dst, len, off, flags, ways);
        }
        else if (write)
                r = write_encrypted(e, src, len, off, flags);
        else
                r = read_decrypted(e, dst, len, off, flags);
        atomic_fetch_sub(&e->inflight, 1);
        return r;
}

static int encrypt_pread(struct orion_bdev *b, void *buf, uint64_t len, uint64_t off, uint32_t flags) {
        return crypt_request(orion_bdev_priv(b), false, NULL, buf, len, off, flags);
}

static int encrypt_pwrite(struct orion_bdev *b, const void *buf, uint64_t len, uint64_t off, uint32_t flags) {
        return crypt_request(orion_bdev_priv(b), true, buf, NULL, len, off, flags);
}

/* Zeroes must read back as zeroes through the cipher, so they are written encrypted; the
 * child's own zeroing (holes) would decrypt to noise. */
static int encrypt_write_zeroes(struct orion_bdev *b, uint64_t len, uint64_t off, uint32_t flags) {
        if (flags & ORION_FAST_ZERO)
                return -ENOTSUP;
        return crypt_request(orion_bdev_priv(b), true, NULL, NULL, len, off, flags & ORION_FUA);
}

static int encrypt_flush(struct orion_bdev *b, uint32_t flags) {
        struct encrypt *e = orion_bdev_priv(b);
        return orion_bdev_flush(e->child, flags);
}

/* Only with allow-discards: a discarded range reads back as noise, and the pattern of
 * discarded blocks is visible on the child (the same trade-off as dm-crypt). */
static int encrypt_discard(struct orion_bdev *b, uint64_t len, uint64_t off, uint32_t flags) {
        struct encrypt *e = orion_bdev_priv(b);
        if (!e->allow_discards || e->aead) /* a discarded sector would fail authentication */
                return -EOPNOTSUPP;
        return orion_bdev_discard(e->child, len, e->data_offset + off, flags);
}

static void encrypt_stats(struct orion_bdev *b, struct json_object *sink) {
        struct encrypt *e = orion_bdev_priv(b);
        orion_stats_put(sink, "bytes-encrypted", atomic_load(&e->bytes_encrypted));
        orion_stats_put(sink, "bytes-decrypted", atomic_load(&e->bytes_decrypted));
        orion_stats_put(sink, "requests-split", atomic_load(&e->requests_split));
}

static const char *copy_state(enum luks2_copy_state s) {
        static const char *const n[] = { "ok", "missing", "damaged", "obsolete", "io-error" };
        return n[s];
}

static void encrypt_status(struct orion_bdev *b, struct json_object *out) {
        struct encrypt *e = orion_bdev_priv(b);

        pthread_mutex_lock(&e->meta_lock);
        json_object_object_add(out, "format", json_object_new_string("LUKS2"));
        json_object_object_add(out, "uuid", json_object_new_string(e->hdr.uuid));
        json_object_object_add(out, "cipher", json_object_new_string(e->cipher));
        if (e->aead)
                json_object_object_add(out, "integrity", json_object_new_string(e->integrity));
        json_object_object_add(out, "key-bits", json_object_new_int((int) e->vk_len * 8));
        json_object_object_add(out, "sector-size", json_object_new_int((int) e->sector_size));
        json_object_object_add(out, "data-offset", json_object_new_uint64(e->data_offset));
        json_object_object_add(out, "keyslot", json_object_new_int(e->unlocked_slot));
        json_object_object_add(out, "allow-discards", json_object_new_boolean(e->allow_discards));
        json_object_object_add(out, "header-primary", json_object_new_string(copy_state(e->hdr.state[0])));
        json_object_object_add(out, "header-secondary", json_object_new_string(copy_state(e->hdr.state[1])));
        pthread_mutex_unlock(&e->meta_lock);
}

/* ---- Lifecycle ------------------------------------------------------------------------------ */
static void ctx_pool_free(struct encrypt *e) {
        struct crypt_ctx *c;
        while ((c = e->free_ctx)) {
                e->free_ctx = c->next;
                gcry_cipher_close(c->hd);
                free(c->bounce);
                free(c->tags);
                free(c);
        }
}

static void locks_init(struct encrypt *e) {
        pthread_mutex_init(&e->pool_lock, NULL);
        pthread_mutex_init(&e->meta_lock, NULL);
        for (int i = 0; i < AEAD_LOCKS; i++)
                pthread_rwlock_init(&e->tag_locks[i], NULL);
}

static void locks_done(struct encrypt *e) {
        pthread_mutex_destroy(&e->pool_lock);
        pthread_mutex_destroy(&e->meta_lock);
        for (int i = 0; i < AEAD_LOCKS; i++)
                pthread_rwlock_destroy(&e->tag_locks[i]);
}

static void encrypt_free_state(struct encrypt *e) {
        ctx_pool_free(e);
        e->vk = secure_free(e->vk);
        luks2_hdr_done(&e->hdr);
        locks_done(e);
}

static void encrypt_close(struct orion_bdev *b) {
        encrypt_free_state(orion_bdev_priv(b));
}

/* After a successful unlock, rewrite a damaged or stale header copy from the good one. */
static void repair_copies(struct encrypt *e) {
        for (int copy = 0; copy < 2; copy++) {
                if (e->hdr.state[copy] == LUKS2_COPY_OK)
                        continue;
                if (!e->io.write || luks2_hdr_write_copy(&e->io, &e->hdr, copy) < 0 || child_flush(e->child) < 0) {
                        orion_warn("encrypt '%s': could not repair the %s LUKS2 header", orion_bdev_name(e->self),
                                   copy ? "secondary" : "primary");
                        /* Data is fine, but one more damaged copy and the volume is lost. */
                        orion_bdev_set_health(e->self, ORION_HEALTH_DEGRADED, "%s LUKS2 header damaged, not repaired",
                                              copy ? "secondary" : "primary");
                        continue;
                }
                orion_warn("encrypt '%s': rewrote the %s LUKS2 header from the %s copy", orion_bdev_name(e->self),
                           copy ? "secondary" : "primary", copy ? "primary" : "secondary");
                e->hdr.state[copy] = LUKS2_COPY_OK;
        }
}

static int setup_geometry(struct orion_bdev *b, struct encrypt *e, struct orion_error *err) {
        uint64_t csize = orion_bdev_size(e->child), size;
        uint32_t ccaps = orion_bdev_caps(e->child), caps;
        struct orion_geometry g = { .block_size = e->sector_size };

        if (e->data_offset >= csize)
                return orion_error_set(err, EINVAL, "encrypt: '%s' ends before the data segment (offset %" PRIu64 ")",
                                       orion_bdev_name(e->child), e->data_offset);
        if (e->aead && !e->hdr.seg.size)
                return orion_error_set(err, EINVAL, "encrypt: an authenticated segment needs a fixed size");
        if (e->hdr.seg.size) {
                if (e->hdr.seg.size > csize - e->data_offset)
                        return orion_error_set(err, EINVAL, "encrypt: '%s' is smaller than the data segment",
                                               orion_bdev_name(e->child));
                size = e->hdr.seg.size;
                if (e->aead && (size % e->sector_size ||
                                aead_tag_area_len(size / e->sector_size) > csize - e->data_offset - size))
                        return orion_error_set(err, EINVAL, "encrypt: '%s' has no room for the tags of the data "
                                               "segment", orion_bdev_name(e->child));
        } else
                size = ALIGN_DOWN(csize - e->data_offset, (uint64_t) e->sector_size);
        if (size == 0)
                return orion_error_set(err, EINVAL, "encrypt: no room for data on '%s'", orion_bdev_name(e->child));
        g.size = size;
        g.pref_size = MAX(orion_bdev_geometry(e->child)->pref_size, e->sector_size);
        g.max_size = orion_bdev_geometry(e->child)->max_size;
        if (orion_bdev_set_geometry(b, &g) < 0)
                return orion_error_set(err, EINVAL, "encrypt: bad geometry");
        caps = ccaps & (ORION_CAP_READONLY | ORION_CAP_FLUSH | ORION_CAP_FUA | ORION_CAP_MULTI_CONN |
                        ORION_CAP_ROTATIONAL);
        caps |= ORION_CAP_WRITE_ZEROES;
        if (e->allow_discards && !e->aead && (ccaps & ORION_CAP_DISCARD))
                caps |= ORION_CAP_DISCARD;
        orion_bdev_set_caps(b, caps);
        return 0;
}

/* Data path parameters from the header's segment. */
static void data_state(struct encrypt *e, const struct luks2_hdr *hdr) {
        snprintf(e->cipher, sizeof(e->cipher), "%s", hdr->seg.cipher);
        snprintf(e->integrity, sizeof(e->integrity), "%s", hdr->seg.integrity);
        e->aead = e->integrity[0] != '\0';
        e->data_offset = hdr->seg.offset;
        e->iv_tweak = hdr->seg.iv_tweak;
        e->sector_size = hdr->seg.sector_size;
        e->tag_offset = hdr->seg.offset + hdr->seg.size; /* authenticated segments have a fixed size */
}

/* CPUs this process may run on (taskset, cgroup cpusets), at most SPLIT_MAX. */
static unsigned usable_cpus(void) {
        cpu_set_t set;
        int n;

        if (sched_getaffinity(0, sizeof(set), &set) < 0)
                return 1;
        n = CPU_COUNT(&set);
        return n < 1 ? 1 : MIN((unsigned) n, (unsigned) SPLIT_MAX);
}

static int encrypt_open(struct orion_bdev *b, const struct orion_params *p, struct orion_error *err) {
        struct encrypt *e = orion_bdev_priv(b);
        uint8_t *pass = NULL;
        size_t pass_len = 0;
        int r;

        e->self = b;
        e->child = orion_param_node(p, "child");
        e->allow_discards = orion_param_bool(p, "allow-discards");
        e->split_ways = usable_cpus();
        locks_init(e);
        if (crypt_init() < 0) {
                r = orion_error_set(err, ENOTSUP, "encrypt: libgcrypt >= 1.10 is required");
                goto fail;
        }
        r = passphrase_from_params(p, NULL, &pass, &pass_len, err);
        if (r < 0)
                goto fail;
        encrypt_child_io(e->child, &e->io);
        r = luks2_hdr_read(&e->io, &e->hdr, err);
        if (r < 0) {
                if (r == -ENODEV)
                        orion_error_set(err, ENODEV, "encrypt: no LUKS2 header on '%s' (create one with "
                                        "`orionctl format encrypt child=%s key-file=...`)",
                                        orion_bdev_name(e->child), orion_bdev_name(e->child));
                goto fail;
        }
        data_state(e, &e->hdr);
        if (e->aead && (!crypt_aead_integrity(e->cipher) || strcmp(crypt_aead_integrity(e->cipher), e->integrity))) {
                r = orion_error_set(err, ENOTSUP, "encrypt: authenticated mode '%s' with integrity '%s' is not "
                                    "supported (aes-gcm-random/aead, chacha20-random/poly1305)", e->cipher,
                                    e->integrity);
                goto fail;
        }
        if (e->data_offset % orion_bdev_block_size(e->child) || e->sector_size < orion_bdev_block_size(e->child)) {
                r = orion_error_set(err, EINVAL, "encrypt: sector size %u or data offset do not suit the %u-byte "
                                    "blocks of '%s'", e->sector_size, orion_bdev_block_size(e->child),
                                    orion_bdev_name(e->child));
                goto fail;
        }
        e->vk = secure_alloc(LUKS2_KEY_MAX);
        if (!e->vk) {
                r = orion_error_set(err, ENOMEM, "out of memory");
                goto fail;
        }
        r = luks2_unlock(&e->io, &e->hdr, (int) orion_param_int(p, "keyslot"), pass, pass_len, e->vk, &e->vk_len,
                         err);
        if (r < 0)
                goto fail;
        e->unlocked_slot = r;
        /* One handle now: proves the cipher accepts this key before any request arrives. */
        struct crypt_ctx *c = ctx_get(e);
        if (!c) {
                r = orion_error_set(err, EINVAL, "encrypt: cipher '%s' rejects the volume key", e->cipher);
                goto fail;
        }
        ctx_put(e, c);
        r = setup_geometry(b, e, err);
        if (r < 0)
                goto fail;
        repair_copies(e);
        secure_free(pass);
        orion_info("encrypt '%s': unlocked with keyslot %d (%s, %zu-bit key, %u-byte sectors)", orion_bdev_name(b),
                   e->unlocked_slot, e->cipher, e->vk_len * 8, e->sector_size);
        return 0;
fail:
        secure_free(pass);
        encrypt_free_state(e);
        if (!orion_error_is_set(err))
                orion_error_set(err, -r, "encrypt: open failed");
        return r;
}

/* ---- Format and inspect --------------------------------------------------------------------- */
/* Something worth keeping on the device? LUKS headers and common superblocks. */
static const char *detect_signature(struct orion_bdev *child) {
        static const struct {
                uint64_t off;
                const char *magic;
                size_t len;
                const char *name;
        } sigs[] = {
                { 0, "LUKS\xba\xbe", 6, "a LUKS header" },
                { 0x4000, "SKUL\xba\xbe", 6, "a LUKS2 secondary header" },
                { 0x438, "\x53\xef", 2, "an ext2/3/4 file system" },
                { 0, "XFSB", 4, "an XFS file system" },
                { 0x10040, "_BHRfS_M", 8, "a btrfs file system" },
                { 4086, "SWAPSPACE2", 10, "a swap area" },
                { 512, "EFI PART", 8, "a GPT partition table" },
                { 512, "LABELONE", 8, "an LVM2 physical volume" },
                { 4096, "\xfc\x4e\x2b\xa9", 4, "an md RAID member" },
                { 0, "ORION", 5, "an Orion superblock" },
                { 3, "NTFS    ", 8, "an NTFS file system" },
                { 0x52, "FAT32   ", 8, "a FAT32 file system" },
        };
        uint64_t size = orion_bdev_size(child);
        _cleanup_free_ uint8_t *buf = NULL;
        uint64_t len = MIN(size, (uint64_t) 0x11000);

        buf = malloc(0x11000);
        if (!buf || len < 4096)
                return NULL;
        len = ALIGN_DOWN(len, (uint64_t) orion_bdev_block_size(child));
        if (orion_bdev_pread(child, buf, len, 0, 0) < 0)
                return "unreadable data";
        for (size_t i = 0; i < ELEMENTSOF(sigs); i++)
                if (sigs[i].off + sigs[i].len <= len && memcmp(buf + sigs[i].off, sigs[i].magic, sigs[i].len) == 0)
                        return sigs[i].name;
        if (len >= 512 && buf[510] == 0x55 && buf[511] == 0xaa)
                return "a partition table or boot sector";
        return NULL;
}

static int pbkdf_from_params(const struct orion_params *p, struct luks2_pbkdf_params *pp, struct orion_error *err) {
        const char *kdf = orion_param_str(p, "pbkdf");
        int64_t v;

        memset(pp, 0, sizeof(*pp));
        pp->type = strcmp(kdf, "pbkdf2") == 0 ? LUKS2_KDF_PBKDF2
                   : strcmp(kdf, "argon2i") == 0 ? LUKS2_KDF_ARGON2I : LUKS2_KDF_ARGON2ID;
        pp->hash = orion_param_str(p, "hash");
        static const char *const names[] = { "iter-time", "pbkdf-memory", "pbkdf-parallel", "pbkdf-force-iterations" };
        uint32_t *dst[] = { &pp->time_ms, &pp->max_memory, &pp->parallel, &pp->iterations };
        for (size_t i = 0; i < ELEMENTSOF(names); i++) {
                if (!orion_param_is_set(p, names[i]))
                        continue;
                v = orion_param_int(p, names[i]);
                if (v <= 0 || v > UINT32_MAX)
                        return orion_error_set(err, EINVAL, "encrypt: %s=%" PRId64 " is out of range", names[i], v);
                *dst[i] = (uint32_t) v;
        }
        if (pp->iterations)
                pp->memory = pp->max_memory;
        return 0;
}

struct format_plan {
        uint64_t md_size, ks_size;
        uint32_t key_bytes, sector;
        const char *cipher, *label;
        struct luks2_pbkdf_params pp;
        int keyslot;
};

static int format_plan(const struct orion_params *p, struct orion_bdev *child, struct format_plan *f,
                       struct orion_error *err) {
        int64_t ks = orion_param_int(p, "key-size"), ss = orion_param_int(p, "sector-size");
        uint64_t csize = orion_bdev_size(child);
        int r;

        f->cipher = orion_param_str(p, "cipher");
        f->label = orion_param_str(p, "label");
        if (crypt_aead_integrity(f->cipher)) {
                /* One 256-bit key for AES-GCM or ChaCha20: the default key-size is XTS's two keys. */
                if (orion_param_is_set(p, "key-size") && ks != 256)
                        return orion_error_set(err, EINVAL, "encrypt: %s takes a 256-bit key", f->cipher);
                ks = 256;
        }
        if (ks != 256 && ks != 384 && ks != 512)
                return orion_error_set(err, EINVAL, "encrypt: key-size must be 256 or 512 (bits, XTS)");
        if (ss != 512 && ss != 1024 && ss != 2048 && ss != 4096)
                return orion_error_set(err, EINVAL, "encrypt: sector-size must be 512, 1024, 2048 or 4096");
        f->key_bytes = (uint32_t) ks / 8;
        f->sector = (uint32_t) ss;
        if (f->sector < orion_bdev_block_size(child))
                return orion_error_set(err, EINVAL, "encrypt: sector-size %u is below the %u-byte blocks of '%s'",
                                       f->sector, orion_bdev_block_size(child), orion_bdev_name(child));
        f->md_size = orion_param_size(p, "metadata-size");
        if (f->md_size < LUKS2_HDR_16K || f->md_size > LUKS2_HDR_MAX || (f->md_size & (f->md_size - 1)))
                return orion_error_set(err, EINVAL, "encrypt: metadata-size must be a power of two, 16K to 4M");
        /* Default: data at 16 MiB, as cryptsetup. */
        f->ks_size = orion_param_is_set(p, "keyslots-size") ? orion_param_size(p, "keyslots-size")
                                                              : (16u << 20) - 2 * f->md_size;
        if (f->ks_size % 4096 || f->ks_size > LUKS2_KEYSLOTS_SIZE_MAX ||
            f->ks_size < ALIGN_UP((uint64_t) luks2_af_area_len(f->key_bytes, LUKS2_STRIPES), (uint64_t) 4096))
                return orion_error_set(err, EINVAL, "encrypt: keyslots-size must be a multiple of 4K, room for one "
                                       "keyslot at least, at most 128M");
        if (2 * f->md_size + f->ks_size + f->sector > csize)
                return orion_error_set(err, ENOSPC, "encrypt: '%s' (%" PRIu64 " bytes) is too small for %" PRIu64
                                       " bytes of LUKS2 metadata", orion_bdev_name(child), csize,
                                       2 * f->md_size + f->ks_size);
        f->keyslot = (int) orion_param_int(p, "keyslot");
        if (f->keyslot < 0)
                f->keyslot = 0;
        if (f->keyslot >= LUKS2_OBJECTS_MAX)
                return orion_error_set(err, EINVAL, "encrypt: keyslot must be 0..31");
        r = pbkdf_from_params(p, &f->pp, err);
        return r;
}

/* Authenticated segments start with every sector sealed (encrypted zeros and their tags),
 * so that each one reads back; the alternative, sectors that fail until written, is what
 * cryptsetup --integrity-no-wipe gives. Costs one write of the whole child. */
static int aead_wipe(struct orion_bdev *child, const struct luks2_hdr *hdr, const uint8_t *vk, size_t vk_len,
                     struct orion_error *err) {
        struct encrypt *e = calloc(1, sizeof(*e));
        const uint64_t step = 4u << 20;
        int r = 0;

        if (!e)
                return orion_error_set(err, ENOMEM, "out of memory");
        locks_init(e);
        e->self = e->child = child;
        data_state(e, hdr);
        e->vk = (uint8_t *) vk; /* borrowed: the caller wipes it */
        e->vk_len = vk_len;
        for (uint64_t off = 0; off < hdr->seg.size && r >= 0; off += step)
                r = write_encrypted(e, NULL, MIN(step, hdr->seg.size - off), off, 0);
        if (r >= 0)
                r = orion_bdev_flush(child, 0);
        ctx_pool_free(e);
        locks_done(e);
        free(e);
        if (r < 0)
                return orion_error_set(err, -r, "encrypt: cannot write the initial sectors and tags of '%s'",
                                       orion_bdev_name(child));
        return 0;
}

static int encrypt_format(const struct orion_params *p, bool force, struct json_object *args,
                          struct orion_error *err) {
        struct orion_bdev *child = orion_param_node(p, "child");
        struct luks2_hdr hdr = { 0 };
        struct luks2_digest d;
        struct format_plan f;
        struct luks2_io io;
        uint8_t *pass = NULL, *vk = NULL;
        size_t pass_len = 0;
        const char *sig;
        int r;

        if (crypt_init() < 0)
                return orion_error_set(err, ENOTSUP, "encrypt: libgcrypt >= 1.10 is required");
        if (orion_bdev_caps(child) & ORION_CAP_READONLY)
                return orion_error_set(err, EROFS, "encrypt: '%s' is read-only", orion_bdev_name(child));
        r = format_plan(p, child, &f, err);
        if (r < 0)
                return r;
        if (!force && (sig = detect_signature(child)))
                return orion_error_set(err, EEXIST, "encrypt: '%s' holds %s; use --force to overwrite it",
                                       orion_bdev_name(child), sig);
        r = passphrase_from_params(p, args, &pass, &pass_len, err);
        if (r < 0)
                return r;
        encrypt_child_io(child, &io);
        vk = secure_alloc(f.key_bytes);
        if (!vk) {
                r = orion_error_set(err, ENOMEM, "out of memory");
                goto out;
        }
        /* The kernel's CSPRNG, as cryptsetup uses for volume keys. */
        if (getrandom(vk, f.key_bytes, 0) != (ssize_t) f.key_bytes) {
                r = orion_error_set(err, EIO, "encrypt: no random bytes for the volume key");
                goto out;
        }
        r = luks2_hdr_init(&hdr, f.md_size, f.ks_size, f.cipher, f.sector, f.key_bytes, f.label, err);
        if (r < 0)
                goto out;
        if (hdr.seg.integrity[0]) {
                uint64_t n = aead_sectors_for(orion_bdev_size(child) - hdr.seg.offset, f.sector);
                if (n == 0) {
                        r = orion_error_set(err, ENOSPC, "encrypt: no room for data and tags on '%s'",
                                            orion_bdev_name(child));
                        goto out;
                }
                r = luks2_hdr_set_segment_size(&hdr, n * f.sector, err);
                if (r < 0)
                        goto out;
        }
        /* A fixed KDF cost means "no benchmark" for the digest too (cryptsetup's minimum). */
        r = luks2_digest_create(vk, f.key_bytes, f.pp.hash ? f.pp.hash : "sha256", f.pp.iterations ? 1 : 125, &d,
                                err);
        if (r < 0)
                goto out;
        d.id = 0;
        r = luks2_digest_set_json(&hdr, &d);
        if (r < 0) {
                orion_error_set(err, -r, "encrypt: out of memory");
                goto out;
        }
        /* Old metadata (another LUKS header's keyslots) must not survive under the new one. */
        r = orion_bdev_write_zeroes(child, luks2_hdr_areas_size(&hdr), 0, 0);
        if (r < 0) {
                orion_error_set(err, -r, "encrypt: cannot wipe the metadata area of '%s'", orion_bdev_name(child));
                goto out;
        }
        r = luks2_keyslot_create(&io, &hdr, f.keyslot, pass, pass_len, vk, f.key_bytes, &f.pp, err);
        if (r < 0)
                goto out;
        r = luks2_hdr_write(&io, &hdr, err);
        if (r < 0)
                goto out;
        if (hdr.seg.integrity[0]) {
                r = aead_wipe(child, &hdr, vk, f.key_bytes, err);
                if (r < 0)
                        goto out;
        }
        orion_info("encrypt: formatted '%s' as LUKS2 %s (%u-bit key, %u-byte sectors), UUID %s",
                   orion_bdev_name(child), f.cipher, f.key_bytes * 8, f.sector, hdr.uuid);
out:
        luks2_hdr_done(&hdr);
        secure_free(vk);
        secure_free(pass);
        return r;
}

static int encrypt_inspect(struct orion_bdev *b, struct json_object *out) {
        struct orion_error err = { 0 };
        struct luks2_hdr hdr;
        struct luks2_io io;
        int r;

        encrypt_child_io(b, &io);
        io.write = NULL; /* inspect never repairs */
        r = luks2_hdr_read(&io, &hdr, &err);
        if (r == -ENODEV)
                return 0;
        if (r == -EIO)
                return r;
        json_object_object_add(out, "type", json_object_new_string("encrypt"));
        json_object_object_add(out, "format", json_object_new_string("LUKS2"));
        if (r < 0) {
                json_object_object_add(out, "error", json_object_new_string(err.msg));
                return 1;
        }
        struct json_object *dump = luks2_hdr_dump(&hdr);
        json_object_object_foreach(dump, key, val) json_object_object_add(out, key, json_object_get(val));
        json_object_put(dump);
        luks2_hdr_done(&hdr);
        return 1;
}

/* ---- Registration --------------------------------------------------------------------------- */
static const struct orion_param encrypt_params[] = {
        { .name = "child", .type = ORION_PARAM_NODE, .help = "Node holding the LUKS2 header and the encrypted data." },
        { .name = "key-file", .type = ORION_PARAM_PATH, .optional = true,
          .help = "File whose whole content is the passphrase (as cryptsetup --key-file)." },
        { .name = "passphrase", .type = ORION_PARAM_STRING, .optional = true, .secret = true,
          .help = "Passphrase sent by orionctl's prompt; prefer key-file (shown in node-info params)." },
        { .name = "keyslot", .type = ORION_PARAM_INT, .def = "-1",
          .help = "Try only this keyslot (-1: every keyslot); format: the slot to create (default 0)." },
        { .name = "allow-discards", .type = ORION_PARAM_BOOL, .def = "off",
          .help = "Pass discards to the child (reveals which blocks are unused)." },
        { .name = "cipher", .type = ORION_PARAM_STRING, .def = "aes-xts-plain64",
          .help = "format: data cipher (aes, serpent, twofish or camellia in xts-plain64 mode; aes-gcm-random "
                  "or chacha20-random: authenticated, per-sector tags)." },
        { .name = "key-size", .type = ORION_PARAM_INT, .def = "512",
          .help = "format: volume key bits, 256 or 512 (authenticated modes: 256)." },
        { .name = "sector-size", .type = ORION_PARAM_INT, .def = "4096",
          .help = "format: encryption sector (and block) size, 512 or 4096." },
        { .name = "pbkdf", .type = ORION_PARAM_ENUM, .def = "argon2id", .choices = "argon2id argon2i pbkdf2",
          .help = "format: keyslot key derivation function." },
        { .name = "hash", .type = ORION_PARAM_STRING, .def = "sha256",
          .help = "format: hash for PBKDF2, the AF splitter and the key digest." },
        { .name = "iter-time", .type = ORION_PARAM_INT, .optional = true,
          .help = "format: target unlock time in ms for the KDF benchmark (default 1000)." },
        { .name = "pbkdf-memory", .type = ORION_PARAM_INT, .optional = true,
          .help = "format: argon2 memory cost ceiling in KiB (default 1048576, at most half the RAM)." },
        { .name = "pbkdf-parallel", .type = ORION_PARAM_INT, .optional = true,
          .help = "format: argon2 lanes/threads (default min(4, CPUs))." },
        { .name = "pbkdf-force-iterations", .type = ORION_PARAM_INT, .optional = true,
          .help = "format: fixed PBKDF2 iterations or argon2 time cost (no benchmark)." },
        { .name = "metadata-size", .type = ORION_PARAM_SIZE, .def = "16K",
          .help = "format: size of each of the two header copies, 16K to 4M." },
        { .name = "keyslots-size", .type = ORION_PARAM_SIZE, .optional = true,
          .help = "format: keyslots area size (default: data starts at 16 MiB)." },
        { .name = "label", .type = ORION_PARAM_STRING, .optional = true, .help = "format: LUKS2 label." },
        {},
};

static const struct orion_bdev_ops encrypt_ops = {
        .pread = encrypt_pread,
        .pwrite = encrypt_pwrite,
        .flush = encrypt_flush,
        .discard = encrypt_discard,
        .write_zeroes = encrypt_write_zeroes,
        .stats = encrypt_stats,
        .ctl = encrypt_ctl,
        .status = encrypt_status,
        .close = encrypt_close,
};

ORION_PLUGIN(.name = "encrypt",
             .description = "LUKS2 full-disk encryption (AES-XTS; AES-GCM, ChaCha20-Poly1305), cryptsetup compatible",
             .params = encrypt_params, .instance_size = sizeof(struct encrypt), .ops = &encrypt_ops,
             .open = encrypt_open, .format = encrypt_format, .inspect = encrypt_inspect);
