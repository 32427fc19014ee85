/* The categories, from ZooKeeper, kept current by watches; creating one (see catalog.h). */
#include "catalog.h"

#include "error.h"
#include "log.h"
#include "pbtext.h"
#include "proto/meta.pb-c.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cal_catalog_init(cal_catalog_t *cat, fw_zk_t *zk, cal_catalog_cb changed, void *arg)
{
    memset(cat, 0, sizeof(*cat));
    cat->zk = zk;
    cat->changed = changed;
    cat->arg = arg;
}

static uint64_t hash_name(const char *name)
{
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        h = (h ^ *p) * 0x100000001b3ULL;
    return h;
}

cal_category_t *cal_catalog_find(const cal_catalog_t *cat, const char *name)
{
    if (cat->table_cap == 0)
        return NULL;
    for (cal_category_t *c = cat->table[hash_name(name) & (cat->table_cap - 1)]; c != NULL;
         c = c->hash_next)
        if (strcmp(c->name, name) == 0)
            return c;
    return NULL;
}

/* Keeps the hash at most one entry per slot on average. 0 or -ENOMEM. */
static int grow_table(cal_catalog_t *cat)
{
    if ((size_t)cat->count < cat->table_cap)
        return 0;
    size_t cap = cat->table_cap ? cat->table_cap * 2 : 64;
    cal_category_t **table = calloc(cap, sizeof(*table));
    if (table == NULL)
        return -ENOMEM;
    for (int i = 0; i < cat->count; i++) {
        cal_category_t *c = cat->items[i];
        size_t slot = hash_name(c->name) & (cap - 1);
        c->hash_next = table[slot];
        table[slot] = c;
    }
    free(cat->table);
    cat->table = table;
    cat->table_cap = cap;
    return 0;
}

static cal_category_t *add(cal_catalog_t *cat, const char *name)
{
    if (cat->count == cat->cap) {
        int cap = cat->cap ? cat->cap * 2 : 16;
        cal_category_t **items = realloc(cat->items, (size_t)cap * sizeof(*items));
        if (items == NULL)
            return NULL;
        cat->items = items;
        cat->cap = cap;
    }
    if (grow_table(cat) < 0)
        return NULL;
    cal_category_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    snprintf(c->name, sizeof(c->name), "%s", name);
    c->catalog = cat;
    c->scribe_key_delim = -1;
    cat->items[cat->count++] = c;
    size_t slot = hash_name(name) & (cat->table_cap - 1);
    c->hash_next = cat->table[slot];
    cat->table[slot] = c;
    return c;
}

/* ---- one category's config ------------------------------------------------- */

static void read_category(cal_catalog_t *cat, cal_category_t *c);

static void on_category_watch(fw_zk_t *zk, int rc, int type, const char *path, void *arg)
{
    (void)zk;
    (void)type;
    (void)path;
    cal_category_t *c = arg;
    c->data_watch = 0;
    if (rc == ZOK)
        read_category(c->catalog, c);
}

/* The delimiter byte of a config, or -1; an invalid one is logged once and taken as absent. */
static int key_delimiter(cal_category_t *c, const char *value)
{
    if (value == NULL || value[0] == '\0') {
        c->delim_warned = 0;
        return -1;
    }
    if (value[1] == '\0') {
        c->delim_warned = 0;
        return (unsigned char)value[0];
    }
    if (!c->delim_warned)
        fw_log_warn("calligraphus",
                    "category %s: scribe_key_delimiter is %zu bytes, not one; Scribe messages "
                    "get no key",
                    c->name, strlen(value));
    c->delim_warned = 1;
    return -1;
}

/*
 * Takes the answer to a get of categories/<name> into c: what every read
 * of a category's node ends in, the watch's and a create's.
 */
static void take_read(cal_catalog_t *cat, cal_category_t *c, int rc, const char *data, size_t len,
                      const struct Stat *stat)
{
    if (rc != ZOK)
        c->data_watch = 0; /* a failed get sets no watch */
    if (rc == ZNONODE) {
        if (!c->deleted) {
            c->deleted = 1;
            fw_log_info("calligraphus", "category %s deleted", c->name);
            cat->changed(cat, cat->arg);
        }
        return;
    }
    if (rc != ZOK)
        return; /* the next sync reads it again */
    char err[160];
    ProtobufCMessage *m;
    if (fw_pbtext_parse(&fwpb__category_config__descriptor, data, len, &m, err, sizeof(err)) < 0) {
        fw_log_error("calligraphus", "category %s: unreadable config (%s); ignored", c->name, err);
        return;
    }
    Fwpb__CategoryConfig *cfg = (Fwpb__CategoryConfig *)m;
    /* Deleted and created again (we may not have seen it gone): a new
     * category under the old name, which may have fewer buckets. */
    int recreated = c->loaded && stat->czxid != c->czxid;
    if (recreated)
        fw_log_info("calligraphus", "category %s created again: %u buckets", c->name, cfg->buckets);
    if (c->loaded && !recreated && cfg->buckets < c->buckets)
        fw_log_error("calligraphus", "category %s: bucket count fell from %u to %u; keeping %u",
                     c->name, c->buckets, cfg->buckets, c->buckets);
    else
        c->buckets = cfg->buckets;
    c->czxid = stat->czxid;
    c->roll_bytes = cfg->roll_bytes;
    c->roll_age_ms = (int64_t)cfg->roll_age_ms;
    c->sync_interval_ms = cfg->sync_interval_ms;
    c->max_record_bytes = cfg->max_record_bytes;
    c->codec = cfg->codec;
    c->scribe_key_delim = key_delimiter(c, cfg->scribe_key_delimiter);
    protobuf_c_message_free_unpacked(m, NULL);
    c->deleted = 0;
    if (!c->loaded)
        fw_log_info("calligraphus", "category %s: %u buckets", c->name, c->buckets);
    c->loaded = 1;
    cat->changed(cat, cat->arg);
}

static void on_category_read(fw_zk_t *zk, int rc, const char *data, size_t len,
                             const struct Stat *stat, void *arg)
{
    (void)zk;
    cal_category_t *c = arg;
    take_read(c->catalog, c, rc, data, len, stat);
}

/* Gets categories/<name> into c with cb, with a watch unless one is set already. */
static int get_category(cal_catalog_t *cat, cal_category_t *c, fw_zk_data_cb cb, void *arg)
{
    char path[300];
    snprintf(path, sizeof(path), "/categories/%s", c->name);
    /* The watch is asked for only when none is set, so they never pile up. */
    int watch = !c->data_watch;
    c->data_watch = 1;
    int rc = fw_zk_get(cat->zk, path, watch ? on_category_watch : NULL, c, cb, arg);
    if (rc < 0 && watch)
        c->data_watch = 0;
    return rc;
}

static void read_category(cal_catalog_t *cat, cal_category_t *c)
{
    (void)get_category(cat, c, on_category_read, c);
}

/* ---- the list -------------------------------------------------------------------- */

static void list_categories(cal_catalog_t *cat);

static void on_children_watch(fw_zk_t *zk, int rc, int type, const char *path, void *arg)
{
    (void)zk;
    (void)type;
    (void)path;
    cal_catalog_t *cat = arg;
    cat->children_watch = 0;
    if (rc == ZOK)
        list_categories(cat);
}

static void on_children(fw_zk_t *zk, int rc, int count, const char *const *names, void *arg)
{
    (void)zk;
    cal_catalog_t *cat = arg;
    if (rc != ZOK) {
        cat->children_watch = 0;
        return;
    }
    cat->listed = 1;
    uint64_t listing = ++cat->listings;
    for (int i = 0; i < count; i++) {
        if (!fw_category_valid(names[i]))
            continue;
        cal_category_t *c = cal_catalog_find(cat, names[i]);
        if (c == NULL && (c = add(cat, names[i])) == NULL)
            continue; /* out of memory: the next sync tries again */
        c->listing = listing;
        if (!c->loaded || c->deleted || !c->data_watch)
            read_category(cat, c);
    }
    /* Whatever this listing did not name is gone. */
    for (int i = 0; i < cat->count; i++) {
        cal_category_t *c = cat->items[i];
        if (c->listing != listing && !c->deleted && c->loaded) {
            c->deleted = 1;
            fw_log_info("calligraphus", "category %s deleted", c->name);
            cat->changed(cat, cat->arg);
        }
    }
}

static void list_categories(cal_catalog_t *cat)
{
    int watch = !cat->children_watch;
    cat->children_watch = 1;
    if (fw_zk_get_children(cat->zk, "/categories", watch ? on_children_watch : NULL, cat,
                           on_children, cat) < 0 &&
        watch)
        cat->children_watch = 0;
}

void cal_catalog_sync(cal_catalog_t *cat)
{
    if (!fw_zk_connected(cat->zk))
        return;
    if (!cat->children_watch || !cat->listed)
        list_categories(cat);
    for (int i = 0; i < cat->count; i++) {
        cal_category_t *c = cat->items[i];
        if (!c->deleted && (!c->data_watch || !c->loaded))
            read_category(cat, c);
    }
}

/* ---- creating a category ------------------------------------------------------------ */

/*
 * A create under way: exists? → buckets/<name> → its bucket nodes, CREATE_BATCH
 * to a multi (one at a time after a batch meets a node that exists) →
 * categories/ → categories/<name> → a read of it into the catalog. Each step
 * is one ZooKeeper operation whose callback takes the next, so the create
 * lives exactly as long as some operation of it is answered.
 */
#define CREATE_BATCH 256 /* bucket nodes per multi, as `freeway category create` makes them */

typedef struct create_waiter_s {
    cal_catalog_create_cb cb;
    void *arg;
    struct create_waiter_s *next;
} create_waiter_t;

typedef struct cal_create_s {
    cal_catalog_t *cat;
    struct cal_create_s *next; /* in cat->creates */
    char name[FW_CATEGORY_MAX + 1];
    uint32_t buckets;
    uint32_t done;            /* buckets/<name>/<b> exists for every b below */
    uint32_t batch;           /* nodes in the multi under way */
    uint32_t one_end;         /* above done: create [done, one_end) one node at a time */
    fw_buf_t meta;            /* a new bucket's BucketMeta, as text */
    create_waiter_t *waiters; /* in the order of the calls */
    create_waiter_t **tail;
} cal_create_t;

static void create_free(cal_create_t *cr)
{
    while (cr->waiters != NULL) {
        create_waiter_t *w = cr->waiters;
        cr->waiters = w->next;
        free(w);
    }
    fw_buf_free(&cr->meta);
    free(cr);
}

/* Ends the create: it is forgotten first (a callback may create the same name again). */
static void create_end(cal_create_t *cr, int status, cal_category_t *c)
{
    cal_catalog_t *cat = cr->cat;
    for (cal_create_t **p = &cat->creates; *p != NULL; p = &(*p)->next) {
        if (*p == cr) {
            *p = cr->next;
            break;
        }
    }
    create_waiter_t *w = cr->waiters;
    cr->waiters = NULL;
    create_free(cr);
    while (w != NULL) {
        create_waiter_t *next = w->next;
        w->cb(cat, status, status == 0 ? c : NULL, w->arg);
        free(w);
        w = next;
    }
}

/* An answer from ZooKeeper that ends the create: logged here, a freeway code to the callers. */
static void create_fail(cal_create_t *cr, int zrc, const char *what)
{
    fw_log_warn("calligraphus", "creating category %s: %s: %s", cr->name, what, zerror(zrc));
    int status = zrc == ZNOAUTH ? -EACCES : zrc == ZCLOSING ? FW_ESHUTTING_DOWN : FW_ERETRY_LATER;
    create_end(cr, status, NULL);
}

/* An operation that could not even be issued (rc from fw_zk, < 0) ends the create. */
static void create_issue_failed(cal_create_t *cr, int rc, const char *what)
{
    fw_log_warn("calligraphus", "creating category %s: %s: %s", cr->name, what, fw_strerror(rc));
    int status = rc == -ENOMEM ? -ENOMEM : rc == -ESHUTDOWN ? FW_ESHUTTING_DOWN : FW_ERETRY_LATER;
    create_end(cr, status, NULL);
}

static void on_create_read(fw_zk_t *zk, int rc, const char *data, size_t len,
                           const struct Stat *stat, void *arg)
{
    (void)zk;
    cal_create_t *cr = arg;
    cal_catalog_t *cat = cr->cat;
    cal_category_t *c = cal_catalog_find(cat, cr->name); /* added before the read; never removed */
    take_read(cat, c, rc, data, len, stat);
    if (rc == ZOK && c->loaded && !c->deleted) {
        create_end(cr, 0, c);
    } else if (rc == ZNONODE) {
        fw_log_warn("calligraphus", "creating category %s: deleted again before it was read",
                    cr->name);
        create_end(cr, FW_EUNKNOWN_CATEGORY, NULL);
    } else if (rc == ZOK) {
        create_end(cr, FW_ERETRY_LATER, NULL); /* an unreadable config, logged by take_read */
    } else {
        create_fail(cr, rc, "reading it");
    }
}

/* categories/<name> exists: the catalog reads it (and watches it) before the callers hear. */
static void create_read(cal_create_t *cr)
{
    cal_catalog_t *cat = cr->cat;
    cal_category_t *c = cal_catalog_find(cat, cr->name);
    if (c == NULL && (c = add(cat, cr->name)) == NULL) {
        create_end(cr, -ENOMEM, NULL);
        return;
    }
    int rc = get_category(cat, c, on_create_read, cr);
    if (rc < 0)
        create_issue_failed(cr, rc, "reading it");
}

static void on_create_category(fw_zk_t *zk, int rc, const char *path, void *arg)
{
    (void)zk;
    (void)path;
    cal_create_t *cr = arg;
    if (rc == ZOK)
        fw_log_info("calligraphus", "category %s created with %u buckets", cr->name, cr->buckets);
    if (rc == ZOK || rc == ZNODEEXISTS) /* someone else was first: theirs stands */
        create_read(cr);
    else
        create_fail(cr, rc, "creating its node");
}

static void on_create_parent(fw_zk_t *zk, int rc, void *arg)
{
    cal_create_t *cr = arg;
    if (rc != ZOK) {
        create_fail(cr, rc, "creating categories/");
        return;
    }
    /* The schema's defaults for everything but the bucket count, as the CLI's create. */
    Fwpb__CategoryConfig cfg = FWPB__CATEGORY_CONFIG__INIT;
    cfg.buckets = cr->buckets;
    fw_buf_t text = FW_BUF_INIT;
    char path[300];
    snprintf(path, sizeof(path), "/categories/%s", cr->name);
    int err = fw_pbtext_format(&cfg.base, &text);
    if (err == 0)
        err = fw_zk_create(zk, path, text.data, text.len, 0, on_create_category, cr);
    fw_buf_free(&text);
    if (err < 0)
        create_issue_failed(cr, err, "creating its node");
}

static void create_buckets(cal_create_t *cr);

static void on_create_batch(fw_zk_t *zk, int rc, int count, const fw_zk_op_result_t *results,
                            void *arg)
{
    (void)zk;
    (void)count;
    (void)results;
    cal_create_t *cr = arg;
    if (rc == ZOK) {
        cr->done += cr->batch;
    } else if (rc == ZNODEEXISTS) {
        /* Left by an earlier try (or a deleted category): keep what exists, make the rest. */
        cr->one_end = cr->done + cr->batch;
    } else {
        create_fail(cr, rc, "creating bucket nodes");
        return;
    }
    create_buckets(cr);
}

static void on_create_one(fw_zk_t *zk, int rc, const char *path, void *arg)
{
    (void)zk;
    (void)path;
    cal_create_t *cr = arg;
    if (rc != ZOK && rc != ZNODEEXISTS) {
        create_fail(cr, rc, "creating a bucket node");
        return;
    }
    cr->done++;
    create_buckets(cr);
}

/* The next step of the bucket nodes, or, once they all exist, the category node's. */
static void create_buckets(cal_create_t *cr)
{
    fw_zk_t *zk = cr->cat->zk;
    int rc;
    if (cr->done < cr->one_end) {
        char path[300];
        snprintf(path, sizeof(path), "/buckets/%s/%" PRIu32, cr->name, cr->done);
        rc = fw_zk_create(zk, path, cr->meta.data, cr->meta.len, 0, on_create_one, cr);
    } else if (cr->done == cr->buckets) {
        rc = fw_zk_ensure_path(zk, "/categories", on_create_parent, cr);
    } else {
        cr->batch = cr->buckets - cr->done < CREATE_BATCH ? cr->buckets - cr->done : CREATE_BATCH;
        static char paths[CREATE_BATCH][300]; /* copied by fw_zk_multi; the loop thread's own */
        fw_zk_op_t ops[CREATE_BATCH];
        for (uint32_t i = 0; i < cr->batch; i++) {
            snprintf(paths[i], sizeof(paths[i]), "/buckets/%s/%" PRIu32, cr->name, cr->done + i);
            ops[i] = fw_zk_op_create(paths[i], cr->meta.data, cr->meta.len, 0);
        }
        rc = fw_zk_multi(zk, ops, (int)cr->batch, on_create_batch, cr);
    }
    if (rc < 0)
        create_issue_failed(cr, rc, "creating its nodes");
}

static void on_create_dir(fw_zk_t *zk, int rc, void *arg)
{
    (void)zk;
    cal_create_t *cr = arg;
    if (rc == ZOK)
        create_buckets(cr);
    else
        create_fail(cr, rc, "creating buckets/");
}

static void on_create_exists(fw_zk_t *zk, int rc, const struct Stat *stat, void *arg)
{
    (void)stat;
    cal_create_t *cr = arg;
    if (rc == ZOK) {
        create_read(cr); /* nothing to do but to know it */
        return;
    }
    if (rc != ZNONODE) {
        create_fail(cr, rc, "looking for it");
        return;
    }
    char path[300];
    snprintf(path, sizeof(path), "/buckets/%s", cr->name);
    int err = fw_zk_ensure_path(zk, path, on_create_dir, cr);
    if (err < 0)
        create_issue_failed(cr, err, "creating buckets/");
}

int cal_catalog_create(cal_catalog_t *cat, const char *name, uint32_t buckets,
                       cal_catalog_create_cb cb, void *arg)
{
    if (!fw_category_valid(name))
        return FW_EBAD_CATEGORY;
    if (buckets < 1 || buckets > FW_BUCKETS_MAX || cb == NULL)
        return -EINVAL;
    create_waiter_t *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return -ENOMEM;
    w->cb = cb;
    w->arg = arg;
    for (cal_create_t *cr = cat->creates; cr != NULL; cr = cr->next) {
        if (strcmp(cr->name, name) == 0) {
            *cr->tail = w;
            cr->tail = &w->next;
            return 0;
        }
    }
    cal_create_t *cr = calloc(1, sizeof(*cr));
    if (cr == NULL) {
        free(w);
        return -ENOMEM;
    }
    cr->cat = cat;
    snprintf(cr->name, sizeof(cr->name), "%s", name);
    cr->buckets = buckets;
    cr->waiters = w;
    cr->tail = &w->next;
    Fwpb__BucketMeta meta = FWPB__BUCKET_META__INIT;
    meta.epoch = 0;
    meta.next_segment_id = 1;
    int rc = fw_pbtext_format(&meta.base, &cr->meta);
    char path[300];
    snprintf(path, sizeof(path), "/categories/%s", name);
    if (rc == 0)
        rc = fw_zk_exists(cat->zk, path, NULL, NULL, on_create_exists, cr);
    if (rc < 0) {
        create_free(cr);
        return rc;
    }
    cr->next = cat->creates;
    cat->creates = cr;
    return 0;
}

void cal_catalog_free(cal_catalog_t *cat)
{
    /* Every create has ended by now (its ZooKeeper callbacks all ran); this is for safety. */
    while (cat->creates != NULL) {
        cal_create_t *cr = cat->creates;
        cat->creates = cr->next;
        create_free(cr);
    }
    for (int i = 0; i < cat->count; i++)
        free(cat->items[i]);
    free(cat->items);
    free(cat->table);
    cat->items = NULL;
    cat->table = NULL;
    cat->count = cat->cap = 0;
    cat->table_cap = 0;
}
