/*
 * calligraphus's Scribe listener against real, independent Scribe clients
 * (issue 10), each a process of its own:
 *
 *  - tests/scribe/scribe_log.py on the client Debian's thrift-compiler
 *    generates from tests/scribe/scribe.thrift (`thrift -r --gen py`, here,
 *    into the test's temp dir) and Debian's python3-thrift, run with
 *    /usr/bin/python3;
 *  - tests/scribe/npm_scribe_log.js on the npm package scribe 0.0.9 (thrift
 *    0.7.0), installed from tests/scribe/package-lock.json.
 *
 * Each sends 100,000 messages to a category whose 8 buckets two writers
 * share, keyed by the text before ':' (--scribe-key-delimiter), so the
 * writer a client talks to forwards the other writer's blocks; every
 * message is stored exactly once, in the bucket a producer would put its
 * key in, and the client exits 0. Then each client meets TRY_LATER: its
 * category does not exist when it starts and is created while it retries.
 *
 * Needs thrift (thrift-compiler), /usr/bin/python3 with python3-thrift,
 * node and npm: scripts/install-deps installs them, and a test fails,
 * saying which, if one is missing. The npm client is installed by the
 * first test that needs it, with `npm ci` from the committed lock into
 * build/<mode>/scribe-npm (that run needs the npm registry), and reused
 * while the lock is unchanged.
 */
#include "fwt_cal.h"
#include "fwt_root.h"
#include "fwt_zk.h"
#include "fwtest.h"

#include "freeway.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* One client run: generous for a loaded CI machine (about 10-30 s here). */
#define CLIENT_TIMEOUT_MS 200000
#define NPM_CI_TIMEOUT_MS 300000

static fwt_zk_t zk;
static char spec[128], root[FWT_PATH_MAX];
static fwt_cal_t w1, w2;
static char addr1[64], addr2[64];

static const char *const scribe_flags[] = {"--scribe-listen", "127.0.0.1:0", NULL};
static const char *const keyed_flags[] = {"--scribe-key-delimiter", ":", NULL};
/* ---- the tools the clients need ------------------------------------------------------------- */

/* snprintf into a path buffer of FWT_PATH_MAX; a path that does not fit fails the test. */
__attribute__((format(printf, 2, 3))) static char *path_fmt(char *buf, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, FWT_PATH_MAX, fmt, ap);
    va_end(ap);
    if (n < 0 || n >= FWT_PATH_MAX)
        FWT_FAIL("path too long: %s...", buf);
    return buf;
}

/* build/<mode>, from this binary's build/<mode>/tests/. */
static void build_dir(char *out, size_t len)
{
    char self[FWT_PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    FWT_ASSERT(n > 0);
    self[n] = '\0';
    for (int i = 0; i < 2; i++) {
        char *slash = strrchr(self, '/');
        FWT_ASSERT(slash != NULL);
        *slash = '\0';
    }
    FWT_ASSERT(snprintf(out, len, "%s", self) < (int)len);
}

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    char *data = NULL;
    size_t cap = 0;
    *len = 0;
    for (;;) {
        if (*len == cap) {
            cap = cap ? 2 * cap : 65536;
            char *more = realloc(data, cap);
            FWT_ASSERT(more != NULL);
            data = more;
        }
        size_t got = fread(data + *len, 1, cap - *len, f);
        if (got == 0)
            break;
        *len += got;
    }
    fclose(f);
    return data;
}

static void write_all(const char *path, const char *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (f == NULL)
        FWT_FAIL("cannot write %s: %s", path, strerror(errno));
    FWT_ASSERT(fwrite(data, 1, len, f) == len);
    FWT_ASSERT(fclose(f) == 0);
}

static void copy_file(const char *from, const char *to)
{
    size_t len;
    char *data = read_all(from, &len);
    if (data == NULL)
        FWT_FAIL("cannot read %s: %s", from, strerror(errno));
    write_all(to, data, len);
    free(data);
}

static void remove_tree(const char *path)
{
    char *argv[] = {"/bin/rm", "-rf", (char *)path, NULL};
    FWT_ASSERT_INT_EQ(fwt_run(argv, 60000, NULL), 0);
}

/* 1 if the files at a and b hold the same bytes. */
static int same_bytes(const char *a, const char *b)
{
    size_t alen, blen;
    char *x = read_all(a, &alen), *y = read_all(b, &blen);
    int same = x != NULL && y != NULL && alen == blen && memcmp(x, y, alen) == 0;
    free(x);
    free(y);
    return same;
}

/*
 * The npm client's node_modules, installed once per build tree: `npm ci`
 * from the committed package.json and lock into a directory beside it,
 * renamed into place only when it succeeded, with a copy of the lock it was
 * installed from as its stamp. A later run reuses it without the network;
 * a changed lock installs again. NODE_PATH points node at it, since the
 * script is in the source tree and the modules are not.
 */
static void npm_client_ready(void)
{
    char build[FWT_PATH_MAX], dir[FWT_PATH_MAX], stamp[FWT_PATH_MAX], modules[FWT_PATH_MAX];
    char probe[FWT_PATH_MAX], lock[FWT_PATH_MAX], pkg[FWT_PATH_MAX], node[FWT_PATH_MAX];
    fwt_find_program("node", "nodejs", node, sizeof(node));
    build_dir(build, sizeof(build));
    path_fmt(dir, "%s/scribe-npm", build);
    path_fmt(stamp, "%s/installed-from.lock", dir);
    path_fmt(modules, "%s/node_modules", dir);
    path_fmt(probe, "%s/scribe/package.json", modules);
    path_fmt(lock, "%s", fwt_source("tests/scribe/package-lock.json"));
    path_fmt(pkg, "%s", fwt_source("tests/scribe/package.json"));

    if (!same_bytes(lock, stamp) || access(probe, R_OK) != 0) {
        char npm[FWT_PATH_MAX], tmp[FWT_PATH_MAX], to[FWT_PATH_MAX];
        fwt_find_program("npm", "npm", npm, sizeof(npm));
        path_fmt(tmp, "%s/scribe-npm.tmp.%d", build, (int)getpid());
        remove_tree(tmp);
        if (mkdir(tmp, 0755) != 0)
            FWT_FAIL("mkdir %s: %s", tmp, strerror(errno));
        path_fmt(to, "%s/package.json", tmp);
        copy_file(pkg, to);
        path_fmt(to, "%s/package-lock.json", tmp);
        copy_file(lock, to);
        fprintf(stderr, "installing the npm client into %s (npm ci)\n", dir);
        char *argv[] = {npm, "ci", "--prefix", tmp, "--no-audit", "--no-fund", NULL};
        char *out = NULL;
        int64_t t0 = fwt_now_ms();
        int rc = fwt_run(argv, NPM_CI_TIMEOUT_MS, &out);
        if (rc != 0) {
            remove_tree(tmp);
            FWT_FAIL("npm ci of tests/scribe/package-lock.json failed (exit %d); the first run "
                     "in a build tree installs the npm package scribe from the npm registry:\n%s",
                     rc, out);
        }
        free(out);
        path_fmt(to, "%s/installed-from.lock", tmp);
        copy_file(lock, to);
        remove_tree(dir);
        if (rename(tmp, dir) != 0)
            FWT_FAIL("rename %s to %s: %s", tmp, dir, strerror(errno));
        fprintf(stderr, "npm ci took %lld ms\n", (long long)(fwt_now_ms() - t0));
    }
    FWT_ASSERT(setenv("NODE_PATH", modules, 1) == 0);
}

/*
 * The Python client: /usr/bin/python3 (where Debian's python3-thrift is
 * seen; a pyenv or venv python3 earlier on PATH would not see it) and the
 * code thrift-compiler generates from tests/scribe/scribe.thrift, in
 * gen_py.
 */
static void python_client_ready(char *gen_py, size_t len)
{
    char thrift[FWT_PATH_MAX], idl[FWT_PATH_MAX];
    fwt_find_program("thrift", "thrift-compiler", thrift, sizeof(thrift));
    if (access("/usr/bin/python3", X_OK) != 0)
        FWT_FAIL("no /usr/bin/python3: install the Debian packages python3 python3-thrift "
                 "(scripts/install-deps does)");
    char *check[] = {"/usr/bin/python3", "-c", "import thrift.protocol.TBinaryProtocol", NULL};
    char *out = NULL;
    if (fwt_run(check, 60000, &out) != 0)
        FWT_FAIL("/usr/bin/python3 cannot import thrift: install the Debian package "
                 "python3-thrift (scripts/install-deps does):\n%s",
                 out);
    free(out);

    snprintf(idl, sizeof(idl), "%s", fwt_source("tests/scribe/scribe.thrift"));
    FWT_ASSERT(snprintf(gen_py, len, "%s/gen-py", fwt_tmpdir()) < (int)len);
    FWT_ASSERT(mkdir(gen_py, 0755) == 0 || errno == EEXIST);
    char *gen[] = {thrift, "-r", "--gen", "py", "-out", gen_py, idl, NULL};
    if (fwt_run(gen, 60000, &out) != 0)
        FWT_FAIL("thrift -r --gen py %s failed:\n%s", idl, out);
    free(out);
}

/* ---- the clients ---------------------------------------------------------------------------- */

typedef struct client_s {
    fwt_proc_t proc;
    char log[FWT_PATH_MAX];
} client_t;

static const char *port_of(const char *addr)
{
    const char *colon = strrchr(addr, ':');
    FWT_ASSERT(colon != NULL);
    return colon + 1;
}

/*
 * scribe_log.py GEN_PY PORT --category CAT --first F --count N --batch B
 * --keys K, then the flags in more (up to two; NULL-terminated, or NULL).
 */
static void python_spawn(client_t *c, const char *name, const char *gen_py, const char *addr,
                         const char *cat, int first, int count, int batch, int keys,
                         const char *const *more)
{
    char script[FWT_PATH_MAX], f[16], n[16], b[16], k[16];
    snprintf(script, sizeof(script), "%s", fwt_source("tests/scribe/scribe_log.py"));
    snprintf(f, sizeof(f), "%d", first);
    snprintf(n, sizeof(n), "%d", count);
    snprintf(b, sizeof(b), "%d", batch);
    snprintf(k, sizeof(k), "%d", keys);
    char *argv[] = {"/usr/bin/python3",
                    script,
                    (char *)gen_py,
                    (char *)port_of(addr),
                    "--category",
                    (char *)cat,
                    "--first",
                    f,
                    "--count",
                    n,
                    "--batch",
                    b,
                    "--keys",
                    k,
                    NULL,
                    NULL,
                    NULL};
    for (int i = 0; more != NULL && more[i] != NULL; i++) {
        FWT_ASSERT(i < 2);
        argv[14 + i] = (char *)more[i];
    }
    snprintf(c->log, sizeof(c->log), "%s/%s.log", fwt_tmpdir(), name);
    fwt_proc_spawn(&c->proc, name, argv, c->log);
}

/* node npm_scribe_log.js PORT COUNT WAVE CATEGORY KEYS (lines 0..COUNT-1). */
static void npm_spawn(client_t *c, const char *name, const char *addr, const char *cat, int count,
                      int wave, int keys)
{
    char node[FWT_PATH_MAX], script[FWT_PATH_MAX], n[16], w[16], k[16];
    fwt_find_program("node", "nodejs", node, sizeof(node));
    snprintf(script, sizeof(script), "%s", fwt_source("tests/scribe/npm_scribe_log.js"));
    snprintf(n, sizeof(n), "%d", count);
    snprintf(w, sizeof(w), "%d", wave);
    snprintf(k, sizeof(k), "%d", keys);
    char *argv[] = {node, script, (char *)port_of(addr), n, w, (char *)cat, k, NULL};
    snprintf(c->log, sizeof(c->log), "%s/%s.log", fwt_tmpdir(), name);
    fwt_proc_spawn(&c->proc, name, argv, c->log);
}

/* Waits for the client to exit 0 (it does once every line was answered OK); its output. */
static char *client_wait_ok(client_t *c)
{
    int64_t t0 = fwt_now_ms();
    int status = 0;
    char tail[4096];
    if (fwt_proc_wait(&c->proc, CLIENT_TIMEOUT_MS, &status) != 0)
        FWT_FAIL("%s still running after %d ms; its output ends:\n%s", c->proc.name,
                 CLIENT_TIMEOUT_MS, fwt_file_tail(c->log, 20, tail, sizeof(tail)));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        FWT_FAIL("%s exited with status 0x%x; its output ends:\n%s", c->proc.name, status,
                 fwt_file_tail(c->log, 20, tail, sizeof(tail)));
    size_t len;
    char *out = read_all(c->log, &len);
    FWT_ASSERT(out != NULL);
    out = realloc(out, len + 1);
    FWT_ASSERT(out != NULL);
    out[len] = '\0';
    fprintf(stderr, "%s: exit 0 after %lld ms more: %s", c->proc.name,
            (long long)(fwt_now_ms() - t0), out);
    return out;
}

/* ---- the fabric ----------------------------------------------------------------------------- */

static void start_writer(fwt_cal_t *w, const char *id, char *addr)
{
    fwt_cal_start(w, id, spec, root, scribe_flags);
    fwt_cal_scribe_address(w, addr, 64);
}

/* ZooKeeper and one writer; no category yet. */
static void one_writer(void)
{
    fwt_zk_start(&zk);
    snprintf(spec, sizeof(spec), "%s/freeway", zk.connect);
    snprintf(root, sizeof(root), "%s/root", fwt_tmpdir_mem());
    start_writer(&w1, "w1", addr1);
}

/* Category cat of 2 * each buckets (created with cat_flags), shared by two writers. */
static void two_writers(const char *cat, int each, const char *const *cat_flags)
{
    one_writer();
    fwt_category_create(spec, cat, 2 * each, cat_flags);
    start_writer(&w2, "w2", addr2);
    fwt_cal_wait_balanced(&w1, &w2, each, "the writers to share the buckets");
    fwt_cal_wait_routed(&w1, cat, "the first writer to know the second's buckets");
    fwt_cal_wait_routed(&w2, cat, "the second writer to know the first's buckets");
}

static void stop_all(void)
{
    if (w2.proc.pid != 0)
        fwt_cal_stop(&w2);
    fwt_cal_stop(&w1);
    fwt_zk_stop(&zk);
}

/* ---- what the root holds -------------------------------------------------------------------- */

typedef struct seen_s {
    int n;
    uint32_t buckets;
    int *count;         /* per line number */
    int per_bucket[64]; /* records per bucket */
    int other, wrong_key, misplaced;
} seen_t;

/*
 * A record of line i: "line <i>" with no key, or "k<j>:line <i>" with the
 * key "k<j>" beside it, in the bucket fw_key_bucket gives that key.
 */
static void check_record(void *arg, uint32_t bucket, uint64_t segment_id,
                         const fw_block_header_t *hdr, const fw_record_t *rec)
{
    (void)segment_id;
    (void)hdr;
    seen_t *s = arg;
    const char *v = (const char *)rec->value;
    const char *line = memmem(v, rec->value_len, "line ", 5);
    char num[16];
    size_t nlen = line != NULL ? rec->value_len - (size_t)(line + 5 - v) : 0;
    if (nlen == 0 || nlen >= sizeof(num)) {
        s->other++;
        return;
    }
    memcpy(num, line + 5, nlen);
    num[nlen] = '\0';
    char *end;
    long i = strtol(num, &end, 10);
    if (*end != '\0' || i < 0 || i >= s->n) {
        s->other++;
        return;
    }
    s->count[i]++;
    if (bucket < 64)
        s->per_bucket[bucket]++;
    if (line == v) {
        if (rec->has_key)
            s->wrong_key++;
        return;
    }
    size_t klen = (size_t)(line - v) - 1;
    if (v[klen] != ':' || !rec->has_key || rec->key_len != klen || memcmp(rec->key, v, klen) != 0) {
        s->wrong_key++;
        return;
    }
    if (fw_key_bucket(rec->key, rec->key_len, s->buckets) != bucket)
        s->misplaced++;
}

/*
 * Lines 0..n-1 are in cat exactly once each and nothing else is; keyed
 * ones carry their key and sit where a producer puts that key. Returns the
 * number of buckets that hold records.
 */
static int assert_each_once(const char *cat, int n, uint32_t buckets)
{
    seen_t s = {.n = n, .buckets = buckets, .count = calloc((size_t)n, sizeof(int))};
    FWT_ASSERT(s.count != NULL);
    uint64_t records = fwt_root_records(root, cat, check_record, &s);
    int missing = 0, twice = 0, first_bad = -1;
    for (int i = 0; i < n; i++) {
        if (s.count[i] != 1 && first_bad < 0)
            first_bad = i;
        missing += s.count[i] == 0;
        twice += s.count[i] > 1;
    }
    if (missing || twice || s.other)
        FWT_FAIL("%s: %d lines missing, %d stored more than once (first: line %d, %d times), "
                 "%d other records, %llu records in all (want %d, each once)",
                 cat, missing, twice, first_bad, first_bad >= 0 ? s.count[first_bad] : 0, s.other,
                 (unsigned long long)records, n);
    FWT_ASSERT_UINT_EQ(records, (uint64_t)n);
    FWT_ASSERT_INT_EQ(s.wrong_key, 0);
    FWT_ASSERT_INT_EQ(s.misplaced, 0);
    free(s.count);
    int used = 0;
    for (uint32_t b = 0; b < buckets && b < 64; b++)
        used += s.per_bucket[b] > 0;
    return used;
}

/* The n in "... TRY_LATER answers n" of scribe_log.py's last line. */
static int python_try_laters(const char *out)
{
    const char *p = strstr(out, "TRY_LATER answers ");
    FWT_ASSERT(p != NULL);
    return atoi(p + 18);
}

static int try_later_answered(void *arg)
{
    return fwt_cal_metric(arg, "freeway_calligraphus_scribe_calls_total{result=\"try_later\"}") >=
           1;
}

/* ---- tests ---------------------------------------------------------------------------------- */

/*
 * The generated Python client, as two processes at once: 90,000 keyed
 * lines in calls of 100 with strict headers to the first writer (the
 * second writer's keys are forwarded), and 10,000 unkeyed lines in calls
 * of 10 with old headers, as scribe_cat writes them, to the second writer,
 * then scribe_ctrl's fb303 questions and a oneway reinitialize.
 */
FWT_TEST(python_client_stores_100000_messages_once)
{
    char gen_py[FWT_PATH_MAX];
    python_client_ready(gen_py, sizeof(gen_py));
    two_writers("py", 4, keyed_flags);
    int64_t t0 = fwt_now_ms();
    client_t strict, old;
    static const char *const old_ctrl[] = {"--old-header", "--ctrl", NULL};
    python_spawn(&strict, "py-strict", gen_py, addr1, "py", 0, 90000, 100, 37, NULL);
    python_spawn(&old, "py-old", gen_py, addr2, "py", 90000, 10000, 10, 0, old_ctrl);
    char *out_strict = client_wait_ok(&strict);
    char *out_old = client_wait_ok(&old);
    fprintf(stderr, "100,000 lines from the Python client in %lld ms\n",
            (long long)(fwt_now_ms() - t0));
    FWT_ASSERT(strstr(out_strict, "answered OK 90000") != NULL);
    FWT_ASSERT(strstr(out_old, "answered OK 10000") != NULL);
    /* scribe_ctrl's questions, answered to old headers: ALIVE, and this listener's counts. */
    FWT_ASSERT(strstr(out_old, "status 2\n") != NULL);
    FWT_ASSERT(strstr(out_old, "name freeway calligraphus\n") != NULL);
    FWT_ASSERT(strstr(out_old, "'received good': 10000") != NULL);
    FWT_ASSERT(strstr(out_old, "counter 10000\n") != NULL);
    FWT_ASSERT(strstr(out_old, "getOptions raised") == NULL);
    FWT_ASSERT_INT_EQ(assert_each_once("py", 100000, 8), 8);
    FWT_ASSERT(fwt_cal_metric_sum(&w1, "freeway_calligraphus_blocks_forwarded_total") > 0);
    /* Unkeyed calls stay with the writer that took them. */
    FWT_ASSERT(fwt_cal_metric_sum(&w2, "freeway_calligraphus_blocks_forwarded_total") == 0);
    free(out_strict);
    free(out_old);
    stop_all();
}

/*
 * The npm client: 100,000 keyed lines to the first writer, each its own
 * Log call (the client sends its whole queue per send()), pipelined in
 * waves of 1,000 (tests/scribe/npm_scribe_log.js says why).
 */
FWT_TEST(npm_client_stores_100000_messages_once)
{
    npm_client_ready();
    two_writers("npm", 4, keyed_flags);
    int64_t t0 = fwt_now_ms();
    client_t c;
    npm_spawn(&c, "npm", addr1, "npm", 100000, 1000, 37);
    char *out = client_wait_ok(&c);
    fprintf(stderr, "100,000 lines from the npm client in %lld ms\n",
            (long long)(fwt_now_ms() - t0));
    FWT_ASSERT(strstr(out, "sent 100000, all answered OK") != NULL);
    FWT_ASSERT_INT_EQ(assert_each_once("npm", 100000, 8), 8);
    FWT_ASSERT(fwt_cal_metric_sum(&w1, "freeway_calligraphus_blocks_forwarded_total") > 0);
    free(out);
    stop_all();
}

/*
 * The Python client's category does not exist when it starts: TRY_LATER,
 * and the client sends the same batch again every 10 ms. The category is
 * created once the writer has answered TRY_LATER; the client goes on
 * through it (TRY_LATER again until the writer owns the new buckets) and
 * every line is stored once.
 */
FWT_TEST(python_client_retries_try_later_until_its_category_exists)
{
    char gen_py[FWT_PATH_MAX];
    python_client_ready(gen_py, sizeof(gen_py));
    one_writer();
    client_t c;
    python_spawn(&c, "py-late", gen_py, addr1, "late", 0, 20000, 100, 37, NULL);
    fwt_wait_until(try_later_answered, &w1, 60000, "the writer to answer TRY_LATER");
    fwt_category_create(spec, "late", 4, keyed_flags);
    char *out = client_wait_ok(&c);
    FWT_ASSERT(strstr(out, "answered OK 20000") != NULL);
    FWT_ASSERT_INT_OP(python_try_laters(out), >=, 1);
    assert_each_once("late", 20000, 4);
    free(out);
    stop_all();
}

/*
 * The same with the npm client: its first wave's 1,000 calls are answered
 * TRY_LATER, it puts their lines back in its queue and sends them again 3 s
 * later as one call; stored once, as the waves after it.
 */
FWT_TEST(npm_client_retries_try_later_until_its_category_exists)
{
    npm_client_ready();
    one_writer();
    client_t c;
    npm_spawn(&c, "npm-late", addr1, "late", 20000, 1000, 37);
    fwt_wait_until(try_later_answered, &w1, 60000, "the writer to answer TRY_LATER");
    fwt_category_create(spec, "late", 4, keyed_flags);
    char *out = client_wait_ok(&c);
    FWT_ASSERT(strstr(out, "sent 20000, all answered OK") != NULL);
    assert_each_once("late", 20000, 4);
    free(out);
    stop_all();
}
