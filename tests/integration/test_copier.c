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
#include "fwt_webhdfs.h"
#include "fwt_zk.h"
#include "fwtest.h"

#include "fsutil.h"
#include "names.h"
#include "segment.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
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
        /* The copy first: the source only grows, so read after it, it holds
         * at least every byte the copier could have copied. */
        size_t sl = 0, dl = 0;
        uint8_t *c = slurp(dp, &dl);
        uint8_t *s = slurp(sp, &sl);
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

/*
 * kill -9 of the copier ten times while lines stream in: each new life cuts
 * what the last one wrote past its recorded progress and goes on from there,
 * so the copy ends byte-identical, with no duplicate and no missing byte.
 */
FWT_TEST(ten_kill_9s_leave_the_copy_byte_identical)
{
    fabric_t f;
    fabric_start(&f, BUCKETS);
    fwt_cal_t cp;
    fwt_copier_start(&cp, "c1", f.spec, f.root, f.url, copier_flags);
    fwt_proc_t send;
    char log[FWT_PATH_MAX];
    /* A slow producer (small batches, short linger) keeps writes going through every kill. */
    const char *slow[] = {"--batch-bytes", "2K", "--codec", "none", NULL};
    fwt_send_lines_spawn(&send, f.spec, "web", 0, 400000, KEYS, slow, log, sizeof(log));
    int kills = 0, mid_write = 0;
    while (kills < 10) {
        usleep((useconds_t)fwt_rand_range(50, 400) * 1000); /* a random moment, not a wait */
        mid_write += fwt_proc_running(&send);
        fwt_cal_kill(&cp);
        kills++;
        tree_diff_t d;
        compare_tree(f.root, f.dest, BUCKETS, &d);
        if (d.bad > 0)
            FWT_FAIL("after kill %d, a copy is not a prefix of its source: %s", kills, d.first_bad);
        fwt_cal_restart(&cp);
    }
    fwt_send_wait_ok(&send, log);
    wait_identical(f.root, f.dest, BUCKETS, 60000);
    printf("%d kills, %d of them while lines were being written\n", kills, mid_write);
    fwt_lines_report_t r;
    fwt_lines_check(f.dest, "web", 400000, KEYS, &r);
    FWT_ASSERT_UINT_EQ(r.missing, 0);
    FWT_ASSERT_UINT_EQ(r.dups, 0);
    fwt_cal_stop(&cp);
    fwt_cal_stop(&f.cal);
    fwt_zk_stop(&f.zk);
}

typedef struct share_s {
    fwt_cal_t *a, *b;
    double want_a, want_b;
} share_t;

static int owned_split(void *arg)
{
    share_t *s = arg;
    double a = s->a ? fwt_cal_metric_sum(s->a, "freeway_copier_bucket_owned") : 0;
    double b = s->b ? fwt_cal_metric_sum(s->b, "freeway_copier_bucket_owned") : 0;
    return a == s->want_a && b == s->want_b;
}

static void wait_split(fwt_cal_t *a, fwt_cal_t *b, int na, int nb, const char *what)
{
    share_t s = {a, b, na, nb};
    fwt_wait_until(owned_split, &s, 30000, what);
}

/*
 * Two copiers of one destination split its buckets evenly; when one dies
 * the other takes its buckets over (after the session timeout) and copies
 * on from the recorded progress; when it is back they split again.
 */
FWT_TEST(two_copiers_share_the_buckets_and_take_over)
{
    fabric_t f;
    fabric_start(&f, 8);
    fwt_cal_t a, b;
    fwt_copier_start(&a, "ca", f.spec, f.root, f.url, copier_flags);
    fwt_copier_start(&b, "cb", f.spec, f.root, f.url, copier_flags);
    fwt_send_lines(f.spec, "web", 0, 50000, KEYS, send_flags);
    wait_split(&a, &b, 4, 4, "each copier to hold 4 of the 8 buckets");
    wait_identical(f.root, f.dest, 8, 30000);
    double a_blocks = fwt_cal_metric_sum(&a, "freeway_copier_copied_blocks_total");
    double b_blocks = fwt_cal_metric_sum(&b, "freeway_copier_copied_blocks_total");
    printf("copied blocks: %.0f by ca, %.0f by cb\n", a_blocks, b_blocks);
    FWT_ASSERT(a_blocks > 0 && b_blocks > 0);

    fwt_cal_kill(&a);
    fwt_send_lines(f.spec, "web", 50000, 50000, KEYS, send_flags);
    wait_split(NULL, &b, 0, 8, "cb to take over every bucket");
    wait_identical(f.root, f.dest, 8, 30000);

    fwt_cal_restart(&a);
    wait_split(&a, &b, 4, 4, "the buckets to be split again");
    fwt_send_lines(f.spec, "web", 100000, 50000, KEYS, send_flags);
    wait_identical(f.root, f.dest, 8, 30000);
    fwt_lines_report_t r;
    fwt_lines_check(f.dest, "web", 150000, KEYS, &r);
    FWT_ASSERT_UINT_EQ(r.missing, 0);
    FWT_ASSERT_UINT_EQ(r.dups, 0);
    fwt_cal_stop(&a);
    fwt_cal_stop(&b);
    fwt_cal_stop(&f.cal);
    fwt_zk_stop(&f.zk);
}

/* Segment files of one bucket directory: their count, and whether `id` is there. */
static int count_segments(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return 0;
    int n = 0;
    struct dirent *e;
    uint64_t id;
    while ((e = readdir(d)) != NULL)
        n += fw_seg_name_parse(e->d_name, &id) == 0;
    closedir(d);
    return n;
}

static int source_segments(const char *root, int buckets)
{
    int n = 0;
    for (int b = 0; b < buckets; b++) {
        char dir[FWT_PATH_MAX * 2];
        snprintf(dir, sizeof(dir), "%s/web/%d", root, b);
        n += count_segments(dir);
    }
    return n;
}

typedef struct passes_s {
    fwt_cal_t *cp;
    double want;
} passes_t;

static int retention_passes(void *arg)
{
    passes_t *p = arg;
    return fwt_cal_metric(p->cp, "freeway_copier_retention_passes_total") >= p->want;
}

/* 1 once every segment under the root was last written over 1.5 s ago. */
static int all_older_than_retention(void *arg)
{
    const char *root = arg;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    for (int b = 0; b < BUCKETS; b++) {
        char dir[FWT_PATH_MAX * 2];
        snprintf(dir, sizeof(dir), "%s/web/%d", root, b);
        DIR *d = opendir(dir);
        struct dirent *e;
        while (d != NULL && (e = readdir(d)) != NULL) {
            char path[FWT_PATH_MAX * 3];
            struct stat st;
            snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
            if (e->d_name[0] != '.' && stat(path, &st) == 0 &&
                now - (int64_t)st.st_mtim.tv_sec * 1000 - st.st_mtim.tv_nsec / 1000000 < 1500) {
                closedir(d);
                return 0;
            }
        }
        if (d != NULL)
            closedir(d);
    }
    return 1;
}

static int one_segment_per_bucket(void *arg)
{
    return source_segments(arg, BUCKETS) == BUCKETS;
}

/*
 * Retention deletes a source segment only when it is sealed, copied whole to
 * every destination and older than the retention: with one destination
 * unreachable nothing goes; once it has caught up, everything but each
 * bucket's newest (open) segment goes, and the copies keep all of it.
 */
FWT_TEST(retention_deletes_exactly_the_eligible_segments)
{
    fabric_t f;
    fabric_start(&f, BUCKETS);
    /* The second destination is under a regular file: every write to it fails. */
    char blocker[FWT_PATH_MAX], copy2[FWT_PATH_MAX + 8], urls[3 * FWT_PATH_MAX];
    snprintf(blocker, sizeof(blocker), "%s/blocked", fwt_tmpdir());
    snprintf(copy2, sizeof(copy2), "%s/copy", blocker);
    FILE *bf = fopen(blocker, "w");
    FWT_ASSERT(bf != NULL);
    fclose(bf);
    snprintf(urls, sizeof(urls), "%s,file://%s", f.url, copy2);
    const char *flags[] = {"--session-timeout", "2s", "--poll", "200ms", "--retention", "1s", NULL};
    fwt_cal_t cp;
    fwt_copier_start(&cp, "c1", f.spec, f.root, urls, flags);
    fwt_send_lines(f.spec, "web", 0, 400000, KEYS, send_flags);
    wait_identical(f.root, f.dest, BUCKETS, 30000);
    int before = source_segments(f.root, BUCKETS);
    FWT_ASSERT_INT_OP(before, >, 2 * BUCKETS);

    /* Passes run after every segment is past the retention: still nothing may go. */
    fwt_wait_until(all_older_than_retention, f.root, 30000, "the segments to age past 1 s");
    passes_t p = {&cp, fwt_cal_metric(&cp, "freeway_copier_retention_passes_total") + 3};
    fwt_wait_until(retention_passes, &p, 30000, "three retention passes");
    FWT_ASSERT_INT_EQ(source_segments(f.root, BUCKETS), before);
    FWT_ASSERT(fwt_cal_metric_sum(&cp, "freeway_copier_destination_errors_total") > 0);
    FWT_ASSERT(fwt_cal_metric(&cp, "freeway_copier_segments_deleted_total") == 0);

    /* The second destination comes back, catches up, and retention does its job. */
    FWT_ASSERT_INT_EQ(unlink(blocker), 0);
    fwt_wait_until(one_segment_per_bucket, f.root, 60000,
                   "every bucket but its newest segment to be deleted");
    FWT_ASSERT(fwt_cal_metric(&cp, "freeway_copier_segments_deleted_total") == before - BUCKETS);
    /* The sealed segments are gone once both copies hold them; each bucket's
     * newest may still be on its way to the second copy. */
    wait_identical(f.root, copy2, BUCKETS, 30000);
    /* Both copies hold every line: nothing was deleted before it was copied. */
    fwt_lines_report_t r;
    fwt_lines_check(f.dest, "web", 400000, KEYS, &r);
    FWT_ASSERT_UINT_EQ(r.missing, 0);
    FWT_ASSERT_UINT_EQ(r.dups, 0);
    char copy2_root[FWT_PATH_MAX + 16];
    snprintf(copy2_root, sizeof(copy2_root), "%s", copy2);
    fwt_lines_check(copy2_root, "web", 400000, KEYS, &r);
    FWT_ASSERT_UINT_EQ(r.missing, 0);
    FWT_ASSERT_UINT_EQ(r.dups, 0);
    fwt_cal_stop(&cp);
    fwt_cal_stop(&f.cal);
    fwt_zk_stop(&f.zk);
}

/*
 * The line numbers in `freeway tail` output: send keyed each line by its
 * "k<key>" prefix, so a record's value starts with the 9-digit number.
 */
static void count_lines(const char *out, uint32_t *seen, uint64_t n, uint64_t *total)
{
    for (const char *p = out; p != NULL && *p != '\0';) {
        const char *nl = strchr(p, '\n');
        unsigned long long line;
        if (strspn(p, "0123456789") == 9 && sscanf(p, "%llu", &line) == 1 && line < n) {
            seen[line]++;
            (*total)++;
        }
        p = nl ? nl + 1 : NULL;
    }
}

/*
 * The destination is a root ptail can serve, and a checkpoint taken on the
 * writer's root is valid on the copy: a tail that saved its checkpoint while
 * reading from the source resumes on a ptail of the copy with exactly the
 * records after it.
 */
FWT_TEST(ptail_serves_the_copy_and_a_source_checkpoint_resumes_there)
{
    enum { LINES = 40000 };
    fabric_t f;
    fabric_start(&f, BUCKETS);
    fwt_cal_t cp, pt_src, pt_copy;
    fwt_copier_start(&cp, "c1", f.spec, f.root, f.url, copier_flags);
    fwt_send_lines(f.spec, "web", 0, LINES, KEYS, send_flags);
    wait_identical(f.root, f.dest, BUCKETS, 30000);
    fwt_ptail_start(&pt_src, "p-src", f.spec, f.root, NULL);
    fwt_ptail_start(&pt_copy, "p-copy", f.spec, f.dest, NULL);

    char ckpt[FWT_PATH_MAX];
    snprintf(ckpt, sizeof(ckpt), "%s/tail.ckpt", fwt_tmpdir());
    uint32_t *seen = calloc(LINES, sizeof(*seen));
    uint64_t total = 0;
    char half[16];
    snprintf(half, sizeof(half), "%d", LINES / 2);
    char *first[] = {(char *)fwt_bin("freeway"),
                     "tail",
                     "-c",
                     "web",
                     "--zk",
                     f.spec,
                     "--ptail",
                     pt_src.address,
                     "--from",
                     "earliest",
                     "--count",
                     half,
                     "--checkpoint-file",
                     ckpt,
                     NULL};
    char *out = NULL;
    FWT_ASSERT_INT_EQ(fwt_run(first, 60000, &out), 0);
    count_lines(out, seen, LINES, &total);
    if (total != LINES / 2)
        printf("tail printed:\n%.2000s\n", out);
    free(out);
    FWT_ASSERT_UINT_EQ(total, LINES / 2);

    char *rest[] = {(char *)fwt_bin("freeway"),
                    "tail",
                    "-c",
                    "web",
                    "--zk",
                    f.spec,
                    "--ptail",
                    pt_copy.address,
                    "--count",
                    half,
                    "--checkpoint-file",
                    ckpt,
                    NULL};
    FWT_ASSERT_INT_EQ(fwt_run(rest, 60000, &out), 0);
    count_lines(out, seen, LINES, &total);
    free(out);
    uint64_t missing = 0, dups = 0;
    for (uint64_t i = 0; i < LINES; i++) {
        missing += seen[i] == 0;
        dups += seen[i] > 1 ? seen[i] - 1 : 0;
    }
    free(seen);
    printf("%" PRIu64 " records over the source's ptail then the copy's\n", total);
    FWT_ASSERT_UINT_EQ(missing, 0);
    FWT_ASSERT_UINT_EQ(dups, 0);
    FWT_ASSERT(fwt_cal_metric(&pt_copy, "freeway_ptail_subscriptions_refused_total") == 0);
    fwt_cal_stop(&pt_src);
    fwt_cal_stop(&pt_copy);
    fwt_cal_stop(&cp);
    fwt_cal_stop(&f.cal);
    fwt_zk_stop(&f.zk);
}

/* The offset of block `index` (0-based) of a segment, by its headers. */
static uint64_t block_offset(const char *path, int index)
{
    fw_segr_t *r;
    FWT_ASSERT_OK(fw_segr_open(path, &r));
    fw_block_header_t h;
    uint64_t off = 0;
    for (int i = 0; i <= index; i++)
        FWT_ASSERT_INT_EQ(fw_segr_skim(r, &h, &off), FW_SEGR_BLOCK);
    fw_segr_close(r);
    return off;
}

static uint64_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

typedef struct metric_at_least_s {
    fwt_cal_t *cp;
    const char *family;
    double want;
} metric_at_least_t;

static int metric_at_least(void *arg)
{
    metric_at_least_t *m = arg;
    return fwt_cal_metric_sum(m->cp, m->family) >= m->want;
}

/*
 * A damaged block in a sealed source segment stops that bucket's copying at
 * the block before it, with an error and a metric, and never reaches the
 * destination; the other buckets copy on. Files written by hand (no writer).
 */
FWT_TEST(a_damaged_source_block_stops_its_bucket_and_is_never_copied)
{
    fwt_zk_t zk;
    fwt_zk_start(&zk);
    char spec[160], root[FWT_PATH_MAX], dest[FWT_PATH_MAX], url[FWT_PATH_MAX + 16];
    snprintf(spec, sizeof(spec), "%s/freeway", zk.connect);
    snprintf(root, sizeof(root), "%s/root", fwt_tmpdir());
    snprintf(dest, sizeof(dest), "%s/copy", fwt_tmpdir());
    snprintf(url, sizeof(url), "file://%s", dest);
    char dir0[FWT_PATH_MAX + 16], dir1[FWT_PATH_MAX + 16];
    snprintf(dir0, sizeof(dir0), "%s/web/0", root);
    snprintf(dir1, sizeof(dir1), "%s/web/1", root);
    FWT_ASSERT_OK(fw_mkdir_p(dir0));
    FWT_ASSERT_OK(fw_mkdir_p(dir1));
    fwt_segment_write(dir0, "web", 1, 5, 10, 1000, 1);
    fwt_segment_write(dir0, "web", 2, 5, 10, 2000, 1);
    fwt_segment_write(dir0, "web", 3, 5, 10, 3000, 0);
    fwt_segment_write(dir1, "web", 1, 5, 10, 1000, 1);
    fwt_segment_write(dir1, "web", 2, 5, 10, 2000, 0);
    /* One payload byte of block 2 (the third) of bucket 0's segment 2. */
    char bad[FWT_PATH_MAX * 2];
    snprintf(bad, sizeof(bad), "%s/00000000000000000002.seg", dir0);
    uint64_t at = block_offset(bad, 2);
    int fd = open(bad, O_RDWR);
    FWT_ASSERT(fd >= 0);
    uint8_t byte;
    FWT_ASSERT_INT_EQ(pread(fd, &byte, 1, (off_t)at + 70), 1);
    byte ^= 0x5a;
    FWT_ASSERT_INT_EQ(pwrite(fd, &byte, 1, (off_t)at + 70), 1);
    close(fd);

    fwt_cal_t cp;
    fwt_copier_start(&cp, "c1", spec, root, url, copier_flags);
    metric_at_least_t m = {&cp, "freeway_copier_bucket_stopped", 1};
    fwt_wait_until(metric_at_least, &m, 30000, "bucket 0 to be reported stopped");
    /* Bucket 1 is copied whole; bucket 0 up to the damaged block, exactly. */
    tree_diff_t d;
    memset(&d, 0, sizeof(d));
    char copy1[FWT_PATH_MAX + 16], copy0[FWT_PATH_MAX + 16];
    snprintf(copy1, sizeof(copy1), "%s/web/1", dest);
    snprintf(copy0, sizeof(copy0), "%s/web/0", dest);
    int64_t deadline = fwt_now_ms() + 30000;
    do {
        memset(&d, 0, sizeof(d));
        compare_dir(dir1, copy1, &d);
        FWT_ASSERT_UINT_EQ(d.bad, 0);
        if (fwt_now_ms() > deadline)
            FWT_FAIL("bucket 1 was not copied whole");
    } while (d.missing > 0 && usleep(50 * 1000) == 0);
    char copied_bad[FWT_PATH_MAX * 2], copied_first[FWT_PATH_MAX * 2], src_first[FWT_PATH_MAX * 2],
        copied_third[FWT_PATH_MAX * 2];
    snprintf(copied_bad, sizeof(copied_bad), "%s/00000000000000000002.seg", copy0);
    snprintf(copied_first, sizeof(copied_first), "%s/00000000000000000001.seg", copy0);
    snprintf(src_first, sizeof(src_first), "%s/00000000000000000001.seg", dir0);
    snprintf(copied_third, sizeof(copied_third), "%s/00000000000000000003.seg", copy0);
    FWT_ASSERT_UINT_EQ(file_size(copied_first), file_size(src_first));
    FWT_ASSERT_UINT_EQ(file_size(copied_bad), at);
    FWT_ASSERT_UINT_EQ(file_size(copied_third), 0);
    memset(&d, 0, sizeof(d));
    compare_dir(dir0, copy0, &d);
    FWT_ASSERT_UINT_EQ(d.bad, 0);
    FWT_ASSERT(fwt_cal_metric_sum(&cp, "freeway_copier_damaged_blocks_total") >= 1);
    FWT_ASSERT(fwt_file_contains(cp.log_path, "damaged block at offset"));
    fwt_cal_stop(&cp);
    fwt_zk_stop(&zk);
}

/* Flags: --help explains, a bad destination is refused with a clear message. */
FWT_TEST(help_and_bad_destinations)
{
    char *help[] = {(char *)fwt_bin("copier"), "--help", NULL};
    char *out = NULL;
    FWT_ASSERT_INT_EQ(fwt_run(help, 10000, &out), 0);
    FWT_ASSERT(strstr(out, "--dest") != NULL && strstr(out, "--retention") != NULL &&
               strstr(out, "--rate") != NULL);
    free(out);
    const char *bad[][2] = {
        {"ftp://host/x", "unknown destination"},
        {"file://relative/path", "file:///ABSOLUTE/PATH"},
        {"webhdfs://host/path", "webhdfs://HOST:PORT/PATH"},
        {"file:///a,file:///a", "given twice"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *argv[] = {(char *)fwt_bin("copier"), "--source", (char *)fwt_tmpdir(),  "--dest",
                        (char *)bad[i][0],         "--zk",     "127.0.0.1:1/freeway", NULL};
        int rc = fwt_run(argv, 10000, &out);
        if (rc == 0 || strstr(out, bad[i][1]) == NULL)
            FWT_FAIL("--dest %s: status %d, output:\n%s", bad[i][0], rc, out);
        free(out);
    }
}

/* 1 once the stand-in has no fault left to inject. */
static int faults_spent(void *arg)
{
    char body[4096];
    FWT_ASSERT_INT_EQ(fwt_webhdfs_http(arg, "GET", "/stats", body), 200);
    return strstr(body, "\"remaining\": 0") != NULL || strstr(body, "\"remaining\"") == NULL;
}

/*
 * To webhdfs:// (the WebHDFS stand-in, tests/webhdfs/fake_webhdfs.py, plays
 * HDFS: Debian has none): under continuous writes, three kill -9s of the
 * copier, then appends that fail, that land without an answer, and that
 * land in part, the copy in "HDFS" ends byte-identical to the source.
 */
FWT_TEST(webhdfs_copy_survives_kills_and_lost_appends)
{
    fabric_t f;
    fabric_start(&f, BUCKETS);
    fwt_webhdfs_t hdfs;
    fwt_webhdfs_start(&hdfs, "hdfs", 0);
    char url[128], copy[FWT_PATH_MAX + 16];
    snprintf(url, sizeof(url), "webhdfs://127.0.0.1:%d/freeway", hdfs.nn_port);
    snprintf(copy, sizeof(copy), "%s/freeway", hdfs.root);
    const char *flags[] = {"--session-timeout", "2s", "--poll", "200ms",
                           "--stall-timeout",   "2s", NULL};
    fwt_cal_t cp;
    fwt_copier_start(&cp, "c1", f.spec, f.root, url, flags);
    fwt_proc_t send;
    char log[FWT_PATH_MAX];
    const char *slow[] = {"--batch-bytes", "2K", "--codec", "none", NULL};
    fwt_send_lines_spawn(&send, f.spec, "web", 0, 150000, KEYS, slow, log, sizeof(log));
    for (int i = 0; i < 3; i++) {
        usleep((useconds_t)fwt_rand_range(100, 400) * 1000); /* a random moment, not a wait */
        fwt_cal_kill(&cp);
        fwt_cal_restart(&cp);
    }
    fwt_send_wait_ok(&send, log);
    wait_identical(f.root, copy, BUCKETS, 60000);
    /* Appends go wrong in the three ways a network can make them go wrong
     * (only the live copier appends now: the dead ones' requests are over). */
    const char *modes[] = {"fail", "drop-after-write", "partial"};
    for (int i = 0; i < 3; i++) {
        fwt_webhdfs_fault(&hdfs, "APPEND", modes[i], 1);
        fwt_send_lines(f.spec, "web", 150000 + (uint64_t)i * 1000, 1000, KEYS, send_flags);
        fwt_wait_until(faults_spent, &hdfs, 30000, "an append to go through the fault");
        wait_identical(f.root, copy, BUCKETS, 60000);
    }
    fwt_lines_report_t r;
    fwt_lines_check(copy, "web", 153000, KEYS, &r);
    FWT_ASSERT_UINT_EQ(r.missing, 0);
    FWT_ASSERT_UINT_EQ(r.dups, 0);
    double errors = fwt_cal_metric_sum(&cp, "freeway_copier_destination_errors_total");
    double cut = fwt_cal_metric_sum(&cp, "freeway_copier_truncated_bytes_total");
    printf("after the faults: %.0f destination errors, %.0f bytes cut back to the progress\n",
           errors, cut);
    FWT_ASSERT(errors >= 3);
    FWT_ASSERT(cut > 0); /* the appends that landed unanswered were cut, not kept twice */
    fwt_cal_stop(&cp);
    fwt_webhdfs_stop(&hdfs);
    fwt_cal_stop(&f.cal);
    fwt_zk_stop(&f.zk);
}
