/*
 * fw_zk (common/zk.c) against a real ZooKeeper server and the real
 * zookeeper_mt client: chroot creation, every operation, watches, the bucket
 * takeover multi, suspension and resumption, expiry and a new session, a
 * server that is down at start, close with work in flight, the loop
 * watchdog, a reader waiting for a missing chroot, ensure_path under
 * another identity's nodes, and the open-ACL warning. Each test runs its
 * own loop with uv_run and waits on conditions with deadlines; a plain
 * ZooKeeper client checks what fw_zk did.
 */
#include "fwt_proc.h"
#include "fwt_zk.h"
#include "fwtest.h"
#include "zk.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>
#include <zookeeper/zookeeper.h>

#define WAIT_MS    10000
#define SESSION_MS 4000

#define ZK_RC_EQ(expr, want)                                                                       \
    do {                                                                                           \
        int zk_rc_ = (expr), zk_want_ = (want);                                                    \
        if (zk_rc_ != zk_want_)                                                                    \
            FWT_FAIL("%s: got %s (%d), want %s (%d)", #expr, zerror(zk_rc_), zk_rc_,               \
                     zerror(zk_want_), zk_want_);                                                  \
    } while (0)

/* ---- one session under test, on the test's loop ---------------------------------------- */

typedef struct sess_s {
    fw_zk_t zk; /* first: the close callback gets back to the sess from it */
    int closed;
    int connects, suspends, expiries;
    int64_t sid;         /* from the last CONNECTED */
    int64_t expired_sid; /* from the last EXPIRED */
    fw_zk_state_t history[32];
    int nhistory;
    /* Runs after the state is recorded, if set. */
    void (*hook)(struct sess_s *s, fw_zk_state_t state);
} sess_t;

static struct {
    uv_loop_t loop;
    uv_timer_t deadline;
    int timed_out;
    pthread_t loop_thread;
    sess_t s;
} * T;

/* Every fw_zk callback must run on the loop, which is the test's thread. */
static void on_loop(void)
{
    if (!pthread_equal(pthread_self(), T->loop_thread))
        FWT_FAIL("a callback ran off the loop thread");
}

static void setup(void)
{
    T = calloc(1, sizeof(*T));
    FWT_ASSERT(T != NULL);
    FWT_ASSERT_OK(uv_loop_init(&T->loop));
    uv_timer_init(&T->loop, &T->deadline);
    T->loop_thread = pthread_self();
}

static void deadline_cb(uv_timer_t *timer)
{
    (void)timer;
    T->timed_out = 1;
}

/* Runs the loop until pred(arg) holds; fails the test after timeout_ms. */
static void run_until(int (*pred)(void *), void *arg, int timeout_ms, const char *what)
{
    T->timed_out = 0;
    uv_timer_start(&T->deadline, deadline_cb, (uint64_t)timeout_ms, 0);
    while (!pred(arg) && !T->timed_out)
        uv_run(&T->loop, UV_RUN_ONCE);
    uv_timer_stop(&T->deadline);
    if (!pred(arg))
        FWT_FAIL("timed out after %d ms waiting for %s (session state %s)", timeout_ms, what,
                 fw_zk_state_name(fw_zk_state(&T->s.zk)));
}

static void on_state(fw_zk_t *zk, fw_zk_state_t state, int64_t sid, void *arg)
{
    on_loop();
    sess_t *s = arg;
    FWT_ASSERT(zk == &s->zk);
    FWT_ASSERT_INT_EQ(fw_zk_state(zk), state);
    if (s->nhistory < 32)
        s->history[s->nhistory++] = state;
    fprintf(stderr, "state %s session 0x%llx\n", fw_zk_state_name(state), (unsigned long long)sid);
    switch (state) {
    case FW_ZK_CONNECTED:
        s->connects++;
        s->sid = sid;
        FWT_ASSERT(sid != 0);
        FWT_ASSERT_INT_EQ(fw_zk_session_id(zk), sid);
        FWT_ASSERT(fw_zk_connected(zk));
        break;
    case FW_ZK_SUSPENDED:
        s->suspends++;
        FWT_ASSERT_INT_EQ(sid, s->sid);
        break;
    case FW_ZK_EXPIRED:
        s->expiries++;
        s->expired_sid = sid;
        FWT_ASSERT_INT_EQ(fw_zk_session_id(zk), 0);
        break;
    default:
        FWT_FAIL("unexpected state %s", fw_zk_state_name(state));
    }
    if (s->hook != NULL)
        s->hook(s, state);
}

static void sess_open(sess_t *s, const char *connect, int timeout_ms, int watchdog)
{
    fw_zk_options_t o = {
        .connect = connect,
        .create_chroot = 1,
        .session_timeout_ms = timeout_ms,
        .state_cb = on_state,
        .state_arg = s,
        .loop_watchdog = watchdog,
    };
    FWT_ASSERT_OK(fw_zk_init(&s->zk, &T->loop, &o));
    FWT_ASSERT_INT_EQ(fw_zk_state(&s->zk), FW_ZK_CONNECTING);
}

static int sess_connected(void *arg)
{
    return fw_zk_connected(&((sess_t *)arg)->zk);
}

static void on_closed(fw_zk_t *zk)
{
    on_loop();
    sess_t *s = (sess_t *)zk;
    s->closed++;
}

static int sess_closed(void *arg)
{
    return ((sess_t *)arg)->closed > 0;
}

static void sess_close(sess_t *s)
{
    int64_t t0 = fwt_now_ms();
    fw_zk_close(&s->zk, on_closed);
    FWT_ASSERT_INT_EQ(fw_zk_state(&s->zk), FW_ZK_CLOSED);
    run_until(sess_closed, s, WAIT_MS, "fw_zk_close to finish");
    FWT_ASSERT_INT_EQ(s->closed, 1);
    fprintf(stderr, "close took %" PRId64 " ms\n", fwt_now_ms() - t0);
}

/* Closes the main session, then checks that the loop has no handle left. */
static void teardown(void)
{
    sess_close(&T->s);
    uv_close((uv_handle_t *)&T->deadline, NULL);
    uv_run(&T->loop, UV_RUN_DEFAULT);
    FWT_ASSERT_INT_EQ(uv_loop_close(&T->loop), 0);
    free(T);
    T = NULL;
}

/* ---- operations, issued and awaited ---------------------------------------------------- */

typedef struct {
    int done;
    int rc;
    char path[256];
    char data[256];
    size_t len;
    struct Stat stat;
    int has_stat;
    int count;
    char names[16][64];
    int nres;
    int res_rc[8];
    char res_path[8][256];
    int res_version[8]; /* -1 without a Stat */
} res_t;

static void create_cb(fw_zk_t *zk, int rc, const char *path, void *arg)
{
    (void)zk;
    on_loop();
    res_t *r = arg;
    r->done++;
    r->rc = rc;
    FWT_ASSERT((rc == ZOK) == (path != NULL));
    snprintf(r->path, sizeof(r->path), "%s", path != NULL ? path : "");
}

static void void_cb(fw_zk_t *zk, int rc, void *arg)
{
    (void)zk;
    on_loop();
    res_t *r = arg;
    r->done++;
    r->rc = rc;
}

static void data_cb(fw_zk_t *zk, int rc, const char *data, size_t len, const struct Stat *stat,
                    void *arg)
{
    (void)zk;
    on_loop();
    res_t *r = arg;
    r->done++;
    r->rc = rc;
    FWT_ASSERT((rc == ZOK) == (data != NULL));
    if (data != NULL) {
        FWT_ASSERT(len < sizeof(r->data));
        FWT_ASSERT_INT_EQ(data[len], '\0');
        memcpy(r->data, data, len + 1);
        r->len = len;
    }
    if (stat != NULL) {
        r->stat = *stat;
        r->has_stat = 1;
    }
}

static void stat_cb(fw_zk_t *zk, int rc, const struct Stat *stat, void *arg)
{
    (void)zk;
    on_loop();
    res_t *r = arg;
    r->done++;
    r->rc = rc;
    FWT_ASSERT((rc == ZOK) == (stat != NULL));
    if (stat != NULL) {
        r->stat = *stat;
        r->has_stat = 1;
    }
}

static void children_cb(fw_zk_t *zk, int rc, int count, const char *const *names, void *arg)
{
    (void)zk;
    on_loop();
    res_t *r = arg;
    r->done++;
    r->rc = rc;
    r->count = count;
    for (int i = 0; i < count && i < 16; i++)
        snprintf(r->names[i], sizeof(r->names[i]), "%s", names[i]);
}

static void multi_cb(fw_zk_t *zk, int rc, int count, const fw_zk_op_result_t *res, void *arg)
{
    (void)zk;
    on_loop();
    res_t *r = arg;
    r->done++;
    r->rc = rc;
    r->nres = count;
    for (int i = 0; i < count && i < 8; i++) {
        r->res_rc[i] = res[i].rc;
        snprintf(r->res_path[i], sizeof(r->res_path[i]), "%s",
                 res[i].path != NULL ? res[i].path : "");
        r->res_version[i] = res[i].stat != NULL ? res[i].stat->version : -1;
    }
}

static int res_done(void *arg)
{
    return ((res_t *)arg)->done > 0;
}

static void await(res_t *r, const char *what)
{
    run_until(res_done, r, WAIT_MS, what);
    FWT_ASSERT_INT_EQ(r->done, 1);
}

static res_t do_create(const char *path, const char *data, int flags)
{
    res_t r = {0};
    FWT_ASSERT_OK(fw_zk_create(&T->s.zk, path, data, strlen(data), flags, create_cb, &r));
    await(&r, "create");
    return r;
}

static res_t do_ensure(const char *path)
{
    res_t r = {0};
    FWT_ASSERT_OK(fw_zk_ensure_path(&T->s.zk, path, void_cb, &r));
    await(&r, "ensure_path");
    return r;
}

static res_t do_get(const char *path)
{
    res_t r = {0};
    FWT_ASSERT_OK(fw_zk_get(&T->s.zk, path, NULL, NULL, data_cb, &r));
    await(&r, "get");
    return r;
}

static res_t do_set(const char *path, const char *data, int version)
{
    res_t r = {0};
    FWT_ASSERT_OK(fw_zk_set(&T->s.zk, path, data, strlen(data), version, stat_cb, &r));
    await(&r, "set");
    return r;
}

static res_t do_exists(const char *path)
{
    res_t r = {0};
    FWT_ASSERT_OK(fw_zk_exists(&T->s.zk, path, NULL, NULL, stat_cb, &r));
    await(&r, "exists");
    return r;
}

static res_t do_delete(const char *path, int version)
{
    res_t r = {0};
    FWT_ASSERT_OK(fw_zk_delete(&T->s.zk, path, version, void_cb, &r));
    await(&r, "delete");
    return r;
}

static res_t do_multi(const fw_zk_op_t *ops, int n)
{
    res_t r = {0};
    FWT_ASSERT_OK(fw_zk_multi(&T->s.zk, ops, n, multi_cb, &r));
    await(&r, "multi");
    return r;
}

/* ---- watches --------------------------------------------------------------------------- */

typedef struct {
    int fired;
    int rc;
    int type;
    char path[256];
} watch_rec_t;

static void watch_cb(fw_zk_t *zk, int rc, int type, const char *path, void *arg)
{
    (void)zk;
    on_loop();
    watch_rec_t *w = arg;
    w->fired++;
    w->rc = rc;
    w->type = type;
    snprintf(w->path, sizeof(w->path), "%s", path);
}

static int watch_fired(void *arg)
{
    return ((watch_rec_t *)arg)->fired > 0;
}

/* ---- a plain ZooKeeper client, to check from the outside -------------------------------- */

struct plain {
    zhandle_t *zh;
    atomic_int state;
};

static void plain_watcher(zhandle_t *zh, int type, int state, const char *path, void *ctx)
{
    (void)zh;
    (void)path;
    if (type == ZOO_SESSION_EVENT)
        atomic_store(&((struct plain *)ctx)->state, state);
}

static void plain_cleanup(void *arg)
{
    struct plain *p = arg;
    if (p->zh != NULL)
        zookeeper_close(p->zh);
    free(p);
}

static int plain_connected(void *arg)
{
    return atomic_load(&((struct plain *)arg)->state) == ZOO_CONNECTED_STATE;
}

/* A synchronous client on connect, closed when the test ends. */
static zhandle_t *plain_open(const char *connect)
{
    struct plain *p = calloc(1, sizeof(*p));
    FWT_ASSERT(p != NULL);
    fwt_defer(plain_cleanup, p);
    p->zh = zookeeper_init(connect, plain_watcher, 10000, NULL, p, ZOO_NO_LOG_CLIENTENV);
    if (p->zh == NULL)
        FWT_FAIL("zookeeper_init(%s): %s", connect, strerror(errno));
    fwt_wait_until(plain_connected, p, WAIT_MS, "the plain client to connect");
    return p->zh;
}

struct count_wait {
    sess_t *s;
    int n;
};

static int connects_reached(void *arg)
{
    struct count_wait *w = arg;
    return w->s->connects >= w->n;
}

static int suspends_reached(void *arg)
{
    struct count_wait *w = arg;
    return w->s->suspends >= w->n;
}

static void wait_connects(sess_t *s, int n, int timeout_ms)
{
    struct count_wait w = {.s = s, .n = n};
    run_until(connects_reached, &w, timeout_ms, "CONNECTED");
}

/* ---- tests ------------------------------------------------------------------------------ */

FWT_TEST(connect_creates_chroot)
{
    setup();
    fwt_zk_t zk;
    fwt_zk_start(&zk);
    char connect[128];
    snprintf(connect, sizeof(connect), "%s/freeway/test", zk.connect);

    int64_t t0 = fwt_now_ms();
    sess_open(&T->s, connect, SESSION_MS, 0);
    wait_connects(&T->s, 1, WAIT_MS);
    fprintf(stderr, "CONNECTED %" PRId64 " ms after fw_zk_init (chroot created on the way)\n",
            fwt_now_ms() - t0);
    FWT_ASSERT(fw_zk_session_timeout(&T->s.zk) > 0);
    clientid_t cid;
    FWT_ASSERT_OK(fw_zk_client_id(&T->s.zk, &cid));
    FWT_ASSERT_INT_EQ(cid.client_id, T->s.sid);

    zhandle_t *plain = plain_open(zk.connect);
    ZK_RC_EQ(zoo_exists(plain, "/freeway", 0, NULL), ZOK);
    ZK_RC_EQ(zoo_exists(plain, "/freeway/test", 0, NULL), ZOK);

    /* Operations are relative to the chroot. */
    res_t r = do_create("/x", "hi", 0);
    ZK_RC_EQ(r.rc, ZOK);
    FWT_ASSERT_STR_EQ(r.path, "/x");
    ZK_RC_EQ(zoo_exists(plain, "/freeway/test/x", 0, NULL), ZOK);
    r = do_exists("/");
    ZK_RC_EQ(r.rc, ZOK);
    FWT_ASSERT_INT_EQ(r.stat.numChildren, 1);

    /* A second session on the chroot that now exists, and one on a sibling. */
    sess_t *other = calloc(1, sizeof(*other));
    FWT_ASSERT(other != NULL);
    sess_open(other, connect, SESSION_MS, 0);
    run_until(sess_connected, other, WAIT_MS, "the second session");
    FWT_ASSERT(other->sid != T->s.sid);
    sess_close(other);
    free(other);

    teardown();
}

FWT_TEST(ops_round_trip)
{
    setup();
    fwt_zk_t zk;
    fwt_zk_start(&zk);
    char connect[128];
    snprintf(connect, sizeof(connect), "%s/freeway/ops", zk.connect);
    sess_open(&T->s, connect, SESSION_MS, 0);
    wait_connects(&T->s, 1, WAIT_MS);

    ZK_RC_EQ(do_ensure("/a/b/c").rc, ZOK);
    ZK_RC_EQ(do_ensure("/a/b/c").rc, ZOK); /* again: nothing to do, still ZOK */
    ZK_RC_EQ(do_ensure("/a").rc, ZOK);
    ZK_RC_EQ(do_ensure("/").rc, ZOK);

    res_t r = do_create("/a/b/c/p", "hello", 0);
    ZK_RC_EQ(r.rc, ZOK);
    FWT_ASSERT_STR_EQ(r.path, "/a/b/c/p");
    ZK_RC_EQ(do_create("/a/b/c/p", "again", 0).rc, ZNODEEXISTS);
    ZK_RC_EQ(do_create("/a/nope/p", "", 0).rc, ZNONODE);

    r = do_create("/a/b/c/e-", "x", FW_ZK_EPHEMERAL | FW_ZK_SEQUENTIAL);
    ZK_RC_EQ(r.rc, ZOK);
    FWT_ASSERT_INT_EQ(strlen(r.path), strlen("/a/b/c/e-") + 10);
    FWT_ASSERT(strncmp(r.path, "/a/b/c/e-", 9) == 0);
    char eph[256];
    snprintf(eph, sizeof(eph), "%s", r.path);
    r = do_exists(eph);
    ZK_RC_EQ(r.rc, ZOK);
    FWT_ASSERT_INT_EQ(r.stat.ephemeralOwner, T->s.sid);

    r = do_get("/a/b/c/p");
    ZK_RC_EQ(r.rc, ZOK);
    FWT_ASSERT_STR_EQ(r.data, "hello");
    FWT_ASSERT_INT_EQ(r.len, 5);
    FWT_ASSERT(r.has_stat);
    FWT_ASSERT_INT_EQ(r.stat.version, 0);
    FWT_ASSERT_INT_EQ(r.stat.ephemeralOwner, 0);
    r = do_get("/a/b/c"); /* ensure_path makes empty nodes */
    ZK_RC_EQ(r.rc, ZOK);
    FWT_ASSERT_INT_EQ(r.len, 0);

    r = do_set("/a/b/c/p", "world", 0);
    ZK_RC_EQ(r.rc, ZOK);
    FWT_ASSERT_INT_EQ(r.stat.version, 1);
    ZK_RC_EQ(do_set("/a/b/c/p", "stale", 0).rc, ZBADVERSION);
    ZK_RC_EQ(do_set("/a/b/c/missing", "x", -1).rc, ZNONODE);
    r = do_get("/a/b/c/p");
    FWT_ASSERT_STR_EQ(r.data, "world");
    FWT_ASSERT_INT_EQ(r.stat.version, 1);

    ZK_RC_EQ(do_exists("/a/b/c/p").rc, ZOK);
    r = do_exists("/a/b/c/missing");
    ZK_RC_EQ(r.rc, ZNONODE);
    FWT_ASSERT(!r.has_stat);
    ZK_RC_EQ(do_get("/a/b/c/missing").rc, ZNONODE);

    r = (res_t){0};
    FWT_ASSERT_OK(fw_zk_get_children(&T->s.zk, "/a/b/c", NULL, NULL, children_cb, &r));
    await(&r, "get_children");
    ZK_RC_EQ(r.rc, ZOK);
    FWT_ASSERT_INT_EQ(r.count, 2);
    int saw_p = 0, saw_e = 0;
    for (int i = 0; i < r.count; i++) {
        saw_p += strcmp(r.names[i], "p") == 0;
        saw_e += strcmp(r.names[i], eph + strlen("/a/b/c/")) == 0;
    }
    FWT_ASSERT_INT_EQ(saw_p, 1);
    FWT_ASSERT_INT_EQ(saw_e, 1);

    ZK_RC_EQ(do_delete("/a/b/c/p", 0).rc, ZBADVERSION);
    ZK_RC_EQ(do_delete("/a/b/c/p", 1).rc, ZOK);
    ZK_RC_EQ(do_get("/a/b/c/p").rc, ZNONODE);
    ZK_RC_EQ(do_delete("/a/b/c/p", -1).rc, ZNONODE);
    ZK_RC_EQ(do_delete("/a/b", -1).rc, ZNOTEMPTY);

    /* Bad arguments fail at the call, and the callback never runs. */
    r = (res_t){0};
    FWT_ASSERT_INT_EQ(fw_zk_get(&T->s.zk, "no-slash", NULL, NULL, data_cb, &r), -EINVAL);
    FWT_ASSERT_INT_EQ(fw_zk_create(&T->s.zk, "/a/", "", 0, 0, create_cb, &r), -EINVAL);
    FWT_ASSERT_INT_EQ(fw_zk_delete(&T->s.zk, "/a//b", -1, void_cb, &r), -EINVAL);
    FWT_ASSERT_INT_EQ(fw_zk_ensure_path(&T->s.zk, "/a/./b", void_cb, &r), -EINVAL);
    FWT_ASSERT_INT_EQ(fw_zk_create(&T->s.zk, "/a", "", 0, 8, create_cb, &r), -EINVAL);
    fw_zk_op_t bad[] = {fw_zk_op_check("/a", 0), fw_zk_op_delete("/a/../b", -1)};
    FWT_ASSERT_INT_EQ(fw_zk_multi(&T->s.zk, bad, 2, multi_cb, &r), -EINVAL);
    FWT_ASSERT_INT_EQ(fw_zk_multi(&T->s.zk, bad, 0, multi_cb, &r), -EINVAL);
    /* A sequential name may end in '/': the server appends the digits. */
    r = do_create("/a/", "", FW_ZK_SEQUENTIAL);
    ZK_RC_EQ(r.rc, ZOK);
    FWT_ASSERT_INT_EQ(strlen(r.path), strlen("/a/") + 10);

    teardown();
}

FWT_TEST(watch_fires_on_loop)
{
    setup();
    fwt_zk_t zk;
    fwt_zk_start(&zk);
    char connect[128];
    snprintf(connect, sizeof(connect), "%s/freeway/watch", zk.connect);
    sess_open(&T->s, connect, SESSION_MS, 0);
    wait_connects(&T->s, 1, WAIT_MS);
    ZK_RC_EQ(do_ensure("/w").rc, ZOK);
    ZK_RC_EQ(do_create("/w/node", "v0", 0).rc, ZOK);

    watch_rec_t wdata = {0}, wexist = {0}, wkids = {0}, wmissing = {0};
    res_t r = {0};
    FWT_ASSERT_OK(fw_zk_get(&T->s.zk, "/w/node", watch_cb, &wdata, data_cb, &r));
    await(&r, "get with a watch");
    ZK_RC_EQ(r.rc, ZOK);
    FWT_ASSERT_STR_EQ(r.data, "v0");
    r = (res_t){0};
    FWT_ASSERT_OK(fw_zk_exists(&T->s.zk, "/w/new", watch_cb, &wexist, stat_cb, &r));
    await(&r, "exists with a watch");
    ZK_RC_EQ(r.rc, ZNONODE); /* the watch is set anyway: it waits for the creation */
    r = (res_t){0};
    FWT_ASSERT_OK(fw_zk_get_children(&T->s.zk, "/w", watch_cb, &wkids, children_cb, &r));
    await(&r, "get_children with a watch");
    ZK_RC_EQ(r.rc, ZOK);
    FWT_ASSERT_INT_EQ(r.count, 1);
    r = (res_t){0};
    FWT_ASSERT_OK(fw_zk_get(&T->s.zk, "/w/missing", watch_cb, &wmissing, data_cb, &r));
    await(&r, "get with a watch on a missing node");
    ZK_RC_EQ(r.rc, ZNONODE); /* no watch: it must never run */
    FWT_ASSERT_INT_EQ(wdata.fired + wexist.fired + wkids.fired, 0);

    /* Another client changes things; the loop is not running meanwhile. */
    zhandle_t *plain = plain_open(connect);
    ZK_RC_EQ(zoo_set(plain, "/w/node", "v1", 2, -1), ZOK);
    ZK_RC_EQ(zoo_create(plain, "/w/new", "", 0, &ZOO_OPEN_ACL_UNSAFE, 0, NULL, 0), ZOK);

    int64_t t0 = fwt_now_ms();
    run_until(watch_fired, &wdata, WAIT_MS, "the data watch");
    run_until(watch_fired, &wexist, WAIT_MS, "the exists watch");
    run_until(watch_fired, &wkids, WAIT_MS, "the child watch");
    fprintf(stderr, "three watches delivered on the loop %" PRId64 " ms after the changes\n",
            fwt_now_ms() - t0);
    ZK_RC_EQ(wdata.rc, ZOK);
    FWT_ASSERT_INT_EQ(wdata.type, ZOO_CHANGED_EVENT);
    FWT_ASSERT_STR_EQ(wdata.path, "/w/node");
    ZK_RC_EQ(wexist.rc, ZOK);
    FWT_ASSERT_INT_EQ(wexist.type, ZOO_CREATED_EVENT);
    FWT_ASSERT_STR_EQ(wexist.path, "/w/new");
    ZK_RC_EQ(wkids.rc, ZOK);
    FWT_ASSERT_INT_EQ(wkids.type, ZOO_CHILD_EVENT);
    FWT_ASSERT_STR_EQ(wkids.path, "/w");

    /* One-shot: a second change fires nothing. */
    ZK_RC_EQ(zoo_set(plain, "/w/node", "v2", 2, -1), ZOK);
    ZK_RC_EQ(do_get("/w/node").rc, ZOK); /* a round trip after the change's event */
    teardown();
    FWT_ASSERT_INT_EQ(wdata.fired, 1);
    FWT_ASSERT_INT_EQ(wexist.fired, 1);
    FWT_ASSERT_INT_EQ(wkids.fired, 1);
    FWT_ASSERT_INT_EQ(wmissing.fired, 0);
}

FWT_TEST(multi_ownership_recipe)
{
    setup();
    fwt_zk_t zk;
    fwt_zk_start(&zk);
    char connect[128];
    snprintf(connect, sizeof(connect), "%s/freeway/multi", zk.connect);
    sess_open(&T->s, connect, SESSION_MS, 0);
    wait_connects(&T->s, 1, WAIT_MS);

    const char *bucket = "/buckets/web_clicks/3";
    const char *owner = "/buckets/web_clicks/3/owner";
    ZK_RC_EQ(do_ensure(bucket).rc, ZOK);
    res_t r = do_get(bucket);
    ZK_RC_EQ(r.rc, ZOK);
    int v = r.stat.version;
    FWT_ASSERT_INT_EQ(v, 0);

    /* The takeover (notes §1.6): fence on the persistent bucket node's version. */
    fw_zk_op_t take[] = {
        fw_zk_op_check(bucket, v),
        fw_zk_op_create(owner, "node-a", 6, FW_ZK_EPHEMERAL),
        fw_zk_op_set(bucket, "1", 1, v),
    };
    r = do_multi(take, 3);
    ZK_RC_EQ(r.rc, ZOK);
    FWT_ASSERT_INT_EQ(r.nres, 3);
    ZK_RC_EQ(r.res_rc[0], ZOK);
    ZK_RC_EQ(r.res_rc[1], ZOK);
    FWT_ASSERT_STR_EQ(r.res_path[1], owner);
    ZK_RC_EQ(r.res_rc[2], ZOK);
    FWT_ASSERT_INT_EQ(r.res_version[2], 1);
    r = do_exists(owner);
    ZK_RC_EQ(r.rc, ZOK);
    FWT_ASSERT_INT_EQ(r.stat.ephemeralOwner, T->s.sid);

    /* The owner goes away; a contender still holding the old version loses
     * as a whole: nothing is created, the epoch is untouched. */
    ZK_RC_EQ(do_delete(owner, -1).rc, ZOK);
    r = do_multi(take, 3);
    fprintf(stderr, "stale takeover: %s; per op: %s, %s, %s\n", zerror(r.rc), zerror(r.res_rc[0]),
            zerror(r.res_rc[1]), zerror(r.res_rc[2]));
    ZK_RC_EQ(r.rc, ZBADVERSION);
    ZK_RC_EQ(r.res_rc[0], ZBADVERSION);
    FWT_ASSERT(r.res_rc[1] != ZOK);
    FWT_ASSERT(r.res_rc[2] != ZOK);
    FWT_ASSERT_STR_EQ(r.res_path[1], "");
    FWT_ASSERT_INT_EQ(r.res_version[2], -1);
    ZK_RC_EQ(do_exists(owner).rc, ZNONODE);
    r = do_get(bucket);
    FWT_ASSERT_STR_EQ(r.data, "1");
    FWT_ASSERT_INT_EQ(r.stat.version, 1);

    /* A failure in the last op undoes the first two: the results say which. */
    fw_zk_op_t late[] = {
        fw_zk_op_check(bucket, 1),
        fw_zk_op_create(owner, "node-b", 6, FW_ZK_EPHEMERAL),
        fw_zk_op_set(bucket, "2", 1, 0),
    };
    r = do_multi(late, 3);
    fprintf(stderr, "stale set: %s; per op: %s, %s, %s\n", zerror(r.rc), zerror(r.res_rc[0]),
            zerror(r.res_rc[1]), zerror(r.res_rc[2]));
    ZK_RC_EQ(r.rc, ZBADVERSION);
    FWT_ASSERT(r.res_rc[0] != ZBADVERSION);
    FWT_ASSERT(r.res_rc[1] != ZBADVERSION);
    ZK_RC_EQ(r.res_rc[2], ZBADVERSION);
    ZK_RC_EQ(do_exists(owner).rc, ZNONODE);

    /* With the current version it succeeds again, and the epoch moves on. */
    late[2] = fw_zk_op_set(bucket, "2", 1, 1);
    r = do_multi(late, 3);
    ZK_RC_EQ(r.rc, ZOK);
    FWT_ASSERT_INT_EQ(r.res_version[2], 2);
    r = do_get(owner);
    FWT_ASSERT_STR_EQ(r.data, "node-b");

    teardown();
}

FWT_TEST(suspend_and_resume)
{
    setup();
    fwt_zk_t zk;
    fwt_zk_start(&zk);
    char connect[128];
    snprintf(connect, sizeof(connect), "%s/freeway/suspend", zk.connect);
    /* Longer than the others: the resume must come within a third of it. */
    sess_open(&T->s, connect, 9000, 0);
    wait_connects(&T->s, 1, WAIT_MS);
    int64_t sid = T->s.sid;
    int granted = fw_zk_session_timeout(&T->s.zk);
    ZK_RC_EQ(do_create("/eph", "mine", FW_ZK_EPHEMERAL).rc, ZOK);

    /*
     * A stopped server answers nothing; the client gives up on the
     * connection after 2/3 of the timeout and reports CONNECTING. The
     * server's clock runs on while it is stopped: the session's deadline is
     * a third of the timeout after that, so continuing at once and
     * reconnecting within 3 s resumes the session.
     */
    int64_t t0 = fwt_now_ms();
    FWT_ASSERT_OK(fwt_proc_signal(&zk.proc, SIGSTOP));
    struct count_wait sw = {.s = &T->s, .n = 1};
    run_until(suspends_reached, &sw, WAIT_MS, "SUSPENDED after stopping the server");
    int64_t t1 = fwt_now_ms();
    FWT_ASSERT_OK(fwt_proc_signal(&zk.proc, SIGCONT));
    FWT_ASSERT_INT_EQ(fw_zk_state(&T->s.zk), FW_ZK_SUSPENDED);
    FWT_ASSERT(!fw_zk_connected(&T->s.zk));
    FWT_ASSERT_INT_EQ(fw_zk_session_id(&T->s.zk), sid);
    run_until(sess_connected, &T->s, WAIT_MS, "the session to resume");
    fprintf(stderr,
            "SUSPENDED %" PRId64 " ms after SIGSTOP (timeout %d ms), CONNECTED again %" PRId64
            " ms after SIGCONT\n",
            t1 - t0, granted, fwt_now_ms() - t1);

    FWT_ASSERT_INT_EQ(T->s.sid, sid);
    FWT_ASSERT_INT_EQ(T->s.expiries, 0);
    FWT_ASSERT_INT_EQ(T->s.nhistory, 3);
    FWT_ASSERT_INT_EQ(T->s.history[0], FW_ZK_CONNECTED);
    FWT_ASSERT_INT_EQ(T->s.history[1], FW_ZK_SUSPENDED);
    FWT_ASSERT_INT_EQ(T->s.history[2], FW_ZK_CONNECTED);
    res_t r = do_exists("/eph");
    ZK_RC_EQ(r.rc, ZOK);
    FWT_ASSERT_INT_EQ(r.stat.ephemeralOwner, sid);
    teardown();
}

/* Expiry: ops issued while the session is suspended, to be caught by the expiry. */
#define MAX_PENDING 16
static res_t pending[MAX_PENDING];
static int npending;
static int pending_at_expiry = -1;
static int connects_at_expiry;

static void expiry_hook(sess_t *s, fw_zk_state_t state)
{
    if (state == FW_ZK_SUSPENDED && npending < MAX_PENDING - 1) {
        char path[64];
        snprintf(path, sizeof(path), "/pending-%d", npending);
        FWT_ASSERT_OK(
            fw_zk_create(&s->zk, path, "", 0, FW_ZK_EPHEMERAL, create_cb, &pending[npending]));
        npending++;
    }
    if (state == FW_ZK_EXPIRED) {
        pending_at_expiry = npending - 1;
        connects_at_expiry = s->connects;
        /* No session now: an op gets ZCONNECTIONLOSS, on the loop, later. */
        FWT_ASSERT_OK(fw_zk_exists(&s->zk, "/", NULL, NULL, stat_cb, &pending[MAX_PENDING - 1]));
    }
}

static int saw_expiry(void *arg)
{
    (void)arg;
    uv_run(&T->loop, UV_RUN_NOWAIT);
    return T->s.expiries > 0;
}

struct after_expiry {
    watch_rec_t *w;
};

static int new_session_settled(void *arg)
{
    struct after_expiry *a = arg;
    return T->s.connects > connects_at_expiry && a->w->fired > 0 &&
           pending[pending_at_expiry].done > 0 && pending[MAX_PENDING - 1].done > 0;
}

FWT_TEST(expiry_recreates_session)
{
    setup();
    fwt_zk_t zk;
    fwt_zk_start(&zk);
    char connect[128];
    snprintf(connect, sizeof(connect), "%s/freeway/expiry", zk.connect);
    sess_open(&T->s, connect, SESSION_MS, 0);
    T->s.hook = expiry_hook;
    wait_connects(&T->s, 1, WAIT_MS);
    int64_t sid1 = T->s.sid;
    ZK_RC_EQ(do_create("/eph", "old", FW_ZK_EPHEMERAL).rc, ZOK);
    watch_rec_t w = {0};
    res_t r = {0};
    FWT_ASSERT_OK(fw_zk_exists(&T->s.zk, "/watched", watch_cb, &w, stat_cb, &r));
    await(&r, "exists with a watch");
    ZK_RC_EQ(r.rc, ZNONODE);

    clientid_t cid;
    FWT_ASSERT_OK(fw_zk_client_id(&T->s.zk, &cid));
    int64_t t0 = fwt_now_ms();
    /* The predicate runs the loop, so fw_zk sees the expiry as it happens. */
    fwt_zk_expire_session(zk.connect, &cid, saw_expiry, NULL, 15000);
    int64_t t1 = fwt_now_ms();
    FWT_ASSERT_INT_EQ(T->s.expired_sid, sid1);
    FWT_ASSERT_INT_EQ(fw_zk_state(&T->s.zk), FW_ZK_EXPIRED);
    FWT_ASSERT_INT_OP(pending_at_expiry, >=, 0);

    struct after_expiry a = {.w = &w};
    run_until(new_session_settled, &a, WAIT_MS, "a new session and every old callback");
    fprintf(stderr,
            "EXPIRED %" PRId64 " ms after the expiry began, new session %" PRId64 " ms later\n",
            t1 - t0, fwt_now_ms() - t1);
    int64_t sid2 = T->s.sid;
    FWT_ASSERT(sid2 != sid1);
    FWT_ASSERT_INT_EQ(fw_zk_session_id(&T->s.zk), sid2);
    FWT_ASSERT_INT_EQ(T->s.expiries, 1);
    FWT_ASSERT_INT_EQ(T->s.connects, connects_at_expiry + 1);
    FWT_ASSERT_INT_EQ(T->s.history[T->s.nhistory - 2], FW_ZK_EXPIRED);
    FWT_ASSERT_INT_EQ(T->s.history[T->s.nhistory - 1], FW_ZK_CONNECTED);

    /* The op pending on the old session failed, exactly once. */
    res_t *p = &pending[pending_at_expiry];
    fprintf(stderr, "%d ops issued while suspended; the last one got %s\n", npending,
            zerror(p->rc));
    FWT_ASSERT_INT_EQ(p->done, 1);
    FWT_ASSERT(p->rc != ZOK);
    ZK_RC_EQ(pending[MAX_PENDING - 1].rc, ZCONNECTIONLOSS);
    /* The old session's watch ended with it. */
    FWT_ASSERT_INT_EQ(w.fired, 1);
    ZK_RC_EQ(w.rc, ZSESSIONEXPIRED);
    FWT_ASSERT_INT_EQ(w.type, ZOO_SESSION_EVENT);
    FWT_ASSERT_STR_EQ(w.path, "/watched");

    /* The old ephemeral is gone; the new session works and owns its own. */
    ZK_RC_EQ(do_exists("/eph").rc, ZNONODE);
    ZK_RC_EQ(do_create("/eph", "new", FW_ZK_EPHEMERAL).rc, ZOK);
    r = do_exists("/eph");
    ZK_RC_EQ(r.rc, ZOK);
    FWT_ASSERT_INT_EQ(r.stat.ephemeralOwner, sid2);

    teardown();
    for (int i = 0; i < npending; i++)
        FWT_ASSERT_INT_EQ(pending[i].done, 1);
    FWT_ASSERT_INT_EQ(w.fired, 1);
}

FWT_TEST(server_down_at_start)
{
    setup();
    fwt_zk_t zk;
    fwt_zk_start(&zk);
    fwt_zk_stop(&zk);
    char connect[128];
    snprintf(connect, sizeof(connect), "%s/freeway/down", zk.connect);
    /* Short: a connect that lands while the server is still loading hangs for
     * 2/3 of the timeout before the client tries again. */
    sess_open(&T->s, connect, 2000, 0);

    /* No session yet: an operation is answered ZCONNECTIONLOSS, on the loop. */
    res_t r = {0};
    FWT_ASSERT_OK(fw_zk_exists(&T->s.zk, "/", NULL, NULL, stat_cb, &r));
    FWT_ASSERT_INT_EQ(r.done, 0);
    await(&r, "exists without a session");
    ZK_RC_EQ(r.rc, ZCONNECTIONLOSS);
    FWT_ASSERT_INT_EQ(fw_zk_state(&T->s.zk), FW_ZK_CONNECTING);
    FWT_ASSERT_INT_EQ(fw_zk_session_id(&T->s.zk), 0);
    clientid_t cid;
    FWT_ASSERT_INT_EQ(fw_zk_client_id(&T->s.zk, &cid), -ENOTCONN);

    fwt_zk_restart(&zk);
    int64_t t0 = fwt_now_ms();
    wait_connects(&T->s, 1, 15000);
    fprintf(stderr, "CONNECTED %" PRId64 " ms after the server was back\n", fwt_now_ms() - t0);
    FWT_ASSERT_INT_EQ(T->s.nhistory, 1);
    ZK_RC_EQ(do_create("/after", "", 0).rc, ZOK);
    zhandle_t *plain = plain_open(zk.connect);
    ZK_RC_EQ(zoo_exists(plain, "/freeway/down/after", 0, NULL), ZOK);
    teardown();
}

/* Close with work in flight: every callback exactly once. */
#define NOPS 24
static res_t ops[NOPS];
static watch_rec_t watches[NOPS];

/* Issues one of each kind of operation, without running the loop. */
static int issue_all(fw_zk_t *z)
{
    int n = 0;
    static const fw_zk_op_t mops[] = {
        {.type = FW_ZK_OP_CHECK, .path = "/c", .version = -1},
        {.type = FW_ZK_OP_CREATE, .path = "/c/m-", .flags = FW_ZK_SEQUENTIAL},
    };
    for (int i = 0; i < 3; i++) {
        FWT_ASSERT_OK(fw_zk_create(z, "/c/s-", "x", 1, FW_ZK_EPHEMERAL | FW_ZK_SEQUENTIAL,
                                   create_cb, &ops[n]));
        n++;
        FWT_ASSERT_OK(fw_zk_get(z, "/c/n", watch_cb, &watches[n], data_cb, &ops[n]));
        n++;
        FWT_ASSERT_OK(fw_zk_exists(z, "/c/none", watch_cb, &watches[n], stat_cb, &ops[n]));
        n++;
        FWT_ASSERT_OK(fw_zk_get_children(z, "/c", watch_cb, &watches[n], children_cb, &ops[n]));
        n++;
        FWT_ASSERT_OK(fw_zk_get(z, "/c/none", watch_cb, &watches[n], data_cb, &ops[n]));
        n++;
        FWT_ASSERT_OK(fw_zk_set(z, "/c/n", "y", 1, -1, stat_cb, &ops[n]));
        n++;
        FWT_ASSERT_OK(fw_zk_multi(z, mops, 2, multi_cb, &ops[n]));
        n++;
        FWT_ASSERT_OK(fw_zk_ensure_path(z, "/c/d/e/f", void_cb, &ops[n]));
        n++;
    }
    return n;
}

/* Whether ZooKeeper set the watch of op i, from its answer (zk.h). */
static int watch_was_set(int i)
{
    int kind = i % 8;
    if (kind == 2)
        return ops[i].rc == ZOK || ops[i].rc == ZNONODE;
    if (kind == 1 || kind == 3 || kind == 4)
        return ops[i].rc == ZOK;
    return 0;
}

static void check_exactly_once(int n, const char *when)
{
    int by_rc[3] = {0, 0, 0}; /* ZOK, ZCLOSING, other */
    for (int i = 0; i < n; i++) {
        if (ops[i].done != 1)
            FWT_FAIL("%s: op %d ran its callback %d times", when, i, ops[i].done);
        by_rc[ops[i].rc == ZOK ? 0 : ops[i].rc == ZCLOSING ? 1 : 2]++;
        int want = watch_was_set(i);
        if (watches[i].fired != want)
            FWT_FAIL("%s: op %d (rc %s) ran its watch %d times, want %d", when, i,
                     zerror(ops[i].rc), watches[i].fired, want);
        if (want && watches[i].rc != ZCLOSING && watches[i].rc != ZOK)
            FWT_FAIL("%s: watch %d ended with %s", when, i, zerror(watches[i].rc));
    }
    fprintf(stderr, "%s: %d ops: %d ZOK, %d ZCLOSING, %d other\n", when, n, by_rc[0], by_rc[1],
            by_rc[2]);
}

FWT_TEST(close_with_pending_ops)
{
    setup();
    fwt_zk_t zk;
    fwt_zk_start(&zk);
    char connect[128];
    snprintf(connect, sizeof(connect), "%s/freeway/close", zk.connect);
    sess_open(&T->s, connect, SESSION_MS, 0);
    wait_connects(&T->s, 1, WAIT_MS);
    ZK_RC_EQ(do_ensure("/c").rc, ZOK);
    ZK_RC_EQ(do_create("/c/n", "v", 0).rc, ZOK);

    memset(ops, 0, sizeof(ops));
    memset(watches, 0, sizeof(watches));
    int n = issue_all(&T->s.zk);
    int64_t t0 = fwt_now_ms();
    fw_zk_close(&T->s.zk, on_closed);
    /* Closing: nothing new is accepted, and those callbacks never run. */
    res_t late = {0};
    FWT_ASSERT_INT_EQ(fw_zk_get(&T->s.zk, "/c/n", NULL, NULL, data_cb, &late), -ESHUTDOWN);
    FWT_ASSERT_INT_EQ(fw_zk_ensure_path(&T->s.zk, "/c", void_cb, &late), -ESHUTDOWN);
    FWT_ASSERT_INT_EQ(ops[0].done, 0); /* nothing runs inside fw_zk_close */
    run_until(sess_closed, &T->s, WAIT_MS, "fw_zk_close to finish");
    fprintf(stderr, "closed %" PRId64 " ms after fw_zk_close\n", fwt_now_ms() - t0);
    check_exactly_once(n, "connected");
    FWT_ASSERT_INT_EQ(late.done, 0);

    uv_close((uv_handle_t *)&T->deadline, NULL);
    uv_run(&T->loop, UV_RUN_DEFAULT);
    FWT_ASSERT_INT_EQ(uv_loop_close(&T->loop), 0);
    check_exactly_once(n, "after the loop ended");
    free(T);
}

FWT_TEST(close_while_server_stopped)
{
    /* Requests sent to a server that never answers: the client gives the
     * connection up after 2/3 of the timeout and fails them; fw_zk_close
     * waits for that instead of racing zookeeper_close (see zk.c). */
    setup();
    fwt_zk_t zk;
    fwt_zk_start(&zk);
    char connect[128];
    snprintf(connect, sizeof(connect), "%s/freeway/stopped", zk.connect);
    sess_open(&T->s, connect, 2000, 0);
    wait_connects(&T->s, 1, WAIT_MS);
    ZK_RC_EQ(do_ensure("/c").rc, ZOK);
    ZK_RC_EQ(do_create("/c/n", "v", 0).rc, ZOK);

    FWT_ASSERT_OK(fwt_proc_signal(&zk.proc, SIGSTOP));
    memset(ops, 0, sizeof(ops));
    memset(watches, 0, sizeof(watches));
    int n = issue_all(&T->s.zk);
    int64_t t0 = fwt_now_ms();
    fw_zk_close(&T->s.zk, on_closed);
    run_until(sess_closed, &T->s, WAIT_MS, "fw_zk_close to finish");
    fprintf(stderr, "closed %" PRId64 " ms after fw_zk_close (session timeout %d ms)\n",
            fwt_now_ms() - t0, fw_zk_session_timeout(&T->s.zk));
    check_exactly_once(n, "server stopped");
    for (int i = 0; i < n; i++)
        ZK_RC_EQ(ops[i].rc, ZCLOSING);
    FWT_ASSERT_OK(fwt_proc_signal(&zk.proc, SIGCONT));

    uv_close((uv_handle_t *)&T->deadline, NULL);
    uv_run(&T->loop, UV_RUN_DEFAULT);
    FWT_ASSERT_INT_EQ(uv_loop_close(&T->loop), 0);
    free(T);
}

FWT_TEST(close_while_connecting)
{
    /* Nothing listens on the port: the session never comes. */
    setup();
    char connect[128];
    snprintf(connect, sizeof(connect), "127.0.0.1:%d/freeway/nobody", fwt_free_port());
    sess_open(&T->s, connect, SESSION_MS, 0);
    memset(ops, 0, sizeof(ops));
    memset(watches, 0, sizeof(watches));
    int n = issue_all(&T->s.zk);
    uv_run(&T->loop, UV_RUN_NOWAIT);
    fw_zk_close(&T->s.zk, on_closed);
    run_until(sess_closed, &T->s, WAIT_MS, "fw_zk_close to finish");
    check_exactly_once(n, "never connected");
    for (int i = 0; i < n; i++)
        ZK_RC_EQ(ops[i].rc, ZCONNECTIONLOSS);
    FWT_ASSERT_INT_EQ(T->s.nhistory, 0);
    uv_close((uv_handle_t *)&T->deadline, NULL);
    uv_run(&T->loop, UV_RUN_DEFAULT);
    FWT_ASSERT_INT_EQ(uv_loop_close(&T->loop), 0);
    free(T);
}

FWT_TEST(init_rejects_bad_connect)
{
    setup();
    const char *bad[] = {"",
                         "/freeway",
                         "127.0.0.1",
                         "127.0.0.1:",
                         "127.0.0.1:x",
                         "127.0.0.1:0",
                         "127.0.0.1:70000",
                         ":2181",
                         "127.0.0.1:2181,",
                         "127.0.0.1:2181/freeway/",
                         "127.0.0.1:2181/free//way",
                         "127.0.0.1:2181/a/../b"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        fw_zk_options_t o = {.connect = bad[i]};
        if (fw_zk_init(&T->s.zk, &T->loop, &o) != -EINVAL)
            FWT_FAIL("fw_zk_init accepted \"%s\"", bad[i]);
    }
    /* Nothing was left behind by the failures. */
    uv_close((uv_handle_t *)&T->deadline, NULL);
    uv_run(&T->loop, UV_RUN_DEFAULT);
    FWT_ASSERT_INT_EQ(uv_loop_close(&T->loop), 0);
    free(T);
}

/* The loop watchdog: a wedged loop gives its session (and so its ephemerals) up. */
struct plain_check {
    zhandle_t *zh;
    const char *path;
};

static int node_gone(void *arg)
{
    struct plain_check *c = arg;
    return zoo_exists(c->zh, c->path, 0, NULL) == ZNONODE;
}

static int new_session_after_fence(void *arg)
{
    (void)arg;
    return T->s.expiries == 1 && T->s.connects == 2;
}

FWT_TEST(loop_watchdog_fences)
{
    setup();
    fwt_zk_t zk;
    fwt_zk_start(&zk);
    char connect[128];
    snprintf(connect, sizeof(connect), "%s/freeway/watchdog", zk.connect);
    /* First, so that the loop only stops running during the wedge below. */
    zhandle_t *plain = plain_open(connect);
    sess_open(&T->s, connect, 2000, 1);
    wait_connects(&T->s, 1, WAIT_MS);
    int64_t sid1 = T->s.sid;
    int granted = fw_zk_session_timeout(&T->s.zk);
    ZK_RC_EQ(do_create("/owner", "me", FW_ZK_EPHEMERAL).rc, ZOK);
    ZK_RC_EQ(zoo_exists(plain, "/owner", 0, NULL), ZOK);

    /* Wedge the loop: this thread stops running it and only watches from
     * outside. ZooKeeper's IO thread would keep the session alive forever. */
    int64_t t0 = fwt_now_ms();
    struct plain_check c = {.zh = plain, .path = "/owner"};
    fwt_wait_until(node_gone, &c, WAIT_MS, "the wedged owner's ephemeral to go");
    int64_t gone = fwt_now_ms() - t0;
    fprintf(stderr, "ephemeral gone %" PRId64 " ms into the wedge (session timeout %d ms)\n", gone,
            granted);
    FWT_ASSERT_INT_OP(gone, >=, granted / 2 - 200);

    /* Back on the loop: the owner learns it lost the session, and gets a new one. */
    run_until(new_session_after_fence, NULL, WAIT_MS, "EXPIRED and a new session");
    FWT_ASSERT_INT_EQ(T->s.expired_sid, sid1);
    FWT_ASSERT(T->s.sid != sid1);
    ZK_RC_EQ(do_create("/owner", "me again", FW_ZK_EPHEMERAL).rc, ZOK);
    res_t r = do_exists("/owner");
    FWT_ASSERT_INT_EQ(r.stat.ephemeralOwner, T->s.sid);
    teardown();
}

/* ---- a library's session logs through its hook, never through fw_log ------------------- */

static int hook_lines, hook_established, sink_lines;

static void count_hook(void *arg, fw_log_level_t level, const char *line)
{
    (void)arg;
    (void)level;
    on_loop();
    hook_lines++;
    hook_established += strstr(line, "established") != NULL;
}

static void count_sink(fw_log_level_t level, const char *line, void *ctx)
{
    (void)level;
    (void)ctx;
    fprintf(stderr, "fw_log got: %s\n", line);
    sink_lines++;
}

FWT_TEST(log_hook_takes_every_line)
{
    setup();
    fwt_zk_t zk;
    fwt_zk_start(&zk);
    fwt_zk_stop(&zk); /* down at first: connection failures to report */
    char connect[128];
    snprintf(connect, sizeof(connect), "%s/freeway/hooked", zk.connect);
    fw_log_set_sink(count_sink, NULL);
    fw_zk_options_t o = {
        .connect = connect,
        .create_chroot = 1,
        .session_timeout_ms = 2000,
        .state_cb = on_state,
        .state_arg = &T->s,
        .log = count_hook,
    };
    FWT_ASSERT_OK(fw_zk_init(&T->s.zk, &T->loop, &o));
    fwt_zk_restart(&zk);
    wait_connects(&T->s, 1, 15000);
    teardown();
    fw_log_set_sink(NULL, NULL);
    FWT_ASSERT_INT_EQ(sink_lines, 0);
    FWT_ASSERT_INT_EQ(hook_established, 1);
    FWT_ASSERT(hook_lines >= 3); /* connecting, chroot, established, closing ... */
}

/* ---- the chroot and ACLs: readers only look; ensure_path looks before it creates ----- */

static char kept_log[32768];
static size_t kept_len;

static void keep_hook(void *arg, fw_log_level_t level, const char *line)
{
    (void)arg;
    on_loop();
    fprintf(stderr, "zk log (%s): %s\n", fw_log_level_name(level), line);
    int n = snprintf(kept_log + kept_len, sizeof(kept_log) - kept_len, "%s\n", line);
    if (n > 0 && (size_t)n < sizeof(kept_log) - kept_len)
        kept_len += (size_t)n;
}

static int kept_count(const char *needle)
{
    int n = 0;
    for (const char *p = kept_log; (p = strstr(p, needle)) != NULL; p++)
        n++;
    return n;
}

static int kept_has(void *needle)
{
    return kept_count(needle) > 0;
}

static void expect_kept(const char *needle)
{
    if (!kept_has((void *)needle))
        FWT_FAIL("the session's log lacks \"%s\":\n%s", needle, kept_log);
}

/* A session on connect, logging into kept_log; a reader unless create_chroot. */
static void sess_open_as(sess_t *s, const char *connect, const char *auth, int create_chroot)
{
    kept_len = 0;
    kept_log[0] = '\0';
    fw_zk_options_t o = {
        .connect = connect,
        .create_chroot = create_chroot,
        .auth = auth,
        .session_timeout_ms = SESSION_MS,
        .state_cb = on_state,
        .state_arg = s,
        .log = keep_hook,
    };
    FWT_ASSERT_OK(fw_zk_init(&s->zk, &T->loop, &o));
}

static int chroot_missing(void *arg)
{
    return fw_zk_chroot_missing(&((sess_t *)arg)->zk);
}

/* A plain client authenticated as "other:pw", another identity than any session's. */
static zhandle_t *other_open(const char *connect)
{
    zhandle_t *zh = plain_open(connect);
    /* Sent before every later request on the connection. */
    ZK_RC_EQ(zoo_add_auth(zh, "digest", "other:pw", 8, NULL, NULL), ZOK);
    return zh;
}

FWT_TEST(a_reader_waits_for_the_chroot_and_never_makes_it)
{
    setup();
    fwt_zk_t zk;
    fwt_zk_start(&zk);
    char connect[128];
    snprintf(connect, sizeof(connect), "%s/freeway/r", zk.connect);
    sess_open_as(&T->s, connect, NULL, 0);
    run_until(chroot_missing, &T->s, WAIT_MS, "the reader to find no chroot");
    FWT_ASSERT_INT_EQ(fw_zk_state(&T->s.zk), FW_ZK_CONNECTING);
    FWT_ASSERT_INT_EQ(T->s.connects, 0);
    char want[200];
    snprintf(want, sizeof(want), "no freeway tree at %s", connect);
    expect_kept(want);
    zhandle_t *plain = plain_open(zk.connect);
    ZK_RC_EQ(zoo_exists(plain, "/freeway", 0, NULL), ZNONODE);

    /* A daemon makes the tree: the reader's watch brings it in, no poll needed. */
    ZK_RC_EQ(zoo_create(plain, "/freeway", NULL, -1, &ZOO_OPEN_ACL_UNSAFE, 0, NULL, 0), ZOK);
    ZK_RC_EQ(zoo_create(plain, "/freeway/r", NULL, -1, &ZOO_OPEN_ACL_UNSAFE, 0, NULL, 0), ZOK);
    wait_connects(&T->s, 1, WAIT_MS);
    FWT_ASSERT_INT_EQ(fw_zk_chroot_missing(&T->s.zk), 0);
    ZK_RC_EQ(do_create("/x", "", 0).rc, ZOK);
    ZK_RC_EQ(zoo_exists(plain, "/freeway/r/x", 0, NULL), ZOK);
    FWT_ASSERT_INT_EQ(kept_count("no freeway tree"), 1);
    teardown();
}

/*
 * A tree under a parent another identity made (--zk HOST/prod/freeway):
 * creating an existing node there answers ZNOAUTH, not ZNODEEXISTS (the
 * parent's ACL is checked first), so ensure_path must look first. A node
 * that is truly missing and may not be made is a logged error naming it.
 */
FWT_TEST(ensure_path_looks_before_it_creates)
{
    setup();
    fwt_zk_t zk;
    fwt_zk_start(&zk);
    zhandle_t *other = other_open(zk.connect);
    struct ACL ours_read_items[] = {{.perms = ZOO_PERM_ALL, .id = ZOO_AUTH_IDS},
                                    {.perms = ZOO_PERM_READ, .id = ZOO_ANYONE_ID_UNSAFE}};
    struct ACL_vector ours_read = {2, ours_read_items};
    /* /prod and /prod/freeway/a not even readable by others: exists needs no right. */
    ZK_RC_EQ(zoo_create(other, "/prod", NULL, -1, &ZOO_CREATOR_ALL_ACL, 0, NULL, 0), ZOK);
    ZK_RC_EQ(zoo_create(other, "/prod/freeway", NULL, -1, &ours_read, 0, NULL, 0), ZOK);
    ZK_RC_EQ(zoo_create(other, "/prod/freeway/a", NULL, -1, &ZOO_CREATOR_ALL_ACL, 0, NULL, 0), ZOK);
    char connect[128];
    snprintf(connect, sizeof(connect), "%s/prod/freeway", zk.connect);

    /* Without an identity. */
    sess_open_as(&T->s, connect, NULL, 1);
    wait_connects(&T->s, 1, WAIT_MS);
    ZK_RC_EQ(do_ensure("/a").rc, ZOK);
    ZK_RC_EQ(do_ensure("/b/c").rc, ZNOAUTH);
    expect_kept("cannot create /prod/freeway/b in ZooKeeper: not authenticated");
    expect_kept("a session without --zk-auth");
    expect_kept("--zk-auth USER:PASSWORD that made the tree");
    ZK_RC_EQ(zoo_exists(other, "/prod/freeway/b", 0, NULL), ZNONODE);
    teardown();

    /* With another identity: the chroot's probe reads its ACL, /a's is refused (it exists). */
    setup();
    sess_open_as(&T->s, connect, "freeway:pw", 1);
    wait_connects(&T->s, 1, WAIT_MS);
    ZK_RC_EQ(do_ensure("/a").rc, ZOK);
    ZK_RC_EQ(do_ensure("/b").rc, ZNOAUTH);
    expect_kept("cannot create /prod/freeway/b in ZooKeeper: not authenticated");
    expect_kept("(digest freeway)");
    FWT_ASSERT(strstr(kept_log, ":pw") == NULL); /* never the password */
    FWT_ASSERT_INT_EQ(kept_count("open ACL"), 0);
    teardown();

    /* A chroot that is missing under /prod: it cannot be made, and the log says so. */
    setup();
    snprintf(connect, sizeof(connect), "%s/prod/other", zk.connect);
    sess_open_as(&T->s, connect, NULL, 1);
    run_until(kept_has, "cannot create /prod/other in ZooKeeper: not authenticated", WAIT_MS,
              "the refusal to be logged");
    FWT_ASSERT_INT_EQ(T->s.connects, 0);
    teardown();
}

FWT_TEST(an_open_tree_is_reported_to_a_session_with_an_identity)
{
    setup();
    fwt_zk_t zk;
    fwt_zk_start(&zk);
    zhandle_t *plain = plain_open(zk.connect);
    ZK_RC_EQ(zoo_create(plain, "/freeway", NULL, -1, &ZOO_OPEN_ACL_UNSAFE, 0, NULL, 0), ZOK);
    ZK_RC_EQ(zoo_create(plain, "/freeway/categories", NULL, -1, &ZOO_OPEN_ACL_UNSAFE, 0, NULL, 0),
             ZOK);
    char connect[128];
    snprintf(connect, sizeof(connect), "%s/freeway", zk.connect);
    sess_open_as(&T->s, connect, "freeway:pw", 1);
    wait_connects(&T->s, 1, WAIT_MS);
    ZK_RC_EQ(do_ensure("/categories").rc, ZOK);
    ZK_RC_EQ(do_ensure("/buckets").rc, ZOK);
    expect_kept("/freeway has an open ACL (world:anyone:cdrwa)");
    expect_kept("setAcl -R /freeway auth::cdrwa,world:anyone:r");
    FWT_ASSERT_INT_EQ(kept_count("open ACL"), 1); /* once, not per node */
    teardown();

    /* Without an identity an open tree is what was asked for: nothing to say. */
    setup();
    sess_open_as(&T->s, connect, NULL, 1);
    wait_connects(&T->s, 1, WAIT_MS);
    ZK_RC_EQ(do_ensure("/categories").rc, ZOK);
    FWT_ASSERT_INT_EQ(kept_count("open ACL"), 0);
    teardown();
}
