/*
 * Bucket ownership against a real ZooKeeper: two writers race for a bucket,
 * exactly one wins; the loser learns who owns it; when the winner's session
 * expires the other takes over at a higher epoch, and the old owner's
 * writes to the bucket are fenced.
 */
#include "fwtest.h"
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
    fw_zk_options_t opts = {.connect = connect, .session_timeout_ms = 4000};
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
    char *create[] = {(char *)fwt_bin("freeway"),
                      "category",
                      "create",
                      "clicks",
                      "--buckets",
                      "1",
                      "--zk",
                      spec,
                      NULL};
    char *out;
    FWT_ASSERT_INT_EQ(fwt_run(create, 30000, &out), 0);
    free(out);

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
