/*
 * cp_source: the writer's root the copier copies from, as a sorted list of
 * bucket directories (ROOT/<category>/<bucket>), found by scanning and kept
 * current through inotify on the root and category directories (new
 * categories and buckets) and on every bucket directory (new segments and
 * appends: inotify reports writes to a directory's files). The caller also
 * rescans on a timer, since events can be lost (queue overflow) or absent
 * (NFS): the scan is the correctness path, events only cut latency.
 */
#ifndef CP_SOURCE_H
#define CP_SOURCE_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "names.h"

typedef struct cp_source_s cp_source_t;

typedef struct cp_bucket_s {
    cp_source_t *source;
    char category[FW_CATEGORY_MAX + 1];
    uint32_t bucket;
    char dir[4096];
    /** "<category>/<bucket>": the bucket's name in ZooKeeper paths and logs. */
    char name[FW_CATEGORY_MAX + 16];
    uv_fs_event_t event;
    int watching;
    /** For the copier (its tasks of this bucket). */
    void *data;
} cp_bucket_t;

/* A bucket was found, or something changed in its directory. */
typedef void (*cp_source_cb)(cp_source_t *s, cp_bucket_t *b, int added);
typedef void (*cp_source_close_cb)(cp_source_t *s);

typedef struct cp_dir_watch_s cp_dir_watch_t;

struct cp_source_s {
    uv_loop_t *loop;
    char root[4096];
    cp_bucket_t **buckets; /* sorted by category, then bucket */
    size_t count;
    cp_dir_watch_t *dirs; /* watches on the root and each category directory */
    cp_source_cb cb;
    void *arg;
    int closing;
    int open_handles;
    cp_source_close_cb close_cb;
};

/* Starts nothing yet: call cp_source_scan. 0 or -ENAMETOOLONG. */
int cp_source_init(cp_source_t *s, uv_loop_t *loop, const char *root, cp_source_cb cb, void *arg);
/* Finds new categories and buckets (cb with added = 1). 0 or -errno of the root. */
int cp_source_scan(cp_source_t *s);
/* Stops watching; cb once every handle is closed (buckets are freed then). */
void cp_source_close(cp_source_t *s, cp_source_close_cb cb);

#endif
