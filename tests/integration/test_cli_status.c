/*
 * `freeway status` against a real fabric: a ZooKeeper server, two writers
 * sharing a root, a copier to a file:// destination, a ptail serving the
 * writers' root and a `freeway tail` subscribed to it. The JSON must be
 * valid and say what the fabric is (nodes, owners, open segments, the last
 * minute's records, copier lag, the subscriber); the table must name the
 * same; a node that died without deregistering shows as unreachable
 * without failing the command.
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

#define LINES   1000
#define BUCKETS 4

typedef struct fabric_s {
    fwt_zk_t zk;
    char spec[160], root[FWT_PATH_MAX], dest[FWT_PATH_MAX], url[FWT_PATH_MAX + 16];
    fwt_cal_t w1, w2, cp, pt;
    fwt_proc_t tail;
} fabric_t;

static int tail_caught_up(void *arg)
{
    fabric_t *f = arg;
    return fwt_cal_metric_sum(&f->pt, "freeway_ptail_records_sent_total") == LINES;
}

static int copier_caught_up(void *arg)
{
    fabric_t *f = arg;
    /* status reports the lag gauges, refreshed every --poll: wait for those too. */
    return fwt_copier_caught_up(&f->cp, f->root, BUCKETS) &&
           fwt_cal_metric_sum(&f->cp, "freeway_copier_lag_bytes") == 0;
}

static int count(const char *hay, const char *needle);

/* The nodes' own figures are refreshed on their ticks (0.5 s writers, --poll ptail): wait for them.
 */
static int figures_ready(void *arg)
{
    fabric_t *f = arg;
    double recent = fwt_cal_metric(&f->w1, "freeway_calligraphus_recent_records{category=\"web\","
                                           "window=\"1m\"}") +
                    fwt_cal_metric(&f->w2, "freeway_calligraphus_recent_records{category=\"web\","
                                           "window=\"1m\"}");
    char *m = fwt_cal_get(&f->pt, "/metrics", NULL);
    int lags = m != NULL ? count(m, "freeway_ptail_lag_bytes{") : 0;
    free(m);
    return recent == LINES && lags == BUCKETS &&
           fwt_cal_metric_sum(&f->pt, "freeway_ptail_lag_bytes") == 0;
}

static void fabric_start(fabric_t *f)
{
    memset(f, 0, sizeof(*f));
    fwt_zk_start(&f->zk);
    snprintf(f->spec, sizeof(f->spec), "%s/freeway", f->zk.connect);
    snprintf(f->root, sizeof(f->root), "%s/root", fwt_tmpdir());
    snprintf(f->dest, sizeof(f->dest), "%s/copy", fwt_tmpdir());
    snprintf(f->url, sizeof(f->url), "file://%s", f->dest);
    fwt_category_create(f->spec, "web", BUCKETS, NULL);
    fwt_cal_start(&f->w1, "w1", f->spec, f->root, NULL);
    fwt_cal_start(&f->w2, "w2", f->spec, f->root, NULL);
    fwt_cal_wait_balanced(&f->w1, &f->w2, BUCKETS / 2, "the writers to share the buckets");
    fwt_send_lines(f->spec, "web", 0, LINES, 8, NULL);
    fwt_copier_start(&f->cp, "c1", f->spec, f->root, f->url, NULL);
    fwt_ptail_start(&f->pt, "p1", f->spec, f->root, NULL);
    char log[FWT_PATH_MAX];
    snprintf(log, sizeof(log), "%s/tail.log", fwt_tmpdir());
    char *const argv[] = {(char *)fwt_bin("freeway"),
                          "tail",
                          "-c",
                          "web",
                          "--zk",
                          f->spec,
                          "--from",
                          "earliest",
                          NULL};
    fwt_proc_spawn(&f->tail, "tail", argv, log);
    fwt_wait_until(tail_caught_up, f, 60000, "the subscriber to get every record");
    fwt_wait_until(copier_caught_up, f, 60000, "the copier to catch up");
    fwt_wait_until(figures_ready, f, 60000, "the writers' and ptail's figures to be refreshed");
}

/* `freeway status ARGS...`: its exit status, and its output in *out (free it). */
static int status_run(const fabric_t *f, const char *a1, const char *a2, char **out)
{
    char *const argv[] = {(char *)fwt_bin("freeway"),
                          "status",
                          "--zk",
                          (char *)f->spec,
                          (char *)a1,
                          (char *)a2,
                          NULL};
    return fwt_run(argv, 60000, out);
}

/* The JSON line of the output (ZooKeeper's client may log around it). */
static char *json_line(char *out)
{
    char *j = strstr(out, "{\"time_ms\":");
    FWT_ASSERT(j != NULL);
    char *nl = strchr(j, '\n');
    if (nl != NULL)
        *nl = '\0';
    cp_wh_json_val_t whole;
    if (cp_wh_json_find(j, strlen(j), NULL, 0, &whole) != 0)
        FWT_FAIL("freeway status --json printed invalid JSON: %s", j);
    return j;
}

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

static void expect(const char *doc, const char *needle, int n)
{
    int got = count(doc, needle);
    if (got != n)
        FWT_FAIL("expected %d of %s, found %d in:\n%s", n, needle, got, doc);
}

FWT_TEST(status_shows_nodes_owners_segments_lag_and_subscribers)
{
    fabric_t f;
    fabric_start(&f);
    char *out = NULL;
    FWT_ASSERT_INT_EQ(status_run(&f, "--json", NULL, &out), 0);
    char *j = json_line(out);

    /* every node, ready */
    expect(j, "{\"kind\":\"calligraphus\",\"id\":\"w1\"", 1);
    expect(j, "{\"kind\":\"calligraphus\",\"id\":\"w2\"", 1);
    expect(j, "{\"kind\":\"copier\",\"id\":\"c1\"", 1);
    expect(j, "{\"kind\":\"ptail\",\"id\":\"p1\"", 1);
    expect(j, "\"ready\":true", 4);
    expect(j, "\"metrics_read\":true", 4);
    /* the category: every bucket owned, half by each writer, each with an open segment */
    expect(j, "{\"name\":\"web\",\"buckets\":4,", 1);
    expect(j, "\"owner\":\"w1\"", BUCKETS / 2);
    expect(j, "\"owner\":\"w2\"", BUCKETS / 2);
    expect(j, "\"owner\":\"\"", 0);
    expect(j, "\"records_1m\":1000,", 1);
    expect(j, "\"segment_id\":null,\"segment_bytes\"", 0);
    /* the copy: one destination, every bucket claimed by c1 and caught up */
    expect(j, "\"destinations\":[", 1);
    expect(j, f.url, 1 + BUCKETS);
    expect(j, "\"copier\":\"c1\"", BUCKETS);
    expect(j, "\"lag_bytes\":0,", BUCKETS + 1); /* every copy and the subscriber */
    /* the subscriber: one consumer of web at p1, over all buckets, caught up */
    expect(j, "\"subscribers\":[{\"ptail\":\"p1\"", 1);
    expect(j, "\"category\":\"web\",\"buckets\":4,\"lag_bytes\":0,", 1);
    free(out);

    /* The table names the same things. */
    FWT_ASSERT_INT_EQ(status_run(&f, NULL, NULL, &out), 0);
    expect(out, "NODES (4)", 1);
    expect(out, "CATEGORY web  4 buckets", 1);
    expect(out, "last minute 1000 records", 1);
    expect(out, "SUBSCRIBERS (1)", 1);
    expect(out, "(none)", 0);
    free(out);

    /* -c picks one category; an unknown one is an error that says so. */
    FWT_ASSERT_INT_EQ(status_run(&f, "-c", "nope", &out), 1);
    expect(out, "no category nope", 1);
    free(out);

    /* A node that died without deregistering: shown as unreachable, the rest still read. */
    fwt_proc_signal(&f.tail, SIGKILL);
    fwt_proc_wait(&f.tail, 10000, NULL);
    fwt_cal_kill(&f.pt);
    FWT_ASSERT_INT_EQ(status_run(&f, "--json", NULL, &out), 0);
    j = json_line(out);
    expect(j, "{\"kind\":\"ptail\",\"id\":\"p1\"", 1); /* its session has not expired yet */
    expect(j, "\"ready\":null,\"reason\":\"unreachable: ", 1);
    expect(j, "\"ready\":true", 3);
    expect(j, "\"subscribers\":[]", 1);
    free(out);

    fwt_cal_stop(&f.cp);
    fwt_cal_stop(&f.w1);
    fwt_cal_stop(&f.w2);
    fwt_zk_stop(&f.zk);
}

/*
 * Every family a daemon exposes is listed in docs/metrics.md (by its own
 * name, or as freeway_<component>_... for the series every daemon has).
 */
static void expect_documented(const fwt_cal_t *d, const char *component, const char *doc)
{
    char *m = fwt_cal_get(d, "/metrics", NULL);
    FWT_ASSERT(m != NULL);
    int families = 0;
    for (char *line = strstr(m, "# TYPE "); line != NULL; line = strstr(line + 1, "# TYPE ")) {
        char name[128], want[160];
        FWT_ASSERT_INT_EQ(sscanf(line, "# TYPE %127s", name), 1);
        snprintf(want, sizeof(want), "`%s`", name);
        size_t plen = strlen("freeway_") + strlen(component) + 1;
        if (strstr(doc, want) == NULL && strlen(name) > plen)
            snprintf(want, sizeof(want), "`freeway_<component>_%s`", name + plen);
        if (strstr(doc, want) == NULL)
            FWT_FAIL("%s exposes %s, which docs/metrics.md does not list", component, name);
        families++;
    }
    FWT_ASSERT(families >= 10);
    free(m);
}

FWT_TEST(every_metric_a_daemon_exposes_is_documented)
{
    fabric_t f;
    fabric_start(&f);
    FILE *in = fopen(fwt_source("docs/metrics.md"), "r");
    FWT_ASSERT(in != NULL);
    static char doc[1 << 16];
    size_t n = fread(doc, 1, sizeof(doc) - 1, in);
    fclose(in);
    doc[n] = '\0';
    expect_documented(&f.w1, "calligraphus", doc);
    expect_documented(&f.cp, "copier", doc);
    expect_documented(&f.pt, "ptail", doc);
    fwt_proc_signal(&f.tail, SIGKILL);
    fwt_proc_wait(&f.tail, 10000, NULL);
    fwt_cal_stop(&f.pt);
    fwt_cal_stop(&f.cp);
    fwt_cal_stop(&f.w1);
    fwt_cal_stop(&f.w2);
    fwt_zk_stop(&f.zk);
}

FWT_TEST(status_help_and_bad_usage)
{
    char *out = NULL;
    char *const help[] = {(char *)fwt_bin("freeway"), "status", "--help", NULL};
    FWT_ASSERT_INT_EQ(fwt_run(help, 10000, &out), 0);
    FWT_ASSERT(strstr(out, "--watch") != NULL);
    free(out);
    char *const stray[] = {(char *)fwt_bin("freeway"), "status", "extra", NULL};
    FWT_ASSERT_INT_EQ(fwt_run(stray, 10000, &out), 2);
    free(out);
    char *const nozk[] = {(char *)fwt_bin("freeway"),
                          "status",
                          "--zk",
                          "127.0.0.1:1/freeway",
                          "--timeout",
                          "500ms",
                          NULL};
    FWT_ASSERT_INT_EQ(fwt_run(nozk, 30000, &out), 1);
    free(out);
}
