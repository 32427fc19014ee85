/*
 * The ZooKeeper session (see zk.h): zookeeper_mt handles, the queue that
 * carries their results to the loop, the session state machine and the loop
 * watchdog. Recipes built on top (ownership, discovery) live with their users.
 *
 * How it fits together. Each zhandle_t is wrapped in a conn_t, the context of
 * its watcher. ZooKeeper's IO and completion threads never touch loop state:
 * completions and watchers copy what they got into an item (the request
 * itself, the watch itself, or a small session event) and push it onto a
 * mutex-protected FIFO, then uv_async_send. The async callback drains the
 * FIFO in order (MT has a single completion thread, so order is ZooKeeper's)
 * and dispatches on the loop. A handle that is done (session expired, chroot
 * created, fw_zk_close) is "retired": it gets an end code, stops being
 * current, and on the threadpool the answers still due are awaited and
 * zookeeper_close runs; once that returns, the handle can say nothing more,
 * so the FIFO is drained, requests and watches ZooKeeper will never answer
 * are ended with the end code, and the conn is freed.
 *
 * Exactly once. The loop keeps, per handle, the requests ZooKeeper accepted
 * and the watches it may fire, and removes each as its item is dispatched;
 * whatever is left when the handle is gone gets the end code. So a callback
 * runs once whether ZooKeeper answers, fails it, or (zookeeper_close in MT
 * mode, see wait_inflight) silently drops it.
 */
#include "zk.h"

#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LOG_COMP           "zk"
#define DEFAULT_TIMEOUT_MS 10000
#define BACKOFF_MIN_MS     100
#define BACKOFF_MAX_MS     5000
#define WD_TICK_MS         100
#define WD_DRAIN_MS        250
/* Server names are resolved again at most this often (they still are on a reconnect). */
#define RESOLVE_DELAY_MS 1000

/* ---- types ------------------------------------------------------------------------ */

typedef enum { ITEM_REQ, ITEM_WATCH, ITEM_SESSION, ITEM_FENCED } item_kind_t;

/* What crosses from ZooKeeper's threads to the loop; the first member of each. */
typedef struct fw_zk_item_s {
    struct fw_zk_item_s *next;
    item_kind_t kind;
    /* The handle it came from; NULL for answers made on the loop without one. */
    struct fw_zk_conn_s *conn;
} item_t;

struct watch_s;
struct req_s;

/*
 * One zhandle_t and everything its threads may touch. It outlives every item
 * it produced: it is freed on the loop only after zookeeper_close returned
 * and the FIFO was drained.
 */
typedef struct fw_zk_conn_s {
    fw_zk_t *zk;
    uint64_t gen;
    /* A handle without the chroot, opened only to create the chroot. */
    int boot;
    /* Loop-side: the last session event said connected. */
    int connected;
    /* Loop-side: the chroot creation (or a reader's look for it) is in flight. */
    int boot_busy;
    /* Loop-side: a reader's watch for the missing chroot is set on this handle. */
    int boot_watch;
    /*
     * 0 while the handle is live; then the code owed to everything that
     * never got an answer (ZSESSIONEXPIRED or ZCLOSING). Set by the loop when
     * it retires the handle, or by the watchdog when it closes it.
     */
    _Atomic int end_rc;
    /* Serializes use of zh between the loop and the watchdog. */
    pthread_mutex_t mu;
    zhandle_t *zh;
    /* Loop-side: watches handed to this handle and not yet ended. */
    struct watch_s *watches;
    /* Loop-side: requests ZooKeeper accepted and the loop has not seen answered. */
    struct req_s *flight;
    /* Requests whose completion has not run yet (decremented by ZooKeeper's thread). */
    _Atomic int inflight;
    /* How long close_work waits for them. */
    int drain_ms;
    uv_work_t close_work;
} conn_t;

/*
 * A watch; its address is the ZooKeeper watcher context. Owned by its
 * request until the request completes, then (if ZooKeeper set it) by the
 * handle's list until it fires or the handle is closed.
 */
typedef struct watch_s {
    item_t item; /* pushed when it fires; item.conn is its handle */
    struct watch_s *prev, *next;
    int linked;
    fw_zk_watch_cb cb;
    void *arg;
    char *path;
    int type; /* written by the completion thread before the push */
} watch_t;

typedef struct {
    item_t item;
    int state;
    clientid_t client_id;
    int timeout_ms;
} session_ev_t;

typedef enum {
    REQ_CREATE,
    REQ_DELETE,
    REQ_GET,
    REQ_SET,
    REQ_EXISTS,
    REQ_CHILDREN,
    REQ_MULTI,
    REQ_ENSURE,
} req_type_t;

/* What an ensure_path is doing with the node req->prefix. */
typedef enum {
    ENSURE_PROBE,   /* does it exist? (exists, or get_acl to check its ACL too) */
    ENSURE_CREATE,  /* it did not: create it */
    ENSURE_RECHECK, /* the create was refused (ZNOAUTH): did someone else make it? */
} ensure_step_t;

/*
 * One operation, from the call to its callback. The completion thread writes
 * the result fields and pushes it; only the loop touches it otherwise.
 */
typedef struct req_s {
    item_t item;
    req_type_t type;
    union {
        fw_zk_create_cb create;
        fw_zk_void_cb done;
        fw_zk_data_cb data;
        fw_zk_stat_cb stat;
        fw_zk_children_cb children;
        fw_zk_multi_cb multi;
    } cb;
    void *arg;
    watch_t *watch;
    /* conn->flight */
    struct req_s *fprev, *fnext;
    int in_flight;

    /* ensure_path: the whole path, the ancestor being created, its length. */
    char *path;
    char *prefix;
    size_t done_len;
    int boot; /* the chroot creation: stays on its bootstrap handle */
    ensure_step_t step;
    int acl_probe;   /* the probe is a get_acl, to warn about an open ACL */
    int world_perms; /* get_acl: what world:anyone may do to the node */

    /* multi: ZooKeeper's ops and results and the buffers they point into. */
    int nops;
    int issued;
    zoo_op_t *ops;
    zoo_op_result_t *zres;
    struct Stat *stats;
    char **bufs;
    fw_zk_op_type_t *types;

    /* Results. */
    int rc;
    int watch_set;
    char *value; /* create: the path; get: the data plus a NUL */
    size_t value_len;
    struct Stat stat;
    int has_stat;
    char **names;
    int count;
} req_t;

/* The borrowed arguments of one ZooKeeper call. */
typedef struct {
    const char *path;
    const char *data;
    int len;
    int mode;
    int version;
} call_t;

static void open_conn(fw_zk_t *zk);
static void retire(fw_zk_t *zk, conn_t *conn, int end_rc);
static void drain(fw_zk_t *zk);

static uint64_t now_ms(void)
{
    return uv_hrtime() / 1000000;
}

/* Codes that mean "no answer from the server", as opposed to its answer. */
static int no_answer(int rc)
{
    return rc == ZCONNECTIONLOSS || rc == ZOPERATIONTIMEOUT || rc == ZSESSIONEXPIRED ||
           rc == ZCLOSING || rc == ZINVALIDSTATE;
}

/*
 * What an item from conn reports for rc. A server's answer stands; "no
 * answer" from a handle that has ended becomes its end code, so that work
 * from an old session is never mistaken for the new one's.
 */
static int effective_rc(conn_t *conn, int rc)
{
    if (conn == NULL || !no_answer(rc))
        return rc;
    int end = atomic_load(&conn->end_rc);
    return end != 0 ? end : rc;
}

/* ---- the FIFO ----------------------------------------------------------------------- */

/* Any thread. */
static void queue_push(fw_zk_t *zk, item_t *it)
{
    it->next = NULL;
    pthread_mutex_lock(&zk->fifo_mu);
    if (zk->fifo_tail != NULL)
        zk->fifo_tail->next = it;
    else
        zk->fifo_head = it;
    zk->fifo_tail = it;
    pthread_mutex_unlock(&zk->fifo_mu);
    uv_async_send(&zk->async);
}

static item_t *queue_pop(fw_zk_t *zk)
{
    pthread_mutex_lock(&zk->fifo_mu);
    item_t *it = zk->fifo_head;
    if (it != NULL) {
        zk->fifo_head = it->next;
        if (zk->fifo_head == NULL)
            zk->fifo_tail = NULL;
    }
    pthread_mutex_unlock(&zk->fifo_mu);
    return it;
}

/* Aborts: a session event that cannot be queued would leave the owner
 * acting on a session it no longer has. Daemons may abort on OOM (style.md). */
static void *alloc_or_die(size_t size)
{
    void *p = calloc(1, size);
    if (p == NULL) {
        fw_log_error(LOG_COMP, "out of memory queueing a ZooKeeper event");
        abort();
    }
    return p;
}

/* ---- ZooKeeper's threads: copy and hand off ------------------------------------------ */

/*
 * ZooKeeper's log: "<time>:<pid>(0x<tid>):ZOO_ERROR@<function>@<line>: <text>".
 * It logs connection refusals and timeouts at ERROR; for freeway those are
 * expected weather, reported by the session states, so all of it is WARN.
 * While a server is down it logs every reconnect attempt (about 30 lines a
 * second), so at most ZK_LOG_BURST lines per window get through and the
 * rest are counted. Called from the library's threads, with no context.
 */
#define ZK_LOG_BURST     10
#define ZK_LOG_WINDOW_MS 10000

static pthread_mutex_t zk_log_mu = PTHREAD_MUTEX_INITIALIZER;
static uint64_t zk_log_window;
static int zk_log_lines;
static int zk_log_dropped;

static void on_zk_log(const char *message)
{
    uint64_t now = now_ms();
    int dropped = 0;
    pthread_mutex_lock(&zk_log_mu);
    if (now - zk_log_window >= ZK_LOG_WINDOW_MS) {
        dropped = zk_log_dropped;
        zk_log_window = now;
        zk_log_lines = 0;
        zk_log_dropped = 0;
    }
    int keep = zk_log_lines < ZK_LOG_BURST;
    if (keep)
        zk_log_lines++;
    else
        zk_log_dropped++;
    pthread_mutex_unlock(&zk_log_mu);
    if (dropped > 0)
        fw_log_warn("zookeeper", "(%d more lines from the client were not logged)", dropped);
    if (!keep)
        return;
    const char *m = strstr(message, ":ZOO_");
    m = m != NULL ? m + 1 : message;
    size_t n = strlen(m);
    while (n > 0 && (m[n - 1] == '\n' || m[n - 1] == '\r'))
        n--;
    fw_log_warn("zookeeper", "%.*s", (int)n, m);
}

/* For a session with a log hook: the client's chatter is dropped (see fw_zk_options_t). */
static void on_zk_log_quiet(const char *message)
{
    (void)message;
}

__attribute__((format(printf, 3, 4))) static void zk_log(const fw_zk_t *zk, fw_log_level_t level,
                                                         const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (zk->log != NULL)
        zk->log(zk->log_arg, level, line);
    else
        fw_log(level, LOG_COMP, "%s", line);
}

/* The handle's global watcher: session events only (no default watches are set). */
static void on_session(zhandle_t *zh, int type, int state, const char *path, void *ctx)
{
    (void)path;
    conn_t *conn = ctx;
    if (type != ZOO_SESSION_EVENT)
        return;
    session_ev_t *ev = alloc_or_die(sizeof(*ev));
    ev->item.kind = ITEM_SESSION;
    ev->item.conn = conn;
    ev->state = state;
    if (state == ZOO_CONNECTED_STATE) {
        /* Read here, where the IO thread has just written them. */
        ev->client_id = *zoo_client_id(zh);
        ev->timeout_ms = zoo_recv_timeout(zh);
    }
    queue_push(conn->zk, &ev->item);
}

static void on_watch(zhandle_t *zh, int type, int state, const char *path, void *ctx)
{
    (void)zh;
    (void)state;
    (void)path;
    /* Every watcher also receives a copy of each session event (notes
     * §1.1); the watch stays registered, and on_session reports those. */
    if (type == ZOO_SESSION_EVENT)
        return;
    watch_t *w = ctx;
    w->type = type;
    queue_push(w->item.conn->zk, &w->item);
}

/* ZooKeeper's completion thread: hands a finished request to the loop. */
static void req_push(req_t *req)
{
    conn_t *conn = req->item.conn;
    queue_push(conn->zk, &req->item);
    /* After the push: once the count is 0, every answer is in the FIFO. */
    atomic_fetch_sub(&conn->inflight, 1);
}

static void on_string(int rc, const char *value, const void *data)
{
    req_t *req = (req_t *)data;
    req->rc = rc;
    if (rc == ZOK && value != NULL && req->type == REQ_CREATE &&
        (req->value = strdup(value)) == NULL)
        req->rc = ZSYSTEMERROR;
    req_push(req);
}

static void on_void(int rc, const void *data)
{
    req_t *req = (req_t *)data;
    req->rc = rc;
    req_push(req);
}

static void on_stat(int rc, const struct Stat *stat, const void *data)
{
    req_t *req = (req_t *)data;
    req->rc = rc;
    /* exists sets its watch on a missing node too (zookeeper.c
     * exists_result_checker). */
    req->watch_set =
        req->watch != NULL && (rc == ZOK || (req->type == REQ_EXISTS && rc == ZNONODE));
    if (rc == ZOK && stat != NULL) {
        req->stat = *stat;
        req->has_stat = 1;
    }
    req_push(req);
}

static void on_data(int rc, const char *value, int value_len, const struct Stat *stat,
                    const void *data)
{
    req_t *req = (req_t *)data;
    req->rc = rc;
    req->watch_set = req->watch != NULL && rc == ZOK;
    if (rc == ZOK) {
        size_t n = value != NULL && value_len > 0 ? (size_t)value_len : 0;
        req->value = malloc(n + 1);
        if (req->value != NULL) {
            if (n > 0)
                memcpy(req->value, value, n);
            req->value[n] = '\0';
            req->value_len = n;
        } else {
            req->rc = ZSYSTEMERROR;
        }
        if (stat != NULL) {
            req->stat = *stat;
            req->has_stat = 1;
        }
    }
    req_push(req);
}

static void on_acl(int rc, struct ACL_vector *acl, struct Stat *stat, const void *data)
{
    (void)stat;
    req_t *req = (req_t *)data;
    req->rc = rc;
    req->world_perms = 0;
    for (int i = 0; rc == ZOK && acl != NULL && i < acl->count; i++) {
        const struct Id *id = &acl->data[i].id;
        if (strcmp(id->scheme, "world") == 0 && strcmp(id->id, "anyone") == 0)
            req->world_perms |= acl->data[i].perms;
    }
    req_push(req);
}

static void on_strings(int rc, const struct String_vector *strings, const void *data)
{
    req_t *req = (req_t *)data;
    req->rc = rc;
    req->watch_set = req->watch != NULL && rc == ZOK;
    if (rc == ZOK && strings != NULL && strings->count > 0) {
        req->names = calloc((size_t)strings->count, sizeof(char *));
        int ok = req->names != NULL;
        for (int i = 0; ok && i < strings->count; i++) {
            req->names[i] = strdup(strings->data[i]);
            ok = req->names[i] != NULL;
            req->count = i + 1;
        }
        if (!ok)
            req->rc = ZSYSTEMERROR;
    }
    req_push(req);
}

/* ---- requests and watches (loop thread) ----------------------------------------------- */

static void watch_unlink(watch_t *w)
{
    if (!w->linked)
        return;
    conn_t *conn = w->item.conn;
    if (w->prev != NULL)
        w->prev->next = w->next;
    else
        conn->watches = w->next;
    if (w->next != NULL)
        w->next->prev = w->prev;
    w->prev = w->next = NULL;
    w->linked = 0;
}

static void watch_link(conn_t *conn, watch_t *w)
{
    w->item.conn = conn;
    w->prev = NULL;
    w->next = conn->watches;
    if (conn->watches != NULL)
        conn->watches->prev = w;
    conn->watches = w;
    w->linked = 1;
}

static void flight_link(conn_t *conn, req_t *req)
{
    fw_zk_t *zk = conn->zk;
    zk->requests++;
    if (++zk->requests_waiting > zk->requests_peak)
        zk->requests_peak = zk->requests_waiting;
    req->fprev = NULL;
    req->fnext = conn->flight;
    if (conn->flight != NULL)
        conn->flight->fprev = req;
    conn->flight = req;
    req->in_flight = 1;
}

static void flight_unlink(req_t *req)
{
    if (!req->in_flight)
        return;
    conn_t *conn = req->item.conn;
    conn->zk->requests_waiting--;
    if (req->fprev != NULL)
        req->fprev->fnext = req->fnext;
    else
        conn->flight = req->fnext;
    if (req->fnext != NULL)
        req->fnext->fprev = req->fprev;
    req->fprev = req->fnext = NULL;
    req->in_flight = 0;
}

static void watch_free(watch_t *w)
{
    if (w == NULL)
        return;
    free(w->path);
    free(w);
}

static req_t *req_new(req_type_t type, void *arg)
{
    req_t *req = calloc(1, sizeof(*req));
    if (req == NULL)
        return NULL;
    req->item.kind = ITEM_REQ;
    req->type = type;
    req->arg = arg;
    return req;
}

static void req_free(req_t *req)
{
    watch_free(req->watch);
    free(req->value);
    for (int i = 0; i < req->count; i++)
        free(req->names[i]);
    free(req->names);
    free(req->path);
    free(req->prefix);
    for (int i = 0; req->bufs != NULL && i < req->nops; i++)
        free(req->bufs[i]);
    free(req->bufs);
    free(req->ops);
    free(req->zres);
    free(req->stats);
    free(req->types);
    free(req);
}

/* Gives req a watch on path; 0 or -ENOMEM. */
static int req_watch(req_t *req, const char *path, fw_zk_watch_cb cb, void *arg)
{
    watch_t *w = calloc(1, sizeof(*w));
    if (w == NULL || (w->path = strdup(path)) == NULL) {
        free(w);
        return -ENOMEM;
    }
    w->item.kind = ITEM_WATCH;
    w->cb = cb;
    w->arg = arg;
    req->watch = w;
    return 0;
}

/* The handle user operations go to: none while only the bootstrap handle exists. */
static conn_t *usable_conn(fw_zk_t *zk)
{
    return zk->conn != NULL && !zk->conn->boot ? zk->conn : NULL;
}

/* Answers req on the loop's next turn without asking ZooKeeper. */
static void req_answer(fw_zk_t *zk, req_t *req, conn_t *conn, int rc)
{
    req->item.conn = conn;
    req->rc = rc;
    queue_push(zk, &req->item);
}

static int issue(fw_zk_t *zk, zhandle_t *zh, req_t *req, const call_t *c)
{
    watcher_fn wfn = req->watch != NULL ? on_watch : NULL;
    switch (req->type) {
    case REQ_ENSURE:
        if (req->step != ENSURE_CREATE) {
            /* Neither needs a right on the node (get_acl answers ZNOAUTH without READ). */
            if (req->acl_probe)
                return zoo_aget_acl(zh, c->path, on_acl, req);
            return zoo_aexists(zh, c->path, 0, on_stat, req);
        }
        return zoo_acreate(zh, c->path, c->data, c->len, &zk->acl, c->mode, on_string, req);
    case REQ_CREATE:
        return zoo_acreate(zh, c->path, c->data, c->len, &zk->acl, c->mode, on_string, req);
    case REQ_DELETE:
        return zoo_adelete(zh, c->path, c->version, on_void, req);
    case REQ_GET:
        return zoo_awget(zh, c->path, wfn, req->watch, on_data, req);
    case REQ_SET:
        return zoo_aset(zh, c->path, c->data, c->len, c->version, on_stat, req);
    case REQ_EXISTS:
        return zoo_awexists(zh, c->path, wfn, req->watch, on_stat, req);
    case REQ_CHILDREN:
        return zoo_awget_children(zh, c->path, wfn, req->watch, on_strings, req);
    case REQ_MULTI:
        return zoo_amulti(zh, req->nops, req->ops, req->zres, on_void, req);
    }
    return ZBADARGUMENTS;
}

/*
 * Sends req on conn. Returns 0 if its completion will run (from ZooKeeper,
 * or queued here when there is no handle or the handle refuses), or -EINVAL
 * if ZooKeeper rejected the arguments (then nothing runs and the caller
 * frees req).
 */
static int submit(fw_zk_t *zk, conn_t *conn, req_t *req, const call_t *c)
{
    if (conn == NULL) {
        req_answer(zk, req, NULL, ZCONNECTIONLOSS);
        return 0;
    }
    req->item.conn = conn;
    if (req->watch != NULL)
        watch_link(conn, req->watch);
    atomic_fetch_add(&conn->inflight, 1);
    pthread_mutex_lock(&conn->mu);
    /* zh is NULL once the watchdog has closed the handle. */
    int zrc = conn->zh != NULL ? issue(zk, conn->zh, req, c) : ZINVALIDSTATE;
    pthread_mutex_unlock(&conn->mu);
    if (zrc == ZOK) {
        req->issued = 1;
        flight_link(conn, req);
        return 0;
    }
    atomic_fetch_sub(&conn->inflight, 1);
    /* ZooKeeper took nothing (zookeeper.c returns before add_completion). */
    if (req->watch != NULL)
        watch_unlink(req->watch);
    if (zrc == ZBADARGUMENTS)
        return -EINVAL;
    /* ZINVALIDSTATE: the session ended and the loop has not heard yet. */
    req_answer(zk, req, conn, zrc == ZINVALIDSTATE ? ZSESSIONEXPIRED : zrc);
    return 0;
}

static int req_start(fw_zk_t *zk, req_t *req, const call_t *c)
{
    int err = submit(zk, usable_conn(zk), req, c);
    if (err != 0)
        req_free(req);
    return err;
}

/* Sends req's current step for the node req->prefix. */
static int ensure_send(fw_zk_t *zk, conn_t *conn, req_t *req)
{
    call_t c = {.path = req->prefix, .data = "", .len = 0, .mode = ZOO_PERSISTENT};
    return submit(zk, conn, req, &c);
}

/*
 * Looks at the next ancestor of req->path (or the path itself). Existing
 * nodes are looked at, never created: a create is checked against the
 * parent's ACL before the node's existence, so creating an existing node
 * under a parent another identity made answers ZNOAUTH, not ZNODEEXISTS.
 */
static int ensure_issue(fw_zk_t *zk, conn_t *conn, req_t *req)
{
    size_t n = req->done_len + 1;
    while (req->path[n] != '\0' && req->path[n] != '/')
        n++;
    memcpy(req->prefix, req->path, n);
    req->prefix[n] = '\0';
    req->done_len = n;
    req->step = ENSURE_PROBE;
    /* Only freeway's own nodes: the chroot's parents belong to whoever made them. */
    int in_tree = !req->boot || req->path[n] == '\0';
    req->acl_probe = zk->auth != NULL && !zk->acl_warned && in_tree;
    return ensure_send(zk, conn, req);
}

/* The chroot path to put before an ensure_path's node in messages. */
static const char *ensure_root(const fw_zk_t *zk, const req_t *req)
{
    return req->boot || zk->chroot == NULL ? "" : zk->chroot;
}

/* "cdrwa" order, as zkCli.sh prints and takes permissions. */
static void perms_text(int perms, char out[6])
{
    /* Not static: ZooKeeper's ZOO_PERM_* are extern variables, not constants. */
    const struct {
        int bit;
        char c;
    } letters[] = {{ZOO_PERM_CREATE, 'c'},
                   {ZOO_PERM_DELETE, 'd'},
                   {ZOO_PERM_READ, 'r'},
                   {ZOO_PERM_WRITE, 'w'},
                   {ZOO_PERM_ADMIN, 'a'}};
    int n = 0;
    for (size_t i = 0; i < sizeof(letters) / sizeof(letters[0]); i++) {
        if (perms & letters[i].bit)
            out[n++] = letters[i].c;
    }
    out[n] = '\0';
}

/*
 * A session with an identity found a node of the tree that anyone may
 * change: the identity protects nothing until the tree is restricted. It is
 * not done here: an identity's first daemon restricting the tree would lock
 * out every daemon of the fabric still running without it (and in a rolling
 * restart most still are); see docs/operations.md, ZooKeeper ACLs.
 */
static void ensure_open_acl(fw_zk_t *zk, const req_t *req)
{
    if ((req->world_perms & ~ZOO_PERM_READ) == 0 || zk->acl_warned)
        return;
    zk->acl_warned = 1;
    char perms[6];
    perms_text(req->world_perms, perms);
    char fix[256];
    if (zk->chroot != NULL)
        snprintf(fix, sizeof(fix), "setAcl -R %s auth::cdrwa,world:anyone:r", zk->chroot);
    else
        snprintf(fix, sizeof(fix),
                 "setAcl -R auth::cdrwa,world:anyone:r on each of /categories, /buckets, "
                 "/nodes and /copier");
    zk_log(zk, FW_LOG_WARN,
           "%s%s has an open ACL (world:anyone:%s): anyone may change freeway's tree, although "
           "this daemon has --zk-auth. Once every daemon and `freeway category` use the "
           "identity, restrict the tree: zkCli.sh -server %s, then addauth digest USER:PASSWORD "
           "and %s (docs/operations.md, ZooKeeper ACLs)",
           ensure_root(zk, req), req->prefix, perms, zk->hosts, fix);
}

/* A missing node this session may not create: the one error of ensure_path worth a line. */
static void ensure_refused(fw_zk_t *zk, const req_t *req)
{
    const char *root = ensure_root(zk, req);
    int ulen = zk->auth != NULL ? (int)strcspn(zk->auth, ":") : 0;
    char who[160];
    if (zk->auth != NULL)
        snprintf(who, sizeof(who), "this session's identity (digest %.*s)", ulen, zk->auth);
    else
        snprintf(who, sizeof(who), "a session without --zk-auth");
    zk_log(zk, FW_LOG_ERROR,
           "cannot create %s%s in ZooKeeper: not authenticated: the ACL of its parent does not "
           "let %s create nodes there. Give every daemon and `freeway category` the --zk-auth "
           "USER:PASSWORD that made the tree, or create %s%s with that identity "
           "(docs/operations.md, ZooKeeper ACLs)",
           root, req->prefix, who, root, req->prefix);
}

/*
 * One step of ensure_path answered with *rc. Returns 1 if the next step is
 * in flight (req lives on), 0 if req is done with *rc.
 */
static int ensure_continue(fw_zk_t *zk, req_t *req, int *rc)
{
    int next_node = 1;
    if (req->step == ENSURE_CREATE) {
        if (*rc == ZNODEEXISTS) {
            *rc = ZOK;
        } else if (*rc == ZNOAUTH) {
            /* Made meanwhile under a parent we may not create in, or truly refused. */
            req->step = ENSURE_RECHECK;
            req->acl_probe = 0;
            next_node = 0;
            *rc = ZOK;
        }
    } else if (*rc == ZOK || *rc == ZNOAUTH) {
        /* It exists (get_acl answers ZNOAUTH to a session that may not read it). */
        if (*rc == ZOK && req->acl_probe && zk->auth != NULL)
            ensure_open_acl(zk, req);
        *rc = ZOK;
    } else if (*rc == ZNONODE) {
        if (req->step == ENSURE_RECHECK) {
            ensure_refused(zk, req);
            *rc = ZNOAUTH;
            return 0;
        }
        req->step = ENSURE_CREATE;
        next_node = 0;
        *rc = ZOK;
    }
    if (*rc != ZOK || (next_node && req->path[req->done_len] == '\0'))
        return 0;
    if (zk->closing) {
        *rc = ZCLOSING;
        return 0;
    }
    conn_t *conn = req->boot ? req->item.conn : usable_conn(zk);
    int end = conn != NULL ? atomic_load(&conn->end_rc) : 0;
    if (end != 0) {
        /* Never touch a retired handle: its zookeeper_close may hold conn->mu. */
        *rc = end;
        return 0;
    }
    req->rc = ZOK;
    if ((next_node ? ensure_issue(zk, conn, req) : ensure_send(zk, conn, req)) != 0) {
        *rc = ZBADARGUMENTS;
        return 0;
    }
    return 1;
}

static void multi_finish(fw_zk_t *zk, req_t *req, int rc)
{
    fw_zk_op_result_t *res = calloc((size_t)req->nops, sizeof(*res));
    if (res == NULL) {
        /* Without results the caller still learns the outcome. */
        zk_log(zk, FW_LOG_ERROR, "out of memory building multi results");
        if (req->cb.multi != NULL)
            req->cb.multi(zk, rc == ZOK ? ZSYSTEMERROR : rc, 0, NULL, req->arg);
        return;
    }
    for (int i = 0; i < req->nops; i++) {
        /* A multi that never left (no handle) has no per-op answers. */
        int r = req->issued ? req->zres[i].err : req->rc;
        r = effective_rc(req->item.conn, r);
        res[i].rc = r;
        if (r == ZOK && req->types[i] == FW_ZK_OP_CREATE)
            res[i].path = req->zres[i].value;
        if (r == ZOK && req->types[i] == FW_ZK_OP_SET)
            res[i].stat = req->zres[i].stat;
    }
    if (req->cb.multi != NULL)
        req->cb.multi(zk, rc, req->nops, res, req->arg);
    free(res);
}

static void req_finish(fw_zk_t *zk, req_t *req)
{
    flight_unlink(req);
    int rc = effective_rc(req->item.conn, req->rc);
    if (req->watch != NULL) {
        if (req->watch_set)
            req->watch = NULL; /* the handle's list owns it now */
        else
            watch_unlink(req->watch); /* ZooKeeper never registered it; freed below */
    }
    if (req->type == REQ_ENSURE && ensure_continue(zk, req, &rc))
        return;

    int ok = rc == ZOK;
    switch (req->type) {
    case REQ_CREATE:
        if (req->cb.create != NULL)
            req->cb.create(zk, rc, ok ? req->value : NULL, req->arg);
        break;
    case REQ_DELETE:
    case REQ_ENSURE:
        if (req->cb.done != NULL)
            req->cb.done(zk, rc, req->arg);
        break;
    case REQ_GET:
        if (req->cb.data != NULL)
            req->cb.data(zk, rc, ok ? req->value : NULL, ok ? req->value_len : 0,
                         ok && req->has_stat ? &req->stat : NULL, req->arg);
        break;
    case REQ_SET:
    case REQ_EXISTS:
        if (req->cb.stat != NULL)
            req->cb.stat(zk, rc, ok && req->has_stat ? &req->stat : NULL, req->arg);
        break;
    case REQ_CHILDREN:
        if (req->cb.children != NULL)
            req->cb.children(zk, rc, ok ? req->count : 0, (const char *const *)req->names,
                             req->arg);
        break;
    case REQ_MULTI:
        multi_finish(zk, req, rc);
        break;
    }
    req_free(req);
}

static void watch_fired(fw_zk_t *zk, watch_t *w)
{
    watch_unlink(w);
    /* The event happened while the session lived, so it stands even if the
     * handle has been retired since (only fw_zk_close can get in between:
     * after an expiry the server sends nothing more). */
    if (w->cb != NULL)
        w->cb(zk, ZOK, w->type, w->path, w->arg);
    watch_free(w);
}

/* ---- session state (loop thread) ----------------------------------------------------- */

static void report(fw_zk_t *zk, fw_zk_state_t state, int64_t session_id)
{
    zk->state = state;
    if (zk->state_cb != NULL)
        zk->state_cb(zk, state, session_id, zk->state_arg);
}

static void wd_publish(fw_zk_t *zk, conn_t *conn)
{
    if (!zk->wd_enabled)
        return;
    pthread_mutex_lock(&zk->wd_mu);
    zk->wd_conn = conn;
    pthread_mutex_unlock(&zk->wd_mu);
}

static void reopen_cb(uv_timer_t *timer)
{
    fw_zk_t *zk = timer->data;
    if (!zk->closing && zk->conn == NULL)
        open_conn(zk);
}

static void schedule_reopen(fw_zk_t *zk)
{
    if (zk->closing)
        return;
    uv_timer_start(&zk->reopen_timer, reopen_cb, (uint64_t)zk->backoff_ms, 0);
    zk->backoff_ms = zk->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : zk->backoff_ms * 2;
}

/* The session of conn (the current handle) is gone: replace the handle. */
static void session_lost(fw_zk_t *zk, conn_t *conn, const char *why)
{
    int64_t sid = zk->session_id;
    int had = zk->state == FW_ZK_CONNECTED || zk->state == FW_ZK_SUSPENDED;
    retire(zk, conn, ZSESSIONEXPIRED);
    zk->session_id = 0;
    memset(&zk->client_id, 0, sizeof(zk->client_id));
    schedule_reopen(zk);
    if (conn->boot || !had) {
        zk_log(zk, FW_LOG_WARN, "handle %llu: session %s before it was in use; opening another",
               (unsigned long long)conn->gen, why);
        return;
    }
    zk_log(zk, FW_LOG_WARN,
           "session 0x%llx %s: its ephemerals and watches are gone; opening a new session",
           (unsigned long long)sid, why);
    report(zk, FW_ZK_EXPIRED, sid);
}

static void boot_start(fw_zk_t *zk, conn_t *conn);

/* The chroot exists: the bootstrap handle conn gives way to one inside it. */
static void boot_found(fw_zk_t *zk, conn_t *conn)
{
    zk->chroot_ready = 1;
    if (zk->chroot_missing)
        zk_log(zk, FW_LOG_INFO, "the freeway tree %s exists now", zk->chroot);
    else
        zk_log(zk, FW_LOG_INFO, "chroot %s exists", zk->chroot);
    zk->chroot_missing = 0;
    retire(zk, conn, ZCLOSING);
    open_conn(zk);
}

/* The chroot creation (or a reader's look for it) on the bootstrap handle conn ended with rc. */
static void boot_done(fw_zk_t *zk, int rc, void *arg)
{
    conn_t *conn = arg;
    conn->boot_busy = 0;
    if (conn != zk->conn)
        return; /* retired meanwhile (expired, or fw_zk_close) */
    if (rc == ZOK) {
        boot_found(zk, conn);
        return;
    }
    if (rc == ZNONODE && !zk->create_chroot) {
        /* A reader: exists set a watch, which brings us back when it appears. */
        conn->boot_watch = 1;
        if (!zk->chroot_missing)
            zk_log(zk, FW_LOG_WARN,
                   "no freeway tree at %s: %s does not exist; waiting for a freeway daemon or "
                   "`freeway category create` to make it",
                   zk->connect, zk->chroot);
        zk->chroot_missing = 1;
        return;
    }
    if (no_answer(rc)) {
        /* A lost connection: try again once it is back (now, if it is). */
        if (conn->connected)
            boot_start(zk, conn);
        return;
    }
    /* ZNOAUTH has been logged with its fix by ensure_refused. */
    if (rc != ZNOAUTH)
        zk_log(zk, FW_LOG_ERROR, "cannot %s the chroot %s: %s; retrying",
               zk->create_chroot ? "create" : "look for", zk->chroot, zerror(rc));
    retire(zk, conn, ZCLOSING);
    schedule_reopen(zk);
}

/* A reader's watch on its missing chroot: created, or the handle ended. */
static void boot_watch_fired(fw_zk_t *zk, int rc, int type, const char *path, void *arg)
{
    (void)type;
    (void)path;
    conn_t *conn = arg;
    conn->boot_watch = 0;
    if (rc == ZOK && conn == zk->conn)
        boot_start(zk, conn);
}

static void boot_stat_done(fw_zk_t *zk, int rc, const struct Stat *stat, void *arg)
{
    (void)stat;
    boot_done(zk, rc, arg);
}

/*
 * A reader only looks: exists with a watch, so that it learns when the tree
 * appears without polling. Its creating it would give the chroot the open
 * ACL and no owner.
 */
static void boot_probe(fw_zk_t *zk, conn_t *conn)
{
    if (conn->boot_busy || conn->boot_watch)
        return; /* a watch still set reports the creation, even one made while disconnected */
    req_t *req = req_new(REQ_EXISTS, conn);
    if (req == NULL || req_watch(req, zk->chroot, boot_watch_fired, conn) != 0) {
        if (req != NULL)
            req_free(req);
        zk_log(zk, FW_LOG_ERROR, "out of memory looking for the chroot; retrying on reconnect");
        return;
    }
    req->cb.stat = boot_stat_done;
    conn->boot_busy = 1;
    call_t c = {.path = zk->chroot};
    if (submit(zk, conn, req, &c) != 0) {
        /* Cannot happen: fw_zk_init checked the chroot. */
        req_free(req);
        conn->boot_busy = 0;
    }
}

static void boot_start(fw_zk_t *zk, conn_t *conn)
{
    if (!zk->create_chroot) {
        boot_probe(zk, conn);
        return;
    }
    if (conn->boot_busy)
        return;
    req_t *req = req_new(REQ_ENSURE, conn);
    size_t n = strlen(zk->chroot);
    if (req == NULL || (req->path = strdup(zk->chroot)) == NULL ||
        (req->prefix = malloc(n + 1)) == NULL) {
        if (req != NULL)
            req_free(req);
        zk_log(zk, FW_LOG_ERROR, "out of memory creating the chroot; retrying on reconnect");
        return;
    }
    req->cb.done = boot_done;
    req->boot = 1;
    conn->boot_busy = 1;
    if (ensure_issue(zk, conn, req) != 0) {
        /* Cannot happen: fw_zk_init checked the chroot. */
        req_free(req);
        conn->boot_busy = 0;
    }
}

static void on_connected(fw_zk_t *zk, conn_t *conn, const session_ev_t *ev)
{
    int64_t sid = ev->client_id.client_id;
    int resumed = zk->state == FW_ZK_SUSPENDED && zk->session_id == sid;
    zk->session_id = sid;
    zk->client_id = ev->client_id;
    zk->negotiated_timeout_ms = ev->timeout_ms;
    zk->backoff_ms = BACKOFF_MIN_MS;
    if (ev->timeout_ms > 0)
        atomic_store(&zk->wd_limit_ms, ev->timeout_ms / 2);
    if (zk->state == FW_ZK_CONNECTED)
        return;
    if (resumed)
        zk_log(zk, FW_LOG_INFO, "session 0x%llx resumed", (unsigned long long)sid);
    else
        zk_log(zk, FW_LOG_INFO, "session 0x%llx established (handle %llu, timeout %d ms)",
               (unsigned long long)sid, (unsigned long long)conn->gen, ev->timeout_ms);
    report(zk, FW_ZK_CONNECTED, sid);
}

static void session_event(fw_zk_t *zk, const session_ev_t *ev)
{
    conn_t *conn = ev->item.conn;
    if (conn != zk->conn)
        return; /* a retired handle's last words */
    if (ev->state == ZOO_CONNECTED_STATE) {
        conn->connected = 1;
        if (conn->boot)
            boot_start(zk, conn);
        else
            on_connected(zk, conn, ev);
    } else if (ev->state == ZOO_CONNECTING_STATE || ev->state == ZOO_ASSOCIATING_STATE) {
        conn->connected = 0;
        if (!conn->boot && zk->state == FW_ZK_CONNECTED) {
            zk_log(zk, FW_LOG_WARN, "session 0x%llx suspended: connection lost, reconnecting",
                   (unsigned long long)zk->session_id);
            report(zk, FW_ZK_SUSPENDED, zk->session_id);
        }
    } else if (ev->state == ZOO_EXPIRED_SESSION_STATE) {
        conn->connected = 0;
        session_lost(zk, conn, "expired");
    } else if (ev->state == ZOO_AUTH_FAILED_STATE) {
        conn->connected = 0;
        session_lost(zk, conn, "failed authentication");
    }
}

static void dispatch(fw_zk_t *zk, item_t *it)
{
    switch (it->kind) {
    case ITEM_REQ:
        req_finish(zk, (req_t *)it);
        break;
    case ITEM_WATCH:
        watch_fired(zk, (watch_t *)it);
        break;
    case ITEM_SESSION:
        session_event(zk, (session_ev_t *)it);
        free(it);
        break;
    case ITEM_FENCED:
        /* The watchdog closed the current handle while the loop was stuck. */
        if (it->conn == zk->conn)
            session_lost(zk, it->conn, "closed by the loop watchdog");
        free(it);
        break;
    }
}

/* Dispatches everything queued, one item at a time, so that items pushed by
 * the callbacks themselves keep their place. */
static void drain(fw_zk_t *zk)
{
    item_t *it;
    while ((it = queue_pop(zk)) != NULL)
        dispatch(zk, it);
}

/* ---- handles ----------------------------------------------------------------------- */

static void open_conn(fw_zk_t *zk)
{
    conn_t *conn = calloc(1, sizeof(*conn));
    if (conn == NULL) {
        zk_log(zk, FW_LOG_ERROR, "out of memory opening a ZooKeeper handle; retrying");
        schedule_reopen(zk);
        return;
    }
    conn->zk = zk;
    conn->gen = ++zk->gen;
    conn->boot = zk->chroot != NULL && !zk->chroot_ready;
    conn->close_work.data = conn;
    pthread_mutex_init(&conn->mu, NULL);
    /* Without the chroot first: the chroot may not exist yet. */
    const char *hosts = conn->boot ? zk->hosts : zk->connect;
    zhandle_t *zh =
        zookeeper_init2(hosts, on_session, zk->timeout_ms, NULL, conn, ZOO_NO_LOG_CLIENTENV,
                        zk->log != NULL ? on_zk_log_quiet : on_zk_log);
    if (zh == NULL) {
        /* A name that does not resolve (yet), or no threads: try later. */
        zk_log(zk, FW_LOG_ERROR, "zookeeper_init(%s): %s; retrying", hosts, strerror(errno));
        pthread_mutex_destroy(&conn->mu);
        free(conn);
        schedule_reopen(zk);
        return;
    }
    if (zk->auth != NULL) {
        /* Queued ahead of every request; the client sends it again on each
         * reconnect. A rejected one ends the handle (AUTH_FAILED). */
        int arc = zoo_add_auth(zh, "digest", zk->auth, (int)strlen(zk->auth), NULL, NULL);
        if (arc != ZOK)
            zk_log(zk, FW_LOG_ERROR, "zoo_add_auth: %s", zerror(arc));
    }
    /* By default the client resolves the server names each time its thread
     * polls, i.e. a getaddrinfo (a netlink dump of the interfaces) for every
     * batch of requests: most of that thread's CPU under load. */
    zoo_set_servers_resolution_delay(zh, RESOLVE_DELAY_MS);
    pthread_mutex_lock(&conn->mu);
    conn->zh = zh;
    pthread_mutex_unlock(&conn->mu);
    zk->conn = conn;
    zk->nconns++;
    wd_publish(zk, conn);
    zk_log(zk, FW_LOG_DEBUG, "handle %llu connecting to %s", (unsigned long long)conn->gen, hosts);
}

/*
 * Waits up to ms for ZooKeeper to answer every request sent on conn. In MT
 * mode zookeeper_close does not reliably run the completions still pending
 * when it is called: the completion thread stops as soon as the close is
 * requested, and what it has not reached is never called and never freed
 * (mt_adaptor.c do_completion, zookeeper.c destroy). A live connection
 * answers in milliseconds, a broken one fails everything within 2/3 of the
 * session timeout, an expired handle at once. What is left after the wait
 * close_done answers itself (and the library leaks its bookkeeping for it).
 */
static void wait_inflight(conn_t *conn, int ms)
{
    uint64_t deadline = now_ms() + (uint64_t)ms;
    while (atomic_load(&conn->inflight) > 0 && now_ms() < deadline) {
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 1000000};
        nanosleep(&ts, NULL);
    }
}

static void close_work(uv_work_t *work)
{
    conn_t *conn = work->data;
    pthread_mutex_lock(&conn->mu);
    if (conn->zh != NULL) {
        wait_inflight(conn, conn->drain_ms);
        zookeeper_close(conn->zh);
        conn->zh = NULL;
    }
    pthread_mutex_unlock(&conn->mu);
}

static void maybe_finish(fw_zk_t *zk);

static void close_done(uv_work_t *work, int status)
{
    (void)status; /* nothing cancels it */
    conn_t *conn = work->data;
    fw_zk_t *zk = conn->zk;
    /* zookeeper_close joined the handle's threads after running every
     * completion it owed (ZCLOSING), so the FIFO holds all this handle will
     * ever say. Deliver it, then end the watches it will never fire. */
    drain(zk);
    int end = atomic_load(&conn->end_rc);
    while (conn->flight != NULL) {
        /* Never answered (see wait_inflight), so never registered a watch either. */
        req_t *req = conn->flight;
        req->rc = end;
        req_finish(zk, req);
    }
    while (conn->watches != NULL) {
        watch_t *w = conn->watches;
        watch_unlink(w);
        if (w->cb != NULL)
            w->cb(zk, end, ZOO_SESSION_EVENT, w->path, w->arg);
        watch_free(w);
    }
    pthread_mutex_destroy(&conn->mu);
    free(conn);
    zk->nconns--;
    maybe_finish(zk);
}

/*
 * Ends conn: everything it still owes gets end_rc, and zookeeper_close runs
 * on the threadpool (it blocks for up to 4.5 s on an unresponsive server).
 */
static void retire(fw_zk_t *zk, conn_t *conn, int end_rc)
{
    int none = 0;
    /* Keep the watchdog's code if it got there first. */
    atomic_compare_exchange_strong(&conn->end_rc, &none, end_rc);
    conn->connected = 0;
    conn->drain_ms = zk->negotiated_timeout_ms > 0 ? zk->negotiated_timeout_ms : zk->timeout_ms;
    if (zk->conn == conn) {
        zk->conn = NULL;
        wd_publish(zk, NULL);
    }
    uv_queue_work(zk->loop, &conn->close_work, close_work, close_done);
}

/* ---- the loop watchdog ------------------------------------------------------------- */

static void wd_tick(uv_timer_t *timer)
{
    fw_zk_t *zk = timer->data;
    atomic_store(&zk->wd_tick_ms, now_ms());
}

/* Watchdog thread; holds conn->mu, which keeps conn alive (close_work needs it). */
static void wd_fence(fw_zk_t *zk, conn_t *conn, uint64_t stalled_ms, int limit_ms)
{
    zhandle_t *zh = conn->zh;
    if (zh == NULL)
        return;
    zk_log(zk, FW_LOG_WARN,
           "the event loop has not run for %llu ms (limit %d ms): closing ZooKeeper session "
           "0x%llx so that what it owns can move",
           (unsigned long long)stalled_ms, limit_ms,
           (unsigned long long)zoo_client_id(zh)->client_id);
    /* Before the close, so that what it fails reads as an ended session. */
    atomic_store(&conn->end_rc, ZSESSIONEXPIRED);
    /* Answers in flight on a live connection take milliseconds (see
     * wait_inflight); do not hold the release of ownership longer. */
    wait_inflight(conn, WD_DRAIN_MS);
    zookeeper_close(zh);
    conn->zh = NULL;
    item_t *it = alloc_or_die(sizeof(*it));
    it->kind = ITEM_FENCED;
    it->conn = conn;
    queue_push(zk, it);
}

static void *wd_main(void *arg)
{
    fw_zk_t *zk = arg;
    pthread_mutex_lock(&zk->wd_mu);
    while (!zk->wd_stop) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += WD_TICK_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&zk->wd_cond, &zk->wd_mu, &ts);
        conn_t *conn = zk->wd_conn;
        if (zk->wd_stop || conn == NULL)
            continue;
        uint64_t last = atomic_load(&zk->wd_tick_ms);
        uint64_t now = now_ms();
        int limit = atomic_load(&zk->wd_limit_ms);
        if (now <= last || now - last <= (uint64_t)limit)
            continue;
        /* Once per handle. Take conn->mu before letting go of wd_mu: the
         * loop unpublishes a handle under wd_mu before queueing its close,
         * and that close waits for conn->mu, so conn stays alive. */
        zk->wd_conn = NULL;
        pthread_mutex_lock(&conn->mu);
        pthread_mutex_unlock(&zk->wd_mu);
        wd_fence(zk, conn, now - last, limit);
        pthread_mutex_unlock(&conn->mu);
        pthread_mutex_lock(&zk->wd_mu);
    }
    pthread_mutex_unlock(&zk->wd_mu);
    return NULL;
}

static int wd_start(fw_zk_t *zk)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&zk->wd_cond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&zk->wd_mu, NULL);
    int err = pthread_create(&zk->wd_thread, NULL, wd_main, zk);
    if (err != 0) {
        pthread_cond_destroy(&zk->wd_cond);
        pthread_mutex_destroy(&zk->wd_mu);
        return -err;
    }
    zk->wd_enabled = 1;
    return 0;
}

/* Loop thread; waits for a fence in progress to finish. */
static void wd_stop(fw_zk_t *zk)
{
    if (!zk->wd_enabled)
        return;
    pthread_mutex_lock(&zk->wd_mu);
    zk->wd_stop = 1;
    pthread_cond_signal(&zk->wd_cond);
    pthread_mutex_unlock(&zk->wd_mu);
    pthread_join(zk->wd_thread, NULL);
}

/* ---- init and close ----------------------------------------------------------------- */

/*
 * ZooKeeper's own path rules (zookeeper.c isValidPath), checked here so that
 * a bad path is -EINVAL at the call, and so that zoo_amulti, which leaks its
 * half-built request on a bad path, never sees one.
 */
static int path_valid(const char *path, int sequential)
{
    if (path == NULL || path[0] != '/')
        return 0;
    if (path[1] == '\0')
        return 1;
    const char *p = path + 1;
    for (;;) {
        const char *end = strchrnul(p, '/');
        size_t n = (size_t)(end - p);
        /* A sequential node's name may end in '/' or '.': the server appends digits. */
        int open_end = *end == '\0' && sequential;
        if (n == 0 && !open_end)
            return 0;
        if (!open_end && ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.')))
            return 0;
        for (size_t i = 0; i < n; i++) {
            if ((unsigned char)p[i] < 0x20)
                return 0;
        }
        if (*end == '\0')
            return 1;
        p = end + 1;
    }
}

/* "host:port[,host:port...][/chroot]": checks each host has a numeric port,
 * and splits off the chroot ("/" counts as none). */
static int parse_connect(const char *connect, char **hosts_out, char **chroot_out)
{
    const char *slash = strchr(connect, '/');
    size_t hlen = slash != NULL ? (size_t)(slash - connect) : strlen(connect);
    if (hlen == 0)
        return -EINVAL;
    char *hosts = strndup(connect, hlen);
    if (hosts == NULL)
        return -ENOMEM;
    const char *h = hosts;
    for (;;) {
        const char *comma = strchrnul(h, ',');
        const char *colon = memrchr(h, ':', (size_t)(comma - h));
        if (colon == NULL || colon == h || colon + 1 == comma)
            goto bad;
        long port = 0;
        for (const char *d = colon + 1; d < comma; d++) {
            if (*d < '0' || *d > '9' || (port = port * 10 + (*d - '0')) > 65535)
                goto bad;
        }
        if (port == 0)
            goto bad;
        if (*comma == '\0')
            break;
        h = comma + 1;
    }
    char *chroot = NULL;
    if (slash != NULL && strcmp(slash, "/") != 0) {
        if (!path_valid(slash, 0))
            goto bad;
        if ((chroot = strdup(slash)) == NULL) {
            free(hosts);
            return -ENOMEM;
        }
    }
    *hosts_out = hosts;
    *chroot_out = chroot;
    return 0;
bad:
    free(hosts);
    return -EINVAL;
}

static void on_async(uv_async_t *async)
{
    fw_zk_t *zk = async->data;
    drain(zk);
    maybe_finish(zk);
}

int fw_zk_init(fw_zk_t *zk, uv_loop_t *loop, const fw_zk_options_t *opts)
{
    if (zk == NULL || loop == NULL || opts == NULL || opts->connect == NULL ||
        opts->session_timeout_ms < 0)
        return -EINVAL;
    memset(zk, 0, sizeof(*zk));
    zk->loop = loop;
    int err = parse_connect(opts->connect, &zk->hosts, &zk->chroot);
    if (err != 0)
        return err;
    if ((zk->connect = strdup(opts->connect)) == NULL) {
        err = -ENOMEM;
        goto fail;
    }
    zk->timeout_ms = opts->session_timeout_ms > 0 ? opts->session_timeout_ms : DEFAULT_TIMEOUT_MS;
    zk->acl = ZOO_OPEN_ACL_UNSAFE;
    if (opts->auth != NULL && opts->auth[0] != '\0') {
        if (strchr(opts->auth, ':') == NULL) {
            err = -EINVAL;
            goto fail;
        }
        if ((zk->auth = strdup(opts->auth)) == NULL) {
            err = -ENOMEM;
            goto fail;
        }
        /* "auth" with an empty id: the identities this session authenticated as. */
        zk->acl_items[0] = (struct ACL){.perms = ZOO_PERM_ALL, .id = ZOO_AUTH_IDS};
        zk->acl_items[1] = (struct ACL){.perms = ZOO_PERM_READ, .id = ZOO_ANYONE_ID_UNSAFE};
        zk->acl = (struct ACL_vector){.count = 2, .data = zk->acl_items};
    }
    zk->create_chroot = opts->create_chroot != 0;
    zk->state_cb = opts->state_cb;
    zk->state_arg = opts->state_arg;
    zk->log = opts->log;
    zk->log_arg = opts->log_arg;
    zk->state = FW_ZK_CONNECTING;
    zk->backoff_ms = BACKOFF_MIN_MS;
    atomic_init(&zk->wd_limit_ms, zk->timeout_ms / 2);
    atomic_init(&zk->wd_tick_ms, now_ms());
    pthread_mutex_init(&zk->fifo_mu, NULL);
    if (opts->loop_watchdog && (err = wd_start(zk)) != 0)
        goto fail_mutex;
    /* Last, because an initialized handle can only be undone asynchronously. */
    if ((err = uv_async_init(loop, &zk->async, on_async)) != 0)
        goto fail_wd;
    zk->async.data = zk;
    uv_timer_init(loop, &zk->reopen_timer);
    zk->reopen_timer.data = zk;
    if (zk->wd_enabled) {
        uv_timer_init(loop, &zk->wd_timer);
        zk->wd_timer.data = zk;
        uv_timer_start(&zk->wd_timer, wd_tick, WD_TICK_MS, WD_TICK_MS);
        uv_unref((uv_handle_t *)&zk->wd_timer);
    }

    /* Process-wide; INFO would log every connect and close. */
    zoo_set_debug_level(ZOO_LOG_LEVEL_WARN);
    zk_log(zk, FW_LOG_INFO, "connecting to %s (session timeout %d ms%s)", zk->connect,
           zk->timeout_ms, zk->wd_enabled ? ", loop watchdog on" : "");
    /* From here on nothing fails: a handle that cannot be made now is retried. */
    open_conn(zk);
    return 0;

fail_wd:
    wd_stop(zk);
    if (zk->wd_enabled) {
        pthread_cond_destroy(&zk->wd_cond);
        pthread_mutex_destroy(&zk->wd_mu);
    }
fail_mutex:
    pthread_mutex_destroy(&zk->fifo_mu);
fail:
    free(zk->auth);
    free(zk->connect);
    free(zk->hosts);
    free(zk->chroot);
    memset(zk, 0, sizeof(*zk));
    return err;
}

static void on_handle_closed(uv_handle_t *handle)
{
    fw_zk_t *zk = handle->data;
    if (--zk->handles_open > 0)
        return;
    if (zk->wd_enabled) {
        pthread_cond_destroy(&zk->wd_cond);
        pthread_mutex_destroy(&zk->wd_mu);
    }
    pthread_mutex_destroy(&zk->fifo_mu);
    free(zk->auth);
    free(zk->connect);
    free(zk->hosts);
    free(zk->chroot);
    zk->connect = zk->hosts = zk->chroot = zk->auth = NULL;
    zk_log(zk, FW_LOG_INFO, "closed");
    if (zk->close_cb != NULL)
        zk->close_cb(zk);
}

/* Once closing and every handle is closed, no thread can push any more: close
 * the async handle (never earlier: a push would touch a closed handle). */
static void maybe_finish(fw_zk_t *zk)
{
    if (!zk->closing || zk->nconns > 0 || zk->finishing)
        return;
    zk->finishing = 1;
    drain(zk);
    zk->handles_open = zk->wd_enabled ? 3 : 2;
    uv_close((uv_handle_t *)&zk->async, on_handle_closed);
    uv_close((uv_handle_t *)&zk->reopen_timer, on_handle_closed);
    if (zk->wd_enabled)
        uv_close((uv_handle_t *)&zk->wd_timer, on_handle_closed);
}

void fw_zk_close(fw_zk_t *zk, fw_zk_close_cb cb)
{
    if (zk->closing)
        return;
    zk_log(zk, FW_LOG_INFO, "closing (session 0x%llx)", (unsigned long long)zk->session_id);
    zk->closing = 1;
    zk->close_cb = cb;
    zk->state = FW_ZK_CLOSED;
    uv_timer_stop(&zk->reopen_timer);
    wd_stop(zk);
    if (zk->conn != NULL)
        retire(zk, zk->conn, ZCLOSING);
    /* The rest happens on the loop's next turn, not inside the caller's callback. */
    uv_async_send(&zk->async);
}

/* ---- accessors ----------------------------------------------------------------------- */

int64_t fw_zk_session_id(const fw_zk_t *zk)
{
    return zk->session_id;
}

int fw_zk_connected(const fw_zk_t *zk)
{
    return zk->state == FW_ZK_CONNECTED;
}

fw_zk_state_t fw_zk_state(const fw_zk_t *zk)
{
    return zk->state;
}

const char *fw_zk_state_name(fw_zk_state_t state)
{
    switch (state) {
    case FW_ZK_CONNECTING:
        return "connecting";
    case FW_ZK_CONNECTED:
        return "connected";
    case FW_ZK_SUSPENDED:
        return "suspended";
    case FW_ZK_EXPIRED:
        return "expired";
    case FW_ZK_CLOSED:
        return "closed";
    }
    return "?";
}

int fw_zk_chroot_missing(const fw_zk_t *zk)
{
    return zk->chroot_missing;
}

int fw_zk_session_timeout(const fw_zk_t *zk)
{
    return zk->negotiated_timeout_ms;
}

uint64_t fw_zk_requests(const fw_zk_t *zk)
{
    return zk->requests;
}

int fw_zk_requests_waiting(const fw_zk_t *zk)
{
    return zk->requests_waiting;
}

int fw_zk_requests_peak(const fw_zk_t *zk)
{
    return zk->requests_peak;
}

int fw_zk_client_id(const fw_zk_t *zk, clientid_t *out)
{
    if (zk->session_id == 0)
        return -ENOTCONN;
    *out = zk->client_id;
    return 0;
}

/* ---- operations ----------------------------------------------------------------------- */

static int op_check(const fw_zk_t *zk, const char *path, int sequential)
{
    if (zk->closing)
        return -ESHUTDOWN;
    return path_valid(path, sequential) ? 0 : -EINVAL;
}

static int create_mode(int flags)
{
    int seq = (flags & FW_ZK_SEQUENTIAL) != 0;
    if (flags & FW_ZK_EPHEMERAL)
        return seq ? ZOO_EPHEMERAL_SEQUENTIAL : ZOO_EPHEMERAL;
    return seq ? ZOO_PERSISTENT_SEQUENTIAL : ZOO_PERSISTENT;
}

int fw_zk_create(fw_zk_t *zk, const char *path, const void *data, size_t len, int flags,
                 fw_zk_create_cb cb, void *arg)
{
    if (flags & ~(FW_ZK_EPHEMERAL | FW_ZK_SEQUENTIAL) || len > INT_MAX)
        return -EINVAL;
    int err = op_check(zk, path, flags & FW_ZK_SEQUENTIAL);
    if (err != 0)
        return err;
    req_t *req = req_new(REQ_CREATE, arg);
    if (req == NULL)
        return -ENOMEM;
    req->cb.create = cb;
    call_t c = {.path = path, .data = data != NULL ? data : "", .len = (int)len};
    c.mode = create_mode(flags);
    return req_start(zk, req, &c);
}

int fw_zk_delete(fw_zk_t *zk, const char *path, int version, fw_zk_void_cb cb, void *arg)
{
    int err = op_check(zk, path, 0);
    if (err != 0)
        return err;
    req_t *req = req_new(REQ_DELETE, arg);
    if (req == NULL)
        return -ENOMEM;
    req->cb.done = cb;
    call_t c = {.path = path, .version = version};
    return req_start(zk, req, &c);
}

/* get, exists and get_children: the same shape, with an optional watch. */
static int watched_op(fw_zk_t *zk, req_type_t type, const char *path, fw_zk_watch_cb watch_cb,
                      void *watch_arg, void (*cb)(void), void *arg)
{
    int err = op_check(zk, path, 0);
    if (err != 0)
        return err;
    req_t *req = req_new(type, arg);
    if (req == NULL)
        return -ENOMEM;
    if (watch_cb != NULL && req_watch(req, path, watch_cb, watch_arg) != 0) {
        req_free(req);
        return -ENOMEM;
    }
    switch (type) {
    case REQ_GET:
        req->cb.data = (fw_zk_data_cb)cb;
        break;
    case REQ_EXISTS:
        req->cb.stat = (fw_zk_stat_cb)cb;
        break;
    default:
        req->cb.children = (fw_zk_children_cb)cb;
        break;
    }
    call_t c = {.path = path};
    return req_start(zk, req, &c);
}

int fw_zk_get(fw_zk_t *zk, const char *path, fw_zk_watch_cb watch_cb, void *watch_arg,
              fw_zk_data_cb cb, void *arg)
{
    return watched_op(zk, REQ_GET, path, watch_cb, watch_arg, (void (*)(void))cb, arg);
}

int fw_zk_exists(fw_zk_t *zk, const char *path, fw_zk_watch_cb watch_cb, void *watch_arg,
                 fw_zk_stat_cb cb, void *arg)
{
    return watched_op(zk, REQ_EXISTS, path, watch_cb, watch_arg, (void (*)(void))cb, arg);
}

int fw_zk_get_children(fw_zk_t *zk, const char *path, fw_zk_watch_cb watch_cb, void *watch_arg,
                       fw_zk_children_cb cb, void *arg)
{
    return watched_op(zk, REQ_CHILDREN, path, watch_cb, watch_arg, (void (*)(void))cb, arg);
}

int fw_zk_set(fw_zk_t *zk, const char *path, const void *data, size_t len, int version,
              fw_zk_stat_cb cb, void *arg)
{
    if (len > INT_MAX)
        return -EINVAL;
    int err = op_check(zk, path, 0);
    if (err != 0)
        return err;
    req_t *req = req_new(REQ_SET, arg);
    if (req == NULL)
        return -ENOMEM;
    req->cb.stat = cb;
    call_t c = {.path = path, .data = data != NULL ? data : "", .len = (int)len};
    c.version = version;
    return req_start(zk, req, &c);
}

int fw_zk_multi(fw_zk_t *zk, const fw_zk_op_t *ops, int count, fw_zk_multi_cb cb, void *arg)
{
    if (zk->closing)
        return -ESHUTDOWN;
    if (ops == NULL || count <= 0)
        return -EINVAL;
    for (int i = 0; i < count; i++) {
        const fw_zk_op_t *op = &ops[i];
        int seq = op->type == FW_ZK_OP_CREATE && (op->flags & FW_ZK_SEQUENTIAL);
        if (!path_valid(op->path, seq) || op->len > INT_MAX || op->type < FW_ZK_OP_CREATE ||
            op->type > FW_ZK_OP_CHECK ||
            (op->type == FW_ZK_OP_CREATE && (op->flags & ~(FW_ZK_EPHEMERAL | FW_ZK_SEQUENTIAL))))
            return -EINVAL;
    }
    req_t *req = req_new(REQ_MULTI, arg);
    if (req == NULL)
        return -ENOMEM;
    req->cb.multi = cb;
    req->nops = count;
    size_t n = (size_t)count;
    req->ops = calloc(n, sizeof(*req->ops));
    req->zres = calloc(n, sizeof(*req->zres));
    req->stats = calloc(n, sizeof(*req->stats));
    req->bufs = calloc(n, sizeof(*req->bufs));
    req->types = calloc(n, sizeof(*req->types));
    if (req->ops == NULL || req->zres == NULL || req->stats == NULL || req->bufs == NULL ||
        req->types == NULL)
        goto nomem;
    for (int i = 0; i < count; i++) {
        const fw_zk_op_t *op = &ops[i];
        const char *data = op->data != NULL ? op->data : "";
        req->types[i] = op->type;
        switch (op->type) {
        case FW_ZK_OP_CREATE: {
            /* The created path: the requested one plus at most 10 sequence digits. */
            int cap = (int)strlen(op->path) + 16;
            if ((req->bufs[i] = malloc((size_t)cap)) == NULL)
                goto nomem;
            zoo_create_op_init(&req->ops[i], op->path, data, (int)op->len, &zk->acl,
                               create_mode(op->flags), req->bufs[i], cap);
            break;
        }
        case FW_ZK_OP_DELETE:
            zoo_delete_op_init(&req->ops[i], op->path, op->version);
            break;
        case FW_ZK_OP_SET:
            zoo_set_op_init(&req->ops[i], op->path, data, (int)op->len, op->version,
                            &req->stats[i]);
            break;
        case FW_ZK_OP_CHECK:
            zoo_check_op_init(&req->ops[i], op->path, op->version);
            break;
        }
    }
    /* zoo_amulti serializes the ops during the call, so the caller's paths and
     * data need not outlive it; results land in req's own buffers. */
    call_t c = {0};
    return req_start(zk, req, &c);
nomem:
    req_free(req);
    return -ENOMEM;
}

int fw_zk_ensure_path(fw_zk_t *zk, const char *path, fw_zk_void_cb cb, void *arg)
{
    int err = op_check(zk, path, 0);
    if (err != 0)
        return err;
    req_t *req = req_new(REQ_ENSURE, arg);
    if (req == NULL)
        return -ENOMEM;
    req->cb.done = cb;
    size_t n = strlen(path);
    if ((req->path = strdup(path)) == NULL || (req->prefix = malloc(n + 1)) == NULL) {
        req_free(req);
        return -ENOMEM;
    }
    if (n == 1) {
        /* The root (or the chroot) always exists. */
        req->done_len = 1;
        req_answer(zk, req, NULL, ZOK);
        return 0;
    }
    err = ensure_issue(zk, usable_conn(zk), req);
    if (err != 0)
        req_free(req);
    return err;
}
