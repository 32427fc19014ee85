/*
 * A full disk: the writer's segment files hit a size limit (RLIMIT_FSIZE set
 * on the running daemon with prlimit(2) -- a stand-in for a full filesystem
 * that needs no root: writes fail with EFBIG instead of ENOSPC and take the
 * same path). Producers get retry-later, the writer keeps running, nothing
 * acked is lost, and writing resumes when the limit is lifted.
 */
#include "fwt_cal.h"
#include "fwt_root.h"
#include "fwt_zk.h"
#include "fwtest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#define LINES 100000
#define KEYS  16

static fwt_cal_t w1;

static int write_failed(void *arg)
{
    (void)arg;
    return fwt_file_contains(w1.log_path, "write failed");
}

FWT_TEST(disk_full_means_retry_later_then_resumes)
{
    fwt_zk_t zk;
    fwt_zk_start(&zk);
    char spec[128], root[FWT_PATH_MAX], input[FWT_PATH_MAX], log[FWT_PATH_MAX];
    snprintf(spec, sizeof(spec), "%s/freeway", zk.connect);
    snprintf(root, sizeof(root), "%s/root", fwt_tmpdir_mem());
    snprintf(input, sizeof(input), "%s/lines", fwt_tmpdir());
    snprintf(log, sizeof(log), "%s/send.log", fwt_tmpdir());
    fwt_category_create(spec, "web", 2, NULL);
    fwt_cal_start(&w1, "w1", spec, root, NULL);
    fwt_cal_wait_owns(&w1, 2, "the writer to own both buckets");
    fwt_cal_wait_ready(&w1, "the writer's /readyz to say ready");

    struct rlimit small = {.rlim_cur = 256 << 10, .rlim_max = RLIM_INFINITY};
    FWT_ASSERT_OK(prlimit(w1.proc.pid, RLIMIT_FSIZE, &small, NULL));

    FILE *f = fopen(input, "w");
    FWT_ASSERT(f != NULL);
    fwt_lines_write(f, 0, LINES, KEYS);
    fclose(f);
    const char *send_flags[] = {"--codec", "none", "--timeout", "120s", NULL};
    fwt_proc_t send;
    fwt_send_spawn(&send, spec, "web", input, log, send_flags);
    fwt_wait_until(write_failed, NULL, 60000, "the writer to hit the size limit");
    FWT_ASSERT(fwt_proc_running(&send));
    FWT_ASSERT(fwt_proc_running(&w1.proc));
    /* /readyz says why: an SRE's probe sees the disk, not a vague failure. */
    fwt_cal_wait_unready(&w1, "disk write failed", "the writer's /readyz to name the disk");

    struct rlimit big = {.rlim_cur = RLIM_INFINITY, .rlim_max = RLIM_INFINITY};
    FWT_ASSERT_OK(prlimit(w1.proc.pid, RLIMIT_FSIZE, &big, NULL));
    int rc = fwt_send_wait(&send, 180000);
    char tail[4096];
    if (rc != 0)
        FWT_FAIL("freeway send exited %d:\n%s", rc, fwt_file_tail(log, 20, tail, sizeof(tail)));
    fwt_cal_wait_ready(&w1, "/readyz to say ready once writes succeed again");
    fwt_cal_stop(&w1);

    fwt_lines_report_t r;
    fwt_lines_check(root, "web", LINES, KEYS, &r);
    FWT_ASSERT_UINT_EQ(r.missing, 0);
    FWT_ASSERT_UINT_EQ(r.dups, 0);
    FWT_ASSERT_UINT_EQ(r.disorder, 0);
    fwt_zk_stop(&zk);
}

/*
 * Found in review: one failed write, then no traffic. The disk has room
 * again, but no append comes to say so; /readyz must not stay 503 for ever
 * (a load balancer would never send the traffic that clears it). A failure
 * counts only while recent.
 */
FWT_TEST(a_failed_write_then_silence_does_not_hold_readyz)
{
    fwt_zk_t zk;
    fwt_zk_start(&zk);
    char spec[128], root[FWT_PATH_MAX], input[FWT_PATH_MAX], log[FWT_PATH_MAX];
    snprintf(spec, sizeof(spec), "%s/freeway", zk.connect);
    snprintf(root, sizeof(root), "%s/root", fwt_tmpdir_mem());
    snprintf(input, sizeof(input), "%s/lines", fwt_tmpdir());
    snprintf(log, sizeof(log), "%s/send.log", fwt_tmpdir());
    fwt_category_create(spec, "web", 1, NULL);
    fwt_cal_start(&w1, "w1", spec, root, NULL);
    fwt_cal_wait_owns(&w1, 1, "the writer to own the bucket");
    fwt_cal_wait_ready(&w1, "the writer's /readyz to say ready");
    struct rlimit small = {.rlim_cur = 64 << 10, .rlim_max = RLIM_INFINITY};
    FWT_ASSERT_OK(prlimit(w1.proc.pid, RLIMIT_FSIZE, &small, NULL));
    FILE *f = fopen(input, "w");
    FWT_ASSERT(f != NULL);
    fwt_lines_write(f, 0, 5000, 1);
    fclose(f);
    const char *send_flags[] = {"--codec", "none", "--timeout", "3s", NULL};
    fwt_proc_t send;
    fwt_send_spawn(&send, spec, "web", input, log, send_flags);
    fwt_wait_until(write_failed, NULL, 60000, "the writer to hit the size limit");
    fwt_cal_wait_unready(&w1, "disk write failed", "the writer's /readyz to name the disk");
    FWT_ASSERT(fwt_send_wait(&send, 60000) != 0); /* it gave up: nothing more arrives */
    struct rlimit big = {.rlim_cur = RLIM_INFINITY, .rlim_max = RLIM_INFINITY};
    FWT_ASSERT_OK(prlimit(w1.proc.pid, RLIMIT_FSIZE, &big, NULL));
    fwt_cal_wait_ready(&w1, "/readyz to say ready again with no traffic");
    fwt_cal_stop(&w1);
    fwt_zk_stop(&zk);
}
