/*
 * The ZooKeeper test harness (fwt_zk, fwt_proc) against a real server and the
 * real zookeeper_mt C client: watches, expiry on demand, an ensemble losing a
 * member, and a server restart. It tests the harness and the facts later
 * tests rely on, not freeway code.
 */
#include "fwt_proc.h"
#include "fwt_zk.h"
#include "fwtest.h"

#include <zookeeper/zookeeper.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <time.h>

#define CONNECT_TIMEOUT_MS 15000

/*
 * One client session. The watchers run on the library's completion thread,
 * so they only record what they saw under the mutex and signal; every check
 * and every FWT_FAIL stays on the test's thread. Heap-allocated and freed by
 * its cleanup, after zookeeper_close has joined the library's threads.
 */
struct sess {
    zhandle_t *zh;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int state;    /* the last session state the global watcher saw */
    int connects; /* how many times it reached ZOO_CONNECTED_STATE */
    int expired;  /* saw ZOO_EXPIRED_SESSION_STATE */
    int changed;  /* ZOO_CHANGED_EVENTs delivered to data watches */
    char changed_path[256];
};

#define ZK_OK(expr)                                                                                \
    do {                                                                                           \
        int zk_rc_ = (expr);                                                                       \
        if (zk_rc_ != ZOK)                                                                         \
            FWT_FAIL("%s: %s (%d)", #expr, zerror(zk_rc_), zk_rc_);                                \
    } while (0)

#define ZK_RC_EQ(expr, want)                                                                       \
    do {                                                                                           \
        int zk_rc_ = (expr), zk_want_ = (want);                                                    \
        if (zk_rc_ != zk_want_)                                                                    \
            FWT_FAIL("%s: got %s (%d), want %s (%d)", #expr, zerror(zk_rc_), zk_rc_,               \
                     zerror(zk_want_), zk_want_);                                                  \
    } while (0)

static const char *state_name(int state)
{
    if (state == ZOO_CONNECTED_STATE)
        return "CONNECTED";
    if (state == ZOO_CONNECTING_STATE)
        return "CONNECTING";
    if (state == ZOO_ASSOCIATING_STATE)
        return "ASSOCIATING";
    if (state == ZOO_EXPIRED_SESSION_STATE)
        return "EXPIRED";
    if (state == ZOO_AUTH_FAILED_STATE)
        return "AUTH_FAILED";
    if (state == ZOO_READONLY_STATE)
        return "READONLY";
    if (state == 0)
        return "none yet";
    return "other";
}

static void session_watcher(zhandle_t *zh, int type, int state, const char *path, void *ctx)
{
    (void)zh;
    (void)path;
    struct sess *s = ctx;
    if (type != ZOO_SESSION_EVENT)
        return;
    pthread_mutex_lock(&s->mu);
    s->state = state;
    if (state == ZOO_CONNECTED_STATE)
        s->connects++;
    if (state == ZOO_EXPIRED_SESSION_STATE)
        s->expired = 1;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->mu);
}

/* A zoo_wget watcher. It also receives copies of session events (notes
 * §1.1); the global watcher already records those. */
static void data_watcher(zhandle_t *zh, int type, int state, const char *path, void *ctx)
{
    (void)zh;
    (void)state;
    struct sess *s = ctx;
    if (type != ZOO_CHANGED_EVENT)
        return;
    pthread_mutex_lock(&s->mu);
    s->changed++;
    snprintf(s->changed_path, sizeof(s->changed_path), "%s", path != NULL ? path : "");
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->mu);
}

static void sess_close(struct sess *s)
{
    if (s->zh != NULL) {
        zookeeper_close(s->zh);
        s->zh = NULL;
    }
}

static void sess_cleanup(void *arg)
{
    struct sess *s = arg;
    sess_close(s);
    pthread_cond_destroy(&s->cond);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

static int is_connected(struct sess *s)
{
    return s->state == ZOO_CONNECTED_STATE;
}

static int reconnected(struct sess *s)
{
    return s->connects >= 2 && s->state == ZOO_CONNECTED_STATE;
}

/* For fwt_zk_expire_session: has the session's own handle seen EXPIRED? */
static int sess_expired(void *arg)
{
    struct sess *s = arg;
    pthread_mutex_lock(&s->mu);
    int expired = s->expired;
    pthread_mutex_unlock(&s->mu);
    return expired;
}

static int has_changed(struct sess *s)
{
    return s->changed > 0;
}

/* Waits on the session's condition variable until pred holds (checked under
 * the mutex) or timeout_ms pass; fails the test on timeout. */
static void sess_wait(struct sess *s, int (*pred)(struct sess *), int timeout_ms, const char *what)
{
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&s->mu);
    int rc = 0;
    while (!pred(s) && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&s->cond, &s->mu, &deadline);
    int ok = pred(s);
    int state = s->state;
    pthread_mutex_unlock(&s->mu);
    if (!ok)
        FWT_FAIL("timed out after %d ms waiting for %s (session state %s)", timeout_ms, what,
                 state_name(state));
}

/* Opens a session and waits until it is connected. */
static struct sess *sess_open(const char *connect, int timeout_ms)
{
    struct sess *s = calloc(1, sizeof(*s));
    FWT_ASSERT(s != NULL);
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cond, &ca);
    pthread_condattr_destroy(&ca);
    /* Registered before zookeeper_init so that a failure below still closes
     * the handle (joining its threads) before the server is killed. */
    fwt_defer(sess_cleanup, s);
    zoo_set_debug_level(ZOO_LOG_LEVEL_WARN);
    s->zh = zookeeper_init(connect, session_watcher, timeout_ms, NULL, s, ZOO_NO_LOG_CLIENTENV);
    if (s->zh == NULL)
        FWT_FAIL("zookeeper_init(%s): %s", connect, strerror(errno));
    sess_wait(s, is_connected, CONNECT_TIMEOUT_MS, "the session to connect");
    return s;
}

/* Reads path into buf as a NUL-terminated string. */
static int get_str(struct sess *s, const char *path, char *buf, int len, struct Stat *stat)
{
    int n = len - 1;
    int rc = zoo_get(s->zh, path, 0, buf, &n, stat);
    buf[rc == ZOK && n >= 0 ? n : 0] = '\0';
    return rc;
}

FWT_TEST(create_watch_read)
{
    int64_t t0 = fwt_now_ms();
    fwt_zk_t zk;
    fwt_zk_start(&zk);
    fprintf(stderr, "standalone server serving on %s after %" PRId64 " ms\n", zk.connect,
            fwt_now_ms() - t0);

    struct sess *root = sess_open(zk.connect, 4000);
    ZK_OK(zoo_create(root->zh, "/cwr", "chroot", 6, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, NULL, 0));

    /* Everything else happens inside the chroot, the way later tests isolate
     * themselves (notes §1.5); the root session checks the absolute paths. */
    char connect[128];
    snprintf(connect, sizeof(connect), "%s/cwr", zk.connect);
    struct sess *c = sess_open(connect, 4000);
    char path[128];
    ZK_OK(zoo_create(c->zh, "/e-", "v0", 2, &ZOO_OPEN_ACL_UNSAFE, ZOO_EPHEMERAL_SEQUENTIAL, path,
                     sizeof(path)));
    FWT_ASSERT_STR_EQ(path, "/e-0000000000");

    char buf[64];
    int n = sizeof(buf) - 1;
    struct Stat st;
    ZK_OK(zoo_wget(c->zh, path, data_watcher, c, buf, &n, &st));
    FWT_ASSERT_INT_EQ(n, 2);
    FWT_ASSERT_MEM_EQ(buf, "v0", 2);
    FWT_ASSERT_INT_EQ(st.version, 0);
    FWT_ASSERT_INT_EQ(st.ephemeralOwner, zoo_client_id(c->zh)->client_id);

    ZK_OK(zoo_set(c->zh, path, "v1", 2, 0));
    sess_wait(c, has_changed, 10000, "ZOO_CHANGED_EVENT on the data watch");
    pthread_mutex_lock(&c->mu);
    char changed_path[256];
    snprintf(changed_path, sizeof(changed_path), "%s", c->changed_path);
    pthread_mutex_unlock(&c->mu);
    /* The client strips the chroot from event paths. */
    FWT_ASSERT_STR_EQ(changed_path, path);

    ZK_OK(get_str(c, path, buf, sizeof(buf), &st));
    FWT_ASSERT_STR_EQ(buf, "v1");
    FWT_ASSERT_INT_EQ(st.version, 1);

    struct String_vector kids;
    ZK_OK(zoo_get_children(root->zh, "/cwr", 0, &kids));
    FWT_ASSERT_INT_EQ(kids.count, 1);
    FWT_ASSERT_STR_EQ(kids.data[0], "e-0000000000");
    deallocate_String_vector(&kids);
    ZK_OK(get_str(root, "/cwr/e-0000000000", buf, sizeof(buf), NULL));
    FWT_ASSERT_STR_EQ(buf, "v1");

    ZK_OK(zoo_delete(c->zh, path, 1));
    ZK_RC_EQ(zoo_exists(c->zh, path, 0, NULL), ZNONODE);
    ZK_OK(zoo_delete(root->zh, "/cwr", -1));

    int64_t t1 = fwt_now_ms();
    sess_close(c);
    sess_close(root);
    fprintf(stderr, "two zookeeper_close calls took %" PRId64 " ms\n", fwt_now_ms() - t1);

    pid_t pid = zk.proc.pid;
    t1 = fwt_now_ms();
    fwt_zk_stop(&zk);
    fprintf(stderr, "server stopped (SIGTERM) in %" PRId64 " ms\n", fwt_now_ms() - t1);
    FWT_ASSERT(!fwt_proc_running(&zk.proc));
    FWT_ASSERT(!fwt_zk_serving(&zk));
    /* Reaped, not just a zombie: the pid no longer exists. */
    FWT_ASSERT_INT_EQ(kill(pid, 0), -1);
    FWT_ASSERT_INT_EQ(errno, ESRCH);
}

FWT_TEST(session_expiry)
{
    fwt_zk_t zk;
    fwt_zk_start(&zk);

    struct sess *s1 = sess_open(zk.connect, 4000);
    ZK_OK(zoo_create(s1->zh, "/expiry", "", 0, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, NULL, 0));
    ZK_OK(
        zoo_create(s1->zh, "/expiry/owner", "s1", 2, &ZOO_OPEN_ACL_UNSAFE, ZOO_EPHEMERAL, NULL, 0));
    clientid_t cid = *zoo_client_id(s1->zh);

    /* Notes §1.2: a second handle on the same session, closed, ends the
     * session; the first handle learns it when it reconnects. */
    int64_t t0 = fwt_now_ms();
    fwt_zk_expire_session(zk.connect, &cid, sess_expired, s1, 15000);
    fprintf(stderr, "first handle saw EXPIRED %" PRId64 " ms after the expiry began\n",
            fwt_now_ms() - t0);

    /* An expired handle is dead for good: it must be closed and re-created. */
    ZK_RC_EQ(zoo_exists(s1->zh, "/expiry", 0, NULL), ZINVALIDSTATE);

    /* A third session (the second was fwt_zk_expire_session's). */
    struct sess *s3 = sess_open(zk.connect, 4000);
    ZK_RC_EQ(zoo_exists(s3->zh, "/expiry/owner", 0, NULL), ZNONODE);
    ZK_OK(zoo_exists(s3->zh, "/expiry", 0, NULL));
}

struct rw_check {
    struct sess *s;
    int tries;
    int last_rc;
};

/* One attempt to write and read back through whichever server the client is
 * on; a write that failed with a connection loss is simply written again. */
static int write_then_read(void *arg)
{
    struct rw_check *rw = arg;
    rw->tries++;
    rw->last_rc = zoo_set(rw->s->zh, "/ens", "after-kill", 10, -1);
    if (rw->last_rc != ZOK)
        return 0;
    char buf[32];
    rw->last_rc = get_str(rw->s, "/ens", buf, sizeof(buf), NULL);
    return rw->last_rc == ZOK && strcmp(buf, "after-kill") == 0;
}

struct survivors {
    fwt_zk_t *a, *b;
};

/* Both survivors serve, one as leader and one as follower. */
static int survivors_serving(void *arg)
{
    struct survivors *sv = arg;
    char ma[32], mb[32];
    if (fwt_zk_mode(sv->a, ma, sizeof(ma)) != 0 || fwt_zk_mode(sv->b, mb, sizeof(mb)) != 0)
        return 0;
    return (strcmp(ma, "leader") == 0 && strcmp(mb, "follower") == 0) ||
           (strcmp(ma, "follower") == 0 && strcmp(mb, "leader") == 0);
}

FWT_TEST(ensemble_survives_one_kill)
{
    int64_t t0 = fwt_now_ms();
    fwt_zk_t zk[3];
    fwt_zk_ensemble_start(zk);
    fprintf(stderr, "ensemble serving on %s after %" PRId64 " ms\n", fwt_zk_ensemble_connect(zk),
            fwt_now_ms() - t0);

    struct sess *s = sess_open(fwt_zk_ensemble_connect(zk), 6000);
    ZK_OK(zoo_create(s->zh, "/ens", "before", 6, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, NULL, 0));

    int victim = fwt_zk_ensemble_leader(zk);
    FWT_ASSERT_INT_OP(victim, >=, 0);
    fprintf(stderr, "killing the leader zk%d (port %d)\n", zk[victim].id, zk[victim].port);
    int64_t t1 = fwt_now_ms();
    fwt_zk_kill(&zk[victim]);

    struct rw_check rw = {.s = s};
    fwt_wait_until(write_then_read, &rw, 20000, "a write and read-back through the survivors");
    fprintf(stderr, "write+read succeeded %" PRId64 " ms after the kill (%d tries)\n",
            fwt_now_ms() - t1, rw.tries);

    struct survivors sv = {.a = &zk[(victim + 1) % 3], .b = &zk[(victim + 2) % 3]};
    fwt_wait_until(survivors_serving, &sv, 20000, "the two survivors to serve as leader+follower");
    fprintf(stderr, "survivors serving %" PRId64 " ms after the kill\n", fwt_now_ms() - t1);

    /* The session rode through the failover; it did not expire. */
    FWT_ASSERT_INT_EQ(sess_expired(s), 0);
}

FWT_TEST(server_restart)
{
    fwt_zk_t zk;
    fwt_zk_start(&zk);

    struct sess *s1 = sess_open(zk.connect, 10000);
    ZK_OK(zoo_create(s1->zh, "/durable", "kept", 4, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, NULL, 0));
    int64_t sid = zoo_client_id(s1->zh)->client_id;
    int port = zk.port;
    pid_t pid = zk.proc.pid;

    /* A crash, not a shutdown: with forceSync=no the transaction log is in
     * the page cache, which a process kill does not lose. */
    fwt_zk_kill(&zk);
    FWT_ASSERT(!fwt_proc_running(&zk.proc));
    int64_t t0 = fwt_now_ms();
    fwt_zk_restart(&zk);
    fprintf(stderr, "restarted and serving in %" PRId64 " ms\n", fwt_now_ms() - t0);
    FWT_ASSERT_INT_EQ(zk.port, port);
    FWT_ASSERT(zk.proc.pid != pid);

    struct sess *s2 = sess_open(zk.connect, 4000);
    char buf[32];
    ZK_OK(get_str(s2, "/durable", buf, sizeof(buf), NULL));
    FWT_ASSERT_STR_EQ(buf, "kept");

    /* Sessions are in the snapshot/log too: the old handle reconnects to the
     * restarted server with its session intact if it comes back within the
     * session timeout. */
    sess_wait(s1, reconnected, 15000, "the first session to reconnect after the restart");
    FWT_ASSERT_INT_EQ(zoo_client_id(s1->zh)->client_id, sid);
    FWT_ASSERT_INT_EQ(sess_expired(s1), 0);
    ZK_OK(get_str(s1, "/durable", buf, sizeof(buf), NULL));
    FWT_ASSERT_STR_EQ(buf, "kept");
}
