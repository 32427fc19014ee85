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

typedef struct env_s {
    fwt_zk_t zk;
    char spec[128], root[FWT_PATH_MAX], input[FWT_PATH_MAX], log[FWT_PATH_MAX];
    fwt_proc_t send;
} env_t;

/*
 * A writer owning `buckets` buckets, ready, under a segment size limit of
 * limit bytes, and `freeway send` of lines numbered [0, lines) over keys
 * keys, giving up after `timeout`; returns once the writer logged a failed
 * write and /readyz names the disk.
 */
static void start_full(env_t *e, int buckets, rlim_t limit, uint64_t lines, int keys,
                       const char *timeout)
{
    fwt_zk_start(&e->zk);
    snprintf(e->spec, sizeof(e->spec), "%s/freeway", e->zk.connect);
    snprintf(e->root, sizeof(e->root), "%s/root", fwt_tmpdir_mem());
    snprintf(e->input, sizeof(e->input), "%s/lines", fwt_tmpdir());
    snprintf(e->log, sizeof(e->log), "%s/send.log", fwt_tmpdir());
    fwt_category_create(e->spec, "web", buckets, NULL);
    fwt_cal_start(&w1, "w1", e->spec, e->root, NULL);
    fwt_cal_wait_owns(&w1, buckets, "the writer to own every bucket");
    fwt_cal_wait_ready(&w1, "the writer's /readyz to say ready");

    struct rlimit small = {.rlim_cur = limit, .rlim_max = RLIM_INFINITY};
    FWT_ASSERT_OK(prlimit(w1.proc.pid, RLIMIT_FSIZE, &small, NULL));

    FILE *f = fopen(e->input, "w");
    FWT_ASSERT(f != NULL);
    fwt_lines_write(f, 0, lines, keys);
    fclose(f);
    const char *send_flags[] = {"--codec", "none", "--timeout", timeout, NULL};
    fwt_send_spawn(&e->send, e->spec, "web", e->input, e->log, send_flags);
    fwt_wait_until(write_failed, NULL, 60000, "the writer to hit the size limit");
    /* /readyz says why: an SRE's probe sees the disk, not a vague failure. */
    fwt_cal_wait_unready(&w1, "disk write failed", "the writer's /readyz to name the disk");
}

static void lift_limit(void)
{
    struct rlimit big = {.rlim_cur = RLIM_INFINITY, .rlim_max = RLIM_INFINITY};
    FWT_ASSERT_OK(prlimit(w1.proc.pid, RLIMIT_FSIZE, &big, NULL));
}

FWT_TEST(disk_full_means_retry_later_then_resumes)
{
    env_t e;
    start_full(&e, 2, 256 << 10, LINES, KEYS, "120s");
    FWT_ASSERT(fwt_proc_running(&e.send));
    FWT_ASSERT(fwt_proc_running(&w1.proc));

    lift_limit();
    int rc = fwt_send_wait(&e.send, 180000);
    char tail[4096];
    if (rc != 0)
        FWT_FAIL("freeway send exited %d:\n%s", rc, fwt_file_tail(e.log, 20, tail, sizeof(tail)));
    fwt_cal_wait_ready(&w1, "/readyz to say ready once writes succeed again");
    fwt_cal_stop(&w1);

    fwt_lines_report_t r;
    fwt_lines_check(e.root, "web", LINES, KEYS, &r);
    FWT_ASSERT_UINT_EQ(r.missing, 0);
    FWT_ASSERT_UINT_EQ(r.dups, 0);
    FWT_ASSERT_UINT_EQ(r.disorder, 0);
    fwt_zk_stop(&e.zk);
}

/*
 * Found in review: one failed write, then no traffic. The disk has room
 * again, but no append comes to say so; /readyz must not stay 503 for ever
 * (a load balancer would never send the traffic that clears it). A failure
 * counts only while recent.
 */
FWT_TEST(a_failed_write_then_silence_does_not_hold_readyz)
{
    env_t e;
    start_full(&e, 1, 64 << 10, 5000, 1, "3s");
    FWT_ASSERT(fwt_send_wait(&e.send, 60000) != 0); /* it gave up: nothing more arrives */
    lift_limit();
    fwt_cal_wait_ready(&w1, "/readyz to say ready again with no traffic");
    fwt_cal_stop(&w1);
    fwt_zk_stop(&e.zk);
}
