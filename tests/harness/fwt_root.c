/* Reading stored records back for end-to-end checks (see fwt_root.h). */
#include "fwt_root.h"

#include "fwtest.h"
#include "names.h"
#include "segment.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int compare_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void read_bucket(const char *dir, uint32_t bucket, fwt_record_fn fn, void *arg,
                        uint64_t *count)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return;
    uint64_t ids[4096];
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        uint64_t id;
        if (fw_seg_name_parse(e->d_name, &id) == 0 && n < 4096)
            ids[n++] = id;
    }
    closedir(d);
    qsort(ids, n, sizeof(ids[0]), compare_u64);
    fw_buf_t scratch = FW_BUF_INIT;
    for (size_t i = 0; i < n; i++) {
        char path[4400], name[FW_SEG_NAME_LEN + 1];
        fw_seg_name(name, ids[i]);
        snprintf(path, sizeof(path), "%s/%s", dir, name);
        fw_segr_t *r;
        int rc = fw_segr_open(path, &r);
        if (rc == -EAGAIN)
            continue; /* a segment being created */
        FWT_ASSERT_OK(rc);
        fw_seg_block_t blk;
        while ((rc = fw_segr_next(r, &blk)) == FW_SEGR_BLOCK) {
            fw_block_header_t h;
            fw_record_iter_t it;
            FWT_ASSERT_OK(
                fw_block_decode(blk.data, blk.len, FW_RECORD_MAX_HARD, &scratch, &h, &it));
            fw_record_t rec;
            while (fw_record_next(&it, &rec)) {
                (*count)++;
                if (fn != NULL)
                    fn(arg, bucket, ids[i], &h, &rec);
            }
        }
        if (rc < 0)
            FWT_FAIL("%s: damaged (%d)", path, rc);
        fw_segr_close(r);
    }
    fw_buf_free(&scratch);
}

/* Segment bytes under dir: depth 0 is a segment file's directory (a bucket), 1 a category, 2 a
 * root. */
static uint64_t tree_segment_bytes(const char *dir, int depth)
{
    uint64_t total = 0;
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL) {
        uint64_t id;
        char path[FWT_PATH_MAX * 2];
        struct stat st;
        if (e->d_name[0] == '.' || (depth == 0 && fw_seg_name_parse(e->d_name, &id) < 0))
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if (stat(path, &st) < 0)
            continue;
        if (depth == 0 && S_ISREG(st.st_mode))
            total += (uint64_t)st.st_size;
        else if (depth > 0 && S_ISDIR(st.st_mode))
            total += tree_segment_bytes(path, depth - 1);
    }
    if (d != NULL)
        closedir(d);
    return total;
}

uint64_t fwt_root_segment_bytes(const char *root)
{
    return tree_segment_bytes(root, 2);
}

uint64_t fwt_root_records(const char *root, const char *category, fwt_record_fn fn, void *arg)
{
    char cdir[4096];
    snprintf(cdir, sizeof(cdir), "%s/%s", root, category);
    uint64_t count = 0;
    for (uint32_t b = 0; b < FW_BUCKETS_MAX; b++) {
        char dir[4200];
        snprintf(dir, sizeof(dir), "%s/%" PRIu32, cdir, b);
        DIR *d = opendir(dir);
        if (d == NULL) {
            if (b > 1024)
                break;
            continue;
        }
        closedir(d);
        read_bucket(dir, b, fn, arg, &count);
    }
    return count;
}

void fwt_lines_write(FILE *f, uint64_t first, uint64_t count, int nkeys)
{
    for (uint64_t n = first; n < first + count; n++)
        fprintf(f, "k%03d %09" PRIu64 " freeway-log-line\n", (int)(n % (uint64_t)nkeys), n);
}

typedef struct check_s {
    fwt_lines_report_t *r;
    uint64_t n;
    int nkeys;
    uint8_t *seen;
    int64_t *last; /* per key: the last line number seen, -1 before */
} check_t;

static void check_record(void *arg, uint32_t bucket, uint64_t segment_id,
                         const fw_block_header_t *h, const fw_record_t *rec)
{
    (void)bucket;
    (void)segment_id;
    (void)h;
    check_t *c = arg;
    c->r->records++;
    char value[64];
    if (!rec->has_key || rec->value_len < 9 || rec->value_len >= sizeof(value)) {
        c->r->foreign++;
        return;
    }
    memcpy(value, rec->value, rec->value_len);
    value[rec->value_len] = '\0';
    char *end;
    uint64_t n = strtoull(value, &end, 10);
    int key = rec->key_len > 1 ? atoi((const char *)rec->key + 1) : -1;
    if (end != value + 9 || n >= c->n || key != (int)(n % (uint64_t)c->nkeys)) {
        c->r->foreign++;
        return;
    }
    if (c->seen[n]++) {
        if (c->r->dups++ == 0)
            c->r->first_dup = n;
        return;
    }
    if (c->last[key] >= (int64_t)n)
        c->r->disorder++;
    c->last[key] = (int64_t)n;
}

void fwt_lines_check(const char *root, const char *category, uint64_t n, int nkeys,
                     fwt_lines_report_t *r)
{
    memset(r, 0, sizeof(*r));
    check_t c = {.r = r, .n = n, .nkeys = nkeys};
    c.seen = calloc(n ? n : 1, 1);
    c.last = malloc((size_t)nkeys * sizeof(*c.last));
    FWT_ASSERT(c.seen != NULL && c.last != NULL);
    for (int k = 0; k < nkeys; k++)
        c.last[k] = -1;
    fwt_root_records(root, category, check_record, &c);
    for (uint64_t i = 0; i < n; i++)
        if (!c.seen[i] && r->missing++ == 0)
            r->first_missing = i;
    free(c.seen);
    free(c.last);
}

uint64_t fwt_segment_write(const char *dir, const char *category, uint64_t id, int blocks,
                           int per_block, int64_t ts0, int sealed)
{
    fw_seg_header_t h = {.segment_id = id, .epoch = 1, .created_ms = ts0};
    snprintf(h.category, sizeof(h.category), "%s", category);
    fw_segw_t *w;
    FWT_ASSERT_OK(fw_segw_create(dir, &h, &w));
    fw_block_builder_t bb;
    fw_block_builder_init(&bb, FW_RECORD_MAX_DEFAULT);
    for (int b = 0; b < blocks; b++) {
        for (int r = 0; r < per_block; r++) {
            char v[64];
            int n = snprintf(v, sizeof(v), "%" PRIu64 ":%d:%d", id, b, r);
            FWT_ASSERT_OK(fw_block_builder_add(&bb, ts0 + b, NULL, 0, 0, v, (size_t)n));
        }
        const uint8_t *blk;
        size_t len;
        FWT_ASSERT_OK(fw_block_builder_finish(&bb, FW_CODEC_NONE, 7, (uint64_t)b + 1, &blk, &len));
        struct iovec iov = {(void *)blk, len};
        uint64_t off;
        FWT_ASSERT_OK(fw_segw_append(w, &iov, 1, 1, (uint32_t)per_block, &off));
    }
    fw_block_builder_free(&bb);
    if (sealed)
        FWT_ASSERT_OK(fw_segw_seal(w, ts0 + blocks));
    uint64_t size = w->end;
    fw_segw_close(w);
    return size;
}

static void seg_tree_walk(const char *dir, fwt_seg_tree_t *t)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char path[FWT_PATH_MAX];
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        struct stat st;
        if (stat(path, &st) < 0)
            continue;
        if (S_ISDIR(st.st_mode)) {
            seg_tree_walk(path, t);
            continue;
        }
        size_t n = strlen(e->d_name);
        if (n < 4 || strcmp(e->d_name + n - 4, ".seg") != 0)
            continue;
        t->files++;
        fw_seg_scan_t s;
        if (fw_seg_scan(path, &s) < 0)
            continue;
        t->records += s.records;
        if (s.blocks > t->most_blocks) {
            t->most_blocks = s.blocks;
            snprintf(t->most, sizeof(t->most), "%s", path);
        }
    }
    closedir(d);
}

void fwt_seg_tree(const char *dir, fwt_seg_tree_t *t)
{
    memset(t, 0, sizeof(*t));
    seg_tree_walk(dir, t);
}

int fwt_seg_records_reach(void *arg)
{
    fwt_seg_records_t *w = arg;
    fwt_seg_tree_t t;
    fwt_seg_tree(w->dir, &t);
    return t.records >= w->records;
}

void fwt_lines_assert_once(const char *root, const char *category, uint64_t n, int nkeys)
{
    fwt_lines_report_t r;
    fwt_lines_check(root, category, n, nkeys, &r);
    if (r.dups || r.missing)
        FWT_FAIL("%llu duplicates (first %llu), %llu missing (first %llu)",
                 (unsigned long long)r.dups, (unsigned long long)r.first_dup,
                 (unsigned long long)r.missing, (unsigned long long)r.first_missing);
    FWT_ASSERT_UINT_EQ(r.disorder, 0);
    FWT_ASSERT_UINT_EQ(r.records, n);
}
