/*
 * The writers as a cluster, coordinated by a real ZooKeeper: buckets spread
 * evenly and move when writers join or die; categories and bucket growth are
 * picked up live; a ZooKeeper outage shorter than the session pauses appends
 * (retry-later) and they resume with the same session afterwards; an owner
 * nobody can connect to is given up and tried again.
 */
#include "fwt_cal.h"
#include "fwt_wire.h"
#include "fwt_zk.h"
#include "fwtest.h"

#include "proto/common.pb-c.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static fwt_zk_t zk;
static fwt_cal_t w1, w2;
static char spec[128], root[FWT_PATH_MAX];

static void start_zk(void)
{
    fwt_zk_start(&zk);
    snprintf(spec, sizeof(spec), "%s/freeway", zk.connect);
    snprintf(root, sizeof(root), "%s/root", fwt_tmpdir_mem());
}

static void run_cli(const char *const *argv)
{
    char *out = NULL;
    int rc = fwt_run((char *const *)argv, 30000, &out);
    if (rc != 0)
        FWT_FAIL("%s %s failed (%d): %s", argv[1], argv[2], rc, out ? out : "");
    free(out);
}

/* One block to (category, bucket) through w1 on a fresh connection; the answer's status. */
static int produce_once(const char *category, uint32_t bucket, uint64_t producer, uint64_t seq)
{
    return fwt_wire_produce_once(w1.address, category, bucket, producer, seq, 3, 20);
}

/* Sends producer 900 + bucket's first block to w1; 1 once it is stored, 0 on retry-later. */
static int stored(void *arg)
{
    uint32_t bucket = *(uint32_t *)arg;
    int status = fwt_wire_produce_once(w1.address, "web", bucket, 900 + bucket, 1, 4, 30);
    if (status != FWPB__STATUS__STATUS_RETRY_LATER)
        FWT_ASSERT_INT_EQ(status, FWPB__STATUS__STATUS_OK);
    return status == FWPB__STATUS__STATUS_OK;
}

FWT_TEST(writers_share_buckets_and_take_over_from_the_dead)
{
    start_zk();
    fwt_category_create(spec, "web", 8, NULL);
    const char *flags[] = {"--session-timeout", "2s", NULL};
    fwt_cal_start(&w1, "w1", spec, root, flags);
    fwt_cal_wait_owns(&w1, 8, "w1 alone to own all 8 buckets");
    fwt_cal_start(&w2, "w2", spec, root, flags);
    fwt_cal_wait_owns(&w1, 4, "w1 to hand back 4 buckets");
    fwt_cal_wait_owns(&w2, 4, "w2 to take 4 buckets");
    FWT_ASSERT(fwt_file_contains(w1.log_path, "handing back"));
    /* Any writer takes any block: w1 forwards the buckets w2 owns. Right
     * after the move w1 may not have seen w2's owner nodes yet, or w2 may
     * still be opening a bucket: retry-later, and the same block again. */
    for (uint32_t b = 0; b < 8; b++) {
        uint32_t bucket = b;
        fwt_wait_until(stored, &bucket, 10000, "a block stored through w1");
    }
    FWT_ASSERT(
        fwt_cal_metric(&w1, "freeway_calligraphus_blocks_forwarded_total{category=\"web\"}") >= 4);
    FWT_ASSERT(fwt_cal_metric(&w2, "freeway_calligraphus_records_acked_total{category=\"web\"}") ==
               16);
    fwt_cal_kill(&w2);
    fwt_cal_wait_owns(&w1, 8, "w1 to take the dead writer's buckets");
    fwt_cal_stop(&w1);
    fwt_zk_stop(&zk);
}

/* "late" is unknown, once w1 has read the catalog (retry-later until then). */
static int late_unknown(void *arg)
{
    (void)arg;
    int status = produce_once("late", 0, 5, 1);
    if (status != FWPB__STATUS__STATUS_RETRY_LATER)
        FWT_ASSERT_INT_EQ(status, FWPB__STATUS__STATUS_UNKNOWN_CATEGORY);
    return status == FWPB__STATUS__STATUS_UNKNOWN_CATEGORY;
}

FWT_TEST(categories_and_buckets_are_picked_up_live)
{
    start_zk();
    fwt_cal_start(&w1, "w1", spec, root, NULL);
    fwt_wait_until(late_unknown, NULL, 30000, "w1 to read the catalog and not find \"late\"");
    fwt_category_create(spec, "late", 2, NULL);
    fwt_cal_wait_owns(&w1, 2, "the new category's buckets");
    FWT_ASSERT_INT_EQ(produce_once("late", 1, 5, 1), FWPB__STATUS__STATUS_OK);
    FWT_ASSERT_INT_EQ(produce_once("late", 4, 5, 2), FWPB__STATUS__STATUS_BUCKET_OUT_OF_RANGE);

    const char *alter[] = {
        fwt_bin("freeway"), "category", "alter", "late", "--buckets", "5", "--zk", spec, NULL};
    run_cli(alter);
    fwt_cal_wait_owns(&w1, 5, "the grown category's buckets");
    FWT_ASSERT_INT_EQ(produce_once("late", 4, 6, 1), FWPB__STATUS__STATUS_OK);

    const char *del[] = {fwt_bin("freeway"), "category", "delete", "late", "--zk", spec, NULL};
    run_cli(del);
    fwt_cal_wait_owns(&w1, 0, "the deleted category's buckets to be let go");
    FWT_ASSERT_INT_EQ(produce_once("late", 1, 7, 1), FWPB__STATUS__STATUS_UNKNOWN_CATEGORY);
    fwt_cal_stop(&w1);
    fwt_zk_stop(&zk);
}

static int paused(void *arg)
{
    (void)arg;
    return fwt_file_contains(w1.log_path, "appends pause");
}

/* Retries the same block (the same sequence) until it is stored. */
static int stores_again(void *arg)
{
    uint64_t *seq = arg;
    return produce_once("web", 0, 42, *seq) == FWPB__STATUS__STATUS_OK;
}

FWT_TEST(a_short_zookeeper_outage_pauses_appends_then_resumes)
{
    start_zk();
    fwt_category_create(spec, "web", 2, NULL);
    /* The harness's server grants at most 10 s. */
    const char *flags[] = {"--session-timeout", "10s", NULL};
    fwt_cal_start(&w1, "w1", spec, root, flags);
    fwt_cal_wait_owns(&w1, 2, "w1 to own both buckets");
    uint64_t seq = 1;
    FWT_ASSERT_INT_EQ(produce_once("web", 0, 42, seq), FWPB__STATUS__STATUS_OK);

    /* The outage: the server freezes (SIGSTOP), so the session survives it
     * on the server's side as long as it ends within the session timeout. (A
     * server restart would do too, but ZooKeeper 3.8 can hang connections
     * accepted while it starts up: ZOOKEEPER-5051.) */
    FWT_ASSERT_OK(fwt_proc_signal(&zk.proc, SIGSTOP));
    fwt_wait_until(paused, NULL, 30000, "the writer to notice the outage");
    /* Not knowing whether it still owns the bucket, it stores nothing. */
    int during = produce_once("web", 0, 42, seq + 1);
    FWT_ASSERT_OK(fwt_proc_signal(&zk.proc, SIGCONT));
    FWT_ASSERT_INT_EQ(during, FWPB__STATUS__STATUS_RETRY_LATER);

    seq++;
    fwt_wait_until(stores_again, &seq, 30000, "appends to resume");
    /* The same session came back: the buckets never moved. */
    FWT_ASSERT(!fwt_file_contains(w1.log_path, "expired"));
    FWT_ASSERT(fwt_cal_metric(&w1, "freeway_calligraphus_owned_buckets") == 2);
    fwt_cal_stop(&w1);
    fwt_zk_stop(&zk);
}

/*
 * The chaos run's second finding: a writer that has not read the catalog
 * yet (here: started while ZooKeeper is down) must answer "retry later" for
 * a category it does not know yet, not "unknown category". A producer gives
 * a block up after two such answers, and a block replayed from its spool was
 * already acked as spooled to its application: an acked record was lost.
 * Once the catalog is read, a category that does not exist is unknown.
 */
FWT_TEST(a_writer_that_has_not_read_the_catalog_says_retry_later)
{
    start_zk();
    fwt_category_create(spec, "web", 2, NULL);
    fwt_zk_stop(&zk);
    fwt_cal_start(&w1, "w1", spec, root, NULL);
    FWT_ASSERT_INT_EQ(produce_once("web", 0, 77, 1), FWPB__STATUS__STATUS_RETRY_LATER);
    FWT_ASSERT_INT_EQ(produce_once("nosuch", 0, 77, 1), FWPB__STATUS__STATUS_RETRY_LATER);
    fwt_zk_restart(&zk);
    fwt_cal_wait_owns(&w1, 2, "w1 to own both buckets once ZooKeeper is back");
    FWT_ASSERT_INT_EQ(produce_once("web", 0, 77, 1), FWPB__STATUS__STATUS_OK);
    FWT_ASSERT_INT_EQ(produce_once("nosuch", 0, 77, 1), FWPB__STATUS__STATUS_UNKNOWN_CATEGORY);
    fwt_cal_stop(&w1);
    fwt_zk_stop(&zk);
}

/* A loopback port that completes no connection: a listener whose one-slot queue is full. */
typedef struct blackhole_s {
    int listener;
    int fillers[4];
    int port;
} blackhole_t;

static void blackhole_open(blackhole_t *b)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    b->listener = socket(AF_INET, SOCK_STREAM, 0);
    FWT_ASSERT_OK(bind(b->listener, (struct sockaddr *)&sa, sizeof(sa)));
    FWT_ASSERT_OK(listen(b->listener, 0));
    FWT_ASSERT_OK(getsockname(b->listener, (struct sockaddr *)&sa, &len));
    b->port = ntohs(sa.sin_port);
    /* Never accepted: these fill the queue, and later SYNs are dropped (and sent again). */
    for (int i = 0; i < 4; i++) {
        b->fillers[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        (void)connect(b->fillers[i], (struct sockaddr *)&sa, sizeof(sa));
    }
}

static void blackhole_close(blackhole_t *b)
{
    for (int i = 0; i < 4; i++)
        close(b->fillers[i]);
    close(b->listener);
}

static int given_up_twice(void *arg)
{
    (void)arg;
    /* Each forward after a give-up makes a new connection, given up in its turn. */
    int found = 0;
    FILE *f = fopen(w1.log_path, "r");
    char line[1024];
    while (f != NULL && fgets(line, sizeof(line), f) != NULL)
        found += strstr(line, "no connection within 1000 ms") != NULL;
    if (f != NULL)
        fclose(f);
    return found >= 2;
}

/*
 * An owner whose published address takes no connection (SYNs dropped, a
 * name stuck in DNS): the writer relaying to it answers retry-later at the
 * forward timeout, gives the connection up after as long (else every block
 * forwarded meanwhile stays queued for it), and the next forward tries anew.
 */
FWT_TEST(a_peer_that_takes_no_connection_is_given_up_and_tried_again)
{
    start_zk();
    fwt_category_create(spec, "web", 2, NULL);
    blackhole_t hole;
    blackhole_open(&hole);
    char advertise[64];
    snprintf(advertise, sizeof(advertise), "127.0.0.1:%d", hole.port);
    const char *w1_flags[] = {"--forward-timeout", "1s", NULL};
    const char *w2_flags[] = {"--advertise", advertise, NULL};
    fwt_cal_start(&w1, "w1", spec, root, w1_flags);
    fwt_cal_wait_owns(&w1, 2, "w1 alone to own both buckets");
    fwt_cal_start(&w2, "w2", spec, root, w2_flags);
    fwt_cal_wait_owns(&w2, 1, "w2 to take a bucket");
    fwt_cal_wait_owns(&w1, 1, "w1 to hand one back");
    /* Both buckets through w1 (its own is stored, again and again as a duplicate; w2's waits
     * out the forward timeout) until w1 has given up on w2's address twice. */
    int64_t give_up = fwt_now_ms() + 30000;
    while (!given_up_twice(NULL) && fwt_now_ms() < give_up) {
        for (uint32_t b = 0; b < 2; b++) {
            int status = produce_once("web", b, 300 + b, 1);
            if (status != FWPB__STATUS__STATUS_OK)
                FWT_ASSERT_INT_EQ(status, FWPB__STATUS__STATUS_RETRY_LATER);
        }
    }
    char tail[4096];
    if (!given_up_twice(NULL))
        FWT_FAIL("w1 did not give up on %s twice:\n%s", advertise,
                 fwt_file_tail(w1.log_path, 20, tail, sizeof(tail)));
    fwt_cal_stop(&w2);
    fwt_cal_stop(&w1);
    blackhole_close(&hole);
    fwt_zk_stop(&zk);
}
