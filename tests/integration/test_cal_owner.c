/*
 * Bucket ownership against a real ZooKeeper: two writers race for a bucket,
 * exactly one wins; the loser learns who owns it; when the winner's session
 * expires the other takes over at a higher epoch, and the old owner's
 * writes to the bucket are fenced.
 */
#include "fwtest.h"
#include "fwt_cal.h"
#include "fwt_proc.h"
#include "fwt_zk.h"

#include "error.h"
#include "owner.h"

#include <stdlib.h>

typedef struct writer_s {
    fw_zk_t zk;
    fw_zk_state_t state;
    int expired_seen;
    cal_owner_t own;
    int done;
    int status;
} writer_t;

static uv_loop_t loop;
static uv_timer_t deadline;
static int timed_out;

static void on_deadline(uv_timer_t *t)
{
    (void)t;
    timed_out = 1;
}

static void run_until(int (*pred)(void *), void *arg, const char *what)
{
    timed_out = 0;
    uv_timer_start(&deadline, on_deadline, 20000, 0);
    while (!pred(arg) && !timed_out)
        uv_run(&loop, UV_RUN_ONCE);
    uv_timer_stop(&deadline);
    if (!pred(arg))
        FWT_FAIL("timed out waiting for %s", what);
}

static void on_state(fw_zk_t *zk, fw_zk_state_t state, int64_t sid, void *arg)
{
    (void)zk;
    (void)sid;
    writer_t *w = arg;
    w->state = state;
    if (state == FW_ZK_EXPIRED)
        w->expired_seen = 1;
}

static int connected(void *arg)
{
    return ((writer_t *)arg)->state == FW_ZK_CONNECTED;
}

static int done(void *arg)
{
    return ((writer_t *)arg)->done;
}

static int expired(void *arg)
{
    writer_t *w = arg;
    uv_run(&loop, UV_RUN_NOWAIT);
    return w->expired_seen;
}

static void on_owner(cal_owner_t *o, int status)
{
    writer_t *w = o->data;
    w->status = status;
    w->done = 1;
}

static void start_writer(writer_t *w, const char *connect, const char *id, const char *addr)
{
    memset(w, 0, sizeof(*w));
    fw_zk_options_t opts = {.connect = connect, .create_chroot = 1, .session_timeout_ms = 4000};
    opts.state_cb = on_state;
    opts.state_arg = w;
    FWT_ASSERT_OK(fw_zk_init(&w->zk, &loop, &opts));
    run_until(connected, w, "a session");
    cal_owner_init(&w->own, &w->zk, "clicks", 0, id, addr);
    w->own.data = w;
}

static int closed_count;

static void on_zk_closed(fw_zk_t *zk)
{
    (void)zk;
    closed_count++;
}

static int both_closed(void *arg)
{
    (void)arg;
    return closed_count == 2;
}

FWT_TEST(race_takeover_and_fencing)
{
    fwt_zk_t server;
    fwt_zk_start(&server);
    char spec[256];
    snprintf(spec, sizeof(spec), "%s/owner-test", server.connect);
    fwt_category_create(spec, "clicks", 1, NULL);

    FWT_ASSERT_OK(uv_loop_init(&loop));
    uv_timer_init(&loop, &deadline);
    writer_t *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b));
    start_writer(a, spec, "writer-a", "127.0.0.1:7001");
    start_writer(b, spec, "writer-b", "127.0.0.1:7002");

    /* Both try at once: exactly one wins. */
    FWT_ASSERT_OK(cal_owner_take(&a->own, on_owner));
    FWT_ASSERT_OK(cal_owner_take(&b->own, on_owner));
    run_until(done, a, "a's takeover");
    run_until(done, b, "b's takeover");
    writer_t *win = a->status == 0 ? a : b, *lose = win == a ? b : a;
    FWT_ASSERT_OK(win->status);
    FWT_ASSERT_INT_EQ(lose->status, FW_ENOT_OWNER);
    FWT_ASSERT_STR_EQ(lose->own.owner_node, win->own.node_id);
    FWT_ASSERT_STR_EQ(lose->own.owner_address, win->own.address);
    FWT_ASSERT_UINT_EQ(win->own.epoch, 1);
    FWT_ASSERT_UINT_EQ(win->own.reserved_id, 1); /* the takeover reserves the first id */
    FWT_ASSERT_UINT_EQ(win->own.next_segment_id, 2);

    /* The owner reserves segment ids; they rise. */
    win->done = 0;
    FWT_ASSERT_OK(cal_owner_reserve_segment(&win->own, on_owner));
    run_until(done, win, "a reservation");
    FWT_ASSERT_OK(win->status);
    FWT_ASSERT_UINT_EQ(win->own.reserved_id, 2);
    FWT_ASSERT_UINT_EQ(win->own.next_segment_id, 3);

    /* The winner's session ends; its ephemeral owner node goes with it. */
    clientid_t cid;
    FWT_ASSERT_OK(fw_zk_client_id(&win->zk, &cid));
    fwt_zk_expire_session(server.connect, &cid, expired, win, 15000);
    lose->done = 0;
    FWT_ASSERT_OK(cal_owner_take(&lose->own, on_owner));
    run_until(done, lose, "the takeover after expiry");
    FWT_ASSERT_OK(lose->status);
    FWT_ASSERT_UINT_EQ(lose->own.epoch, 2);
    FWT_ASSERT_UINT_EQ(lose->own.reserved_id, 3); /* ids keep rising across owners */

    /* The old owner still thinks it owns the bucket: its writes are fenced. */
    run_until(connected, win, "the old owner's new session");
    win->done = 0;
    FWT_ASSERT_OK(cal_owner_reserve_segment(&win->own, on_owner));
    run_until(done, win, "the fenced reservation");
    FWT_ASSERT_INT_EQ(win->status, FW_ENOT_OWNER);
    FWT_ASSERT(!win->own.owned);

    /* A reservation whose answer was lost leaves the owner a stale version
     * of the bucket node; a release must still delete its owner node. */
    int before = lose->own.version;
    lose->done = 0;
    FWT_ASSERT_OK(cal_owner_reserve_segment(&lose->own, on_owner));
    run_until(done, lose, "a reservation");
    FWT_ASSERT_OK(lose->status);
    FWT_ASSERT(lose->own.version > before);
    lose->own.version = before;

    /* A graceful release frees the bucket for the next taker. */
    lose->done = 0;
    FWT_ASSERT_OK(cal_owner_release(&lose->own, on_owner));
    run_until(done, lose, "the release");
    FWT_ASSERT_OK(lose->status);
    win->done = 0;
    FWT_ASSERT_OK(cal_owner_take(&win->own, on_owner));
    run_until(done, win, "the takeover after release");
    FWT_ASSERT_OK(win->status);
    FWT_ASSERT_UINT_EQ(win->own.epoch, 3);

    fw_zk_close(&a->zk, on_zk_closed);
    fw_zk_close(&b->zk, on_zk_closed);
    run_until(both_closed, NULL, "the sessions to close");
    uv_close((uv_handle_t *)&deadline, NULL);
    FWT_ASSERT_OK(uv_run(&loop, UV_RUN_DEFAULT));
    FWT_ASSERT_OK(uv_loop_close(&loop));
    free(a);
    free(b);
}

/* ---- taking many buckets in one multi ------------------------------------------ */

typedef struct learn_s {
    cal_owner_t *o;
    int done;
} learn_t;

static void on_bucket_read(fw_zk_t *zk, int rc, const char *data, size_t len,
                           const struct Stat *stat, void *arg)
{
    (void)zk;
    learn_t *l = arg;
    if (rc == ZOK)
        FWT_ASSERT_OK(cal_owner_learn(l->o, data, len, stat));
    l->done = rc == ZOK ? 1 : -1;
}

static int learned(void *arg)
{
    return ((learn_t *)arg)->done != 0;
}

/* What the writer's probe does: read the bucket node and remember it. */
static void learn(writer_t *w, cal_owner_t *o)
{
    learn_t l = {o, 0};
    char path[300];
    cal_owner_bucket_path(o, path, sizeof(path));
    FWT_ASSERT_OK(fw_zk_get(&w->zk, path, NULL, NULL, on_bucket_read, &l));
    run_until(learned, &l, "a read of the bucket node");
    FWT_ASSERT_INT_EQ(l.done, 1);
    FWT_ASSERT(o->meta_known);
}

#define MANY 5

static int many_done;
static int many_status[MANY];

static void on_many(cal_owner_t *o, int status)
{
    many_status[o->bucket] = status;
    many_done++;
}

static int all_many_done(void *arg)
{
    (void)arg;
    return many_done == MANY;
}

static void on_extra(cal_owner_t *o, int status)
{
    FWT_ASSERT_OK(status);
    (void)o;
    many_done++;
}

static int extra_done(void *arg)
{
    (void)arg;
    return many_done == 2;
}

/* Takes one bucket for w, start to end. */
static void take_one(writer_t *w, cal_owner_t *o)
{
    o->data = w;
    w->done = 0;
    FWT_ASSERT_OK(cal_owner_take(o, on_owner));
    run_until(done, w, "a takeover");
    FWT_ASSERT_OK(w->status);
}

/*
 * One multi takes several buckets, each fenced as alone: a bucket read before
 * someone else took it, one taken and released since it was read (its epoch
 * moved on) and one owned when read each get the answer a lone take would
 * give, and the rest are taken together.
 */
FWT_TEST(take_many_fences_each_bucket_alone)
{
    fwt_zk_t server;
    fwt_zk_start(&server);
    char spec[256];
    snprintf(spec, sizeof(spec), "%s/owner-test", server.connect);
    fwt_category_create(spec, "many", 7, NULL);

    FWT_ASSERT_OK(uv_loop_init(&loop));
    uv_timer_init(&loop, &deadline);
    writer_t *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b));
    start_writer(a, spec, "writer-a", "127.0.0.1:7001");
    start_writer(b, spec, "writer-b", "127.0.0.1:7002");
    cal_owner_t *oa = calloc(MANY, sizeof(*oa)), *ob = calloc(MANY, sizeof(*ob));
    for (uint32_t i = 0; i < MANY; i++) {
        cal_owner_init(&oa[i], &a->zk, "many", i, "writer-a", "127.0.0.1:7001");
        cal_owner_init(&ob[i], &b->zk, "many", i, "writer-b", "127.0.0.1:7002");
    }

    /* Bucket 4 is a's before b reads it; b reads every bucket; then a takes
     * bucket 2, and takes and hands back bucket 3. */
    take_one(a, &oa[4]);
    for (int i = 0; i < MANY; i++)
        learn(b, &ob[i]);
    take_one(a, &oa[2]);
    take_one(a, &oa[3]);
    a->done = 0;
    FWT_ASSERT_OK(cal_owner_release(&oa[3], on_owner));
    run_until(done, a, "a's release");
    FWT_ASSERT_OK(a->status);

    cal_owner_t *all[MANY];
    for (int i = 0; i < MANY; i++)
        all[i] = &ob[i];
    uint64_t sent = fw_zk_requests(&b->zk);
    FWT_ASSERT_OK(cal_owner_take_many(all, MANY, on_many));
    FWT_ASSERT_INT_EQ(cal_owner_take_many(all, 1, on_many), -EBUSY);
    run_until(all_many_done, NULL, "the takeover of many");

    /* Buckets 0 and 1: taken at epoch 1, with the first segment id. */
    for (int i = 0; i < 2; i++) {
        FWT_ASSERT_OK(many_status[i]);
        FWT_ASSERT(ob[i].owned);
        FWT_ASSERT_UINT_EQ(ob[i].epoch, 1);
        FWT_ASSERT_UINT_EQ(ob[i].reserved_id, 1);
        /* What the takeover wrote is known for the next fenced write. */
        FWT_ASSERT(ob[i].meta_known);
        FWT_ASSERT_INT_EQ(ob[i].meta_version, ob[i].version);
    }
    /* Buckets 2 (read before a took it) and 4 (a's when read): a owns them. */
    FWT_ASSERT_INT_EQ(many_status[2], FW_ENOT_OWNER);
    FWT_ASSERT_STR_EQ(ob[2].owner_node, "writer-a");
    FWT_ASSERT_INT_EQ(many_status[4], FW_ENOT_OWNER);
    FWT_ASSERT_STR_EQ(ob[4].owner_node, "writer-a");
    FWT_ASSERT_STR_EQ(ob[4].owner_address, "127.0.0.1:7001");
    FWT_ASSERT(!ob[2].owned && !ob[4].owned);
    /* Bucket 3 changed after b read it: read again, taken above a's epoch
     * and above the segment id a reserved. */
    FWT_ASSERT_OK(many_status[3]);
    FWT_ASSERT_UINT_EQ(ob[3].epoch, 2);
    FWT_ASSERT_UINT_EQ(ob[3].reserved_id, 2);
    /* Four multis (failing on bucket 2's stale read, bucket 4's owner and
     * bucket 3's stale read, then the last two), plus bucket 2's and 3's
     * fresh reads and takes and the reads of who owns 2 and 4. */
    FWT_ASSERT_UINT_EQ(fw_zk_requests(&b->zk) - sent, 10);

    /* Buckets nobody touched since they were read: one request for all. */
    cal_owner_t extra[2];
    for (uint32_t i = 0; i < 2; i++) {
        cal_owner_init(&extra[i], &b->zk, "many", MANY + i, "writer-b", "127.0.0.1:7002");
        learn(b, &extra[i]);
        all[i] = &extra[i];
    }
    many_done = 0;
    sent = fw_zk_requests(&b->zk);
    FWT_ASSERT_OK(cal_owner_take_many(all, 2, on_extra));
    run_until(extra_done, NULL, "the takeover of two");
    FWT_ASSERT_UINT_EQ(fw_zk_requests(&b->zk) - sent, 1);
    FWT_ASSERT(extra[0].owned && extra[1].owned);

    /* a still owns bucket 2: its fenced writes go on; b's takes fenced nothing of it. */
    a->done = 0;
    oa[2].data = a;
    FWT_ASSERT_OK(cal_owner_reserve_segment(&oa[2], on_owner));
    run_until(done, a, "a reservation");
    FWT_ASSERT_OK(a->status);

    fw_zk_close(&a->zk, on_zk_closed);
    fw_zk_close(&b->zk, on_zk_closed);
    run_until(both_closed, NULL, "the sessions to close");
    uv_close((uv_handle_t *)&deadline, NULL);
    FWT_ASSERT_OK(uv_run(&loop, UV_RUN_DEFAULT));
    FWT_ASSERT_OK(uv_loop_close(&loop));
    free(oa);
    free(ob);
    free(a);
    free(b);
}
