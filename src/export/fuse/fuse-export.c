/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* FUSE export driver: mounts a directory holding one image file per export, runs the libfuse
 * low-level session on its own threads, and keeps the file table in step with the exports. */
#include "export/fuse/fuse-export.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <json-c/json.h>
#include <pwd.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/cleanup.h"

#define FEXP_DEFAULT_THREADS 16
#define FEXP_MAX_THREADS 256
#define FUSE_SUPER_MAGIC 0x65735546 /* linux/magic.h */

struct fexp_state g_fexp = {
        .lock = PTHREAD_MUTEX_INITIALIZER,
        .se_lock = PTHREAD_RWLOCK_INITIALIZER,
        .next_ino = FUSE_ROOT_ID + 1,
        .defaults = { .mode = 0600, .direct = true },
};

extern char **environ;

/* ---- Options ------------------------------------------------------------------------------ */

static const char *const daemon_keys[] = {
        "fuse-mountpoint", "fuse-uid", "fuse-gid", "fuse-mode", "fuse-cache", "fuse-allow-other", "fuse-threads",
};
static const char *const export_keys[] = { "fuse-uid", "fuse-gid", "fuse-mode", "fuse-cache" };

static bool key_known(const char *key, const char *const *keys, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (strcmp(key, keys[i]) == 0)
                        return true;
        return false;
}

/* A user or group: a decimal id or a name from the passwd/group database. */
static int parse_id(const char *key, const char *s, bool group, uint32_t *ret, struct orion_error *err) {
        int64_t v;
        char buf[4096];

        if (parse_int64(s, &v) == 0) {
                if (v < 0 || v >= UINT32_MAX)
                        return orion_error_set(err, ERANGE, "fuse: %s '%s' is out of range", key, s);
                *ret = (uint32_t) v;
                return 0;
        }
        if (group) {
                struct group gr, *res = NULL;
                if (getgrnam_r(s, &gr, buf, sizeof buf, &res) != 0 || !res)
                        return orion_error_set(err, EINVAL, "fuse: %s '%s' is no group id or name", key, s);
                *ret = res->gr_gid;
        } else {
                struct passwd pw, *res = NULL;
                if (getpwnam_r(s, &pw, buf, sizeof buf, &res) != 0 || !res)
                        return orion_error_set(err, EINVAL, "fuse: %s '%s' is no user id or name", key, s);
                *ret = res->pw_uid;
        }
        return 0;
}

/* Octal permission bits, at most 0777 (set-id and sticky bits mean nothing on an image). */
static int parse_mode(const char *s, mode_t *ret, struct orion_error *err) {
        unsigned long v = 0;
        size_t n = strlen(s);

        if (n == 0 || n > 4)
                return orion_error_set(err, EINVAL, "fuse: fuse-mode '%s' is not an octal mode like 0640", s);
        for (size_t i = 0; i < n; i++) {
                if (s[i] < '0' || s[i] > '7')
                        return orion_error_set(err, EINVAL, "fuse: fuse-mode '%s' is not an octal mode like 0640", s);
                v = v * 8 + (unsigned long) (s[i] - '0');
        }
        if (v > 0777)
                return orion_error_set(err, EINVAL, "fuse: fuse-mode '%s' has bits beyond 0777", s);
        *ret = (mode_t) v;
        return 0;
}

static int parse_cache(const char *s, bool *ret_direct, struct orion_error *err) {
        if (strcmp(s, "direct") == 0)
                *ret_direct = true;
        else if (strcmp(s, "page") == 0)
                *ret_direct = false;
        else
                return orion_error_set(err, EINVAL, "fuse: fuse-cache '%s' must be 'direct' or 'page'", s);
        return 0;
}

/* Apply one key of the common set (uid, gid, mode, cache) to s. */
static int settings_apply(struct fexp_settings *s, const char *key, const char *val, struct orion_error *err) {
        uint32_t id;
        int r;

        if (strcmp(key, "fuse-uid") == 0) {
                r = parse_id(key, val, false, &id, err);
                if (r == 0)
                        s->uid = (uid_t) id;
        } else if (strcmp(key, "fuse-gid") == 0) {
                r = parse_id(key, val, true, &id, err);
                if (r == 0)
                        s->gid = (gid_t) id;
        } else if (strcmp(key, "fuse-mode") == 0)
                r = parse_mode(val, &s->mode, err);
        else if (strcmp(key, "fuse-cache") == 0)
                r = parse_cache(val, &s->direct, err);
        else
                r = 0;
        return r;
}

/* The driver keys of the [daemon] section; unknown fuse-* keys are refused so typos surface. */
static int parse_daemon_opts(const struct daemon_config *cfg, struct orion_error *err) {
        struct fexp_settings s = { .uid = getuid(), .gid = getgid(), .mode = 0600, .direct = true };
        int r;

        g_fexp.allow_other = false;
        g_fexp.threads = FEXP_DEFAULT_THREADS;
        if (cfg->opts && json_object_is_type(cfg->opts, json_type_object)) {
                json_object_object_foreach(cfg->opts, key, val) {
                        if (strncmp(key, "fuse-", 5) != 0)
                                continue;
                        if (!key_known(key, daemon_keys, ELEMENTSOF(daemon_keys)))
                                return orion_error_set(err, EINVAL, "fuse: unknown daemon key '%s'", key);
                        r = settings_apply(&s, key, json_object_get_string(val), err);
                        if (r < 0)
                                return r;
                }
        }

        const char *v = config_opt(cfg, "fuse-allow-other");
        if (v) {
                r = parse_bool(v);
                if (r < 0)
                        return orion_error_set(err, EINVAL, "fuse: fuse-allow-other '%s' is not on/off", v);
                g_fexp.allow_other = r;
        }
        v = config_opt(cfg, "fuse-threads");
        if (v) {
                int64_t n;
                if (parse_int64(v, &n) < 0 || n < 1 || n > FEXP_MAX_THREADS)
                        return orion_error_set(err, EINVAL, "fuse: fuse-threads '%s' must be 1..%d", v,
                                               FEXP_MAX_THREADS);
                g_fexp.threads = (unsigned) n;
        }
        WITH_LOCK(&g_fexp.lock)
                g_fexp.defaults = s;
        return 0;
}

static int parse_export_opts(const struct orion_export *e, struct fexp_settings *s, struct orion_error *err) {
        int r;

        WITH_LOCK(&g_fexp.lock)
                *s = g_fexp.defaults;
        if (!e->opts || !json_object_is_type(e->opts, json_type_object))
                return 0;
        json_object_object_foreach(e->opts, key, val) {
                if (strncmp(key, "fuse-", 5) != 0)
                        continue;
                if (!key_known(key, export_keys, ELEMENTSOF(export_keys)))
                        return orion_error_set(err, EINVAL, "fuse: unknown key '%s' for export '%s'", key, e->name);
                r = settings_apply(s, key, json_object_get_string(val), err);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* ---- File table --------------------------------------------------------------------------- */

/* Unlink f from the list and free it; lock held, f unlisted, unused and forgotten. */
static void file_free_locked(struct fexp_file *f) {
        for (struct fexp_file **p = &g_fexp.files; *p; p = &(*p)->next)
                if (*p == f) {
                        *p = f->next;
                        break;
                }
        free(f->name);
        free(f);
}

/* After a counter dropped: returns the export reference to release (outside the lock), and
 * frees the file when nothing refers to it any more. */
static struct orion_export *file_settle_locked(struct fexp_file *f) {
        struct orion_export *drop = NULL;

        if (f->listed || f->users > 0)
                return NULL;
        drop = TAKE_PTR(f->exp);
        f->node = NULL;
        if (f->nlookup == 0)
                file_free_locked(f);
        return drop;
}

struct fexp_file *fexp_get(fuse_ino_t ino) {
        struct fexp_file *found = NULL;

        WITH_LOCK(&g_fexp.lock)
                for (struct fexp_file *f = g_fexp.files; f && !found; f = f->next)
                        if (f->ino == ino && f->exp) {
                                f->users++;
                                found = f;
                        }
        return found;
}

struct fexp_file *fexp_lookup(const char *name) {
        struct fexp_file *found = NULL;

        WITH_LOCK(&g_fexp.lock)
                for (struct fexp_file *f = g_fexp.files; f && !found; f = f->next)
                        if (f->listed && strcmp(f->name, name) == 0) {
                                f->nlookup++;
                                f->users++; /* the caller fills the reply from the node: fexp_put after */
                                found = f;
                        }
        return found;
}

void fexp_put(struct fexp_file *f) {
        struct orion_export *drop;

        if (!f)
                return;
        WITH_LOCK(&g_fexp.lock) {
                assert(f->users > 0);
                f->users--;
                drop = file_settle_locked(f);
        }
        if (drop)
                export_unref(drop);
}

void fexp_forget(fuse_ino_t ino, uint64_t nlookup) {
        WITH_LOCK(&g_fexp.lock)
                for (struct fexp_file *f = g_fexp.files; f; f = f->next)
                        if (f->ino == ino) {
                                f->nlookup = nlookup > f->nlookup ? 0 : f->nlookup - nlookup;
                                if (!f->listed && f->users == 0 && !f->exp && f->nlookup == 0)
                                        file_free_locked(f);
                                break;
                        }
}

void fexp_snapshot_free(struct fexp_dirent *d, size_t n) {
        for (size_t i = 0; d && i < n; i++)
                free(d[i].name);
        free(d);
}

static int snapshot_locked(struct fexp_dirent **ret) {
        size_t n = 0, i = 0;

        for (struct fexp_file *f = g_fexp.files; f; f = f->next)
                n += f->listed;
        struct fexp_dirent *d = calloc(n ? n : 1, sizeof *d);
        if (!d)
                return -ENOMEM;
        for (struct fexp_file *f = g_fexp.files; f; f = f->next) {
                if (!f->listed)
                        continue;
                d[i].name = strdup(f->name);
                d[i].ino = f->ino;
                if (!d[i].name) {
                        fexp_snapshot_free(d, i);
                        return -ENOMEM;
                }
                i++;
        }
        *ret = d;
        return (int) n;
}

int fexp_snapshot(struct fexp_dirent **ret) {
        int r;

        WITH_LOCK(&g_fexp.lock)
                r = snapshot_locked(ret);
        return r;
}

void fexp_totals(uint64_t *ret_bytes, uint64_t *ret_files) {
        *ret_bytes = 0;
        *ret_files = 0;
        WITH_LOCK(&g_fexp.lock)
                for (struct fexp_file *f = g_fexp.files; f; f = f->next)
                        if (f->listed && f->node) {
                                *ret_bytes += orion_bdev_size(f->node);
                                (*ret_files)++;
                        }
}

/* ---- Notifications ------------------------------------------------------------------------ */

/* Tell the kernel a name appeared or went away. Never called with g_fexp.lock held: the kernel
 * takes the directory lock, which a lookup in flight holds while it waits for our workers. */
static void notify_entry(const char *name, fuse_ino_t ino, bool deleted) {
        int r = 0;

        pthread_rwlock_rdlock(&g_fexp.se_lock);
        if (g_fexp.se && g_fexp.loop_running) {
                if (deleted)
                        r = fuse_lowlevel_notify_delete(g_fexp.se, FUSE_ROOT_ID, ino, name, strlen(name));
                else
                        r = fuse_lowlevel_notify_inval_entry(g_fexp.se, FUSE_ROOT_ID, name, strlen(name));
        }
        pthread_rwlock_unlock(&g_fexp.se_lock);
        /* -ENOENT: the kernel had no dentry cached, which is fine. */
        if (r < 0 && r != -ENOENT)
                orion_debug("fuse: invalidating '%s' failed: %s", name, strerror(-r));
}

/* ---- Export callbacks --------------------------------------------------------------------- */

static int fexp_export_added(struct orion_export *e, struct orion_error *err) {
        struct fexp_settings s;
        _cleanup_free_ char *name = NULL;
        int r;

        r = parse_export_opts(e, &s, err);
        if (r < 0)
                return r;
        if (strlen(e->name) + 4 > 255)
                return orion_error_set(err, ENAMETOOLONG, "fuse: export name '%s' is too long for a file name",
                                       e->name);
        if (asprintf(&name, "%s.img", e->name) < 0) {
                name = NULL;
                return orion_error_set(err, ENOMEM, "fuse: out of memory");
        }
        struct fexp_file *f = calloc(1, sizeof *f);
        if (!f)
                return orion_error_set(err, ENOMEM, "fuse: out of memory");
        f->name = TAKE_PTR(name);
        f->exp = export_ref(e);
        f->node = e->node;
        f->set = s;
        f->readonly = e->readonly || (orion_bdev_caps(e->node) & ORION_CAP_READONLY);
        f->listed = true;
        clock_gettime(CLOCK_REALTIME, &f->created);

        WITH_LOCK(&g_fexp.lock) {
                f->ino = g_fexp.next_ino++;
                f->next = g_fexp.files;
                g_fexp.files = f;
        }
        notify_entry(f->name, f->ino, false);
        orion_debug("fuse: export '%s' appears as '%s'", e->name, f->name);
        return 0;
}

static void fexp_export_removed(struct orion_export *e) {
        struct orion_export *drop = NULL;
        char *name = NULL;
        fuse_ino_t ino = 0;

        WITH_LOCK(&g_fexp.lock) {
                for (struct fexp_file *f = g_fexp.files; f; f = f->next)
                        if (f->listed && f->exp == e) {
                                f->listed = false;
                                ino = f->ino;
                                name = strdup(f->name);
                                drop = file_settle_locked(f);
                                break;
                        }
        }
        if (drop)
                export_unref(drop);
        if (name)
                notify_entry(name, ino, true);
        free(name);
}

/* ---- Mount point -------------------------------------------------------------------------- */

static int mkdir_p(const char *path, mode_t mode) {
        _cleanup_free_ char *p = strdup(path);

        if (!p)
                return -ENOMEM;
        for (char *s = p + 1; *s; s++) {
                if (*s != '/')
                        continue;
                *s = '\0';
                if (mkdir(p, mode) < 0 && errno != EEXIST)
                        return -errno;
                *s = '/';
        }
        if (mkdir(p, mode) < 0 && errno != EEXIST)
                return -errno;
        return 0;
}

/* Lazily detach a mount whose daemon died: umount2 as root, else fusermount3 -uz. */
static int detach_stale(const char *mp) {
        if (umount2(mp, MNT_DETACH | UMOUNT_NOFOLLOW) == 0)
                return 0;
        int r = -errno;
        if (r != -EPERM)
                return r;

        char *argv[] = { (char *) "fusermount3", (char *) "-uz", (char *) mp, NULL };
        pid_t pid;
        int status;
        r = posix_spawnp(&pid, "fusermount3", NULL, NULL, argv, environ);
        if (r != 0)
                return -r;
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return -errno;
        return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -EPERM;
}

/* FORCE_SYNC: a dead FUSE mount may still answer stat() from attributes the kernel cached. */
static int stat_sync(const char *path, mode_t *ret_mode) {
        struct statx stx;

        if (statx(AT_FDCWD, path, AT_STATX_FORCE_SYNC, STATX_TYPE, &stx) < 0)
                return -errno;
        *ret_mode = stx.stx_mode;
        return 0;
}

static int prepare_mountpoint(const char *mp, struct orion_error *err) {
        mode_t mode;
        int r;

        r = stat_sync(mp, &mode);
        if (r == -ENOTCONN) {
                orion_warn("fuse: '%s' is a stale mount of a dead daemon, detaching it", mp);
                r = detach_stale(mp);
                if (r < 0)
                        return orion_error_set(err, -r, "fuse: cannot detach stale mount '%s': %s", mp,
                                               strerror(-r));
                r = stat_sync(mp, &mode);
        } else if (r == -ENOENT) {
                r = mkdir_p(mp, 0755);
                if (r < 0)
                        return orion_error_set(err, -r, "fuse: cannot create mount point '%s': %s", mp,
                                               strerror(-r));
                return 0;
        }
        if (r < 0)
                return orion_error_set(err, -r, "fuse: mount point '%s': %s", mp, strerror(-r));
        if (!S_ISDIR(mode))
                return orion_error_set(err, ENOTDIR, "fuse: mount point '%s' is not a directory", mp);
        /* A live FUSE mount there belongs to someone else (another oriond): never stack on it. */
        struct statfs sfs;
        if (statfs(mp, &sfs) == 0 && sfs.f_type == FUSE_SUPER_MAGIC)
                return orion_error_set(err, EBUSY, "fuse: '%s' is already a FUSE mount (another oriond?)", mp);
        return 0;
}

/* ---- Session ------------------------------------------------------------------------------ */

__attribute__((format(printf, 2, 0))) static void fexp_log_cb(enum fuse_log_level level, const char *fmt,
                                                          va_list ap) {
        enum orion_log_level l = level <= FUSE_LOG_ERR       ? ORION_LOG_ERR
                                 : level == FUSE_LOG_WARNING ? ORION_LOG_WARNING
                                 : level <= FUSE_LOG_INFO    ? ORION_LOG_INFO
                                                             : ORION_LOG_DEBUG;
        _cleanup_free_ char *msg = NULL;

        if (vasprintf(&msg, fmt, ap) < 0)
                return;
        size_t n = strlen(msg);
        if (n > 0 && msg[n - 1] == '\n')
                msg[n - 1] = '\0';
        orion_log(l, "fuse: libfuse: %s", msg);
}

static void *loop_thread(void *arg) {
        struct fuse_loop_config *lc = arg;
        int r = fuse_session_loop_mt(g_fexp.se, lc);

        fuse_loop_cfg_destroy(lc);
        atomic_store(&g_fexp.loop_ended, true);
        if (!atomic_load(&g_fexp.stopping))
                orion_warn("fuse: session on '%s' ended (%s); image files are gone until restart",
                           g_fexp.mountpoint, r == 0 ? "unmounted" : strerror(r < 0 ? -r : r));
        return NULL;
}

static int fexp_start(const struct daemon_config *cfg, struct orion_error *err) {
        _cleanup_free_ char *opts = NULL;
        const char *mp = cfg->fuse_mountpoint ? cfg->fuse_mountpoint : DEFAULT_FUSE_MOUNTPOINT;
        int r;

        r = parse_daemon_opts(cfg, err);
        if (r < 0)
                return r;
        r = prepare_mountpoint(mp, err);
        if (r < 0)
                return r;
        char *mp_copy = strdup(mp);
        if (!mp_copy)
                return orion_error_set(err, ENOMEM, "fuse: out of memory");
        pthread_rwlock_wrlock(&g_fexp.se_lock);
        g_fexp.mountpoint = mp_copy;
        pthread_rwlock_unlock(&g_fexp.se_lock);
        g_fexp.root_uid = getuid();
        g_fexp.root_gid = getgid();
        clock_gettime(CLOCK_REALTIME, &g_fexp.started);
        fuse_set_log_func(fexp_log_cb);

        /* default_permissions: the kernel checks owner and mode, so fuse-mode means something. */
        if (asprintf(&opts, "fsname=orion,subtype=orion,default_permissions,max_read=%u%s", FEXP_MAX_IO,
                     g_fexp.allow_other ? ",allow_other" : "") < 0) {
                opts = NULL;
                r = orion_error_set(err, ENOMEM, "fuse: out of memory");
                goto fail;
        }
        char *argv[] = { (char *) "oriond", (char *) "-o", opts, NULL };
        struct fuse_args args = FUSE_ARGS_INIT(3, argv);
        struct fuse_session *se = fuse_session_new(&args, &fexp_ops, sizeof fexp_ops, NULL);
        fuse_opt_free_args(&args);
        if (!se) {
                r = orion_error_set(err, EINVAL, "fuse: cannot create a FUSE session (see libfuse message)");
                goto fail;
        }
        if (fuse_session_mount(se, mp) != 0) {
                fuse_session_destroy(se);
                r = orion_error_set(err, EIO, "fuse: cannot mount on '%s' (is /dev/fuse usable?)", mp);
                goto fail;
        }

        struct fuse_loop_config *lc = fuse_loop_cfg_create();
        if (!lc) {
                r = orion_error_set(err, ENOMEM, "fuse: out of memory");
                goto fail_mounted;
        }
        fuse_loop_cfg_set_clone_fd(lc, 1);
        fuse_loop_cfg_set_max_threads(lc, g_fexp.threads);
        fuse_loop_cfg_set_idle_threads(lc, g_fexp.threads);

        pthread_rwlock_wrlock(&g_fexp.se_lock);
        g_fexp.se = se;
        atomic_store(&g_fexp.stopping, false);
        atomic_store(&g_fexp.loop_ended, false);
        r = -pthread_create(&g_fexp.loop_thread, NULL, loop_thread, lc);
        g_fexp.loop_running = r == 0;
        if (r < 0)
                g_fexp.se = NULL;
        pthread_rwlock_unlock(&g_fexp.se_lock);
        if (r < 0) {
                fuse_loop_cfg_destroy(lc);
                orion_error_set(err, -r, "fuse: cannot start the session thread: %s", strerror(-r));
                goto fail_mounted;
        }
        orion_info("fuse: image files under '%s' (%s, %u threads)", mp,
                   g_fexp.defaults.direct ? "direct I/O" : "page cache", g_fexp.threads);
        return 0;

fail_mounted:
        fuse_session_unmount(se);
        fuse_session_destroy(se);
fail:
        pthread_rwlock_wrlock(&g_fexp.se_lock);
        free(TAKE_PTR(g_fexp.mountpoint));
        pthread_rwlock_unlock(&g_fexp.se_lock);
        return r;
}

/* Make one worker return from its read so that the exited session loop notices: a lookup of
 * a name that never exists is answered by a worker, which then sees the exit flag. */
static void wake_loop(void) {
        _cleanup_free_ char *p = NULL;
        struct stat st;

        if (asprintf(&p, "%s/.orion-stop", g_fexp.mountpoint) < 0)
                return;
        (void) stat(p, &st); /* ENOENT expected */
}

static void fexp_stop(void) {
        if (!g_fexp.loop_running)
                return;
        atomic_store(&g_fexp.stopping, true);
        fuse_session_exit(g_fexp.se);

        /* A plain unmount ends the connection, so every worker's read fails and the loop ends.
         * If a user (a loop device, an open file) keeps it busy, wake the loop instead; libfuse's
         * unmount below then closes the device, which aborts the connection (those users get
         * ENOTCONN rather than hanging), and detaches the mount lazily. */
        if (umount2(g_fexp.mountpoint, UMOUNT_NOFOLLOW) < 0) {
                if (errno == EBUSY)
                        orion_warn("fuse: '%s' is still in use; detaching it, open users get errors",
                                   g_fexp.mountpoint);
                else if (errno != EINVAL) /* EINVAL: already unmounted (the loop has ended) */
                        orion_warn("fuse: unmounting '%s' failed: %m", g_fexp.mountpoint);
                wake_loop();
        }
        pthread_join(g_fexp.loop_thread, NULL);

        pthread_rwlock_wrlock(&g_fexp.se_lock);
        struct fuse_session *se = TAKE_PTR(g_fexp.se);
        g_fexp.loop_running = false;
        pthread_rwlock_unlock(&g_fexp.se_lock);
        fuse_session_unmount(se); /* quiet when already unmounted (the device reports POLLERR) */
        fuse_session_destroy(se);

        /* The kernel's opens and lookups died with the connection. */
        struct orion_export *drops[64];
        size_t ndrops;
        do {
                ndrops = 0;
                WITH_LOCK(&g_fexp.lock) {
                        struct fexp_file *next;
                        for (struct fexp_file *f = g_fexp.files; f && ndrops < ELEMENTSOF(drops); f = next) {
                                next = f->next;
                                f->nlookup = 0;
                                f->users = 0;
                                struct orion_export *d = file_settle_locked(f);
                                if (d)
                                        drops[ndrops++] = d;
                        }
                }
                for (size_t i = 0; i < ndrops; i++)
                        export_unref(drops[i]);
        } while (ndrops == ELEMENTSOF(drops));
        orion_info("fuse: unmounted '%s'", g_fexp.mountpoint);
        pthread_rwlock_wrlock(&g_fexp.se_lock);
        free(TAKE_PTR(g_fexp.mountpoint));
        pthread_rwlock_unlock(&g_fexp.se_lock);
}

static void fexp_status(struct json_object *out) {
        uint64_t bytes, files;

        fexp_totals(&bytes, &files);
        pthread_rwlock_rdlock(&g_fexp.se_lock);
        json_object_object_add(out, "mountpoint",
                               g_fexp.mountpoint ? json_object_new_string(g_fexp.mountpoint) : NULL);
        bool mounted = g_fexp.loop_running && !atomic_load(&g_fexp.loop_ended);
        pthread_rwlock_unlock(&g_fexp.se_lock);
        json_object_object_add(out, "mounted", json_object_new_boolean(mounted));
        json_object_object_add(out, "files", json_object_new_int64((int64_t) files));
        json_object_object_add(out, "cache", json_object_new_string(g_fexp.defaults.direct ? "direct" : "page"));
        json_object_object_add(out, "allow-other", json_object_new_boolean(g_fexp.allow_other));
}

const struct export_driver fuse_export_driver = {
        .name = "fuse",
        .proto = PROTO_FUSE,
        .start = fexp_start,
        .stop = fexp_stop,
        .export_added = fexp_export_added,
        .export_removed = fexp_export_removed,
        .status = fexp_status,
};
