/*
 * `freeway status --watch`: every refresh starts from nothing (its own
 * ZooKeeper session, picture and transfers), so refreshes go on while
 * ZooKeeper is down, each saying so within --timeout, and read the fabric
 * again once it is back; and nothing is left over from one refresh to the
 * next (the asan build checks for leaks when the command exits).
 */
#include "fwt_cal.h"
#include "fwt_proc.h"
#include "fwt_zk.h"
#include "fwtest.h"

#include "copier/webhdfs_json.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

typedef struct watch_s {
    char log[FWT_PATH_MAX];
    int want; /* lines to wait for */
    const char *prefix;
} watch_t;

/* Lines of the log that start with prefix; every JSON line is checked to be JSON. */
static int lines(const char *log, const char *prefix)
{
    FILE *f = fopen(log, "r");
    if (f == NULL)
        return 0;
    static char line[1 << 16];
    int n = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        size_t len = strlen(line);
        if (len == 0 || line[len - 1] != '\n')
            break; /* still being written */
        if (strncmp(line, prefix, strlen(prefix)) != 0)
            continue;
        cp_wh_json_val_t v;
        if (line[0] == '{' && cp_wh_json_find(line, len - 1, NULL, 0, &v) != 0)
            FWT_FAIL("a refresh printed invalid JSON: %s", line);
        n++;
    }
    fclose(f);
    return n;
}

static int enough(void *arg)
{
    watch_t *w = arg;
    return lines(w->log, w->prefix) >= w->want;
}

static void wait_lines(watch_t *w, const char *prefix, int more, const char *what)
{
    w->prefix = prefix;
    w->want = lines(w->log, prefix) + more;
    fwt_wait_until(enough, w, 30000, what);
}

FWT_TEST(status_watch_goes_on_while_zookeeper_goes_and_comes_back)
{
    fwt_zk_t zk;
    fwt_zk_start(&zk);
    char spec[160];
    snprintf(spec, sizeof(spec), "%s/freeway", zk.connect);
    fwt_category_create(spec, "web", 2, NULL);
    static watch_t w;
    snprintf(w.log, sizeof(w.log), "%s/status.log", fwt_tmpdir());
    char *const argv[] = {(char *)fwt_bin("freeway"),
                          "status",
                          "--zk",
                          spec,
                          "--json",
                          "--watch",
                          "--interval",
                          "200ms",
                          "--timeout",
                          "1s",
                          NULL};
    fwt_proc_t p;
    fwt_proc_spawn(&p, "status", argv, w.log);

    wait_lines(&w, "{\"time_ms\":", 3, "three refreshes");
    FWT_ASSERT_INT_EQ(lines(w.log, "freeway"), 0);
    /* ZooKeeper gone: each refresh fails within --timeout (1 s) and says why on its own line. */
    fwt_zk_stop(&zk);
    wait_lines(&w, "freeway: cannot reach ZooKeeper", 3, "three refreshes to fail");
    /* Back: the next refreshes read the fabric again from a new session. */
    fwt_zk_restart(&zk);
    wait_lines(&w, "{\"time_ms\":", 3, "three refreshes after ZooKeeper came back");

    FWT_ASSERT_INT_EQ(fwt_proc_signal(&p, SIGINT), 0);
    int status = 0;
    FWT_ASSERT_INT_EQ(fwt_proc_wait(&p, 20000, &status), 0);
    char tail[4096];
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        FWT_FAIL("freeway status --watch ended with status 0x%x:\n%s", status,
                 fwt_file_tail(w.log, 20, tail, sizeof(tail)));
    if (fwt_file_contains(w.log, "Sanitizer") || fwt_file_contains(w.log, "runtime error:"))
        FWT_FAIL("freeway status --watch:\n%s", fwt_file_tail(w.log, 60, tail, sizeof(tail)));
    fwt_zk_stop(&zk);
}
