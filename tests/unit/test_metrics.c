/*
 * The metrics registry: exact text rendering of every metric type, name and
 * label validation, lock-free updates from several threads, registration
 * while another thread renders, and what a large registry costs to render.
 */
#include "fwtest.h"

#include "error.h"
#include "log.h"
#include "metrics.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

static void destroy_reg(void *arg)
{
    fw_metrics_destroy(arg);
}

static fw_metrics_t *new_reg(void)
{
    fw_metrics_t *reg = fw_metrics_create();
    FWT_ASSERT(reg != NULL);
    fwt_defer(destroy_reg, reg);
    return reg;
}

/* The rendered registry as a NUL-terminated string; freed when the test ends. */
static char *render(fw_metrics_t *reg)
{
    fw_buf_t b = FW_BUF_INIT;
    FWT_ASSERT_OK(fw_metrics_render(reg, &b));
    FWT_ASSERT_OK(fw_buf_append(&b, "", 1));
    fwt_defer(free, b.data);
    return (char *)b.data;
}

FWT_TEST(counter_and_gauge_render_exactly)
{
    fw_metrics_t *reg = new_reg();
    fw_metric_counter_t *c;
    fw_metric_gauge_t *g;
    FWT_ASSERT_OK(fw_metrics_counter(reg, &c, "freeway_test_records_received_total",
                                     "Records received.", NULL));
    FWT_ASSERT_OK(
        fw_metrics_gauge(reg, &g, "freeway_test_open_segments", "Open segment files.", NULL));
    FWT_ASSERT_STR_EQ(render(reg), "# HELP freeway_test_records_received_total Records received.\n"
                                   "# TYPE freeway_test_records_received_total counter\n"
                                   "freeway_test_records_received_total 0\n"
                                   "# HELP freeway_test_open_segments Open segment files.\n"
                                   "# TYPE freeway_test_open_segments gauge\n"
                                   "freeway_test_open_segments 0\n");
    fw_metric_inc(c);
    fw_metric_add(c, 18446744073709551000ULL);
    fw_metric_set(g, 12);
    fw_metric_gauge_add(g, -2.5);
    FWT_ASSERT_UINT_EQ(fw_metric_counter_get(c), 18446744073709551001ULL);
    FWT_ASSERT(fw_metric_gauge_get(g) == 9.5);
    FWT_ASSERT_STR_EQ(render(reg), "# HELP freeway_test_records_received_total Records received.\n"
                                   "# TYPE freeway_test_records_received_total counter\n"
                                   "freeway_test_records_received_total 18446744073709551001\n"
                                   "# HELP freeway_test_open_segments Open segment files.\n"
                                   "# TYPE freeway_test_open_segments gauge\n"
                                   "freeway_test_open_segments 9.5\n");
}

FWT_TEST(a_removed_series_is_gone_and_can_come_back)
{
    fw_metrics_t *reg = new_reg();
    const char *name = "freeway_test_lag_bytes";
    const char *help = "Lag.";
    fw_metric_gauge_t *g;
    for (int i = 0; i < 200; i++) { /* enough to grow the hash table */
        char c[16];
        snprintf(c, sizeof(c), "c%d", i);
        FWT_ASSERT_OK(fw_metrics_gauge(reg, &g, name, help, "consumer", c, NULL));
        fw_metric_set(g, i);
    }
    FWT_ASSERT_UINT_EQ(fw_metrics_series_count(reg), 200);
    /* The first, one in the middle and the last of the family's list. */
    FWT_ASSERT_OK(fw_metrics_remove(reg, name, "consumer", "c0", NULL));
    FWT_ASSERT_OK(fw_metrics_remove(reg, name, "consumer", "c100", NULL));
    FWT_ASSERT_OK(fw_metrics_remove(reg, name, "consumer", "c199", NULL));
    FWT_ASSERT_INT_EQ(fw_metrics_remove(reg, name, "consumer", "c100", NULL), -ENOENT);
    FWT_ASSERT_INT_EQ(fw_metrics_remove(reg, "freeway_test_nothing", NULL), -ENOENT);
    FWT_ASSERT_UINT_EQ(fw_metrics_series_count(reg), 197);
    char *text = render(reg);
    FWT_ASSERT(strstr(text, "consumer=\"c0\"") == NULL);
    FWT_ASSERT(strstr(text, "consumer=\"c100\"") == NULL);
    FWT_ASSERT(strstr(text, "consumer=\"c199\"") == NULL);
    FWT_ASSERT(strstr(text, "freeway_test_lag_bytes{consumer=\"c1\"} 1\n") != NULL);
    FWT_ASSERT(strstr(text, "freeway_test_lag_bytes{consumer=\"c198\"} 198\n") != NULL);
    /* Registered again, it starts from zero, at the end of the family. */
    FWT_ASSERT_OK(fw_metrics_gauge(reg, &g, name, help, "consumer", "c100", NULL));
    FWT_ASSERT(fw_metric_gauge_get(g) == 0);
    text = render(reg);
    FWT_ASSERT(strstr(text, "freeway_test_lag_bytes{consumer=\"c100\"} 0\n") != NULL);
    /* Removing every series leaves an empty family, which renders nothing. */
    for (int i = 1; i < 199; i++) {
        char c[16];
        snprintf(c, sizeof(c), "c%d", i);
        FWT_ASSERT_OK(fw_metrics_remove(reg, name, "consumer", c, NULL));
    }
    FWT_ASSERT_STR_EQ(render(reg), "");
}

FWT_TEST(gauge_values_use_the_shortest_exact_form)
{
    static const struct {
        double v;
        const char *text;
    } cases[] = {
        {0.1, "0.1"},
        {-0.001, "-0.001"},
        {123456789, "123456789"},
        {9007199254740993.0, "9007199254740992"}, /* 2^53 + 1 rounds to 2^53 */
        {1e21, "1e+21"},
        {1.0 / 3, "0.3333333333333333"},
        {INFINITY, "+Inf"},
        {-INFINITY, "-Inf"},
        {NAN, "NaN"},
    };
    fw_metrics_t *reg = new_reg();
    fw_metric_gauge_t *g;
    FWT_ASSERT_OK(fw_metrics_gauge(reg, &g, "freeway_test_value_ratio", "A value.", NULL));
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char want[256];
        fw_metric_set(g, cases[i].v);
        snprintf(want, sizeof(want),
                 "# HELP freeway_test_value_ratio A value.\n"
                 "# TYPE freeway_test_value_ratio gauge\n"
                 "freeway_test_value_ratio %s\n",
                 cases[i].text);
        FWT_ASSERT_STR_EQ(render(reg), want);
    }
}

FWT_TEST(labels_and_help_are_escaped)
{
    fw_metrics_t *reg = new_reg();
    fw_metric_counter_t *a, *b, *again;
    const char *help = "Bytes \"in\" C:\\spool,\nper category.";
    FWT_ASSERT_OK(fw_metrics_counter(reg, &a, "freeway_test_spool_bytes_total", help, "category",
                                     "web_clicks", "path", "C:\\dir \"x\"\nend", NULL));
    FWT_ASSERT_OK(fw_metrics_counter(reg, &b, "freeway_test_spool_bytes_total", help, "category",
                                     "caf\xc3\xa9", "path", "\xf0\x9f\x9a\x80", NULL));
    /* Registering an existing series hands back the same handle. */
    FWT_ASSERT_OK(fw_metrics_counter(reg, &again, "freeway_test_spool_bytes_total", help,
                                     "category", "web_clicks", "path", "C:\\dir \"x\"\nend", NULL));
    FWT_ASSERT(again == a);
    FWT_ASSERT_UINT_EQ(fw_metrics_series_count(reg), 2);
    fw_metric_add(a, 3);
    fw_metric_add(b, 4);
    FWT_ASSERT_STR_EQ(
        render(reg),
        "# HELP freeway_test_spool_bytes_total Bytes \"in\" C:\\\\spool,\\nper category.\n"
        "# TYPE freeway_test_spool_bytes_total counter\n"
        "freeway_test_spool_bytes_total{category=\"web_clicks\",path=\"C:\\\\dir "
        "\\\"x\\\"\\nend\"} 3\n"
        "freeway_test_spool_bytes_total{category=\"caf\xc3\xa9\",path=\"\xf0\x9f\x9a\x80\"} 4\n");
}

FWT_TEST(histogram_renders_cumulative_buckets_sum_and_count)
{
    static const double bounds[] = {0.001, 0.01, 0.1, 1};
    fw_metrics_t *reg = new_reg();
    fw_metric_histogram_t *h, *l;
    FWT_ASSERT_OK(fw_metrics_histogram(reg, &h, "freeway_test_fsync_seconds", "fsync latency.",
                                       bounds, 4, NULL));
    FWT_ASSERT_OK(fw_metrics_histogram(reg, &l, "freeway_test_read_seconds", "read latency.",
                                       bounds, 4, "disk", "sda", NULL));
    fw_metric_observe(h, 0.0005);
    fw_metric_observe(h, 0.001); /* a bound is inclusive: le means <= */
    fw_metric_observe(h, 0.05);
    fw_metric_observe(h, 2.5);
    fw_metric_observe(l, 0.25);
    FWT_ASSERT_STR_EQ(render(reg), "# HELP freeway_test_fsync_seconds fsync latency.\n"
                                   "# TYPE freeway_test_fsync_seconds histogram\n"
                                   "freeway_test_fsync_seconds_bucket{le=\"0.001\"} 2\n"
                                   "freeway_test_fsync_seconds_bucket{le=\"0.01\"} 2\n"
                                   "freeway_test_fsync_seconds_bucket{le=\"0.1\"} 3\n"
                                   "freeway_test_fsync_seconds_bucket{le=\"1\"} 3\n"
                                   "freeway_test_fsync_seconds_bucket{le=\"+Inf\"} 4\n"
                                   "freeway_test_fsync_seconds_sum 2.5515\n"
                                   "freeway_test_fsync_seconds_count 4\n"
                                   "# HELP freeway_test_read_seconds read latency.\n"
                                   "# TYPE freeway_test_read_seconds histogram\n"
                                   "freeway_test_read_seconds_bucket{disk=\"sda\",le=\"0.001\"} 0\n"
                                   "freeway_test_read_seconds_bucket{disk=\"sda\",le=\"0.01\"} 0\n"
                                   "freeway_test_read_seconds_bucket{disk=\"sda\",le=\"0.1\"} 0\n"
                                   "freeway_test_read_seconds_bucket{disk=\"sda\",le=\"1\"} 1\n"
                                   "freeway_test_read_seconds_bucket{disk=\"sda\",le=\"+Inf\"} 1\n"
                                   "freeway_test_read_seconds_sum{disk=\"sda\"} 0.25\n"
                                   "freeway_test_read_seconds_count{disk=\"sda\"} 1\n");
}

FWT_TEST(histogram_family_fixes_labels_and_bounds)
{
    /* The first registration fixes the family's label names. */
    static const double bounds[] = {1, 2};
    fw_metrics_t *reg = new_reg();
    fw_metric_histogram_t *h;
    FWT_ASSERT_OK(fw_metrics_histogram(reg, &h, "freeway_test_wait_seconds", "Wait.", bounds, 2,
                                       "disk", "sda", NULL));
    FWT_ASSERT_INT_EQ(
        fw_metrics_histogram(reg, &h, "freeway_test_wait_seconds", "Wait.", bounds, 2, NULL),
        -EEXIST);
    FWT_ASSERT(h == NULL);
    FWT_ASSERT_INT_EQ(fw_metrics_histogram(reg, &h, "freeway_test_wait_seconds", "Wait.", bounds, 1,
                                           "disk", "sdb", NULL),
                      -EEXIST);
}

static double read_arg(void *arg)
{
    return *(double *)arg;
}

FWT_TEST(callbacks_are_read_at_scrape_time)
{
    fw_metrics_t *reg = new_reg();
    double inflight = 1024, restarts = 2;
    FWT_ASSERT_OK(fw_metrics_gauge_fn(reg, "freeway_test_inflight_bytes", "In flight.", read_arg,
                                      &inflight, "category", "a", NULL));
    FWT_ASSERT_OK(fw_metrics_counter_fn(reg, "freeway_test_restarts_total", "Restarts.", read_arg,
                                        &restarts, NULL));
    FWT_ASSERT_STR_EQ(render(reg), "# HELP freeway_test_inflight_bytes In flight.\n"
                                   "# TYPE freeway_test_inflight_bytes gauge\n"
                                   "freeway_test_inflight_bytes{category=\"a\"} 1024\n"
                                   "# HELP freeway_test_restarts_total Restarts.\n"
                                   "# TYPE freeway_test_restarts_total counter\n"
                                   "freeway_test_restarts_total 2\n");
    inflight = 0.5;
    restarts = 3;
    FWT_ASSERT_STR_EQ(render(reg), "# HELP freeway_test_inflight_bytes In flight.\n"
                                   "# TYPE freeway_test_inflight_bytes gauge\n"
                                   "freeway_test_inflight_bytes{category=\"a\"} 0.5\n"
                                   "# HELP freeway_test_restarts_total Restarts.\n"
                                   "# TYPE freeway_test_restarts_total counter\n"
                                   "freeway_test_restarts_total 3\n");
    /* A callback series has one owner: a second registration is refused, and
     * a stored series cannot take over its labels either. */
    FWT_ASSERT_INT_EQ(fw_metrics_gauge_fn(reg, "freeway_test_inflight_bytes", "In flight.",
                                          read_arg, &inflight, "category", "a", NULL),
                      -EEXIST);
    fw_metric_gauge_t *g;
    FWT_ASSERT_INT_EQ(fw_metrics_gauge(reg, &g, "freeway_test_inflight_bytes", "In flight.",
                                       "category", "a", NULL),
                      -EEXIST);
    FWT_ASSERT_OK(fw_metrics_gauge(reg, &g, "freeway_test_inflight_bytes", "In flight.", "category",
                                   "b", NULL));
    FWT_ASSERT_INT_EQ(
        fw_metrics_gauge_fn(reg, "freeway_test_inflight_bytes", "In flight.", NULL, NULL, NULL),
        -EINVAL);
}

static void quiet_sink(fw_log_level_t level, const char *line, void *ctx)
{
    (void)level;
    (void)line;
    (void)ctx;
}

static void restore_sink(void *arg)
{
    (void)arg;
    fw_log_set_sink(NULL, NULL);
}

FWT_TEST(process_series_follow_the_log)
{
    fw_metrics_t *reg = new_reg();
    fw_log_set_sink(quiet_sink, NULL);
    fwt_defer(restore_sink, NULL);
    FWT_ASSERT_OK(fw_metrics_add_process(reg, "ptail", "9.9.9"));
    FWT_ASSERT_INT_EQ(fw_metrics_add_process(reg, "ptail", "9.9.9"), -EEXIST);
    uint64_t warn0 = fw_log_count(FW_LOG_WARN), err0 = fw_log_count(FW_LOG_ERROR);
    fw_log_warn("test", "one");
    fw_log_warn("test", "two");
    fw_log_error("test", "three");
    char want[1024];
    snprintf(want, sizeof(want),
             "# HELP freeway_ptail_log_messages_total Lines this ptail logged, by level.\n"
             "# TYPE freeway_ptail_log_messages_total counter\n"
             "freeway_ptail_log_messages_total{level=\"warn\"} %" PRIu64 "\n"
             "freeway_ptail_log_messages_total{level=\"error\"} %" PRIu64 "\n"
             "# HELP freeway_ptail_build_info Always 1; the version label says which build runs.\n"
             "# TYPE freeway_ptail_build_info gauge\n"
             "freeway_ptail_build_info{version=\"9.9.9\"} 1\n",
             warn0 + 2, err0 + 1);
    const char *got = render(reg);
    if (strncmp(got, want, strlen(want)) != 0)
        FWT_FAIL("rendered:\n%s\nwanted it to start with:\n%s", got, want);
    FWT_ASSERT(strstr(got, "\nfreeway_ptail_start_time_seconds 1") != NULL);
}

FWT_TEST(invalid_names_are_rejected)
{
    static const char *const bad_counters[] = {
        "",
        "freeway_",
        "records_total",              /* no freeway_ prefix */
        "freeway_test_records",       /* a counter must end in _total */
        "freeway_Test_records_total", /* lower case only */
        "freeway_test__records_total",
        "freeway_test_records_total_",
        "freeway_test:records_total",
        "freeway_test records_total",
        "freeway_test-records_total",
        "freeway_t\xc3\xa9st_total",
    };
    static const char *const bad_gauges[] = {
        "freeway_test_bytes_total", /* _total is for counters */
        "freeway_1_\n",
    };
    static const char *const bad_histograms[] = {
        "freeway_test_fsync_seconds_bucket",
        "freeway_test_fsync_seconds_sum",
        "freeway_test_fsync_seconds_count",
    };
    static const char *const bad_labels[] = {
        "", "1abc", "__name", "le", "a-b", "a b", "caf\xc3\xa9",
    };
    static const double one[] = {1};
    fw_metrics_t *reg = new_reg();
    fw_metric_counter_t *c = (fw_metric_counter_t *)1;
    fw_metric_gauge_t *g;
    fw_metric_histogram_t *h;
    for (size_t i = 0; i < sizeof(bad_counters) / sizeof(bad_counters[0]); i++) {
        if (fw_metrics_counter(reg, &c, bad_counters[i], "h", NULL) != -EINVAL)
            FWT_FAIL("counter name \"%s\" was accepted", bad_counters[i]);
        FWT_ASSERT(c == NULL);
    }
    for (size_t i = 0; i < sizeof(bad_gauges) / sizeof(bad_gauges[0]); i++)
        if (fw_metrics_gauge(reg, &g, bad_gauges[i], "h", NULL) != -EINVAL)
            FWT_FAIL("gauge name \"%s\" was accepted", bad_gauges[i]);
    for (size_t i = 0; i < sizeof(bad_histograms) / sizeof(bad_histograms[0]); i++)
        if (fw_metrics_histogram(reg, &h, bad_histograms[i], "h", one, 1, NULL) != -EINVAL)
            FWT_FAIL("histogram name \"%s\" was accepted", bad_histograms[i]);
    for (size_t i = 0; i < sizeof(bad_labels) / sizeof(bad_labels[0]); i++)
        if (fw_metrics_counter(reg, &c, "freeway_test_x_total", "h", bad_labels[i], "v", NULL) !=
            -EINVAL)
            FWT_FAIL("label name \"%s\" was accepted", bad_labels[i]);

    const char *name = "freeway_test_x_total";
    /* A label without a value, a repeated label, one label too many. */
    FWT_ASSERT_INT_EQ(fw_metrics_counter(reg, &c, name, "h", "category", NULL), -EINVAL);
    FWT_ASSERT_INT_EQ(fw_metrics_counter(reg, &c, name, "h", "a", "1", "a", "2", NULL), -EINVAL);
    FWT_ASSERT_INT_EQ(fw_metrics_counter(reg, &c, name, "h", "a", "1", "b", "2", "c", "3", "d", "4",
                                         "e", "5", "f", "6", "g", "7", "h", "8", "i", "9", NULL),
                      -EINVAL);
    FWT_ASSERT_OK(fw_metrics_counter(reg, &c, name, "h", "a", "1", "b", "2", "c", "3", "d", "4",
                                     "e", "5", "f", "6", "g", "7", "h", "8", NULL));
    /* Text that is not UTF-8 would break the whole page for a scraper. */
    FWT_ASSERT_INT_EQ(fw_metrics_counter(reg, &c, "freeway_test_y_total", "bad \xff", NULL),
                      -EINVAL);
    FWT_ASSERT_INT_EQ(
        fw_metrics_counter(reg, &c, "freeway_test_y_total", "h", "k", "\xc0\xaf", NULL),
        -EINVAL); /* overlong */
    FWT_ASSERT_INT_EQ(
        fw_metrics_counter(reg, &c, "freeway_test_y_total", "h", "k", "\xed\xa0\x80", NULL),
        -EINVAL); /* a surrogate */
    FWT_ASSERT_INT_EQ(
        fw_metrics_counter(reg, &c, "freeway_test_y_total", "h", "k", "\xe2\x82", NULL),
        -EINVAL); /* truncated */
    FWT_ASSERT_INT_EQ(fw_metrics_counter(reg, &c, "freeway_test_y_total", NULL, NULL), -EINVAL);
    static char long_value[1026];
    memset(long_value, 'v', sizeof(long_value) - 1);
    FWT_ASSERT_INT_EQ(
        fw_metrics_counter(reg, &c, "freeway_test_y_total", "h", "k", long_value, NULL), -EINVAL);
    FWT_ASSERT_INT_EQ(fw_metrics_counter_fn(reg, "freeway_test_y_total", "h", NULL, NULL, NULL),
                      -EINVAL);
    /* Histogram bounds: finite and strictly increasing. */
    static const double unsorted[] = {1, 0.5}, repeated[] = {1, 1}, inf[] = {1, INFINITY},
                        nan[] = {NAN};
    const char *hn = "freeway_test_z_seconds";
    FWT_ASSERT_INT_EQ(fw_metrics_histogram(reg, &h, hn, "h", unsorted, 2, NULL), -EINVAL);
    FWT_ASSERT_INT_EQ(fw_metrics_histogram(reg, &h, hn, "h", repeated, 2, NULL), -EINVAL);
    FWT_ASSERT_INT_EQ(fw_metrics_histogram(reg, &h, hn, "h", inf, 2, NULL), -EINVAL);
    FWT_ASSERT_INT_EQ(fw_metrics_histogram(reg, &h, hn, "h", nan, 1, NULL), -EINVAL);
    FWT_ASSERT_INT_EQ(fw_metrics_histogram(reg, &h, hn, "h", NULL, 1, NULL), -EINVAL);
    /* Nothing invalid left a trace. */
    FWT_ASSERT_UINT_EQ(fw_metrics_series_count(reg), 1);
}

FWT_TEST(families_must_agree)
{
    static const double b1[] = {1, 2}, b2[] = {1, 3};
    fw_metrics_t *reg = new_reg();
    fw_metric_counter_t *c;
    fw_metric_gauge_t *g;
    fw_metric_histogram_t *h;
    FWT_ASSERT_OK(fw_metrics_counter(reg, &c, "freeway_test_a_total", "A.", "k", "1", NULL));
    /* Another help text, other label names, another order. */
    FWT_ASSERT_INT_EQ(fw_metrics_counter(reg, &c, "freeway_test_a_total", "B.", "k", "2", NULL),
                      -EEXIST);
    FWT_ASSERT_INT_EQ(fw_metrics_counter(reg, &c, "freeway_test_a_total", "A.", "j", "2", NULL),
                      -EEXIST);
    FWT_ASSERT_INT_EQ(
        fw_metrics_counter(reg, &c, "freeway_test_a_total", "A.", "k", "2", "j", "3", NULL),
        -EEXIST);
    FWT_ASSERT_OK(fw_metrics_gauge(reg, &g, "freeway_test_b_bytes", "B.", NULL));
    FWT_ASSERT_INT_EQ(fw_metrics_histogram(reg, &h, "freeway_test_b_bytes", "B.", b1, 2, NULL),
                      -EEXIST);
    FWT_ASSERT_OK(fw_metrics_histogram(reg, &h, "freeway_test_c_seconds", "C.", b1, 2, NULL));
    FWT_ASSERT_INT_EQ(
        fw_metrics_histogram(reg, &h, "freeway_test_c_seconds", "C.", b2, 2, "k", "v", NULL),
        -EEXIST);
    /* Names a histogram renders are taken, both ways round. */
    FWT_ASSERT_INT_EQ(fw_metrics_gauge(reg, &g, "freeway_test_c_seconds_count", "C.", NULL),
                      -EEXIST);
    FWT_ASSERT_INT_EQ(fw_metrics_gauge(reg, &g, "freeway_test_c_seconds_bucket", "C.", NULL),
                      -EEXIST);
    FWT_ASSERT_OK(fw_metrics_gauge(reg, &g, "freeway_test_d_bytes_sum", "D.", NULL));
    FWT_ASSERT_INT_EQ(fw_metrics_histogram(reg, &h, "freeway_test_d_bytes", "D.", b1, 2, NULL),
                      -EEXIST);
    FWT_ASSERT_UINT_EQ(fw_metrics_series_count(reg), 4);
}

FWT_TEST(destroy_null_is_safe)
{
    fw_metrics_destroy(NULL);
    fw_metrics_t *reg = fw_metrics_create();
    fw_metrics_destroy(reg);
}

/* ---- threads ----------------------------------------------------------------- */

#define HAMMER_ROUNDS 1000000

struct hammer {
    fw_metric_counter_t *c;
    fw_metric_gauge_t *g;
    fw_metric_histogram_t *h;
    atomic_int *go;
};

static void *hammer_thread(void *arg)
{
    struct hammer *hm = arg;
    while (!atomic_load(hm->go))
        ;
    for (int i = 0; i < HAMMER_ROUNDS; i++) {
        fw_metric_inc(hm->c);
        fw_metric_gauge_add(hm->g, 1);
        fw_metric_observe(hm->h, (i & 1) ? 0.5 : 2);
    }
    return NULL;
}

FWT_TEST(concurrent_updates_sum_exactly)
{
    static const double bounds[] = {1};
    fw_metrics_t *reg = new_reg();
    atomic_int go = 0;
    struct hammer hm = {.go = &go};
    FWT_ASSERT_OK(fw_metrics_counter(reg, &hm.c, "freeway_test_ops_total", "Ops.", NULL));
    FWT_ASSERT_OK(fw_metrics_gauge(reg, &hm.g, "freeway_test_level_bytes", "Level.", NULL));
    FWT_ASSERT_OK(
        fw_metrics_histogram(reg, &hm.h, "freeway_test_op_seconds", "Op.", bounds, 1, NULL));
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        FWT_ASSERT_INT_EQ(pthread_create(&t[i], NULL, hammer_thread, &hm), 0);
    atomic_store(&go, 1);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    FWT_ASSERT_UINT_EQ(fw_metric_counter_get(hm.c), 2 * HAMMER_ROUNDS);
    FWT_ASSERT(fw_metric_gauge_get(hm.g) == 2.0 * HAMMER_ROUNDS);
    char want[1024];
    snprintf(want, sizeof(want),
             "# HELP freeway_test_ops_total Ops.\n"
             "# TYPE freeway_test_ops_total counter\n"
             "freeway_test_ops_total %d\n"
             "# HELP freeway_test_level_bytes Level.\n"
             "# TYPE freeway_test_level_bytes gauge\n"
             "freeway_test_level_bytes %d\n"
             "# HELP freeway_test_op_seconds Op.\n"
             "# TYPE freeway_test_op_seconds histogram\n"
             "freeway_test_op_seconds_bucket{le=\"1\"} %d\n"
             "freeway_test_op_seconds_bucket{le=\"+Inf\"} %d\n"
             "freeway_test_op_seconds_sum %d\n"
             "freeway_test_op_seconds_count %d\n",
             2 * HAMMER_ROUNDS, 2 * HAMMER_ROUNDS, HAMMER_ROUNDS, 2 * HAMMER_ROUNDS,
             (HAMMER_ROUNDS / 2) * 2 * 2 + (HAMMER_ROUNDS / 2) * 2 / 2, 2 * HAMMER_ROUNDS);
    FWT_ASSERT_STR_EQ(render(reg), want);
}

struct renderer {
    fw_metrics_t *reg;
    atomic_int stop;
    atomic_int registered; /* series registered by the other thread so far */
    int renders;
    int failed;
};

static void *render_thread(void *arg)
{
    struct renderer *r = arg;
    fw_buf_t b = FW_BUF_INIT;
    int seen = -1;
    while (!atomic_load(&r->stop)) {
        /* A render per registration at most: back to back, renders of thousands of series
         * (slow under ASan) could take the registry's lock again and again before the
         * registering thread ever got it (mutexes are not fair). */
        int now = atomic_load(&r->registered);
        if (now == seen) {
            sched_yield();
            continue;
        }
        seen = now;
        fw_buf_reset(&b);
        if (fw_metrics_render(r->reg, &b) < 0)
            r->failed = 1;
        r->renders++;
    }
    fw_buf_free(&b);
    return NULL;
}

struct render_run {
    struct renderer *r;
    pthread_t thread;
    int joined;
};

/* Stops and joins the renderer: at the test's end, or before the registry goes on a failure. */
static void render_stop(void *arg)
{
    struct render_run *run = arg;
    if (run->joined)
        return;
    atomic_store(&run->r->stop, 1);
    pthread_join(run->thread, NULL);
    run->joined = 1;
}

static size_t count_lines(const char *s, const char *prefix)
{
    size_t n = 0, plen = strlen(prefix);
    while (*s != '\0') {
        if (strncmp(s, prefix, plen) == 0)
            n++;
        const char *nl = strchr(s, '\n');
        if (nl == NULL)
            break;
        s = nl + 1;
    }
    return n;
}

FWT_TEST(registering_while_another_thread_renders_is_safe)
{
    fw_metrics_t *reg = new_reg();
    struct renderer r = {.reg = reg};
    struct render_run run = {.r = &r};
    FWT_ASSERT_INT_EQ(pthread_create(&run.thread, NULL, render_thread, &r), 0);
    fwt_defer(render_stop, &run);
    /* New categories appear while scrapes run, as on a live writer. */
    for (int i = 0; i < 10000; i++) {
        char cat[32];
        fw_metric_counter_t *c;
        fw_metric_histogram_t *h;
        static const double bounds[] = {0.01, 0.1};
        snprintf(cat, sizeof(cat), "cat%d", i);
        FWT_ASSERT_OK(fw_metrics_counter(reg, &c, "freeway_test_records_total", "Records.",
                                         "category", cat, NULL));
        fw_metric_inc(c);
        if (i % 100 == 0) {
            FWT_ASSERT_OK(fw_metrics_histogram(reg, &h, "freeway_test_sync_seconds", "Sync.",
                                               bounds, 2, "category", cat, NULL));
            fw_metric_observe(h, 0.05);
        }
        atomic_fetch_add(&r.registered, 1);
    }
    render_stop(&run);
    FWT_ASSERT(!r.failed);
    fprintf(stderr, "%d renders ran during registration\n", r.renders);
    FWT_ASSERT_UINT_EQ(fw_metrics_series_count(reg), 10100);
    const char *text = render(reg);
    FWT_ASSERT_UINT_EQ(count_lines(text, "freeway_test_records_total{category=\"cat"), 10000);
    FWT_ASSERT_UINT_EQ(count_lines(text, "freeway_test_sync_seconds_count{"), 100);
    FWT_ASSERT(strstr(text, "freeway_test_records_total{category=\"cat9999\"} 1\n") != NULL);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * Not a benchmark with a threshold to chase, but a guard: a writer with
 * 10,000 buckets' series must render in well under a scrape interval, and
 * the numbers are printed for the record.
 */
FWT_TEST(render_cost_of_ten_thousand_series)
{
    static const double bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                    0.05,   0.1,   0.25,   0.5,   1};
    fw_metrics_t *reg = new_reg();
    double t0 = now_s();
    for (int i = 0; i < 10000; i++) {
        char cat[32], bucket[16];
        fw_metric_counter_t *c;
        snprintf(cat, sizeof(cat), "category_%d", i / 100);
        snprintf(bucket, sizeof(bucket), "%d", i % 100);
        FWT_ASSERT_OK(fw_metrics_counter(reg, &c, "freeway_calligraphus_records_received_total",
                                         "Records received from producers.", "category", cat,
                                         "bucket", bucket, NULL));
        fw_metric_add(c, (uint64_t)i * 1000003);
    }
    double t1 = now_s();
    fw_metric_histogram_t *h;
    FWT_ASSERT_OK(fw_metrics_histogram(reg, &h, "freeway_calligraphus_fsync_seconds",
                                       "fdatasync latency.", bounds, 11, NULL));
    for (int i = 0; i < 1000; i++)
        fw_metric_observe(h, i / 1000.0);
    fw_buf_t b = FW_BUF_INIT;
    FWT_ASSERT_OK(fw_metrics_render(reg, &b)); /* warm the buffer */
    int rounds = 20;
    double t2 = now_s();
    for (int i = 0; i < rounds; i++) {
        fw_buf_reset(&b);
        FWT_ASSERT_OK(fw_metrics_render(reg, &b));
    }
    double t3 = now_s();
    fprintf(stderr,
            "registered 10000 series in %.1f ms; render: %.2f ms per scrape, %zu bytes "
            "(%.0f ns per series)\n",
            (t1 - t0) * 1e3, (t3 - t2) * 1e3 / rounds, b.len, (t3 - t2) * 1e9 / rounds / 10001);
    /* Generous, so a sanitizer build passes too. */
    FWT_ASSERT((t3 - t2) / rounds < 0.5);
    fw_buf_free(&b);
}
