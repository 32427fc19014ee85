/* Deleting copied, old source segments (see retention.h). */
#include "retention.h"

#include "block.h"
#include "clock.h"
#include "fsutil.h"
#include "log.h"
#include "pbtext.h"
#include "proto/meta.pb-c.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SEAL_SIZE (FW_BLOCK_HEADER_SIZE + FW_SEAL_PAYLOAD_SIZE)

typedef struct bucket_pass_s {
    cp_copier_t *copier;
    char dir[4096];
    char name[FW_CATEGORY_MAX + 16];
    int pending;    /* progress reads not answered */
    int failed;     /* one could not be read: keep everything */
    uint64_t below; /* segments below this id are copied to every destination */
} bucket_pass_t;

int cp_segment_sealed(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    struct stat st;
    uint8_t tail[SEAL_SIZE];
    int sealed = 0;
    if (fstat(fd, &st) == 0 && st.st_size >= SEAL_SIZE &&
        pread(fd, tail, SEAL_SIZE, st.st_size - SEAL_SIZE) == SEAL_SIZE) {
        fw_block_header_t h;
        fw_seal_t seal;
        sealed = fw_block_verify(tail, SEAL_SIZE, &h) == 0 && fw_block_is_seal(&h) &&
                 fw_seal_parse(tail, &h, &seal) == 0 &&
                 seal.offset == (uint64_t)st.st_size - SEAL_SIZE;
    }
    close(fd);
    return sealed;
}

static void pass_done(cp_copier_t *c)
{
    if (--c->retention_running > 0)
        return;
    fw_metric_inc(c->stats.retention_passes);
    if (c->stopping)
        cp_copier_task_idle(c);
}

static void apply(bucket_pass_t *p)
{
    cp_copier_t *c = p->copier;
    uint64_t *ids = NULL;
    size_t n = 0;
    if (p->failed || p->below == 0 || fw_seg_list(p->dir, &ids, &n) < 0)
        return;
    int64_t now = fw_clock_wall_ms();
    int deleted = 0;
    /* The newest segment always stays: it may be open, and it names the bucket's end. */
    for (size_t i = 0; i + 1 < n && ids[i] < p->below; i++) {
        char name[FW_SEG_NAME_LEN + 1], path[4200];
        fw_seg_name(name, ids[i]);
        snprintf(path, sizeof(path), "%s/%s", p->dir, name);
        struct stat st;
        if (stat(path, &st) < 0)
            continue;
        int64_t mtime_ms = (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
        if (now - mtime_ms < c->cfg.retention_ms || !cp_segment_sealed(path))
            continue;
        if (unlink(path) < 0) {
            fw_log_warn("copier", "retention: cannot delete %s: %s", path, strerror(errno));
            continue;
        }
        fw_log_info("copier", "retention: deleted %s/%s (%lld bytes, copied everywhere)", p->name,
                    name, (long long)st.st_size);
        fw_metric_inc(c->stats.segments_deleted);
        fw_metric_add(c->stats.bytes_deleted, (uint64_t)st.st_size);
        deleted++;
    }
    free(ids);
    if (deleted > 0)
        fw_fsync_dir(p->dir);
}

static void on_progress(fw_zk_t *zk, int rc, const char *data, size_t len, const struct Stat *stat,
                        void *arg)
{
    (void)zk;
    (void)stat;
    bucket_pass_t *p = arg;
    uint64_t below = 0;
    if (rc == ZOK && len > 0) {
        ProtobufCMessage *msg;
        char err[128];
        if (fw_pbtext_parse(&fwpb__copier_progress__descriptor, data, len, &msg, err,
                            sizeof(err)) == 0) {
            Fwpb__CopierProgress *pr = (Fwpb__CopierProgress *)msg;
            below = pr->has_sealed && pr->sealed ? pr->segment_id + 1 : pr->segment_id;
            protobuf_c_message_free_unpacked(msg, NULL);
        } else {
            p->failed = 1;
        }
    } else if (rc != ZOK && rc != ZNONODE) {
        p->failed = 1;
    }
    /* A destination with no progress yet has copied nothing: below stays 0. */
    if (below < p->below)
        p->below = below;
    if (--p->pending > 0)
        return;
    cp_copier_t *c = p->copier;
    apply(p);
    free(p);
    pass_done(c);
}

void cp_retention_tick(cp_copier_t *c)
{
    int64_t now = fw_clock_mono_ms();
    int64_t every = c->cfg.retention_ms / 10;
    if (every > 60000)
        every = 60000;
    if (every < c->cfg.poll_ms)
        every = c->cfg.poll_ms;
    if (c->retention_running || c->stopping || !fw_zk_connected(&c->zk) ||
        now - c->last_retention_ms < every)
        return;
    c->last_retention_ms = now;
    c->retention_running = 1; /* held until every bucket is started */
    for (size_t i = 0; i < c->source.count; i++) {
        cp_bucket_t *b = c->source.buckets[i];
        bucket_pass_t *p = calloc(1, sizeof(*p));
        if (p == NULL)
            break;
        p->copier = c;
        snprintf(p->dir, sizeof(p->dir), "%s", b->dir);
        snprintf(p->name, sizeof(p->name), "%s", b->name);
        p->below = UINT64_MAX;
        p->pending = c->ndests;
        c->retention_running++;
        for (int d = 0; d < c->ndests; d++) {
            char path[1600];
            snprintf(path, sizeof(path), "/copier/%s/%s", c->dests[d]->key, b->name);
            if (fw_zk_get(&c->zk, path, NULL, NULL, on_progress, p) < 0) {
                /* Count the unsent reads as failed answers. */
                p->failed = 1;
                if (--p->pending == 0) {
                    free(p);
                    pass_done(c);
                    break;
                }
            }
        }
    }
    pass_done(c);
}
