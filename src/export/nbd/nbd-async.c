/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* NBD transmission for nodes that complete requests by themselves (orion_bdev_has_async): one
 * reader per connection parses requests from batched reads and submits them without waiting;
 * each completion queues its reply, and whoever holds the socket's write side sends the queue. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/cleanup.h"
#include "export/nbd/nbd-internal.h"

/* One request in flight: the submission, the parsed request, its buffer and its reply. */
struct nbd_aslot {
        struct orion_areq a;
        struct nbd_req r;
        struct nbd_aslot *next; /* reply queue, free list */
        void *buf;              /* cap bytes, O_DIRECT aligned */
        size_t cap;
        uint32_t acct;          /* bytes counted in c->inflight_bytes */
        uint8_t hdr[32];
        size_t hlen;
        bool data;              /* r.len bytes of buf follow hdr */
        bool raw;               /* a copied reply (rawlen bytes of buf), not a request */
        size_t rawlen;
};

/* ---- Slots ------------------------------------------------------------------------------------ */

/* Wait for room (bounded requests and payload bytes in flight), then a slot with buf >= len. */
static struct nbd_aslot *slot_get(struct nbd_conn *c, uint32_t len) {
        struct nbd_aslot *s = NULL;

        WITH_LOCK(&c->aq_lock) {
                while (c->inflight >= nbd_conn_threads ||
                       (c->inflight > 0 && c->inflight_bytes + len > NBD_ASYNC_MAX_BYTES)) {
                        c->aq_waiters++;
                        pthread_cond_wait(&c->aq_cond, &c->aq_lock);
                        c->aq_waiters--;
                }
                c->inflight++;
                c->inflight_bytes += len;
                if ((s = c->free_slots)) {
                        c->free_slots = s->next;
                        c->nfree--;
                }
        }
        if (!s && !(s = calloc(1, sizeof(*s))))
                goto fail;
        if (s->cap < len) {
                free(s->buf);
                s->cap = MAX(ALIGN_UP((size_t) len, (size_t) 4096), (size_t) 4096);
                if (!(s->buf = orion_alloc_aligned(s->cap))) {
                        s->cap = 0;
                        free(s);
                        goto fail;
                }
        }
        s->next = NULL;
        s->acct = len;
        return s;
fail:
        WITH_LOCK(&c->aq_lock) {
                c->inflight--;
                c->inflight_bytes -= len;
        }
        return NULL;
}

static void slot_free(struct nbd_aslot *s) {
        free(s->buf);
        free(s);
}

/* Give back a list of slots (linked by next). */
static void slots_put(struct nbd_conn *c, struct nbd_aslot *list) {
        struct nbd_aslot *drop = NULL;

        WITH_LOCK(&c->aq_lock) {
                while (list) {
                        struct nbd_aslot *s = list;

                        list = s->next;
                        if (s->raw) {
                                s->next = drop;
                                drop = s;
                                continue;
                        }
                        c->inflight--;
                        c->inflight_bytes -= s->acct;
                        if (s->cap <= NBD_ASYNC_KEEP && c->nfree < nbd_conn_threads) {
                                s->next = c->free_slots;
                                c->free_slots = s;
                                c->nfree++;
                        } else {
                                s->next = drop;
                                drop = s;
                        }
                }
                if (c->aq_waiters)
                        pthread_cond_broadcast(&c->aq_cond);
        }
        while (drop) {
                struct nbd_aslot *s = drop;

                drop = s->next;
                slot_free(s);
        }
}

/* ---- Sending -----------------------------------------------------------------------------------
 * The write side is owned by one thread at a time (c->sending). A completion that finds it free
 * takes it and sends without blocking; if the socket is full, a pool job finishes the send, so
 * the node's I/O thread never waits for a slow client. */

static void conn_dead(struct nbd_conn *c) {
        c->dead = true;
        (void) shutdown(c->fd, SHUT_RDWR);
}

/* Take up to NBD_ASYNC_BATCH queued replies and build c->iov; *ret_n iovecs. Releases the write
 * side (and returns NULL) when the queue is empty. */
static struct nbd_aslot *take_batch(struct nbd_conn *c, int *ret_n) {
        struct nbd_aslot *list, *last = NULL;
        unsigned k = 0;
        int n = 0;

        WITH_LOCK(&c->aq_lock) {
                list = c->aq_head;
                if (!list) {
                        c->sending = false;
                        if (c->aq_waiters)
                                pthread_cond_broadcast(&c->aq_cond);
                        return NULL;
                }
                for (last = list; k + 1 < NBD_ASYNC_BATCH && last->next; k++)
                        last = last->next;
                c->aq_head = last->next;
                if (!c->aq_head)
                        c->aq_tail = &c->aq_head;
                last->next = NULL;
        }
        for (struct nbd_aslot *s = list; s; s = s->next) {
                if (s->raw) {
                        c->iov[n++] = (struct iovec) { s->buf, s->rawlen };
                        continue;
                }
                c->iov[n++] = (struct iovec) { s->hdr, s->hlen };
                if (s->data)
                        c->iov[n++] = (struct iovec) { s->buf, s->r.len };
        }
        *ret_n = n;
        return list;
}

static void drain(struct nbd_conn *c, bool may_block);

/* The connection's writer: finishes a send the socket could not take at once (blocking on the
 * client is its job alone, never the node's I/O thread's nor the pool's), then sends the queue. */
static void *writer_thread(void *arg) {
        struct nbd_conn *c = arg;

        for (;;) {
                struct nbd_aslot *list;

                WITH_LOCK(&c->aq_lock) {
                        while (!c->pend && !c->writer_stop) {
                                c->aq_waiters++;
                                pthread_cond_wait(&c->aq_cond, &c->aq_lock);
                                c->aq_waiters--;
                        }
                        list = c->pend;
                }
                if (!list)
                        return NULL; /* stopping, nothing pending */
                if (!c->dead && nbd_sendv_full(c, c->pend_iov, c->pend_n) < 0)
                        conn_dead(c);
                WITH_LOCK(&c->aq_lock)
                        c->pend = NULL;
                slots_put(c, list);
                drain(c, true);
        }
}

/* Send the queue until it is empty, then release the write side. The caller owns it. */
static void drain(struct nbd_conn *c, bool may_block) {
        struct nbd_aslot *list;
        int n;

        while ((list = take_batch(c, &n))) {
                if (c->dead) {
                        slots_put(c, list);
                        continue;
                }
                if (may_block) {
                        if (nbd_sendv_full(c, c->iov, n) < 0)
                                conn_dead(c);
                        slots_put(c, list);
                        continue;
                }
                struct msghdr msg = { .msg_iov = c->iov, .msg_iovlen = (size_t) n };
                ssize_t w = sendmsg(c->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
                struct iovec *v = c->iov;

                if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                        conn_dead(c);
                        slots_put(c, list);
                        continue;
                }
                for (w = MAX(w, (ssize_t) 0); n > 0 && (size_t) w >= v->iov_len; v++, n--)
                        w -= (ssize_t) v->iov_len;
                if (n == 0) {
                        slots_put(c, list);
                        continue;
                }
                v->iov_base = (char *) v->iov_base + w;
                v->iov_len -= (size_t) w;
                WITH_LOCK(&c->aq_lock) {
                        c->pend = list;
                        c->pend_iov = v;
                        c->pend_n = n;
                        if (!c->writer_started &&
                            pthread_create(&c->writer, NULL, writer_thread, c) == 0)
                                c->writer_started = true;
                        if (c->writer_started) {
                                pthread_cond_broadcast(&c->aq_cond);
                                return; /* the writer owns the write side now */
                        }
                        c->pend = NULL;
                }
                /* No thread to hand it to: block here rather than lose the stream. */
                if (nbd_sendv_full(c, v, n) < 0)
                        conn_dead(c);
                slots_put(c, list);
                may_block = true;
        }
}

/* Queue a reply, and send the queue unless someone else is sending. */
static void queue_reply(struct nbd_conn *c, struct nbd_aslot *s) {
        bool owner = false;

        WITH_LOCK(&c->aq_lock) {
                *c->aq_tail = s;
                c->aq_tail = &s->next;
                if (!c->sending)
                        owner = c->sending = true;
        }
        if (owner)
                drain(c, false);
}

/* Queue a reply that is not a request's own (refusals, replies of the synchronous commands):
 * copied, so that the caller never waits for the client. */
int nbd_async_sendv(struct nbd_conn *c, struct iovec *iov, int n) {
        struct nbd_aslot *s = calloc(1, sizeof(*s));
        size_t len = 0;

        for (int i = 0; i < n; i++)
                len += iov[i].iov_len;
        if (!s || !(s->buf = malloc(MAX(len, (size_t) 1)))) {
                free(s);
                return -ENOMEM;
        }
        s->raw = true;
        s->rawlen = len;
        len = 0;
        for (int i = 0; i < n; i++) {
                memcpy((char *) s->buf + len, iov[i].iov_base, iov[i].iov_len);
                len += iov[i].iov_len;
        }
        queue_reply(c, s);
        return 0;
}

/* A completion: queue its reply. */
static void slot_done(struct orion_areq *a) {
        struct nbd_aslot *s = (struct nbd_aslot *) a;
        struct nbd_conn *c = s->r.c;
        int e = a->req.result;

        if (e < 0)
                orion_log_ratelimited(ORION_LOG_ERR, "nbd: %s: command %u (%u bytes at %llu) failed: %s", c->peer,
                                      s->r.type, s->r.len, (unsigned long long) s->r.offset, strerror(-e));
        else if (s->r.type == NBD_CMD_WRITE)
                atomic_fetch_add(&c->bytes_written, s->r.len);
        s->hlen = nbd_reply_prepare(c, &s->r, e, s->hdr, &s->data);
        queue_reply(c, s);
}

/* Requests the node does not take natively run synchronously on the pool. */
static void sync_job(void *arg) {
        struct nbd_aslot *s = arg;

        nbd_run_request(&s->r);
        slots_put(s->r.c, s);
}

/* ---- Reading ---------------------------------------------------------------------------------- */
struct rx {
        char *p;
        size_t pos, end;
};

/* Make at least n (<= NBD_ASYNC_RX) bytes available; one recv may bring many requests. */
static int rx_need(struct nbd_conn *c, struct rx *x, size_t n) {
        while (x->end - x->pos < n) {
                ssize_t k;

                if (x->pos > 0) {
                        memmove(x->p, x->p + x->pos, x->end - x->pos);
                        x->end -= x->pos;
                        x->pos = 0;
                }
                k = recv(c->fd, x->p + x->end, NBD_ASYNC_RX - x->end, 0);
                if (k == 0)
                        return -ECONNRESET;
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                x->end += (size_t) k;
        }
        return 0;
}

/* Copy len payload bytes to dst: what the buffer holds, small rests through it, big ones direct. */
static int rx_take(struct nbd_conn *c, struct rx *x, void *dst, size_t len) {
        size_t have = MIN(len, x->end - x->pos);
        int e;

        memcpy(dst, x->p + x->pos, have);
        x->pos += have;
        len -= have;
        if (len == 0)
                return 0;
        if (len > NBD_ASYNC_RX / 2)
                return nbd_recv_full(c, (char *) dst + have, len);
        e = rx_need(c, x, len);
        if (e < 0)
                return e;
        memcpy((char *) dst + have, x->p + x->pos, len);
        x->pos += len;
        return 0;
}

static int rx_discard(struct nbd_conn *c, struct rx *x, uint64_t len) {
        size_t have = (size_t) MIN(len, (uint64_t) (x->end - x->pos));

        x->pos += have;
        return len > have ? nbd_recv_discard(c, len - have) : 0;
}

/* Can the node take this request as it is (no sparse-read segmentation, no other command)? */
static bool goes_native(const struct nbd_conn *c, const struct nbd_req *r) {
        switch (r->type) {
        case NBD_CMD_READ:
                return r->len > 0 &&
                       (r->len < NBD_SPARSE_READ_MIN || (r->flags & NBD_CMD_FLAG_DF) || !c->structured ||
                        !(orion_bdev_caps(c->node) & ORION_CAP_BLOCK_STATUS));
        case NBD_CMD_WRITE:
                return r->len > 0;
        case NBD_CMD_FLUSH:
                return true;
        default:
                return false;
        }
}

static void submit(struct nbd_conn *c, struct nbd_aslot *s) {
        struct nbd_req *r = &s->r;

        r->buf = s->buf;
        if (!goes_native(c, r)) {
                if (pool_queue(sync_job, s) < 0)
                        sync_job(s);
                return;
        }
        s->a = (struct orion_areq) {
                .req = {
                        .bdev = c->node,
                        .op = r->type == NBD_CMD_READ ? ORION_OP_READ
                              : r->type == NBD_CMD_WRITE ? ORION_OP_WRITE : ORION_OP_FLUSH,
                        .flags = r->type == NBD_CMD_WRITE ? nbd_orion_flags(r->flags) & ORION_FUA : 0,
                        .buf = s->buf,
                        .len = r->type == NBD_CMD_FLUSH ? 0 : r->len,
                        .off = r->type == NBD_CMD_FLUSH ? 0 : r->offset,
                },
                .done = slot_done,
        };
        orion_submit_async(&s->a);
}

/* Read and start one request. 1 = go on, 0 = DISC / end of stream, -errno = drop the connection. */
static int next_request(struct nbd_conn *c, struct rx *x) {
        struct nbd_request h;
        struct nbd_req req;
        struct nbd_aslot *s;
        uint32_t need;
        int e;

        e = rx_need(c, x, sizeof(h));
        if (e < 0)
                return e == -ECONNRESET ? 0 : e;
        memcpy(&h, x->p + x->pos, sizeof(h));
        x->pos += sizeof(h);
        e = nbd_req_decode(c, &h, &req);
        if (e < 0)
                return e;
        if (req.type == NBD_CMD_DISC)
                return 0;
        e = nbd_validate(c, &req);
        if (req.type == NBD_CMD_WRITE && req.len > NBD_MAX_REQUEST && e == 0)
                e = -EINVAL;
        need = req.type == NBD_CMD_READ || req.type == NBD_CMD_WRITE ? req.len
               : req.type == NBD_CMD_CACHE ? MIN(req.len, NBD_CACHE_CHUNK) : 0;
        s = e == 0 ? slot_get(c, need) : NULL;
        if (e == 0 && !s)
                e = -ENOMEM;
        if (req.type == NBD_CMD_WRITE) {
                if (e < 0) {
                        /* Keep the stream in step, but never buffer more than we advertised. */
                        if (req.len > NBD_MAX_DRAIN) {
                                orion_info("nbd: %s: write of %u bytes refused, disconnecting", c->peer, req.len);
                                return -EPROTO;
                        }
                        if (rx_discard(c, x, req.len) < 0)
                                return 0;
                } else if (req.len > 0 && rx_take(c, x, s->buf, req.len) < 0) {
                        slots_put(c, s);
                        return 0;
                }
        }
        if (e < 0)
                return nbd_reply_status(c, req.cookie, req.type, e) < 0 ? 0 : 1;
        s->r = req;
        submit(c, s);
        return 1;
}

int nbd_async_transmission(struct nbd_conn *c) {
        struct rx x = { .p = malloc(NBD_ASYNC_RX) };
        int e;

        if (!x.p)
                return -ENOMEM;
        pthread_mutex_init(&c->aq_lock, NULL);
        pthread_cond_init(&c->aq_cond, NULL);
        c->aq_tail = &c->aq_head;
        c->async = true;
        do
                e = next_request(c, &x);
        while (e > 0);
        /* DISC or end of stream: what is in flight completes and is answered first. */
        WITH_LOCK(&c->aq_lock) {
                while (c->inflight > 0 || c->sending) {
                        c->aq_waiters++;
                        pthread_cond_wait(&c->aq_cond, &c->aq_lock);
                        c->aq_waiters--;
                }
                c->writer_stop = true;
                pthread_cond_broadcast(&c->aq_cond);
        }
        if (c->writer_started)
                pthread_join(c->writer, NULL);
        while (c->free_slots) {
                struct nbd_aslot *s = c->free_slots;

                c->free_slots = s->next;
                slot_free(s);
        }
        pthread_cond_destroy(&c->aq_cond);
        pthread_mutex_destroy(&c->aq_lock);
        free(x.p);
        return e;
}
