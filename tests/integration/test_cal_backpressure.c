/*
 * Backpressure: a writer with small memory bounds under a producer that
 * floods one category. The bytes it holds unanswered stay within its bound
 * (plus one frame), it pushes back (stops reading, or answers retry-later),
 * every flooded record is still stored exactly once, and another category's
 * blocks are stored all the while.
 */
#include "fwt_cal.h"
#include "fwt_root.h"
#include "fwt_wire.h"
#include "fwt_zk.h"
#include "fwtest.h"

#include "proto/common.pb-c.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define LINES 300000
#define KEYS  16

static fwt_cal_t w1;

FWT_TEST(memory_stays_bounded_and_other_categories_go_on)
{
    fwt_zk_t zk;
    fwt_zk_start(&zk);
    char spec[128], root[FWT_PATH_MAX], input[FWT_PATH_MAX], log[FWT_PATH_MAX];
    snprintf(spec, sizeof(spec), "%s/freeway", zk.connect);
    snprintf(root, sizeof(root), "%s/root", fwt_tmpdir_mem());
    snprintf(input, sizeof(input), "%s/lines", fwt_tmpdir());
    snprintf(log, sizeof(log), "%s/send.log", fwt_tmpdir());
    fwt_category_create(spec, "hot", 2, NULL);
    fwt_category_create(spec, "cold", 1, NULL);
    const char *flags[] = {"--max-frame", "128K", "--conn-inflight",     "256K",
                           "--inflight",  "512K", "--category-inflight", "256K",
                           NULL};
    fwt_cal_start(&w1, "w1", spec, root, flags);
    fwt_cal_wait_owns(&w1, 3, "the writer to own every bucket");

    FILE *f = fopen(input, "w");
    FWT_ASSERT(f != NULL);
    fwt_lines_write(f, 0, LINES, KEYS);
    fclose(f);
    const char *send_flags[] = {"--batch-bytes", "16K",  "--codec", "none",
                                "--timeout",     "120s", NULL};
    fwt_proc_t send;
    fwt_send_spawn(&send, spec, "hot", input, log, send_flags);

    int fd = fwt_wire_connect(w1.address);
    fw_buf_t block = FW_BUF_INIT;
    uint64_t seq = 0;
    while (fwt_proc_running(&send)) {
        fwt_wire_block(&block, 4242, ++seq, 5, 40);
        FWT_ASSERT_INT_EQ(fwt_wire_produce(fd, seq, "cold", 0, block.data, block.len, NULL),
                          FWPB__STATUS__STATUS_OK);
    }
    fw_buf_free(&block);
    close(fd);
    int rc = fwt_send_wait(&send, 1000);
    char tail[4096];
    if (rc != 0)
        FWT_FAIL("freeway send exited %d:\n%s", rc, fwt_file_tail(log, 20, tail, sizeof(tail)));
    FWT_ASSERT(seq > 0);
    /* The bound is checked after each frame is taken on: one frame over at most. */
    double peak = fwt_cal_metric(&w1, "freeway_calligraphus_inflight_peak_bytes");
    FWT_ASSERT(peak > 0);
    FWT_ASSERT(peak <= 512 * 1024 + 128 * 1024);
    double pushed =
        fwt_cal_metric(&w1, "freeway_calligraphus_reads_paused_total") +
        fwt_cal_metric(&w1, "freeway_calligraphus_blocks_throttled_total{category=\"hot\"}");
    printf("peak in flight %.0f bytes, pushed back %.0f times, %llu cold blocks stored\n", peak,
           pushed, (unsigned long long)seq);
    FWT_ASSERT(pushed > 0);
    fwt_cal_stop(&w1);

    fwt_lines_report_t r;
    fwt_lines_check(root, "hot", LINES, KEYS, &r);
    FWT_ASSERT_UINT_EQ(r.missing, 0);
    FWT_ASSERT_UINT_EQ(r.dups, 0);
    FWT_ASSERT_UINT_EQ(r.disorder, 0);
    fwt_zk_stop(&zk);
}

/*
 * A producer configured for batches larger than the writer reads in one
 * frame learns the writer's --max-frame from its metadata and keeps its
 * requests and blocks under it (the writer would close the connection of
 * a larger frame, again and again).
 */
FWT_TEST(producer_fits_the_writers_max_frame)
{
    fwt_zk_t zk;
    fwt_zk_start(&zk);
    char spec[128], root[FWT_PATH_MAX], input[FWT_PATH_MAX], log[FWT_PATH_MAX];
    snprintf(spec, sizeof(spec), "%s/freeway", zk.connect);
    snprintf(root, sizeof(root), "%s/root", fwt_tmpdir_mem());
    snprintf(input, sizeof(input), "%s/lines", fwt_tmpdir());
    snprintf(log, sizeof(log), "%s/send.log", fwt_tmpdir());
    fwt_category_create(spec, "big", 4, NULL);
    const char *flags[] = {"--max-frame", "64K", NULL};
    fwt_cal_start(&w1, "w1", spec, root, flags);
    fwt_cal_wait_owns(&w1, 4, "the writer to own every bucket");

    enum { N = 50000 };
    FILE *f = fopen(input, "w");
    FWT_ASSERT(f != NULL);
    fwt_lines_write(f, 0, N, KEYS);
    fclose(f);
    const char *send_flags[] = {"--batch-bytes", "1M",        "--linger", "50ms", "--codec",
                                "none",          "--timeout", "60s",      NULL};
    fwt_proc_t send;
    fwt_send_spawn(&send, spec, "big", input, log, send_flags);
    int rc = fwt_send_wait(&send, 60000);
    char tail[4096];
    if (rc != 0)
        FWT_FAIL("freeway send exited %d:\n%s", rc, fwt_file_tail(log, 20, tail, sizeof(tail)));
    FWT_ASSERT_INT_EQ(fwt_cal_metric(&w1, "freeway_calligraphus_bad_frames_total"), 0);
    fwt_cal_stop(&w1);

    fwt_lines_report_t r;
    fwt_lines_check(root, "big", N, KEYS, &r);
    FWT_ASSERT_UINT_EQ(r.missing, 0);
    FWT_ASSERT_UINT_EQ(r.dups, 0);
    FWT_ASSERT_UINT_EQ(r.disorder, 0);
    fwt_zk_stop(&zk);
}
