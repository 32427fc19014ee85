/*
 * Guarantee 6 at the writer: kill -9 one of two calligraphus writers while a
 * producer sends, and start it again. The producer finishes with every
 * record acked, and each record is stored exactly once across the segments
 * of the survivor and of the restarted writer, in order per key. A dead
 * writer's stored-but-unacked blocks are found by whoever recovers its
 * segments, so the producer's retries of them are dropped as duplicates.
 */
#include "fwt_cal.h"
#include "fwt_root.h"
#include "fwt_zk.h"
#include "fwtest.h"

#include <stdio.h>
#include <stdlib.h>
#include <errno.h>
#include <sys/stat.h>

#define LINES 300000
#define KEYS  64

static fwt_cal_t w1, w2;

/* Every line of the first third is acked (by one writer or the other). */
static int first_third_acked(void *arg)
{
    (void)arg;
    const char *m = "freeway_calligraphus_records_acked_total{category=\"web\"}";
    double a = fwt_cal_metric(&w1, m), b = fwt_cal_metric(&w2, m);
    return a > 0 && b > 0 && a + b >= LINES / 3;
}

FWT_TEST(kill_9_a_writer_mid_stream)
{
    fwt_zk_t zk;
    fwt_zk_start(&zk);
    char spec[128], root[FWT_PATH_MAX], input[FWT_PATH_MAX], log[FWT_PATH_MAX];
    snprintf(spec, sizeof(spec), "%s/freeway", zk.connect);
    snprintf(root, sizeof(root), "%s/root", fwt_tmpdir_mem());
    snprintf(input, sizeof(input), "%s/lines", fwt_tmpdir());
    snprintf(log, sizeof(log), "%s/send.log", fwt_tmpdir());
    fwt_category_create(spec, "web", 8, NULL);
    const char *flags[] = {"--session-timeout", "3s", NULL};
    fwt_cal_start(&w1, "w1", spec, root, flags);
    fwt_cal_start(&w2, "w2", spec, root, flags);
    fwt_cal_wait_balanced(&w1, &w2, 4, "4 buckets on each writer");

    /* The producer reads a FIFO the test feeds: the kill lands while it is
     * sending the second third, and the last third follows the restart. */
    FWT_ASSERT_OK(mkfifo(input, 0600) < 0 ? -errno : 0);
    /* Small batches: many requests in flight when the writer dies. */
    const char *send_flags[] = {"--batch-bytes", "16K", "--timeout", "120s", NULL};
    fwt_proc_t send;
    fwt_send_spawn(&send, spec, "web", input, log, send_flags);
    FILE *f = fopen(input, "w");
    FWT_ASSERT(f != NULL);
    fwt_lines_write(f, 0, LINES / 3, KEYS);
    fflush(f);
    fwt_wait_until(first_third_acked, NULL, 60000, "the first third to be acked");
    fwt_lines_write(f, LINES / 3, LINES / 3, KEYS);
    fflush(f);
    fwt_cal_kill(&w1);
    fwt_cal_restart(&w1);
    fwt_lines_write(f, 2 * (LINES / 3), LINES - 2 * (LINES / 3), KEYS);
    fclose(f);

    int rc = fwt_send_wait(&send, 240000);
    char tail[4096];
    if (rc != 0)
        FWT_FAIL("freeway send exited %d:\n%s", rc, fwt_file_tail(log, 20, tail, sizeof(tail)));
    fwt_cal_stop(&w1);
    fwt_cal_stop(&w2);

    fwt_lines_assert_once(root, "web", LINES, KEYS);
    fwt_zk_stop(&zk);
}
