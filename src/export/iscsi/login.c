/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* iSCSI login phase: security negotiation (None, CHAP and mutual CHAP with MD5), operational
 * key negotiation with the RFC 7143 §6.2 functions, and the move to Full Feature Phase. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#if HAVE_GCRYPT
#include <gcrypt.h>
#endif

#include "common/cleanup.h"
#include "iscsi.h"

/* Our side of the operational keys. */
#define OUR_MAX_RECV_DSL 262144u
#define OUR_MAX_BURST 1048576u
#define OUR_FIRST_BURST 262144u
#define LOGIN_MAX_TEXT 65536u
#define CHAP_CHALLENGE_LEN 16

enum chap_state { CHAP_NONE, CHAP_WAIT_A, CHAP_WAIT_R, CHAP_DONE };

struct login_state {
        char initiator[224];
        char target_name[224];
        bool got_initiator;
        bool discovery;
        bool session_type_seen;
        struct iscsi_target *target; /* lookup result (global list, never freed while running) */
        bool auth_required;
        bool authenticated;
        enum chap_state chap;
        uint8_t chap_id;
        bool chap_name_ok;
        uint8_t chap_challenge[CHAP_CHALLENGE_LEN];
        struct iscsi_params params;
        bool tpgt_sent;
        bool first;
        uint8_t isid[6];
        uint16_t tsih;
        uint32_t itt;
        char *pending; /* text of C-bit continued requests */
        size_t pending_len;
};

void params_default(struct iscsi_params *p) {
        *p = (struct iscsi_params){
                .max_recv_dsl = OUR_MAX_RECV_DSL,
                .max_xmit_dsl = 8192,
                .max_burst = 262144,
                .first_burst = 65536,
                .initial_r2t = true,
                .immediate_data = true,
                .max_outstanding_r2t = 1,
                .time2wait = 2,
                .time2retain = 20,
                .data_pdu_in_order = true,
                .data_seq_in_order = true,
        };
}

int text_add(struct text_buf *t, const char *key, const char *fmt, ...) {
        char val[8192];
        va_list ap;
        int n;

        va_start(ap, fmt);
        n = vsnprintf(val, sizeof(val), fmt, ap);
        va_end(ap);
        if (n < 0 || (size_t) n >= sizeof(val))
                return -EINVAL;
        size_t need = strlen(key) + 1 + (size_t) n + 1;
        if (t->len + need > t->cap) {
                size_t cap = MAX(t->cap * 2, t->len + need + 256);
                char *nb = realloc(t->buf, cap);
                if (!nb)
                        return -ENOMEM;
                t->buf = nb;
                t->cap = cap;
        }
        memcpy(t->buf + t->len, key, strlen(key));
        t->len += strlen(key);
        t->buf[t->len++] = '=';
        memcpy(t->buf + t->len, val, (size_t) n);
        t->len += (size_t) n;
        t->buf[t->len++] = 0;
        return 0;
}

void text_free(struct text_buf *t) {
        free(t->buf);
        *t = (struct text_buf){ 0 };
}

/* ---- Encodings for CHAP values ------------------------------------------------------------ */
static int hexval(char ch) {
        if (ch >= '0' && ch <= '9')
                return ch - '0';
        if (ch >= 'a' && ch <= 'f')
                return ch - 'a' + 10;
        if (ch >= 'A' && ch <= 'F')
                return ch - 'A' + 10;
        return -1;
}

static int b64val(char ch) {
        if (ch >= 'A' && ch <= 'Z')
                return ch - 'A';
        if (ch >= 'a' && ch <= 'z')
                return ch - 'a' + 26;
        if (ch >= '0' && ch <= '9')
                return ch - '0' + 52;
        if (ch == '+')
                return 62;
        if (ch == '/')
                return 63;
        return -1;
}

/* Decode "0x<hex>" or "0b<base64>" into out (max bytes); returns length or -EINVAL. */
static int decode_binary(const char *s, uint8_t *out, size_t max) {
        size_t n = 0;
        if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
                s += 2;
                size_t len = strlen(s);
                if (len == 0)
                        return -EINVAL;
                if (len % 2) { /* odd digit count: leading nibble */
                        int v = hexval(*s++);
                        if (v < 0 || n >= max)
                                return -EINVAL;
                        out[n++] = (uint8_t) v;
                }
                for (; *s; s += 2) {
                        int hi = hexval(s[0]), lo = hexval(s[1]);
                        if (hi < 0 || lo < 0 || n >= max)
                                return -EINVAL;
                        out[n++] = (uint8_t) (hi << 4 | lo);
                }
                return (int) n;
        }
        if (s[0] == '0' && (s[1] == 'b' || s[1] == 'B')) {
                uint32_t acc = 0;
                int bits = 0;
                for (s += 2; *s && *s != '='; s++) {
                        int v = b64val(*s);
                        if (v < 0)
                                return -EINVAL;
                        acc = acc << 6 | (uint32_t) v;
                        bits += 6;
                        if (bits >= 8) {
                                bits -= 8;
                                if (n >= max)
                                        return -EINVAL;
                                out[n++] = (uint8_t) (acc >> bits);
                        }
                }
                return n > 0 ? (int) n : -EINVAL;
        }
        return -EINVAL;
}

static void encode_hex(const uint8_t *b, size_t n, char *out) {
        static const char hx[] = "0123456789abcdef";
        *out++ = '0';
        *out++ = 'x';
        for (size_t i = 0; i < n; i++) {
                *out++ = hx[b[i] >> 4];
                *out++ = hx[b[i] & 15];
        }
        *out = 0;
}

static int chap_md5(uint8_t id, const char *secret, const uint8_t *chal, size_t chal_len, uint8_t out[16]) {
#if HAVE_GCRYPT
        gcry_md_hd_t h;
        static pthread_once_t once = PTHREAD_ONCE_INIT;
        pthread_once(&once, (void (*)(void)) gcry_check_version);
        if (gcry_md_open(&h, GCRY_MD_MD5, 0) != 0)
                return -ENOMEM;
        gcry_md_putc(h, id);
        gcry_md_write(h, secret, strlen(secret));
        gcry_md_write(h, chal, chal_len);
        memcpy(out, gcry_md_read(h, GCRY_MD_MD5), 16);
        gcry_md_close(h);
        return 0;
#else
        return -EOPNOTSUPP;
#endif
}

/* ---- Key/value handling -------------------------------------------------------------------- */
static bool list_has(const char *list, const char *word) {
        size_t wl = strlen(word);
        for (const char *p = list; *p;) {
                const char *e = strchr(p, ',');
                size_t l = e ? (size_t) (e - p) : strlen(p);
                if (l == wl && strncasecmp(p, word, wl) == 0)
                        return true;
                if (!e)
                        break;
                p = e + 1;
        }
        return false;
}

/* First item of the initiator's list that we support. */
static const char *digest_pick(const char *list) {
        for (const char *p = list; *p;) {
                const char *e = strchr(p, ',');
                size_t l = e ? (size_t) (e - p) : strlen(p);
                if (l == 6 && strncasecmp(p, "CRC32C", 6) == 0)
                        return "CRC32C";
                if (l == 4 && strncasecmp(p, "None", 4) == 0)
                        return "None";
                if (!e)
                        break;
                p = e + 1;
        }
        return NULL;
}

static int parse_num(const char *v, uint64_t min, uint64_t max, uint32_t *ret) {
        char *end;
        if (!*v || *v == '-')
                return -EINVAL;
        errno = 0;
        unsigned long long n = strtoull(v, &end, 0);
        if (errno || *end || n < min || n > max)
                return -EINVAL;
        *ret = (uint32_t) n;
        return 0;
}

static int parse_yesno(const char *v, bool *ret) {
        if (strcmp(v, "Yes") == 0)
                *ret = true;
        else if (strcmp(v, "No") == 0)
                *ret = false;
        else
                return -EINVAL;
        return 0;
}

/* Operational key; returns 0 handled, 1 not an operational key, <0 error. */
static int negotiate_op_key(struct login_state *ls, const char *k, const char *v, struct text_buf *rsp) {
        struct iscsi_params *p = &ls->params;
        uint32_t n;
        bool b;

        if (strcmp(k, "HeaderDigest") == 0 || strcmp(k, "DataDigest") == 0) {
                const char *pick = digest_pick(v);
                if (!pick)
                        return text_add(rsp, k, "Reject");
                if (k[0] == 'H')
                        p->header_digest = pick[0] == 'C';
                else
                        p->data_digest = pick[0] == 'C';
                return text_add(rsp, k, "%s", pick);
        }
        if (strcmp(k, "MaxConnections") == 0) {
                if (parse_num(v, 1, 65535, &n) < 0)
                        return text_add(rsp, k, "Reject");
                return text_add(rsp, k, "1");
        }
        if (strcmp(k, "InitialR2T") == 0 || strcmp(k, "ImmediateData") == 0 ||
            strcmp(k, "DataPDUInOrder") == 0 || strcmp(k, "DataSequenceInOrder") == 0) {
                if (parse_yesno(v, &b) < 0)
                        return text_add(rsp, k, "Reject");
                if (k[0] == 'I' && k[1] == 'n')
                        p->initial_r2t = b; /* OR with our No */
                else if (k[0] == 'I')
                        p->immediate_data = b; /* AND with our Yes */
                else if (strcmp(k, "DataPDUInOrder") == 0)
                        p->data_pdu_in_order = true; /* OR with our Yes */
                else
                        p->data_seq_in_order = true;
                bool res = (k[0] == 'I') ? b : true;
                return text_add(rsp, k, "%s", res ? "Yes" : "No");
        }
        if (strcmp(k, "MaxRecvDataSegmentLength") == 0) {
                if (parse_num(v, 512, ISCSI_MAX_DSL, &n) < 0)
                        return text_add(rsp, k, "Reject");
                p->max_xmit_dsl = n; /* declarative: the initiator's receive limit */
                return text_add(rsp, k, "%u", p->max_recv_dsl);
        }
        if (strcmp(k, "MaxBurstLength") == 0 || strcmp(k, "FirstBurstLength") == 0) {
                if (parse_num(v, 512, ISCSI_MAX_DSL, &n) < 0)
                        return text_add(rsp, k, "Reject");
                if (k[0] == 'M')
                        p->max_burst = MIN(n, OUR_MAX_BURST);
                else
                        p->first_burst = MIN(n, OUR_FIRST_BURST);
                return text_add(rsp, k, "%u", k[0] == 'M' ? p->max_burst : p->first_burst);
        }
        if (strcmp(k, "DefaultTime2Wait") == 0 || strcmp(k, "DefaultTime2Retain") == 0) {
                if (parse_num(v, 0, 3600, &n) < 0)
                        return text_add(rsp, k, "Reject");
                bool wait = strcmp(k, "DefaultTime2Wait") == 0;
                if (wait)
                        p->time2wait = MAX(n, 2u); /* max() */
                else
                        p->time2retain = MIN(n, 20u); /* min() */
                return text_add(rsp, k, "%u", wait ? p->time2wait : p->time2retain);
        }
        if (strcmp(k, "MaxOutstandingR2T") == 0) {
                if (parse_num(v, 1, 65535, &n) < 0)
                        return text_add(rsp, k, "Reject");
                p->max_outstanding_r2t = 1;
                return text_add(rsp, k, "1");
        }
        if (strcmp(k, "ErrorRecoveryLevel") == 0) {
                if (parse_num(v, 0, 2, &n) < 0)
                        return text_add(rsp, k, "Reject");
                return text_add(rsp, k, "0");
        }
        if (strcmp(k, "IFMarker") == 0 || strcmp(k, "OFMarker") == 0)
                return text_add(rsp, k, "No");
        if (strcmp(k, "IFMarkInt") == 0 || strcmp(k, "OFMarkInt") == 0)
                return text_add(rsp, k, "Irrelevant");
        return 1;
}

/* ---- Login Response ----------------------------------------------------------------------- */
static int login_respond(struct iscsi_conn *c, struct login_state *ls, const uint8_t *req, bool transit,
                         uint8_t nsg, uint8_t cls, uint8_t detail, const struct text_buf *t) {
        uint8_t bhs[BHS_LEN] = { 0 };
        uint8_t csg = (req[1] >> 2) & 3;

        bhs[0] = OP_LOGIN_RSP;
        bhs[1] = (uint8_t) ((transit ? 0x80 : 0) | csg << 2 | (transit ? nsg : 0));
        bhs[2] = 0x00; /* version-max */
        bhs[3] = 0x00; /* version-active */
        memcpy(bhs + 8, req + 8, 6);
        put_be16(bhs + 14, ls->tsih);
        memcpy(bhs + 16, req + 16, 4);
        bhs[36] = cls;
        bhs[37] = detail;
        if (t && t->len > 8192)
                return -EMSGSIZE;
        pthread_mutex_lock(&c->send_lock);
        put_be32(bhs + 24, c->stat_sn++);
        put_be32(bhs + 28, c->exp_cmd_sn);
        put_be32(bhs + 32, c->exp_cmd_sn + c->window - 1);
        int r = pdu_send(c->fd, bhs, t ? t->buf : NULL, t ? (uint32_t) t->len : 0, false, false, false);
        pthread_mutex_unlock(&c->send_lock);
        return r;
}

static int login_fail(struct iscsi_conn *c, struct login_state *ls, const uint8_t *req, uint8_t cls,
                      uint8_t detail) {
        orion_info("iscsi: login from %s ('%s') refused: status %02x%02x", c->peer_str,
                   ls->initiator[0] ? ls->initiator : "?", cls, detail);
        (void) login_respond(c, ls, req, false, 0, cls, detail, NULL);
        return -EACCES;
}

/* Security keys. Returns 0, or a login status (class<<8|detail) to fail with. */
static int security_key(struct iscsi_conn *c, struct login_state *ls, const char *k, const char *v,
                        struct text_buf *rsp, const struct chap_cfg *cc, bool *chap_r_ok) {
        if (strcmp(k, "AuthMethod") == 0) {
                if (ls->auth_required) {
                        if (!list_has(v, "CHAP"))
                                return 0x0201;
                        ls->chap = CHAP_WAIT_A;
                        return text_add(rsp, k, "CHAP") < 0 ? 0x0300 : 0;
                }
                if (list_has(v, "None"))
                        return text_add(rsp, k, "None") < 0 ? 0x0300 : 0;
                return text_add(rsp, k, "Reject") < 0 ? 0x0300 : 0;
        }
        if (strcmp(k, "CHAP_A") == 0) {
                if (ls->chap != CHAP_WAIT_A || !list_has(v, "5"))
                        return 0x0201;
                if (getrandom(ls->chap_challenge, sizeof(ls->chap_challenge), 0) != sizeof(ls->chap_challenge) ||
                    getrandom(&ls->chap_id, 1, 0) != 1)
                        return 0x0300;
                char hex[2 * CHAP_CHALLENGE_LEN + 3];
                encode_hex(ls->chap_challenge, sizeof(ls->chap_challenge), hex);
                if (text_add(rsp, "CHAP_A", "5") < 0 || text_add(rsp, "CHAP_I", "%u", ls->chap_id) < 0 ||
                    text_add(rsp, "CHAP_C", "%s", hex) < 0)
                        return 0x0300;
                ls->chap = CHAP_WAIT_R;
                return 0;
        }
        if (strcmp(k, "CHAP_N") == 0) {
                if (ls->chap != CHAP_WAIT_R || !cc->user || strcmp(v, cc->user) != 0)
                        return 0x0201;
                ls->chap_name_ok = true;
                return 0;
        }
        if (strcmp(k, "CHAP_R") == 0) {
                uint8_t got[64], want[16];
                int n = decode_binary(v, got, sizeof(got));
                if (ls->chap != CHAP_WAIT_R || n != 16 || !cc->secret)
                        return 0x0201;
                if (chap_md5(ls->chap_id, cc->secret, ls->chap_challenge, sizeof(ls->chap_challenge), want) < 0)
                        return 0x0300;
                if (memcmp(got, want, 16) != 0 || !ls->chap_name_ok) /* CHAP_N comes first */
                        return 0x0201;
                *chap_r_ok = true;
                return 0;
        }
        (void) c;
        return 1;
}

/* Mutual CHAP: the initiator's CHAP_I/CHAP_C, answered after its response is verified. */
static int mutual_answer(struct login_state *ls, const char *id_s, const char *chal_s, const struct chap_cfg *cc,
                         struct text_buf *rsp) {
        uint8_t chal[1024], out[16];
        uint32_t id;
        char hex[40];
        int n;

        if (!cc->mutual_user || !cc->mutual_secret)
                return 0x0201; /* initiator wants mutual auth we cannot give */
        if (parse_num(id_s, 0, 255, &id) < 0)
                return 0x0201;
        n = decode_binary(chal_s, chal, sizeof(chal));
        if (n <= 0)
                return 0x0201;
        /* Reflection: our own challenge coming back */
        if ((size_t) n == sizeof(ls->chap_challenge) && memcmp(chal, ls->chap_challenge, (size_t) n) == 0)
                return 0x0201;
        if (cc->secret && strcmp(cc->secret, cc->mutual_secret) == 0)
                return 0x0201;
        if (chap_md5((uint8_t) id, cc->mutual_secret, chal, (size_t) n, out) < 0)
                return 0x0300;
        encode_hex(out, 16, hex);
        if (text_add(rsp, "CHAP_N", "%s", cc->mutual_user) < 0 || text_add(rsp, "CHAP_R", "%s", hex) < 0)
                return 0x0300;
        return 0;
}

/* Names and session type: declared in the first PDU. Returns status or 0. */
static int identity_key(struct login_state *ls, const char *k, const char *v) {
        if (strcmp(k, "InitiatorName") == 0) {
                if (!*v || strlen(v) >= sizeof(ls->initiator))
                        return 0x0207;
                snprintf(ls->initiator, sizeof(ls->initiator), "%s", v);
                ls->got_initiator = true;
                return 0;
        }
        if (strcmp(k, "TargetName") == 0) {
                if (!*v || strlen(v) >= sizeof(ls->target_name))
                        return 0x0203;
                snprintf(ls->target_name, sizeof(ls->target_name), "%s", v);
                return 0;
        }
        if (strcmp(k, "SessionType") == 0) {
                if (strcmp(v, "Discovery") == 0)
                        ls->discovery = true;
                else if (strcmp(v, "Normal") == 0)
                        ls->discovery = false;
                else
                        return 0x0209;
                ls->session_type_seen = true;
                return 0;
        }
        if (strcmp(k, "InitiatorAlias") == 0)
                return 0;
        return 1;
}

/* First PDU: resolve target, ACL, and whether CHAP is required. Returns status or 0. */
static int login_first(struct iscsi_conn *c, struct login_state *ls, struct chap_cfg *cc) {
        if (!ls->got_initiator)
                return 0x0207;
        LOCK_GUARD(&g_tgt_lock);
        if (!ls->discovery) {
                if (!ls->target_name[0])
                        return 0x0207;
                ls->target = target_find_locked(ls->target_name);
                if (!ls->target)
                        return 0x0203;
                if (!target_acl_allows_locked(ls->target, ls->initiator, &c->peer))
                        return 0x0202;
        }
        target_chap_locked(ls->target, ls->discovery, cc);
        ls->auth_required = cc->secret != NULL;
        return 0;
}

static void copy_chap(struct chap_cfg *dst, char *store, size_t storelen, const struct chap_cfg *src) {
        /* Keep private copies: the target's strings may change after the lock is dropped. */
        const char *in[4] = { src->user, src->secret, src->mutual_user, src->mutual_secret };
        const char **out[4] = { &dst->user, &dst->secret, &dst->mutual_user, &dst->mutual_secret };
        size_t off = 0;
        for (int i = 0; i < 4; i++) {
                *out[i] = NULL;
                if (!in[i])
                        continue;
                size_t l = strlen(in[i]) + 1;
                if (off + l > storelen)
                        continue;
                memcpy(store + off, in[i], l);
                *out[i] = store + off;
                off += l;
        }
}

static int login_finish(struct iscsi_conn *c, struct login_state *ls);

/* Parse all keys of one complete login request. */
static int login_keys(struct iscsi_conn *c, struct login_state *ls, const uint8_t *req, char *text, size_t len,
                      struct text_buf *rsp, bool *ret_chap_ok) {
        uint8_t csg = (req[1] >> 2) & 3;
        struct chap_cfg cc = { 0 };
        char store[2048];
        const char *mut_i = NULL, *mut_c = NULL;
        int st;

        /* Identity first: the target and the auth requirement depend on it. */
        for (size_t off = 0; off < len;) {
                char *kv = text + off;
                size_t l = strnlen(kv, len - off);
                off += l + 1;
                char *eq = memchr(kv, '=', l);
                if (!eq || l == 0)
                        continue;
                *eq = 0;
                st = identity_key(ls, kv, eq + 1);
                *eq = '=';
                if (st > 0 && st != 1)
                        return st;
        }
        if (ls->first) {
                struct chap_cfg live;
                st = login_first(c, ls, &live);
                if (st)
                        return st;
                /* cc is re-read below; the requirement is fixed now */
        }
        {
                LOCK_GUARD(&g_tgt_lock);
                struct chap_cfg live;
                target_chap_locked(ls->target, ls->discovery, &live);
                copy_chap(&cc, store, sizeof(store), &live);
        }
        for (size_t off = 0; off < len;) {
                char *kv = text + off;
                size_t l = strnlen(kv, len - off);
                off += l + 1;
                if (l == 0)
                        continue;
                char *eq = memchr(kv, '=', l);
                if (!eq)
                        return 0x0200;
                *eq = 0;
                const char *k = kv, *v = eq + 1;
                if (strlen(k) > 63)
                        return 0x0200;
                if (identity_key(ls, k, v) != 1)
                        continue;
                if (strcmp(k, "CHAP_I") == 0) {
                        mut_i = v;
                        continue;
                }
                if (strcmp(k, "CHAP_C") == 0) {
                        mut_c = v;
                        continue;
                }
                if (csg == 0) {
                        st = security_key(c, ls, k, v, rsp, &cc, ret_chap_ok);
                        if (st < 0)
                                return 0x0300;
                        if (st == 0)
                                continue;
                        if (st != 1)
                                return st;
                }
                st = negotiate_op_key(ls, k, v, rsp);
                if (st < 0)
                        return 0x0300;
                if (st == 1 && text_add(rsp, k, "NotUnderstood") < 0)
                        return 0x0300;
        }
        if (*ret_chap_ok && (mut_i || mut_c)) {
                if (!mut_i || !mut_c)
                        return 0x0201;
                st = mutual_answer(ls, mut_i, mut_c, &cc, rsp);
                if (st)
                        return st;
        } else if (mut_i || mut_c)
                return 0x0201;
        return 0;
}

/* The first Login Request of a connection: the login's state, with the ISID and ITT that every
 * later request of the login must repeat. */
static struct login_state *login_start(struct iscsi_conn *c, const uint8_t *b) {
        struct login_state *ls = calloc(1, sizeof(*ls));

        if (!ls)
                return NULL;
        c->login = ls;
        ls->first = true;
        params_default(&ls->params);
        memcpy(ls->isid, b + 8, 6);
        ls->itt = pdu_itt(b);
        c->exp_cmd_sn = get_be32(b + 24);
        return ls;
}

/* Append a request's text to what earlier parts (C bit) brought; -E2BIG past LOGIN_MAX_TEXT. */
static int login_accumulate(struct login_state *ls, const struct iscsi_pdu *req) {
        size_t nlen = ls->pending_len + req->data_len;
        char *nb;

        if (nlen > LOGIN_MAX_TEXT)
                return -E2BIG;
        nb = realloc(ls->pending, nlen + 1);
        if (!nb)
                return -ENOMEM;
        ls->pending = nb;
        if (req->data_len)
                memcpy(ls->pending + ls->pending_len, req->data, req->data_len);
        ls->pending_len = nlen;
        ls->pending[nlen] = 0;
        return 0;
}

/* Full Feature Phase: the negotiated parameters take effect and the login state goes. */
static void login_done(struct iscsi_conn *c, struct login_state *ls) {
        c->sess->params = ls->params;
        c->lim.header_digest = ls->params.header_digest;
        c->lim.data_digest = ls->params.data_digest;
        c->lim.max_recv_dsl = ls->params.max_recv_dsl;
        free(ls->pending);
        free(ls);
        c->login = NULL;
}

int login_handle(struct iscsi_conn *c, struct iscsi_pdu *req) {
        struct login_state *ls = c->login;
        const uint8_t *b = req->bhs;
        bool transit = b[1] & 0x80, cont = b[1] & 0x40;
        uint8_t csg = (b[1] >> 2) & 3, nsg = b[1] & 3;
        struct text_buf rsp = { 0 };
        bool chap_ok = false;
        int st, r;

        if (pdu_opcode(b) != OP_LOGIN_REQ)
                return -EPROTO;
        if (!ls) {
                ls = login_start(c, b);
                if (!ls)
                        return -ENOMEM;
                if (get_be16(b + 14) != 0) /* adding a connection: we have one per session */
                        return login_fail(c, ls, b, 0x02, 0x0a);
        }
        if (b[3] > 0x00) /* version-min above ours */
                return login_fail(c, ls, b, 0x02, 0x05);
        if (csg == 2 || (transit && (nsg == 2 || nsg <= csg)) || (cont && transit))
                return login_fail(c, ls, b, 0x02, 0x00);
        if (memcmp(ls->isid, b + 8, 6) != 0)
                return login_fail(c, ls, b, 0x02, 0x00);

        /* Accumulate continued text (C bit), answering each part with an empty response. */
        r = login_accumulate(ls, req);
        if (r == -E2BIG)
                return login_fail(c, ls, b, 0x02, 0x00);
        if (r < 0)
                return r;
        if (cont)
                return login_respond(c, ls, b, false, 0, 0, 0, NULL) < 0 ? -EIO : 0;

        st = login_keys(c, ls, b, ls->pending, ls->pending_len, &rsp, &chap_ok);
        ls->pending_len = 0;
        if (st) {
                text_free(&rsp);
                return login_fail(c, ls, b, (uint8_t) (st >> 8), (uint8_t) st);
        }
        if (ls->first && !ls->discovery && !ls->tpgt_sent) {
                (void) text_add(&rsp, "TargetPortalGroupTag", "%u", target_portal_group());
                ls->tpgt_sent = true;
        }
        ls->first = false;
        if (chap_ok) {
                ls->chap = CHAP_DONE;
                ls->authenticated = true;
        }
        /* Leaving the security stage (or skipping it) needs auth when required. */
        if (ls->auth_required && !ls->authenticated && (csg != 0 || (transit && ls->chap != CHAP_DONE))) {
                if (csg != 0) {
                        text_free(&rsp);
                        return login_fail(c, ls, b, 0x02, 0x01);
                }
                transit = false; /* CHAP still going on */
        }
        if (transit && nsg == 3) {
                ls->tsih = 0; /* set by login_finish */
                r = login_finish(c, ls);
                if (r < 0) {
                        text_free(&rsp);
                        return login_fail(c, ls, b, 0x03, 0x00);
                }
                ls->tsih = c->sess->tsih;
        }
        r = login_respond(c, ls, b, transit, nsg, 0, 0, &rsp);
        text_free(&rsp);
        if (r < 0)
                return r;
        if (transit && nsg == 3) {
                login_done(c, ls);
                return 1;
        }
        return 0;
}

static int login_finish(struct iscsi_conn *c, struct login_state *ls) {
        struct iscsi_params *p = &ls->params;
        if (p->first_burst > p->max_burst)
                p->first_burst = p->max_burst;
        struct iscsi_session *s = session_new(ls->initiator, ls->isid, ls->discovery, ls->target);
        if (!s)
                return -ENOMEM;
        s->conn = c;
        c->sess = s;
        session_register(s);
        orion_info("iscsi: %s session from %s ('%s')%s%s, tsih %u", ls->discovery ? "discovery" : "normal",
                   c->peer_str, ls->initiator, ls->discovery ? "" : " to ", ls->discovery ? "" : ls->target_name,
                   s->tsih);
        return 0;
}

void login_free(struct iscsi_conn *c) {
        struct login_state *ls = c->login;
        if (!ls)
                return;
        free(ls->pending);
        free(ls);
        c->login = NULL;
}
