/*
 * Claiming a new category's many buckets: a writer alone takes 2,000 buckets
 * with about two ZooKeeper requests each (a read of the bucket node, a
 * sixteenth of a multi, the owner node's watch) and never has more than a
 * few hundred requests waiting at once; a second writer then gets half of
 * them, and either writer routes a block to any bucket. No timing: the
 * requests are counted (freeway_calligraphus_zookeeper_requests_total, _peak).
 */
#include "fwt_cal.h"
#include "fwt_wire.h"
#include "fwt_zk.h"
#include "fwtest.h"

#include "proto/common.pb-c.h"

#include <stdio.h>
#include <unistd.h>

#define BUCKETS 2000

static fwt_cal_t w1, w2;

/* Nothing waits for ZooKeeper and nothing was sent since the last look. */
static int settled(void *arg)
{
    double *last = arg;
    double total = fwt_cal_metric(&w1, "freeway_calligraphus_zookeeper_requests_total");
    double waiting = fwt_cal_metric(&w1, "freeway_calligraphus_zookeeper_requests_waiting");
    int same = total == *last;
    *last = total;
    return same && waiting == 0;
}

static int produce_once(const fwt_cal_t *w, uint32_t bucket, uint64_t producer)
{
    int fd = fwt_wire_connect(w->address);
    fw_buf_t block = FW_BUF_INIT;
    fwt_wire_block(&block, producer, 1, 2, 20);
    int status = fwt_wire_produce(fd, 1, "wide", bucket, block.data, block.len, NULL);
    fw_buf_free(&block);
    close(fd);
    return status;
}

FWT_TEST(a_writer_claims_many_buckets_with_few_requests)
{
    fwt_zk_t zk;
    fwt_zk_start(&zk);
    char spec[128], root[FWT_PATH_MAX];
    snprintf(spec, sizeof(spec), "%s/freeway", zk.connect);
    snprintf(root, sizeof(root), "%s/root", fwt_tmpdir_mem());
    fwt_cal_start(&w1, "w1", spec, root, NULL);
    fwt_category_create(spec, "wide", BUCKETS, NULL);
    fwt_cal_wait_owns(&w1, BUCKETS, "w1 to own every bucket");
    double last = -1;
    fwt_wait_until(settled, &last, 30000, "w1's requests to settle");

    /* Everything since w1 started: its session, registration and catalog
     * (a few dozen), then per bucket a read, a share of a multi and a watch.
     * One at a time (a read, a multi, and watches set before and fired by
     * the takeover) it was five. */
    double total = fwt_cal_metric(&w1, "freeway_calligraphus_zookeeper_requests_total");
    if (total > 2.5 * BUCKETS + 100)
        FWT_FAIL("%.0f ZooKeeper requests for %d buckets", total, BUCKETS);
    /* Reads go through a bounded queue and takes through a bounded window;
     * all of them at once would put one request per bucket in flight. */
    double peak = fwt_cal_metric(&w1, "freeway_calligraphus_zookeeper_requests_peak");
    printf("%d buckets: %.0f ZooKeeper requests, at most %.0f waiting at once\n", BUCKETS, total,
           peak);
    if (peak > 600)
        FWT_FAIL("%.0f requests waited for ZooKeeper at once", peak);

    /* A second writer: w1 hands back half (a few at a time), w2 takes them. */
    fwt_cal_start(&w2, "w2", spec, root, NULL);
    fwt_cal_wait_balanced(&w1, &w2, BUCKETS / 2, "each writer to own half");
    FWT_ASSERT(fwt_file_contains(w1.log_path, "handing back"));
    FWT_ASSERT(!fwt_file_contains(w1.log_path, "lost ownership"));
    FWT_ASSERT(!fwt_file_contains(w2.log_path, "lost ownership"));
    /* Each knows who owns every bucket: a block to any bucket through either
     * writer is stored (by its owner, forwarded if need be). */
    uint32_t probes[] = {0, 1, BUCKETS / 2, BUCKETS - 1};
    for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++) {
        FWT_ASSERT_INT_EQ(produce_once(&w1, probes[i], 100 + i), FWPB__STATUS__STATUS_OK);
        FWT_ASSERT_INT_EQ(produce_once(&w2, probes[i], 200 + i), FWPB__STATUS__STATUS_OK);
    }
    fwt_cal_stop(&w2);
    fwt_cal_wait_owns(&w1, BUCKETS, "w1 to take w2's buckets back");
    fwt_cal_stop(&w1);
    fwt_zk_stop(&zk);
}
