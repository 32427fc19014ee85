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
#include <string.h>

/* A takeover that keeps losing version races gives up after this many tries. */
#define MAX_ATTEMPTS 8

static void bucket_path(const cal_owner_t *o, char *out, size_t cap)
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

/* ---- taking a bucket ------------------------------------------------------------ */

static void take_step(cal_owner_t *o);

static void on_take_multi(fw_zk_t *zk, int rc, int count, const fw_zk_op_result_t *results,
                          void *arg)
{
    (void)zk;
    cal_owner_t *o = arg;
    if (rc == ZOK && count == 3 && results[2].stat != NULL) {
        o->owned = 1;
        o->version = results[2].stat->version;
        fw_log_info("calligraphus", "took %s/%" PRIu32 " at epoch %" PRIu64, o->category, o->bucket,
                    o->epoch);
        finish(o, 0);
        return;
    }
    if (rc == ZBADVERSION && ++o->attempts < MAX_ATTEMPTS) {
        take_step(o); /* the bucket node changed between our read and our write */
        return;
    }
    if (rc == ZNODEEXISTS) {
        report_taken(o);
        return;
    }
    /* ZCONNECTIONLOSS leaves the outcome unknown: the next take reads it again,
     * and a node of ours that did get created dies with our session. */
    finish(o, zk_status(rc));
}

static void on_take_read(fw_zk_t *zk, int rc, const char *data, size_t len, const struct Stat *stat,
                         void *arg)
{
    cal_owner_t *o = arg;
    if (rc != ZOK) {
        finish(o, zk_status(rc));
        return;
    }
    Fwpb__BucketMeta *meta;
    if (parse_meta(data, len, &meta) < 0) {
        finish(o, -EINVAL);
        return;
    }
    /* The takeover also reserves the id of the first segment we will write. */
    o->epoch = meta->epoch + 1;
    o->reserved_id = meta->next_segment_id ? meta->next_segment_id : 1;
    o->next_segment_id = o->reserved_id + 1;
    protobuf_c_message_free_unpacked(&meta->base, NULL);

    fw_buf_t bucket_text = FW_BUF_INIT, owner_text = FW_BUF_INIT;
    Fwpb__OwnerInfo info = FWPB__OWNER_INFO__INIT;
    info.node_id = o->node_id;
    info.address = o->address;
    info.epoch = o->epoch;
    char bpath[300], opath[300];
    bucket_path(o, bpath, sizeof(bpath));
    cal_owner_path(o, opath, sizeof(opath));
    int ok = format_meta(o->epoch, o->next_segment_id, &bucket_text) == 0 &&
             fw_pbtext_format(&info.base, &owner_text) == 0;
    fw_zk_op_t ops[3] = {
        fw_zk_op_check(bpath, stat->version),
        fw_zk_op_create(opath, owner_text.data, owner_text.len, FW_ZK_EPHEMERAL),
        fw_zk_op_set(bpath, bucket_text.data, bucket_text.len, stat->version),
    };
    int src = ok ? fw_zk_multi(zk, ops, 3, on_take_multi, o) : -ENOMEM;
    fw_buf_free(&bucket_text);
    fw_buf_free(&owner_text);
    if (src < 0)
        finish(o, src);
}

static void take_step(cal_owner_t *o)
{
    char path[300];
    bucket_path(o, path, sizeof(path));
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
    char path[300];
    bucket_path(o, path, sizeof(path));
    int rc = fw_zk_get(o->zk, path, NULL, NULL, on_take_read, o);
    if (rc < 0)
        o->cb = NULL;
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
    if (!ours && o->releasing) {
        o->owned = 0; /* someone took it over: nothing of ours to delete */
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
        finish(o, 0);
        return;
    }
    if (rc == ZBADVERSION && o->attempts++ < MAX_ATTEMPTS) {
        /* Either we were replaced, or an earlier reservation of ours was
         * applied but its answer lost with a connection: read to tell. */
        char path[300];
        bucket_path(o, path, sizeof(path));
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
    bucket_path(o, path, sizeof(path));
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
        bucket_path(o, path, sizeof(path));
        if (fw_zk_get(zk, path, NULL, NULL, on_version_check, o) == 0)
            return;
    }
    o->owned = 0;
    /* ZBADVERSION: someone took it already; there is nothing of ours to delete. */
    finish(o, rc == ZOK || rc == ZBADVERSION || rc == ZNONODE ? 0 : zk_status(rc));
}

/* Deletes our owner node, only if the bucket is still ours (its version unmoved). */
static int release_write(cal_owner_t *o)
{
    char bpath[300], opath[300];
    bucket_path(o, bpath, sizeof(bpath));
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
