/*
 * Test helpers for child processes, the per-test temp dir, free ports and
 * deadline waits. Owns every process a test spawns and kills what is left of
 * them when the test ends; knows nothing of ZooKeeper (see fwt_zk.h).
 *
 * Everything here is for the test's main thread: failures call FWT_FAIL,
 * which exits the process, and PR_SET_PDEATHSIG fires when the *thread* that
 * forked a child exits, so a child spawned from a short-lived thread would die
 * with that thread.
 */
#ifndef FWT_PROC_H
#define FWT_PROC_H

#include <errno.h> /* the -ETIMEDOUT and -ESRCH these functions return */
#include <stddef.h>
#include <sys/types.h>

#define FWT_PATH_MAX 512

/*
 * One spawned process. The caller owns the struct (it may live on the test's
 * stack); the state a cleanup needs lives in fwt_proc.c's own table, so the
 * end-of-test kill never touches the caller's memory.
 */
typedef struct fwt_proc_s {
    /** The child's pid; 0 before fwt_proc_spawn. */
    pid_t pid;
    /** A short name for messages, e.g. "zk1". */
    char name[64];
    /** Where the child's stdout and stderr go (appended). */
    char log_path[FWT_PATH_MAX];
    /** Index into fwt_proc.c's process table. */
    int slot;
} fwt_proc_t;

/*
 * A fresh directory for this test, $TMPDIR/freeway-test-XXXXXX (or under
 * /tmp), the same one on every call within a test. It is removed recursively
 * when the test ends, after every spawned process has been killed, unless
 * FW_TEST_KEEP=1, which prints "kept DIR" on stderr instead.
 */
const char *fwt_tmpdir(void);

/*
 * Like fwt_tmpdir, but on tmpfs (/dev/shm) when there is one, for tests
 * that fsync thousands of times and do not test durability itself; falls
 * back to fwt_tmpdir().
 */
const char *fwt_tmpdir_mem(void);

/*
 * A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0, read
 * it, close). Someone else may take it before the caller binds it, so callers
 * that start servers must retry on "address in use".
 */
int fwt_free_port(void);

/* Fills ports[0..n) with n distinct free ports (all sockets are held open
 * until every port is chosen, so the kernel cannot hand out one twice). */
void fwt_free_ports(int *ports, int n);

/*
 * Starts argv[0] (a path; no PATH search) with argv, stdin from /dev/null and
 * stdout+stderr appended to log_path. The child gets SIGKILL when this test
 * process dies for any reason (PR_SET_PDEATHSIG) and inherits no descriptor
 * but 0, 1 and 2. A cleanup SIGKILLs and reaps it at the end of the test if it
 * is still running. Fails the test if the fork or the exec fails.
 */
void fwt_proc_spawn(fwt_proc_t *p, const char *name, char *const argv[], const char *log_path);

/* kill(2) on the child unless it has already been reaped (then -ESRCH). */
int fwt_proc_signal(fwt_proc_t *p, int sig);

/*
 * Waits up to timeout_ms for the child to exit and reaps it. Returns 0 and
 * stores the wait status in *status (if not NULL) once it has exited (also
 * when an earlier call reaped it), -ETIMEDOUT if it is still running.
 */
int fwt_proc_wait(fwt_proc_t *p, int timeout_ms, int *status);

/* SIGTERM, wait up to timeout_ms, then SIGKILL and reap. */
void fwt_proc_stop(fwt_proc_t *p, int timeout_ms);

/* 1 while the child has not exited, 0 once it has (it is reaped here). */
int fwt_proc_running(fwt_proc_t *p);

/*
 * Polls cond(arg) until it returns non-zero, sleeping 1 ms at first and
 * backing off to 50 ms between polls. After timeout_ms, fails the test with
 * "timed out after N ms waiting for WHAT".
 */
void fwt_wait_until(int (*cond)(void *arg), void *arg, int timeout_ms, const char *what);

/* 1 if the file at path contains needle, 0 if not or it cannot be read. */
int fwt_file_contains(const char *path, const char *needle);

/*
 * Copies the last max_lines lines of the file at path (at most the last
 * len-1 bytes of it) into buf, for failure messages. Returns buf; "" if the
 * file cannot be read.
 */
char *fwt_file_tail(const char *path, int max_lines, char *buf, size_t len);

/*
 * The path of one of freeway's programs built beside this test binary
 * (build/<mode>/bin/NAME, found from /proc/self/exe), so each build mode
 * tests its own binaries. Fails the test if it is not there.
 */
const char *fwt_bin(const char *name);

/* The same for an example application (build/<mode>/examples/NAME). */
const char *fwt_example(const char *name);

/* The same for a test tool (build/<mode>/tools/NAME: tests/tools, tests/chaos/chaos_*). */
const char *fwt_tool(const char *name);

/*
 * A file of the source tree (docs/metrics.md), found from this test binary
 * (build/<mode>/tests/ is three levels down). Fails the test if it cannot
 * be read. The path is in a static buffer: copy it before the next call.
 */
const char *fwt_source(const char *rel);

/*
 * Runs argv to completion with stdout and stderr in a log file under the
 * test's temp dir; returns the exit status (or 128 + signal) and, if out is
 * not NULL, the output in *out (malloc'd, NUL-terminated; the caller frees).
 * A sanitizer report in the output fails the test.
 */
int fwt_run(char *const argv[], int timeout_ms, char **out);

/* The repository's top directory, from the test binary's path (build/<mode>/tests/NAME). */
const char *fwt_repo_root(void);
/*
 * The first executable `name` on $PATH, into buf (fwt_proc_spawn does no
 * PATH search); none fails the test naming the Debian package that brings it.
 */
const char *fwt_find_program(const char *name, const char *package, char *buf, size_t len);

#endif
