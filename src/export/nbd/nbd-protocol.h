/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* NBD wire constants (NetworkBlockDevice proto.md, fixed newstyle). Everything on the wire is
 * big-endian; the structs here are the exact on-wire layouts. */
#pragma once

#include <stdint.h>

#define NBD_MAGIC UINT64_C(0x4e42444d41474943)     /* "NBDMAGIC" */
#define NBD_IHAVEOPT UINT64_C(0x49484156454F5054)  /* "IHAVEOPT" */
#define NBD_REP_MAGIC UINT64_C(0x3e889045565a9)
#define NBD_REQUEST_MAGIC UINT32_C(0x25609513)
#define NBD_SIMPLE_REPLY_MAGIC UINT32_C(0x67446698)
#define NBD_STRUCTURED_REPLY_MAGIC UINT32_C(0x668e33ef)

/* Handshake flags (server) and client flags. */
#define NBD_FLAG_FIXED_NEWSTYLE (1u << 0)
#define NBD_FLAG_NO_ZEROES (1u << 1)
#define NBD_FLAG_C_FIXED_NEWSTYLE (1u << 0)
#define NBD_FLAG_C_NO_ZEROES (1u << 1)

/* Options. */
enum {
        NBD_OPT_EXPORT_NAME = 1,
        NBD_OPT_ABORT = 2,
        NBD_OPT_LIST = 3,
        NBD_OPT_STARTTLS = 5,
        NBD_OPT_INFO = 6,
        NBD_OPT_GO = 7,
        NBD_OPT_STRUCTURED_REPLY = 8,
        NBD_OPT_LIST_META_CONTEXT = 9,
        NBD_OPT_SET_META_CONTEXT = 10,
};

/* Option replies. */
#define NBD_REP_ERR(x) ((1u << 31) | (x))
enum {
        NBD_REP_ACK = 1,
        NBD_REP_SERVER = 2,
        NBD_REP_INFO = 3,
        NBD_REP_META_CONTEXT = 4,
};
#define NBD_REP_ERR_UNSUP NBD_REP_ERR(1)
#define NBD_REP_ERR_POLICY NBD_REP_ERR(2)
#define NBD_REP_ERR_INVALID NBD_REP_ERR(3)
#define NBD_REP_ERR_PLATFORM NBD_REP_ERR(4)
#define NBD_REP_ERR_TLS_REQD NBD_REP_ERR(5)
#define NBD_REP_ERR_UNKNOWN NBD_REP_ERR(6)
#define NBD_REP_ERR_SHUTDOWN NBD_REP_ERR(7)
#define NBD_REP_ERR_BLOCK_SIZE_REQD NBD_REP_ERR(8)
#define NBD_REP_ERR_TOO_BIG NBD_REP_ERR(9)

/* NBD_REP_INFO types. */
enum {
        NBD_INFO_EXPORT = 0,
        NBD_INFO_NAME = 1,
        NBD_INFO_DESCRIPTION = 2,
        NBD_INFO_BLOCK_SIZE = 3,
};

/* Transmission flags. */
#define NBD_FLAG_HAS_FLAGS (1u << 0)
#define NBD_FLAG_READ_ONLY (1u << 1)
#define NBD_FLAG_SEND_FLUSH (1u << 2)
#define NBD_FLAG_SEND_FUA (1u << 3)
#define NBD_FLAG_ROTATIONAL (1u << 4)
#define NBD_FLAG_SEND_TRIM (1u << 5)
#define NBD_FLAG_SEND_WRITE_ZEROES (1u << 6)
#define NBD_FLAG_SEND_DF (1u << 7)
#define NBD_FLAG_CAN_MULTI_CONN (1u << 8)
#define NBD_FLAG_SEND_CACHE (1u << 10)
#define NBD_FLAG_SEND_FAST_ZERO (1u << 11)

/* Commands and command flags. */
enum {
        NBD_CMD_READ = 0,
        NBD_CMD_WRITE = 1,
        NBD_CMD_DISC = 2,
        NBD_CMD_FLUSH = 3,
        NBD_CMD_TRIM = 4,
        NBD_CMD_CACHE = 5,
        NBD_CMD_WRITE_ZEROES = 6,
        NBD_CMD_BLOCK_STATUS = 7,
};
#define NBD_CMD_FLAG_FUA (1u << 0)
#define NBD_CMD_FLAG_NO_HOLE (1u << 1)
#define NBD_CMD_FLAG_DF (1u << 2)
#define NBD_CMD_FLAG_REQ_ONE (1u << 3)
#define NBD_CMD_FLAG_FAST_ZERO (1u << 4)

/* Structured reply chunk types and flags. */
#define NBD_REPLY_FLAG_DONE (1u << 0)
enum {
        NBD_REPLY_TYPE_NONE = 0,
        NBD_REPLY_TYPE_OFFSET_DATA = 1,
        NBD_REPLY_TYPE_OFFSET_HOLE = 2,
        NBD_REPLY_TYPE_BLOCK_STATUS = 5,
        NBD_REPLY_TYPE_ERROR = (1 << 15) + 1,
        NBD_REPLY_TYPE_ERROR_OFFSET = (1 << 15) + 2,
};

/* The only error values a server may send. */
enum {
        NBD_EPERM = 1,
        NBD_EIO = 5,
        NBD_ENOMEM = 12,
        NBD_EINVAL = 22,
        NBD_ENOSPC = 28,
        NBD_EOVERFLOW = 75,
        NBD_ENOTSUP = 95,
        NBD_ESHUTDOWN = 108,
};

/* base:allocation flags (same bits as ORION_EXTENT_*). */
#define NBD_STATE_HOLE (1u << 0)
#define NBD_STATE_ZERO (1u << 1)

/* On-wire layouts. */
struct nbd_option_hdr {
        uint64_t magic; /* NBD_IHAVEOPT */
        uint32_t option;
        uint32_t length;
} __attribute__((packed));

struct nbd_option_reply_hdr {
        uint64_t magic; /* NBD_REP_MAGIC */
        uint32_t option;
        uint32_t reply;
        uint32_t length;
} __attribute__((packed));

struct nbd_request {
        uint32_t magic; /* NBD_REQUEST_MAGIC */
        uint16_t flags;
        uint16_t type;
        uint64_t cookie;
        uint64_t offset;
        uint32_t length;
} __attribute__((packed));

struct nbd_simple_reply {
        uint32_t magic; /* NBD_SIMPLE_REPLY_MAGIC */
        uint32_t error;
        uint64_t cookie;
} __attribute__((packed));

struct nbd_structured_reply {
        uint32_t magic; /* NBD_STRUCTURED_REPLY_MAGIC */
        uint16_t flags;
        uint16_t type;
        uint64_t cookie;
        uint32_t length;
} __attribute__((packed));

_Static_assert(sizeof(struct nbd_option_hdr) == 16, "option header");
_Static_assert(sizeof(struct nbd_option_reply_hdr) == 20, "option reply header");
_Static_assert(sizeof(struct nbd_request) == 28, "request header");
_Static_assert(sizeof(struct nbd_simple_reply) == 16, "simple reply");
_Static_assert(sizeof(struct nbd_structured_reply) == 20, "structured reply header");
