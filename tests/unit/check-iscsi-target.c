/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit tests of the iSCSI target: CRC32C digests, PDU framing limits, login key negotiation
 * over a socketpair, and SCSI commands (sense, ranges, UNMAP, COMPARE AND WRITE, reservations)
 * run directly against LUs of memory nodes. */
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include "t-core.h"
#include "export/iscsi/iscsi.h"

static struct daemon_config g_cfg;
static struct iscsi_target *g_t;

static void add_export(const char *name, const char *node, const char *size, bool ro) {
        struct orion_error err = { 0 };
        t_node_add(node, "memory", t_params("size", size, NULL));
        struct json_object *o = json_object_new_object();
        json_object_object_add(o, "iscsi-target", json_object_new_string("unit"));
        ck_assert_msg(export_add(name, node, PROTO_ISCSI, ro, NULL, o, &err) == 0, "%s", err.msg);
        json_object_put(o);
}

static void setup(void) {
        struct orion_error err = { 0 };
        t_core_setup();
        config_init(&g_cfg);
        free(g_cfg.iscsi_listen);
        g_cfg.iscsi_listen = strdup("");
        ck_assert_int_eq(exports_start(&g_cfg, &err), 0);
        add_export("e0", "m0", "1M", false);
        add_export("e1", "m1", "64K", true);
        pthread_mutex_lock(&g_tgt_lock);
        g_t = target_find_locked("iqn.2026-11.org.orion:unit");
        pthread_mutex_unlock(&g_tgt_lock);
        ck_assert_ptr_nonnull(g_t);
}

/* ---- CRC32C and PDUs ------------------------------------------------------------------------ */
START_TEST(crc) {
        /* RFC 3720 B.4 test vectors and the usual check value */
        uint8_t z[32] = { 0 }, ff[32], inc[32];
        memset(ff, 0xff, sizeof(ff));
        for (int i = 0; i < 32; i++)
                inc[i] = (uint8_t) i;
        ck_assert_uint_eq(iscsi_digest("123456789", 9), 0xe3069283);
        ck_assert_uint_eq(iscsi_digest(z, 32), 0x8a9136aa);
        ck_assert_uint_eq(iscsi_digest(ff, 32), 0x62a8ab43);
        ck_assert_uint_eq(iscsi_digest(inc, 32), 0x46dd794e);
        /* incremental update equals one pass */
        uint32_t c = crc32c(inc, 10, 0xffffffffu);
        ck_assert_uint_eq(~crc32c(inc + 10, 22, c), 0x46dd794e);
}
END_TEST

START_TEST(pdu_framing) {
        int sv[2];
        struct iscsi_pdu p;
        bool bad;
        uint8_t bhs[BHS_LEN] = { 0x01, 0x80 };
        struct pdu_limits lim = { .header_digest = true, .data_digest = true, .max_recv_dsl = 4096 };

        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
        /* a round trip with digests and padding */
        ck_assert_int_eq(pdu_send(sv[0], bhs, "abcde", 5, true, true, false), 0);
        ck_assert_int_eq(pdu_recv(sv[1], &p, &lim, &bad), 0);
        ck_assert(!bad);
        ck_assert_uint_eq(p.data_len, 5);
        ck_assert_mem_eq(p.data, "abcde", 5);
        pdu_clear(&p);
        /* a corrupted data digest is reported, the PDU still framed */
        uint8_t raw[BHS_LEN + 4 + 8 + 4];
        memset(bhs, 0, sizeof(bhs));
        put_be24(bhs + 5, 8);
        memcpy(raw, bhs, BHS_LEN);
        uint32_t hd = iscsi_digest(bhs, BHS_LEN);
        memcpy(raw + BHS_LEN, &hd, 4); /* little-endian host: the wire order */
        memcpy(raw + BHS_LEN + 4, "12345678", 8);
        memset(raw + BHS_LEN + 12, 0, 4);
        ck_assert_int_eq(write(sv[0], raw, sizeof(raw)), (ssize_t) sizeof(raw));
        ck_assert_int_eq(pdu_recv(sv[1], &p, &lim, &bad), 0);
        ck_assert(bad);
        pdu_clear(&p);
        /* a corrupted header digest is fatal */
        raw[BHS_LEN] ^= 1;
        ck_assert_int_eq(write(sv[0], raw, sizeof(raw)), (ssize_t) sizeof(raw));
        ck_assert_int_eq(pdu_recv(sv[1], &p, &lim, &bad), -EBADMSG);
        /* oversized segment refused before reading it */
        close(sv[0]);
        close(sv[1]);
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
        memset(bhs, 0, sizeof(bhs));
        put_be24(bhs + 5, 4097);
        ck_assert_int_eq(write(sv[0], bhs, BHS_LEN), BHS_LEN);
        lim.header_digest = lim.data_digest = false;
        ck_assert_int_eq(pdu_recv(sv[1], &p, &lim, &bad), -EMSGSIZE);
        /* truncated PDU then EOF */
        ck_assert_int_eq(write(sv[0], bhs, 20), 20);
        close(sv[0]);
        ck_assert_int_lt(pdu_recv(sv[1], &p, &lim, &bad), 0);
        close(sv[1]);
}
END_TEST

/* The buffered reader: several PDUs from one recv, a PDU split across refills, a data
 * segment larger than the buffer read around it, and has_pdu exact at the boundaries. */
START_TEST(pdu_reader_buffering) {
        int sv[2];
        struct iscsi_pdu p;
        bool bad;
        uint8_t bhs[BHS_LEN] = { 0x01, 0x80 }, buf[128], big[300];
        struct pdu_limits lim = { .header_digest = true, .max_recv_dsl = 4096 };
        struct pdu_reader rd;

        for (size_t i = 0; i < sizeof(big); i++)
                big[i] = (uint8_t) i;
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
        pdu_reader_init(&rd, sv[1], buf, sizeof(buf));
        ck_assert(!pdu_reader_has_pdu(&rd, &lim));
        ck_assert_int_eq(pdu_send(sv[0], bhs, "ab", 2, true, false, true), 0);
        ck_assert_int_eq(pdu_send(sv[0], bhs, big, sizeof(big), true, false, true), 0);
        ck_assert_int_eq(pdu_send(sv[0], bhs, NULL, 0, true, false, false), 0);
        ck_assert_int_eq(pdu_read(&rd, &p, &lim, &bad), 0);
        ck_assert_uint_eq(p.data_len, 2);
        ck_assert_mem_eq(p.data, "ab", 2);
        pdu_clear(&p);
        /* 128 bytes were taken in: the rest of the second PDU is not buffered yet */
        ck_assert(pdu_reader_has_bytes(&rd));
        ck_assert(!pdu_reader_has_pdu(&rd, &lim));
        ck_assert_int_eq(pdu_read(&rd, &p, &lim, &bad), 0);
        ck_assert_uint_eq(p.data_len, sizeof(big));
        ck_assert_mem_eq(p.data, big, sizeof(big));
        pdu_clear(&p);
        ck_assert_int_eq(pdu_read(&rd, &p, &lim, &bad), 0);
        ck_assert_uint_eq(p.data_len, 0);
        ck_assert(!pdu_reader_has_bytes(&rd));
        /* exactly one whole PDU buffered: has_pdu says so; a corrupt header digest still fails */
        ck_assert_int_eq(pdu_send(sv[0], bhs, "xy", 2, true, false, false), 0);
        ck_assert_int_eq(write(sv[0], bhs, 10), 10);
        ck_assert_int_eq(pdu_read(&rd, &p, &lim, &bad), 0);
        pdu_clear(&p);
        ck_assert(pdu_reader_has_bytes(&rd));
        ck_assert(!pdu_reader_has_pdu(&rd, &lim));
        ck_assert_int_eq(write(sv[0], bhs + 10, BHS_LEN - 10), BHS_LEN - 10);
        ck_assert_int_eq(write(sv[0], "\0\0\0\0", 4), 4);
        ck_assert_int_eq(pdu_read(&rd, &p, &lim, &bad), -EBADMSG);
        close(sv[0]);
        ck_assert_int_eq(pdu_read(&rd, &p, &lim, &bad), -ECONNRESET);
        close(sv[1]);
}
END_TEST

/* ---- Login negotiation through conn_serve ------------------------------------------------ */
static void *serve(void *arg) {
        int fd = *(int *) arg;
        conn_serve(fd, NULL);
        close(fd);
        return NULL;
}

static bool has_key(const struct iscsi_pdu *p, const char *kv) {
        for (uint32_t off = 0; off < p->data_len;) {
                const char *s = (const char *) p->data + off;
                if (strcmp(s, kv) == 0)
                        return true;
                off += (uint32_t) strlen(s) + 1;
        }
        return false;
}

static void login_pdu(int fd, uint8_t flags, const char *text, size_t len) {
        uint8_t bhs[BHS_LEN] = { 0x43, flags };
        memcpy(bhs + 8, "\x80\x01\x02\x03\x04\x05", 6);
        put_be32(bhs + 16, 7);
        put_be32(bhs + 24, 1);
        ck_assert_int_eq(pdu_send(fd, bhs, text, (uint32_t) len, false, false, false), 0);
}

START_TEST(login_negotiation) {
        int sv[2];
        pthread_t th;
        struct iscsi_pdu p;
        bool bad;
        struct pdu_limits lim = { .max_recv_dsl = 65536 };
        static const char keys[] = "InitiatorName=iqn.2026-11.test:unit\0TargetName=iqn.2026-11.org.orion:unit\0"
                                   "SessionType=Normal\0HeaderDigest=None,CRC32C\0DataDigest=CRC32C,None\0"
                                   "InitialR2T=No\0ImmediateData=No\0MaxBurstLength=4194304\0"
                                   "FirstBurstLength=262144\0MaxConnections=4\0ErrorRecoveryLevel=2\0"
                                   "MaxRecvDataSegmentLength=100\0X-unknown=1\0DefaultTime2Wait=0\0"
                                   "MaxOutstandingR2T=8\0OFMarker=Yes\0";

        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
        ck_assert_int_eq(pthread_create(&th, NULL, serve, &sv[1]), 0);
        login_pdu(sv[0], 0x87, keys, sizeof(keys) - 1);
        ck_assert_int_eq(pdu_recv(sv[0], &p, &lim, &bad), 0);
        ck_assert_uint_eq(pdu_opcode(p.bhs), OP_LOGIN_RSP);
        ck_assert_uint_eq(p.bhs[36], 0);
        ck_assert_uint_eq(p.bhs[1], 0x87); /* T, CSG 1, NSG 3 */
        ck_assert_uint_ne(get_be16(p.bhs + 14), 0); /* a TSIH */
        ck_assert(has_key(&p, "HeaderDigest=None"));
        ck_assert(has_key(&p, "DataDigest=CRC32C"));
        ck_assert(has_key(&p, "InitialR2T=No"));
        ck_assert(has_key(&p, "ImmediateData=No"));
        ck_assert(has_key(&p, "MaxBurstLength=1048576"));
        ck_assert(has_key(&p, "FirstBurstLength=262144"));
        ck_assert(has_key(&p, "MaxConnections=1"));
        ck_assert(has_key(&p, "ErrorRecoveryLevel=0"));
        ck_assert(has_key(&p, "MaxRecvDataSegmentLength=Reject"));
        ck_assert(has_key(&p, "X-unknown=NotUnderstood"));
        ck_assert(has_key(&p, "DefaultTime2Wait=2"));
        ck_assert(has_key(&p, "MaxOutstandingR2T=1"));
        ck_assert(has_key(&p, "OFMarker=No"));
        ck_assert(has_key(&p, "TargetPortalGroupTag=1"));
        pdu_clear(&p);
        /* Full feature phase with a data digest now: a NOP-Out ping is echoed. */
        uint8_t nop[BHS_LEN] = { 0x40, 0x80 };
        put_be32(nop + 16, 9);
        put_be32(nop + 20, RSVD_TAG);
        ck_assert_int_eq(pdu_send(sv[0], nop, "ping", 4, false, true, false), 0);
        lim.data_digest = true;
        ck_assert_int_eq(pdu_recv(sv[0], &p, &lim, &bad), 0);
        ck_assert(!bad);
        ck_assert_uint_eq(pdu_opcode(p.bhs), OP_NOP_IN);
        ck_assert_mem_eq(p.data, "ping", 4);
        pdu_clear(&p);
        close(sv[0]);
        pthread_join(th, NULL);
}
END_TEST

START_TEST(login_refusals) {
        static const struct {
                const char text[128]; /* NUL-separated keys, ending in two NULs */
                uint8_t flags, cls, detail;
        } cases[] = {
                { "TargetName=iqn.2026-11.org.orion:unit", 0x87, 2, 7 },                  /* no InitiatorName */
                { "InitiatorName=iqn.x:y\0TargetName=iqn.2026-11.org.orion:nope", 0x87, 2, 3 }, /* unknown target */
                { "InitiatorName=iqn.x:y", 0x87, 2, 7 },                                  /* Normal, no target */
                { "InitiatorName=iqn.x:y\0SessionType=Weird", 0x87, 2, 9 },
                { "InitiatorName=iqn.x:y\0SessionType=Discovery", 0x8b, 2, 0 },           /* NSG 3 -> 3? bad */
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                int sv[2];
                pthread_t th;
                struct iscsi_pdu p;
                bool bad;
                struct pdu_limits lim = { .max_recv_dsl = 65536 };
                size_t len = 0;
                while (cases[i].text[len] || cases[i].text[len + 1])
                        len++;
                ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
                ck_assert_int_eq(pthread_create(&th, NULL, serve, &sv[1]), 0);
                login_pdu(sv[0], cases[i].flags, cases[i].text, len + 1);
                ck_assert_int_eq(pdu_recv(sv[0], &p, &lim, &bad), 0);
                ck_assert_msg(p.bhs[36] == cases[i].cls && p.bhs[37] == cases[i].detail, "case %zu: %02x%02x", i,
                              p.bhs[36], p.bhs[37]);
                pdu_clear(&p);
                close(sv[0]);
                pthread_join(th, NULL);
        }
}
END_TEST

/* ---- SCSI ---------------------------------------------------------------------------------- */
static struct iscsi_session *g_s1, *g_s2;

static void scsi_setup(void) {
        setup();
        static const uint8_t isid1[6] = { 0x80, 0, 0, 0, 0, 1 }, isid2[6] = { 0x80, 0, 0, 0, 0, 2 };
        g_s1 = session_new("iqn.test:one", isid1, false, g_t);
        g_s2 = session_new("iqn.test:two", isid2, false, g_t);
}

static struct scsi_cmd run(struct iscsi_session *s, uint64_t lun, const uint8_t *cdb, const void *out, uint32_t out_len) {
        static uint8_t cdbbuf[16];
        memset(cdbbuf, 0, sizeof(cdbbuf));
        memcpy(cdbbuf, cdb, 16);
        struct scsi_cmd c = { .lu = target_lu_get(g_t, lun), .sess = s, .cdb = cdbbuf, .cdb_len = 16,
                              .out = out, .out_len = out_len };
        scsi_exec(&c);
        lu_unref(c.lu);
        return c;
}

#define SENSE(c) ((unsigned) ((c).sense[2] & 0xf) << 16 | (unsigned) (c).sense[12] << 8 | (c).sense[13])

START_TEST(scsi_basics) {
        uint8_t cdb[16] = { 0x25 };
        struct scsi_cmd c = run(g_s1, 0, cdb, NULL, 0);
        ck_assert_uint_eq(c.status, SAM_GOOD);
        ck_assert_uint_eq(get_be32(c.in), 2047);
        ck_assert_uint_eq(get_be32(c.in + 4), 512);
        free(c.in);
        /* READ(16) past the end: LBA OUT OF RANGE */
        uint8_t rd[16] = { 0x88 };
        put_be64(rd + 2, 2047);
        put_be32(rd + 10, 2);
        c = run(g_s1, 0, rd, NULL, 0);
        ck_assert_uint_eq(c.status, SAM_CHECK_CONDITION);
        ck_assert_uint_eq(SENSE(c), 0x052100);
        /* RDPROTECT set: INVALID FIELD IN CDB */
        put_be32(rd + 10, 1);
        rd[1] = 0x20;
        c = run(g_s1, 0, rd, NULL, 0);
        ck_assert_uint_eq(SENSE(c), 0x052400);
        /* unknown opcode */
        uint8_t bad[16] = { 0xc7 };
        c = run(g_s1, 0, bad, NULL, 0);
        ck_assert_uint_eq(SENSE(c), 0x052000);
        /* a LUN that does not exist: INQUIRY says PQ 3, others LUN NOT SUPPORTED */
        uint8_t inq[16] = { 0x12, 0, 0, 0, 36 };
        c = run(g_s1, 9, inq, NULL, 0);
        ck_assert_uint_eq(c.status, SAM_GOOD);
        ck_assert_uint_eq(c.in[0], 0x7f);
        free(c.in);
        uint8_t tur[16] = { 0 };
        c = run(g_s1, 9, tur, NULL, 0);
        ck_assert_uint_eq(SENSE(c), 0x052500);
        /* write to the read-only LU */
        uint8_t wr[16] = { 0x2a, 0, 0, 0, 0, 0, 0, 0, 1 };
        uint8_t blk[512] = { 1 };
        c = run(g_s1, 1, wr, blk, sizeof(blk));
        ck_assert_uint_eq(SENSE(c), 0x072700);
        /* REPORT LUNS lists 0 and 1 */
        uint8_t rl[16] = { 0xa0 };
        put_be32(rl + 6, 64);
        c = run(g_s1, 0, rl, NULL, 0);
        ck_assert_uint_eq(get_be32(c.in), 16);
        ck_assert_uint_eq(c.in[9], 0);
        ck_assert_uint_eq(c.in[17], 1);
        free(c.in);
}
END_TEST

START_TEST(scsi_unmap_caw) {
        uint8_t blk[1024];
        memset(blk, 'A', sizeof(blk));
        uint8_t wr[16] = { 0x2a, 0, 0, 0, 0, 8, 0, 0, 2 };
        struct scsi_cmd c = run(g_s1, 0, wr, blk, sizeof(blk));
        ck_assert_uint_eq(c.status, SAM_GOOD);
        /* COMPARE AND WRITE: match then write, then miscompare at byte 0 */
        uint8_t caw[16] = { 0x89 };
        put_be64(caw + 2, 8);
        caw[13] = 1;
        memset(blk + 512, 'B', 512);
        c = run(g_s1, 0, caw, blk, sizeof(blk));
        ck_assert_uint_eq(c.status, SAM_GOOD);
        c = run(g_s1, 0, caw, blk, sizeof(blk));
        ck_assert_uint_eq(SENSE(c), 0x0e1d00);
        ck_assert_uint_eq(get_be32(c.sense + 3), 0);
        /* wrong Data-Out size */
        c = run(g_s1, 0, caw, blk, 512);
        ck_assert_uint_eq(SENSE(c), 0x052400);
        /* UNMAP: zero-block descriptor fine, out of range refused, data reads back as zeroes */
        uint8_t um[16] = { 0x42, 0, 0, 0, 0, 0, 0, 0, 40 };
        uint8_t pl[40] = { 0 };
        put_be16(pl, 38);
        put_be16(pl + 2, 32);
        put_be64(pl + 8, 8);
        put_be32(pl + 16, 2);
        put_be64(pl + 24, 100);
        c = run(g_s1, 0, um, pl, sizeof(pl));
        ck_assert_uint_eq(c.status, SAM_GOOD);
        uint8_t rd[16] = { 0x28, 0, 0, 0, 0, 8, 0, 0, 2 };
        c = run(g_s1, 0, rd, NULL, 0);
        ck_assert_uint_eq(c.in_len, 1024);
        for (int i = 0; i < 1024; i++)
                ck_assert_uint_eq(c.in[i], 0);
        free(c.in);
        put_be64(pl + 24, 2047);
        put_be32(pl + 32, 2);
        c = run(g_s1, 0, um, pl, sizeof(pl));
        ck_assert_uint_eq(SENSE(c), 0x052100);
        /* short parameter list */
        um[8] = 4;
        c = run(g_s1, 0, um, pl, 4);
        ck_assert_uint_eq(SENSE(c), 0x051a00);
}
END_TEST

START_TEST(scsi_swp_sanitize) {
        /* MODE SELECT(6) of the control page with SWP: writes refused, the other nexus gets
         * MODE PARAMETERS CHANGED once, MODE SENSE shows WP; a non-changeable bit is refused. */
        uint8_t ms[16] = { 0x15, 0x10, 0, 0, 16 };
        uint8_t pl[16] = { 0, 0, 0, 0, 0x0a, 0x0a, 0, 0x10, 0x08, 0, 0, 0, 0xff, 0xff, 0, 0 };
        struct scsi_cmd c = run(g_s1, 0, ms, pl, sizeof(pl));
        ck_assert_uint_eq(c.status, SAM_GOOD);
        uint8_t wr[16] = { 0x2a, 0, 0, 0, 0, 0, 0, 0, 1 }, blk[512] = { 1 };
        c = run(g_s1, 0, wr, blk, sizeof(blk));
        ck_assert_uint_eq(SENSE(c), 0x072702);
        uint8_t tur[16] = { 0 };
        c = run(g_s2, 0, tur, NULL, 0);
        ck_assert_uint_eq(SENSE(c), 0x062a01);
        c = run(g_s2, 0, tur, NULL, 0);
        ck_assert_uint_eq(c.status, SAM_GOOD);
        uint8_t sense6[16] = { 0x1a, 0x08, 0x0a, 0, 64 };
        c = run(g_s2, 0, sense6, NULL, 0);
        ck_assert_uint_eq(c.in[2] & 0x80, 0x80);
        ck_assert_uint_eq(c.in[4 + 4] & 0x08, 0x08);
        free(c.in);
        pl[7] = 0x00; /* queue algorithm modifier is not changeable */
        c = run(g_s1, 0, ms, pl, sizeof(pl));
        ck_assert_uint_eq(SENSE(c), 0x052600);
        pl[7] = 0x10;
        pl[8] = 0;
        c = run(g_s1, 0, ms, pl, sizeof(pl));
        ck_assert_uint_eq(c.status, SAM_GOOD);

        /* SANITIZE OVERWRITE with a 2-byte pattern, 2 passes inverted: the last pass wins */
        uint8_t san[16] = { 0x48, 0x01, 0, 0, 0, 0, 0, 0, 6 };
        uint8_t par[6] = { 0x82, 0, 0, 2, 0x0f, 0xf0 };
        c = run(g_s1, 0, san, par, sizeof(par));
        ck_assert_uint_eq(c.status, SAM_GOOD);
        uint8_t rd[16] = { 0x28, 0, 0, 0, 0x07, 0xff, 0, 0, 1 };
        c = run(g_s1, 0, rd, NULL, 0);
        ck_assert_uint_eq(c.in_len, 512);
        for (int i = 0; i < 512; i++)
                ck_assert_uint_eq(c.in[i], (i & 1) ? 0x0f : 0xf0);
        free(c.in);
        /* bad parameters: OVERWRITE COUNT 0, pattern length not matching, CRYPTO ERASE, and a
         * parameter list for BLOCK ERASE */
        par[0] = 0;
        c = run(g_s1, 0, san, par, sizeof(par));
        ck_assert_uint_eq(SENSE(c), 0x052600);
        par[0] = 1;
        par[3] = 3;
        c = run(g_s1, 0, san, par, sizeof(par));
        ck_assert_uint_eq(SENSE(c), 0x052600);
        san[1] = 0x03;
        san[8] = 0;
        c = run(g_s1, 0, san, NULL, 0);
        ck_assert_uint_eq(SENSE(c), 0x052400);
        ck_assert_uint_eq(c.sense[15], 0x80 | 0x40 | 0x08 | 4);
        /* read-only LU: DATA PROTECT */
        san[1] = 0x01;
        san[8] = 6;
        par[3] = 2;
        c = run(g_s1, 1, san, par, sizeof(par));
        ck_assert_uint_eq(SENSE(c), 0x072700);
        /* READ DEFECT DATA(10): empty lists in the requested format */
        uint8_t rdd[16] = { 0x37, 0, 0x18, 0, 0, 0, 0, 0, 32 };
        c = run(g_s1, 0, rdd, NULL, 0);
        ck_assert_uint_eq(c.status, SAM_GOOD);
        ck_assert_uint_eq(c.in_len, 4);
        ck_assert_uint_eq(c.in[1], 0x18);
        ck_assert_uint_eq(get_be16(c.in + 2), 0);
        free(c.in);
}
END_TEST

/* EXTENDED COPY inside LU 0 (named by its NAA), its held result, and refusals. */
START_TEST(scsi_xcopy) {
        uint8_t blk[2048];
        memset(blk, 'X', sizeof(blk));
        uint8_t wr[16] = { 0x2a, 0, 0, 0, 0, 0, 0, 0, 4 };
        struct scsi_cmd c = run(g_s1, 0, wr, blk, sizeof(blk));
        ck_assert_uint_eq(c.status, SAM_GOOD);
        struct iscsi_lu *lu = target_lu_get(g_t, 0);
        uint8_t pl[16 + 32 + 28] = { 1, 0, 0, 32 };
        put_be32(pl + 8, 28);
        uint8_t *td = pl + 16, *sd = pl + 48;
        td[0] = 0xe4;
        td[4] = 0x01;
        td[5] = 0x03;
        td[7] = 8;
        memcpy(td + 8, lu->naa, 8);
        put_be24(td + 29, 512);
        lu_unref(lu);
        sd[0] = 0x02;
        put_be16(sd + 2, 24);
        put_be16(sd + 10, 4);
        put_be64(sd + 12, 0);
        put_be64(sd + 20, 100);
        uint8_t xc[16] = { 0x83 };
        put_be32(xc + 10, sizeof(pl));
        c = run(g_s1, 0, xc, pl, sizeof(pl));
        ck_assert_uint_eq(c.status, SAM_GOOD);
        uint8_t rd[16] = { 0x28, 0, 0, 0, 0, 100, 0, 0, 4 };
        c = run(g_s1, 0, rd, NULL, 0);
        ck_assert_mem_eq(c.in, blk, sizeof(blk));
        free(c.in);
        /* COPY STATUS of list 1 (held): done, 1 segment, 2 KiB */
        uint8_t rcr[16] = { 0x84, 0x00, 1 };
        put_be32(rcr + 10, 64);
        c = run(g_s1, 0, rcr, NULL, 0);
        ck_assert_uint_eq(c.status, SAM_GOOD);
        ck_assert_uint_eq(c.in[4], 1);
        ck_assert_uint_eq(get_be16(c.in + 5), 1);
        ck_assert_uint_eq(c.in[7], 1);
        ck_assert_uint_eq(get_be32(c.in + 8), 2);
        free(c.in);
        /* the other nexus holds no list 1 */
        c = run(g_s2, 0, rcr, NULL, 0);
        ck_assert_uint_eq(SENSE(c), 0x052400);
        /* past the end of the LU: COPY ABORTED; an unknown NAA: unreachable target */
        put_be64(sd + 20, 2046);
        c = run(g_s1, 0, xc, pl, sizeof(pl));
        ck_assert_uint_eq(SENSE(c), 0x0a0000);
        td[8] ^= 0xff;
        c = run(g_s1, 0, xc, pl, sizeof(pl));
        ck_assert_uint_eq(SENSE(c), 0x0a0804);
        /* lengths in the header beyond the parameter list */
        put_be32(pl + 8, 56);
        c = run(g_s1, 0, xc, pl, sizeof(pl));
        ck_assert_uint_eq(SENSE(c), 0x051a00);
}
END_TEST

static struct scsi_cmd prout(struct iscsi_session *s, uint8_t sa, uint8_t type, uint64_t key, uint64_t sakey) {
        uint8_t cdb[16] = { 0x5f, sa, type };
        uint8_t pl[24] = { 0 };
        put_be32(cdb + 5, 24);
        put_be64(pl, key);
        put_be64(pl + 8, sakey);
        return run(s, 0, cdb, pl, sizeof(pl));
}

START_TEST(scsi_reservations) {
        uint8_t wr[16] = { 0x2a, 0, 0, 0, 0, 0, 0, 0, 1 }, rd[16] = { 0x28, 0, 0, 0, 0, 0, 0, 0, 1 };
        uint8_t blk[512] = { 0 };
        struct scsi_cmd c;

        /* register both, s1 takes WRITE EXCLUSIVE */
        ck_assert_uint_eq(prout(g_s1, 0, 0, 0, 0x11).status, SAM_GOOD);
        ck_assert_uint_eq(prout(g_s2, 0, 0, 0, 0x22).status, SAM_GOOD);
        ck_assert_uint_eq(prout(g_s2, 1, 1, 0x99, 0).status, SAM_RESERVATION_CONFLICT); /* wrong key */
        ck_assert_uint_eq(prout(g_s1, 1, 1, 0x11, 0).status, SAM_GOOD);
        c = run(g_s2, 0, wr, blk, sizeof(blk));
        ck_assert_uint_eq(c.status, SAM_RESERVATION_CONFLICT);
        c = run(g_s2, 0, rd, NULL, 0);
        ck_assert_uint_eq(c.status, SAM_GOOD);
        free(c.in);
        c = run(g_s1, 0, wr, blk, sizeof(blk));
        ck_assert_uint_eq(c.status, SAM_GOOD);
        /* READ KEYS shows both, READ RESERVATION the holder's key and type */
        uint8_t pin[16] = { 0x5e, 0 };
        put_be16(pin + 7, 64);
        c = run(g_s2, 0, pin, NULL, 0);
        ck_assert_uint_eq(get_be32(c.in + 4), 16);
        free(c.in);
        pin[1] = 1;
        c = run(g_s2, 0, pin, NULL, 0);
        ck_assert_uint_eq(get_be64(c.in + 8), 0x11);
        ck_assert_uint_eq(c.in[21], 1);
        free(c.in);
        /* s2 preempts s1: s1 loses registration and reservation */
        ck_assert_uint_eq(prout(g_s2, 4, 3, 0x22, 0x11).status, SAM_GOOD);
        c = run(g_s1, 0, rd, NULL, 0);
        ck_assert_uint_eq(c.status, SAM_RESERVATION_CONFLICT); /* EXCLUSIVE ACCESS now */
        ck_assert_uint_eq(prout(g_s1, 1, 3, 0x11, 0).status, SAM_RESERVATION_CONFLICT);
        /* CLEAR by the holder frees everything */
        ck_assert_uint_eq(prout(g_s2, 3, 0, 0x22, 0).status, SAM_GOOD);
        c = run(g_s1, 0, rd, NULL, 0);
        ck_assert_uint_eq(c.status, SAM_GOOD);
        free(c.in);
        /* RESERVE(6): the other nexus conflicts until RELEASE(6) */
        uint8_t res6[16] = { 0x16 }, rel6[16] = { 0x17 };
        ck_assert_uint_eq(run(g_s1, 0, res6, NULL, 0).status, SAM_GOOD);
        ck_assert_uint_eq(run(g_s2, 0, res6, NULL, 0).status, SAM_RESERVATION_CONFLICT);
        ck_assert_uint_eq(run(g_s2, 0, rd, NULL, 0).status, SAM_RESERVATION_CONFLICT);
        ck_assert_uint_eq(run(g_s2, 0, rel6, NULL, 0).status, SAM_GOOD); /* not the holder: no-op */
        ck_assert_uint_eq(run(g_s2, 0, rd, NULL, 0).status, SAM_RESERVATION_CONFLICT);
        ck_assert_uint_eq(run(g_s1, 0, rel6, NULL, 0).status, SAM_GOOD);
        c = run(g_s2, 0, rd, NULL, 0);
        ck_assert_uint_eq(c.status, SAM_GOOD);
        free(c.in);
}
END_TEST

int main(void) {
        Suite *s = suite_create("iscsi-target");
        TCase *tc = tcase_create("pdu");
        tcase_add_test(tc, crc);
        tcase_add_test(tc, pdu_framing);
        tcase_add_test(tc, pdu_reader_buffering);
        suite_add_tcase(s, tc);
        tc = tcase_create("login");
        tcase_add_checked_fixture(tc, setup, NULL);
        tcase_add_test(tc, login_negotiation);
        tcase_add_test(tc, login_refusals);
        suite_add_tcase(s, tc);
        tc = tcase_create("scsi");
        tcase_add_checked_fixture(tc, scsi_setup, NULL);
        tcase_add_test(tc, scsi_basics);
        tcase_add_test(tc, scsi_unmap_caw);
        tcase_add_test(tc, scsi_swp_sanitize);
        tcase_add_test(tc, scsi_xcopy);
        tcase_add_test(tc, scsi_reservations);
        suite_add_tcase(s, tc);
        return t_run(s);
}
