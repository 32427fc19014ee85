/*
 * The copier's metrics: what it copied, how far behind it is, what went
 * wrong, per destination and bucket (see docs/decisions.md, copier).
 */
#ifndef CP_STATS_H
#define CP_STATS_H

#include <stdint.h>

#include "metrics.h"

typedef struct cp_stats_s {
    fw_metrics_t *reg;
    fw_metric_counter_t *segments_deleted;
    fw_metric_counter_t *bytes_deleted;
    fw_metric_counter_t *rate_waits;
    fw_metric_counter_t *retention_passes;
} cp_stats_t;

/* One bucket's series towards one destination. */
typedef struct cp_task_stats_s {
    fw_metric_counter_t *bytes_copied;
    fw_metric_counter_t *blocks_copied;
    fw_metric_counter_t *segments_copied;
    fw_metric_gauge_t *lag_bytes;
    fw_metric_gauge_t *lag_seconds;
    fw_metric_gauge_t *stopped;
    fw_metric_gauge_t *owned;
    fw_metric_counter_t *damaged;
    fw_metric_counter_t *truncated_bytes;
    fw_metric_counter_t *dest_errors;
    fw_metric_counter_t *source_errors;
    fw_metric_counter_t *zk_errors;
    fw_metric_histogram_t *delay;
} cp_task_stats_t;

int cp_stats_init(cp_stats_t *s, fw_metrics_t *reg);
int cp_stats_task(cp_stats_t *s, const char *dest, const char *category, uint32_t bucket,
                  cp_task_stats_t *out);

#endif
