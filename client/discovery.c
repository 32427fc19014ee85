/*
 * Where the writers are and what each category looks like, for the
 * producer's I/O thread.
 *
 * Writers come from ZooKeeper (the children of nodes/calligraphus, each a
 * NodeInfo in pbtext form, watched) or, with a bootstrap list, from that
 * list plus the writers each metadata answer names. Everything else comes
 * from the writers: a METADATA_REQ to any connected writer answers with
 * each category's bucket count, record limit, codec and bucket owners. So
 * thousands of producers never each watch every bucket's owner node.
 *
 * A category's metadata is fetched when it is first used, after answers
 * that say it is stale (NOT_OWNER, UNKNOWN_CATEGORY, BUCKET_OUT_OF_RANGE,
 * SHUTTING_DOWN, a lost connection), and every metadata_refresh_ms (bucket
 * counts grow); at most every META_MIN_INTERVAL_MS per category.
 */
#include "producer_int.h"
#include "clock.h"

#include "error.h"
#include "status.h"
#include "pbtext.h"
#include "proto/meta.pb-c.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NODES_PATH               "/nodes/calligraphus"
#define ZK_RETRY_MS              1000
#define META_MIN_INTERVAL_MS     200
#define META_MAX_CATEGORIES      64 /* per metadata request */
#define META_MISSING_INTERVAL_MS 1000
#define WRITER_DOWN_MIN_MS       100
#define WRITER_DOWN_MAX_MS       5000

/* ---- writers -----------------------------------------------------------------------------------
 */

fw_writer_t *fw_discovery_writer(fw_producer_t *p, const char *addr)
{
    for (fw_writer_t *w = p->writers; w != NULL; w = w->next) {
        if (strcmp(w->addr, addr) == 0)
            return w;
    }
    char host[FW_HOST_MAX];
    unsigned port;
    if (strlen(addr) >= sizeof(((fw_writer_t *)0)->addr) ||
        fw_addr_split(addr, host, sizeof(host), &port) < 0) {
        fw_plog(p, FW_PRODUCER_LOG_WARN, "ignoring writer address \"%s\": want HOST:PORT", addr);
        return NULL;
    }
    fw_writer_t *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return NULL;
    snprintf(w->addr, sizeof(w->addr), "%s", addr);
    w->next = p->writers;
    p->writers = w;
    return w;
}

int fw_discovery_usable(const fw_producer_t *p, const fw_writer_t *w)
{
    return p->now >= w->down_until && p->now >= w->draining_until;
}

fw_writer_t *fw_discovery_pick(fw_producer_t *p, const fw_bucket_t *bk)
{
    uint32_t n = 0;
    for (fw_writer_t *w = p->writers; w != NULL; w = w->next)
        n += w->live && fw_discovery_usable(p, w);
    if (n == 0)
        return NULL;
    /* Spread buckets over writers; a bucket keeps its writer while the set stays. */
    uint32_t k = (bk->id * 2654435761u ^ bk->cat->hash) % n;
    for (fw_writer_t *w = p->writers; w != NULL; w = w->next) {
        if (w->live && fw_discovery_usable(p, w) && k-- == 0)
            return w;
    }
    return NULL;
}

void fw_discovery_writer_failed(fw_producer_t *p, fw_writer_t *w)
{
    w->fail_ms = w->fail_ms ? w->fail_ms * 2 : WRITER_DOWN_MIN_MS;
    if (w->fail_ms > WRITER_DOWN_MAX_MS)
        w->fail_ms = WRITER_DOWN_MAX_MS;
    w->down_until = p->now + w->fail_ms;
}

void fw_discovery_writer_ok(fw_producer_t *p, fw_writer_t *w)
{
    (void)p;
    w->fail_ms = 0;
}

/* Makes the writers in addrs live (and, when exclusive, every other one not). */
static void writers_set(fw_producer_t *p, char (*addrs)[FW_ADDR_MAX], uint32_t n, int exclusive)
{
    int changed = 0;
    for (fw_writer_t *w = p->writers; w != NULL; w = w->next)
        w->mark = 0;
    for (uint32_t i = 0; i < n; i++) {
        fw_writer_t *w = fw_discovery_writer(p, addrs[i]);
        if (w == NULL)
            continue;
        w->mark = 1;
        changed |= !w->live;
        w->live = 1;
    }
    if (exclusive) {
        for (fw_writer_t *w = p->writers; w != NULL; w = w->next) {
            if (!w->mark && !w->bootstrap && w->live) {
                w->live = 0;
                changed = 1;
            }
        }
    }
    if (!changed)
        return;
    char list[512];
    size_t len = 0;
    uint32_t live = 0;
    list[0] = '\0';
    for (fw_writer_t *w = p->writers; w != NULL; w = w->next) {
        if (!w->live)
            continue;
        live++;
        if (len < sizeof(list))
            len += (size_t)snprintf(list + len, sizeof(list) - len, " %s", w->addr);
    }
    fw_plog(p, FW_PRODUCER_LOG_INFO, "%" PRIu32 " writers:%s", live, live ? list : " (none)");
}

/* ---- ZooKeeper
 * ------------------------------------------------------------------------------------ */

typedef struct listing_s {
    fw_producer_t *p;
    uint64_t gen;
    uint32_t remaining;
    uint32_t count;
    char (*addrs)[FW_ADDR_MAX];
} listing_t;

static void list_writers(fw_producer_t *p);

static void listing_done(listing_t *l)
{
    fw_producer_t *p = l->p;
    if (l->gen == p->zk_list_gen && p->stop_phase == 0) {
        p->now = fw_clock_mono_ms();
        writers_set(p, l->addrs, l->count, 1);
        fw_discovery_pump(p);
        fw_sender_pump(p);
    }
    free(l->addrs);
    free(l);
}

static void on_node_data(fw_zk_t *zk, int rc, const char *data, size_t len, const struct Stat *stat,
                         void *arg)
{
    (void)zk;
    (void)stat;
    listing_t *l = arg;
    if (rc == ZOK) {
        char err[128];
        ProtobufCMessage *m;
        if (fw_pbtext_parse(&fwpb__node_info__descriptor, data, len, &m, err, sizeof(err)) == 0) {
            Fwpb__NodeInfo *info = (Fwpb__NodeInfo *)m;
            if (strlen(info->address) < sizeof(l->addrs[0]))
                snprintf(l->addrs[l->count++], sizeof(l->addrs[0]), "%s", info->address);
            protobuf_c_message_free_unpacked(m, NULL);
        } else {
            fw_plog(l->p, FW_PRODUCER_LOG_WARN, "a writer's node in ZooKeeper is malformed: %s",
                    err);
        }
    }
    if (--l->remaining == 0)
        listing_done(l);
}

static void on_nodes_watch(fw_zk_t *zk, int rc, int type, const char *path, void *arg)
{
    (void)zk;
    (void)type;
    (void)path;
    fw_producer_t *p = arg;
    if (rc != ZOK || p->stop_phase != 0)
        return;
    p->now = fw_clock_mono_ms();
    if (p->zk_listing)
        p->zk_retry_at = p->now; /* list again once this listing ends */
    else
        list_writers(p);
}

static void on_nodes(fw_zk_t *zk, int rc, int count, const char *const *names, void *arg)
{
    fw_producer_t *p = arg;
    p->zk_listing = 0;
    if (p->stop_phase != 0)
        return;
    p->now = fw_clock_mono_ms();
    if (rc == ZNONODE) {
        /* No writer has ever registered: no watch was set, so look again later. */
        writers_set(p, NULL, 0, 1);
        p->zk_retry_at = p->now + ZK_RETRY_MS;
        return;
    }
    if (rc != ZOK) {
        fw_plog(p, FW_PRODUCER_LOG_WARN, "listing writers in ZooKeeper: %s", zerror(rc));
        p->zk_retry_at = p->now + ZK_RETRY_MS;
        return;
    }
    listing_t *l = calloc(1, sizeof(*l));
    if (l == NULL ||
        (l->addrs = calloc(count > 0 ? (size_t)count : 1, sizeof(*l->addrs))) == NULL) {
        free(l);
        p->zk_retry_at = p->now + ZK_RETRY_MS;
        return;
    }
    l->p = p;
    l->gen = ++p->zk_list_gen;
    l->remaining = 1; /* held until every get is issued */
    for (int i = 0; i < count; i++) {
        char path[300];
        snprintf(path, sizeof(path), NODES_PATH "/%s", names[i]);
        l->remaining++;
        if (fw_zk_get(zk, path, NULL, NULL, on_node_data, l) < 0)
            l->remaining--;
    }
    if (--l->remaining == 0)
        listing_done(l);
}

static void list_writers(fw_producer_t *p)
{
    if (!p->zk_open || p->zk_listing || p->stop_phase != 0)
        return;
    p->zk_retry_at = 0;
    int rc = fw_zk_get_children(&p->zk, NODES_PATH, on_nodes_watch, p, on_nodes, p);
    if (rc < 0) {
        p->zk_retry_at = p->now + ZK_RETRY_MS;
        return;
    }
    p->zk_listing = 1;
}

/* The session's lines go to the application's log callback, never to stderr. */
static void on_zk_log(void *arg, fw_log_level_t level, const char *line)
{
    fw_plog(arg, (fw_producer_log_level_t)level, "zookeeper: %s", line);
}

static void on_zk_state(fw_zk_t *zk, fw_zk_state_t state, int64_t session_id, void *arg)
{
    (void)zk;
    (void)session_id;
    fw_producer_t *p = arg;
    p->now = fw_clock_mono_ms();
    if (state == FW_ZK_CONNECTED)
        list_writers(p);
}

static void on_zk_closed(fw_zk_t *zk)
{
    fw_producer_t *p = zk->data;
    p->handles_open--;
}

int fw_discovery_start(fw_producer_t *p)
{
    if (p->o.bootstrap != NULL) {
        const char *s = p->o.bootstrap;
        uint32_t n = 0;
        while (*s != '\0') {
            size_t len = strcspn(s, ", ");
            if (len > 0) {
                char addr[FW_ADDR_MAX];
                if (len >= sizeof(addr))
                    return -EINVAL;
                memcpy(addr, s, len);
                addr[len] = '\0';
                fw_writer_t *w = fw_discovery_writer(p, addr);
                if (w == NULL)
                    return -EINVAL;
                w->live = w->bootstrap = 1;
                n++;
            }
            s += len;
            s += strspn(s, ", ");
        }
        return n > 0 ? 0 : -EINVAL;
    }
    fw_zk_options_t zo = {
        .connect = p->o.zk,
        .create_chroot = 0, /* a reader: it waits for the daemons' tree, never makes it */
        .session_timeout_ms = 10000,
        .state_cb = on_zk_state,
        .state_arg = p,
        .log = on_zk_log,
        .log_arg = p,
    };
    int rc = fw_zk_init(&p->zk, &p->loop, &zo);
    if (rc < 0)
        return rc;
    p->zk.data = p;
    p->zk_used = 1;
    p->zk_open = 1;
    return 0;
}

void fw_discovery_stop(fw_producer_t *p)
{
    if (!p->zk_open)
        return;
    p->zk_open = 0;
    p->handles_open++;
    fw_zk_close(&p->zk, on_zk_closed);
}

/* ---- metadata -----------------------------------------------------------------------------------
 */

void fw_discovery_want(fw_producer_t *p, fw_pcat_t *cat)
{
    (void)p;
    cat->meta_wanted = 1;
}

static int meta_due(const fw_producer_t *p, const fw_pcat_t *cat)
{
    if (!cat->meta_wanted || cat->meta_pending)
        return 0;
    if (cat->meta_asked_ms == 0)
        return 1;
    int64_t gap = cat->missing ? META_MISSING_INTERVAL_MS : META_MIN_INTERVAL_MS;
    return p->now - cat->meta_asked_ms >= gap;
}

void fw_discovery_pump(fw_producer_t *p)
{
    if (p->stop_phase != 0)
        return;
    uint32_t n = 0;
    for (fw_pcat_t *cat = p->cats; cat != NULL; cat = cat->ionext)
        n += meta_due(p, cat);
    if (n == 0)
        return;
    fw_wconn_t *c = NULL;
    for (fw_wconn_t *x = p->conns; x != NULL && c == NULL; x = x->next) {
        if (x->state == FW_WCONN_READY && x->w != NULL && fw_discovery_usable(p, x->w))
            c = x;
    }
    if (c == NULL) {
        /* Connect to some live writer; its connect callback pumps again. */
        uint32_t live = 0;
        for (fw_writer_t *w = p->writers; w != NULL; w = w->next) {
            if (w->live && fw_discovery_usable(p, w)) {
                if (w->conn != NULL)
                    return; /* one is connecting */
                live++;
            }
        }
        if (live == 0)
            return;
        uint32_t k = p->writer_rr++ % live;
        for (fw_writer_t *w = p->writers; w != NULL; w = w->next) {
            if (w->live && fw_discovery_usable(p, w) && k-- == 0) {
                fw_wire_connect(p, w);
                break;
            }
        }
        return;
    }
    /* Several requests of a bounded size: writers refuse huge ones. */
    fw_pcat_t *cat = p->cats;
    while (n > 0) {
        uint32_t chunk = n < META_MAX_CATEGORIES ? n : META_MAX_CATEGORIES;
        fw_wreq_t *r = fw_wire_req_new(c, FW_WREQ_METADATA);
        if (r == NULL || (r->cats = calloc(chunk, sizeof(*r->cats))) == NULL) {
            fw_wire_req_free(r);
            return;
        }
        for (; cat != NULL && r->ncats < chunk; cat = cat->ionext) {
            if (!meta_due(p, cat))
                continue;
            r->cats[r->ncats++] = cat;
            cat->meta_wanted = 0;
            cat->meta_pending = 1;
            cat->meta_asked_ms = p->now;
        }
        n -= chunk;
        if (fw_wire_send_metadata(r) < 0 || c->state != FW_WCONN_READY)
            return;
    }
}

void fw_discovery_on_metadata_lost(fw_producer_t *p, fw_wreq_t *r)
{
    (void)p;
    for (uint32_t i = 0; i < r->ncats; i++) {
        r->cats[i]->meta_pending = 0;
        r->cats[i]->meta_wanted = 1;
    }
}

static const Fwpb__CategoryMetadata *find_answer(const Fwpb__MetadataResponse *m, uint32_t i,
                                                 const char *name)
{
    if (i < m->n_categories && strcmp(m->categories[i]->category, name) == 0)
        return m->categories[i];
    for (size_t k = 0; k < m->n_categories; k++) {
        if (strcmp(m->categories[k]->category, name) == 0)
            return m->categories[k];
    }
    return NULL;
}

static void apply_category(fw_producer_t *p, fw_pcat_t *cat, const Fwpb__CategoryMetadata *cm)
{
    if (cm->status == FWPB__STATUS__STATUS_UNKNOWN_CATEGORY) {
        /* The audit category's absence is said once, at info (producer_audit.c). */
        if (!cat->missing && !cat->audit_internal)
            fw_plog(p, FW_PRODUCER_LOG_WARN, "category %s does not exist", cat->name);
        cat->meta_known = 1;
        cat->meta_ok_ms = p->now;
        fw_producer_set_missing(p, cat);
        return;
    }
    if (cm->status != FWPB__STATUS__STATUS_OK || !cm->has_buckets || cm->buckets == 0) {
        snprintf(cat->last_error, sizeof(cat->last_error), "metadata for %s: %s", cat->name,
                 fw_status_name((int)cm->status));
        cat->meta_wanted = 1;
        return;
    }
    uint32_t n = cm->buckets < FW_BUCKETS_MAX ? cm->buckets : FW_BUCKETS_MAX;
    if (n < cat->meta_nbuckets)
        n = cat->meta_nbuckets; /* buckets never shrink; a stale writer may say fewer */
    uint32_t max_record = FW_RECORD_MAX_DEFAULT;
    if (cm->has_max_record_bytes && cm->max_record_bytes > 0)
        max_record =
            cm->max_record_bytes < FW_RECORD_MAX_HARD ? cm->max_record_bytes : FW_RECORD_MAX_HARD;
    fw_codec_t codec =
        cm->has_codec && cm->codec == FWPB__CODEC__CODEC_NONE ? FW_CODEC_NONE : FW_CODEC_LZ4;
    if (cat->meta_nbuckets != n)
        fw_plog(p, FW_PRODUCER_LOG_DEBUG, "category %s: %" PRIu32 " buckets", cat->name, n);
    if (fw_producer_set_buckets(p, cat, n, max_record, codec) < 0) {
        cat->meta_wanted = 1;
        return;
    }
    for (uint32_t b = 0; b < cat->meta_nbuckets; b++)
        cat->buckets[b]->owner = NULL;
    for (size_t i = 0; i < cm->n_owners; i++) {
        const Fwpb__BucketOwner *o = cm->owners[i];
        if (o->bucket < cat->meta_nbuckets && o->address != NULL && o->address[0] != '\0')
            cat->buckets[o->bucket]->owner = fw_discovery_writer(p, o->address);
    }
    cat->meta_known = 1;
    cat->meta_ok_ms = p->now;
}

/*
 * A writer closes the connection of a frame over its --max-frame, so
 * requests must fit the smallest one any writer advertised (one deployment
 * runs one setting; the smallest is safe for all), and so must each batch,
 * with room for lz4's worst case and the block header.
 */
static void learn_frame_cap(fw_producer_t *p, uint32_t max_frame)
{
    if (max_frame < 4096 || (p->frame_cap != 0 && p->frame_cap <= max_frame))
        return;
    p->frame_cap = max_frame;
    size_t fit = max_frame - max_frame / 128 - 1024;
    pthread_mutex_lock(&p->mu);
    int lowered = fit < p->batch_limit;
    if (lowered)
        p->batch_limit = fit;
    pthread_mutex_unlock(&p->mu);
    if (lowered)
        fw_plog(p, FW_PRODUCER_LOG_INFO,
                "writers read frames of at most %" PRIu32 " bytes: batches of at most %zu bytes",
                max_frame, fit);
}

void fw_discovery_on_metadata(fw_producer_t *p, fw_wreq_t *r, const Fwpb__MetadataResponse *m)
{
    if (m->has_max_frame_bytes)
        learn_frame_cap(p, m->max_frame_bytes);
    if (p->o.bootstrap != NULL && m->n_writers > 0) {
        /* With bootstrap addresses, the writers' own list is how we learn the others. */
        char(*addrs)[FW_ADDR_MAX] = calloc(m->n_writers, sizeof(*addrs));
        uint32_t n = 0;
        for (size_t i = 0; addrs != NULL && i < m->n_writers; i++) {
            if (strlen(m->writers[i]) < sizeof(addrs[0]))
                snprintf(addrs[n++], sizeof(addrs[0]), "%s", m->writers[i]);
        }
        if (addrs != NULL)
            writers_set(p, addrs, n, 1);
        free(addrs);
    }
    for (uint32_t i = 0; i < r->ncats; i++) {
        fw_pcat_t *cat = r->cats[i];
        cat->meta_pending = 0;
        const Fwpb__CategoryMetadata *cm = find_answer(m, i, cat->name);
        if (cm == NULL) {
            cat->meta_wanted = 1;
            continue;
        }
        apply_category(p, cat, cm);
    }
    fw_sender_kick(p);
}

void fw_discovery_why_no_metadata(const fw_producer_t *p, char *out, size_t cap)
{
    uint32_t live = 0;
    for (const fw_writer_t *w = p->writers; w != NULL; w = w->next)
        live += w->live;
    if (live == 0 && p->zk_used && p->zk_open && fw_zk_chroot_missing(&p->zk))
        snprintf(out, cap, "no freeway tree at %s (no daemon has created it yet)", p->o.zk);
    else if (live == 0 && p->zk_used)
        snprintf(out, cap, "no writer found in ZooKeeper at %s (session %s)", p->o.zk,
                 p->zk_open ? fw_zk_state_name(fw_zk_state(&p->zk)) : "closed");
    else
        snprintf(out, cap, "no writer answered with the category's metadata%s%.*s",
                 p->last_conn_error[0] ? "; " : "", (int)(cap > 100 ? cap - 100 : 0),
                 p->last_conn_error);
}

void fw_discovery_tick(fw_producer_t *p)
{
    if (p->zk_used && p->zk_retry_at != 0 && p->now >= p->zk_retry_at)
        list_writers(p);
    for (fw_pcat_t *cat = p->cats; cat != NULL; cat = cat->ionext) {
        if (cat->meta_known && !cat->meta_pending &&
            p->now - cat->meta_ok_ms >= (int64_t)p->o.metadata_refresh_ms)
            cat->meta_wanted = 1;
    }
}
