/*
 * Fencing: a writer frozen with SIGSTOP past its ZooKeeper session timeout
 * loses its buckets to the other writer; once resumed it appends nothing to
 * them (its lease lapsed, and the new owner recovers the segments only after
 * the old writer let go of their locks). Meanwhile a producer keeps sending
 * and ends with every record stored exactly once.
 */
#include "fwt_cal.h"
#include "fwt_root.h"
#include "fwt_zk.h"
#include "fwtest.h"

#include "names.h"
#include "segment.h"

#include <dirent.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <sys/stat.h>

#define LINES   200000
#define KEYS    32
#define BUCKETS 4

static fwt_cal_t w1, w2;
static char root[FWT_PATH_MAX];

/* Every line of the first half is acked (by one writer or the other). */
static int first_half_acked(void *arg)
{
    (void)arg;
    const char *m = "freeway_calligraphus_records_acked_total{category=\"web\"}";
    double a = fwt_cal_metric(&w1, m), b = fwt_cal_metric(&w2, m);
    return a > 0 && b > 0 && a + b >= LINES / 2;
}

/* The open segments of w1 when it froze: path and the blocks in it. */
typedef struct frozen_s {
    char path[FWT_PATH_MAX * 2];
    uint64_t blocks;
} frozen_t;

static frozen_t frozen[BUCKETS * 4];
static int nfrozen;

/* w1 logs "web/B: open at epoch E" for each bucket it opens. */
static int w1_opened(uint32_t bucket, uint64_t epoch)
{
    char needle[96];
    snprintf(needle, sizeof(needle), "web/%" PRIu32 ": open at epoch %" PRIu64, bucket, epoch);
    return fwt_file_contains(w1.log_path, needle);
}

static void snapshot_w1_segments(void)
{
    for (uint32_t b = 0; b < BUCKETS; b++) {
        char dir[FWT_PATH_MAX + 32];
        if (strlen(root) > FWT_PATH_MAX - 64)
            FWT_FAIL("root path too long");
        snprintf(dir, sizeof(dir), "%s/web/%" PRIu32, root, b);
        DIR *d = opendir(dir);
        if (d == NULL)
            continue;
        struct dirent *e;
        uint64_t id;
        while ((e = readdir(d)) != NULL) {
            if (fw_seg_name_parse(e->d_name, &id) < 0)
                continue;
            char path[FWT_PATH_MAX * 2];
            snprintf(path, sizeof(path), "%.*s/%.64s", FWT_PATH_MAX, dir, e->d_name);
            fw_seg_scan_t s;
            FWT_ASSERT_OK(fw_seg_scan(path, &s));
            if (s.sealed || !w1_opened(b, s.header.epoch))
                continue;
            FWT_ASSERT(nfrozen < (int)(sizeof(frozen) / sizeof(frozen[0])));
            snprintf(frozen[nfrozen].path, sizeof(frozen[nfrozen].path), "%s", path);
            frozen[nfrozen].blocks = s.blocks;
            nfrozen++;
        }
        closedir(d);
    }
}

FWT_TEST(a_frozen_writer_appends_nothing_to_buckets_it_lost)
{
    fwt_zk_t zk;
    fwt_zk_start(&zk);
    char spec[128], input[FWT_PATH_MAX], log[FWT_PATH_MAX];
    snprintf(spec, sizeof(spec), "%s/freeway", zk.connect);
    snprintf(root, sizeof(root), "%s/root", fwt_tmpdir_mem());
    snprintf(input, sizeof(input), "%s/lines", fwt_tmpdir());
    snprintf(log, sizeof(log), "%s/send.log", fwt_tmpdir());
    fwt_category_create(spec, "web", BUCKETS, NULL);
    const char *flags[] = {"--session-timeout", "2s", NULL};
    fwt_cal_start(&w1, "w1", spec, root, flags);
    fwt_cal_start(&w2, "w2", spec, root, flags);
    fwt_cal_wait_balanced(&w1, &w2, 2, "2 buckets on each writer");

    /* The producer reads a FIFO the test feeds, so the second half of the
     * lines is sent exactly while w1 is frozen. */
    FWT_ASSERT_OK(mkfifo(input, 0600) < 0 ? -errno : 0);
    const char *send_flags[] = {"--batch-bytes", "16K", "--timeout", "120s", NULL};
    fwt_proc_t send;
    fwt_send_spawn(&send, spec, "web", input, log, send_flags);
    FILE *f = fopen(input, "w");
    FWT_ASSERT(f != NULL);
    fwt_lines_write(f, 0, LINES / 2, KEYS);
    fflush(f);
    fwt_wait_until(first_half_acked, NULL, 60000, "the first half to be acked");

    FWT_ASSERT_OK(fwt_proc_signal(&w1.proc, SIGSTOP));
    snapshot_w1_segments();
    FWT_ASSERT(nfrozen > 0);
    fwt_lines_write(f, LINES / 2, LINES / 2, KEYS);
    fflush(f);
    /* w2 takes w1's buckets once w1's session expires (it opens them only
     * after w1 lets go of their files, which it cannot do while frozen). */
    fwt_cal_wait_claimed(&w2, BUCKETS, "w2 to take every bucket");
    FWT_ASSERT_OK(fwt_proc_signal(&w1.proc, SIGCONT));
    fclose(f);

    int rc = fwt_send_wait(&send, 240000);
    char tail[4096];
    if (rc != 0)
        FWT_FAIL("freeway send exited %d:\n%s", rc, fwt_file_tail(log, 20, tail, sizeof(tail)));
    fwt_cal_stop(&w1);
    fwt_cal_stop(&w2);

    /* Not one block more in the segments w1 had open; the new owner sealed them. */
    for (int i = 0; i < nfrozen; i++) {
        fw_seg_scan_t s;
        FWT_ASSERT_OK(fw_seg_scan(frozen[i].path, &s));
        if (s.blocks != frozen[i].blocks)
            FWT_FAIL("%s: %llu blocks when w1 froze, %llu now", frozen[i].path,
                     (unsigned long long)frozen[i].blocks, (unsigned long long)s.blocks);
        FWT_ASSERT(s.sealed);
    }
    FWT_ASSERT(fwt_file_contains(w1.log_path, "expired") ||
               fwt_file_contains(w1.log_path, "lease lapsed"));

    fwt_lines_report_t r;
    fwt_lines_check(root, "web", LINES, KEYS, &r);
    FWT_ASSERT_UINT_EQ(r.dups, 0);
    FWT_ASSERT_UINT_EQ(r.missing, 0);
    FWT_ASSERT_UINT_EQ(r.disorder, 0);
    fwt_zk_stop(&zk);
}
