/*
 * The audit's counting and its report records (proto/audit.proto), shared by
 * the producer (producer_audit.c), the consumer (consumer_audit.c) and
 * `freeway audit` (client/cli/audit*.c).
 *
 * A hop counts records by (bucket, minute of the block's base_ts) and sends
 * what it counted since its last report as one record of the audit category
 * (default "freeway.audit"), keyed by the audited category. The audit sums
 * the reports and compares them with the stored segments.
 */
#ifndef FW_CLIENT_AUDIT_H
#define FW_CLIENT_AUDIT_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "proto/audit.pb-c.h"

#define FW_AUDIT_CATEGORY_DEFAULT    "freeway.audit"
#define FW_AUDIT_INTERVAL_DEFAULT_MS 10000

/* The minute a block counts in: floor(base_ts / 60 s). */
static inline int64_t fw_audit_minute(int64_t base_ts_ms)
{
    return base_ts_ms >= 0 ? base_ts_ms / 60000 : -((-base_ts_ms + 59999) / 60000);
}

/* The last minute of the year 9999: reports carry minutes 0..FW_AUDIT_MINUTE_MAX only. */
#define FW_AUDIT_MINUTE_MAX ((int64_t)253402300799 / 60)

/*
 * 1 if a minute can be audited. A record may carry any timestamp (one in
 * microseconds by mistake, a negative one); its block is stored, but no
 * audit window reaches it, so the hops leave it out of their reports rather
 * than make a report that `freeway audit` refuses whole.
 */
static inline int fw_audit_minute_ok(int64_t minute)
{
    return minute >= 0 && minute <= FW_AUDIT_MINUTE_MAX;
}

/* ---- counts: (tag, bucket, minute) -> records ------------------------------------------- */

typedef struct fw_audit_cell_s {
    uint64_t tag; /* the caller's: a category, or 0 */
    uint32_t bucket;
    int64_t minute;
    uint64_t records; /* 0: an empty slot */
} fw_audit_cell_t;

/* An open-addressed table; zero-initialised is empty. */
typedef struct fw_audit_table_s {
    fw_audit_cell_t *cells;
    uint32_t cap; /* a power of two, or 0 */
    uint32_t used;
} fw_audit_table_t;

/* Adds records (> 0) to a cell. 0 or -ENOMEM (the table is unchanged then). */
int fw_audit_table_add(fw_audit_table_t *t, uint64_t tag, uint32_t bucket, int64_t minute,
                       uint64_t records);
/* The records of a cell; 0 if it has none. */
uint64_t fw_audit_table_get(const fw_audit_table_t *t, uint64_t tag, uint32_t bucket,
                            int64_t minute);
/* Empties the table, keeping its memory. */
void fw_audit_table_clear(fw_audit_table_t *t);
/*
 * Rebuilds the table without the cells whose records were set to 0 (which
 * break the probe chains: call this before the next add or get). 0, or
 * -ENOMEM with the table as it was.
 */
int fw_audit_table_compact(fw_audit_table_t *t);
void fw_audit_table_free(fw_audit_table_t *t);

/* ---- reports -------------------------------------------------------------------------------- */

/* A consumer's stretch of delivered records (see AuditRange). */
typedef struct fw_audit_range_s {
    uint32_t bucket;
    uint64_t first_segment, first_offset;
    uint32_t first_index;
    uint64_t last_segment, last_offset;
    uint32_t last_index;
} fw_audit_range_t;

typedef struct fw_audit_report_s {
    Fwpb__AuditHop hop;
    const char *category;
    const char *reporter;
    uint64_t life;
    uint64_t seq;
    int final;
    int64_t sent_ms;
    /* the cells of t whose tag is `tag` */
    const fw_audit_table_t *table;
    uint64_t tag;
    const fw_audit_range_t *ranges;
    size_t nranges;
} fw_audit_report_t;

/*
 * The most bytes one count takes in an encoded report (its tag and length,
 * bucket, a minute up to FW_AUDIT_MINUTE_MAX, records), so that a report can
 * be cut to fit a record of the audit category.
 */
#define FW_AUDIT_COUNT_MAX (2 + 6 + 6 + 11)

/* Encodes r as an AuditReport into out (replacing its contents). 0 or -ENOMEM. */
int fw_audit_report_encode(const fw_audit_report_t *r, fw_buf_t *out);

/*
 * Decodes and checks a report read from the audit category: 0 with *out
 * (free with fw_audit_report_free), or -EINVAL with err saying what is wrong
 * (not a report, an invalid category, seq 0, a count of 0 records, a minute
 * outside years 1970..9999, a range that runs backwards or names segment 0).
 */
int fw_audit_report_decode(const void *data, size_t len, Fwpb__AuditReport **out, char *err,
                           size_t errlen);
void fw_audit_report_free(Fwpb__AuditReport *r);

/* Orders positions of one bucket: <0, 0, >0. */
int fw_audit_pos_cmp(uint64_t seg_a, uint64_t off_a, uint32_t idx_a, uint64_t seg_b, uint64_t off_b,
                     uint32_t idx_b);

#endif
