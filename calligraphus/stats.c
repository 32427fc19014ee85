/* calligraphus's metrics (see stats.h). */
#include "stats.h"
#include "version.h"

#include "clock.h"
#include "error.h"

#include <stdio.h>
#include <stdlib.h>

static const double FSYNC_BOUNDS[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                      0.01,   0.025,   0.05,   0.1,   0.25,   1.0};

cal_stats_t *cal_stats_create(fw_metrics_t *reg)
{
    cal_stats_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->reg = reg;
    int rc = 0;
    rc |= fw_metrics_histogram(reg, &s->fsync_seconds, "freeway_calligraphus_fsync_seconds",
                               "Latency of each group-commit fdatasync.", FSYNC_BOUNDS,
                               sizeof(FSYNC_BOUNDS) / sizeof(FSYNC_BOUNDS[0]), NULL);
    rc |= fw_metrics_gauge(reg, &s->inflight_bytes, "freeway_calligraphus_inflight_bytes",
                           "Block bytes received and not yet answered.", NULL);
    rc |= fw_metrics_gauge(reg, &s->inflight_peak_bytes, "freeway_calligraphus_inflight_peak_bytes",
                           "The most block bytes ever held unanswered at once (vs --inflight).",
                           NULL);
    rc |= fw_metrics_gauge(reg, &s->owned_buckets, "freeway_calligraphus_owned_buckets",
                           "Buckets whose owner node is this writer's (open or still opening).",
                           NULL);
    rc |= fw_metrics_gauge(reg, &s->open_buckets, "freeway_calligraphus_open_buckets",
                           "Buckets this writer owns, has recovered and takes blocks for.", NULL);
    rc |= fw_metrics_gauge(reg, &s->connections, "freeway_calligraphus_connections",
                           "Open client and peer connections.", NULL);
    rc |= fw_metrics_counter(reg, &s->frames_bad, "freeway_calligraphus_bad_frames_total",
                             "Malformed frames (each closed its connection).", NULL);
    rc |= fw_metrics_counter(reg, &s->reads_paused, "freeway_calligraphus_reads_paused_total",
                             "Times a connection stopped being read for backpressure.", NULL);
    rc |= fw_metrics_add_process(reg, "calligraphus", FW_VERSION_STRING);
    if (rc != 0) {
        free(s);
        return NULL;
    }
    return s;
}

void cal_stats_destroy(cal_stats_t *s)
{
    free(s);
}

#define RECENT_HELP(what)                                                                          \
    what " appended to this writer's segments in the last minute (window 1m) or hour (1h)."

cal_cat_stats_t *cal_stats_category(cal_stats_t *s, const char *category)
{
    cal_cat_stats_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    const char *l = "category";
    int rc = 0;
    rc |= fw_metrics_counter(s->reg, &c->records_received,
                             "freeway_calligraphus_records_received_total",
                             "Records received from producers.", l, category, NULL);
    rc |=
        fw_metrics_counter(s->reg, &c->bytes_received, "freeway_calligraphus_bytes_received_total",
                           "Block bytes received from producers.", l, category, NULL);
    rc |= fw_metrics_counter(s->reg, &c->records_appended,
                             "freeway_calligraphus_records_appended_total",
                             "Records appended to this writer's segments.", l, category, NULL);
    rc |=
        fw_metrics_counter(s->reg, &c->bytes_appended, "freeway_calligraphus_bytes_appended_total",
                           "Block bytes appended to this writer's segments.", l, category, NULL);
    rc |= fw_metrics_counter(s->reg, &c->records_acked, "freeway_calligraphus_records_acked_total",
                             "Records acked to producers as stored.", l, category, NULL);
    rc |= fw_metrics_counter(
        s->reg, &c->blocks_duplicate, "freeway_calligraphus_blocks_duplicate_total",
        "Retried blocks acked again without being stored twice.", l, category, NULL);
    rc |= fw_metrics_counter(
        s->reg, &c->sequence_conflicts, "freeway_calligraphus_sequence_conflicts_total",
        "Blocks acked as duplicates whose contents differ from the stored block of that producer "
        "and sequence (a producer reusing sequences; their records are not stored).",
        l, category, NULL);
    rc |= fw_metrics_counter(s->reg, &c->blocks_forwarded,
                             "freeway_calligraphus_blocks_forwarded_total",
                             "Blocks relayed to the bucket's owner.", l, category, NULL);
    rc |= fw_metrics_counter(s->reg, &c->blocks_throttled,
                             "freeway_calligraphus_blocks_throttled_total",
                             "Blocks answered retry-later because the category was over its "
                             "share of memory.",
                             l, category, NULL);
    rc |= fw_metrics_gauge(
        s->reg, &c->inflight_bytes, "freeway_calligraphus_category_inflight_bytes",
        "Block bytes of the category received and not yet answered.", l, category, NULL);
    const char *w = "window";
    rc |= fw_metrics_gauge(s->reg, &c->recent_records_1m, "freeway_calligraphus_recent_records",
                           RECENT_HELP("Records"), l, category, w, "1m", NULL);
    rc |= fw_metrics_gauge(s->reg, &c->recent_records_1h, "freeway_calligraphus_recent_records",
                           RECENT_HELP("Records"), l, category, w, "1h", NULL);
    rc |= fw_metrics_gauge(s->reg, &c->recent_bytes_1m, "freeway_calligraphus_recent_bytes",
                           RECENT_HELP("Block bytes"), l, category, w, "1m", NULL);
    rc |= fw_metrics_gauge(s->reg, &c->recent_bytes_1h, "freeway_calligraphus_recent_bytes",
                           RECENT_HELP("Block bytes"), l, category, w, "1h", NULL);
    if (rc != 0) {
        free(c);
        return NULL;
    }
    cal_stats_category_tick(c, fw_clock_mono_ms()); /* the windows count from here */
    return c;
}

/* Records total as the count at step (and at any step skipped since the last). */
static void window_note(cal_window_t *w, int64_t step, uint64_t total)
{
    if (w->n == 0)
        w->step = step - 1;
    if (step - w->step > CAL_WINDOW_STEPS)
        w->step = step - CAL_WINDOW_STEPS;
    while (w->step < step) {
        w->step++;
        w->at[w->step % CAL_WINDOW_STEPS] = total;
        if (w->n < CAL_WINDOW_STEPS)
            w->n++;
    }
}

/* What total grew by over the last CAL_WINDOW_STEPS - 1 steps (or since the first one). */
static uint64_t window_recent(const cal_window_t *w, uint64_t total)
{
    int back = w->n - 1;
    return total - w->at[(w->step - back) % CAL_WINDOW_STEPS];
}

void cal_stats_category_tick(cal_cat_stats_t *c, int64_t now_ms)
{
    uint64_t records = fw_metric_counter_get(c->records_appended);
    uint64_t bytes = fw_metric_counter_get(c->bytes_appended);
    window_note(&c->records_by_s, now_ms / 1000, records);
    window_note(&c->bytes_by_s, now_ms / 1000, bytes);
    window_note(&c->records_by_min, now_ms / 60000, records);
    window_note(&c->bytes_by_min, now_ms / 60000, bytes);
    fw_metric_set(c->recent_records_1m, (double)window_recent(&c->records_by_s, records));
    fw_metric_set(c->recent_bytes_1m, (double)window_recent(&c->bytes_by_s, bytes));
    fw_metric_set(c->recent_records_1h, (double)window_recent(&c->records_by_min, records));
    fw_metric_set(c->recent_bytes_1h, (double)window_recent(&c->bytes_by_min, bytes));
}

int cal_stats_bucket(cal_stats_t *s, const char *category, uint32_t bucket,
                     fw_metric_gauge_t **segment_id, fw_metric_gauge_t **segment_bytes)
{
    char b[16];
    snprintf(b, sizeof(b), "%u", bucket);
    int rc = fw_metrics_gauge(s->reg, segment_id, "freeway_calligraphus_segment_id",
                              "The id of the segment the bucket appends to (0 before its first "
                              "append here).",
                              "category", category, "bucket", b, NULL);
    if (rc == 0)
        rc = fw_metrics_gauge(s->reg, segment_bytes, "freeway_calligraphus_segment_bytes",
                              "The size of the segment the bucket appends to.", "category",
                              category, "bucket", b, NULL);
    return rc;
}

void cal_stats_bucket_forget(cal_stats_t *s, const char *category, uint32_t bucket)
{
    char b[16];
    snprintf(b, sizeof(b), "%u", bucket);
    fw_metrics_remove(s->reg, "freeway_calligraphus_segment_id", "category", category, "bucket", b,
                      NULL);
    fw_metrics_remove(s->reg, "freeway_calligraphus_segment_bytes", "category", category, "bucket",
                      b, NULL);
}

void cal_stats_error(cal_stats_t *s, int code)
{
    fw_metric_counter_t *c;
    if (fw_metrics_counter(s->reg, &c, "freeway_calligraphus_errors_total",
                           "Errors answered to clients, by code.", "code", fw_err_name(code),
                           NULL) == 0)
        fw_metric_inc(c);
}
