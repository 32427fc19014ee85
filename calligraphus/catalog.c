/* The categories, from ZooKeeper, kept current by watches (see catalog.h). */
#include "catalog.h"

#include "log.h"
#include "pbtext.h"
#include "proto/meta.pb-c.h"

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

cal_category_t *cal_catalog_find(const cal_catalog_t *cat, const char *name)
{
    for (int i = 0; i < cat->count; i++)
        if (strcmp(cat->items[i]->name, name) == 0)
            return cat->items[i];
    return NULL;
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
    cal_category_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    snprintf(c->name, sizeof(c->name), "%s", name);
    c->catalog = cat;
    cat->items[cat->count++] = c;
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

static void on_category_read(fw_zk_t *zk, int rc, const char *data, size_t len,
                             const struct Stat *stat, void *arg)
{
    (void)zk;
    cal_category_t *c = arg;
    cal_catalog_t *cat = c->catalog;
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
    protobuf_c_message_free_unpacked(m, NULL);
    c->deleted = 0;
    if (!c->loaded)
        fw_log_info("calligraphus", "category %s: %u buckets", c->name, c->buckets);
    c->loaded = 1;
    cat->changed(cat, cat->arg);
}

static void read_category(cal_catalog_t *cat, cal_category_t *c)
{
    char path[300];
    snprintf(path, sizeof(path), "/categories/%s", c->name);
    /* The watch is asked for only when none is set, so they never pile up. */
    int watch = !c->data_watch;
    c->data_watch = 1;
    if (fw_zk_get(cat->zk, path, watch ? on_category_watch : NULL, c, on_category_read, c) < 0 &&
        watch)
        c->data_watch = 0;
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
    for (int i = 0; i < count; i++) {
        if (!fw_category_valid(names[i]))
            continue;
        cal_category_t *c = cal_catalog_find(cat, names[i]);
        if (c == NULL && (c = add(cat, names[i])) == NULL)
            continue; /* out of memory: the next sync tries again */
        if (!c->loaded || c->deleted || !c->data_watch)
            read_category(cat, c);
    }
    for (int i = 0; i < cat->count; i++) {
        cal_category_t *c = cat->items[i];
        int present = 0;
        for (int j = 0; j < count && !present; j++)
            present = strcmp(names[j], c->name) == 0;
        if (!present && !c->deleted && c->loaded) {
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

void cal_catalog_free(cal_catalog_t *cat)
{
    for (int i = 0; i < cat->count; i++)
        free(cat->items[i]);
    free(cat->items);
    cat->items = NULL;
    cat->count = cat->cap = 0;
}
