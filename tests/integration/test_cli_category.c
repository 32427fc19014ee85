/*
 * `freeway category` against a real ZooKeeper server, run as a user runs
 * it; the znodes it leaves are read back with the ZooKeeper C client.
 */
#include "fwtest.h"
#include "fwt_proc.h"
#include "fwt_zk.h"

#include <stdarg.h>
#include <stdlib.h>

static fwt_zk_t zk;
static char spec[256];

/* Runs `freeway category ARGS... --zk SPEC`; returns the exit status and output. */
static int category(char **out, ...)
{
    char *argv[32];
    int n = 0;
    argv[n++] = (char *)fwt_bin("freeway");
    argv[n++] = "category";
    va_list ap;
    va_start(ap, out);
    for (char *a; (a = va_arg(ap, char *)) != NULL && n < 28;)
        argv[n++] = a;
    va_end(ap);
    argv[n++] = "--zk";
    argv[n++] = spec;
    argv[n] = NULL;
    return fwt_run(argv, 30000, out);
}

static void expect(const char *out, const char *needle)
{
    if (strstr(out, needle) == NULL)
        FWT_FAIL("output lacks \"%s\":\n%s", needle, out);
}

static void start(void)
{
    fwt_zk_start(&zk);
    snprintf(spec, sizeof(spec), "%s/freeway-test", zk.connect);
}

/* A plain client (no chroot), connected: the sync API answers ZCONNECTIONLOSS
 * until the handshake is done, so an exists on / waits for it. */
static zhandle_t *connect_zk(void)
{
    zhandle_t *zh = zookeeper_init(zk.connect, NULL, 10000, NULL, NULL, 0);
    FWT_ASSERT(zh != NULL);
    int64_t deadline = fwt_now_ms() + 10000;
    int rc;
    while ((rc = zoo_exists(zh, "/", 0, NULL)) == ZCONNECTIONLOSS && fwt_now_ms() < deadline)
        ;
    if (rc != ZOK)
        FWT_FAIL("connecting to ZooKeeper: %s", zerror(rc));
    return zh;
}

/* Reads a znode through a plain client. */
static void read_znode(const char *path, char *buf, int cap)
{
    zhandle_t *zh = connect_zk();
    int len = cap - 1;
    int rc = zoo_get(zh, path, 0, buf, &len, NULL);
    zookeeper_close(zh);
    if (rc != ZOK)
        FWT_FAIL("zoo_get %s: %s", path, zerror(rc));
    buf[len < 0 ? 0 : len] = '\0';
}

FWT_TEST(create_describe_alter_list_delete)
{
    start();
    char *out;
    FWT_ASSERT_INT_EQ(category(&out, "create", "web_clicks", "--buckets", "4", "--roll-bytes",
                               "64M", "--sync-interval", "2ms", NULL),
                      0);
    expect(out, "created category web_clicks with 4 buckets");
    free(out);

    char buf[4096];
    read_znode("/freeway-test/categories/web_clicks", buf, sizeof(buf));
    FWT_ASSERT_STR_EQ(buf, "buckets = 4\nroll_bytes = 67108864\nsync_interval_ms = 2\n");
    read_znode("/freeway-test/buckets/web_clicks/3", buf, sizeof(buf));
    FWT_ASSERT_STR_EQ(buf, "epoch = 0\nnext_segment_id = 1\n");

    FWT_ASSERT_INT_EQ(category(&out, "describe", "web_clicks", NULL), 0);
    expect(out, "buckets = 4\n");
    expect(out, "max_record_bytes = 1048576\n"); /* defaults in force are shown */
    expect(out, "codec = CODEC_LZ4\n");
    free(out);

    FWT_ASSERT_INT_EQ(
        category(&out, "alter", "web_clicks", "--buckets", "6", "--codec", "none", NULL), 0);
    free(out);
    read_znode("/freeway-test/buckets/web_clicks/5", buf, sizeof(buf));
    read_znode("/freeway-test/categories/web_clicks", buf, sizeof(buf));
    expect(buf, "buckets = 6\n");
    expect(buf, "codec = CODEC_NONE\n");
    expect(buf, "roll_bytes = 67108864\n"); /* untouched fields stay */

    FWT_ASSERT_INT_EQ(category(&out, "create", "app.events-2", "--buckets", "1", NULL), 0);
    free(out);
    FWT_ASSERT_INT_EQ(category(&out, "list", NULL), 0);
    expect(out, "app.events-2");
    expect(out, "web_clicks                               buckets=6");
    FWT_ASSERT(strstr(out, "app.events-2") < strstr(out, "web_clicks")); /* sorted */
    free(out);

    FWT_ASSERT_INT_EQ(category(&out, "delete", "web_clicks", NULL), 0);
    free(out);
    FWT_ASSERT_INT_EQ(category(&out, "describe", "web_clicks", NULL), 1);
    expect(out, "no category web_clicks");
    free(out);
    FWT_ASSERT_INT_EQ(category(&out, "list", NULL), 0);
    FWT_ASSERT(strstr(out, "web_clicks") == NULL);
    free(out);
}

/* Runs `freeway status [a [b]] --zk SPEC` (a, b may be NULL); returns the exit status and output.
 */
static int status(char **out, const char *a, const char *b)
{
    char *argv[8];
    int n = 0;
    argv[n++] = (char *)fwt_bin("freeway");
    argv[n++] = "status";
    if (a != NULL)
        argv[n++] = (char *)a;
    if (b != NULL)
        argv[n++] = (char *)b;
    argv[n++] = "--zk";
    argv[n++] = spec;
    argv[n] = NULL;
    return fwt_run(argv, 30000, out);
}

/*
 * --scribe-key-delimiter: one byte, given as a character or an escape, kept
 * in the category's node (quoted when it is a control byte), shown by
 * describe, list and status, changed and removed by alter, the other fields
 * untouched.
 */
FWT_TEST(scribe_key_delimiter_set_shown_changed_removed)
{
    start();
    char *out, buf[4096];
    FWT_ASSERT_INT_EQ(category(&out, "create", "scribe_web", "--buckets", "2",
                               "--scribe-key-delimiter", "\\x01", NULL),
                      0);
    free(out);
    read_znode("/freeway-test/categories/scribe_web", buf, sizeof(buf));
    FWT_ASSERT_STR_EQ(buf, "buckets = 2\nscribe_key_delimiter = \"\\x01\"\n");

    FWT_ASSERT_INT_EQ(category(&out, "describe", "scribe_web", NULL), 0);
    expect(out, "scribe_key_delimiter = \"\\x01\"\n");
    free(out);
    FWT_ASSERT_INT_EQ(category(&out, "list", NULL), 0);
    expect(out,
           "scribe_web                               buckets=2 scribe_key_delimiter='\\x01'\n");
    free(out);
    FWT_ASSERT_INT_EQ(status(&out, "-c", "scribe_web"), 0);
    expect(out, ", scribe key before '\\x01'\n");
    free(out);
    FWT_ASSERT_INT_EQ(status(&out, "--json", NULL), 0);
    expect(out, "\"scribe_key_delimiter\":1,");
    free(out);

    struct {
        const char *given, *stored, *listed;
    } changes[] = {
        {":", "scribe_key_delimiter = :\n", "scribe_key_delimiter=':'"},
        {"\\t", "scribe_key_delimiter = \"\\t\"\n", "scribe_key_delimiter='\\t'"},
        {" ", "scribe_key_delimiter = \" \"\n", "scribe_key_delimiter='\\x20'"},
        {"\\\\", "scribe_key_delimiter = \\\n", "scribe_key_delimiter='\\\\'"},
        {"\\xFe", "scribe_key_delimiter = \"\\xfe\"\n", "scribe_key_delimiter='\\xfe'"},
        {"|", "scribe_key_delimiter = |\n", "scribe_key_delimiter='|'"},
    };
    for (size_t i = 0; i < sizeof(changes) / sizeof(changes[0]); i++) {
        FWT_ASSERT_INT_EQ(
            category(&out, "alter", "scribe_web", "--scribe-key-delimiter", changes[i].given, NULL),
            0);
        free(out);
        read_znode("/freeway-test/categories/scribe_web", buf, sizeof(buf));
        if (strstr(buf, changes[i].stored) == NULL || strstr(buf, "buckets = 2\n") == NULL)
            FWT_FAIL("--scribe-key-delimiter \"%s\" stored as:\n%s\nwant \"%s\"", changes[i].given,
                     buf, changes[i].stored);
        FWT_ASSERT_INT_EQ(category(&out, "list", NULL), 0);
        expect(out, changes[i].listed);
        free(out);
    }
    /* Another option leaves it alone; '' removes it. */
    FWT_ASSERT_INT_EQ(category(&out, "alter", "scribe_web", "--codec", "none", NULL), 0);
    free(out);
    read_znode("/freeway-test/categories/scribe_web", buf, sizeof(buf));
    FWT_ASSERT_STR_EQ(buf, "buckets = 2\ncodec = CODEC_NONE\nscribe_key_delimiter = |\n");
    FWT_ASSERT_INT_EQ(category(&out, "alter", "scribe_web", "--scribe-key-delimiter", "", NULL), 0);
    free(out);
    read_znode("/freeway-test/categories/scribe_web", buf, sizeof(buf));
    FWT_ASSERT_STR_EQ(buf, "buckets = 2\ncodec = CODEC_NONE\n");
    FWT_ASSERT_INT_EQ(category(&out, "list", NULL), 0);
    FWT_ASSERT(strstr(out, "scribe_key_delimiter") == NULL);
    free(out);
    FWT_ASSERT_INT_EQ(status(&out, "--json", NULL), 0);
    expect(out, "\"scribe_key_delimiter\":null,");
    free(out);

    /* Given to create as '' : no key, nothing stored. */
    FWT_ASSERT_INT_EQ(
        category(&out, "create", "plain", "--buckets", "1", "--scribe-key-delimiter", "", NULL), 0);
    free(out);
    read_znode("/freeway-test/categories/plain", buf, sizeof(buf));
    FWT_ASSERT_STR_EQ(buf, "buckets = 1\n");

    /* A value put there by hand that is not one byte: shown as invalid, not used. */
    zhandle_t *zh = connect_zk();
    const char bad[] = "buckets = 2\nscribe_key_delimiter = ::\n";
    FWT_ASSERT_INT_EQ(
        zoo_set(zh, "/freeway-test/categories/scribe_web", bad, (int)sizeof(bad) - 1, -1), ZOK);
    zookeeper_close(zh);
    FWT_ASSERT_INT_EQ(category(&out, "list", NULL), 0);
    expect(out, "buckets=2 scribe_key_delimiter=invalid\n");
    free(out);
    FWT_ASSERT_INT_EQ(category(&out, "describe", "scribe_web", NULL), 0);
    expect(out, "scribe_key_delimiter is not one byte; the writers take it as none");
    free(out);
    FWT_ASSERT_INT_EQ(status(&out, "--json", NULL), 0);
    expect(out, "\"scribe_key_delimiter\":null,");
    free(out);
}

FWT_TEST(refusals_are_clear)
{
    start();
    char *out;
    FWT_ASSERT_INT_EQ(category(&out, "create", "c", "--buckets", "8", NULL), 0);
    free(out);
    struct {
        int status;
        const char *needle;
        char *a[6];
    } cases[] = {
        {1, "c already exists", {"create", "c", "--buckets", "8", NULL}},
        {2, "buckets can grow, never shrink", {"alter", "c", "--buckets", "4", NULL}},
        {2, "--buckets N is required", {"create", "d", NULL}},
        {2, "--buckets must be 1..65536", {"create", "d", "--buckets", "0", NULL}},
        {2, "not a valid name", {"create", "bad/name", "--buckets", "1", NULL}},
        {2, "--codec must be lz4 or none", {"create", "d", "--buckets", "1", "--codec", "zstd"}},
        {2, "is not a size", {"create", "d", "--buckets", "1", "--max-record-bytes", "big"}},
        {2,
         "--max-record-bytes must be 1..16M",
         {"create", "d", "--buckets", "1", "--max-record-bytes", "17M"}},
        {1, "no category nope", {"delete", "nope", NULL}},
        {2, "usage:", {"rename", "c", NULL}},
        {2, "\"ab\" is not one", {"alter", "c", "--scribe-key-delimiter", "ab", NULL}},
        {2, "not \\x00", {"alter", "c", "--scribe-key-delimiter", "\\x00", NULL}},
        {2, "wants one byte", {"alter", "c", "--scribe-key-delimiter", "\\x100", NULL}},
        {2, "wants one byte", {"alter", "c", "--scribe-key-delimiter", "\\q", NULL}},
        {2, "wants one byte", {"alter", "c", "--scribe-key-delimiter", "\xc3\xa9", NULL}},
        {2, "wants one byte", {"create", "d", "--buckets", "1", "--scribe-key-delimiter", "\\x"}},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char **a = cases[i].a;
        int st = category(&out, a[0], a[1], a[2], a[3], a[4], a[5], NULL);
        if (st != cases[i].status || strstr(out, cases[i].needle) == NULL)
            FWT_FAIL("case %zu (%s %s): status %d, output:\n%s\nwant %d and \"%s\"", i, a[0], a[1],
                     st, out, cases[i].status, cases[i].needle);
        free(out);
    }
}

FWT_TEST(zookeeper_down_is_reported)
{
    int port = fwt_free_port();
    snprintf(spec, sizeof(spec), "127.0.0.1:%d/freeway", port);
    char *out;
    int64_t t0 = fwt_now_ms();
    FWT_ASSERT_INT_EQ(category(&out, "list", "--timeout", "1s", NULL), 1);
    expect(out, "cannot reach ZooKeeper at 127.0.0.1:");
    FWT_ASSERT(fwt_now_ms() - t0 < 10000);
    free(out);
}

/*
 * Many buckets are created in batches (one multi each); a run interrupted
 * halfway leaves bucket nodes behind, and the next run keeps them and
 * creates the rest.
 */
FWT_TEST(many_buckets_and_leftovers_from_an_interrupted_run)
{
    start();
    zhandle_t *zh = connect_zk();
    const char *made[] = {"/freeway-test", "/freeway-test/buckets", "/freeway-test/buckets/wide",
                          "/freeway-test/buckets/wide/300"};
    for (size_t i = 0; i < sizeof(made) / sizeof(made[0]); i++)
        FWT_ASSERT_INT_EQ(zoo_create(zh, made[i], "left", 4, &ZOO_OPEN_ACL_UNSAFE, 0, NULL, 0),
                          ZOK);
    char *out;
    FWT_ASSERT_INT_EQ(category(&out, "create", "wide", "--buckets", "600", NULL), 0);
    free(out);
    struct String_vector kids;
    FWT_ASSERT_INT_EQ(zoo_get_children(zh, "/freeway-test/buckets/wide", 0, &kids), ZOK);
    FWT_ASSERT_INT_EQ(kids.count, 600);
    deallocate_String_vector(&kids);
    zookeeper_close(zh);
    char buf[256];
    read_znode("/freeway-test/buckets/wide/300", buf, sizeof(buf));
    FWT_ASSERT_STR_EQ(buf, "left");
    read_znode("/freeway-test/buckets/wide/599", buf, sizeof(buf));
    FWT_ASSERT_STR_EQ(buf, "epoch = 0\nnext_segment_id = 1\n");
}
