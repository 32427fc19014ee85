/* Bucket ownership recipes over common/zk (see owner.h). */
#include "owner.h"

#include "buf.h"
#include "error.h"
#include "log.h"
#include "pbtext.h"
#include "proto/meta.pb-c.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A takeover that keeps losing version races gives up after this many tries. */
#define MAX_ATTEMPTS 8

void cal_owner_bucket_path(const cal_owner_t *o, char *out, size_t cap)
{
    snprintf(out, cap, "/buckets/%s/%" PRIu32, o->category, o->bucket);
}

void cal_owner_path(const cal_owner_t *o, char *out, size_t cap)
{
    snprintf(out, cap, "/buckets/%s/%" PRIu32 "/owner", o->category, o->bucket);
}

void cal_owner_init(cal_owner_t *o, fw_zk_t *zk, const char *category, uint32_t bucket,
                    const char *node_id, const char *address)
{
    memset(o, 0, sizeof(*o));
    o->zk = zk;
    snprintf(o->category, sizeof(o->category), "%s", category);
    o->bucket = bucket;
    snprintf(o->node_id, sizeof(o->node_id), "%s", node_id);
    snprintf(o->address, sizeof(o->address), "%s", address);
}

static void finish(cal_owner_t *o, int status)
{
    cal_owner_cb cb = o->cb;
    o->cb = NULL;
    cb(o, status);
}

static int zk_status(int rc)
{
    switch (rc) {
    case ZOK:
        return 0;
    case ZNONODE:
        return FW_EUNKNOWN_CATEGORY;
    case ZNODEEXISTS:
    case ZBADVERSION:
        return FW_ENOT_OWNER;
    default:
        return FW_ERETRY_LATER;
    }
}

static int parse_meta(const char *data, size_t len, Fwpb__BucketMeta **out)
{
    char err[128];
    ProtobufCMessage *m;
    int rc = fw_pbtext_parse(&fwpb__bucket_meta__descriptor, data, len, &m, err, sizeof(err));
    if (rc < 0) {
        fw_log_error("calligraphus", "malformed bucket metadata: %s", err);
        return rc;
    }
    *out = (Fwpb__BucketMeta *)m;
    return 0;
}

static int format_meta(uint64_t epoch, uint64_t next, fw_buf_t *out)
{
    Fwpb__BucketMeta m = FWPB__BUCKET_META__INIT;
    m.epoch = epoch;
    m.next_segment_id = next;
    return fw_pbtext_format(&m.base, out);
}

/* ---- who owns it, after a lost race ---------------------------------------- */

static void on_owner_read(fw_zk_t *zk, int rc, const char *data, size_t len,
                          const struct Stat *stat, void *arg)
{
    (void)zk;
    (void)stat;
    cal_owner_t *o = arg;
    o->owner_node[0] = o->owner_address[0] = '\0';
    if (rc == ZOK) {
        char err[128];
        ProtobufCMessage *m;
        if (fw_pbtext_parse(&fwpb__owner_info__descriptor, data, len, &m, err, sizeof(err)) == 0) {
            Fwpb__OwnerInfo *info = (Fwpb__OwnerInfo *)m;
            snprintf(o->owner_node, sizeof(o->owner_node), "%s", info->node_id);
            snprintf(o->owner_address, sizeof(o->owner_address), "%s", info->address);
            protobuf_c_message_free_unpacked(m, NULL);
        }
    }
    finish(o, FW_ENOT_OWNER);
}

static void report_taken(cal_owner_t *o)
{
    char path[300];
    cal_owner_path(o, path, sizeof(path));
    if (fw_zk_get(o->zk, path, NULL, NULL, on_owner_read, o) < 0)
        finish(o, FW_ENOT_OWNER);
}

/* ---- what we know of the bucket node ------------------------------------------- */

int cal_owner_learn(cal_owner_t *o, const char *data, size_t len, const struct Stat *stat)
{
    Fwpb__BucketMeta *meta;
    o->meta_known = 0;
    if (parse_meta(data, len, &meta) < 0)
        return -EINVAL;
    o->meta_known = 1;
    o->meta_version = stat->version;
    o->meta_mzxid = stat->mzxid;
    o->meta_epoch = meta->epoch;
    o->meta_next = meta->next_segment_id;
    protobuf_c_message_free_unpacked(&meta->base, NULL);
    return 0;
}

void cal_owner_forget(cal_owner_t *o)
{
    o->meta_known = 0;
}

/* Our own write left the bucket node at o->version with our epoch and counter. */
static void remember_ours(cal_owner_t *o, int64_t mzxid)
{
    o->meta_known = 1;
    o->meta_mzxid = mzxid;
    o->meta_version = o->version;
    o->meta_epoch = o->epoch;
    o->meta_next = o->next_segment_id;
}

/* ---- taking a bucket ------------------------------------------------------------ */

/* The paths and texts one takeover's ops point into, until the multi is sent. */
typedef struct take_text_s {
    char bpath[300];
    char opath[300];
    fw_buf_t bucket;
    fw_buf_t owner;
} take_text_t;

/*
 * The takeover's three ops, from the bucket node as known: check it is
 * unchanged, create our owner node, raise the epoch (and reserve the first
 * segment id) in it. 0 or -ENOMEM; t's buffers are the caller's to free.
 */
static int take_ops(cal_owner_t *o, take_text_t *t, fw_zk_op_t *ops)
{
    o->epoch = o->meta_epoch + 1;
    o->reserved_id = o->meta_next ? o->meta_next : 1;
    o->next_segment_id = o->reserved_id + 1;
    Fwpb__OwnerInfo info = FWPB__OWNER_INFO__INIT;
    info.node_id = o->node_id;
    info.address = o->address;
    info.epoch = o->epoch;
    cal_owner_bucket_path(o, t->bpath, sizeof(t->bpath));
    cal_owner_path(o, t->opath, sizeof(t->opath));
    t->bucket = (fw_buf_t)FW_BUF_INIT;
    t->owner = (fw_buf_t)FW_BUF_INIT;
    if (format_meta(o->epoch, o->next_segment_id, &t->bucket) < 0 ||
        fw_pbtext_format(&info.base, &t->owner) < 0)
        return -ENOMEM;
    ops[0] = fw_zk_op_check(t->bpath, o->meta_version);
    ops[1] = fw_zk_op_create(t->opath, t->owner.data, t->owner.len, FW_ZK_EPHEMERAL);
    ops[2] = fw_zk_op_set(t->bpath, t->bucket.data, t->bucket.len, o->meta_version);
    return 0;
}

static void take_text_free(take_text_t *t)
{
    fw_buf_free(&t->bucket);
    fw_buf_free(&t->owner);
}

static void took(cal_owner_t *o, const struct Stat *stat)
{
    o->owned = 1;
    o->version = stat->version;
    remember_ours(o, stat->mzxid);
    fw_log_info("calligraphus", "took %s/%" PRIu32 " at epoch %" PRIu64, o->category, o->bucket,
                o->epoch);
    finish(o, 0);
}

static void take_step(cal_owner_t *o);

/* One bucket's takeover failed with the server's answer rc (not a session code). */
static void take_failed(cal_owner_t *o, int rc)
{
    if (rc == ZBADVERSION && ++o->attempts < MAX_ATTEMPTS) {
        /* The bucket node changed since it was read: read it again. */
        cal_owner_forget(o);
        take_step(o);
        return;
    }
    if (rc == ZNODEEXISTS) {
        report_taken(o);
        return;
    }
    if (rc == ZBADVERSION || rc == ZNONODE)
        cal_owner_forget(o);
    finish(o, zk_status(rc));
}

static void on_take_multi(fw_zk_t *zk, int rc, int count, const fw_zk_op_result_t *results,
                          void *arg)
{
    (void)zk;
    cal_owner_t *o = arg;
    if (rc == ZOK && count == 3 && results[2].stat != NULL) {
        took(o, results[2].stat);
        return;
    }
    /* ZCONNECTIONLOSS leaves the outcome unknown: the next take reads it again,
     * and a node of ours that did get created dies with our session. */
    if (rc <= ZAPIERROR)
        take_failed(o, rc);
    else
        finish(o, zk_status(rc == ZOK ? ZSYSTEMERROR : rc));
}

static int take_multi(cal_owner_t *o)
{
    take_text_t t;
    fw_zk_op_t ops[3];
    int rc = take_ops(o, &t, ops);
    if (rc == 0)
        rc = fw_zk_multi(o->zk, ops, 3, on_take_multi, o);
    take_text_free(&t);
    return rc;
}

static void on_take_read(fw_zk_t *zk, int rc, const char *data, size_t len, const struct Stat *stat,
                         void *arg)
{
    (void)zk;
    cal_owner_t *o = arg;
    if (rc != ZOK) {
        finish(o, zk_status(rc));
        return;
    }
    if (cal_owner_learn(o, data, len, stat) < 0) {
        finish(o, -EINVAL);
        return;
    }
    int src = take_multi(o);
    if (src < 0)
        finish(o, src);
}

static void take_step(cal_owner_t *o)
{
    char path[300];
    cal_owner_bucket_path(o, path, sizeof(path));
    int rc = fw_zk_get(o->zk, path, NULL, NULL, on_take_read, o);
    if (rc < 0)
        finish(o, rc);
}

int cal_owner_take(cal_owner_t *o, cal_owner_cb cb)
{
    if (o->cb != NULL)
        return -EBUSY;
    o->cb = cb;
    o->attempts = 0;
    o->owned = 0;
    int rc;
    if (o->meta_known) {
        rc = take_multi(o);
    } else {
        char path[300];
        cal_owner_bucket_path(o, path, sizeof(path));
        rc = fw_zk_get(o->zk, path, NULL, NULL, on_take_read, o);
    }
    if (rc < 0)
        o->cb = NULL;
    return rc;
}

/* ---- taking many at once ------------------------------------------------------- */

typedef struct take_many_s {
    cal_owner_t *o[CAL_OWNER_BATCH];
    int n;
} take_many_t;

static int take_many_send(take_many_t *tm);

static void on_take_many(fw_zk_t *zk, int rc, int count, const fw_zk_op_result_t *results,
                         void *arg)
{
    (void)zk;
    take_many_t *tm = arg;
    int n = tm->n;
    if (rc == ZOK && count == 3 * n) {
        for (int i = 0; i < n; i++)
            if (results[3 * i + 2].stat == NULL)
                rc = ZSYSTEMERROR;
    }
    if (rc == ZOK && count == 3 * n) {
        for (int i = 0; i < n; i++)
            took(tm->o[i], results[3 * i + 2].stat);
        free(tm);
        return;
    }
    /* The server refused one op: that bucket goes on alone, the rest were
     * rolled back and try again together. */
    int bad = -1, orc = rc;
    for (int j = 0; rc <= ZAPIERROR && results != NULL && j < count && bad < 0; j++)
        if (results[j].rc != ZOK && results[j].rc != ZRUNTIMEINCONSISTENCY) {
            bad = j / 3;
            orc = results[j].rc;
        }
    if (bad < 0 || bad >= n) {
        /* No answer (a connection loss: the outcome is unknown, as for one). */
        for (int i = 0; i < n; i++)
            finish(tm->o[i], zk_status(rc == ZOK ? ZSYSTEMERROR : rc));
        free(tm);
        return;
    }
    cal_owner_t *o = tm->o[bad];
    tm->o[bad] = tm->o[--tm->n];
    if (tm->n > 0) {
        int src = take_many_send(tm);
        if (src < 0) {
            for (int i = 0; i < tm->n; i++)
                finish(tm->o[i], src);
            free(tm);
        }
    } else {
        free(tm);
    }
    take_failed(o, orc);
}

static int take_many_send(take_many_t *tm)
{
    take_text_t t[CAL_OWNER_BATCH];
    fw_zk_op_t ops[3 * CAL_OWNER_BATCH];
    int rc = 0, prepared = 0;
    for (; rc == 0 && prepared < tm->n; prepared++)
        rc = take_ops(tm->o[prepared], &t[prepared], &ops[3 * prepared]);
    if (rc == 0)
        rc = fw_zk_multi(tm->o[0]->zk, ops, 3 * tm->n, on_take_many, tm);
    for (int i = 0; i < prepared; i++)
        take_text_free(&t[i]);
    return rc;
}

int cal_owner_take_many(cal_owner_t *const *os, int n, cal_owner_cb cb)
{
    if (n < 1 || n > CAL_OWNER_BATCH)
        return -EINVAL;
    for (int i = 0; i < n; i++) {
        if (os[i]->cb != NULL)
            return -EBUSY;
        if (!os[i]->meta_known || os[i]->zk != os[0]->zk)
            return -EINVAL;
    }
    if (n == 1)
        return cal_owner_take(os[0], cb);
    take_many_t *tm = calloc(1, sizeof(*tm));
    if (tm == NULL)
        return -ENOMEM;
    tm->n = n;
    for (int i = 0; i < n; i++) {
        tm->o[i] = os[i];
        os[i]->cb = cb;
        os[i]->attempts = 0;
        os[i]->owned = 0;
    }
    int rc = take_many_send(tm);
    if (rc < 0) {
        for (int i = 0; i < n; i++)
            os[i]->cb = NULL;
        free(tm);
    }
    return rc;
}

/* ---- fenced writes ---------------------------------------------------------------- */

static int reserve_write(cal_owner_t *o);
static int release_write(cal_owner_t *o);

/* After ZBADVERSION: the epoch is still ours only if nobody took the bucket
 * over (a takeover always raises it), so the node's version moved by our own
 * write (a reservation whose answer was lost); adopt it and try again. */
static void on_version_check(fw_zk_t *zk, int rc, const char *data, size_t len,
                             const struct Stat *stat, void *arg)
{
    (void)zk;
    cal_owner_t *o = arg;
    Fwpb__BucketMeta *meta = NULL;
    if (rc == ZNONODE && o->releasing) {
        o->owned = 0;
        finish(o, 0);
        return;
    }
    if (rc != ZOK) {
        finish(o, rc == ZNONODE ? FW_ENOT_OWNER : zk_status(rc));
        return;
    }
    if (parse_meta(data, len, &meta) < 0) {
        finish(o, -EINVAL);
        return;
    }
    int ours = meta->epoch == o->epoch;
    uint64_t next = meta->next_segment_id;
    protobuf_c_message_free_unpacked(&meta->base, NULL);
    cal_owner_learn(o, data, len, stat); /* as it is now, for a later takeover */
    if (!ours && o->releasing) {
        o->owned = 0; /* nothing of ours to delete */
        finish(o, 0);
        return;
    }
    if (!ours) {
        fw_log_warn("calligraphus", "%s/%" PRIu32 ": fenced at epoch %" PRIu64, o->category,
                    o->bucket, o->epoch);
        o->owned = 0;
        finish(o, FW_ENOT_OWNER);
        return;
    }
    o->version = stat->version;
    if (next > o->next_segment_id)
        o->next_segment_id = next;
    int wrc = o->releasing ? release_write(o) : reserve_write(o);
    if (wrc < 0)
        finish(o, wrc);
}

static void on_reserved(fw_zk_t *zk, int rc, const struct Stat *stat, void *arg)
{
    (void)zk;
    cal_owner_t *o = arg;
    if (rc == ZOK) {
        o->version = stat->version;
        o->next_segment_id = o->reserved_id + 1;
        remember_ours(o, stat->mzxid);
        finish(o, 0);
        return;
    }
    if (rc == ZBADVERSION && o->attempts++ < MAX_ATTEMPTS) {
        /* Either we were replaced, or an earlier reservation of ours was
         * applied but its answer lost with a connection: read to tell. */
        char path[300];
        cal_owner_bucket_path(o, path, sizeof(path));
        if (fw_zk_get(zk, path, NULL, NULL, on_version_check, o) == 0)
            return;
    }
    if (rc == ZBADVERSION || rc == ZNONODE) {
        /* Someone else wrote the bucket node: we were replaced. */
        fw_log_warn("calligraphus", "%s/%" PRIu32 ": fenced at epoch %" PRIu64, o->category,
                    o->bucket, o->epoch);
        o->owned = 0;
        finish(o, FW_ENOT_OWNER);
        return;
    }
    finish(o, zk_status(rc));
}

static int reserve_write(cal_owner_t *o)
{
    fw_buf_t text = FW_BUF_INIT;
    o->reserved_id = o->next_segment_id;
    int rc = format_meta(o->epoch, o->reserved_id + 1, &text);
    char path[300];
    cal_owner_bucket_path(o, path, sizeof(path));
    if (rc == 0)
        rc = fw_zk_set(o->zk, path, text.data, text.len, o->version, on_reserved, o);
    fw_buf_free(&text);
    return rc;
}

int cal_owner_reserve_segment(cal_owner_t *o, cal_owner_cb cb)
{
    if (o->cb != NULL)
        return -EBUSY;
    if (!o->owned)
        return FW_ENOT_OWNER;
    o->cb = cb;
    o->attempts = 0;
    o->releasing = 0;
    int rc = reserve_write(o);
    if (rc < 0)
        o->cb = NULL;
    return rc;
}

static void on_released(fw_zk_t *zk, int rc, int count, const fw_zk_op_result_t *results, void *arg)
{
    (void)zk;
    (void)count;
    (void)results;
    cal_owner_t *o = arg;
    if (rc == ZBADVERSION && o->attempts++ < MAX_ATTEMPTS) {
        /* Replaced, or our version is stale: read to tell, or our owner node
         * would stay until the session ends and hold the bucket from others. */
        char path[300];
        cal_owner_bucket_path(o, path, sizeof(path));
        if (fw_zk_get(zk, path, NULL, NULL, on_version_check, o) == 0)
            return;
    }
    o->owned = 0;
    if (rc != ZOK)
        cal_owner_forget(o); /* else the delete left the bucket node as we wrote it */
    /* ZBADVERSION: someone took it already; there is nothing of ours to delete. */
    finish(o, rc == ZOK || rc == ZBADVERSION || rc == ZNONODE ? 0 : zk_status(rc));
}

/* Deletes our owner node, only if the bucket is still ours (its version unmoved). */
static int release_write(cal_owner_t *o)
{
    char bpath[300], opath[300];
    cal_owner_bucket_path(o, bpath, sizeof(bpath));
    cal_owner_path(o, opath, sizeof(opath));
    fw_zk_op_t ops[2] = {fw_zk_op_check(bpath, o->version), fw_zk_op_delete(opath, -1)};
    return fw_zk_multi(o->zk, ops, 2, on_released, o);
}

int cal_owner_release(cal_owner_t *o, cal_owner_cb cb)
{
    if (o->cb != NULL)
        return -EBUSY;
    o->cb = cb;
    o->attempts = 0;
    o->releasing = 1;
    int rc = release_write(o);
    if (rc < 0)
        o->cb = NULL;
    return rc;
}
