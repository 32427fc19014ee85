/*
 * cal_catalog: the categories as ZooKeeper says they are (categories/<name>,
 * pbtext CategoryConfig), kept current through watches. It knows nothing of
 * buckets' owners; the node reads it to decide what to own and to validate
 * blocks.
 *
 * Watches are re-armed by cal_catalog_sync, which the node calls on every
 * new session and from its periodic tick, so an operation lost to a
 * connection loss is simply tried again.
 *
 * It also creates categories (cal_catalog_create), for the Scribe listener's
 * "unknown categories are created with defaults" policy, laid out in
 * ZooKeeper as `freeway category create` lays them out.
 *
 * Entries are found by name through a hash (cal_catalog_find is O(1): the
 * Scribe path looks a category up per message, and thousands of categories
 * are normal).
 */
#ifndef CAL_CATALOG_H
#define CAL_CATALOG_H

#include <stddef.h>
#include <stdint.h>

#include "names.h"
#include "zk.h"

typedef struct cal_catalog_s cal_catalog_t;

typedef struct cal_category_s {
    cal_catalog_t *catalog;
    char name[FW_CATEGORY_MAX + 1];
    int loaded;     /* the config below was read at least once */
    int deleted;    /* the node is gone; the entry stays until the owner drops it */
    int data_watch; /* a watch on categories/<name> is asked for or set */
    int64_t czxid;  /* of categories/<name>: another one means deleted and created again */
    /* CategoryConfig */
    uint32_t buckets;
    uint64_t roll_bytes;
    int64_t roll_age_ms;
    uint32_t sync_interval_ms;
    uint32_t max_record_bytes;
    int codec;
    int scribe_key_delim; /* the delimiter byte 0..255, or -1: no key */
    /* the owner's per-category state */
    void *data;
    /* the catalog's own */
    struct cal_category_s *hash_next; /* the next entry in the same hash slot */
    uint64_t listing;                 /* the last listing of categories/ that named it */
    int delim_warned;                 /* an invalid scribe_key_delimiter was logged */
} cal_category_t;

/* Something changed: a category appeared, changed, or was deleted. */
typedef void (*cal_catalog_cb)(cal_catalog_t *cat, void *arg);

/*
 * The end of a cal_catalog_create, on the loop. status 0: categories/<name>
 * exists (made now or by someone else, with whatever bucket count its maker
 * chose) and the catalog has read it: c is its entry, loaded and not
 * deleted, as cal_catalog_find now finds it (c->data is set if the changed
 * callback sets it). Else c is NULL and status is FW_ERETRY_LATER (ZooKeeper
 * could not do it now: no session, a lost connection, an unreadable config;
 * nodes made so far stay and a later create goes on from them),
 * FW_EUNKNOWN_CATEGORY (deleted again before it could be read), -EACCES
 * (this identity may not create there), FW_ESHUTTING_DOWN (the session was
 * closed) or -ENOMEM. Failures are logged by the catalog (with ZooKeeper's
 * reason) before the callback runs.
 */
typedef void (*cal_catalog_create_cb)(cal_catalog_t *cat, int status, cal_category_t *c, void *arg);

struct cal_create_s;

struct cal_catalog_s {
    fw_zk_t *zk;
    cal_category_t **items; /* in the order they were first seen */
    int count, cap;
    cal_category_t **table;       /* hash of items by name, chained through hash_next */
    size_t table_cap;             /* a power of two, or 0 */
    uint64_t listings;            /* listings of categories/ answered */
    int children_watch;           /* the watch on categories/ is asked for or set */
    int listed;                   /* categories/ was listed at least once */
    struct cal_create_s *creates; /* creates under way, one per name */
    cal_catalog_cb changed;
    void *arg;
};

void cal_catalog_init(cal_catalog_t *cat, fw_zk_t *zk, cal_catalog_cb changed, void *arg);
/* (Re-)arms the watches and reads what is not known; call on CONNECTED and periodically. */
void cal_catalog_sync(cal_catalog_t *cat);
/* The entry of name (maybe not loaded yet, or deleted), or NULL. O(1). */
cal_category_t *cal_catalog_find(const cal_catalog_t *cat, const char *name);
/*
 * Creates category name with buckets buckets and the schema's defaults for
 * everything else (as `freeway category create NAME --buckets N` does): the
 * nodes buckets/<name>/<b> (BucketMeta: epoch 0, next segment id 1) first,
 * existing ones kept, then categories/<name>, so a watcher never sees the
 * category without its buckets. A category that exists already (someone else
 * created it, maybe with another bucket count) is success and is left as it
 * is. Returns 0, after which cb runs exactly once, later, on the loop (see
 * cal_catalog_create_cb); or an error, and cb never runs: FW_EBAD_CATEGORY
 * for a name that is not [A-Za-z0-9_.-]{1,128} (checked before anything is
 * asked of ZooKeeper), -EINVAL for buckets outside 1..FW_BUCKETS_MAX (or
 * no cb), -ENOMEM, or fw_zk's own error (-ESHUTDOWN after fw_zk_close).
 *
 * Creates of one name are coalesced: while one is under way, another call
 * for that name (whatever its bucket count) issues nothing and its cb runs
 * with the first one's result, after it.
 */
int cal_catalog_create(cal_catalog_t *cat, const char *name, uint32_t buckets,
                       cal_catalog_create_cb cb, void *arg);
/*
 * Frees everything. Call it after the session's fw_zk_close callback, when
 * no ZooKeeper callback can still arrive (so every create has ended).
 * Entries live until then (a deleted category keeps its entry, marked
 * deleted, so pointers stay valid).
 */
void cal_catalog_free(cal_catalog_t *cat);

#endif
