/*
 * A category deleted and created again with fewer buckets (and another
 * config) is a new category under the old name: the writer follows its
 * bucket count and config, owns its buckets, and its /readyz says 200. The
 * old, higher buckets have no bucket node any more: nobody can own them,
 * so they must not count as buckets without an owner (which kept every
 * writer unready for good).
 *
 * Once with the writer watching the delete, and once with the writer frozen
 * (SIGSTOP) through the delete and the create, so that it never sees the
 * category gone, only its config changed to fewer buckets. And a bucket
 * node deleted by hand from a category that stays: no writer can own that
 * bucket, so it does not hold /readyz either.
 */
#include "fwt_cal.h"
#include "fwt_wire.h"
#include "fwt_zk.h"
#include "fwtest.h"

#include "proto/common.pb-c.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static fwt_zk_t zk;
static fwt_cal_t w1;
static char spec[128], root[FWT_PATH_MAX];

static void start(void)
{
    fwt_zk_start(&zk);
    snprintf(spec, sizeof(spec), "%s/freeway", zk.connect);
    snprintf(root, sizeof(root), "%s/root", fwt_tmpdir_mem());
    fwt_category_create(spec, "web", 4, NULL);
    fwt_cal_start(&w1, "w1", spec, root, NULL);
    fwt_cal_wait_owns(&w1, 4, "the writer to own the 4 buckets");
    fwt_cal_wait_ready(&w1, "the writer to be ready");
}

static void delete_web(void)
{
    char *out = NULL;
    char *const argv[] = {
        (char *)fwt_bin("freeway"), "category", "delete", "web", "--zk", spec, NULL};
    int rc = fwt_run(argv, 30000, &out);
    if (rc != 0)
        FWT_FAIL("category delete failed (%d): %s", rc, out ? out : "");
    free(out);
}

/* Two buckets now, and records of at most 1 KiB. */
static void create_web_again(void)
{
    const char *extra[] = {"--max-record-bytes", "1K", NULL};
    fwt_category_create(spec, "web", 2, extra);
}

/* One block of n records of len bytes to (web, bucket) through w1: its status. */
static int produce(uint32_t bucket, uint64_t producer, int n, size_t len)
{
    int fd = fwt_wire_connect(w1.address);
    fw_buf_t block = FW_BUF_INIT;
    fwt_wire_block(&block, producer, 1, n, len);
    int status = fwt_wire_produce(fd, 1, "web", bucket, block.data, block.len, NULL);
    fw_buf_free(&block);
    close(fd);
    return status;
}

/* The writer follows the new category: its buckets, its record limit, and ready. */
static void check_new_category(void)
{
    /* Exactly 2 open: the writer has read the new category (its read was
     * asked for before the old owner nodes went, so answered first). */
    fwt_cal_wait_owns(&w1, 2, "the writer to own the new category's 2 buckets");
    fwt_cal_wait_ready(&w1, "the writer to be ready with the new category");
    FWT_ASSERT_INT_EQ(produce(1, 11, 3, 100), FWPB__STATUS__STATUS_OK);
    FWT_ASSERT_INT_EQ(produce(3, 12, 3, 100), FWPB__STATUS__STATUS_BUCKET_OUT_OF_RANGE);
    FWT_ASSERT_INT_EQ(produce(0, 13, 1, 2000), FWPB__STATUS__STATUS_RECORD_TOO_LARGE);
    FWT_ASSERT_INT_EQ(fwt_cal_http_status(&w1, "/readyz"), 200);
    fwt_cal_stop(&w1);
    fwt_zk_stop(&zk);
}

FWT_TEST(a_category_created_again_with_fewer_buckets_leaves_the_writer_ready)
{
    start();
    delete_web();
    fwt_cal_wait_owns(&w1, 0, "the writer to let the deleted category's buckets go");
    create_web_again();
    check_new_category();
}

FWT_TEST(a_category_replaced_while_the_writer_is_frozen_leaves_it_ready)
{
    start();
    /* Well within the session timeout (10 s) and the loop watchdog (5 s). */
    FWT_ASSERT_OK(fwt_proc_signal(&w1.proc, SIGSTOP));
    delete_web();
    create_web_again();
    FWT_ASSERT_OK(fwt_proc_signal(&w1.proc, SIGCONT));
    check_new_category();
}

/* A bucket node deleted by hand from a category that stays: nobody can
 * own that bucket any more, so it does not hold /readyz. (Deleted while no
 * writer runs: a writer that just lost the bucket would say 200 for a
 * moment anyway, on the census from before the loss.) */
FWT_TEST(a_bucket_without_its_node_does_not_hold_readyz)
{
    start();
    fwt_cal_stop(&w1);
    zhandle_t *zh = fwt_zk_client(zk.connect);
    FWT_ASSERT_INT_EQ(zoo_delete(zh, "/freeway/buckets/web/3", -1), ZOK);
    zookeeper_close(zh);
    fwt_cal_restart(&w1);
    fwt_cal_wait_owns(&w1, 3, "the writer to own the 3 buckets left");
    fwt_cal_wait_ready(&w1, "the writer to be ready without bucket 3");
    FWT_ASSERT_INT_EQ(produce(0, 11, 3, 100), FWPB__STATUS__STATUS_OK);
    fwt_cal_stop(&w1);
    fwt_zk_stop(&zk);
}
