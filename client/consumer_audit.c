/*
 * The consumer's half of the end-to-end audit (opt-in: audit_producer). It
 * counts every record handed to on_record by bucket and minute (its block's
 * base_ts) and remembers, per bucket, the stretch of positions the counted
 * records span. Each report carries the counts and the stretches; `freeway
 * audit` compares the counts with what the stored segments hold in the same
 * stretches, so a record ptail skipped or delivered twice shows up.
 *
 * A stretch after a report starts at the last record of the one before, so
 * the stretches of one life join up without a hole a skipped record could
 * hide in. For the same reason a bucket's first stretch starts where the
 * bucket was placed before its first record: the start token, ptail's first
 * checkpoint (a start at latest or a time), or the end of a gap. A gap ptail
 * declares ends a stretch: those records are not the consumer's to count. A
 * consumer restarted from an older checkpoint is a new life whose stretches
 * overlap the old one's; the audit removes the overlap.
 */
#include "consumer_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "error.h"
#include "producer_int.h"

int fw_caudit_init(fw_consumer_t *c)
{
    fw_caudit_t *a = &c->audit;
    if (c->o.audit_producer == NULL)
        return 0;
    if (c->name == NULL || c->name[0] == '\0')
        return -EINVAL;
    const char *cat = c->o.audit_category;
    if (cat == NULL || cat[0] == '\0')
        cat = FW_AUDIT_CATEGORY_DEFAULT;
    if (!fw_category_valid(cat))
        return FW_EBAD_CATEGORY;
    if ((a->category = strdup(cat)) == NULL)
        return -ENOMEM;
    if (c->o.audit_interval_ms == 0)
        c->o.audit_interval_ms = FW_AUDIT_INTERVAL_DEFAULT_MS;
    a->life = fw_random_id();
    a->next_ms = fw_clock_mono_ms() + c->o.audit_interval_ms;
    /* The start token's positions: where this life's stretches begin. */
    for (uint32_t b = 0; b < c->pos.n; b++)
        if (c->pos.known[b])
            fw_caudit_placed(c, &c->pos.pos[b]);
    return 0;
}

void fw_caudit_free(fw_consumer_t *c)
{
    fw_caudit_t *a = &c->audit;
    free(a->category);
    fw_audit_table_free(&a->counts);
    free(a->buckets);
    free(a->closed);
    fw_buf_free(&a->buf);
    memset(a, 0, sizeof(*a));
}

/* The bucket's state, made if new; NULL on -ENOMEM. */
static fw_caudit_bucket_t *bucket_state(fw_caudit_t *a, uint32_t bucket)
{
    size_t lo = 0, hi = a->nbuckets;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (a->buckets[mid].bucket < bucket)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < a->nbuckets && a->buckets[lo].bucket == bucket)
        return &a->buckets[lo];
    if (a->nbuckets == a->buckets_cap) {
        size_t cap = a->buckets_cap ? a->buckets_cap * 2 : 8;
        fw_caudit_bucket_t *n = realloc(a->buckets, cap * sizeof(*n));
        if (n == NULL)
            return NULL;
        a->buckets = n;
        a->buckets_cap = cap;
    }
    memmove(&a->buckets[lo + 1], &a->buckets[lo], (a->nbuckets - lo) * sizeof(*a->buckets));
    a->nbuckets++;
    a->buckets[lo] = (fw_caudit_bucket_t){.bucket = bucket};
    return &a->buckets[lo];
}

static fw_audit_range_t range_of(const fw_caudit_bucket_t *s)
{
    return (fw_audit_range_t){
        .bucket = s->bucket,
        .first_segment = s->first.segment_id,
        .first_offset = s->first.offset,
        .first_index = s->first.record_index,
        .last_segment = s->last.segment_id,
        .last_offset = s->last.offset,
        .last_index = s->last.record_index,
    };
}

/* Moves the bucket's stretch to the closed list. 0 or -ENOMEM (it stays open). */
static int close_stretch(fw_caudit_t *a, fw_caudit_bucket_t *s)
{
    if (!s->open)
        return 0;
    if (a->nclosed == a->closed_cap) {
        size_t cap = a->closed_cap ? a->closed_cap * 2 : 8;
        fw_audit_range_t *n = realloc(a->closed, cap * sizeof(*n));
        if (n == NULL)
            return -ENOMEM;
        a->closed = n;
        a->closed_cap = cap;
    }
    a->closed[a->nclosed++] = range_of(s);
    s->open = 0;
    return 0;
}

void fw_caudit_placed(fw_consumer_t *c, const fw_position_t *at)
{
    fw_caudit_t *a = &c->audit;
    if (a->category == NULL || at->segment_id == 0)
        return;
    fw_caudit_bucket_t *s = bucket_state(a, at->bucket);
    if (s == NULL || s->have_prev || s->have_start)
        return;
    s->start = *at;
    s->have_start = 1;
}

void fw_caudit_record(fw_consumer_t *c, const fw_position_t *at, int64_t base_ts)
{
    fw_caudit_t *a = &c->audit;
    if (a->category == NULL)
        return;
    fw_caudit_bucket_t *s = bucket_state(a, at->bucket);
    /* A minute no audit window reaches is left out of the counts (audit.h), not the stretch. */
    int64_t minute = fw_audit_minute(base_ts);
    if (s == NULL || (fw_audit_minute_ok(minute) &&
                      fw_audit_table_add(&a->counts, 0, at->bucket, minute, 1) < 0)) {
        /* The report would claim a stretch it did not count: better none. */
        if (!a->warned)
            fw_clog(c, FW_CONSUMER_LOG_WARN, "out of memory: audit counts are incomplete");
        a->warned = 1;
        return;
    }
    if (!s->open) {
        s->first = s->have_prev ? s->prev : s->have_start ? s->start : *at;
        s->open = 1;
    }
    s->last = s->prev = *at;
    s->have_prev = 1;
    s->have_start = 0;
}

void fw_caudit_gap(fw_consumer_t *c, const fw_position_t *to)
{
    fw_caudit_t *a = &c->audit;
    if (a->category == NULL)
        return;
    fw_caudit_bucket_t *s = bucket_state(a, to->bucket);
    if (s == NULL || close_stretch(a, s) < 0)
        return;
    /* The next stretch starts where ptail said delivery resumes. */
    s->have_prev = 0;
    s->have_start = 0;
    fw_caudit_placed(c, to);
}

void fw_caudit_report(fw_consumer_t *c, int final)
{
    fw_caudit_t *a = &c->audit;
    if (a->category == NULL)
        return;
    int64_t now = fw_clock_mono_ms();
    if (!final && now < a->next_ms)
        return;
    a->next_ms = now + c->o.audit_interval_ms;
    size_t nopen = 0;
    for (size_t i = 0; i < a->nbuckets; i++)
        nopen += a->buckets[i].open;
    if (a->counts.used == 0 && a->nclosed == 0 && nopen == 0 && !(final && a->seq > 0))
        return;
    size_t n = a->nclosed + nopen;
    fw_audit_range_t *ranges = calloc(n ? n : 1, sizeof(*ranges));
    if (ranges == NULL)
        return;         /* the next report carries it */
    if (a->nclosed > 0) /* closed is NULL until a gap closed a stretch */
        memcpy(ranges, a->closed, a->nclosed * sizeof(*ranges));
    size_t k = a->nclosed;
    for (size_t i = 0; i < a->nbuckets; i++)
        if (a->buckets[i].open)
            ranges[k++] = range_of(&a->buckets[i]);
    fw_audit_report_t r = {
        .hop = FWPB__AUDIT_HOP__AUDIT_CONSUMED,
        .category = c->category,
        .reporter = c->name,
        .life = a->life,
        .final = final,
        .sent_ms = fw_clock_wall_ms(),
        .tag = 0,
        .ranges = ranges,
        .nranges = n,
    };
    /*
     * A report that would not fit one record of the audit category (a
     * backlog read in one interval: many buckets and minutes) goes in parts,
     * with consecutive sequences: the first carries the stretches, each as
     * many counts as fit, the last is final.
     */
    int rc = fw_audit_report_encode(&r, &a->buf); /* the report without its counts */
    size_t room = fw_paudit_report_room(c->o.audit_producer, a->category);
    size_t key = strlen(c->category);
    size_t per =
        rc == 0 && room > a->buf.len + key ? (room - a->buf.len - key) / FW_AUDIT_COUNT_MAX : 0;
    uint32_t max_counts = per == 0 ? 1 : per > UINT32_MAX ? UINT32_MAX : (uint32_t)per;
    fw_audit_cell_t *cells = a->counts.cells;
    uint32_t cap = a->counts.cap, left = 0, i = 0;
    for (uint32_t x = 0; x < cap; x++)
        left += cells[x].records != 0;
    int first = 1;
    while (rc == 0) {
        fw_audit_table_t part = {0};
        uint32_t from = i, cnt = 0;
        for (; i < cap && cnt < max_counts && rc == 0; i++)
            if (cells[i].records != 0) {
                rc = fw_audit_table_add(&part, 0, cells[i].bucket, cells[i].minute,
                                        cells[i].records);
                cnt++;
            }
        r.seq = a->seq + 1;
        r.final = final && cnt == left;
        r.table = &part;
        r.nranges = first ? n : 0;
        if (rc == 0)
            rc = fw_audit_report_encode(&r, &a->buf);
        fw_audit_table_free(&part);
        /* Internal: never waits for room in the application's producer (the next report
         * retries). */
        if (rc == 0)
            rc = fw_producer_send_internal(c->o.audit_producer, a->category, c->category, key,
                                           a->buf.data, a->buf.len, 0, NULL, NULL);
        if (rc < 0)
            break;
        a->seq++;
        left -= cnt;
        for (uint32_t x = from; x < i; x++)
            cells[x].records = 0;
        if (first) {
            a->nclosed = 0;
            for (size_t b = 0; b < a->nbuckets; b++)
                a->buckets[b].open = 0; /* the next stretch starts at prev */
            first = 0;
        }
        if (left == 0)
            break;
    }
    free(ranges);
    /* Without what was sent; on -ENOMEM as it is (emptied cells and all), for the next report. */
    if (left == 0)
        fw_audit_table_clear(&a->counts);
    else
        (void)fw_audit_table_compact(&a->counts);
    if (rc < 0) {
        if (!a->warned)
            fw_clog(c, FW_CONSUMER_LOG_WARN, "an audit report could not be sent now: %s",
                    fw_strerror(rc));
        a->warned = 1;
    }
}
