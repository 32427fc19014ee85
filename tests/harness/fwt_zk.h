/*
 * Real ZooKeeper servers for tests: a standalone server or a 3-node loopback
 * ensemble from Debian's zookeeper package (engineering-notes §2), each in a
 * directory under fwt_tmpdir() on free ports. Owns the servers' configs and
 * their lifecycle; talking to them with a client is the caller's business.
 *
 * Every server is an fwt_proc child, so the end-of-test cleanup SIGKILLs any
 * that is still running, pass or fail, and the kernel kills it if the test
 * process dies (PDEATHSIG). $JAVA overrides /usr/bin/java and $FW_ZK_JAR
 * overrides /usr/share/java/zookeeper.jar. The server log (slf4j-simple at
 * INFO, when Debian's jar is present) is DIR/server.log; FW_TEST_KEEP=1 keeps
 * it after the test.
 */
#ifndef FWT_ZK_H
#define FWT_ZK_H

#include "fwt_proc.h"

#include <stddef.h>
#include <zookeeper/zookeeper.h>

/*
 * One server. The caller owns the struct (it may live on the test's stack);
 * nothing registered for the end of the test points into it.
 */
typedef struct fwt_zk_s {
    /** The server's directory: zoo.cfg, data/ (with myid), server.log. */
    char dir[FWT_PATH_MAX];
    /** DIR/zoo.cfg. */
    char cfg_path[FWT_PATH_MAX];
    /** DIR/server.log: the server's stdout and stderr, appended across restarts. */
    char log_path[FWT_PATH_MAX];
    /** The client port on 127.0.0.1. */
    int port;
    /** myid within an ensemble (1..3); 0 for a standalone server. */
    int id;
    /** "127.0.0.1:PORT", this server alone. */
    char connect[32];
    /** In an ensemble: "127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3" (same in all three). */
    char ensemble_connect[96];
    /** The java process. */
    fwt_proc_t proc;
} fwt_zk_t;

/*
 * Starts a standalone server (tickTime=200, so sessions of 400 ms..10 s) in a
 * new subdirectory of fwt_tmpdir() and waits up to 30 s until it serves. If
 * the server exits early (say, someone took the port between fwt_free_port and
 * its bind), retries on a new port a few times; fails the test with the tail
 * of the server log if it never serves.
 */
void fwt_zk_start(fwt_zk_t *zk);

/* SIGTERM, then SIGKILL after 10 s; returns once the process is reaped. */
void fwt_zk_stop(fwt_zk_t *zk);

/* SIGKILL (a crash: no shutdown at all); returns once the process is reaped. */
void fwt_zk_kill(fwt_zk_t *zk);

/*
 * Stops the server if it still runs, starts it again on the same port with
 * the same config and data directory, and waits until it serves. A member of
 * an ensemble serves only while a quorum is up.
 */
void fwt_zk_restart(fwt_zk_t *zk);

/*
 * Starts a 3-node ensemble on loopback (zk[i].id = i + 1) and waits up to 30 s
 * until all three serve (one leader, two followers).
 */
void fwt_zk_ensemble_start(fwt_zk_t zk[3]);

/* "127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3"; points into zk[0]. */
const char *fwt_zk_ensemble_connect(fwt_zk_t zk[3]);

/*
 * A plain synchronous client of connect (no freeway code in between),
 * connected: waits up to 10 s for the handshake. The caller closes it with
 * zookeeper_close.
 */
zhandle_t *fwt_zk_client(const char *connect);

/*
 * Runs ZooKeeper's own command-line client (what zkCli.sh runs) against
 * connect with script (commands, one a line) on its stdin, as an operator
 * would type them; returns its output (malloc'd, the caller frees). Its
 * exit status says nothing about the commands: check their effects.
 */
char *fwt_zk_cli(const char *connect, const char *script);

/*
 * "user:BASE64" for "user:password", the id of ZooKeeper's digest scheme,
 * as ZooKeeper's DigestAuthenticationProvider computes it, into out.
 */
void fwt_zk_digest_id(const char *user_password, char *out, size_t cap);

/* 1 if the server answers the `srvr` command with a "Mode: " line. */
int fwt_zk_serving(fwt_zk_t *zk);

/*
 * Asks `srvr` for the server's mode and copies it ("standalone", "leader",
 * "follower") into mode. Returns 0, or a negative errno: -EAGAIN if the
 * server answers but is not serving (no quorum, still starting).
 */
int fwt_zk_mode(fwt_zk_t *zk, char *mode, size_t len);

/* The index (0..2) of the ensemble's current leader, or -1 if none answers so. */
int fwt_zk_ensemble_leader(fwt_zk_t zk[3]);

/*
 * Ends the session cid (engineering-notes §1.2): opens a second handle on the
 * same session through connect and closes it, then polls expired(arg) (say,
 * "the owner's watcher saw ZOO_EXPIRED_SESSION_STATE") for up to half a second.
 * This races: the second handle's connect kicks the owner off, and if the
 * owner reconnects before the CLOSE goes out, it kicks the second handle off
 * in turn and the CLOSE is never sent (about half the rounds here).
 * So it repeats until expired(arg) holds, and fails the test after
 * timeout_ms. Call it from the test's thread, never from a ZooKeeper callback.
 */
void fwt_zk_expire_session(const char *connect, const clientid_t *cid, int (*expired)(void *arg),
                           void *arg, int timeout_ms);

#endif
