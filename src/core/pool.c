/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The process-wide worker pool. A thread waiting for a batch runs its own unstarted jobs itself,
 * so batches nested inside jobs (raid over raid) never deadlock on an exhausted pool. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "core/core.h"

struct batch;

struct job {
        void (*fn)(void *arg);
        void *arg;
        struct batch *batch;    /* NULL for fire-and-forget jobs (then the job is freed after running) */
        struct job *prev, *next;
        bool queued;            /* in the queue (queue lock) */
};

struct batch {
        pthread_mutex_t lock;
        pthread_cond_t done;
        size_t pending;
};

static pthread_mutex_t g_qlock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_qcond = PTHREAD_COND_INITIALIZER;
static struct job *g_head, *g_tail;
static pthread_t *g_threads;
static unsigned g_nthreads;
static bool g_stopping;

static void enqueue_locked(struct job *j) {
        j->next = NULL;
        j->prev = g_tail;
        if (g_tail)
                g_tail->next = j;
        else
                g_head = j;
        g_tail = j;
        j->queued = true;
}

static void unlink_locked(struct job *j) {
        if (j->prev)
                j->prev->next = j->next;
        else
                g_head = j->next;
        if (j->next)
                j->next->prev = j->prev;
        else
                g_tail = j->prev;
        j->prev = j->next = NULL;
        j->queued = false;
}

static void finish(struct job *j) {
        struct batch *b = j->batch;
        if (!b) {
                free(j);
                return;
        }
        pthread_mutex_lock(&b->lock);
        if (--b->pending == 0)
                pthread_cond_broadcast(&b->done);
        pthread_mutex_unlock(&b->lock);
}

static void *worker(void *arg) {
        (void) arg;
        for (;;) {
                pthread_mutex_lock(&g_qlock);
                while (!g_head && !g_stopping)
                        pthread_cond_wait(&g_qcond, &g_qlock);
                if (!g_head) {
                        pthread_mutex_unlock(&g_qlock);
                        return NULL;
                }
                struct job *j = g_head;
                unlink_locked(j);
                pthread_mutex_unlock(&g_qlock);
                j->fn(j->arg);
                finish(j);
        }
}

int pool_init(unsigned threads) {
        LOCK_GUARD(&g_qlock);
        if (g_nthreads)
                return 0;
        if (threads == 0) {
                long cpus = sysconf(_SC_NPROCESSORS_ONLN);
                threads = cpus > 0 ? (unsigned) cpus * 4 : 16;
                if (threads < 16)
                        threads = 16;
        }
        g_threads = calloc(threads, sizeof *g_threads);
        if (!g_threads)
                return -ENOMEM;
        g_stopping = false;
        for (unsigned i = 0; i < threads; i++) {
                int r = pthread_create(&g_threads[i], NULL, worker, NULL);
                if (r) {
                        orion_error("pool: cannot start worker thread: %s", strerror(r));
                        break;
                }
                g_nthreads++;
        }
        return g_nthreads ? 0 : -EAGAIN;
}

void pool_done(void) {
        pthread_mutex_lock(&g_qlock);
        g_stopping = true;
        pthread_cond_broadcast(&g_qcond);
        unsigned n = g_nthreads;
        pthread_mutex_unlock(&g_qlock);
        for (unsigned i = 0; i < n; i++)
                pthread_join(g_threads[i], NULL);
        pthread_mutex_lock(&g_qlock);
        free(g_threads);
        g_threads = NULL;
        g_nthreads = 0;
        pthread_mutex_unlock(&g_qlock);
}

static int ensure_started(void) {
        pthread_mutex_lock(&g_qlock);
        unsigned n = g_nthreads;
        pthread_mutex_unlock(&g_qlock);
        return n ? 0 : pool_init(0);
}

int pool_queue(void (*fn)(void *arg), void *arg) {
        int r = ensure_started();
        if (r < 0)
                return r;
        struct job *j = calloc(1, sizeof *j);
        if (!j)
                return -ENOMEM;
        j->fn = fn;
        j->arg = arg;
        pthread_mutex_lock(&g_qlock);
        if (g_stopping) {
                pthread_mutex_unlock(&g_qlock);
                free(j);
                return -ESHUTDOWN;
        }
        enqueue_locked(j);
        pthread_cond_signal(&g_qcond);
        pthread_mutex_unlock(&g_qlock);
        return 0;
}

/* Run fn(args[i]) for every i concurrently and return when all are done. */
int pool_run_batch(void (*fn)(void *), void **args, size_t n);
int pool_run_batch(void (*fn)(void *), void **args, size_t n) {
        if (n == 0)
                return 0;
        if (n == 1 || ensure_started() < 0) {
                for (size_t i = 0; i < n; i++)
                        fn(args[i]);
                return 0;
        }
        struct job *jobs = calloc(n, sizeof *jobs);
        if (!jobs) {
                for (size_t i = 0; i < n; i++)
                        fn(args[i]);
                return 0;
        }
        struct batch b = { .pending = n };
        pthread_mutex_init(&b.lock, NULL);
        pthread_cond_init(&b.done, NULL);

        pthread_mutex_lock(&g_qlock);
        /* One wake-up per queued job, not a broadcast: waking every idle worker for a batch of
         * two cost tens of context switches per request. */
        for (size_t i = 1; i < n; i++) {
                jobs[i] = (struct job){ .fn = fn, .arg = args[i], .batch = &b };
                enqueue_locked(&jobs[i]);
                pthread_cond_signal(&g_qcond);
        }
        pthread_mutex_unlock(&g_qlock);

        /* The first job runs here; then every job still queued is taken back and run here. */
        jobs[0] = (struct job){ .fn = fn, .arg = args[0], .batch = &b };
        fn(args[0]);
        finish(&jobs[0]);
        for (size_t i = 1; i < n; i++) {
                pthread_mutex_lock(&g_qlock);
                bool mine = jobs[i].queued;
                if (mine)
                        unlink_locked(&jobs[i]);
                pthread_mutex_unlock(&g_qlock);
                if (mine) {
                        fn(args[i]);
                        finish(&jobs[i]);
                }
        }

        pthread_mutex_lock(&b.lock);
        while (b.pending)
                pthread_cond_wait(&b.done, &b.lock);
        pthread_mutex_unlock(&b.lock);
        pthread_mutex_destroy(&b.lock);
        pthread_cond_destroy(&b.done);
        free(jobs);
        return 0;
}

void orion_parallel(void (*fn)(void *arg), void **args, size_t n) {
        (void) pool_run_batch(fn, args, n);
}
