/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* NBD server internals shared by the listener, the handshake, the transmission phase and the
 * reply writer. One struct nbd_conn per client connection. */
#pragma once

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "core/core.h"
#include "export/nbd/nbd-protocol.h"

/* Limits. NBD_MAX_REQUEST is advertised as the maximum block size; a WRITE above it is drained
 * (without allocating) up to NBD_MAX_DRAIN and refused with EINVAL, beyond that the connection
 * is dropped. Options longer than NBD_MAX_OPTION are drained and refused with ERR_TOO_BIG,
 * beyond NBD_MAX_OPTION_DRAIN the connection is dropped. */
#define NBD_MAX_REQUEST (32u << 20)
#define NBD_MAX_DRAIN (UINT64_C(64) << 20)
#define NBD_MAX_OPTION (64u << 10)
#define NBD_MAX_OPTION_DRAIN (UINT64_C(64) << 20)
#define NBD_MAX_STRING 4096u
#define NBD_PREF_BLOCK 4096u
/* Worker threads per connection (each carries one request at a time, so this is also the
 * number of requests in flight), and the buffer size a thread keeps between requests. */
#define NBD_DEFAULT_THREADS 16u
#define NBD_MAX_THREADS 64u
#define NBD_KEEP_BUFFER (4u << 20)
/* Asynchronous transmission (nodes with a native submit_async): payload bytes in flight per
 * connection (the request count is bounded by nbd-threads), the request bytes one recv may
 * bring, the replies one sendmsg carries, and the buffer size a free request slot keeps. */
#define NBD_ASYNC_MAX_BYTES (64u << 20)
#define NBD_ASYNC_RX (64u << 10)
#define NBD_ASYNC_BATCH 256u
#define NBD_ASYNC_KEEP NBD_KEEP_BUFFER
/* Reads at least this long ask the node for holes and send them as OFFSET_HOLE chunks. */
#define NBD_SPARSE_READ_MIN (64u << 10)
/* Block status replies carry at most this many descriptors. */
#define NBD_MAX_EXTENTS 65536u
/* The context id of base:allocation (opaque to clients). */
#define NBD_META_BASE_ALLOCATION 1u

struct nbd_server;
struct nbd_aslot;

struct nbd_conn {
        int fd;
        char peer[80];
        struct nbd_server *srv;        /* NULL when run standalone (fuzzing) */
        struct nbd_conn *next;         /* server's list (server lock) */

        void *tls;                     /* gnutls_session_t once STARTTLS succeeded */

        /* Negotiation state (reset by STARTTLS). */
        bool fixed_newstyle;
        bool no_zeroes;
        bool structured;               /* NBD_OPT_STRUCTURED_REPLY done */
        bool meta_base_allocation;     /* base:allocation selected ... */
        char *meta_export;             /* ... for this export (canonical name) */

        /* Transmission state (set by GO / EXPORT_NAME). */
        struct orion_export *exp;      /* referenced */
        struct orion_bdev *node;
        uint64_t size;
        uint16_t tflags;
        bool readonly;

        pthread_mutex_t write_lock;    /* one reply at a time on the socket */
        pthread_mutex_t read_lock;     /* one reader of requests at a time */
        bool stop;                     /* (read_lock) no more requests: DISC, EOF, error */
        int result;                    /* (read_lock) why it stopped, 0 or -errno */
        pthread_mutex_t lock;          /* the thread bookkeeping below */
        pthread_t threads[NBD_MAX_THREADS];
        unsigned nthreads;             /* started (the first is the connection's own) */
        atomic_uint waiting;           /* threads waiting for read_lock */
        bool dead;                     /* (write_lock) a reply could not be sent */

        atomic_uint_fast64_t requests, bytes_read, bytes_written, errors;

        /* Asynchronous transmission (nbd-async.c). The socket's write side belongs to whoever
         * set `sending`; replies completed meanwhile queue up and that owner sends them too. */
        bool async;                    /* set before the first reply; then fixed */
        pthread_mutex_t aq_lock;       /* everything below */
        pthread_cond_t aq_cond;        /* room for a request, the write side free, all done */
        unsigned aq_waiters;
        bool sending;
        struct nbd_aslot *aq_head, **aq_tail; /* replies ready to go */
        unsigned inflight;             /* request slots in use */
        uint64_t inflight_bytes;
        struct nbd_aslot *free_slots;
        unsigned nfree;
        struct nbd_aslot *pend;        /* a batch a non-blocking send left half done ... */
        struct iovec *pend_iov;        /* ... and where it stopped, for the writer thread */
        int pend_n;
        pthread_t writer;              /* started at the first full socket; finishes sends */
        bool writer_started, writer_stop;
        struct iovec iov[2 * NBD_ASYNC_BATCH];
};

struct nbd_req {
        struct nbd_conn *c;
        uint16_t type;
        uint16_t flags;
        uint64_t cookie;
        uint64_t offset;
        uint32_t len;
        void *buf;                     /* the worker's buffer: WRITE payload, READ data */
};

/* ---- nbd-io.c: socket helpers --------------------------------------------------------------- */
/* Read exactly len bytes: 0, -ECONNRESET at end of stream, or -errno. */
int nbd_recv_full(struct nbd_conn *c, void *buf, size_t len);
/* Read and throw away len bytes without allocating len. */
int nbd_recv_discard(struct nbd_conn *c, uint64_t len);
/* Send every byte of the vector (MSG_NOSIGNAL). Caller holds write_lock in transmission. */
int nbd_sendv_full(struct nbd_conn *c, struct iovec *iov, int n);
int nbd_send_full(struct nbd_conn *c, const void *buf, size_t len);

/* ---- nbd-tls.c: NBD_OPT_STARTTLS ----------------------------------------------------------- */
enum nbd_tls_mode { NBD_TLS_OFF, NBD_TLS_ON, NBD_TLS_REQUIRE };
extern enum nbd_tls_mode nbd_tls_mode;
/* Read nbd-tls, nbd-tls-certificates, nbd-tls-psk and load the credentials. */
int nbd_tls_setup(const struct daemon_config *cfg, struct orion_error *err);
void nbd_tls_done(void);
/* Server side of the TLS handshake on c->fd; sets c->tls. */
int nbd_tls_start(struct nbd_conn *c);
/* Send close_notify and free the session. */
void nbd_tls_close(struct nbd_conn *c);
/* Like recv(): bytes, 0 at end of stream, -errno. */
ssize_t nbd_tls_recv(struct nbd_conn *c, void *buf, size_t len);
int nbd_tls_sendv(struct nbd_conn *c, struct iovec *iov, int n);

/* ---- nbd-reply.c: replies in the transmission phase ----------------------------------------- */
/* One piece of a read reply: data (from the request's buffer) or a hole that reads as zeroes. */
struct nbd_seg {
        uint64_t off;                  /* absolute offset */
        uint32_t len;
        bool hole;
};
/* Map a negative errno to one of the eight NBD error values. */
uint32_t nbd_errno(int r);
/* Reply to a request without data: result 0 or -errno. Simple or structured as negotiated
 * (a READ under structured replies always gets chunks). */
int nbd_reply_status(struct nbd_conn *c, uint64_t cookie, uint16_t type, int result);
/* Successful read: with structured replies one chunk per segment (segments cover the request
 * in order; data segments point into buf at off - request offset), else one simple reply. */
int nbd_reply_read(struct nbd_conn *c, const struct nbd_req *r, void *buf, const struct nbd_seg *segs,
                   size_t nsegs);
/* The header of the reply to a single-segment request (result 0 or -errno): bytes written to
 * hdr (room for 32); *ret_data says the request's r->len bytes of r->buf follow. */
size_t nbd_reply_prepare(struct nbd_conn *c, const struct nbd_req *r, int result, void *hdr, bool *ret_data);
/* Block status reply: one BLOCK_STATUS chunk with n (length, flags) descriptors. */
int nbd_reply_block_status(struct nbd_conn *c, uint64_t cookie, const uint32_t *desc, size_t n);

/* ---- nbd-handshake.c ------------------------------------------------------------------------ */
/* Run the fixed-newstyle negotiation. Returns 1 when transmission should start (c->exp set),
 * 0 when the client ended it cleanly (ABORT / end of stream), -errno on a protocol violation. */
int nbd_handshake(struct nbd_conn *c);
/* The export that `name` refers to ("" = the default export), referenced, or NULL. */
struct orion_export *nbd_export_lookup(const char *name);
/* Transmission flags for an export on this connection. */
uint16_t nbd_export_flags(const struct nbd_conn *c, const struct orion_export *e);

/* ---- nbd-transmission.c --------------------------------------------------------------------- */
/* Serve requests until DISC, end of stream or a fatal error; waits for in-flight requests. */
int nbd_transmission(struct nbd_conn *c);
/* Checks of a parsed request: 0 if it may run, else the negative errno to reply with. */
int nbd_validate(const struct nbd_conn *c, const struct nbd_req *r);
/* A request header off the wire into req (counted in c->requests); -EPROTO on a bad magic. */
int nbd_req_decode(struct nbd_conn *c, const struct nbd_request *h, struct nbd_req *req);
/* CACHE reads its range in pieces of this size (the buffer it needs). */
#define NBD_CACHE_CHUNK (1u << 20)
/* Run one validated request synchronously and send its reply (r->buf sized as read_request does). */
void nbd_run_request(struct nbd_req *r);
uint32_t nbd_orion_flags(uint16_t nbd_flags);

/* ---- nbd-async.c ------------------------------------------------------------------------------
 * Transmission for nodes with a native submit_async (and no TLS): one reader per connection
 * takes the requests in batches and submits them; replies go out from the completions. */
int nbd_async_transmission(struct nbd_conn *c);
/* conn_sendv of the asynchronous mode: copy the reply into the queue (never waits for the
 * client). */
int nbd_async_sendv(struct nbd_conn *c, struct iovec *iov, int n);

/* ---- nbd-server.c --------------------------------------------------------------------------- */
/* Run one whole connection on fd (takes ownership of fd): handshake, transmission, close.
 * srv may be NULL (fuzzing, tests). */
void nbd_conn_serve(struct nbd_server *srv, int fd, const char *peer);
/* True during the first seconds after the server started, while the daemon may still be
 * adding the exports of its config (socket-activated clients connect before that). */
bool nbd_server_starting(const struct nbd_server *srv);
/* Handshake read timeout in seconds (0 = none), and worker threads per connection. */
extern unsigned nbd_handshake_timeout;
extern unsigned nbd_conn_threads;
