/* The copier's metrics (see stats.h). */
#include "stats.h"
#include "version.h"

#include <errno.h>
#include <stdio.h>

int cp_stats_init(cp_stats_t *s, fw_metrics_t *reg)
{
    s->reg = reg;
    int rc = 0;
    rc |= fw_metrics_counter(reg, &s->segments_deleted, "freeway_copier_segments_deleted_total",
                             "Source segments deleted by retention (sealed, copied to every "
                             "destination, old enough).",
                             NULL);
    rc |= fw_metrics_counter(reg, &s->bytes_deleted, "freeway_copier_deleted_bytes_total",
                             "Bytes of the source segments retention deleted.", NULL);
    rc |= fw_metrics_counter(reg, &s->rate_waits, "freeway_copier_rate_waits_total",
                             "Times copying waited for the --rate limit.", NULL);
    rc |= fw_metrics_counter(reg, &s->retention_passes, "freeway_copier_retention_passes_total",
                             "Retention passes finished (every bucket looked at once).", NULL);
    rc |= fw_metrics_add_process(reg, "copier", FW_VERSION_STRING);
    return rc != 0 ? -ENOMEM : 0;
}

static const double DELAY_BOUNDS[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60};

int cp_stats_task(cp_stats_t *s, const char *dest, const char *category, uint32_t bucket,
                  cp_task_stats_t *out)
{
    char b[16];
    snprintf(b, sizeof(b), "%u", bucket);
    fw_metrics_t *r = s->reg;
    const char *D = "destination", *C = "category", *B = "bucket";
    int rc = 0;
    rc |= fw_metrics_counter(r, &out->bytes_copied, "freeway_copier_copied_bytes_total",
                             "Bytes copied to the destination and recorded as progress.", D, dest,
                             C, category, B, b, NULL);
    rc |= fw_metrics_counter(r, &out->blocks_copied, "freeway_copier_copied_blocks_total",
                             "Data blocks copied (each CRC-checked on the way).", D, dest, C,
                             category, B, b, NULL);
    rc |= fw_metrics_counter(r, &out->segments_copied, "freeway_copier_copied_segments_total",
                             "Segments copied up to and including their seal.", D, dest, C,
                             category, B, b, NULL);
    rc |= fw_metrics_gauge(r, &out->lag_bytes, "freeway_copier_lag_bytes",
                           "Source bytes not yet copied to the destination.", D, dest, C, category,
                           B, b, NULL);
    rc |= fw_metrics_gauge(r, &out->lag_seconds, "freeway_copier_lag_seconds",
                           "Age of the oldest block not yet copied (0 when caught up).", D, dest, C,
                           category, B, b, NULL);
    rc |= fw_metrics_gauge(r, &out->stopped, "freeway_copier_bucket_stopped",
                           "1 while the bucket's copying is stopped by a damaged or missing "
                           "source block.",
                           D, dest, C, category, B, b, NULL);
    rc |= fw_metrics_gauge(r, &out->owned, "freeway_copier_bucket_owned",
                           "1 while this copier holds the bucket's claim for the destination.", D,
                           dest, C, category, B, b, NULL);
    rc |= fw_metrics_counter(r, &out->damaged, "freeway_copier_damaged_blocks_total",
                             "Damaged source blocks found (never copied).", D, dest, C, category, B,
                             b, NULL);
    rc |= fw_metrics_counter(r, &out->truncated_bytes, "freeway_copier_truncated_bytes_total",
                             "Destination bytes past the recorded progress cut off on resume.", D,
                             dest, C, category, B, b, NULL);
    rc |=
        fw_metrics_counter(r, &out->dest_errors, "freeway_copier_destination_errors_total",
                           "Failed requests to the destination.", D, dest, C, category, B, b, NULL);
    rc |= fw_metrics_counter(r, &out->source_errors, "freeway_copier_source_errors_total",
                             "Errors reading the source.", D, dest, C, category, B, b, NULL);
    rc |= fw_metrics_counter(r, &out->zk_errors, "freeway_copier_zookeeper_errors_total",
                             "Progress or claim updates that failed in ZooKeeper.", D, dest, C,
                             category, B, b, NULL);
    rc |= fw_metrics_histogram(r, &out->delay, "freeway_copier_delay_seconds",
                               "From a block's newest record to its copy being durable and "
                               "recorded, per copy step (its oldest block).",
                               DELAY_BOUNDS, sizeof(DELAY_BOUNDS) / sizeof(DELAY_BOUNDS[0]), D,
                               dest, NULL);
    return rc != 0 ? -ENOMEM : 0;
}
