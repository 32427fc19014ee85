/*
 * Issue 3's main test: 1,000,000 lines through `freeway send` into a
 * category of 8 buckets spread over 2 calligraphus writers (real
 * ZooKeeper, real processes, one shared root). Every line is stored exactly
 * once, in send order per key, and `freeway verify` finds the root clean.
 */
#include "fwt_cal.h"
#include "fwt_root.h"
#include "fwt_zk.h"
#include "fwtest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LINES 1000000
#define KEYS  100

static fwt_cal_t w1, w2;

FWT_TEST(a_million_lines_over_two_writers)
{
    fwt_zk_t zk;
    fwt_zk_start(&zk);
    char spec[128], root[FWT_PATH_MAX], input[FWT_PATH_MAX], log[FWT_PATH_MAX];
    snprintf(spec, sizeof(spec), "%s/freeway", zk.connect);
    snprintf(root, sizeof(root), "%s/root", fwt_tmpdir_mem());
    snprintf(input, sizeof(input), "%s/lines", fwt_tmpdir());
    snprintf(log, sizeof(log), "%s/send.log", fwt_tmpdir());
    /* Small segments, so the run also rolls many times (ids from ZooKeeper). */
    const char *cat_flags[] = {"--roll-bytes", "1M", NULL};
    fwt_category_create(spec, "web", 8, cat_flags);
    fwt_cal_start(&w1, "w1", spec, root, NULL);
    fwt_cal_start(&w2, "w2", spec, root, NULL);
    fwt_cal_wait_balanced(&w1, &w2, 4, "4 buckets on each writer");

    FILE *f = fopen(input, "w");
    FWT_ASSERT(f != NULL);
    fwt_lines_write(f, 0, LINES, KEYS);
    fclose(f);
    fwt_proc_t send;
    fwt_send_spawn(&send, spec, "web", input, log, NULL);
    int rc = fwt_send_wait(&send, 300000);
    char tail[4096];
    if (rc != 0)
        FWT_FAIL("freeway send exited %d:\n%s", rc, fwt_file_tail(log, 20, tail, sizeof(tail)));
    FWT_ASSERT(fwt_file_contains(log, "1000000"));

    fwt_cal_stop(&w1);
    fwt_cal_stop(&w2);
    fwt_lines_report_t r;
    fwt_lines_check(root, "web", LINES, KEYS, &r);
    FWT_ASSERT_UINT_EQ(r.missing, 0);
    FWT_ASSERT_UINT_EQ(r.dups, 0);
    FWT_ASSERT_UINT_EQ(r.disorder, 0);
    FWT_ASSERT_UINT_EQ(r.foreign, 0);
    FWT_ASSERT_UINT_EQ(r.records, LINES);

    char *out = NULL;
    char *const verify[] = {(char *)fwt_bin("freeway"), "verify", root, NULL};
    FWT_ASSERT_INT_EQ(fwt_run(verify, 60000, &out), 0);
    FWT_ASSERT(out != NULL && strstr(out, "1000000 records") != NULL);
    free(out);
    fwt_zk_stop(&zk);
}
