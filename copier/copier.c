/* The copier's parts, tied together (see copier.h). */
#include "copier.h"

#include "assign.h"
#include "buf.h"
#include "clock.h"
#include "error.h"
#include "log.h"
#include "pbtext.h"
#include "proto/meta.pb-c.h"
#include "retention.h"
#include "task.h"
#include "version.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void each_task(cp_copier_t *c, void (*fn)(cp_task_t *))
{
    for (size_t i = 0; i < c->source.count; i++) {
        cp_task_t **tasks = c->source.buckets[i]->data;
        for (int d = 0; tasks != NULL && d < c->ndests; d++)
            if (tasks[d] != NULL)
                fn(tasks[d]);
    }
}

cp_task_t **cp_bucket_tasks(cp_bucket_t *b)
{
    return b->data;
}

/* ---- who copies what ------------------------------------------------------------------- */

/* 1 if the member's registration lists the destination. */
static int member_serves(const fw_member_t *m, const char *url)
{
    if (m->data == NULL)
        return 0;
    ProtobufCMessage *msg;
    char err[128];
    if (fw_pbtext_parse(&fwpb__node_info__descriptor, m->data, m->len, &msg, err, sizeof(err)) < 0)
        return 0;
    Fwpb__NodeInfo *info = (Fwpb__NodeInfo *)msg;
    int found = 0;
    size_t ulen = strlen(url);
    for (const char *p = info->destinations; p != NULL && *p != '\0' && !found;) {
        size_t n = strcspn(p, " ");
        found = n == ulen && memcmp(p, url, n) == 0;
        p += n;
        p += strspn(p, " ");
    }
    protobuf_c_message_free_unpacked(msg, NULL);
    return found;
}

/* Divides each destination's buckets among the live copiers that serve it. */
static void reassign(cp_copier_t *c)
{
    if (c->stopping || !fw_members_registered(&c->members) || !c->members.listed)
        return;
    size_t n = c->source.count;
    const char **keys = calloc(n + 1, sizeof(*keys));
    char *key_mem = calloc(n + 1, 1300);
    const char **ids = calloc((size_t)c->members.count + 1, sizeof(*ids));
    int *owner = calloc(n + 1, sizeof(*owner));
    int *idx = calloc(n + 1, sizeof(*idx));
    if (idx == NULL || keys == NULL || key_mem == NULL || ids == NULL || owner == NULL)
        goto out;
    for (int d = 0; d < c->ndests; d++) {
        cp_dest_t *dest = c->dests[d];
        size_t nids = 0;
        int self = -1;
        for (int i = 0; i < c->members.count; i++) {
            const fw_member_t *m = &c->members.list[i];
            int is_self = strcmp(m->id, c->cfg.id) == 0;
            if (is_self || member_serves(m, dest->url)) {
                if (is_self)
                    self = (int)nids;
                ids[nids++] = m->id;
            }
        }
        /* Only buckets whose directory exists now: every copier of the
         * destination must split the same list, whatever it saw before. */
        size_t live = 0;
        for (size_t i = 0; i < n; i++) {
            struct stat st;
            idx[i] = -1;
            if (stat(c->source.buckets[i]->dir, &st) < 0)
                continue;
            char *k = key_mem + live * 1300;
            snprintf(k, 1300, "%s/%s", dest->key, c->source.buckets[i]->name);
            keys[live] = k;
            idx[i] = (int)live++;
        }
        c->live_buckets = live;
        if (cp_assign(keys, live, ids, nids, owner) < 0)
            goto out;
        for (size_t i = 0; i < n; i++) {
            cp_task_t **tasks = c->source.buckets[i]->data;
            if (tasks != NULL && tasks[d] != NULL)
                tasks[d]->wanted = self >= 0 && idx[i] >= 0 && owner[idx[i]] == self;
        }
    }
    each_task(c, cp_task_step);
out:
    free(keys);
    free(key_mem);
    free(ids);
    free(owner);
    free(idx);
}

static void on_members_changed(fw_members_t *m, void *arg)
{
    (void)m;
    reassign(arg);
}

/* ---- the source ---------------------------------------------------------------------- */

static void on_source(cp_source_t *s, cp_bucket_t *b, int added)
{
    cp_copier_t *c = s->arg;
    if (added) {
        cp_task_t **tasks = calloc((size_t)c->ndests, sizeof(*tasks));
        if (tasks == NULL)
            return;
        for (int d = 0; d < c->ndests; d++)
            tasks[d] = cp_task_create(c, b, c->dests[d]);
        b->data = tasks;
        fw_log_debug("copier", "found bucket %s", b->name);
        reassign(c);
        return;
    }
    cp_task_t **tasks = b->data;
    for (int d = 0; tasks != NULL && d < c->ndests; d++)
        if (tasks[d] != NULL)
            cp_task_wake(tasks[d]);
}

/* ---- timers ---------------------------------------------------------------------------- */

static void on_rate_timer(uv_timer_t *timer)
{
    cp_copier_t *c = timer->data;
    c->rate_waiting = 0;
    each_task(c, cp_task_step);
}

void cp_copier_rate_wait(cp_copier_t *c, int64_t ms)
{
    if (c->rate_waiting)
        return;
    c->rate_waiting = 1;
    uv_timer_start(&c->rate_timer, on_rate_timer, (uint64_t)(ms > 0 ? ms : 1), 0);
}

static void measure_and_step(cp_task_t *t)
{
    cp_task_measure(t);
    cp_task_step(t);
}

static void on_tick(uv_timer_t *timer)
{
    cp_copier_t *c = timer->data;
    if (c->stopping) {
        /* Steps that failed after the stop began left their task READY (with a
         * backoff) or IDLE without telling: step them, then look again. */
        each_task(c, cp_task_step);
        cp_copier_task_idle(c);
        return;
    }
    int rc = cp_source_scan(&c->source);
    if (rc < 0)
        fw_log_warn("copier", "cannot read the source %s: %s", c->cfg.source, fw_strerror(rc));
    fw_members_sync(&c->members);
    size_t live = 0;
    for (size_t i = 0; i < c->source.count; i++) {
        struct stat st;
        live += stat(c->source.buckets[i]->dir, &st) == 0;
    }
    if (live != c->live_buckets)
        reassign(c); /* a bucket directory came or went */
    each_task(c, measure_and_step);
    if (c->cfg.retention_ms > 0)
        cp_retention_tick(c);
}

/* ---- the session ------------------------------------------------------------------------- */

static void on_zk_state(fw_zk_t *zk, fw_zk_state_t state, int64_t session_id, void *arg)
{
    (void)zk;
    cp_copier_t *c = arg;
    if (state == FW_ZK_EXPIRED || (state == FW_ZK_CONNECTED && session_id != c->session)) {
        each_task(c, cp_task_session_lost);
        c->session = state == FW_ZK_CONNECTED ? session_id : 0;
    }
    if (state == FW_ZK_CONNECTED && !c->stopping) {
        fw_members_sync(&c->members);
        reassign(c);
    }
}

/* ---- start and stop ----------------------------------------------------------------------- */

static int registration(const cp_copier_t *c, fw_buf_t *out)
{
    Fwpb__NodeInfo info = FWPB__NODE_INFO__INIT;
    info.kind = "copier";
    info.id = (char *)c->cfg.id;
    info.address = (char *)(c->cfg.metrics_address[0] ? c->cfg.metrics_address : "");
    if (c->cfg.metrics_address[0] != '\0')
        info.metrics_address = (char *)c->cfg.metrics_address;
    info.version = FW_VERSION_STRING;
    info.has_started_ms = 1;
    info.started_ms = fw_clock_wall_ms();
    info.root = (char *)c->cfg.source;
    fw_buf_t urls = FW_BUF_INIT;
    for (int d = 0; d < c->ndests; d++)
        if ((d > 0 && fw_buf_append(&urls, " ", 1) < 0) ||
            fw_buf_append(&urls, c->dests[d]->url, strlen(c->dests[d]->url)) < 0 ||
            fw_buf_reserve(&urls, 1) < 0) {
            fw_buf_free(&urls);
            return -ENOMEM;
        }
    urls.data[urls.len] = '\0';
    info.destinations = (char *)urls.data;
    int rc = fw_pbtext_format(&info.base, out);
    fw_buf_free(&urls);
    return rc;
}

int cp_copier_start(cp_copier_t *c, uv_loop_t *loop, const cp_config_t *cfg, fw_metrics_t *metrics)
{
    memset(c, 0, sizeof(*c));
    c->loop = loop;
    c->cfg = *cfg;
    c->metrics = metrics;
    int rc = cp_stats_init(&c->stats, metrics);
    if (rc < 0)
        return rc;
    c->dests = calloc((size_t)cfg->ndests, sizeof(*c->dests));
    if (c->dests == NULL)
        return -ENOMEM;
    for (int d = 0; d < cfg->ndests; d++) {
        char err[300];
        rc = cp_dest_open(loop, cfg->dests[d], &cfg->dest_options, &c->dests[d], err, sizeof(err));
        if (rc < 0) {
            fprintf(stderr, "copier: --dest %s: %s\n", cfg->dests[d], err);
            return rc;
        }
        c->dests[d]->data = c;
        c->ndests = d + 1;
    }
    rc = cp_source_init(&c->source, loop, cfg->source, on_source, c);
    if (rc < 0) {
        fprintf(stderr, "copier: --source %s: %s\n", cfg->source, fw_strerror(rc));
        return rc;
    }
    cp_rate_init(&c->rate, cfg->rate, fw_clock_mono_ms());
    fw_zk_options_t zo = {
        .connect = cfg->zk,
        .create_chroot = 1, /* a daemon: the tree is ours to make */
        .auth = cfg->zk_auth,
        .session_timeout_ms = cfg->session_timeout_ms,
        .state_cb = on_zk_state,
        .state_arg = c,
        .loop_watchdog = 1,
    };
    rc = fw_zk_init(&c->zk, loop, &zo);
    if (rc < 0) {
        fprintf(stderr, "copier: bad --zk %s: %s\n", cfg->zk, fw_strerror(rc));
        return rc;
    }
    fw_buf_t reg = FW_BUF_INIT;
    rc = registration(c, &reg);
    if (rc == 0)
        rc = fw_members_init(&c->members, &c->zk, "copier", cfg->id, reg.data, reg.len,
                             on_members_changed, c);
    fw_buf_free(&reg);
    if (rc < 0)
        return rc;
    uv_timer_init(loop, &c->tick);
    uv_timer_init(loop, &c->rate_timer);
    c->tick.data = c->rate_timer.data = c;
    rc = cp_source_scan(&c->source);
    if (rc < 0)
        fw_log_warn("copier", "source %s not readable yet: %s", cfg->source, fw_strerror(rc));
    uv_timer_start(&c->tick, on_tick, (uint64_t)cfg->poll_ms, (uint64_t)cfg->poll_ms);
    return 0;
}

/* A destination failure holds /readyz this long after the last one (a task that failed
 * and went idle must not hold it for ever). */
#define DEST_ERROR_READY_MS 30000

int cp_copier_ready(const cp_copier_t *c, char *reason, size_t cap)
{
    if (!fw_zk_connected(&c->zk)) {
        snprintf(reason, cap, "ZooKeeper session %s", fw_zk_state_name(fw_zk_state(&c->zk)));
        return 0;
    }
    if (!fw_members_registered(&c->members)) {
        snprintf(reason, cap, "not registered in ZooKeeper yet");
        return 0;
    }
    for (int i = 0; i < c->ndests; i++) {
        const cp_dest_t *d = c->dests[i];
        if (d->last_error < 0 && fw_clock_mono_ms() - d->last_error_ms < DEST_ERROR_READY_MS) {
            snprintf(reason, cap, "destination %s failing (last error %.1f s ago): %s", d->url,
                     (double)(fw_clock_mono_ms() - d->last_error_ms) / 1000, d->last_error_text);
            return 0;
        }
    }
    return 1;
}

static void part_closed(cp_copier_t *c)
{
    if (--c->closing_parts > 0)
        return;
    fw_members_free(&c->members);
    free(c->dests);
    c->dests = NULL;
    fw_log_info("copier", "stopped");
    if (c->stopped_cb != NULL)
        c->stopped_cb(c);
}

static void on_source_closed(cp_source_t *s)
{
    part_closed(s->arg);
}

static void on_dest_closed(cp_dest_t *d)
{
    part_closed(d->data);
}

static void on_handle_closed(uv_handle_t *h)
{
    part_closed(h->data);
}

static void free_tasks(cp_copier_t *c)
{
    each_task(c, cp_task_free);
    for (size_t i = 0; i < c->source.count; i++) {
        free(c->source.buckets[i]->data);
        c->source.buckets[i]->data = NULL;
    }
}

static void on_zk_closed(fw_zk_t *zk)
{
    cp_copier_t *c = (cp_copier_t *)((char *)zk - offsetof(cp_copier_t, zk));
    /* Every task is idle (nothing in flight), and no ZooKeeper callback is
     * owed any more, so they can go before the buckets they point to. */
    free_tasks(c);
    c->closing_parts = c->ndests + 3;
    for (int d = 0; d < c->ndests; d++)
        cp_dest_close(c->dests[d], on_dest_closed);
    uv_close((uv_handle_t *)&c->tick, on_handle_closed);
    uv_close((uv_handle_t *)&c->rate_timer, on_handle_closed);
    cp_source_close(&c->source, on_source_closed);
}

static void on_left(fw_zk_t *zk, int rc, void *arg)
{
    (void)rc;
    (void)arg;
    fw_zk_close(zk, on_zk_closed);
}

void cp_copier_task_idle(cp_copier_t *c)
{
    if (!c->stopping || c->leaving)
        return;
    for (size_t i = 0; i < c->source.count; i++) {
        cp_task_t **tasks = c->source.buckets[i]->data;
        for (int d = 0; tasks != NULL && d < c->ndests; d++)
            if (tasks[d] != NULL && !cp_task_quiet(tasks[d]))
                return;
    }
    if (c->retention_running)
        return;
    c->leaving = 1;
    uv_timer_stop(&c->tick);
    if (!fw_members_registered(&c->members) || fw_members_leave(&c->members, on_left, c) < 0)
        fw_zk_close(&c->zk, on_zk_closed);
}

void cp_copier_stop(cp_copier_t *c, cp_copier_cb cb)
{
    c->stopping = 1;
    c->stopped_cb = cb;
    each_task(c, cp_task_step);
    cp_copier_task_idle(c);
}
