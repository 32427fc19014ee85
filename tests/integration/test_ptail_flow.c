/*
 * Flow control at ptail: a slow consumer slows only itself, and ptail's
 * memory stays bounded by its configuration whatever its consumers do.
 * Three subscribers read one 64 MB category at once: one grants little
 * credit (ptail must stop at its credit), one grants plenty but never reads
 * its socket (ptail's output buffer must hold, not grow), and one reads
 * everything at full speed meanwhile.
 */
#include "fwt_cal.h"
#include "fwt_stream.h"
#include "fwt_zk.h"
#include "fwtest.h"

#include "client/freeway.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RECORDS      64000
#define VALUE_SIZE   1024
#define OUT_BUFFER   (256 << 10)
#define SMALL_CREDIT (300 << 10)

/* Peak resident memory of a process, in KiB (VmHWM). */
static long peak_rss_kib(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    FWT_ASSERT(f != NULL);
    long kib = -1;
    while (fgets(line, sizeof(line), f) != NULL)
        if (sscanf(line, "VmHWM: %ld kB", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

static void produce(const char *spec)
{
    fw_producer_options_t o;
    fw_producer_options_init(&o);
    o.zk = spec;
    fw_producer_t *p;
    FWT_ASSERT_OK(fw_producer_create(&p, &o));
    uint8_t value[VALUE_SIZE];
    for (int i = 0; i < RECORDS; i++) {
        fwt_rand_bytes(value, sizeof(value)); /* incompressible: 64 MB on disk */
        FWT_ASSERT_OK(fw_producer_send(p, "big", NULL, 0, value, sizeof(value), 0, NULL, NULL));
    }
    FWT_ASSERT_OK(fw_producer_flush(p, 60000));
    fw_producer_stats_t st;
    fw_producer_stats(p, &st);
    FWT_ASSERT_UINT_EQ(st.records_failed, 0);
    FWT_ASSERT_UINT_EQ(st.records_acked, RECORDS);
    FWT_ASSERT_OK(fw_producer_close(p, 10000));
}

#define SLOW_LAG "freeway_ptail_lag_bytes{category=\"big\",bucket=\"0\",consumer=\"slow\"}"

#define FAST_LAG "freeway_ptail_lag_bytes{category=\"big\",bucket=\"0\",consumer=\"fast\"}"

/* Lag is refreshed every --poll: a refresh made while the fast one still read may show for 1 s. */
static int lags_tell_them_apart(void *arg)
{
    return fwt_cal_metric(arg, SLOW_LAG) > 0 && fwt_cal_metric(arg, FAST_LAG) == 0;
}

static int no_subscribers(void *arg)
{
    return fwt_cal_metric(arg, "freeway_ptail_subscribers") == 0;
}

FWT_TEST(a_slow_consumer_slows_only_itself_and_memory_stays_bounded)
{
    fwt_zk_t zk;
    fwt_zk_start(&zk);
    char spec[128], root[FWT_PATH_MAX];
    snprintf(spec, sizeof(spec), "%s/freeway", zk.connect);
    snprintf(root, sizeof(root), "%s/root", fwt_tmpdir_mem());
    fwt_category_create(spec, "big", 2, NULL);
    fwt_cal_t cal, pt;
    fwt_cal_start(&cal, "w1", spec, root, NULL);
    fwt_cal_wait_owns(&cal, 2, "the writer to own every bucket");
    const char *pt_flags[] = {"--out-buffer", "256K", NULL};
    fwt_ptail_start(&pt, "p1", spec, root, pt_flags);
    produce(spec);
    long rss_before = peak_rss_kib(pt.proc.pid);

    Fwpb__SubscribeRequest req = FWPB__SUBSCRIBE_REQUEST__INIT;
    req.category = "big";
    req.has_initial_credit_bytes = 1;

    /* Plenty of credit, but it never reads: its bytes pile up in ptail, or must not. */
    req.initial_credit_bytes = 1ull << 30;
    req.consumer_name = "stuck";
    fwt_stream_t stuck;
    fwt_stream_open(&stuck, pt.address, &req, NULL, NULL);
    /* Little credit, read as it comes. */
    req.initial_credit_bytes = SMALL_CREDIT;
    req.consumer_name = "slow";
    fwt_stream_t slow;
    fwt_stream_open(&slow, pt.address, &req, NULL, NULL);
    /* The one that keeps up gets everything while the other two hold back. */
    req.initial_credit_bytes = 4u << 20;
    req.consumer_name = "fast";
    fwt_stream_t fast;
    fwt_stream_open(&fast, pt.address, &req, NULL, NULL);
    while (fast.records < RECORDS) {
        if (fwt_stream_step(&fast, 10000) != 1)
            FWT_FAIL("the fast consumer stalled after %llu records",
                     (unsigned long long)fast.records);
        if (fast.stream_bytes > 2u << 20) {
            fwt_stream_credit(&fast, fast.stream_bytes); /* what it has taken */
            fast.stream_bytes = 0;
        }
    }
    printf("fast consumer: %d records while the others held back\n", RECORDS);

    /* The slow one got no more than its credit and one frame (a block is under 1 MiB here). */
    int rc;
    while ((rc = fwt_stream_step(&slow, 500)) == 1)
        ;
    FWT_ASSERT_INT_EQ(rc, -ETIMEDOUT);
    printf("slow consumer: %llu bytes on %u of credit, %llu records\n",
           (unsigned long long)slow.stream_bytes, SMALL_CREDIT, (unsigned long long)slow.records);
    FWT_ASSERT(slow.stream_bytes <= SMALL_CREDIT + (1u << 20));
    FWT_ASSERT(slow.records < RECORDS / 4);

    /* ptail held the stuck one's stream in its bounded buffers: no copy of the category. */
    long rss_after = peak_rss_kib(pt.proc.pid);
    printf("ptail peak RSS: %ld KiB before the streams, %ld KiB after (category: %d MiB)\n",
           rss_before, rss_after, RECORDS * VALUE_SIZE >> 20);
    FWT_ASSERT(rss_after - rss_before < 24 * 1024);

    /* The lag metrics tell them apart (ptail refreshes them every --poll, 1 s). */
    fwt_wait_until(lags_tell_them_apart, &pt, 10000,
                   "ptail to report the slow consumer's lag and none for the fast one");
    FWT_ASSERT(fwt_cal_metric(&pt, "freeway_ptail_subscribers") == 3);

    /* Credit given, the slow one catches up; then the stuck one reads, and has it all. */
    fwt_stream_credit(&slow, 1ull << 30);
    fwt_stream_until(&slow, RECORDS, 10000);
    fwt_stream_until(&stuck, RECORDS, 10000);
    FWT_ASSERT_UINT_EQ(fast.gaps + slow.gaps + stuck.gaps, 0);
    FWT_ASSERT(fwt_cal_metric(&pt, "freeway_ptail_records_sent_total{category=\"big\"}") >=
               3.0 * RECORDS);
    fwt_stream_close(&stuck);
    fwt_stream_close(&slow);
    fwt_stream_close(&fast);
    /* Departed consumers leave no lag series behind. */
    fwt_wait_until(no_subscribers, &pt, 10000, "ptail to see the consumers go");
    FWT_ASSERT(fwt_cal_metric(&pt, SLOW_LAG) < 0);
    FWT_ASSERT(fwt_cal_metric(&pt, FAST_LAG) < 0);
    fwt_cal_stop(&pt);
    fwt_cal_stop(&cal);
    fwt_zk_stop(&zk);
}
