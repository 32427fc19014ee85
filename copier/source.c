/* Bucket directories of the source root (see source.h). */
#include "source.h"

#include "log.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct cp_dir_watch_s {
    cp_dir_watch_t *next;
    cp_source_t *source;
    char path[4096];
    uv_fs_event_t event;
};

int cp_source_init(cp_source_t *s, uv_loop_t *loop, const char *root, cp_source_cb cb, void *arg)
{
    memset(s, 0, sizeof(*s));
    if (strlen(root) >= sizeof(s->root))
        return -ENAMETOOLONG;
    snprintf(s->root, sizeof(s->root), "%s", root);
    s->loop = loop;
    s->cb = cb;
    s->arg = arg;
    return 0;
}

static void finish_close(cp_source_t *s)
{
    {
        for (size_t i = 0; i < s->count; i++)
            free(s->buckets[i]);
        free(s->buckets);
        s->buckets = NULL;
        s->count = 0;
        while (s->dirs != NULL) {
            cp_dir_watch_t *w = s->dirs;
            s->dirs = w->next;
            free(w);
        }
        s->close_cb(s);
    }
}

static void on_handle_closed(uv_handle_t *h)
{
    cp_source_t *s = h->data;
    if (--s->open_handles == 0)
        finish_close(s);
}

/* ---- watches --------------------------------------------------------------------- */

static void on_dir_event(uv_fs_event_t *h, const char *name, int events, int status)
{
    (void)name;
    (void)events;
    (void)status;
    cp_dir_watch_t *w = h->data;
    if (!w->source->closing)
        cp_source_scan(w->source);
}

static void watch_dir(cp_source_t *s, const char *path)
{
    for (cp_dir_watch_t *w = s->dirs; w != NULL; w = w->next)
        if (strcmp(w->path, path) == 0)
            return;
    cp_dir_watch_t *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return;
    w->source = s;
    snprintf(w->path, sizeof(w->path), "%s", path);
    uv_fs_event_init(s->loop, &w->event);
    w->event.data = w;
    s->open_handles++;
    w->next = s->dirs;
    s->dirs = w;
    /* Without inotify (a full watch table, NFS) the caller's rescans still find everything. */
    if (uv_fs_event_start(&w->event, on_dir_event, path, 0) < 0)
        fw_log_debug("copier", "no inotify watch on %s: relying on the poll", path);
}

static void on_bucket_event(uv_fs_event_t *h, const char *name, int events, int status)
{
    (void)name;
    (void)events;
    (void)status;
    cp_bucket_t *b = h->data;
    if (!b->source->closing)
        b->source->cb(b->source, b, 0);
}

/* ---- scanning -------------------------------------------------------------------- */

static int compare_buckets(const void *a, const void *b)
{
    const cp_bucket_t *x = *(cp_bucket_t *const *)a, *y = *(cp_bucket_t *const *)b;
    int c = strcmp(x->category, y->category);
    if (c != 0)
        return c;
    return x->bucket < y->bucket ? -1 : x->bucket > y->bucket;
}

static cp_bucket_t *find(const cp_source_t *s, const char *category, uint32_t bucket)
{
    if (s->count == 0)
        return NULL; /* bsearch wants a real array */
    cp_bucket_t key;
    snprintf(key.category, sizeof(key.category), "%.128s", category);
    key.bucket = bucket;
    cp_bucket_t *kp = &key;
    cp_bucket_t **found = bsearch(&kp, s->buckets, s->count, sizeof(*s->buckets), compare_buckets);
    return found ? *found : NULL;
}

static int parse_bucket(const char *name, uint32_t *out)
{
    if (name[0] == '\0' || strlen(name) > 5)
        return -EINVAL;
    uint32_t v = 0;
    for (const char *p = name; *p; p++) {
        if (*p < '0' || *p > '9')
            return -EINVAL;
        v = v * 10 + (uint32_t)(*p - '0');
    }
    if (v >= FW_BUCKETS_MAX || (name[0] == '0' && name[1] != '\0'))
        return -EINVAL;
    *out = v;
    return 0;
}

static void add_bucket(cp_source_t *s, const char *category, uint32_t bucket, const char *dir)
{
    cp_bucket_t *b = calloc(1, sizeof(*b));
    cp_bucket_t **grown = realloc(s->buckets, (s->count + 1) * sizeof(*grown));
    if (b == NULL || grown == NULL) {
        free(b);
        if (grown != NULL)
            s->buckets = grown;
        return;
    }
    s->buckets = grown;
    b->source = s;
    snprintf(b->category, sizeof(b->category), "%.128s", category);
    b->bucket = bucket;
    snprintf(b->dir, sizeof(b->dir), "%s", dir);
    snprintf(b->name, sizeof(b->name), "%.128s/%" PRIu32, category, bucket);
    uv_fs_event_init(s->loop, &b->event);
    b->event.data = b;
    s->open_handles++;
    b->watching = uv_fs_event_start(&b->event, on_bucket_event, dir, 0) == 0;
    s->buckets[s->count++] = b;
    qsort(s->buckets, s->count, sizeof(*s->buckets), compare_buckets);
    s->cb(s, b, 1);
}

static void scan_category(cp_source_t *s, const char *category, const char *path)
{
    DIR *d = opendir(path);
    if (d == NULL)
        return;
    watch_dir(s, path);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        uint32_t bucket;
        if (parse_bucket(e->d_name, &bucket) < 0 || find(s, category, bucket) != NULL)
            continue;
        char dir[4096];
        struct stat st;
        if ((size_t)snprintf(dir, sizeof(dir), "%s/%s", path, e->d_name) >= sizeof(dir) ||
            stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
            continue;
        add_bucket(s, category, bucket, dir);
    }
    closedir(d);
}

int cp_source_scan(cp_source_t *s)
{
    if (s->closing)
        return 0;
    DIR *d = opendir(s->root);
    if (d == NULL)
        return -errno;
    watch_dir(s, s->root);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!fw_category_valid(e->d_name))
            continue;
        char path[4096];
        struct stat st;
        if ((size_t)snprintf(path, sizeof(path), "%s/%s", s->root, e->d_name) >= sizeof(path) ||
            stat(path, &st) < 0 || !S_ISDIR(st.st_mode))
            continue;
        scan_category(s, e->d_name, path);
    }
    closedir(d);
    return 0;
}

void cp_source_close(cp_source_t *s, cp_source_close_cb cb)
{
    s->closing = 1;
    s->close_cb = cb;
    if (s->open_handles == 0) {
        finish_close(s);
        return;
    }
    /* The close callback frees by the source, not by the handle's owner. */
    for (size_t i = 0; i < s->count; i++) {
        s->buckets[i]->event.data = s;
        uv_close((uv_handle_t *)&s->buckets[i]->event, on_handle_closed);
    }
    for (cp_dir_watch_t *w = s->dirs; w != NULL; w = w->next) {
        w->event.data = s;
        uv_close((uv_handle_t *)&w->event, on_handle_closed);
    }
}
