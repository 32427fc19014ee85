/*
 * A ZooKeeper outage longer than the writer's session timeout, after which
 * the session comes back: the standalone server is stopped until the writer
 * has dropped its buckets (its lease ran out), then started again on the
 * same port and data directory. The restarted server restores the session
 * (it expires none while it is down itself), so the writer's owner nodes
 * are still there, naming it, though it no longer holds the buckets.
 *
 * The writer must hand those owner nodes back and take the buckets again at
 * a new epoch; /readyz must not say 200 before it has; and a producer's
 * lines, sent before the outage and after it, are each stored exactly once.
 */
#include "fwt_cal.h"
#include "fwt_root.h"
#include "fwt_zk.h"
#include "fwtest.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define LINES   20000
#define KEYS    16
#define BUCKETS 4

static fwt_cal_t w1;

static int first_half_acked(void *arg)
{
    (void)arg;
    return fwt_cal_metric(&w1, "freeway_calligraphus_records_acked_total{category=\"web\"}") >=
           LINES / 2;
}

static int dropped(void *arg)
{
    (void)arg;
    return fwt_file_contains(w1.log_path, "dropping buckets");
}

/* The session is back, or (not what this test is about) it expired. */
static int session_back(void *arg)
{
    (void)arg;
    return fwt_file_contains(w1.log_path, " resumed") ||
           fwt_file_contains(w1.log_path, "session expired");
}

/* Ready again; and whenever /readyz says 200, every bucket is open. */
static int ready_with_buckets(void *arg)
{
    (void)arg;
    int status = -1;
    char *body = fwt_cal_get(&w1, "/readyz", &status);
    int ready = status == 200;
    free(body);
    if (!ready)
        return 0;
    double open = fwt_cal_metric(&w1, "freeway_calligraphus_open_buckets");
    if (open != BUCKETS)
        FWT_FAIL("/readyz said 200 with %g of %d buckets open", open, BUCKETS);
    return 1;
}

FWT_TEST(a_session_that_outlives_a_long_outage_gets_its_buckets_back)
{
    fwt_zk_t zk;
    fwt_zk_start(&zk);
    char spec[128], root[FWT_PATH_MAX], input[FWT_PATH_MAX], log[FWT_PATH_MAX];
    snprintf(spec, sizeof(spec), "%s/freeway", zk.connect);
    snprintf(root, sizeof(root), "%s/root", fwt_tmpdir_mem());
    snprintf(input, sizeof(input), "%s/lines", fwt_tmpdir());
    snprintf(log, sizeof(log), "%s/send.log", fwt_tmpdir());
    fwt_category_create(spec, "web", BUCKETS, NULL);
    /* Long enough for the restarted server to load, and the writer to reconnect
     * (the JVM may hold connections while it starts: ZOOKEEPER-5051), before
     * the session it restored times out again. The server grants up to 10 s. */
    const char *flags[] = {"--session-timeout", "8s", NULL};
    fwt_cal_start(&w1, "w1", spec, root, flags);
    fwt_cal_wait_owns(&w1, BUCKETS, "the writer to own every bucket");
    fwt_cal_wait_ready(&w1, "the writer to be ready");

    /* The producer reads a FIFO: half the lines before the outage, half after. */
    FWT_ASSERT_OK(mkfifo(input, 0600) < 0 ? -errno : 0);
    const char *send_flags[] = {"--timeout", "120s", NULL};
    fwt_proc_t send;
    fwt_send_spawn(&send, spec, "web", input, log, send_flags);
    FILE *f = fopen(input, "w");
    FWT_ASSERT(f != NULL);
    fwt_lines_write(f, 0, LINES / 2, KEYS);
    fflush(f);
    fwt_wait_until(first_half_acked, NULL, 60000, "the first half to be acked");

    fwt_zk_stop(&zk);
    fwt_wait_until(dropped, NULL, 30000, "the writer to drop its buckets");
    fwt_cal_wait_unready(&w1, "ZooKeeper session", "/readyz to name the outage");
    fwt_zk_restart(&zk);
    fwt_wait_until(session_back, NULL, 30000, "the writer's session to come back");
    char tail[4096];
    if (!fwt_file_contains(w1.log_path, " resumed"))
        FWT_FAIL("the session expired, so this run did not test a resumed one:\n%s",
                 fwt_file_tail(w1.log_path, 20, tail, sizeof(tail)));

    /* Its owner nodes survived with the session: it hands them back and
     * takes each bucket again, fenced as any takeover, at epoch 2. */
    fwt_wait_until(ready_with_buckets, NULL, 60000, "the writer to serve its buckets again");
    for (int b = 0; b < BUCKETS; b++) {
        char took[64];
        snprintf(took, sizeof(took), "took web/%d at epoch 2", b);
        if (!fwt_file_contains(w1.log_path, took))
            FWT_FAIL("no \"%s\" in the writer's log:\n%s", took,
                     fwt_file_tail(w1.log_path, 30, tail, sizeof(tail)));
    }

    fwt_lines_write(f, LINES / 2, LINES - LINES / 2, KEYS);
    fclose(f);
    int rc = fwt_send_wait(&send, 150000);
    if (rc != 0)
        FWT_FAIL("freeway send exited %d:\n%s", rc, fwt_file_tail(log, 20, tail, sizeof(tail)));
    fwt_cal_stop(&w1);

    fwt_lines_assert_once(root, "web", LINES, KEYS);
    fwt_zk_stop(&zk);
}
