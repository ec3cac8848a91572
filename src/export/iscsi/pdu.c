/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* iSCSI PDU framing: BHS/AHS/data segment receive with every length checked against the
 * negotiated limits, send with padding, and CRC32C header/data digests (ISA-L when built). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#if HAVE_ISAL
#include <isa-l/crc.h>
#endif

#include "iscsi.h"

#if !HAVE_ISAL
static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init_table(void) {
        for (uint32_t i = 0; i < 256; i++) {
                uint32_t c = i;
                for (int k = 0; k < 8; k++)
                        c = (c & 1) ? (c >> 1) ^ 0x82f63b78u : c >> 1; /* reflected 0x1EDC6F41 */
                crc_table[i] = c;
        }
}
#endif

/* Raw CRC32C update without pre/post inversion (like ISA-L's crc32_iscsi). */
uint32_t crc32c(const void *buf, size_t len, uint32_t crc) {
#if HAVE_ISAL
        const unsigned char *p = buf;
        while (len > 0) {
                int n = len > (1u << 30) ? (1 << 30) : (int) len;
                crc = crc32_iscsi((unsigned char *) p, n, crc);
                p += n;
                len -= (size_t) n;
        }
        return crc;
#else
        const uint8_t *p = buf;
        pthread_once(&crc_once, crc_init_table);
        while (len--)
                crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
        return crc;
#endif
}

uint32_t iscsi_digest(const void *buf, size_t len) {
        return ~crc32c(buf, len, 0xffffffffu);
}

static void put_le32(uint8_t *p, uint32_t v) {
        p[0] = (uint8_t) v;
        p[1] = (uint8_t) (v >> 8);
        p[2] = (uint8_t) (v >> 16);
        p[3] = (uint8_t) (v >> 24);
}
static uint32_t get_le32(const uint8_t *p) {
        return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 24;
}

/* Read exactly len bytes: first what the buffer holds, then large remainders straight into
 * dst, small ones through the buffer (one recv often brings several PDUs). 0, -ECONNRESET on
 * EOF, -errno. */
static int rd_read(struct pdu_reader *rd, void *dst, size_t len) {
        uint8_t *p = dst;
        size_t have = rd->end - rd->start, n = MIN(have, len);
        if (n) {
                memcpy(p, rd->buf + rd->start, n);
                rd->start += n;
                p += n;
                len -= n;
        }
        while (len > 0) {
                bool direct = len >= rd->cap / 2;
                ssize_t got;
                if (direct)
                        got = recv(rd->fd, p, len, 0);
                else {
                        rd->start = rd->end = 0;
                        got = recv(rd->fd, rd->buf, rd->cap, 0);
                }
                if (got < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (got == 0)
                        return -ECONNRESET;
                if (direct) {
                        p += got;
                        len -= (size_t) got;
                        continue;
                }
                rd->end = (size_t) got;
                n = MIN((size_t) got, len);
                memcpy(p, rd->buf, n);
                rd->start = n;
                p += n;
                len -= n;
        }
        return 0;
}

void pdu_reader_init(struct pdu_reader *rd, int fd, uint8_t *buf, size_t cap) {
        *rd = (struct pdu_reader){ .fd = fd, .buf = buf, .cap = cap };
}

/* Bytes of the whole PDU (BHS, AHS, digests, padded data) whose BHS starts at b. */
static size_t pdu_wire_len(const uint8_t *b, const struct pdu_limits *lim) {
        size_t dsl = pdu_dsl(b);
        size_t n = BHS_LEN + (size_t) b[4] * 4 + (lim->header_digest ? 4 : 0);
        if (dsl)
                n += ((dsl + 3) & ~(size_t) 3) + (lim->data_digest ? 4 : 0);
        return n;
}

bool pdu_reader_has_pdu(const struct pdu_reader *rd, const struct pdu_limits *lim) {
        size_t have = rd->end - rd->start;
        return have >= BHS_LEN && have >= pdu_wire_len(rd->buf + rd->start, lim);
}

bool pdu_reader_has_bytes(const struct pdu_reader *rd) {
        return rd->end > rd->start;
}

void pdu_clear(struct iscsi_pdu *p) {
        free(p->ahs);
        free(p->data);
        memset(p, 0, sizeof(*p));
}

int pdu_read(struct pdu_reader *rd, struct iscsi_pdu *p, const struct pdu_limits *lim, bool *data_digest_bad) {
        uint8_t dig[4];
        int r;

        memset(p, 0, sizeof(*p));
        *data_digest_bad = false;
        r = rd_read(rd, p->bhs, BHS_LEN);
        if (r < 0)
                return r;
        p->ahs_len = (uint32_t) p->bhs[4] * 4;
        p->data_len = pdu_dsl(p->bhs);
        if (p->data_len > lim->max_recv_dsl)
                return -EMSGSIZE;
        if (p->ahs_len > 0) {
                p->ahs = malloc(p->ahs_len);
                if (!p->ahs)
                        return -ENOMEM;
                r = rd_read(rd, p->ahs, p->ahs_len);
                if (r < 0)
                        goto fail;
        }
        if (lim->header_digest) {
                uint32_t crc;
                r = rd_read(rd, dig, 4);
                if (r < 0)
                        goto fail;
                crc = crc32c(p->bhs, BHS_LEN, 0xffffffffu);
                if (p->ahs_len)
                        crc = crc32c(p->ahs, p->ahs_len, crc);
                if (~crc != get_le32(dig)) {
                        r = -EBADMSG;
                        goto fail;
                }
        }
        if (p->data_len > 0) {
                uint32_t padded = (p->data_len + 3) & ~3u;
                p->data = malloc(padded + 1); /* +1: text parsers may terminate it */
                if (!p->data) {
                        r = -ENOMEM;
                        goto fail;
                }
                r = rd_read(rd, p->data, padded);
                if (r < 0)
                        goto fail;
                if (lim->data_digest) {
                        r = rd_read(rd, dig, 4);
                        if (r < 0)
                                goto fail;
                        if (iscsi_digest(p->data, padded) != get_le32(dig))
                                *data_digest_bad = true;
                }
                p->data[p->data_len] = 0;
        }
        return 0;
fail:
        pdu_clear(p);
        return r;
}

int pdu_recv(int fd, struct iscsi_pdu *p, const struct pdu_limits *lim, bool *data_digest_bad) {
        struct pdu_reader rd;
        pdu_reader_init(&rd, fd, NULL, 0); /* unbuffered: reads exactly one PDU */
        return pdu_read(&rd, p, lim, data_digest_bad);
}

int pdu_send(int fd, uint8_t *bhs, const void *data, uint32_t len, bool hdig, bool ddig, bool more) {
        static const uint8_t zeros[4];
        uint8_t hd[4], dd[4];
        struct iovec iov[6];
        int n = 0;
        uint32_t pad = (4 - (len & 3)) & 3;

        if (len > ISCSI_MAX_DSL)
                return -EMSGSIZE;
        put_be24(bhs + 5, len);
        bhs[4] = 0; /* we never send AHS */
        iov[n++] = (struct iovec){ bhs, BHS_LEN };
        if (hdig) {
                put_le32(hd, iscsi_digest(bhs, BHS_LEN));
                iov[n++] = (struct iovec){ hd, 4 };
        }
        if (len > 0) {
                iov[n++] = (struct iovec){ (void *) data, len };
                if (pad)
                        iov[n++] = (struct iovec){ (void *) zeros, pad };
                if (ddig) {
                        uint32_t crc = crc32c(data, len, 0xffffffffu);
                        if (pad)
                                crc = crc32c(zeros, pad, crc);
                        put_le32(dd, ~crc);
                        iov[n++] = (struct iovec){ dd, 4 };
                }
        }
        struct iovec *v = iov;
        while (n > 0) {
                struct msghdr mh = { .msg_iov = v, .msg_iovlen = (size_t) n };
                ssize_t w = sendmsg(fd, &mh, MSG_NOSIGNAL | (more ? MSG_MORE : 0));
                if (w < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                while (n > 0 && (size_t) w >= v->iov_len) {
                        w -= (ssize_t) v->iov_len;
                        v++;
                        n--;
                }
                if (n > 0) {
                        v->iov_base = (uint8_t *) v->iov_base + w;
                        v->iov_len -= (size_t) w;
                }
        }
        return 0;
}
