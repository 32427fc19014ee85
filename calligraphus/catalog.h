/*
 * cal_catalog: the categories as ZooKeeper says they are (categories/<name>,
 * pbtext CategoryConfig), kept current through watches. It knows nothing of
 * buckets' owners; the node reads it to decide what to own and to validate
 * blocks.
 *
 * Watches are re-armed by cal_catalog_sync, which the node calls on every
 * new session and from its periodic tick, so an operation lost to a
 * connection loss is simply tried again.
 */
#ifndef CAL_CATALOG_H
#define CAL_CATALOG_H

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
    /* the owner's per-category state */
    void *data;
} cal_category_t;

/* Something changed: a category appeared, changed, or was deleted. */
typedef void (*cal_catalog_cb)(cal_catalog_t *cat, void *arg);

struct cal_catalog_s {
    fw_zk_t *zk;
    cal_category_t **items;
    int count, cap;
    int children_watch; /* the watch on categories/ is asked for or set */
    int listed;         /* categories/ was listed at least once */
    cal_catalog_cb changed;
    void *arg;
};

void cal_catalog_init(cal_catalog_t *cat, fw_zk_t *zk, cal_catalog_cb changed, void *arg);
/* (Re-)arms the watches and reads what is not known; call on CONNECTED and periodically. */
void cal_catalog_sync(cal_catalog_t *cat);
cal_category_t *cal_catalog_find(const cal_catalog_t *cat, const char *name);
/*
 * Frees everything. Call it after the session's fw_zk_close callback, when
 * no ZooKeeper callback can still arrive. Entries live until then (a deleted
 * category keeps its entry, marked deleted, so pointers stay valid).
 */
void cal_catalog_free(cal_catalog_t *cat);

#endif
