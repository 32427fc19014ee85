/* The WebHDFS stand-in in tests (see fwt_webhdfs.h). */
#include "fwt_webhdfs.h"

#include "fwtest.h"

#include "copier/webhdfs_json.h"

#include <curl/curl.h>

#define READY_TIMEOUT_MS 15000
#define STOP_TIMEOUT_MS  5000

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int ready_or_exited(void *arg)
{
    fwt_webhdfs_t *s = arg;
    return access(s->ready, R_OK) == 0 || !fwt_proc_running(&s->proc);
}

void fwt_webhdfs_start(fwt_webhdfs_t *s, const char *name, int truncate_delay_ms)
{
    const char *dir = fwt_tmpdir();
    snprintf(s->root, sizeof(s->root), "%.400s/%.64s-hdfs", dir, name);
    snprintf(s->ready, sizeof(s->ready), "%.400s/%.64s.ready", dir, name);
    snprintf(s->log, sizeof(s->log), "%.400s/%.64s.log", dir, name);
    char script[PATH_MAX + 64], python[FWT_PATH_MAX], delay[32];
    snprintf(script, sizeof(script), "%s/tests/webhdfs/fake_webhdfs.py", fwt_repo_root());
    if (access(script, R_OK) != 0)
        FWT_FAIL("%s is missing", script);
    snprintf(delay, sizeof(delay), "%d", truncate_delay_ms);
    char *argv[] = {(char *)fwt_find_program("python3", "python3", python, sizeof(python)),
                    script,
                    "--root",
                    s->root,
                    "--port",
                    "0",
                    "--ready-file",
                    s->ready,
                    "--truncate-delay-ms",
                    delay,
                    NULL};
    fwt_proc_spawn(&s->proc, name, argv, s->log);
    fwt_wait_until(ready_or_exited, s, READY_TIMEOUT_MS, "fake_webhdfs.py's ready file");
    char tail[4096];
    if (!fwt_proc_running(&s->proc))
        FWT_FAIL("fake_webhdfs.py exited before it was ready:\n%s",
                 fwt_file_tail(s->log, 20, tail, sizeof(tail)));
    FILE *f = fopen(s->ready, "r");
    FWT_ASSERT(f != NULL);
    int fields = fscanf(f, "%d %d", &s->nn_port, &s->dn_port);
    fclose(f);
    FWT_ASSERT_INT_EQ(fields, 2);
    fprintf(stderr, "fake_webhdfs.py: namenode %d, datanode %d\n", s->nn_port, s->dn_port);
}

/* SIGTERM must end it cleanly (exit 0), with no Python traceback logged. */
void fwt_webhdfs_stop(fwt_webhdfs_t *s)
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

static size_t on_ctl_body(char *p, size_t size, size_t n, void *arg)
{
    char *buf = arg;
    size_t have = strlen(buf), len = size * n;
    if (have + len < 4096) {
        memcpy(buf + have, p, len);
        buf[have + len] = '\0';
    }
    return size * n;
}

/* One blocking request to the stand-in's namenode port (the loop is not running). */
long fwt_webhdfs_http(fwt_webhdfs_t *s, const char *method, const char *target, char *body)
{
    char url[1024];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", s->nn_port, target);
    body[0] = '\0';
    CURL *e = curl_easy_init();
    FWT_ASSERT(e != NULL);
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_ctl_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, body);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 10000L);
    CURLcode rc = curl_easy_perform(e);
    long code = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(e);
    if (rc != CURLE_OK)
        FWT_FAIL("%s %s: %s", method, url, curl_easy_strerror(rc));
    return code;
}

/* The next count datanode requests of op misbehave (mode: fail, drop-after-write, partial, stall).
 */
void fwt_webhdfs_fault(fwt_webhdfs_t *s, const char *op, const char *mode, int count)
{
    char target[128], body[4096];
    snprintf(target, sizeof(target), "/fault?op=%s&mode=%s&count=%d", op, mode, count);
    FWT_ASSERT_INT_EQ(fwt_webhdfs_http(s, "PUT", target, body), 200);
}

/* How many requests of op the namenode has had. */
uint64_t fwt_webhdfs_count(fwt_webhdfs_t *s, const char *op)
{
    char body[4096];
    FWT_ASSERT_INT_EQ(fwt_webhdfs_http(s, "GET", "/stats", body), 200);
    const char *path[] = {"namenode", op};
    uint64_t n = 0;
    int rc = cp_wh_json_get_u64(body, strlen(body), path, 2, &n);
    if (rc == -ENOENT)
        return 0;
    FWT_ASSERT_OK(rc);
    return n;
}
