/*
 * The ZooKeeper session of a freeway process: one zookeeper_mt handle whose
 * results and events are handed to a libuv loop (engineering-notes §1.5).
 * Owns the handle, the hand-off queue, the session lifecycle (chroot
 * creation, suspension, expiry and re-creation) and the loop watchdog; knows
 * nothing of freeway's tree under the chroot (recipes live with their users).
 *
 * Threads. Every function here is for the loop thread, and every callback
 * runs on it. ZooKeeper's own threads only copy what they are given into a
 * queue and wake the loop with uv_async_send.
 *
 * Callbacks. An operation that returns 0 runs its callback exactly once,
 * later, from the loop (never from inside the call); one that returns an
 * error (< 0: -EINVAL for a bad argument, -ENOMEM, -ESHUTDOWN after
 * fw_zk_close) never runs it. Callbacks receive ZooKeeper's own return codes
 * (ZOK, ZNONODE, ZNODEEXISTS, ZBADVERSION, ZCONNECTIONLOSS, ...; zerror()
 * names them), with these freeway meanings:
 *   ZCONNECTIONLOSS  no connection, or it broke before the answer came: the
 *                    outcome of a write is unknown (recipes.md "GUID").
 *                    Also what an operation issued while there is no
 *                    session at all gets (before the first CONNECTED, after
 *                    EXPIRED until the new CONNECTED).
 *   ZSESSIONEXPIRED  the operation was issued on a session that has ended
 *                    (expired, or closed by the watchdog); it never reaches
 *                    the new session.
 *   ZCLOSING         fw_zk_close was called and no answer came (it first
 *                    waits, up to the session timeout, for the answers to
 *                    what was already sent), or an ensure_path was cut short.
 *   ZSYSTEMERROR     out of memory copying the result.
 *
 * Watches are one-shot. A watch passed to get, exists or get_children is set
 * when the operation succeeds (for exists also when it answers ZNONODE). A
 * watch that is set runs its callback exactly once: with rc ZOK and the
 * event, or with rc ZSESSIONEXPIRED or ZCLOSING (type ZOO_SESSION_EVENT) if
 * its session ends first. A watch that is not set never runs. Connection
 * loss alone does not end a watch: the client re-registers it on reconnect.
 *
 * Paths are relative to the chroot of the connect string. Nodes are created
 * with the open ACL, or, with an identity (fw_zk_options_t.auth), all rights
 * for it and read for anyone. Only a session with create_chroot creates the
 * chroot; any other (a reader) waits for it to appear.
 *
 * Memory. The caller owns the fw_zk_t (it may be embedded in its owner) and
 * may free it in the close callback, not before. Pointers a callback
 * receives are valid only during the callback. Data passed to an operation
 * is copied before the call returns.
 */
#ifndef FW_ZK_H
#define FW_ZK_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include <zookeeper/zookeeper.h>

#include "log.h"

typedef struct fw_zk_s fw_zk_t;

/* The session as the owner must see it. */
typedef enum {
    /** No session yet: connecting for the first time. */
    FW_ZK_CONNECTING = 0,
    /** A live session; the owner may act on what it owns. */
    FW_ZK_CONNECTED,
    /**
     * The connection broke; the session may still be alive (and come back as
     * CONNECTED with the same id) or may already be gone. An owner stops
     * acting on what it owns at once: it may already have been replaced.
     */
    FW_ZK_SUSPENDED,
    /**
     * The session is gone, with its ephemerals and watches. A new session
     * is being set up; it is reported as CONNECTED with a new id.
     */
    FW_ZK_EXPIRED,
    /** fw_zk_close was called. */
    FW_ZK_CLOSED,
} fw_zk_state_t;

/* Create flags; 0 makes a persistent node. */
#define FW_ZK_EPHEMERAL  1
#define FW_ZK_SEQUENTIAL 2

/*
 * A state change. session_id is the new session's id for CONNECTED (the same
 * id as before when a SUSPENDED session resumes), the session in question
 * for SUSPENDED and EXPIRED.
 */
typedef void (*fw_zk_state_cb)(fw_zk_t *zk, fw_zk_state_t state, int64_t session_id, void *arg);
typedef void (*fw_zk_close_cb)(fw_zk_t *zk);

/* See the file comment for rc; path is the watched path. */
typedef void (*fw_zk_watch_cb)(fw_zk_t *zk, int rc, int type, const char *path, void *arg);
/* path: the created node's path (with the sequence suffix); NULL unless ZOK. */
typedef void (*fw_zk_create_cb)(fw_zk_t *zk, int rc, const char *path, void *arg);
typedef void (*fw_zk_void_cb)(fw_zk_t *zk, int rc, void *arg);
/* data: the node's bytes plus a NUL; NULL unless ZOK. stat: NULL unless ZOK. */
typedef void (*fw_zk_data_cb)(fw_zk_t *zk, int rc, const char *data, size_t len,
                              const struct Stat *stat, void *arg);
/* stat: NULL unless ZOK. */
typedef void (*fw_zk_stat_cb)(fw_zk_t *zk, int rc, const struct Stat *stat, void *arg);
/* The children's names (not paths), in ZooKeeper's order; count 0 unless ZOK. */
typedef void (*fw_zk_children_cb)(fw_zk_t *zk, int rc, int count, const char *const *names,
                                  void *arg);

/* ---- multi ---------------------------------------------------------------- */

typedef enum {
    FW_ZK_OP_CREATE,
    FW_ZK_OP_DELETE,
    FW_ZK_OP_SET,
    FW_ZK_OP_CHECK,
} fw_zk_op_type_t;

/* One operation of a multi; build it with the fw_zk_op_* helpers below. */
typedef struct fw_zk_op_s {
    fw_zk_op_type_t type;
    const char *path;
    /** CREATE, SET: the node's new data. */
    const void *data;
    size_t len;
    /** CREATE: FW_ZK_EPHEMERAL | FW_ZK_SEQUENTIAL. */
    int flags;
    /** DELETE, SET, CHECK: the expected version; -1 (not for CHECK) matches any. */
    int version;
} fw_zk_op_t;

/* The outcome of one operation of a multi. */
typedef struct fw_zk_op_result_s {
    /**
     * ZOK, or why it failed. When a multi fails, the op that failed carries
     * its error and the others ZOK or ZRUNTIMEINCONSISTENCY (rolled back or
     * never tried); nothing of the multi was applied.
     */
    int rc;
    /** CREATE that succeeded: the created path; else NULL. */
    const char *path;
    /** SET that succeeded: the node's new Stat; else NULL. */
    const struct Stat *stat;
} fw_zk_op_result_t;

/*
 * rc is ZOK if every op succeeded (the multi was applied atomically), else
 * the first failing op's error, or a session-level code (ZCONNECTIONLOSS ...)
 * in which case every result carries that code. results has count entries.
 */
typedef void (*fw_zk_multi_cb)(fw_zk_t *zk, int rc, int count, const fw_zk_op_result_t *results,
                               void *arg);

static inline fw_zk_op_t fw_zk_op_create(const char *path, const void *data, size_t len, int flags)
{
    fw_zk_op_t op = {.type = FW_ZK_OP_CREATE, .path = path, .data = data, .len = len};
    op.flags = flags;
    return op;
}

static inline fw_zk_op_t fw_zk_op_delete(const char *path, int version)
{
    fw_zk_op_t op = {.type = FW_ZK_OP_DELETE, .path = path, .version = version};
    return op;
}

static inline fw_zk_op_t fw_zk_op_set(const char *path, const void *data, size_t len, int version)
{
    fw_zk_op_t op = {.type = FW_ZK_OP_SET, .path = path, .data = data, .len = len};
    op.version = version;
    return op;
}

static inline fw_zk_op_t fw_zk_op_check(const char *path, int version)
{
    fw_zk_op_t op = {.type = FW_ZK_OP_CHECK, .path = path, .version = version};
    return op;
}

/* ---- the session ------------------------------------------------------------ */

/** A log hook: one line, no trailing newline. */
typedef void (*fw_zk_log_fn)(void *arg, fw_log_level_t level, const char *line);

typedef struct fw_zk_options_s {
    /** "host:port[,host:port...][/chroot]". */
    const char *connect;
    /**
     * Non-zero: create the chroot (and its missing parents) if it is
     * missing, as the daemons do. Zero, for readers (producers, consumers):
     * never create anything there; while the chroot is missing, log "no
     * freeway tree at ..." once, stay CONNECTING (fw_zk_chroot_missing says
     * why) and watch for it to appear. A reader that created it would give
     * it the open ACL and no owner, whatever identity the daemons use.
     */
    int create_chroot;
    /** Requested session timeout; 0 means 10000. The server may clamp it. */
    int session_timeout_ms;
    /**
     * "user:password" for ZooKeeper's digest scheme, or NULL / "" for none.
     * With it, every connection authenticates first, and every node this
     * session creates gets the ACL "all rights for this identity, read for
     * anyone" (docs/operations.md, ZooKeeper ACLs).
     */
    const char *auth;
    /** Told of every state change; may be NULL. */
    fw_zk_state_cb state_cb;
    void *state_arg;
    /**
     * Non-zero starts the loop watchdog: if the loop has not run for more
     * than half the session timeout (a wedged disk, a runaway callback), a
     * thread closes the session so that ephemerals, and with them ownership,
     * go to someone else now rather than never (the library's own threads
     * would keep the session alive). The owner then sees EXPIRED and a new
     * session, as after any expiry.
     */
    int loop_watchdog;
    /**
     * Where the session's log lines go; NULL means fw_log (a daemon's
     * stderr). A library sets it, since it must not write to stderr: the
     * hook gets fw_zk's own lines (connecting, established, suspended,
     * expired ...), on the loop thread, and the ZooKeeper client's chatter
     * about the connection is dropped (the states say what matters).
     */
    fw_zk_log_fn log;
    void *log_arg;
} fw_zk_options_t;

struct fw_zk_conn_s;
struct fw_zk_item_s;

/*
 * One session owner. Fields below `data` are private: read them through the
 * accessors.
 */
struct fw_zk_s {
    /** The loop everything runs on. */
    uv_loop_t *loop;
    /** For the owner; fw_zk never touches it. */
    void *data;

    char *auth; /* "user:password", or NULL */
    struct ACL acl_items[2];
    struct ACL_vector acl; /* what creates use: open, or ours-and-read-only */
    char *connect;         /* as given */
    char *hosts;           /* connect without the chroot */
    char *chroot;          /* NULL if none */
    int timeout_ms;
    fw_zk_state_cb state_cb;
    void *state_arg;
    fw_zk_log_fn log;
    void *log_arg;

    fw_zk_state_t state;
    int64_t session_id;
    clientid_t client_id;
    int negotiated_timeout_ms;
    int create_chroot;  /* a daemon's session: it may create the chroot */
    int chroot_ready;   /* the chroot exists, so handles may use it */
    int chroot_missing; /* a reader found no chroot and waits for it */
    int acl_warned;     /* the open-ACL warning was logged (once per fw_zk) */

    struct fw_zk_conn_s *conn; /* the current handle, or NULL */
    uint64_t gen;              /* numbers handles, for logs */
    int nconns;                /* handles not yet fully closed */
    int backoff_ms;            /* delay before the next new handle */
    uv_timer_t reopen_timer;

    /* The hand-off queue from ZooKeeper's threads (and the watchdog). */
    pthread_mutex_t fifo_mu;
    struct fw_zk_item_s *fifo_head;
    struct fw_zk_item_s *fifo_tail;
    uv_async_t async;

    /* Counts for the owner's metrics (loop thread; every session's). */
    uint64_t requests;    /* requests sent to ZooKeeper */
    int requests_waiting; /* sent and not answered yet */
    int requests_peak;    /* the most ever waiting at once */

    int closing;
    int finishing;
    int handles_open; /* uv handles not yet through their close callback */
    fw_zk_close_cb close_cb;

    /* The loop watchdog (see fw_zk_options_t). */
    int wd_enabled;
    uv_timer_t wd_timer;
    pthread_t wd_thread;
    pthread_mutex_t wd_mu;
    pthread_cond_t wd_cond;
    int wd_stop;                  /* under wd_mu */
    struct fw_zk_conn_s *wd_conn; /* under wd_mu: the handle it may close */
    _Atomic uint64_t wd_tick_ms;  /* when the loop last ran the tick timer */
    _Atomic int wd_limit_ms;
};

/*
 * Starts connecting; returns 0 or a negative errno (-EINVAL: a malformed
 * connect string or chroot). After 0, the state callback reports CONNECTED
 * once the session is up and the chroot exists (the server may be down for
 * now, or, for a reader, the chroot missing: it keeps trying), and the
 * caller must end with fw_zk_close.
 * After an error nothing is left to close and no callback runs.
 */
int fw_zk_init(fw_zk_t *zk, uv_loop_t *loop, const fw_zk_options_t *opts);

/*
 * Stops issuing operations (they return -ESHUTDOWN), then off the loop
 * thread waits for the answers to requests already sent (milliseconds on a
 * live connection; at most the session timeout, by when the client has
 * given a dead connection up) and closes the session (zookeeper_close can
 * block for seconds). Then it runs every callback still owed (ZCLOSING for
 * what got no answer, and for watches that never fired), closes its loop
 * handles and calls cb, after which zk may be freed. Call it once; no state
 * callback runs after it, and nothing runs inside it.
 */
void fw_zk_close(fw_zk_t *zk, fw_zk_close_cb cb);

/* The current session's id, or 0 if there is none (also while SUSPENDED it is the old one). */
int64_t fw_zk_session_id(const fw_zk_t *zk);
/* 1 while the state is FW_ZK_CONNECTED. */
int fw_zk_connected(const fw_zk_t *zk);
/* The state last reported to the state callback, for health checks (/readyz). */
fw_zk_state_t fw_zk_state(const fw_zk_t *zk);
/* "connecting", "connected", "suspended", "expired", "closed". */
const char *fw_zk_state_name(fw_zk_state_t state);
/*
 * 1 while a reader (no create_chroot) waits for its chroot, which it found
 * missing: "no freeway tree" rather than "connecting" in its messages.
 */
int fw_zk_chroot_missing(const fw_zk_t *zk);
/* The session timeout the server granted; 0 before the first session. */
int fw_zk_session_timeout(const fw_zk_t *zk);
/*
 * Requests sent to ZooKeeper since fw_zk_init (each step of an ensure_path
 * and each multi counts one), those sent and not answered yet, and the most
 * there ever were at once: for metrics.
 */
uint64_t fw_zk_requests(const fw_zk_t *zk);
int fw_zk_requests_waiting(const fw_zk_t *zk);
int fw_zk_requests_peak(const fw_zk_t *zk);
/*
 * Copies the session's id and password into *out (to reattach after a
 * restart, or, in tests, to expire the session). 0, or -ENOTCONN if there is
 * no session.
 */
int fw_zk_client_id(const fw_zk_t *zk, clientid_t *out);

/* ---- operations (see the file comment for callbacks and watches) ---------------- */

int fw_zk_create(fw_zk_t *zk, const char *path, const void *data, size_t len, int flags,
                 fw_zk_create_cb cb, void *arg);
/* version -1 deletes any version. */
int fw_zk_delete(fw_zk_t *zk, const char *path, int version, fw_zk_void_cb cb, void *arg);
/* watch_cb may be NULL (no watch). */
int fw_zk_get(fw_zk_t *zk, const char *path, fw_zk_watch_cb watch_cb, void *watch_arg,
              fw_zk_data_cb cb, void *arg);
/* version -1 overwrites any version; the callback gets the node's new Stat. */
int fw_zk_set(fw_zk_t *zk, const char *path, const void *data, size_t len, int version,
              fw_zk_stat_cb cb, void *arg);
/* rc ZNONODE if the node does not exist; a watch then waits for its creation. */
int fw_zk_exists(fw_zk_t *zk, const char *path, fw_zk_watch_cb watch_cb, void *watch_arg,
                 fw_zk_stat_cb cb, void *arg);
int fw_zk_get_children(fw_zk_t *zk, const char *path, fw_zk_watch_cb watch_cb, void *watch_arg,
                       fw_zk_children_cb cb, void *arg);
/*
 * Applies ops[0..count) atomically (all or nothing). The takeover of a
 * bucket, for instance: {check(bucket, v), create(owner, EPHEMERAL),
 * set(bucket, epoch+1, v)}.
 */
int fw_zk_multi(fw_zk_t *zk, const fw_zk_op_t *ops, int count, fw_zk_multi_cb cb, void *arg);
/*
 * Creates path and each missing ancestor as empty persistent nodes (mkdir
 * -p); rc ZOK when path exists. Each node is looked at before it is
 * created, so a node that exists is fine even under a parent this identity
 * may not create in (a chroot /prod/freeway whose /prod another identity
 * made). rc ZNOAUTH means a missing node could not be created: that is
 * logged, naming the node and the fix. With an identity (auth), the first
 * existing node found with an open ACL (anyone may change it) is logged as
 * a warning, once, with the setAcl that restricts the tree.
 */
int fw_zk_ensure_path(fw_zk_t *zk, const char *path, fw_zk_void_cb cb, void *arg);

#endif
