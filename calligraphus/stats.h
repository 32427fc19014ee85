/*
 * cal_stats: calligraphus's Prometheus series, registered once and updated
 * with relaxed atomics from the loop and the disk thread (common/metrics.h).
 * Per-category series are created when a category is first seen.
 */
#ifndef CAL_STATS_H
#define CAL_STATS_H

#include "metrics.h"

typedef struct cal_cat_stats_s {
    fw_metric_counter_t *records_received;
    fw_metric_counter_t *bytes_received;
    fw_metric_counter_t *records_appended;
    fw_metric_counter_t *bytes_appended;
    fw_metric_counter_t *records_acked;
    fw_metric_counter_t *blocks_duplicate;
    fw_metric_counter_t *blocks_forwarded;
    fw_metric_counter_t *blocks_throttled;
    fw_metric_gauge_t *inflight_bytes;
    int64_t inflight; /* loop thread's own count, for throttling */
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
/* Counts an error answered to a client, by code name. */
void cal_stats_error(cal_stats_t *s, int code);

#endif
