/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* raid ctl verbs (`orionctl raid VERB NODE ...`): status, fail, remove, add, replace, scrub;
 * plus the node's status (per-member state, jobs with progress) and statistics. */
#include <errno.h>
#include <string.h>

#include <json-c/json.h>

#include "ctl.h"

/* ---- Status ---------------------------------------------------------------------------------- */

static struct json_object *job_json(const struct raid_job *j, bool extra) {
        struct json_object *o = json_object_new_object();
        double prog = j->end ? (double) j->pos / (double) j->end : 0.0;

        json_object_object_add(o, "running", json_object_new_boolean(j->running));
        json_object_object_add(o, "progress",
                               json_object_new_double(j->running ? MIN(prog, 1.0) : (j->ran ? 1.0 : 0.0)));
        json_object_object_add(o, "done", json_object_new_boolean(!j->running));
        if (extra) {
                json_object_object_add(o, "mode", json_object_new_string(j->repair ? "repair" : "check"));
                json_object_object_add(o, "mismatches", json_object_new_uint64(j->mismatches));
        }
        return o;
}

static const char *member_state(const struct raid_member *m) {
        if (!m->dev)
                return "missing";
        return dev_state_name(m->state);
}

static void status_locked(struct raid *r, struct json_object *out) {
        struct json_object *members = json_object_new_array(), *a;
        unsigned degraded = 0;
        char u[37];
        const struct raid_job *cur = NULL;

        uuid_format(r->sb.uuid, u);
        json_object_object_add(out, "level", json_object_new_int((int) r->sb.level));
        json_object_object_add(out, "uuid", json_object_new_string(u));
        json_object_object_add(out, "chunk", json_object_new_uint64(r->chunk));
        json_object_object_add(out, "raid-disks", json_object_new_int((int) r->n));
        json_object_object_add(out, "events", json_object_new_uint64(r->sb.events));
        for (unsigned i = 0; i < r->n; i++) {
                const struct raid_member *m = &r->m[i];
                struct json_object *o = json_object_new_object();

                degraded += !m->dev || m->state != RAID_DEV_ACTIVE;
                json_object_object_add(o, "role", json_object_new_int((int) i));
                json_object_object_add(o, "name",
                                       m->dev ? json_object_new_string(orion_bdev_name(m->dev)) : NULL);
                json_object_object_add(o, "state", json_object_new_string(member_state(m)));
                if (m->dev && m->state == RAID_DEV_REBUILDING)
                        json_object_object_add(o, "recovery", json_object_new_uint64(m->recovery));
                if (m->repl) {
                        json_object_object_add(o, "replacement",
                                               json_object_new_string(orion_bdev_name(m->repl)));
                        json_object_object_add(o, "replacement-recovery",
                                               json_object_new_uint64(m->repl_recovery));
                }
                json_object_array_add(members, o);
        }
        json_object_object_add(out, "members", members);
        json_object_object_add(out, "degraded", json_object_new_int((int) degraded));
        a = json_object_new_array();
        for (unsigned i = 0; i < r->nspares; i++)
                json_object_array_add(a, json_object_new_string(orion_bdev_name(r->spares[i])));
        json_object_object_add(out, "spares", a);
        a = json_object_new_array();
        for (unsigned i = 0; i < r->nfaulty; i++)
                json_object_array_add(a, json_object_new_string(orion_bdev_name(r->faulty[i])));
        json_object_object_add(out, "faulty", a);
        json_object_object_add(out, "rebuild", job_json(&r->rebuild, false));
        json_object_object_add(out, "resync", job_json(&r->resync, false));
        json_object_object_add(out, "scrub", job_json(&r->scrub, true));
        json_object_object_add(out, "state",
                               json_object_new_string(raid_failed_locked(r) ? "failed"
                                                      : degraded            ? "degraded"
                                                                            : "clean"));
        /* the job in progress, for a progress bar (orionctl --wait) */
        if (r->rebuild.running)
                cur = &r->rebuild;
        else if (r->resync.running || r->resync_needed)
                cur = &r->resync;
        else if (r->scrub.running)
                cur = &r->scrub;
        if (!cur && sync_pending_locked(r))
                cur = &r->rebuild; /* about to start */
        if (cur) {
                json_object_object_add(
                        out, "progress",
                        json_object_new_double(cur->end ? MIN((double) cur->pos / (double) cur->end, 1.0)
                                                        : 0));
                json_object_object_add(out, "done", json_object_new_boolean(false));
        } else {
                json_object_object_add(out, "progress", json_object_new_double(1.0));
                json_object_object_add(out, "done", json_object_new_boolean(true));
        }
}

void raid_status(struct orion_bdev *b, struct json_object *out) {
        struct raid *r = orion_bdev_priv(b);

        WITH_LOCK (&r->lock)
                status_locked(r, out);
}

void raid_stats(struct orion_bdev *b, struct json_object *sink) {
        struct raid *r = orion_bdev_priv(b);

        orion_stats_put(sink, "mismatches", atomic_load(&r->mismatches));
        orion_stats_put(sink, "rebuilt-bytes", atomic_load(&r->rebuilt_bytes));
        orion_stats_put(sink, "resynced-bytes", atomic_load(&r->resynced_bytes));
        orion_stats_put(sink, "scrubbed-bytes", atomic_load(&r->scrubbed_bytes));
        orion_stats_put(sink, "errors", atomic_load(&r->io_errors));
        orion_stats_put(sink, "degraded-reads", atomic_load(&r->degraded_reads));
        orion_stats_put(sink, "full-stripe-writes", atomic_load(&r->full_stripe_writes));
        orion_stats_put(sink, "rmw-writes", atomic_load(&r->rmw_writes));
        orion_stats_put(sink, "rcw-writes", atomic_load(&r->rcw_writes));
        orion_stats_put(sink, "inline-batches", atomic_load(&r->inline_batches));
        orion_stats_put(sink, "parallel-batches", atomic_load(&r->parallel_batches));
}

/* ---- Verbs ----------------------------------------------------------------------------------- */

/* Positional arguments: {"argv":[...]} from `orionctl raid VERB NODE ARGS...`, or named keys. */
static const char *arg(struct json_object *args, size_t i, const char *key) {
        struct json_object *v;

        if (!args)
                return NULL;
        if (json_object_object_get_ex(args, "argv", &v) && json_object_is_type(v, json_type_array)) {
                struct json_object *e = json_object_array_get_idx(v, i);

                return e ? json_object_get_string(e) : NULL;
        }
        if (key && json_object_object_get_ex(args, key, &v))
                return json_object_get_string(v);
        return NULL;
}

static int find_role(struct raid *r, const char *name) {
        for (unsigned i = 0; i < r->n; i++)
                if (r->m[i].dev && strcmp(orion_bdev_name(r->m[i].dev), name) == 0)
                        return (int) i;
        return -1;
}

static int ctl_fail(struct raid *r, const char *name, struct orion_error *err) {
        bool lost[RAID_MAX_MEMBERS] = {};
        int role = -1;

        pthread_rwlock_rdlock(&r->cfg);
        WITH_LOCK (&r->lock) {
                role = find_role(r, name);
                if (role >= 0) {
                        for (unsigned i = 0; i < r->n; i++)
                                lost[i] = !r->m[i].dev || r->m[i].state != RAID_DEV_ACTIVE ||
                                          i == (unsigned) role;
                }
        }
        if (role < 0) {
                pthread_rwlock_unlock(&r->cfg);
                return orion_error_set(err, ENOENT, "raid: '%s' is not a member of '%s'", name,
                                       orion_bdev_name(r->bdev));
        }
        if (r->m[role].state == RAID_DEV_ACTIVE && !r->ops->survives(r, lost)) {
                pthread_rwlock_unlock(&r->cfg);
                return orion_error_set(err, EBUSY, "raid: failing '%s' would lose data", name);
        }
        raid_member_failed(r, r->m[role].dev, -EIO);
        pthread_rwlock_unlock(&r->cfg);
        return 0;
}

static bool take(struct orion_bdev **list, unsigned *n, const char *name, struct orion_bdev **ret) {
        for (unsigned i = 0; i < *n; i++)
                if (strcmp(orion_bdev_name(list[i]), name) == 0) {
                        *ret = list[i];
                        memmove(list + i, list + i + 1, (--*n - i) * sizeof(*list));
                        return true;
                }
        return false;
}

static int ctl_remove(struct raid *r, const char *name, struct orion_error *err) {
        struct orion_bdev *dev = NULL;
        int ret = 0;

        pthread_rwlock_wrlock(&r->cfg);
        WITH_LOCK (&r->lock) {
                int role;

                if (take(r->faulty, &r->nfaulty, name, &dev) || take(r->spares, &r->nspares, name, &dev))
                        break;
                role = find_role(r, name);
                if (role < 0)
                        ret = orion_error_set(err, ENOENT, "raid: '%s' is not part of '%s'", name,
                                              orion_bdev_name(r->bdev));
                else if (r->m[role].state != RAID_DEV_FAULTY)
                        ret = orion_error_set(err, EBUSY, "raid: '%s' is %s; fail it first", name,
                                              dev_state_name(r->m[role].state));
                else {
                        dev = r->m[role].dev;
                        r->m[role].dev = NULL;
                        r->m[role].state = RAID_DEV_MISSING;
                }
        }
        if (ret == 0)
                (void) raid_sb_update(r, false);
        pthread_rwlock_unlock(&r->cfg);
        if (dev)
                orion_bdev_release_child(r->bdev, dev);
        raid_update_health(r);
        return ret;
}

/* Attach a new device, refusing one that holds another array or is too small. */
static struct orion_bdev *attach(struct raid *r, const char *name, struct orion_error *err) {
        struct orion_bdev *dev = orion_bdev_attach_child(r->bdev, name, err);
        _cleanup_free_ uint8_t *buf = orion_alloc_aligned(RAID_SB_SIZE);
        struct raid_sb sb;

        if (!dev)
                return NULL;
        if (!buf) {
                orion_error_set(err, ENOMEM, "raid: out of memory");
                goto fail;
        }
        if (orion_bdev_size(dev) < r->data_offset + r->data_size) {
                orion_error_set(err, ENOSPC, "raid: '%s' is too small", name);
                goto fail;
        }
        if (orion_bdev_pread(dev, buf, RAID_SB_SIZE, 0, 0) == 0 && sb_decode(buf, RAID_SB_SIZE, &sb) == 0 &&
            memcmp(sb.uuid, r->sb.uuid, 16) != 0) {
                orion_error_set(err, EEXIST, "raid: '%s' holds another array's superblock", name);
                goto fail;
        }
        for (unsigned i = 0; i < r->n; i++)
                if (r->m[i].dev == dev || r->m[i].repl == dev) {
                        orion_error_set(err, EBUSY, "raid: '%s' is already a member", name);
                        goto fail;
                }
        for (unsigned i = 0; i < r->nspares; i++)
                if (r->spares[i] == dev) {
                        orion_error_set(err, EBUSY, "raid: '%s' is already a spare", name);
                        goto fail;
                }
        return dev;
fail:
        orion_bdev_release_child(r->bdev, dev);
        return NULL;
}

static int ctl_add(struct raid *r, const char *name, struct orion_error *err) {
        struct orion_bdev *dev;

        if (!r->ops->sync_row)
                return orion_error_set(err, EOPNOTSUPP, "raid: raid0 has no use for spares");
        pthread_rwlock_wrlock(&r->cfg);
        dev = attach(r, name, err);
        if (dev) {
                WITH_LOCK (&r->lock)
                        r->spares[r->nspares++] = dev;
                (void) raid_sb_update(r, false);
        }
        pthread_rwlock_unlock(&r->cfg);
        if (!dev)
                return -err->code;
        sync_kick(r);
        return 0;
}

static int ctl_replace(struct raid *r, const char *old, const char *name, struct orion_error *err) {
        struct orion_bdev *dev;
        int role, ret = 0;

        if (!r->ops->sync_row)
                return orion_error_set(err, EOPNOTSUPP, "raid: raid0 members cannot be replaced");
        pthread_rwlock_wrlock(&r->cfg);
        role = find_role(r, old);
        if (role < 0)
                ret = orion_error_set(err, ENOENT, "raid: '%s' is not a member of '%s'", old,
                                      orion_bdev_name(r->bdev));
        else if (r->m[role].repl)
                ret = orion_error_set(err, EBUSY, "raid: '%s' is already being replaced", old);
        else if ((dev = attach(r, name, err)) == NULL)
                ret = -err->code;
        else {
                WITH_LOCK (&r->lock) {
                        r->m[role].repl = dev;
                        r->m[role].repl_recovery = 0;
                        r->rebuild_blocked = false;
                }
                (void) raid_sb_update(r, false);
        }
        pthread_rwlock_unlock(&r->cfg);
        if (ret == 0) {
                orion_notice("raid '%s': replacing '%s' with '%s'", orion_bdev_name(r->bdev), old, name);
                sync_kick(r);
        }
        return ret;
}

static int ctl_scrub(struct raid *r, const char *action, const char *mode, struct orion_error *err) {
        int ret;

        if (!action || strcmp(action, "start") == 0 || strcmp(action, "check") == 0 ||
            strcmp(action, "repair") == 0) {
                bool repair =
                        (action && strcmp(action, "repair") == 0) || (mode && strcmp(mode, "repair") == 0);

                if (mode && strcmp(mode, "repair") != 0 && strcmp(mode, "check") != 0)
                        return orion_error_set(err, EINVAL, "raid: scrub mode is check or repair, not '%s'",
                                               mode);
                ret = sync_scrub_start(r, repair);
                if (ret == -EOPNOTSUPP)
                        return orion_error_set(err, EOPNOTSUPP, "raid: raid0 has nothing to scrub");
                if (ret == -EBUSY)
                        return orion_error_set(err, EBUSY, "raid: a scrub is already running");
                return ret;
        }
        if (strcmp(action, "stop") == 0) {
                sync_scrub_stop(r);
                return 0;
        }
        return orion_error_set(err, EINVAL, "raid: scrub start|stop [repair], not '%s'", action);
}

int raid_ctl(struct orion_bdev *b, const char *verb, struct json_object *args,
             struct json_object **ret_reply, struct orion_error *err) {
        struct raid *r = orion_bdev_priv(b);
        const char *a0 = arg(args, 0, "member"), *a1 = arg(args, 1, "new");
        int ret;

        if (strcmp(verb, "status") == 0) {
                ret = 0;
        } else if (strcmp(verb, "fail") == 0 || strcmp(verb, "remove") == 0 || strcmp(verb, "add") == 0) {
                if (!a0 && strcmp(verb, "add") == 0)
                        a0 = arg(args, 0, "spare");
                if (!a0)
                        return orion_error_set(err, EINVAL, "raid: %s needs a member name", verb);
                ret = verb[0] == 'f'   ? ctl_fail(r, a0, err)
                      : verb[0] == 'r' ? ctl_remove(r, a0, err)
                                       : ctl_add(r, a0, err);
        } else if (strcmp(verb, "replace") == 0) {
                if (!a0)
                        a0 = arg(args, 0, "old");
                if (!a0 || !a1)
                        return orion_error_set(err, EINVAL, "raid: replace OLD NEW");
                ret = ctl_replace(r, a0, a1, err);
        } else if (strcmp(verb, "scrub") == 0) {
                ret = ctl_scrub(r, arg(args, 0, "action"), arg(args, 1, "mode"), err);
        } else
                return orion_error_set(err, EOPNOTSUPP,
                                       "raid: unknown verb '%s' (status, fail, remove, add, replace, scrub)",
                                       verb);
        if (ret < 0)
                return ret;
        if (ret_reply) {
                *ret_reply = json_object_new_object();
                raid_status(b, *ret_reply);
        }
        return 0;
}
