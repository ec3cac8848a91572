/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* NBD fixed-newstyle negotiation: greeting, client flags, and the option haggling loop
 * (EXPORT_NAME, ABORT, LIST, STARTTLS, INFO, GO, STRUCTURED_REPLY, LIST/SET_META_CONTEXT). */
#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "common/cleanup.h"
#include "export/nbd/nbd-internal.h"

#define BASE_ALLOCATION "base:allocation"

/* ---- Exports ---------------------------------------------------------------------------------- */

/* Every export, referenced (release each with export_unref and the array with free). The list
 * may grow between counting and filling: ask again until it fits. */
static size_t exports_snapshot(struct orion_export ***ret) {
        for (size_t cap = export_list(NULL, 0) + 8;; cap *= 2) {
                struct orion_export **v = calloc(cap, sizeof(*v));
                if (!v) {
                        *ret = NULL;
                        return 0;
                }
                size_t n = export_list(v, cap);
                if (n < cap) {
                        *ret = v;
                        return n;
                }
                for (size_t i = 0; i < n; i++)
                        export_unref(v[i]);
                free(v);
        }
}

static bool export_is_default(const struct orion_export *e) {
        struct json_object *v;

        if (!e->opts || !json_object_object_get_ex(e->opts, "nbd-default", &v))
                return false;
        return parse_bool(json_object_get_string(v)) == 1;
}

/* "" is the default export: the one marked nbd-default = on, else the first NBD export. */
struct orion_export *nbd_export_lookup(const char *name) {
        struct orion_export **list, *found = NULL;
        size_t n;

        if (name[0] != '\0') {
                struct orion_export *e = export_find(name);
                if (e && (!(e->protocols & PROTO_NBD) || e->removed)) {
                        export_unref(e);
                        return NULL;
                }
                return e;
        }
        n = exports_snapshot(&list);
        for (size_t i = 0; i < n; i++) {
                if (!(list[i]->protocols & PROTO_NBD) || list[i]->removed)
                        continue;
                if (export_is_default(list[i])) {
                        found = list[i];
                        break;
                }
                if (!found)
                        found = list[i];
        }
        if (found)
                export_ref(found);
        for (size_t i = 0; i < n; i++)
                export_unref(list[i]);
        free(list);
        return found;
}

/* nbd_export_lookup, but while the server is starting an unknown name is looked up again for
 * a while: the daemon adds the configured exports after the (inherited) socket is live. */
static struct orion_export *conn_export_lookup(const struct nbd_conn *c, const char *name) {
        struct orion_export *e;

        while (!(e = nbd_export_lookup(name)) && nbd_server_starting(c->srv))
                (void) nanosleep(&(struct timespec) { .tv_nsec = 50 * 1000000 }, NULL);
        return e;
}

static bool export_readonly(const struct orion_export *e) {
        return e->readonly || (orion_bdev_caps(e->node) & ORION_CAP_READONLY);
}

uint16_t nbd_export_flags(const struct nbd_conn *c, const struct orion_export *e) {
        uint32_t caps = orion_bdev_caps(e->node);
        uint16_t f = NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_CACHE;

        if (export_readonly(e))
                f |= NBD_FLAG_READ_ONLY;
        else {
                /* The core emulates FUA (write + flush) and write-zeroes (zero buffers, with
                 * FAST_ZERO failing fast when nothing native exists), so these are always real. */
                f |= NBD_FLAG_SEND_FUA | NBD_FLAG_SEND_WRITE_ZEROES | NBD_FLAG_SEND_FAST_ZERO;
                if (caps & ORION_CAP_DISCARD)
                        f |= NBD_FLAG_SEND_TRIM;
        }
        if (caps & ORION_CAP_ROTATIONAL)
                f |= NBD_FLAG_ROTATIONAL;
        if (c->structured)
                f |= NBD_FLAG_SEND_DF;
        /* A read-only export has nothing to flush, so every connection sees the same data. */
        if ((caps & ORION_CAP_MULTI_CONN) || export_readonly(e))
                f |= NBD_FLAG_CAN_MULTI_CONN;
        return f;
}

/* ---- Option replies ------------------------------------------------------------------------- */

static int opt_reply(struct nbd_conn *c, uint32_t option, uint32_t reply, const void *data, uint32_t len) {
        struct nbd_option_reply_hdr h = {
                .magic = htobe64(NBD_REP_MAGIC),
                .option = htobe32(option),
                .reply = htobe32(reply),
                .length = htobe32(len),
        };
        struct iovec iov[2] = { { &h, sizeof(h) }, { (void *) data, len } };
        return nbd_sendv_full(c, iov, len ? 2 : 1);
}

/* Error replies carry a human-readable message for the client's log. */
static int opt_error(struct nbd_conn *c, uint32_t option, uint32_t reply, const char *msg) {
        orion_debug("nbd: %s: option %u refused: %s", c->peer, option, msg);
        return opt_reply(c, option, reply, msg, (uint32_t) strlen(msg));
}

static int opt_ack(struct nbd_conn *c, uint32_t option) {
        return opt_reply(c, option, NBD_REP_ACK, NULL, 0);
}

/* ---- Payload parsing: a cursor that never reads past the option's length -------------------- */

struct cursor {
        const uint8_t *p;
        size_t left;
};

static bool cur_u32(struct cursor *cu, uint32_t *ret) {
        if (cu->left < 4)
                return false;
        memcpy(ret, cu->p, 4);
        *ret = be32toh(*ret);
        cu->p += 4;
        cu->left -= 4;
        return true;
}

static bool cur_u16(struct cursor *cu, uint16_t *ret) {
        if (cu->left < 2)
                return false;
        memcpy(ret, cu->p, 2);
        *ret = be16toh(*ret);
        cu->p += 2;
        cu->left -= 2;
        return true;
}

/* A length-prefixed string, copied NUL-terminated into a new buffer. Strings with a NUL byte
 * or longer than the spec's 4096 bytes are refused. */
static bool cur_string(struct cursor *cu, char **ret) {
        uint32_t len;

        if (!cur_u32(cu, &len) || len > cu->left || len > NBD_MAX_STRING)
                return false;
        if (memchr(cu->p, '\0', len))
                return false;
        *ret = strndup((const char *) cu->p, len);
        if (!*ret)
                return false;
        cu->p += len;
        cu->left -= len;
        return true;
}

/* ---- NBD_OPT_LIST ---------------------------------------------------------------------------- */

static int opt_list(struct nbd_conn *c, uint32_t len) {
        _cleanup_free_ struct orion_export **list = NULL;
        size_t n;
        int r = 0;

        if (len != 0)
                return opt_error(c, NBD_OPT_LIST, NBD_REP_ERR_INVALID, "NBD_OPT_LIST takes no data");
        n = exports_snapshot(&list);
        for (size_t i = 0; i < n; i++) {
                struct orion_export *e = list[i];
                if (r >= 0 && (e->protocols & PROTO_NBD) && !e->removed) {
                        size_t nl = strlen(e->name), dl = e->description ? strlen(e->description) : 0;
                        _cleanup_free_ uint8_t *buf = malloc(4 + nl + dl);
                        if (!buf)
                                r = -ENOMEM;
                        else {
                                uint32_t be = htobe32((uint32_t) nl);
                                memcpy(buf, &be, 4);
                                memcpy(buf + 4, e->name, nl);
                                if (dl)
                                        memcpy(buf + 4 + nl, e->description, dl);
                                r = opt_reply(c, NBD_OPT_LIST, NBD_REP_SERVER, buf, (uint32_t) (4 + nl + dl));
                        }
                }
                export_unref(e);
        }
        if (r == -ENOMEM)
                return opt_error(c, NBD_OPT_LIST, NBD_REP_ERR_PLATFORM, "out of memory");
        return r < 0 ? r : opt_ack(c, NBD_OPT_LIST);
}

/* ---- NBD_OPT_INFO / NBD_OPT_GO --------------------------------------------------------------- */

static int send_info(struct nbd_conn *c, uint32_t option, const struct orion_export *e, uint16_t flags,
                     bool want_name, bool want_desc) {
        const struct orion_geometry *g = orion_bdev_geometry(e->node);
        uint8_t buf[2 + 8 + 2];
        uint16_t t;
        uint64_t size = htobe64(orion_bdev_size(e->node));
        int r;

        t = htobe16(NBD_INFO_EXPORT);
        memcpy(buf, &t, 2);
        memcpy(buf + 2, &size, 8);
        t = htobe16(flags);
        memcpy(buf + 10, &t, 2);
        r = opt_reply(c, option, NBD_REP_INFO, buf, sizeof(buf));
        if (r < 0)
                return r;

        /* Minimum 1: the core does read-modify-write for unaligned requests, so any byte range
         * is served correctly. Preferred: the node's preference (at least 4 KiB). Maximum: our
         * request cap. Sent even when not asked for, as qemu-nbd does. */
        uint32_t pref = MAX(NBD_PREF_BLOCK, MAX(g->block_size, g->pref_size));
        if (!IS_POW2(pref) || pref > NBD_MAX_REQUEST)
                pref = NBD_PREF_BLOCK;
        uint32_t bs[3] = { htobe32(1), htobe32(pref), htobe32(NBD_MAX_REQUEST) };
        uint8_t bsbuf[2 + 12];
        t = htobe16(NBD_INFO_BLOCK_SIZE);
        memcpy(bsbuf, &t, 2);
        memcpy(bsbuf + 2, bs, 12);
        r = opt_reply(c, option, NBD_REP_INFO, bsbuf, sizeof(bsbuf));
        if (r < 0)
                return r;

        const char *texts[2] = { want_name ? e->name : NULL, want_desc ? e->description : NULL };
        for (int i = 0; i < 2; i++) {
                if (!texts[i])
                        continue;
                size_t l = MIN(strlen(texts[i]), (size_t) NBD_MAX_STRING);
                _cleanup_free_ uint8_t *m = malloc(2 + l);
                if (!m)
                        return -ENOMEM;
                t = htobe16(i == 0 ? NBD_INFO_NAME : NBD_INFO_DESCRIPTION);
                memcpy(m, &t, 2);
                memcpy(m + 2, texts[i], l);
                r = opt_reply(c, option, NBD_REP_INFO, m, (uint32_t) (2 + l));
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Commit the export for transmission: take over the reference. */
static void conn_set_export(struct nbd_conn *c, struct orion_export *e) {
        c->exp = e;
        c->node = e->node;
        c->size = orion_bdev_size(e->node);
        c->readonly = export_readonly(e);
        c->tflags = nbd_export_flags(c, e);
        /* Contexts chosen for another export do not carry over. */
        if (c->meta_base_allocation && (!c->meta_export || strcmp(c->meta_export, e->name) != 0))
                c->meta_base_allocation = false;
}

/* Returns 1 when GO succeeded (transmission starts), 0 to go on negotiating, -errno to drop. */
static int opt_info_go(struct nbd_conn *c, uint32_t option, const uint8_t *data, uint32_t len) {
        struct cursor cu = { data, len };
        _cleanup_free_ char *name = NULL;
        uint16_t nreq;
        bool want_name = false, want_desc = false;
        int r;

        if (!cur_string(&cu, &name) || !cur_u16(&cu, &nreq) || cu.left != (size_t) nreq * 2)
                return opt_error(c, option, NBD_REP_ERR_INVALID, "malformed NBD_OPT_INFO/GO payload");
        for (uint16_t i = 0; i < nreq; i++) {
                uint16_t info = 0;
                (void) cur_u16(&cu, &info);
                /* NBD_INFO_EXPORT is always sent, BLOCK_SIZE too; unknown requests are ignored. */
                if (info == NBD_INFO_NAME)
                        want_name = true;
                else if (info == NBD_INFO_DESCRIPTION)
                        want_desc = true;
        }

        struct orion_export *e = conn_export_lookup(c, name);
        if (!e) {
                char msg[NBD_MAX_STRING + 64];
                (void) snprintf(msg, sizeof(msg), "no export named '%s'", name);
                return opt_error(c, option, NBD_REP_ERR_UNKNOWN, msg);
        }
        r = send_info(c, option, e, nbd_export_flags(c, e), want_name, want_desc);
        if (r >= 0)
                r = opt_ack(c, option);
        if (r < 0 || option == NBD_OPT_INFO) {
                export_unref(e);
                return r < 0 ? r : 0;
        }
        conn_set_export(c, e);
        return 1;
}

/* ---- NBD_OPT_EXPORT_NAME -------------------------------------------------------------------- */

static int opt_export_name(struct nbd_conn *c, const uint8_t *data, uint32_t len) {
        uint8_t reply[8 + 2 + 124] = { 0 };
        _cleanup_free_ char *name = NULL;
        int r;

        /* No error can be reported here: a bad name ends the connection. */
        if (len > NBD_MAX_STRING || memchr(data, '\0', len))
                return -EINVAL;
        name = strndup((const char *) data, len);
        if (!name)
                return -ENOMEM;
        struct orion_export *e = conn_export_lookup(c, name);
        if (!e) {
                orion_info("nbd: %s: no export named '%s', disconnecting", c->peer, name);
                return -ENOENT;
        }
        uint64_t size = htobe64(orion_bdev_size(e->node));
        uint16_t flags = htobe16(nbd_export_flags(c, e));
        memcpy(reply, &size, 8);
        memcpy(reply + 8, &flags, 2);
        r = nbd_send_full(c, reply, c->no_zeroes ? 10 : sizeof(reply));
        if (r < 0) {
                export_unref(e);
                return r;
        }
        conn_set_export(c, e);
        return 1;
}

/* ---- Meta contexts ---------------------------------------------------------------------------- */

/* Does query q select base:allocation? For LIST, "base:" is a wildcard of its namespace. */
static bool query_matches(const char *q, bool list) {
        if (strcmp(q, BASE_ALLOCATION) == 0)
                return true;
        return list && strcmp(q, "base:") == 0;
}

static int opt_meta_context(struct nbd_conn *c, uint32_t option, const uint8_t *data, uint32_t len) {
        bool list = option == NBD_OPT_LIST_META_CONTEXT;
        struct cursor cu = { data, len };
        _cleanup_free_ char *name = NULL;
        uint32_t nq;
        bool match = false;

        /* SET replaces the earlier selection even when it fails. */
        if (!list) {
                c->meta_base_allocation = false;
                free(c->meta_export);
                c->meta_export = NULL;
        }
        if (!c->structured)
                return opt_error(c, option, NBD_REP_ERR_INVALID, "structured replies not negotiated");
        if (!cur_string(&cu, &name) || !cur_u32(&cu, &nq))
                return opt_error(c, option, NBD_REP_ERR_INVALID, "malformed meta context payload");
        for (uint32_t i = 0; i < nq; i++) {
                _cleanup_free_ char *q = NULL;
                if (!cur_string(&cu, &q))
                        return opt_error(c, option, NBD_REP_ERR_INVALID, "truncated meta context query");
                if (query_matches(q, list))
                        match = true;
        }
        if (cu.left != 0)
                return opt_error(c, option, NBD_REP_ERR_INVALID, "trailing bytes after the queries");
        if (list && nq == 0)
                match = true; /* no query: list everything */

        struct orion_export *e = conn_export_lookup(c, name);
        if (!e) {
                char msg[NBD_MAX_STRING + 64];
                (void) snprintf(msg, sizeof(msg), "no export named '%s'", name);
                return opt_error(c, option, NBD_REP_ERR_UNKNOWN, msg);
        }
        if (!list && match) {
                c->meta_export = strdup(e->name);
                c->meta_base_allocation = c->meta_export != NULL;
        }
        export_unref(e);
        if (match) {
                uint8_t buf[4 + sizeof(BASE_ALLOCATION) - 1];
                uint32_t id = htobe32(NBD_META_BASE_ALLOCATION);
                memcpy(buf, &id, 4);
                memcpy(buf + 4, BASE_ALLOCATION, sizeof(BASE_ALLOCATION) - 1);
                int r = opt_reply(c, option, NBD_REP_META_CONTEXT, buf, sizeof(buf));
                if (r < 0)
                        return r;
        }
        return opt_ack(c, option);
}

/* ---- NBD_OPT_STARTTLS ------------------------------------------------------------------------ */

static void reset_negotiation(struct nbd_conn *c) {
        /* Nothing negotiated in clear text survives the upgrade (downgrade attacks). */
        c->structured = false;
        c->meta_base_allocation = false;
        free(c->meta_export);
        c->meta_export = NULL;
}

static int opt_starttls(struct nbd_conn *c, uint32_t len) {
        int r;

        if (len != 0)
                return opt_error(c, NBD_OPT_STARTTLS, NBD_REP_ERR_INVALID, "NBD_OPT_STARTTLS takes no data");
        if (nbd_tls_mode == NBD_TLS_OFF)
                return opt_error(c, NBD_OPT_STARTTLS, NBD_REP_ERR_UNSUP, "TLS is not enabled on this server");
        if (c->tls)
                return opt_error(c, NBD_OPT_STARTTLS, NBD_REP_ERR_INVALID, "TLS is already active");
        r = opt_ack(c, NBD_OPT_STARTTLS);
        if (r < 0)
                return r;
        r = nbd_tls_start(c);
        if (r < 0)
                return r;
        reset_negotiation(c);
        return 0;
}

/* ---- The option loop ------------------------------------------------------------------------ */

/* Handle one option whose payload has been read. 1 = start transmission, 0 = next option,
 * 2 = client aborted, -errno = drop the connection. */
static int handle_option(struct nbd_conn *c, uint32_t option, const uint8_t *data, uint32_t len) {
        switch (option) {
        case NBD_OPT_EXPORT_NAME:
                return opt_export_name(c, data, len);
        case NBD_OPT_ABORT:
                /* The client may already have closed: a failed ACK changes nothing. */
                (void) opt_ack(c, option);
                return 2;
        case NBD_OPT_LIST:
                return opt_list(c, len);
        case NBD_OPT_STARTTLS:
                return opt_starttls(c, len);
        case NBD_OPT_INFO:
        case NBD_OPT_GO:
                return opt_info_go(c, option, data, len);
        case NBD_OPT_STRUCTURED_REPLY:
                if (len != 0)
                        return opt_error(c, option, NBD_REP_ERR_INVALID, "NBD_OPT_STRUCTURED_REPLY takes no data");
                if (c->structured)
                        return opt_error(c, option, NBD_REP_ERR_INVALID, "structured replies already negotiated");
                c->structured = true;
                return opt_ack(c, option);
        case NBD_OPT_LIST_META_CONTEXT:
        case NBD_OPT_SET_META_CONTEXT:
                return opt_meta_context(c, option, data, len);
        default:
                return opt_error(c, option, NBD_REP_ERR_UNSUP, "unknown option");
        }
}

int nbd_handshake(struct nbd_conn *c) {
        struct {
                uint64_t magic, ihaveopt;
                uint16_t flags;
        } __attribute__((packed)) greeting = {
                .magic = htobe64(NBD_MAGIC),
                .ihaveopt = htobe64(NBD_IHAVEOPT),
                .flags = htobe16(NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES),
        };
        _cleanup_free_ uint8_t *data = NULL;
        uint32_t cflags;
        int r;

        r = nbd_send_full(c, &greeting, sizeof(greeting));
        if (r < 0)
                return r;
        r = nbd_recv_full(c, &cflags, 4);
        if (r < 0)
                return r == -ECONNRESET ? 0 : r;
        cflags = be32toh(cflags);
        if (cflags & ~(uint32_t) (NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES)) {
                orion_info("nbd: %s: unknown client flags 0x%x, disconnecting", c->peer, cflags);
                return -EPROTO;
        }
        c->fixed_newstyle = cflags & NBD_FLAG_C_FIXED_NEWSTYLE;
        c->no_zeroes = cflags & NBD_FLAG_C_NO_ZEROES;

        data = malloc(NBD_MAX_OPTION);
        if (!data)
                return -ENOMEM;
        for (;;) {
                struct nbd_option_hdr h;
                r = nbd_recv_full(c, &h, sizeof(h));
                if (r < 0)
                        return r == -ECONNRESET ? 0 : r;
                uint32_t option = be32toh(h.option), len = be32toh(h.length);
                if (be64toh(h.magic) != NBD_IHAVEOPT) {
                        orion_info("nbd: %s: bad option magic, disconnecting", c->peer);
                        return -EPROTO;
                }
                if (len > NBD_MAX_OPTION) {
                        /* Too big to be a real option: consume it so the stream stays in
                         * step, unless it is absurd. */
                        if (len > NBD_MAX_OPTION_DRAIN) {
                                orion_info("nbd: %s: option of %u bytes, disconnecting", c->peer, len);
                                return -EPROTO;
                        }
                        r = nbd_recv_discard(c, len);
                        if (r >= 0)
                                r = opt_error(c, option, NBD_REP_ERR_TOO_BIG, "option too long");
                        if (r < 0)
                                return r;
                        continue;
                }
                r = nbd_recv_full(c, data, len);
                if (r < 0)
                        return r;
                /* Without fixed newstyle a client can only send EXPORT_NAME; anything else
                 * cannot be answered, so end the connection. */
                if (!c->fixed_newstyle && option != NBD_OPT_EXPORT_NAME)
                        return -EPROTO;
                if (nbd_tls_mode == NBD_TLS_REQUIRE && !c->tls && option != NBD_OPT_STARTTLS &&
                    option != NBD_OPT_ABORT) {
                        /* EXPORT_NAME cannot be refused politely. */
                        if (option == NBD_OPT_EXPORT_NAME)
                                return -EACCES;
                        r = opt_error(c, option, NBD_REP_ERR_TLS_REQD, "TLS is required: use NBD_OPT_STARTTLS");
                        if (r < 0)
                                return r;
                        continue;
                }
                r = handle_option(c, option, data, len);
                if (r == 2)
                        return 0;
                if (r != 0)
                        return r;
        }
}
