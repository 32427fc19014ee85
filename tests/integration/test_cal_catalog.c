/*
 * The writer's catalog against a real ZooKeeper: a category's config, its
 * Scribe key delimiter among it, picked up live as `freeway category` and
 * hands change it; categories created from writers (two at once, calls
 * coalesced, a bad name refused before ZooKeeper, leftover bucket nodes
 * kept, no ZooKeeper); thousands of categories found by name.
 */
#include "fwtest.h"
#include "fwt_cal.h"
#include "fwt_proc.h"
#include "fwt_zk.h"

#include "catalog.h"
#include "error.h"
#include "log.h"

#include <errno.h>
#include <stdlib.h>

typedef struct writer_s {
    fw_zk_t zk;
    fw_zk_state_t state;
    cal_catalog_t cat;
    int changes; /* calls of the catalog's changed callback */
    int closed;
} writer_t;

static uv_loop_t loop;
static uv_timer_t deadline;
static int timed_out;
static fwt_zk_t server;
static char spec[256];

static void on_deadline(uv_timer_t *t)
{
    (void)t;
    timed_out = 1;
}

static void run_until(int (*pred)(void *), void *arg, const char *what)
{
    timed_out = 0;
    uv_update_time(&loop); /* the loop may have been idle long: its clock is stale */
    uv_timer_start(&deadline, on_deadline, 20000, 0);
    while (!pred(arg) && !timed_out)
        uv_run(&loop, UV_RUN_ONCE);
    uv_timer_stop(&deadline);
    if (!pred(arg))
        FWT_FAIL("timed out waiting for %s", what);
}

/* Runs the loop for ms, whatever happens (to see that nothing more does). */
static void run_for(int ms)
{
    timed_out = 0;
    uv_update_time(&loop);
    uv_timer_start(&deadline, on_deadline, (uint64_t)ms, 0);
    while (!timed_out)
        uv_run(&loop, UV_RUN_ONCE);
}

/* ---- log lines, counted ------------------------------------------------------------------ */

static int warnings_delim, created_lines;

static void sink(fw_log_level_t level, const char *line, void *ctx)
{
    (void)ctx;
    fprintf(stderr, "%s\n", line);
    if (level == FW_LOG_WARN && strstr(line, "scribe_key_delimiter is") != NULL)
        warnings_delim++;
    if (strstr(line, "created with") != NULL)
        created_lines++;
}

/* ---- writers: a session and a catalog ------------------------------------------------------ */

static void on_changed(cal_catalog_t *cat, void *arg)
{
    (void)cat;
    ((writer_t *)arg)->changes++;
}

static void on_path(fw_zk_t *zk, int rc, void *arg)
{
    (void)zk;
    if (rc == ZOK)
        cal_catalog_sync(&((writer_t *)arg)->cat);
}

/* As the node does: categories/ made sure of, then the catalog read. */
static void on_state(fw_zk_t *zk, fw_zk_state_t state, int64_t sid, void *arg)
{
    (void)sid;
    writer_t *w = arg;
    w->state = state;
    if (state == FW_ZK_CONNECTED)
        FWT_ASSERT_OK(fw_zk_ensure_path(zk, "/categories", on_path, w));
}

static int connected(void *arg)
{
    return ((writer_t *)arg)->state == FW_ZK_CONNECTED;
}

static int closed(void *arg)
{
    return ((writer_t *)arg)->closed;
}

static void on_closed(fw_zk_t *zk)
{
    ((writer_t *)zk->data)->closed = 1;
}

static void start(void)
{
    fwt_zk_start(&server);
    snprintf(spec, sizeof(spec), "%s/catalog-test", server.connect);
    FWT_ASSERT_OK(uv_loop_init(&loop));
    uv_timer_init(&loop, &deadline);
    fw_log_set_sink(sink, NULL);
    warnings_delim = created_lines = 0;
}

static writer_t *start_writer(void)
{
    writer_t *w = calloc(1, sizeof(*w));
    FWT_ASSERT(w != NULL);
    fw_zk_options_t opts = {.connect = spec, .create_chroot = 1, .session_timeout_ms = 4000};
    opts.state_cb = on_state;
    opts.state_arg = w;
    cal_catalog_init(&w->cat, &w->zk, on_changed, w);
    FWT_ASSERT_OK(fw_zk_init(&w->zk, &loop, &opts));
    w->zk.data = w;
    run_until(connected, w, "a session");
    return w;
}

static void stop_writer(writer_t *w)
{
    fw_zk_close(&w->zk, on_closed);
    run_until(closed, w, "the session's close");
    cal_catalog_free(&w->cat);
    free(w);
}

/* Every handle closed: nothing was left open. */
static void finish(void)
{
    uv_close((uv_handle_t *)&deadline, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    FWT_ASSERT_OK(uv_loop_close(&loop));
    fw_log_set_sink(NULL, NULL);
}

/* ---- creates ---------------------------------------------------------------------------- */

typedef struct result_s {
    int calls;
    int status;
    cal_category_t *c;
    cal_catalog_t *cat;
    int order; /* when it ran, among all callbacks */
} result_t;

static int callbacks_run;

static void on_created(cal_catalog_t *cat, int status, cal_category_t *c, void *arg)
{
    result_t *r = arg;
    r->calls++;
    r->status = status;
    r->c = c;
    r->cat = cat;
    r->order = ++callbacks_run;
}

static int answered(void *arg)
{
    return ((result_t *)arg)->calls > 0;
}

/* The created category's entry as the callback gave it: loaded, found, with its config. */
static void expect_created(const result_t *r, cal_catalog_t *cat, const char *name,
                           uint32_t buckets)
{
    if (r->calls != 1 || r->status != 0)
        FWT_FAIL("create of %s: %d calls, status %d (%s)", name, r->calls, r->status,
                 fw_strerror(r->status));
    FWT_ASSERT(r->cat == cat);
    FWT_ASSERT(r->c != NULL);
    FWT_ASSERT(r->c == cal_catalog_find(cat, name));
    FWT_ASSERT(r->c->loaded && !r->c->deleted);
    FWT_ASSERT_UINT_EQ(r->c->buckets, buckets);
    FWT_ASSERT_INT_EQ(r->c->scribe_key_delim, -1);
    FWT_ASSERT_UINT_EQ(r->c->max_record_bytes, 1048576); /* the schema's defaults */
    FWT_ASSERT_UINT_EQ(r->c->roll_bytes, 268435456);
}

/* ---- ZooKeeper, read directly --------------------------------------------------------------- */

static void read_znode(zhandle_t *zh, const char *path, char *buf, int cap)
{
    int len = cap - 1;
    int rc = zoo_get(zh, path, 0, buf, &len, NULL);
    if (rc != ZOK)
        FWT_FAIL("zoo_get %s: %s", path, zerror(rc));
    buf[len < 0 ? 0 : len] = '\0';
}

static int children(zhandle_t *zh, const char *path)
{
    struct String_vector kids;
    int rc = zoo_get_children(zh, path, 0, &kids);
    if (rc != ZOK)
        FWT_FAIL("zoo_get_children %s: %s", path, zerror(rc));
    int n = kids.count;
    deallocate_String_vector(&kids);
    return n;
}

static void set_config(const char *name, const char *text)
{
    zhandle_t *zh = fwt_zk_client(server.connect);
    char path[256];
    snprintf(path, sizeof(path), "/catalog-test/categories/%s", name);
    int rc = zoo_set(zh, path, text, (int)strlen(text), -1);
    zookeeper_close(zh);
    if (rc != ZOK)
        FWT_FAIL("zoo_set %s: %s", path, zerror(rc));
}

static void cli(const char *a, const char *b, const char *c, const char *d)
{
    char *argv[] = {(char *)fwt_bin("freeway"),
                    "category",
                    (char *)a,
                    (char *)b,
                    (char *)c,
                    (char *)d,
                    "--zk",
                    spec,
                    NULL};
    char *out = NULL;
    int rc = fwt_run(argv, 30000, &out);
    if (rc != 0)
        FWT_FAIL("freeway category %s %s %s %s: %d\n%s", a, b, c, d, rc, out ? out : "");
    free(out);
}

/* ---- the tests ------------------------------------------------------------------------------ */

typedef struct delim_wait_s {
    writer_t *w;
    const char *name;
    int delim;
    uint64_t roll_bytes; /* 0: any */
} delim_wait_t;

static int delim_is(void *arg)
{
    delim_wait_t *d = arg;
    cal_category_t *c = cal_catalog_find(&d->w->cat, d->name);
    return c != NULL && c->loaded && c->scribe_key_delim == d->delim &&
           (d->roll_bytes == 0 || c->roll_bytes == d->roll_bytes);
}

static void wait_delim(writer_t *w, const char *name, int delim, uint64_t roll_bytes)
{
    delim_wait_t d = {w, name, delim, roll_bytes};
    char what[128];
    snprintf(what, sizeof(what), "%s's scribe_key_delim to be %d", name, delim);
    run_until(delim_is, &d, what);
}

/*
 * The delimiter as `freeway category` sets it reaches a running writer's
 * catalog through the watch; a stored value that is not one byte is taken
 * as none and logged once, until a valid one comes and goes again.
 */
FWT_TEST(the_scribe_key_delimiter_is_picked_up_live)
{
    start();
    const char *const extra[] = {"--scribe-key-delimiter", "\\x01", NULL};
    fwt_category_create(spec, "web", 2, extra);
    fwt_category_create(spec, "plain", 1, NULL);
    writer_t *w = start_writer();
    wait_delim(w, "web", 1, 0);
    wait_delim(w, "plain", -1, 0);
    FWT_ASSERT_UINT_EQ(cal_catalog_find(&w->cat, "web")->buckets, 2);

    cli("alter", "web", "--scribe-key-delimiter", ":");
    wait_delim(w, "web", ':', 0);
    cli("alter", "web", "--scribe-key-delimiter", "\\t");
    wait_delim(w, "web", '\t', 0);
    cli("alter", "web", "--scribe-key-delimiter", "\\xff");
    wait_delim(w, "web", 0xff, 0);
    cli("alter", "web", "--scribe-key-delimiter", "");
    wait_delim(w, "web", -1, 0);
    cli("alter", "plain", "--scribe-key-delimiter", " ");
    wait_delim(w, "plain", ' ', 0);
    FWT_ASSERT_INT_EQ(warnings_delim, 0);

    /* By hand, not one byte: none, one warning, however often it is read. */
    set_config("web", "buckets = 2\nroll_bytes = 2097152\nscribe_key_delimiter = ::\n");
    wait_delim(w, "web", -1, 2097152);
    FWT_ASSERT_INT_EQ(warnings_delim, 1);
    set_config("web", "buckets = 2\nroll_bytes = 3145728\nscribe_key_delimiter = \"\\x01\\x02\"\n");
    wait_delim(w, "web", -1, 3145728);
    FWT_ASSERT_INT_EQ(warnings_delim, 1);
    set_config("web", "buckets = 2\nroll_bytes = 4194304\nscribe_key_delimiter = \"\\x02\"\n");
    wait_delim(w, "web", 2, 4194304);
    set_config("web", "buckets = 2\nroll_bytes = 5242880\nscribe_key_delimiter = ab\n");
    wait_delim(w, "web", -1, 5242880);
    FWT_ASSERT_INT_EQ(warnings_delim, 2);
    /* The other category never moved. */
    FWT_ASSERT_INT_EQ(cal_catalog_find(&w->cat, "plain")->scribe_key_delim, ' ');
    stop_writer(w);
    finish();
}

typedef struct seen_s {
    writer_t *w;
    const char *name;
} seen_t;

static int sees(void *arg)
{
    seen_t *s = arg;
    cal_category_t *c = cal_catalog_find(&s->w->cat, s->name);
    return c != NULL && c->loaded && !c->deleted;
}

/*
 * Two writers create one category at once, one of them twice (coalesced:
 * the second call asks ZooKeeper nothing): one creation, every callback
 * once with the entry loaded, the nodes as the CLI lays them out, and a
 * third writer that only watches sees the category. A create of a category
 * that exists is success and changes nothing.
 */
FWT_TEST(two_writers_create_one_category_at_once)
{
    start();
    writer_t *a = start_writer(), *b = start_writer(), *watcher = start_writer();
    seen_t s = {watcher, "scribe_new"};
    result_t ra1 = {0}, ra2 = {0}, rb = {0};
    FWT_ASSERT_OK(cal_catalog_create(&a->cat, "scribe_new", 4, on_created, &ra1));
    uint64_t asked = fw_zk_requests(&a->zk);
    FWT_ASSERT_OK(cal_catalog_create(&a->cat, "scribe_new", 4, on_created, &ra2));
    FWT_ASSERT_UINT_EQ(fw_zk_requests(&a->zk), asked); /* coalesced */
    FWT_ASSERT_OK(cal_catalog_create(&b->cat, "scribe_new", 4, on_created, &rb));
    /* Callbacks run later, never inside the call. */
    FWT_ASSERT_INT_EQ(ra1.calls + ra2.calls + rb.calls, 0);
    run_until(answered, &ra1, "a's first create");
    run_until(answered, &ra2, "a's second create");
    run_until(answered, &rb, "b's create");
    run_until(sees, &s, "the watcher to see scribe_new");
    run_for(300); /* nothing runs twice */
    expect_created(&ra1, &a->cat, "scribe_new", 4);
    expect_created(&ra2, &a->cat, "scribe_new", 4);
    expect_created(&rb, &b->cat, "scribe_new", 4);
    FWT_ASSERT(ra1.order < ra2.order); /* in the order of the calls */
    FWT_ASSERT_INT_EQ(created_lines, 1);
    FWT_ASSERT_UINT_EQ(cal_catalog_find(&watcher->cat, "scribe_new")->buckets, 4);

    zhandle_t *zh = fwt_zk_client(server.connect);
    char buf[512];
    read_znode(zh, "/catalog-test/categories/scribe_new", buf, sizeof(buf));
    FWT_ASSERT_STR_EQ(buf, "buckets = 4\n");
    FWT_ASSERT_INT_EQ(children(zh, "/catalog-test/buckets/scribe_new"), 4);
    for (int i = 0; i < 4; i++) {
        char path[128];
        snprintf(path, sizeof(path), "/catalog-test/buckets/scribe_new/%d", i);
        read_znode(zh, path, buf, sizeof(buf));
        FWT_ASSERT_STR_EQ(buf, "epoch = 0\nnext_segment_id = 1\n");
    }

    /* It exists: another count changes nothing, and the answer says what is. */
    result_t again = {0};
    FWT_ASSERT_OK(cal_catalog_create(&b->cat, "scribe_new", 16, on_created, &again));
    run_until(answered, &again, "a create of an existing category");
    expect_created(&again, &b->cat, "scribe_new", 4);
    read_znode(zh, "/catalog-test/categories/scribe_new", buf, sizeof(buf));
    FWT_ASSERT_STR_EQ(buf, "buckets = 4\n");
    FWT_ASSERT_INT_EQ(children(zh, "/catalog-test/buckets/scribe_new"), 4);
    FWT_ASSERT_INT_EQ(created_lines, 1);
    /* The CLI sees it as its own. */
    char *argv[] = {
        (char *)fwt_bin("freeway"), "category", "describe", "scribe_new", "--zk", spec, NULL};
    char *out = NULL;
    FWT_ASSERT_INT_EQ(fwt_run(argv, 30000, &out), 0);
    FWT_ASSERT(strstr(out, "buckets = 4\n") != NULL);
    free(out);
    zookeeper_close(zh);
    stop_writer(a);
    stop_writer(b);
    stop_writer(watcher);
    finish();
}

/*
 * An invalid name or bucket count is refused at once, before anything is
 * asked of ZooKeeper, and no callback ever runs; neither after the session
 * was closed.
 */
FWT_TEST(a_bad_name_is_refused_before_zookeeper)
{
    start();
    writer_t *w = start_writer();
    char long_name[FW_CATEGORY_MAX + 2];
    memset(long_name, 'a', sizeof(long_name) - 1);
    long_name[sizeof(long_name) - 1] = '\0';
    const char *bad[] = {"", ".", "..", "a/b", "sp ace", "caf\xc3\xa9", "tab\t", long_name};
    result_t r = {0};
    uint64_t asked = fw_zk_requests(&w->zk);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        FWT_ASSERT_INT_EQ(cal_catalog_create(&w->cat, bad[i], 1, on_created, &r), FW_EBAD_CATEGORY);
    FWT_ASSERT_INT_EQ(cal_catalog_create(&w->cat, "fine", 0, on_created, &r), -EINVAL);
    FWT_ASSERT_INT_EQ(cal_catalog_create(&w->cat, "fine", FW_BUCKETS_MAX + 1, on_created, &r),
                      -EINVAL);
    FWT_ASSERT_UINT_EQ(fw_zk_requests(&w->zk), asked);
    long_name[FW_CATEGORY_MAX] = '\0'; /* 128 is fine */
    FWT_ASSERT(fw_category_valid(long_name));
    run_for(200);
    fw_zk_close(&w->zk, on_closed);
    FWT_ASSERT_INT_EQ(cal_catalog_create(&w->cat, "fine", 1, on_created, &r), -ESHUTDOWN);
    run_until(closed, w, "the session's close");
    FWT_ASSERT_INT_EQ(r.calls, 0);
    FWT_ASSERT(w->cat.creates == NULL);
    cal_catalog_free(&w->cat);
    free(w);
    zhandle_t *zh = fwt_zk_client(server.connect);
    FWT_ASSERT_INT_EQ(zoo_exists(zh, "/catalog-test/categories/fine", 0, NULL), ZNONODE);
    zookeeper_close(zh);
    finish();
}

/*
 * Bucket nodes left behind (a create cut short, a category deleted by hand)
 * are kept; the rest are made, over several multis for many buckets.
 */
FWT_TEST(leftover_bucket_nodes_are_kept_over_many_batches)
{
    start();
    zhandle_t *zh = fwt_zk_client(server.connect);
    const char *made[] = {"/catalog-test", "/catalog-test/buckets", "/catalog-test/buckets/wide",
                          "/catalog-test/buckets/wide/300", "/catalog-test/buckets/wide/301"};
    for (size_t i = 0; i < sizeof(made) / sizeof(made[0]); i++)
        FWT_ASSERT_INT_EQ(zoo_create(zh, made[i], "left", 4, &ZOO_OPEN_ACL_UNSAFE, 0, NULL, 0),
                          ZOK);
    writer_t *w = start_writer();
    result_t r = {0};
    FWT_ASSERT_OK(cal_catalog_create(&w->cat, "wide", 700, on_created, &r));
    run_until(answered, &r, "the create");
    expect_created(&r, &w->cat, "wide", 700);
    FWT_ASSERT_INT_EQ(children(zh, "/catalog-test/buckets/wide"), 700);
    char buf[256];
    read_znode(zh, "/catalog-test/buckets/wide/300", buf, sizeof(buf));
    FWT_ASSERT_STR_EQ(buf, "left");
    read_znode(zh, "/catalog-test/buckets/wide/301", buf, sizeof(buf));
    FWT_ASSERT_STR_EQ(buf, "left");
    for (int b = 0; b < 700; b += 233) {
        char path[128];
        snprintf(path, sizeof(path), "/catalog-test/buckets/wide/%d", b == 233 ? 699 : b);
        read_znode(zh, path, buf, sizeof(buf));
        FWT_ASSERT_STR_EQ(buf, "epoch = 0\nnext_segment_id = 1\n");
    }
    read_znode(zh, "/catalog-test/categories/wide", buf, sizeof(buf));
    FWT_ASSERT_STR_EQ(buf, "buckets = 700\n");
    zookeeper_close(zh);
    stop_writer(w);
    finish();
}

static int not_connected(void *arg)
{
    return ((writer_t *)arg)->state != FW_ZK_CONNECTED;
}

/*
 * With ZooKeeper gone the create ends, once, with retry-later; with it
 * back, the same create goes on from what exists and succeeds.
 */
FWT_TEST(without_zookeeper_a_create_says_retry_later)
{
    start();
    writer_t *w = start_writer();
    fwt_zk_stop(&server);
    run_until(not_connected, w, "the connection to drop");
    result_t r = {0};
    FWT_ASSERT_OK(cal_catalog_create(&w->cat, "later", 3, on_created, &r));
    run_until(answered, &r, "the create to fail");
    FWT_ASSERT_INT_EQ(r.status, FW_ERETRY_LATER);
    FWT_ASSERT(r.c == NULL);
    run_for(300);
    FWT_ASSERT_INT_EQ(r.calls, 1);
    FWT_ASSERT(w->cat.creates == NULL);

    fwt_zk_restart(&server);
    run_until(connected, w, "the session back");
    result_t again = {0};
    FWT_ASSERT_OK(cal_catalog_create(&w->cat, "later", 3, on_created, &again));
    run_until(answered, &again, "the create");
    expect_created(&again, &w->cat, "later", 3);
    stop_writer(w);
    finish();
}

typedef struct count_wait_s {
    writer_t *w;
    int n;
} count_wait_t;

static int loaded_at_least(void *arg)
{
    count_wait_t *cw = arg;
    if (cw->w->changes < cw->n) /* each first read calls changed: cheap to test first */
        return 0;
    int loaded = 0;
    for (int i = 0; i < cw->w->cat.count; i++)
        loaded += cw->w->cat.items[i]->loaded && !cw->w->cat.items[i]->deleted;
    return loaded >= cw->n;
}

static int deleted(void *arg)
{
    seen_t *s = arg;
    cal_category_t *c = cal_catalog_find(&s->w->cat, s->name);
    return c != NULL && c->deleted;
}

/*
 * 2,500 categories (a normal deployment): each is found by name through the
 * hash, whose chains stay short; one deleted is seen gone, no other.
 */
FWT_TEST(thousands_of_categories_are_found_by_name)
{
    enum { N = 2500, BATCH = 250 };
    start();
    zhandle_t *zh = fwt_zk_client(server.connect);
    FWT_ASSERT_INT_EQ(zoo_create(zh, "/catalog-test", "", 0, &ZOO_OPEN_ACL_UNSAFE, 0, NULL, 0),
                      ZOK);
    FWT_ASSERT_INT_EQ(
        zoo_create(zh, "/catalog-test/categories", "", 0, &ZOO_OPEN_ACL_UNSAFE, 0, NULL, 0), ZOK);
    static char paths[BATCH][64];
    static zoo_op_t ops[BATCH];
    static zoo_op_result_t results[BATCH];
    const char *cfg = "buckets = 3\n";
    for (int first = 0; first < N; first += BATCH) {
        for (int i = 0; i < BATCH; i++) {
            snprintf(paths[i], sizeof(paths[i]), "/catalog-test/categories/cat.%04d", first + i);
            zoo_create_op_init(&ops[i], paths[i], cfg, (int)strlen(cfg), &ZOO_OPEN_ACL_UNSAFE, 0,
                               NULL, 0);
        }
        FWT_ASSERT_INT_EQ(zoo_multi(zh, BATCH, ops, results), ZOK);
    }
    writer_t *w = start_writer();
    count_wait_t cw = {w, N};
    run_until(loaded_at_least, &cw, "every category read");
    FWT_ASSERT_INT_EQ(w->cat.count, N);
    for (int i = 0; i < N; i++) {
        char name[32];
        snprintf(name, sizeof(name), "cat.%04d", i);
        cal_category_t *c = cal_catalog_find(&w->cat, name);
        FWT_ASSERT(c != NULL);
        FWT_ASSERT_STR_EQ(c->name, name);
        FWT_ASSERT_UINT_EQ(c->buckets, 3);
    }
    FWT_ASSERT(cal_catalog_find(&w->cat, "cat.2500") == NULL);
    FWT_ASSERT(cal_catalog_find(&w->cat, "cat.") == NULL);
    FWT_ASSERT(w->cat.table_cap >= (size_t)N);
    int longest = 0;
    for (size_t s = 0; s < w->cat.table_cap; s++) {
        int len = 0;
        for (cal_category_t *c = w->cat.table[s]; c != NULL; c = c->hash_next)
            len++;
        if (len > longest)
            longest = len;
    }
    if (longest > 8)
        FWT_FAIL("a hash chain of %d entries among %d", longest, N);

    FWT_ASSERT_INT_EQ(zoo_delete(zh, "/catalog-test/categories/cat.1234", -1), ZOK);
    seen_t s = {w, "cat.1234"};
    run_until(deleted, &s, "cat.1234 seen deleted");
    run_for(200);
    int gone = 0;
    for (int i = 0; i < w->cat.count; i++)
        gone += w->cat.items[i]->deleted;
    FWT_ASSERT_INT_EQ(gone, 1);
    zookeeper_close(zh);
    stop_writer(w);
    finish();
}
