/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* In-process iSCSI target (RFC 7143, ERL 0): shared types of the PDU, login, connection,
 * SCSI and target layers. Internal to src/export/iscsi/. */
#pragma once

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "common/cleanup.h"
#include "core/core.h"

/* ---- Wire constants (RFC 7143 §11) ------------------------------------------------------ */
#define BHS_LEN 48
#define ISCSI_MAX_DSL ((1u << 24) - 1)
#define RSVD_TAG 0xffffffffu

enum {
        OP_NOP_OUT = 0x00,
        OP_SCSI_CMD = 0x01,
        OP_TMF_REQ = 0x02,
        OP_LOGIN_REQ = 0x03,
        OP_TEXT_REQ = 0x04,
        OP_DATA_OUT = 0x05,
        OP_LOGOUT_REQ = 0x06,
        OP_SNACK = 0x10,
        OP_NOP_IN = 0x20,
        OP_SCSI_RSP = 0x21,
        OP_TMF_RSP = 0x22,
        OP_LOGIN_RSP = 0x23,
        OP_TEXT_RSP = 0x24,
        OP_DATA_IN = 0x25,
        OP_LOGOUT_RSP = 0x26,
        OP_R2T = 0x31,
        OP_ASYNC = 0x32,
        OP_REJECT = 0x3f,
};

enum {
        REJECT_DIGEST = 0x02,
        REJECT_SNACK = 0x03,
        REJECT_PROTOCOL = 0x04,
        REJECT_NOT_SUPPORTED = 0x05,
        REJECT_IMMEDIATE = 0x06,
        REJECT_TASK_IN_PROGRESS = 0x07,
        REJECT_INVALID_DATA_ACK = 0x08,
        REJECT_INVALID_FIELD = 0x09,
        REJECT_OUT_OF_RESOURCES = 0x0a,
        REJECT_WAITING_LOGOUT = 0x0c,
};

/* ---- Big-endian field helpers ----------------------------------------------------------- */
static inline uint16_t get_be16(const uint8_t *p) {
        return (uint16_t) (p[0] << 8 | p[1]);
}
static inline uint32_t get_be24(const uint8_t *p) {
        return (uint32_t) p[0] << 16 | (uint32_t) p[1] << 8 | p[2];
}
static inline uint32_t get_be32(const uint8_t *p) {
        return (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16 | (uint32_t) p[2] << 8 | p[3];
}
static inline uint64_t get_be64(const uint8_t *p) {
        return (uint64_t) get_be32(p) << 32 | get_be32(p + 4);
}
static inline void put_be16(uint8_t *p, uint16_t v) {
        p[0] = (uint8_t) (v >> 8);
        p[1] = (uint8_t) v;
}
static inline void put_be24(uint8_t *p, uint32_t v) {
        p[0] = (uint8_t) (v >> 16);
        p[1] = (uint8_t) (v >> 8);
        p[2] = (uint8_t) v;
}
static inline void put_be32(uint8_t *p, uint32_t v) {
        p[0] = (uint8_t) (v >> 24);
        p[1] = (uint8_t) (v >> 16);
        p[2] = (uint8_t) (v >> 8);
        p[3] = (uint8_t) v;
}
static inline void put_be64(uint8_t *p, uint64_t v) {
        put_be32(p, (uint32_t) (v >> 32));
        put_be32(p + 4, (uint32_t) v);
}
/* Serial number arithmetic (RFC 1982, 32 bits) as the RFC requires for CmdSN. */
static inline bool sn_lt(uint32_t a, uint32_t b) {
        return a != b && (int32_t) (a - b) < 0;
}
static inline bool sn_le(uint32_t a, uint32_t b) {
        return a == b || sn_lt(a, b);
}

/* ---- PDU layer (pdu.c) ------------------------------------------------------------------- */
struct iscsi_pdu {
        uint8_t bhs[BHS_LEN];
        uint8_t *ahs;      /* total AHS, ahs_len bytes (owned) */
        uint32_t ahs_len;
        uint8_t *data;     /* data segment without padding (owned) */
        uint32_t data_len;
};

struct pdu_limits {
        bool header_digest;
        bool data_digest;
        uint32_t max_recv_dsl; /* largest data segment accepted */
};

uint32_t crc32c(const void *buf, size_t len, uint32_t crc);
/* crc32c of a whole buffer as iSCSI digests it (init ~0, final ~). */
uint32_t iscsi_digest(const void *buf, size_t len);
static inline uint8_t pdu_opcode(const uint8_t *bhs) {
        return bhs[0] & 0x3f;
}
static inline uint32_t pdu_dsl(const uint8_t *bhs) {
        return get_be24(bhs + 5);
}
static inline uint32_t pdu_itt(const uint8_t *bhs) {
        return get_be32(bhs + 16);
}
/* Read one PDU. Returns 0, -ECONNRESET on a clean EOF before a PDU, -EBADMSG on a digest
 * mismatch (header: fatal; data: the PDU is returned with *data_digest_bad set), -EMSGSIZE
 * if the data segment exceeds the limit, or another -errno. */
int pdu_recv(int fd, struct iscsi_pdu *p, const struct pdu_limits *lim, bool *data_digest_bad);
/* Buffered receive: one recv() may bring several PDUs; a connection reads through one. */
struct pdu_reader {
        int fd;
        uint8_t *buf; /* cap bytes; cap 0 = unbuffered */
        size_t cap, start, end;
};
void pdu_reader_init(struct pdu_reader *rd, int fd, uint8_t *buf, size_t cap);
/* pdu_recv through rd (same results). */
int pdu_read(struct pdu_reader *rd, struct iscsi_pdu *p, const struct pdu_limits *lim, bool *data_digest_bad);
/* A whole PDU is buffered (reading it will not block) / some bytes are buffered. */
bool pdu_reader_has_pdu(const struct pdu_reader *rd, const struct pdu_limits *lim);
bool pdu_reader_has_bytes(const struct pdu_reader *rd);
void pdu_clear(struct iscsi_pdu *p);
/* Write bhs (+digest) and data (+padding, +digest) in one writev loop. The DataSegmentLength
 * field of bhs is set from len. more: MSG_MORE (another PDU follows at once). */
int pdu_send(int fd, uint8_t *bhs, const void *data, uint32_t len, bool hdig, bool ddig, bool more);

/* ---- Text keys (login.c) ------------------------------------------------------------------ */
struct text_buf {
        char *buf;
        size_t len, cap;
};
int text_add(struct text_buf *t, const char *key, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void text_free(struct text_buf *t);

/* Negotiated operational parameters of a session/connection. */
struct iscsi_params {
        bool header_digest, data_digest;
        uint32_t max_recv_dsl;   /* ours: the largest segment we accept */
        uint32_t max_xmit_dsl;   /* the initiator's MaxRecvDataSegmentLength */
        uint32_t max_burst;
        uint32_t first_burst;
        bool initial_r2t;
        bool immediate_data;
        uint32_t max_outstanding_r2t;
        uint32_t time2wait, time2retain;
        bool data_pdu_in_order, data_seq_in_order;
};
void params_default(struct iscsi_params *p);

/* ---- Targets and LUs (target.c) ----------------------------------------------------------- */
struct iscsi_target;
struct iscsi_session;
struct iscsi_conn;

#define PR_MAX_REG 64
struct pr_reg {
        char nexus[300];  /* "<initiator>,i,0x<isid>" */
        uint64_t key;
};

/* One logical unit: an export's node seen through one target. */
struct iscsi_lu {
        atomic_int refs;
        struct orion_export *exp; /* held */
        struct orion_bdev *bdev;
        uint64_t lun;
        bool readonly;
        bool thin;               /* ORION_CAP_DISCARD: LBPME */
        bool wce;                /* ORION_CAP_FLUSH: write-back cache */
        uint32_t block_size;
        uint64_t nblocks;
        uint8_t naa[8];          /* NAA-3 (locally assigned) designator from the export name */
        char serial[33];
        pthread_rwlock_t caw_lock; /* writes share it, COMPARE AND WRITE takes it alone */
        pthread_mutex_t lock;      /* reservations and unit attentions below */
        atomic_uint ua_gen;        /* bumped by LUN reset: every nexus sees a UA once */
        char res6_holder[300];     /* RESERVE(6) holder nexus, "" when none */
        struct pr_reg pr_regs[PR_MAX_REG];
        unsigned pr_nregs;
        uint32_t pr_generation;
        bool pr_held;
        char pr_holder[300];       /* nexus holding the reservation (all-registrants: any) */
        uint8_t pr_type;
        uint64_t pr_key;           /* reservation key of the holder */
        atomic_int inflight;       /* tasks executing on this LU */
        bool swp;                  /* control mode page SWP (software write protect), lock */
        atomic_uint mode_gen;      /* bumped when a mode parameter changes: a UA for the others */
        /* SANITIZE (sanitize.c), under lock */
        bool sanitizing;           /* an operation runs: media access is NOT READY */
        bool sanitize_cancel;      /* the LU goes away: the running operation stops */
        bool sanitize_failed;      /* the last one failed: sanitize failure mode */
        bool sanitize_ause;        /* ... and EXIT FAILURE MODE may end it */
        uint64_t sanitize_done, sanitize_total; /* progress, in blocks */
        pthread_cond_t sanitize_cond;
};
struct iscsi_lu *lu_ref(struct iscsi_lu *lu);
void lu_unref(struct iscsi_lu *lu);

#define TARGET_MAX_LUNS 256
struct iscsi_target {
        char iqn[224];
        struct iscsi_lu *luns[TARGET_MAX_LUNS]; /* index = LUN; guarded by g_tgt_lock */
        /* ACLs and CHAP from the export (first one wins for a shared target), else daemon */
        char *allow_initiators;  /* space-separated IQNs or NULL = all */
        char *allow_addresses;   /* space-separated addresses/CIDRs or NULL = all */
        char *chap_user, *chap_secret, *mutual_user, *mutual_secret;
        unsigned nluns;
};

/* Global target state, guarded by g_tgt_lock. */
extern pthread_mutex_t g_tgt_lock;
/* Look up a target by IQN (lock held). */
struct iscsi_target *target_find_locked(const char *iqn);
/* LU by LUN with a reference, or NULL. */
struct iscsi_lu *target_lu_get(struct iscsi_target *t, uint64_t lun);
/* Whether an initiator (name, peer address) may see/log in to a target. Lock held. */
bool target_acl_allows_locked(const struct iscsi_target *t, const char *initiator, const struct sockaddr_storage *peer);
/* Auth settings: target's own, else daemon keys. Returned strings are borrowed (lock held). */
struct chap_cfg {
        const char *user, *secret, *mutual_user, *mutual_secret;
};
void target_chap_locked(const struct iscsi_target *t, bool discovery, struct chap_cfg *ret);
/* SendTargets text for one target or all visible ones. Lock taken inside. */
int target_sendtargets(struct text_buf *out, const char *which, const char *initiator,
                       const struct sockaddr_storage *peer, const char *only_iqn, const char *portal);
/* A new LU for an export (one reference). */
struct iscsi_lu *iscsi_lu_new(struct orion_export *e, uint64_t lun);
uint16_t target_portal_group(void);
const struct daemon_config *target_daemon_config(void);

/* ---- Sessions and connections (session.c, conn.c) ----------------------------------------- */
struct iscsi_task;

/* Held result of an EXTENDED COPY (xcopy.c), by list identifier. */
struct xcopy_result {
        bool used, running;
        uint8_t list_id;
        uint8_t status;  /* COPY MANAGER STATUS: 1 done, 2 failed */
        uint16_t segs;
        uint64_t bytes;
};

struct iscsi_session {
        atomic_int refs;
        char initiator[224];
        uint8_t isid[6];
        uint16_t tsih;
        bool discovery;
        struct iscsi_target *target; /* NULL for discovery */
        char nexus[300];             /* initiator port name for reservations */
        struct iscsi_conn *conn;     /* one connection per session (MaxConnections=1) */
        struct iscsi_params params;
        unsigned ua_seen[TARGET_MAX_LUNS]; /* LU ua_gen seen by this nexus */
        unsigned mode_seen[TARGET_MAX_LUNS]; /* LU mode_gen seen by this nexus */
        pthread_mutex_t xcopy_lock;
        struct xcopy_result xcopy[8];
        struct iscsi_session *next;
};

struct iscsi_conn {
        int fd;
        struct sockaddr_storage peer;
        char peer_str[64];
        pthread_mutex_t send_lock;  /* socket writes and StatSN */
        uint32_t stat_sn;
        pthread_mutex_t lock;       /* tasks, CmdSN window */
        pthread_cond_t cond;
        uint32_t exp_cmd_sn;
        unsigned window;            /* MaxCmdSN = ExpCmdSN + window - 1 */
        struct iscsi_task *tasks;   /* every live task of this connection */
        unsigned ntasks_running;    /* queued to or running on the pool */
        atomic_uint_fast64_t buffered; /* bytes of write data held by this connection's tasks */
        uint32_t next_ttt;
        struct pdu_limits lim;
        struct iscsi_session *sess;
        bool full_feature;
        bool closing;
        bool dead;                  /* socket write failed: stop */
        unsigned nop_interval_s, nop_count;
        unsigned nop_outstanding;
        uint32_t nop_ttt;
        struct login_state *login;  /* during the login phase */
        struct iscsi_conn *next;
        struct pdu_reader rd;       /* buffered receive (reader thread) */
        bool more;                  /* send lock: the reader has more responses to send at once */
        /* Plain reads/writes collected by the reader thread, run as one orion_submit() when no
         * further PDU is buffered: no thread handoff, one io_uring submission. */
        unsigned nbatch;
        struct iscsi_task *batch[64];
};

struct iscsi_task {
        struct iscsi_conn *conn;
        struct iscsi_lu *lu;        /* held */
        uint64_t lun_field;
        uint32_t itt, ttt, cmd_sn;
        uint8_t cdb[260];
        uint32_t cdb_len;
        bool read, write;
        uint32_t edtl;              /* Expected Data Transfer Length */
        uint8_t *buf;               /* write data collected (edtl bytes) */
        uint32_t received;          /* bytes of buf filled so far, in order */
        uint32_t r2t_sn, data_sn;   /* next expected DataSN of the current sequence */
        uint32_t seq_end;           /* end offset of the burst being received */
        bool unsolicited;           /* the unsolicited burst is still being received */
        bool aborted;
        bool running;               /* handed to the pool */
        bool failed;                /* a data sequence error: answered, data dropped */
        struct iscsi_task *next;
};

/* Serve one accepted socket until it closes. The caller closes fd afterwards. */
void conn_serve(int fd, const struct sockaddr_storage *peer);
/* Login phase on conn (conn.c calls it for every Login Request until FFP). Returns 0 to
 * continue, 1 when Full Feature Phase is reached, <0 to close. */
int login_handle(struct iscsi_conn *c, struct iscsi_pdu *req);
void login_free(struct iscsi_conn *c);
/* Send a PDU on the connection (send lock taken inside). */
int conn_send(struct iscsi_conn *c, uint8_t *bhs, const void *data, uint32_t len);
/* Fill StatSN/ExpCmdSN/MaxCmdSN at 24/28/32 (send lock held) */
void conn_fill_sn_locked(struct iscsi_conn *c, uint8_t *bhs, bool advance_stat);

/* Mark every task of c on lu aborted (LUN reset from another nexus). */
void conn_abort_lu(struct iscsi_conn *c, struct iscsi_lu *lu, bool wait);
/* conn->peer_str from conn->peer; NOP keepalive settings from the daemon config. */
void conn_peer_string(struct iscsi_conn *c);
void conn_apply_config(struct iscsi_conn *c);

/* Session registry (session.c). */
struct iscsi_session *session_new(const char *initiator, const uint8_t isid[6], bool discovery,
                                  struct iscsi_target *t);
/* Register a session in full feature phase, dropping (reinstating) an older one with the same
 * initiator name + ISID + target. */
void session_register(struct iscsi_session *s);
void session_unregister(struct iscsi_session *s);
struct iscsi_session *session_unref(struct iscsi_session *s);
/* Close every connection (daemon shutdown). */
void sessions_shutdown(void);
/* Abort and wait for every task on lu across sessions (LUN reset, LU removal). */
void sessions_abort_lu(struct iscsi_lu *lu, struct iscsi_conn *except_wait);
/* Close every session logged in to t (TARGET COLD RESET). */
void sessions_drop_target(const struct iscsi_target *t);
/* Count of live connections (status). */
unsigned sessions_count(void);

/* ---- SCSI (scsi.c, spc.c, sbc.c, pr.c) ----------------------------------------------------- */
enum {
        SAM_GOOD = 0x00,
        SAM_CHECK_CONDITION = 0x02,
        SAM_CONDITION_MET = 0x04,
        SAM_BUSY = 0x08,
        SAM_RESERVATION_CONFLICT = 0x18,
        SAM_TASK_SET_FULL = 0x28,
};
enum {
        SK_NO_SENSE = 0x0,
        SK_NOT_READY = 0x2,
        SK_MEDIUM_ERROR = 0x3,
        SK_HARDWARE_ERROR = 0x4,
        SK_ILLEGAL_REQUEST = 0x5,
        SK_UNIT_ATTENTION = 0x6,
        SK_DATA_PROTECT = 0x7,
        SK_ABORTED_COMMAND = 0xb,
        SK_MISCOMPARE = 0xe,
};
/* ASC/ASCQ pairs as 16-bit values */
enum {
        ASC_LBA_OUT_OF_RANGE = 0x2100,
        ASC_INVALID_OPCODE = 0x2000,
        ASC_INVALID_FIELD_IN_CDB = 0x2400,
        ASC_INVALID_FIELD_IN_PARAM = 0x2600,
        ASC_PARAM_LIST_LENGTH_ERROR = 0x1a00,
        ASC_LUN_NOT_SUPPORTED = 0x2500,
        ASC_WRITE_PROTECTED = 0x2700,
        ASC_MISCOMPARE_VERIFY = 0x1d00,
        ASC_READ_ERROR = 0x1100,
        ASC_WRITE_ERROR = 0x0c00,
        ASC_INTERNAL_FAILURE = 0x4400,
        ASC_NO_ADDITIONAL = 0x0000,
        ASC_RESET_OCCURRED = 0x2900,
        ASC_BUS_DEVICE_RESET = 0x2903,
        ASC_INVALID_FIELD_IN_IU = 0x0e03,
        ASC_DATA_PHASE_ERROR = 0x4b00,
        ASC_DATA_OFFSET_ERROR = 0x4b05,
        ASC_INSUFFICIENT_REG_RESOURCES = 0x5504,
        ASC_SAVING_PARAMS_UNSUP = 0x3900,
        ASC_OUT_OF_MEMORY = 0x5506,
        ASC_SOFTWARE_WRITE_PROTECTED = 0x2702,
        ASC_MODE_PARAMS_CHANGED = 0x2a01,
        ASC_SANITIZE_IN_PROGRESS = 0x041b,
        ASC_SANITIZE_FAILED = 0x3103,
};

/* One SCSI command as the SCSI layer sees it. */
struct scsi_cmd {
        struct iscsi_lu *lu;          /* NULL: the LUN does not exist */
        struct iscsi_session *sess;   /* the I_T nexus */
        const uint8_t *cdb;
        uint32_t cdb_len;
        const uint8_t *out;           /* data from the initiator (may be shorter than needed) */
        uint32_t out_len;
        uint8_t *in;                  /* OUT: data to the initiator (malloc'ed) */
        uint32_t in_len;              /* OUT: bytes valid in `in` */
        uint32_t xfer_len;            /* OUT: bytes the CDB wants to move (for residuals) */
        const bool *aborted;          /* the task was aborted (long commands stop waiting) */
        uint8_t status;               /* OUT */
        uint8_t sense[20];            /* OUT: fixed-format sense */
        uint32_t sense_len;
};
/* Bytes of Data-Out the CDB implies (for the R2T logic); -1 if unknown / not a write. */
int64_t scsi_data_out_len(const struct iscsi_lu *lu, const uint8_t *cdb, uint32_t cdb_len);
void scsi_exec(struct scsi_cmd *c);
/* What every command of an existing LU goes through first: unit attention, sanitize state,
 * reservation conflict. true when c is already answered. */
bool scsi_precheck(struct scsi_cmd *c);
/* Plain READ/WRITE 6/10/12/16 as a request for a batch (orion_submit): 1 with *rq filled, 0
 * when c is answered without I/O, -1 when the command needs scsi_exec. */
int sbc_rw_prepare(struct scsi_cmd *c, struct orion_req *rq);
/* After the batch ran: the status from rq->result. */
void sbc_rw_finish(struct scsi_cmd *c, const struct orion_req *rq);
/* Helpers shared by spc/sbc/pr */
int scsi_check(struct scsi_cmd *c, uint8_t sk, uint16_t asc);
int scsi_check_info(struct scsi_cmd *c, uint8_t sk, uint16_t asc, uint64_t info);
int scsi_check_field(struct scsi_cmd *c, bool cdb, uint16_t byte, int bit);
/* Whether the LU is write-protected (read-only export or SWP); sets DATA PROTECT sense if so. */
bool scsi_write_protected(struct scsi_cmd *c);
int scsi_errno(struct scsi_cmd *c, int r, bool write);
int scsi_reply(struct scsi_cmd *c, const void *data, uint32_t len, uint32_t alloc_len);
int scsi_alloc_in(struct scsi_cmd *c, uint32_t len);
void scsi_lu_fill_identity(struct iscsi_lu *lu, const char *name);

int spc_inquiry(struct scsi_cmd *c);
int spc_mode_sense(struct scsi_cmd *c);
int spc_mode_select(struct scsi_cmd *c);
int spc_report_luns(struct scsi_cmd *c);
int spc_request_sense(struct scsi_cmd *c);
int spc_report_opcodes(struct scsi_cmd *c);
int spc_extended_copy(struct scsi_cmd *c);
int spc_receive_copy_results(struct scsi_cmd *c);

int sbc_read_capacity10(struct scsi_cmd *c);
int sbc_service_in16(struct scsi_cmd *c);
int sbc_rw(struct scsi_cmd *c);
int sbc_verify(struct scsi_cmd *c);
int sbc_write_same(struct scsi_cmd *c);
int sbc_unmap(struct scsi_cmd *c);
int sbc_sync_cache(struct scsi_cmd *c);
int sbc_compare_and_write(struct scsi_cmd *c);
int sbc_prefetch(struct scsi_cmd *c);
int sbc_orwrite(struct scsi_cmd *c);
int sbc_read_defect_data(struct scsi_cmd *c);
int sbc_sanitize(struct scsi_cmd *c);
/* NOT READY while a sanitize runs, MEDIUM ERROR in sanitize failure mode: true if c was refused. */
bool sanitize_refuses(struct scsi_cmd *c);
bool sanitize_supports(const struct iscsi_lu *lu, uint8_t sa);
/* Stop a running sanitize of lu (it ends failed) and wait until its thread no longer touches
 * the node: before the LU's export goes, and when the target stops. */
void sanitize_cancel(struct iscsi_lu *lu);
uint32_t sbc_max_xfer_blocks(const struct iscsi_lu *lu);
#define SBC_MAX_WRITE_SAME 0x400000u /* blocks, VPD B0h MAXIMUM WRITE SAME LENGTH */

int pr_in(struct scsi_cmd *c);
int pr_out(struct scsi_cmd *c);
int pr_reserve6(struct scsi_cmd *c);
int pr_release6(struct scsi_cmd *c);
/* Reservation conflict check for a command (lu->lock taken inside). true = conflict. */
bool pr_conflicts(struct scsi_cmd *c);
/* I_T nexus loss: drop a RESERVE(6) held by this nexus. */
void pr_nexus_gone(struct iscsi_lu *lu, const char *nexus);
void pr_lun_reset(struct iscsi_lu *lu);
