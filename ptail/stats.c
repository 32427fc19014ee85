/* ptail's metrics (see stats.h). */
#include "stats.h"
#include "version.h"

#include <errno.h>
#include <stdio.h>

int pt_stats_init(pt_stats_t *s, fw_metrics_t *reg)
{
    s->reg = reg;
    int rc = 0;
    rc |= fw_metrics_gauge(reg, &s->subscribers, "freeway_ptail_subscribers",
                           "Subscriptions being served.", NULL);
    rc |= fw_metrics_counter(reg, &s->subscriptions_refused,
                             "freeway_ptail_subscriptions_refused_total",
                             "Subscriptions answered with an error.", NULL);
    rc |= fw_metrics_counter(reg, &s->bad_frames, "freeway_ptail_bad_frames_total",
                             "Malformed or unexpected frames (each closed its connection).", NULL);
    rc |= fw_metrics_add_process(reg, "ptail", FW_VERSION_STRING);
    return rc != 0 ? -ENOMEM : 0;
}

int pt_stats_category(pt_stats_t *s, const char *category, pt_cat_stats_t *out)
{
    const char *l = "category";
    int rc = 0;
    rc |= fw_metrics_counter(s->reg, &out->records_sent, "freeway_ptail_records_sent_total",
                             "Records sent to consumers.", l, category, NULL);
    rc |= fw_metrics_counter(s->reg, &out->bytes_sent, "freeway_ptail_bytes_sent_total",
                             "Stream bytes sent to consumers (whole frames).", l, category, NULL);
    rc |= fw_metrics_counter(s->reg, &out->checkpoints_sent, "freeway_ptail_checkpoints_sent_total",
                             "Checkpoint messages sent.", l, category, NULL);
    rc |= fw_metrics_counter(s->reg, &out->gaps_sent, "freeway_ptail_gaps_sent_total",
                             "Gap messages sent (data that could not be delivered).", l, category,
                             NULL);
    return rc != 0 ? -ENOMEM : 0;
}

void pt_stats_lag(pt_stats_t *s, const char *category, uint32_t bucket, const char *consumer,
                  double bytes, double seconds)
{
    char b[16];
    snprintf(b, sizeof(b), "%u", bucket);
    fw_metric_gauge_t *g;
    if (fw_metrics_gauge(s->reg, &g, "freeway_ptail_lag_bytes",
                         "Bytes stored in the bucket after the consumer's position.", "category",
                         category, "bucket", b, "consumer", consumer, NULL) == 0)
        fw_metric_set(g, bytes);
    if (fw_metrics_gauge(s->reg, &g, "freeway_ptail_lag_seconds",
                         "Age of the oldest record not yet sent to the consumer (0 when caught "
                         "up).",
                         "category", category, "bucket", b, "consumer", consumer, NULL) == 0)
        fw_metric_set(g, seconds);
}

void pt_stats_lag_remove(pt_stats_t *s, const char *category, uint32_t bucket, const char *consumer)
{
    char b[16];
    snprintf(b, sizeof(b), "%u", bucket);
    fw_metrics_remove(s->reg, "freeway_ptail_lag_bytes", "category", category, "bucket", b,
                      "consumer", consumer, NULL);
    fw_metrics_remove(s->reg, "freeway_ptail_lag_seconds", "category", category, "bucket", b,
                      "consumer", consumer, NULL);
}
