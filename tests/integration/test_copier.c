/*
 * The copier, end to end with real processes: a ZooKeeper server, a
 * calligraphus writing a category under continuous sends, and copier
 * daemons (kill -9 included) copying its root to file:// destinations. The
 * copies are compared byte for byte with the source (the destination holds
 * byte-identical segments, the open one as a prefix); ptail serves a copy.
 */
#include "fwt_cal.h"
#include "fwt_proc.h"
#include "fwt_root.h"
#include "fwt_zk.h"
#include "fwtest.h"

#include "names.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BUCKETS 4
#define KEYS    16

typedef struct fabric_s {
    fwt_zk_t zk;
    char spec[128];
    char root[FWT_PATH_MAX];
    char dest[FWT_PATH_MAX];
    char url[FWT_PATH_MAX + 16];
    fwt_cal_t cal;
} fabric_t;

/* Small raw blocks and small segments: many blocks, many seals. */
static const char *send_flags[] = {"--batch-bytes", "8K", "--codec", "none", NULL};
static const char *copier_flags[] = {"--session-timeout", "2s", "--poll", "200ms", NULL};

static void fabric_start(fabric_t *f, int buckets)
{
    memset(f, 0, sizeof(*f));
    fwt_zk_start(&f->zk);
    snprintf(f->spec, sizeof(f->spec), "%s/freeway", f->zk.connect);
    snprintf(f->root, sizeof(f->root), "%s/root", fwt_tmpdir());
    snprintf(f->dest, sizeof(f->dest), "%s/copy", fwt_tmpdir());
    snprintf(f->url, sizeof(f->url), "file://%s", f->dest);
    const char *cat_flags[] = {"--roll-bytes", "1M", NULL};
    fwt_category_create(f->spec, "web", buckets, cat_flags);
    fwt_cal_start(&f->cal, "w1", f->spec, f->root, NULL);
    fwt_cal_wait_owns(&f->cal, buckets, "the writer to own every bucket");
}

/* ---- comparing a copy with its source ------------------------------------------------------ */

typedef struct tree_diff_s {
    uint64_t files;   /* source segments */
    uint64_t missing; /* source bytes the copy does not have yet */
    uint64_t bad;     /* copies that are not a prefix of their source */
    char first_bad[FWT_PATH_MAX * 4];
} tree_diff_t;

static uint8_t *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc((size_t)n + 1);
    if (buf != NULL && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return buf;
}

/* One bucket directory: each copy must be a prefix of its source. */
static void compare_dir(const char *src, const char *dst, tree_diff_t *d)
{
    DIR *dir = opendir(src);
    if (dir == NULL)
        return;
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
        uint64_t id;
        if (fw_seg_name_parse(e->d_name, &id) < 0)
            continue;
        char sp[FWT_PATH_MAX * 2], dp[FWT_PATH_MAX * 2];
        snprintf(sp, sizeof(sp), "%s/%s", src, e->d_name);
        snprintf(dp, sizeof(dp), "%s/%s", dst, e->d_name);
        size_t sl = 0, dl = 0;
        uint8_t *s = slurp(sp, &sl);
        uint8_t *c = slurp(dp, &dl);
        d->files++;
        if (c == NULL) {
            d->missing += sl;
        } else if (dl > sl || s == NULL || memcmp(s, c, dl) != 0) {
            if (d->bad++ == 0)
                snprintf(d->first_bad, sizeof(d->first_bad), "%s (%zu bytes, source %zu)", dp, dl,
                         sl);
        } else {
            d->missing += sl - dl;
        }
        free(s);
        free(c);
    }
    closedir(dir);
}

static void compare_tree(const char *root, const char *copy, int buckets, tree_diff_t *d)
{
    memset(d, 0, sizeof(*d));
    for (int b = 0; b < buckets; b++) {
        char src[FWT_PATH_MAX * 2], dst[FWT_PATH_MAX * 2];
        snprintf(src, sizeof(src), "%s/web/%d", root, b);
        snprintf(dst, sizeof(dst), "%s/web/%d", copy, b);
        compare_dir(src, dst, d);
    }
}

typedef struct caught_up_s {
    const char *root, *copy;
    int buckets;
    tree_diff_t d;
} caught_up_t;

static int caught_up(void *arg)
{
    caught_up_t *c = arg;
    compare_tree(c->root, c->copy, c->buckets, &c->d);
    if (c->d.bad > 0)
        FWT_FAIL("the copy is not a prefix of the source: %s", c->d.first_bad);
    return c->d.files > 0 && c->d.missing == 0;
}

/* Waits until the copy holds every source byte; fails if a copy is ever not a prefix. */
static void wait_identical(const char *root, const char *copy, int buckets, int timeout_ms)
{
    caught_up_t c = {.root = root, .copy = copy, .buckets = buckets};
    fwt_wait_until(caught_up, &c, timeout_ms, "the copy to hold every source byte");
    printf("%" PRIu64 " segments byte-identical\n", c.d.files);
}

/* ---- tests ------------------------------------------------------------------------------- */

/*
 * While lines stream in, every copied file is at every moment a prefix of its
 * source (whole blocks only, never a byte that differs), and after the sends
 * the copy is byte-identical, sealed segments and the open one alike.
 */
FWT_TEST(copy_under_continuous_writes_is_byte_identical)
{
    fabric_t f;
    fabric_start(&f, BUCKETS);
    fwt_cal_t cp;
    fwt_copier_start(&cp, "c1", f.spec, f.root, f.url, copier_flags);
    fwt_proc_t send;
    char log[FWT_PATH_MAX];
    fwt_send_lines_spawn(&send, f.spec, "web", 0, 300000, KEYS, send_flags, log, sizeof(log));
    int checks = 0;
    while (fwt_proc_running(&send)) {
        tree_diff_t d;
        compare_tree(f.root, f.dest, BUCKETS, &d);
        if (d.bad > 0)
            FWT_FAIL("mid-run, a copy is not a prefix of its source: %s", d.first_bad);
        checks++;
        usleep(50 * 1000); /* pacing the snapshots, not waiting for an event */
    }
    fwt_send_wait_ok(&send, log);
    wait_identical(f.root, f.dest, BUCKETS, 30000);
    printf("%d snapshots taken while writing\n", checks);
    FWT_ASSERT(fwt_cal_metric_sum(&cp, "freeway_copier_copied_blocks_total") > 0);
    FWT_ASSERT(fwt_cal_metric_sum(&cp, "freeway_copier_damaged_blocks_total") == 0);
    /* The copy holds every line once, in order per key, read as a root of its own. */
    fwt_lines_report_t r;
    fwt_lines_check(f.dest, "web", 300000, KEYS, &r);
    FWT_ASSERT_UINT_EQ(r.missing, 0);
    FWT_ASSERT_UINT_EQ(r.dups, 0);
    fwt_cal_stop(&cp);
    fwt_cal_stop(&f.cal);
    fwt_zk_stop(&f.zk);
}
