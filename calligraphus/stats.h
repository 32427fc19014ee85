/*
 * cal_stats: calligraphus's Prometheus series, registered once and updated
 * with relaxed atomics from the loop and the disk thread (common/metrics.h).
 * Per-category series are created when a category is first seen.
 */
#ifndef CAL_STATS_H
#define CAL_STATS_H

#include "metrics.h"

/*
 * A count over a sliding window: the running total as it stood at each of
 * the last CAL_WINDOW_STEPS steps (seconds or minutes), so "in the last
 * minute" is the total now less the total 60 steps ago.
 */
#define CAL_WINDOW_STEPS 61
typedef struct cal_window_s {
    uint64_t at[CAL_WINDOW_STEPS];
    int64_t step; /* the last step recorded */
    int n;        /* steps recorded, up to CAL_WINDOW_STEPS */
} cal_window_t;

typedef struct cal_cat_stats_s {
    fw_metric_counter_t *records_received;
    fw_metric_counter_t *bytes_received;
    fw_metric_counter_t *records_appended;
    fw_metric_counter_t *bytes_appended;
    fw_metric_counter_t *records_acked;
    fw_metric_counter_t *blocks_duplicate;
    fw_metric_counter_t *sequence_conflicts;
    fw_metric_counter_t *blocks_forwarded;
    fw_metric_counter_t *blocks_throttled;
    fw_metric_gauge_t *inflight_bytes;
    int64_t inflight; /* loop thread's own count, for throttling */
    /* appended in the last minute and hour, for `freeway status` */
    fw_metric_gauge_t *recent_records_1m, *recent_records_1h, *recent_bytes_1m, *recent_bytes_1h;
    cal_window_t records_by_s, records_by_min, bytes_by_s, bytes_by_min;
} cal_cat_stats_t;

typedef struct cal_stats_s {
    fw_metrics_t *reg;
    fw_metric_histogram_t *fsync_seconds;
    fw_metric_gauge_t *inflight_bytes;
    fw_metric_gauge_t *inflight_peak_bytes;
    fw_metric_gauge_t *owned_buckets;
    fw_metric_gauge_t *open_buckets;
    fw_metric_gauge_t *connections;
    fw_metric_counter_t *frames_bad;
    fw_metric_counter_t *reads_paused;
    int64_t inflight; /* loop thread's own count */
} cal_stats_t;

/* Registers the node-wide series in reg. NULL on failure. */
cal_stats_t *cal_stats_create(fw_metrics_t *reg);
void cal_stats_destroy(cal_stats_t *s);
/* The category's series (created on first use; freed with s). NULL if out of memory. */
cal_cat_stats_t *cal_stats_category(cal_stats_t *s, const char *category);
/* Brings the category's last-minute and last-hour gauges up to now (loop thread, each tick). */
void cal_stats_category_tick(cal_cat_stats_t *c, int64_t now_ms);

/*
 * The series of one open bucket: the id and size of the segment it appends
 * to. cal_stats_bucket_forget removes them when the bucket closes (the
 * handles are invalid after). 0 or -ENOMEM.
 */
int cal_stats_bucket(cal_stats_t *s, const char *category, uint32_t bucket,
                     fw_metric_gauge_t **segment_id, fw_metric_gauge_t **segment_bytes);
void cal_stats_bucket_forget(cal_stats_t *s, const char *category, uint32_t bucket);

/* Counts an error answered to a client, by code name. */
void cal_stats_error(cal_stats_t *s, int code);

#endif
