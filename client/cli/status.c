/*
 * freeway status: gathers the fabric's state (see status.h). ZooKeeper is
 * read with asynchronous gets issued all at once (a category of 10,000
 * buckets is one round of requests, not 10,000 round trips); the nodes are
 * asked over HTTP in parallel, each with a deadline, so a dead node costs
 * one timeout, not one per node.
 */
#include "cli.h"
#include "status.h"
#include "zkutil.h"

#include "config.h"
#include "metrics_text.h"
#include "names.h"
#include "pbtext.h"
#include "proto/meta.pb-c.h"
#include "utf8.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* A node's /metrics beyond this is refused (a copier with 10,000 buckets renders ~20 MiB). */
#define METRICS_MAX (256u << 20)

typedef struct status_cfg_s {
    char *zk;
    int64_t timeout;
    char *category;
    int json;
    int watch;
    int64_t interval;
} status_cfg_t;

static const fw_option_t status_opts[] = {
    {"zk", FW_OPT_STRING, offsetof(status_cfg_t, zk), "${FREEWAY_ZK:-127.0.0.1:2181/freeway}",
     "HOSTS[/chroot]", "ZooKeeper ensemble and chroot"},
    {"timeout", FW_OPT_DURATION, offsetof(status_cfg_t, timeout), "5s", "DURATION",
     "how long to wait for ZooKeeper, and for each node's answer"},
    {"category", FW_OPT_STRING, offsetof(status_cfg_t, category), NULL, "NAME",
     "show only this category's buckets (-c NAME)"},
    {"json", FW_OPT_BOOL, offsetof(status_cfg_t, json), "false", NULL,
     "print one JSON object (one line) instead of tables"},
    {"watch", FW_OPT_BOOL, offsetof(status_cfg_t, watch), "false", NULL,
     "refresh every --interval until interrupted (with --json: one object per line)"},
    {"interval", FW_OPT_DURATION, offsetof(status_cfg_t, interval), "2s", "DURATION",
     "time between refreshes with --watch"},
    FW_OPTIONS_END,
};

static void usage(FILE *out)
{
    fprintf(out, "usage: freeway status [-c CATEGORY] [--json] [--watch] [OPTIONS]\n\n"
                 "What the fabric looks like now: every live node by kind with its address,\n"
                 "version, uptime and readiness; per category its buckets, each bucket's owner,\n"
                 "epoch and open segment, the records and bytes written in the last minute and\n"
                 "hour; copier progress and lag per destination and bucket; ptail subscribers\n"
                 "and their lag. ZooKeeper gives the layout, each node's /readyz and /metrics\n"
                 "the rest (a node without --metrics shows as unknown). Exit status 0 when the\n"
                 "picture was read, 1 when ZooKeeper could not be read.\n\noptions:\n");
    fw_config_usage(status_opts, out);
}

/* ---- ZooKeeper: many gets at once ------------------------------------------------------------ */

typedef struct zbatch_s zbatch_t;

typedef struct zget_s {
    zbatch_t *batch;
    char *path; /* malloc'd: a copier path holds a URL percent-encoded to ~1,100 bytes */
    int rc;
    char *data;
    size_t len;
} zget_t;

/* Gets issued together. Freed only after the handle is closed: a get that
 * timed out may still complete (with ZCLOSING at the latest). */
struct zbatch_s {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    size_t left, n;
    zbatch_t *next;
    zget_t gets[];
};

static void on_get(int rc, const char *value, int len, const struct Stat *stat, const void *arg)
{
    (void)stat;
    zget_t *g = (zget_t *)arg;
    g->rc = rc;
    if (rc == ZOK && value != NULL && len > 0) {
        g->data = malloc((size_t)len + 1);
        if (g->data != NULL) {
            memcpy(g->data, value, (size_t)len);
            g->data[len] = '\0';
            g->len = (size_t)len;
        } else {
            g->rc = ZSYSTEMERROR;
        }
    }
    pthread_mutex_lock(&g->batch->mu);
    g->batch->left--;
    pthread_cond_signal(&g->batch->cv);
    pthread_mutex_unlock(&g->batch->mu);
}

/*
 * Gets every path of b->gets at once and waits for all the answers (each
 * gets[i].rc, and .data when ZOK). -ETIMEDOUT if some are still out after
 * timeout_ms.
 */
static int get_all(zhandle_t *zh, zbatch_t *b, int64_t timeout_ms)
{
    b->left = b->n;
    for (size_t i = 0; i < b->n; i++) {
        zget_t *g = &b->gets[i];
        g->batch = b;
        g->rc = ZSYSTEMERROR;
        int rc = zoo_aget(zh, g->path, 0, on_get, g);
        if (rc != ZOK) {
            g->rc = rc;
            pthread_mutex_lock(&b->mu);
            b->left--;
            pthread_mutex_unlock(&b->mu);
        }
    }
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (timeout_ms % 1000) * 1000000;
    if (until.tv_nsec >= 1000000000) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000;
    }
    int timed_out = 0;
    pthread_mutex_lock(&b->mu);
    while (b->left > 0 && !timed_out)
        timed_out = pthread_cond_timedwait(&b->cv, &b->mu, &until) == ETIMEDOUT;
    int done = b->left == 0;
    pthread_mutex_unlock(&b->mu);
    return done ? 0 : -ETIMEDOUT;
}

static void batch_free(zbatch_t *b)
{
    for (size_t i = 0; i < b->n; i++) {
        free(b->gets[i].path);
        free(b->gets[i].data);
    }
    pthread_mutex_destroy(&b->mu);
    pthread_cond_destroy(&b->cv);
    free(b);
}

static int oom(void)
{
    fprintf(stderr, "freeway status: out of memory\n");
    return -1;
}

/* The chroot'ed path of the printf-formatted rel, malloc'd; NULL on ENOMEM. */
__attribute__((format(printf, 2, 3))) static char *zpath(const fw_cli_zk_t *z, const char *fmt, ...)
{
    va_list ap;
    char *rel;
    va_start(ap, fmt);
    int n = vasprintf(&rel, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    size_t cap = strlen(z->chroot) + 1 + (size_t)n + 1;
    char *path = malloc(cap);
    if (path != NULL)
        fw_cli_zk_path(z, path, cap, rel);
    free(rel);
    return path;
}

/* The children of rel (a path under the chroot), sorted; an empty list if it does not exist. */
static int children(fw_cli_zk_t *z, const char *rel, struct String_vector *out)
{
    memset(out, 0, sizeof(*out));
    char *path = zpath(z, "%s", rel);
    if (path == NULL)
        return oom();
    int rc = zoo_get_children(z->zh, path, 0, out);
    if (rc != ZOK && rc != ZNONODE)
        fprintf(stderr, "freeway status: cannot list %s: %s\n", path, zerror(rc));
    free(path);
    return rc == ZOK || rc == ZNONODE ? 0 : -1;
}

/* A copier/ node name back to its URL (fw_dest_key_decode), malloc'd; NULL on ENOMEM. */
static char *dest_url(const char *key)
{
    size_t cap = strlen(key) + 1; /* decoding only shortens */
    char *out = malloc(cap);
    if (out != NULL)
        fw_dest_key_decode(key, out, cap);
    return out;
}

/* src[0..len) into dst[0..cap), NUL-terminated, cut to fit at a character boundary. */
static void copy_bytes(char *dst, size_t cap, const char *src, size_t len)
{
    size_t n = fw_utf8_prefix(src, len, cap - 1);
    if (n > 0)
        memcpy(dst, src, n);
    dst[n] = '\0';
}

/* The C string src (NULL: "") into dst[0..cap), as copy_bytes does. */
static void copy_text(char *dst, size_t cap, const char *src)
{
    copy_bytes(dst, cap, src != NULL ? src : "", src != NULL ? strlen(src) : 0);
}

/* ---- gathering ------------------------------------------------------------------------------ */

typedef struct gather_s {
    fw_cli_zk_t zk;
    const status_cfg_t *cfg;
    fw_status_t *st;
    zbatch_t *batches; /* every batch, freed after the handle is closed */
} gather_t;

/* A new batch of n gets (paths to fill in), kept for freeing at the end. NULL on ENOMEM. */
static zget_t *batch_new(gather_t *g, size_t n)
{
    zbatch_t *b = calloc(1, sizeof(*b) + n * sizeof(zget_t));
    if (b == NULL)
        return NULL;
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->cv, NULL);
    b->n = n;
    b->next = g->batches;
    g->batches = b;
    return b->gets;
}

/* Runs the newest batch. */
static int run_batch(gather_t *g)
{
    if (get_all(g->zk.zh, g->batches, g->cfg->timeout) < 0) {
        fprintf(stderr, "freeway status: ZooKeeper did not answer within %lld ms\n",
                (long long)g->cfg->timeout);
        return -1;
    }
    return 0;
}

static int parse_msg(const ProtobufCMessageDescriptor *d, const zget_t *get, ProtobufCMessage **m)
{
    char err[256];
    if (get->rc != ZOK || get->len == 0)
        return -1; /* gone, or not written yet (copier progress starts empty) */
    if (fw_pbtext_parse(d, get->data ? get->data : "", get->len, m, err, sizeof(err)) < 0) {
        fprintf(stderr, "freeway status: %s: %s\n", get->path, err);
        return -1;
    }
    return 0;
}

static int find_dest(const fw_status_t *st, const char *url, size_t len)
{
    for (size_t i = 0; i < st->ndests; i++)
        if (strncmp(st->dests[i], url, len) == 0 && st->dests[i][len] == '\0')
            return (int)i;
    return -1;
}

/* The index of url[0..len) in st->dests, added if new; -1 on ENOMEM. */
static int add_dest(fw_status_t *st, const char *url, size_t len)
{
    int have = find_dest(st, url, len);
    if (have >= 0)
        return have;
    char **d = realloc(st->dests, (st->ndests + 1) * sizeof(*d));
    if (d == NULL)
        return -1;
    st->dests = d;
    if ((d[st->ndests] = strndup(url, len)) == NULL)
        return -1;
    return (int)st->ndests++;
}

/* Each URL of a copier's destination list (separated by spaces). 0, or -1 on ENOMEM. */
static int add_dests(fw_status_t *st, const char *list)
{
    for (const char *p = list; p != NULL && *p != '\0';) {
        size_t n = strcspn(p, " ");
        if (n > 0 && add_dest(st, p, n) < 0)
            return -1;
        p += n;
        p += strspn(p, " ");
    }
    return 0;
}

static const char *const KINDS[] = {"calligraphus", "ptail", "copier"};

static int gather_nodes(gather_t *g)
{
    fw_status_t *st = g->st;
    for (size_t k = 0; k < 3; k++) {
        char rel[32];
        snprintf(rel, sizeof(rel), "nodes/%s", KINDS[k]);
        struct String_vector ids;
        if (children(&g->zk, rel, &ids) < 0)
            return -1;
        int rc = 0;
        zget_t *gets = batch_new(g, (size_t)ids.count);
        fw_status_node_t *nodes =
            realloc(st->nodes, (st->nnodes + (size_t)ids.count + 1) * sizeof(*nodes));
        if (nodes != NULL)
            st->nodes = nodes;
        if (gets == NULL || nodes == NULL)
            rc = oom();
        for (int i = 0; rc == 0 && i < ids.count; i++)
            if ((gets[i].path = zpath(&g->zk, "%s/%s", rel, ids.data[i])) == NULL)
                rc = oom();
        if (rc == 0)
            rc = run_batch(g);
        for (int i = 0; rc == 0 && i < ids.count; i++) {
            ProtobufCMessage *m;
            if (parse_msg(&fwpb__node_info__descriptor, &gets[i], &m) < 0)
                continue; /* gone since the listing */
            Fwpb__NodeInfo *info = (Fwpb__NodeInfo *)m;
            fw_status_node_t *n = &st->nodes[st->nnodes++];
            memset(n, 0, sizeof(*n));
            copy_text(n->kind, sizeof(n->kind), KINDS[k]);
            copy_text(n->id, sizeof(n->id), ids.data[i]);
            copy_text(n->address, sizeof(n->address), info->address);
            copy_text(n->metrics, sizeof(n->metrics), info->metrics_address);
            copy_text(n->version, sizeof(n->version), info->version);
            n->started_ms = info->has_started_ms ? info->started_ms : 0;
            n->ready = -1;
            copy_text(n->reason, sizeof(n->reason),
                      n->metrics[0] ? "not asked" : "no --metrics address");
            if (add_dests(st, info->destinations) < 0)
                rc = oom();
            protobuf_c_message_free_unpacked(m, NULL);
        }
        deallocate_String_vector(&ids);
        if (rc < 0)
            return -1;
    }
    return 0;
}

static int compare_strings(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int gather_categories(gather_t *g)
{
    fw_status_t *st = g->st;
    struct String_vector names;
    if (g->cfg->category != NULL) {
        names.count = 1;
        names.data = malloc(sizeof(char *));
        if (names.data == NULL || (names.data[0] = strdup(g->cfg->category)) == NULL) {
            free(names.data);
            return oom();
        }
    } else if (children(&g->zk, "categories", &names) < 0) {
        return -1;
    }
    if (names.count > 0)
        qsort(names.data, (size_t)names.count, sizeof(char *), compare_strings);
    int rc = 0;
    zget_t *gets = batch_new(g, (size_t)names.count);
    st->cats = calloc((size_t)names.count + 1, sizeof(*st->cats));
    if (gets == NULL || st->cats == NULL)
        rc = oom();
    for (int i = 0; rc == 0 && i < names.count; i++)
        if ((gets[i].path = zpath(&g->zk, "categories/%s", names.data[i])) == NULL)
            rc = oom();
    if (rc == 0)
        rc = run_batch(g);
    for (int i = 0; rc == 0 && i < names.count; i++) {
        fw_status_category_t *c = &st->cats[st->ncats];
        ProtobufCMessage *m;
        if (gets[i].rc == ZNONODE && g->cfg->category != NULL) {
            fprintf(stderr, "freeway status: no category %s\n", names.data[i]);
            rc = -1;
            break;
        }
        if (parse_msg(&fwpb__category_config__descriptor, &gets[i], &m) < 0)
            continue;
        Fwpb__CategoryConfig *cc = (Fwpb__CategoryConfig *)m;
        copy_text(c->name, sizeof(c->name), names.data[i]);
        c->has_config = 1;
        c->buckets = cc->buckets;
        c->roll_bytes = cc->roll_bytes;
        c->roll_age_ms = cc->roll_age_ms;
        c->retention_ms = cc->retention_ms;
        c->sync_interval_ms = cc->sync_interval_ms;
        c->max_record_bytes = cc->max_record_bytes;
        c->codec = cc->codec == FWPB__CODEC__CODEC_LZ4 ? "lz4" : "none";
        /* As the writers take it: anything but one byte is no key. */
        const char *d = cc->scribe_key_delimiter;
        c->scribe_key_delim = d != NULL && d[0] != '\0' && d[1] == '\0' ? (unsigned char)d[0] : -1;
        c->records_1m = c->bytes_1m = c->records_1h = c->bytes_1h = -1;
        protobuf_c_message_free_unpacked(m, NULL);
        c->list = calloc(c->buckets ? c->buckets : 1, sizeof(*c->list));
        if (c->list == NULL) {
            rc = oom();
            break;
        }
        st->ncats++;
    }
    deallocate_String_vector(&names);
    if (rc < 0)
        return -1;

    /* Each bucket's node and owner node, all categories in one batch. */
    size_t total = 0;
    for (size_t i = 0; i < st->ncats; i++)
        total += 2 * (size_t)st->cats[i].buckets;
    gets = batch_new(g, total);
    if (gets == NULL)
        return oom();
    size_t at = 0;
    for (size_t i = 0; i < st->ncats; i++) {
        for (uint32_t b = 0; b < st->cats[i].buckets; b++) {
            const char *name = st->cats[i].name;
            if ((gets[at++].path = zpath(&g->zk, "buckets/%s/%u", name, b)) == NULL ||
                (gets[at++].path = zpath(&g->zk, "buckets/%s/%u/owner", name, b)) == NULL)
                return oom();
        }
    }
    if (run_batch(g) < 0)
        return -1;
    at = 0;
    for (size_t i = 0; i < st->ncats; i++) {
        for (uint32_t b = 0; b < st->cats[i].buckets; b++) {
            fw_status_bucket_t *bk = &st->cats[i].list[b];
            bk->bucket = b;
            bk->segment_id = bk->segment_bytes = -1;
            ProtobufCMessage *m;
            if (parse_msg(&fwpb__bucket_meta__descriptor, &gets[at++], &m) == 0) {
                Fwpb__BucketMeta *meta = (Fwpb__BucketMeta *)m;
                bk->has_meta = 1;
                bk->epoch = meta->epoch;
                bk->next_segment_id = meta->next_segment_id;
                protobuf_c_message_free_unpacked(m, NULL);
            }
            if (parse_msg(&fwpb__owner_info__descriptor, &gets[at++], &m) == 0) {
                copy_text(bk->owner, sizeof(bk->owner), ((Fwpb__OwnerInfo *)m)->node_id);
                protobuf_c_message_free_unpacked(m, NULL);
            }
        }
    }
    return 0;
}

/* copier/<destination>/<category>/<bucket>: the progress of every bucket of every known category.
 */
static int gather_copies(gather_t *g)
{
    fw_status_t *st = g->st;
    struct String_vector keys;
    if (children(&g->zk, "copier", &keys) < 0)
        return -1;
    int rc = 0;
    int *key_dest = calloc((size_t)keys.count + 1, sizeof(int));
    if (key_dest == NULL)
        rc = oom();
    for (int k = 0; rc == 0 && k < keys.count; k++) {
        char *url = dest_url(keys.data[k]);
        key_dest[k] = url != NULL ? add_dest(st, url, strlen(url)) : -1;
        free(url);
        if (key_dest[k] < 0)
            rc = oom();
    }
    for (size_t i = 0; rc == 0 && i < st->ncats; i++) {
        for (uint32_t b = 0; rc == 0 && b < st->cats[i].buckets; b++) {
            fw_status_bucket_t *bk = &st->cats[i].list[b];
            bk->copies = calloc(st->ndests ? st->ndests : 1, sizeof(*bk->copies));
            if (bk->copies == NULL) {
                rc = oom();
                break;
            }
            for (size_t d = 0; d < st->ndests; d++) {
                bk->copies[d].dest = (int)d;
                bk->copies[d].lag_bytes = bk->copies[d].lag_seconds = -1;
            }
        }
    }
    size_t total = 0;
    for (size_t i = 0; i < st->ncats; i++)
        total += (size_t)keys.count * st->cats[i].buckets;
    zget_t *gets = rc == 0 ? batch_new(g, total) : NULL;
    if (rc == 0 && gets == NULL)
        rc = oom();
    size_t at = 0;
    for (int k = 0; rc == 0 && k < keys.count; k++)
        for (size_t i = 0; rc == 0 && i < st->ncats; i++)
            for (uint32_t b = 0; rc == 0 && b < st->cats[i].buckets; b++)
                if ((gets[at++].path = zpath(&g->zk, "copier/%s/%s/%u", keys.data[k],
                                             st->cats[i].name, b)) == NULL)
                    rc = oom();
    if (rc == 0)
        rc = run_batch(g);
    at = 0;
    for (int k = 0; rc == 0 && k < keys.count; k++)
        for (size_t i = 0; i < st->ncats; i++)
            for (uint32_t b = 0; b < st->cats[i].buckets; b++) {
                ProtobufCMessage *m;
                if (parse_msg(&fwpb__copier_progress__descriptor, &gets[at++], &m) < 0)
                    continue;
                Fwpb__CopierProgress *p = (Fwpb__CopierProgress *)m;
                fw_status_copy_t *cp = &st->cats[i].list[b].copies[key_dest[k]];
                cp->has_progress = 1;
                cp->segment_id = p->segment_id;
                cp->offset = p->offset;
                cp->updated_ms = p->has_updated_ms ? p->updated_ms : 0;
                protobuf_c_message_free_unpacked(m, NULL);
            }
    free(key_dest);
    deallocate_String_vector(&keys);
    return rc;
}

/* ---- the nodes' own answers ---------------------------------------------------------------- */

/* host:port as long as a node's address and metrics address together (see metrics_target). */
#define TARGET_MAX                                                                                 \
    (sizeof(((fw_status_node_t *)0)->address) + sizeof(((fw_status_node_t *)0)->metrics))

typedef struct fetch_s {
    CURL *easy;
    fw_status_node_t *node;
    int is_metrics;
    int done;        /* the transfer ended: result says how */
    CURLcode result; /* CURLE_OK: an HTTP answer came whole */
    char error[CURL_ERROR_SIZE];
    char *body;
    size_t len, cap;
    int too_big, no_memory;
    char url[sizeof("http://") + TARGET_MAX + sizeof("/metrics")];
} fetch_t;

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    fetch_t *f = arg;
    size_t add = size * n;
    if (f->len + add + 1 > METRICS_MAX) {
        f->too_big = 1;
        return 0;
    }
    if (f->len + add + 1 > f->cap) {
        size_t cap = f->cap ? f->cap : 65536;
        while (cap < f->len + add + 1)
            cap *= 2;
        char *b = realloc(f->body, cap);
        if (b == NULL) {
            f->no_memory = 1;
            return 0;
        }
        f->body = b;
        f->cap = cap;
    }
    memcpy(f->body + f->len, p, add);
    f->len += add;
    f->body[f->len] = '\0';
    return add;
}

/* Why a transfer gave no whole answer, or NULL if it did. */
static const char *fetch_error(const fetch_t *f)
{
    if (!f->done)
        return "no answer";
    if (f->too_big)
        return "answer larger than 256 MiB";
    if (f->no_memory)
        return "out of memory";
    if (f->result == CURLE_OK)
        return NULL;
    return f->error[0] != '\0' ? f->error : curl_easy_strerror(f->result);
}

/* 1 if host[0..len) is 0.0.0.0, [::] or empty: a listener's wildcard, no host to ask. */
static int wildcard_host(const char *host, size_t len)
{
    char buf[64];
    if (len >= 2 && host[0] == '[' && host[len - 1] == ']') {
        host++;
        len -= 2;
    }
    if (len == 0)
        return 1;
    if (len >= sizeof(buf))
        return 0;
    memcpy(buf, host, len);
    buf[len] = '\0';
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, buf, &a4) == 1)
        return a4.s_addr == htonl(INADDR_ANY);
    return inet_pton(AF_INET6, buf, &a6) == 1 && IN6_IS_ADDR_UNSPECIFIED(&a6);
}

/*
 * Where to ask node n, as host:port. The metrics address is published as
 * bound, so --metrics 0.0.0.0:PORT (or [::]:PORT) names no host; asking it
 * would ask the local host, wrong for a node elsewhere. Then the host of
 * the node's advertised address goes with the metrics port. -1 if neither
 * names a host (a copier publishes its metrics address as its address).
 */
static int metrics_target(const fw_status_node_t *n, char *out, size_t cap)
{
    const char *port = strrchr(n->metrics, ':');
    if (port == NULL || !wildcard_host(n->metrics, (size_t)(port - n->metrics))) {
        snprintf(out, cap, "%s", n->metrics);
        return 0;
    }
    const char *aport = strrchr(n->address, ':');
    size_t hlen = aport != NULL ? (size_t)(aport - n->address) : strlen(n->address);
    if (wildcard_host(n->address, hlen))
        return -1;
    snprintf(out, cap, "%.*s%s", (int)hlen, n->address, port);
    return 0;
}

static int compare_categories(const void *a, const void *b)
{
    return strcmp(((const fw_status_category_t *)a)->name, ((const fw_status_category_t *)b)->name);
}

/* Which bucket of which category a sample is about; NULL if not one of ours. */
static fw_status_bucket_t *sample_bucket(fw_status_t *st, const fw_metrics_sample_t *s,
                                         fw_status_category_t **cat)
{
    const char *c = fw_metrics_sample_label(s, "category");
    const char *b = fw_metrics_sample_label(s, "bucket");
    fw_status_category_t key;
    if (c == NULL || strlen(c) >= sizeof(key.name))
        return NULL;
    memcpy(key.name, c, strlen(c) + 1);
    fw_status_category_t *found =
        bsearch(&key, st->cats, st->ncats, sizeof(*st->cats), compare_categories);
    if (found == NULL)
        return NULL;
    *cat = found;
    if (b == NULL)
        return found->list; /* a category-wide sample: the caller looks only at *cat */
    char *end;
    unsigned long n = strtoul(b, &end, 10);
    if (*end != '\0' || n >= found->buckets)
        return NULL;
    return &found->list[n];
}

/* One figure from a node's /metrics, for a place in the picture. */
typedef struct fig_s {
    double *at; /* NULL: a copier's claim of copy */
    double v;
    int sum;                /* added to what other nodes said (a category's traffic), else set */
    fw_status_copy_t *copy; /* a copier's lag: set only where this copier holds the claim */
} fig_t;

/*
 * What one node's /metrics says, gathered apart from the picture while its
 * body is parsed and merged only once the whole body has parsed: a body cut
 * short or bad half way adds nothing.
 */
typedef struct scan_s {
    fw_status_t *st; /* only read while parsing */
    fw_status_node_t *node;
    fig_t *figs;
    size_t nfigs, figs_cap;
    fw_status_sub_t *subs; /* a ptail's subscriptions */
    size_t nsubs, subs_cap, last_sub;
} scan_t;

static int scan_fig(scan_t *sc, double *at, double v, int sum, fw_status_copy_t *copy)
{
    if (sc->nfigs == sc->figs_cap) {
        size_t cap = sc->figs_cap ? 2 * sc->figs_cap : 256;
        fig_t *figs = realloc(sc->figs, cap * sizeof(*figs));
        if (figs == NULL)
            return -ENOMEM;
        sc->figs = figs;
        sc->figs_cap = cap;
    }
    sc->figs[sc->nfigs++] = (fig_t){.at = at, .v = v, .sum = sum, .copy = copy};
    return 0;
}

static int on_writer_sample(const fw_metrics_sample_t *s, scan_t *sc)
{
    fw_status_category_t *c;
    fw_status_bucket_t *b = sample_bucket(sc->st, s, &c);
    if (b == NULL)
        return 0;
    const char *w = fw_metrics_sample_label(s, "window");
    if (strcmp(s->name, "freeway_calligraphus_recent_records") == 0 && w != NULL)
        return scan_fig(sc, strcmp(w, "1m") == 0 ? &c->records_1m : &c->records_1h, s->value, 1,
                        NULL);
    if (strcmp(s->name, "freeway_calligraphus_recent_bytes") == 0 && w != NULL)
        return scan_fig(sc, strcmp(w, "1m") == 0 ? &c->bytes_1m : &c->bytes_1h, s->value, 1, NULL);
    if (strcmp(b->owner, sc->node->id) != 0)
        return 0; /* a former owner's leftovers */
    if (strcmp(s->name, "freeway_calligraphus_segment_id") == 0)
        return scan_fig(sc, &b->segment_id, s->value, 0, NULL);
    if (strcmp(s->name, "freeway_calligraphus_segment_bytes") == 0)
        return scan_fig(sc, &b->segment_bytes, s->value, 0, NULL);
    return 0;
}

static int on_copier_sample(const fw_metrics_sample_t *s, scan_t *sc)
{
    fw_status_category_t *c;
    fw_status_bucket_t *b = sample_bucket(sc->st, s, &c);
    const char *dest = fw_metrics_sample_label(s, "destination");
    if (b == NULL || dest == NULL || fw_metrics_sample_label(s, "bucket") == NULL)
        return 0;
    /* every copier's destinations are known from ZooKeeper */
    int d = find_dest(sc->st, dest, strlen(dest));
    if (d < 0 || b->copies == NULL)
        return 0;
    fw_status_copy_t *cp = &b->copies[d];
    if (strcmp(s->name, "freeway_copier_bucket_owned") == 0)
        return s->value == 1 ? scan_fig(sc, NULL, 0, 0, cp) : 0;
    if (strcmp(s->name, "freeway_copier_lag_bytes") == 0)
        return scan_fig(sc, &cp->lag_bytes, s->value, 0, cp);
    if (strcmp(s->name, "freeway_copier_lag_seconds") == 0)
        return scan_fig(sc, &cp->lag_seconds, s->value, 0, cp);
    return 0;
}

static int on_ptail_sample(const fw_metrics_sample_t *s, scan_t *sc)
{
    int bytes = strcmp(s->name, "freeway_ptail_lag_bytes") == 0;
    if (!bytes && strcmp(s->name, "freeway_ptail_lag_seconds") != 0)
        return 0;
    const char *consumer_label = fw_metrics_sample_label(s, "consumer");
    const char *category_label = fw_metrics_sample_label(s, "category");
    if (consumer_label == NULL || category_label == NULL)
        return 0;
    /* Compared as they will be kept: two names alike up to the cut are one. */
    char consumer[sizeof(sc->subs->consumer)], category[sizeof(sc->subs->category)];
    copy_text(consumer, sizeof(consumer), consumer_label);
    copy_text(category, sizeof(category), category_label);
    fw_status_sub_t *sub = NULL;
    /* A family lists one consumer's buckets together: try the last one first. */
    for (size_t n = 0; n < sc->nsubs && sub == NULL; n++) {
        fw_status_sub_t *x = &sc->subs[(sc->last_sub + n) % sc->nsubs];
        if (strcmp(x->consumer, consumer) == 0 && strcmp(x->category, category) == 0)
            sub = x;
    }
    if (sub == NULL) {
        if (sc->nsubs == sc->subs_cap) {
            size_t cap = sc->subs_cap ? 2 * sc->subs_cap : 16;
            fw_status_sub_t *subs = realloc(sc->subs, cap * sizeof(*subs));
            if (subs == NULL)
                return -ENOMEM;
            sc->subs = subs;
            sc->subs_cap = cap;
        }
        sub = &sc->subs[sc->nsubs++];
        memset(sub, 0, sizeof(*sub));
        sub->node = (int)(sc->node - sc->st->nodes);
        memcpy(sub->consumer, consumer, sizeof(consumer));
        memcpy(sub->category, category, sizeof(category));
    }
    sc->last_sub = (size_t)(sub - sc->subs);
    if (bytes) {
        sub->buckets++;
        sub->lag_bytes += s->value;
    } else if (s->value > sub->lag_seconds) {
        sub->lag_seconds = s->value;
    }
    return 0;
}

static int on_sample(const fw_metrics_sample_t *s, void *arg)
{
    scan_t *sc = arg;
    if (strcmp(sc->node->kind, "calligraphus") == 0)
        return on_writer_sample(s, sc);
    if (strcmp(sc->node->kind, "copier") == 0)
        return on_copier_sample(s, sc);
    return on_ptail_sample(s, sc);
}

static void add_to(double *sum, double v)
{
    *sum = *sum < 0 ? v : *sum + v;
}

/* Puts what sc gathered into the picture. 0, or -ENOMEM with the picture unchanged. */
static int scan_merge(scan_t *sc)
{
    fw_status_t *st = sc->st;
    if (sc->nsubs > 0) {
        fw_status_sub_t *subs = realloc(st->subs, (st->nsubs + sc->nsubs) * sizeof(*subs));
        if (subs == NULL)
            return -ENOMEM;
        st->subs = subs;
        memcpy(st->subs + st->nsubs, sc->subs, sc->nsubs * sizeof(*subs));
        st->nsubs += sc->nsubs;
    }
    /* Claims first: a copier's lag counts where it holds the claim, whatever the order of
     * the families in its body. */
    for (size_t i = 0; i < sc->nfigs; i++)
        if (sc->figs[i].at == NULL)
            copy_text(sc->figs[i].copy->copier, sizeof(sc->figs[i].copy->copier), sc->node->id);
    for (size_t i = 0; i < sc->nfigs; i++) {
        fig_t *f = &sc->figs[i];
        if (f->at == NULL || (f->copy != NULL && strcmp(f->copy->copier, sc->node->id) != 0))
            continue;
        if (f->sum)
            add_to(f->at, f->v);
        else
            *f->at = f->v;
    }
    return 0;
}

/* Takes one node's /metrics body (parsed in place) into st, all of it or none. */
static void take_metrics(fw_status_t *st, fw_status_node_t *node, fetch_t *f)
{
    char empty[1] = "";
    scan_t sc = {.st = st, .node = node};
    int bad = 0;
    int rc = fw_metrics_text_parse(f->body ? f->body : empty, f->len, on_sample, &sc, &bad);
    if (rc == 0)
        rc = scan_merge(&sc);
    free(sc.figs);
    free(sc.subs);
    if (rc == 0)
        node->metrics_read = 1;
    else if (rc == -EINVAL)
        fprintf(stderr, "freeway status: %s %s: bad /metrics (line %d)\n", node->kind, node->id,
                bad);
    else
        fprintf(stderr, "freeway status: %s %s: /metrics: %s\n", node->kind, node->id,
                strerror(-rc));
}

/* What the node's /readyz answer (or its failure) says of it. */
static void take_readyz(fw_status_node_t *n, const fetch_t *x, long code)
{
    const char *err = fetch_error(x);
    const char *body = x->body != NULL ? x->body : "";
    if (err != NULL) {
        n->ready = -1;
        snprintf(n->reason, sizeof(n->reason), "unreachable: %s", err);
    } else if (code == 200) {
        n->ready = 1;
        n->reason[0] = '\0';
    } else if (code == 503) {
        n->ready = 0;
        copy_bytes(n->reason, sizeof(n->reason), body, strcspn(body, "\r\n"));
    } else {
        n->ready = -1;
        snprintf(n->reason, sizeof(n->reason), "/readyz answered %ld", code);
    }
}

static void gather_http(gather_t *g)
{
    fw_status_t *st = g->st;
    CURLM *multi = curl_multi_init();
    fetch_t *f = calloc(2 * st->nnodes + 1, sizeof(*f));
    if (multi == NULL || f == NULL) {
        curl_multi_cleanup(multi);
        free(f);
        oom();
        return;
    }
    size_t nf = 0;
    for (size_t i = 0; i < st->nnodes; i++) {
        fw_status_node_t *n = &st->nodes[i];
        char target[TARGET_MAX];
        if (n->metrics[0] == '\0')
            continue;
        if (metrics_target(n, target, sizeof(target)) < 0) {
            snprintf(n->reason, sizeof(n->reason),
                     "metrics address %s names no host: give --metrics the node's own address",
                     n->metrics);
            continue;
        }
        for (int m = 0; m < 2; m++) {
            fetch_t *x = &f[nf++];
            x->node = n;
            x->is_metrics = m;
            snprintf(x->url, sizeof(x->url), "http://%s/%s", target, m ? "metrics" : "readyz");
            x->easy = curl_easy_init();
            if (x->easy == NULL) {
                x->done = x->no_memory = 1;
                continue;
            }
            curl_easy_setopt(x->easy, CURLOPT_URL, x->url);
            curl_easy_setopt(x->easy, CURLOPT_PRIVATE, x);
            curl_easy_setopt(x->easy, CURLOPT_ERRORBUFFER, x->error);
            curl_easy_setopt(x->easy, CURLOPT_WRITEFUNCTION, on_body);
            curl_easy_setopt(x->easy, CURLOPT_WRITEDATA, x);
            curl_easy_setopt(x->easy, CURLOPT_TIMEOUT_MS, (long)g->cfg->timeout);
            curl_easy_setopt(x->easy, CURLOPT_NOSIGNAL, 1L);
            curl_easy_setopt(x->easy, CURLOPT_PROTOCOLS_STR, "http");
            curl_easy_setopt(x->easy, CURLOPT_NOPROXY, "*");
            if (curl_multi_add_handle(multi, x->easy) != CURLM_OK) {
                curl_easy_cleanup(x->easy);
                x->easy = NULL;
                x->done = x->no_memory = 1;
            }
        }
    }
    int running = 1;
    while (running > 0) {
        CURLMcode mc = curl_multi_perform(multi, &running);
        if (mc != CURLM_OK) {
            fprintf(stderr, "freeway status: %s\n", curl_multi_strerror(mc));
            break; /* what did not end has no answer */
        }
        /* Each transfer's own outcome: a reset or a body cut short is no answer. */
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(multi, &left)) != NULL) {
            char *priv = NULL;
            if (msg->msg != CURLMSG_DONE ||
                curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv) != CURLE_OK ||
                priv == NULL)
                continue;
            fetch_t *x = (fetch_t *)priv;
            x->done = 1;
            x->result = msg->data.result;
        }
        if (running > 0)
            curl_multi_poll(multi, NULL, 0, 200, NULL);
    }
    for (size_t i = 0; i < nf; i++) {
        fetch_t *x = &f[i];
        fw_status_node_t *n = x->node;
        const char *err = fetch_error(x);
        long code = 0;
        if (err == NULL)
            curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &code);
        /* Each node's /readyz comes first: an unreachable node's reason already says why its
         * /metrics failed too. */
        if (!x->is_metrics)
            take_readyz(n, x, code);
        else if (err != NULL && n->ready != -1)
            fprintf(stderr, "freeway status: %s %s: /metrics: %s\n", n->kind, n->id, err);
        else if (err == NULL && code != 200)
            fprintf(stderr, "freeway status: %s %s: /metrics answered %ld\n", n->kind, n->id, code);
        else if (err == NULL)
            take_metrics(st, n, x);
        if (x->easy != NULL) {
            curl_multi_remove_handle(multi, x->easy);
            curl_easy_cleanup(x->easy);
        }
        free(x->body);
    }
    free(f);
    curl_multi_cleanup(multi);
}

/* ---- the command ------------------------------------------------------------------------------
 */

void fw_status_free(fw_status_t *st)
{
    for (size_t i = 0; i < st->ncats; i++) {
        for (uint32_t b = 0; st->cats[i].list != NULL && b < st->cats[i].buckets; b++)
            free(st->cats[i].list[b].copies);
        free(st->cats[i].list);
    }
    free(st->cats);
    free(st->nodes);
    for (size_t i = 0; i < st->ndests; i++)
        free(st->dests[i]);
    free(st->dests);
    free(st->subs);
    memset(st, 0, sizeof(*st));
}

static int gather(const status_cfg_t *cfg, fw_status_t *st)
{
    memset(st, 0, sizeof(*st));
    copy_text(st->zk, sizeof(st->zk), cfg->zk);
    gather_t g = {.cfg = cfg, .st = st};
    if (fw_cli_zk_connect(&g.zk, cfg->zk, NULL, (int)cfg->timeout) < 0)
        return -1;
    int rc = gather_nodes(&g);
    if (rc == 0)
        rc = gather_categories(&g);
    if (rc == 0)
        rc = gather_copies(&g);
    fw_cli_zk_close(&g.zk); /* runs any completions still out, so the batches can go */
    while (g.batches != NULL) {
        zbatch_t *next = g.batches->next;
        batch_free(g.batches);
        g.batches = next;
    }
    if (rc < 0)
        return -1;
    gather_http(&g);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    st->now_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    return 0;
}

static volatile sig_atomic_t interrupted;

static void on_interrupt(int sig)
{
    (void)sig;
    interrupted = 1;
}

int fw_cli_status(int argc, char **argv)
{
    status_cfg_t cfg;
    memset(&cfg, 0, sizeof(cfg));
    char err[256], **rest, *spare = NULL;
    int nrest;
    char **args = fw_cli_short_category(argc, argv, &spare);
    if (args == NULL)
        return 1;
    int rc = fw_config_parse(status_opts, &cfg, argc, args, &rest, &nrest, err, sizeof(err));
    if ((rc = fw_cli_parsed("status", rc, err, usage)) >= 0) {
        free(args);
        free(spare);
        fw_config_free(status_opts, &cfg);
        return rc;
    }
    int status = 0;
    if (nrest > 0) {
        fprintf(stderr, "freeway status: unexpected argument \"%s\"\n", rest[0]);
        status = 2;
    } else if (cfg.category != NULL && !fw_category_valid(cfg.category)) {
        fprintf(stderr, "freeway status: \"%s\" is not a category name\n", cfg.category);
        status = 2;
    } else if (cfg.timeout < 100 || (cfg.watch && cfg.interval < 100)) {
        fprintf(stderr, "freeway status: --timeout and --interval must be at least 100ms\n");
        status = 2;
    }
    if (status == 0) {
        zoo_set_debug_level(ZOO_LOG_LEVEL_ERROR);
        curl_global_init(CURL_GLOBAL_DEFAULT);
        signal(SIGINT, on_interrupt);
        signal(SIGTERM, on_interrupt);
        do {
            fw_status_t st;
            if (gather(&cfg, &st) < 0) {
                fw_status_free(&st);
                status = 1;
                if (!cfg.watch)
                    break;
            } else {
                if (cfg.watch && !cfg.json)
                    fputs("\033[H\033[2J", stdout); /* home, clear: a refreshing screen */
                if (cfg.json)
                    fw_status_print_json(&st, stdout);
                else
                    fw_status_print_table(&st, stdout);
                fflush(stdout);
                fw_status_free(&st);
                status = 0;
            }
            for (int64_t slept = 0; cfg.watch && !interrupted && slept < cfg.interval; slept += 50)
                usleep(50 * 1000);
        } while (cfg.watch && !interrupted);
        curl_global_cleanup();
    }
    free(args);
    free(spare);
    fw_config_free(status_opts, &cfg);
    return status;
}
