/*
 * The WebHDFS stand-in, tests/webhdfs/fake_webhdfs.py, checked by a client
 * freeway did not write. The copier's WebHDFS tests run against that Python
 * server instead of HDFS because Debian packages no Hadoop server (notes
 * §5.1), so this test is the evidence that the stand-in speaks WebHDFS as
 * Hadoop documents it: tests/webhdfs/check_server.js drives it with the npm
 * package "webhdfs" (write through the 307 redirect, append, read, stat,
 * rename, delete, errors) and checks with plain http what that client cannot
 * (TRUNCATE, RENAME's boolean, the RemoteException's name, the fault
 * controls). It tests the stand-in, not freeway code.
 *
 * Needs python3, node and tests/webhdfs/node_modules (`make test` runs
 * `npm ci` there; scripts/install-deps installs python3, nodejs and npm).
 */
#include "fwt_proc.h"
#include "fwtest.h"

#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define READY_TIMEOUT_MS 15000
#define CHECK_TIMEOUT_MS 120000
#define STOP_TIMEOUT_MS  5000

/* One running stand-in. */
typedef struct server_s {
    fwt_proc_t proc;
    char root[FWT_PATH_MAX];  /* its --root: HDFS /a/b is root/a/b */
    char ready[FWT_PATH_MAX]; /* its --ready-file */
    char log[FWT_PATH_MAX];   /* its stdout and stderr */
    int nn_port, dn_port;
} server_t;

/*
 * The repository's top directory, found from this binary's own path
 * (build/<mode>/tests/NAME), so the test runs from any working directory of
 * a fresh clone. Fails the test if the stand-in is not where it should be.
 */
static const char *repo_root(void)
{
    static char root[PATH_MAX];
    if (root[0] != '\0')
        return root;
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0)
        FWT_FAIL("readlink /proc/self/exe failed");
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    FWT_ASSERT(slash != NULL);
    *slash = '\0';
    char up[PATH_MAX + 16];
    snprintf(up, sizeof(up), "%s/../../..", self);
    if (realpath(up, root) == NULL)
        FWT_FAIL("cannot resolve the repository root %s", up);
    char probe[PATH_MAX + 64];
    snprintf(probe, sizeof(probe), "%s/tests/webhdfs/fake_webhdfs.py", root);
    if (access(probe, R_OK) != 0)
        FWT_FAIL("%s is missing: is %s a freeway checkout?", probe, root);
    return root;
}

/* The first executable `name` on $PATH (fwt_proc_spawn does no PATH search). */
static const char *find_program(const char *name, char *buf, size_t len)
{
    const char *path = getenv("PATH");
    char *copy = strdup(path != NULL ? path : "/usr/bin:/bin");
    FWT_ASSERT(copy != NULL);
    char *save = NULL;
    for (char *dir = strtok_r(copy, ":", &save); dir != NULL; dir = strtok_r(NULL, ":", &save)) {
        if (snprintf(buf, len, "%s/%s", dir, name) < (int)len && access(buf, X_OK) == 0) {
            free(copy);
            return buf;
        }
    }
    free(copy);
    FWT_FAIL("no %s on PATH: run scripts/install-deps", name);
}

static int ready_or_exited(void *arg)
{
    server_t *s = arg;
    return access(s->ready, R_OK) == 0 || !fwt_proc_running(&s->proc);
}

/*
 * Starts the stand-in on loopback and waits (deadline, no sleep) for its
 * ready file, which it writes atomically once both listeners listen.
 */
static void server_start(server_t *s, const char *name, int truncate_delay_ms)
{
    const char *dir = fwt_tmpdir();
    snprintf(s->root, sizeof(s->root), "%.400s/%s-hdfs", dir, name);
    snprintf(s->ready, sizeof(s->ready), "%.400s/%s.ready", dir, name);
    snprintf(s->log, sizeof(s->log), "%.400s/%s.log", dir, name);
    char script[PATH_MAX + 64], python[FWT_PATH_MAX], delay[32];
    snprintf(script, sizeof(script), "%s/tests/webhdfs/fake_webhdfs.py", repo_root());
    snprintf(delay, sizeof(delay), "%d", truncate_delay_ms);
    char *argv[] = {(char *)find_program("python3", python, sizeof(python)),
                    script,
                    "--root",
                    s->root,
                    "--host",
                    "127.0.0.1",
                    "--port",
                    "0",
                    "--ready-file",
                    s->ready,
                    "--truncate-delay-ms",
                    delay,
                    NULL};
    fwt_proc_spawn(&s->proc, name, argv, s->log);
    fwt_wait_until(ready_or_exited, s, READY_TIMEOUT_MS, "the stand-in's ready file");
    char tail[4096];
    if (!fwt_proc_running(&s->proc))
        FWT_FAIL("fake_webhdfs.py exited before it was ready:\n%s",
                 fwt_file_tail(s->log, 20, tail, sizeof(tail)));

    FILE *f = fopen(s->ready, "r");
    FWT_ASSERT(f != NULL);
    int fields = fscanf(f, "%d %d", &s->nn_port, &s->dn_port);
    fclose(f);
    FWT_ASSERT_INT_EQ(fields, 2);
    FWT_ASSERT(s->nn_port > 0 && s->dn_port > 0 && s->nn_port != s->dn_port);
    /* The same line went to stdout, for callers that read that instead. */
    char line[64];
    snprintf(line, sizeof(line), "%d %d\n", s->nn_port, s->dn_port);
    FWT_ASSERT(fwt_file_contains(s->log, line));
    fprintf(stderr, "fake_webhdfs.py ready: namenode %d, datanode %d\n", s->nn_port, s->dn_port);
}

/* SIGTERM must end it cleanly (exit 0), with no Python traceback logged. */
static void server_stop(server_t *s)
{
    char tail[4096];
    FWT_ASSERT_OK(fwt_proc_signal(&s->proc, SIGTERM));
    int status = 0;
    if (fwt_proc_wait(&s->proc, STOP_TIMEOUT_MS, &status) != 0)
        FWT_FAIL("fake_webhdfs.py still running %d ms after SIGTERM", STOP_TIMEOUT_MS);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        FWT_FAIL("fake_webhdfs.py ended with status 0x%x:\n%s", status,
                 fwt_file_tail(s->log, 20, tail, sizeof(tail)));
    if (fwt_file_contains(s->log, "Traceback"))
        FWT_FAIL("fake_webhdfs.py logged a Python exception:\n%s",
                 fwt_file_tail(s->log, 40, tail, sizeof(tail)));
}

/* Runs check_server.js against the stand-in; its lines go to the test log. */
static void run_checks(server_t *s, int truncate_delay_ms)
{
    char modules[PATH_MAX + 64];
    snprintf(modules, sizeof(modules), "%s/tests/webhdfs/node_modules/webhdfs/package.json",
             repo_root());
    if (access(modules, R_OK) != 0)
        FWT_FAIL("%s is missing: run `make tests/webhdfs/node_modules` "
                 "(npm ci --prefix tests/webhdfs; `make test` does it)",
                 modules);

    char node[FWT_PATH_MAX], script[PATH_MAX + 64], port[16], delay[16];
    snprintf(script, sizeof(script), "%s/tests/webhdfs/check_server.js", repo_root());
    snprintf(port, sizeof(port), "%d", s->nn_port);
    snprintf(delay, sizeof(delay), "%d", truncate_delay_ms);
    char *argv[] = {(char *)find_program("node", node, sizeof(node)),
                    script,
                    "127.0.0.1",
                    port,
                    "--truncate-delay-ms",
                    delay,
                    NULL};
    char *out = NULL;
    int rc = fwt_run(argv, CHECK_TIMEOUT_MS, &out);
    fputs(out, stderr);
    if (rc != 0) {
        char tail[4096];
        FWT_FAIL("check_server.js exited %d (output above); the stand-in's log ends:\n%s", rc,
                 fwt_file_tail(s->log, 20, tail, sizeof(tail)));
    }
    free(out);
}

static off_t file_size(const char *dir, const char *rel)
{
    char path[2 * FWT_PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", dir, rel);
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : -1;
}

/*
 * HDFS paths are plain files under --root, so tests can cmp them with their
 * sources. check_server.js leaves /freeway-check/t (1234 bytes kept by the
 * truncate, plus "tail") and /freeway-check/dir/h ("another file\n").
 */
static void assert_files_under_root(server_t *s)
{
    FWT_ASSERT_INT_EQ(file_size(s->root, "freeway-check/t"), 1238);
    FWT_ASSERT_INT_EQ(file_size(s->root, "freeway-check/dir/h"), 13);
    char path[2 * FWT_PATH_MAX];
    snprintf(path, sizeof(path), "%s/freeway-check/dir/h", s->root);
    FWT_ASSERT(fwt_file_contains(path, "another file\n"));
}

/* Truncates finish at once: TRUNCATE answers {"boolean": true}. */
FWT_TEST(npm_client_agrees)
{
    server_t s;
    server_start(&s, "webhdfs", 0);
    run_checks(&s, 0);
    assert_files_under_root(&s);
    server_stop(&s);
}

/*
 * A truncate off a block boundary needs the last block recovered first:
 * {"boolean": false}, the old length and RecoveryInProgressException for an
 * append until the recovery ends, as HDFS does.
 */
FWT_TEST(npm_client_sees_truncate_recovery)
{
    server_t s;
    server_start(&s, "webhdfs-slow-truncate", 300);
    run_checks(&s, 300);
    assert_files_under_root(&s);
    server_stop(&s);
}
