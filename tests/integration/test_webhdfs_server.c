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
#include "fwt_webhdfs.h"
#include "fwtest.h"

#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHECK_TIMEOUT_MS 120000

/* Runs check_server.js against the stand-in; its lines go to the test log. */
static void run_checks(fwt_webhdfs_t *s, int truncate_delay_ms)
{
    char modules[PATH_MAX + 64];
    snprintf(modules, sizeof(modules), "%s/tests/webhdfs/node_modules/webhdfs/package.json",
             fwt_repo_root());
    if (access(modules, R_OK) != 0)
        FWT_FAIL("%s is missing: run `make tests/webhdfs/node_modules` "
                 "(npm ci --prefix tests/webhdfs; `make test` does it)",
                 modules);

    char node[FWT_PATH_MAX], script[PATH_MAX + 64], port[16], delay[16];
    snprintf(script, sizeof(script), "%s/tests/webhdfs/check_server.js", fwt_repo_root());
    snprintf(port, sizeof(port), "%d", s->nn_port);
    snprintf(delay, sizeof(delay), "%d", truncate_delay_ms);
    char *argv[] = {(char *)fwt_find_program("node", "nodejs", node, sizeof(node)),
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
static void assert_files_under_root(fwt_webhdfs_t *s)
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
    fwt_webhdfs_t s;
    fwt_webhdfs_start(&s, "webhdfs", 0);
    run_checks(&s, 0);
    assert_files_under_root(&s);
    fwt_webhdfs_stop(&s);
}

/*
 * A truncate off a block boundary needs the last block recovered first:
 * {"boolean": false}, the old length and RecoveryInProgressException for an
 * append until the recovery ends, as HDFS does.
 */
FWT_TEST(npm_client_sees_truncate_recovery)
{
    fwt_webhdfs_t s;
    fwt_webhdfs_start(&s, "webhdfs-slow-truncate", 300);
    run_checks(&s, 300);
    assert_files_under_root(&s);
    fwt_webhdfs_stop(&s);
}
