/* ptail's metrics: subscribers, what was sent, and how far behind consumers are. */
#ifndef PT_STATS_H
#define PT_STATS_H

#include <stdint.h>

#include "metrics.h"

typedef struct pt_stats_s {
    fw_metrics_t *reg;
    fw_metric_gauge_t *subscribers;
    fw_metric_counter_t *subscriptions_refused;
    fw_metric_counter_t *bad_frames;
} pt_stats_t;

/* Per category. */
typedef struct pt_cat_stats_s {
    fw_metric_counter_t *records_sent;
    fw_metric_counter_t *bytes_sent;
    fw_metric_counter_t *checkpoints_sent;
    fw_metric_counter_t *gaps_sent;
} pt_cat_stats_t;

int pt_stats_init(pt_stats_t *s, fw_metrics_t *reg);
/* The category's counters (made on first use). 0 or -ENOMEM. */
int pt_stats_category(pt_stats_t *s, const char *category, pt_cat_stats_t *out);
/* Sets a bucket's lag for one consumer: bytes stored after its position, and seconds. */
void pt_stats_lag(pt_stats_t *s, const char *category, uint32_t bucket, const char *consumer,
                  double bytes, double seconds);
/*
 * Drops a departed consumer's lag series, so they neither linger with stale
 * values nor pile up (unnamed consumers are named by their address). A
 * subscription still streaming under the same name sets them again at the
 * next tick: pt_stats_lag looks the series up each time, holding no handle.
 */
void pt_stats_lag_remove(pt_stats_t *s, const char *category, uint32_t bucket,
                         const char *consumer);

#endif
