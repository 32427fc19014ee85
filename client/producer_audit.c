/*
 * The producer's half of the end-to-end audit: it counts the records of
 * every block a writer acked, by category, bucket and minute (the block's
 * base_ts), and sends the counts as AuditReport records (audit.h) to the
 * audit category: every audit_interval_ms from the tick, and a final one
 * from fw_producer_close.
 *
 * A block counts once, at its one completion, whatever its tries: a block
 * acked as a duplicate was stored by an earlier try whose answer was lost.
 * Spooled blocks count when a writer acks them on replay, in whichever life
 * of the producer that happens. The counts live in memory: a producer killed
 * before its next report takes them along, and the audit says which lives
 * ended without a final report.
 */
#include "producer_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "block.h"
#include "clock.h"
#include "error.h"

int fw_paudit_init(fw_producer_t *p)
{
    const char *c = p->o.audit_category;
    if (c == NULL || c[0] == '\0') {
        p->o.audit_category = NULL;
        return 0;
    }
    if ((p->audit_category = strdup(c)) == NULL)
        return -ENOMEM;
    p->o.audit_category = p->audit_category;
    char host[64] = "";
    if (gethostname(host, sizeof(host)) < 0 || host[0] == '\0')
        snprintf(host, sizeof(host), "unknown-host");
    host[sizeof(host) - 1] = '\0';
    snprintf(p->audit_reporter, sizeof(p->audit_reporter), "%s %ld", host, (long)getpid());
    return 0;
}

void fw_paudit_start(fw_producer_t *p)
{
    if (p->audit_category == NULL)
        return;
    /*
     * Its metadata is asked for now, not at the first report: a producer
     * whose writers go away before then can still place its reports, and
     * spool them (the spool keeps the category's shape).
     */
    pthread_mutex_lock(&p->mu);
    (void)fw_producer_category_locked(p, p->audit_category);
    pthread_mutex_unlock(&p->mu);
    uv_async_send(&p->wake);
}

void fw_paudit_free(fw_producer_t *p)
{
    fw_audit_table_free(&p->audit_counts);
    fw_buf_free(&p->audit_buf);
    free(p->audit_category);
    p->audit_category = NULL;
}

void fw_paudit_acked(fw_producer_t *p, const fw_batch_t *b)
{
    /* Reports off: counting would only grow the table, a cell per bucket and minute. */
    if (p->audit_category == NULL || atomic_load(&p->audit_off) || b->cat->audit_internal ||
        b->bucket == NULL)
        return;
    fw_block_header_t h;
    if (fw_block_header_parse(b->block.data, b->block.len, &h) < 0)
        return; /* cannot be: the producer built it */
    int64_t minute = fw_audit_minute(h.base_ts);
    if (!fw_audit_minute_ok(minute))
        return; /* a timestamp no audit window reaches (audit.h) */
    pthread_mutex_lock(&p->audit_mu);
    int rc = fw_audit_table_add(&p->audit_counts, (uint64_t)(uintptr_t)b->cat, b->bucket->id,
                                minute, h.record_count);
    pthread_mutex_unlock(&p->audit_mu);
    /* Said outside the lock: the log callback is the application's. */
    if (rc < 0)
        fw_plog(p, FW_PRODUCER_LOG_WARN,
                "%s/%" PRIu32 ": out of memory counting %" PRIu32 " records for the audit",
                b->cat->name, b->bucket->id, h.record_count);
}

static void on_report_done(const fw_delivery_t *d, void *arg)
{
    fw_producer_t *p = arg;
    if (d->status == 0)
        return;
    if (d->status == FW_EUNKNOWN_CATEGORY) {
        if (atomic_exchange(&p->audit_off, 1))
            return;
        /*
         * No report will carry them: the counts go, and no more come
         * (fw_paudit_acked; it runs on this thread too, so none is added
         * after this).
         */
        pthread_mutex_lock(&p->audit_mu);
        fw_audit_table_free(&p->audit_counts);
        fw_buf_free(&p->audit_buf);
        pthread_mutex_unlock(&p->audit_mu);
        fw_plog(p, FW_PRODUCER_LOG_INFO,
                "audit reports off: the audit category %s does not exist (create it with "
                "`freeway category create %s` to audit this fabric)",
                p->audit_category, p->audit_category);
        return;
    }
    fw_plog(p, FW_PRODUCER_LOG_WARN, "an audit report was not delivered: %s", d->message);
}

/*
 * The most bytes a report takes besides its counts: hop, category, reporter
 * (audit_reporter: under 128 bytes), life, seq, final, sent_ms.
 */
#define REPORT_FIXED_MAX (2 + (3 + FW_CATEGORY_MAX) + (3 + 128) + 11 + 11 + 2 + 11)

/* The bytes of a record of the audit category: its limit, at most the default and the buffer. */
static size_t record_room(const fw_producer_t *p, uint32_t max_record)
{
    size_t room = max_record < FW_RECORD_MAX_DEFAULT ? max_record : FW_RECORD_MAX_DEFAULT;
    if (room + FW_RECORD_OVERHEAD > p->o.max_buffer_bytes)
        room = p->o.max_buffer_bytes > FW_RECORD_OVERHEAD
                   ? p->o.max_buffer_bytes - FW_RECORD_OVERHEAD
                   : 0;
    return room;
}

size_t fw_paudit_report_room(fw_producer_t *p, const char *audit_category)
{
    uint32_t max_record = FW_RECORD_MAX_DEFAULT;
    pthread_mutex_lock(&p->mu);
    /* Created if new: the report about to be sent would create it anyway. */
    const fw_pcat_t *c = fw_producer_category_locked(p, audit_category);
    if (c != NULL)
        max_record = c->max_record; /* the hard cap until its metadata came */
    pthread_mutex_unlock(&p->mu);
    return record_room(p, max_record);
}

/* How many counts a report record of the audit category can hold (its key is the category). */
static uint32_t counts_per_report(const fw_producer_t *p, uint32_t max_record)
{
    size_t room = record_room(p, max_record);
    size_t fixed = FW_CATEGORY_MAX + REPORT_FIXED_MAX;
    size_t n = room > fixed ? (room - fixed) / FW_AUDIT_COUNT_MAX : 0;
    return n == 0 ? 1 : n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
}

/*
 * [audit_mu held] Sends cat's counts as its next reports, at most max_counts
 * counts each (the last one final if final); the counts of each report sent
 * leave the table. The number of reports sent, or < 0 if none could be (the
 * counts not sent are kept for the next report).
 */
static int report_category(fw_producer_t *p, fw_pcat_t *cat, int final, uint32_t max_counts)
{
    uint64_t tag = (uint64_t)(uintptr_t)cat;
    fw_audit_cell_t *cells = p->audit_counts.cells;
    uint32_t cap = p->audit_counts.cap, left = 0;
    for (uint32_t i = 0; i < cap; i++)
        left += cells[i].records != 0 && cells[i].tag == tag;
    if (left == 0 && !(final && cat->audit_seq > 0))
        return 0;
    int sent = 0, rc = 0;
    uint32_t i = 0;
    do {
        /* The next max_counts counts of cat, from cell i on. */
        fw_audit_table_t part = {0};
        uint32_t from = i, n = 0;
        for (; i < cap && n < max_counts && rc == 0; i++)
            if (cells[i].records != 0 && cells[i].tag == tag) {
                rc = fw_audit_table_add(&part, tag, cells[i].bucket, cells[i].minute,
                                        cells[i].records);
                n++;
            }
        fw_audit_report_t r = {
            .hop = FWPB__AUDIT_HOP__AUDIT_PRODUCED,
            .category = cat->name,
            .reporter = p->audit_reporter,
            .life = p->id,
            .seq = cat->audit_seq + 1,
            .final = final && n == left,
            .sent_ms = fw_clock_wall_ms(),
            .table = &part,
            .tag = tag,
        };
        if (rc == 0)
            rc = fw_audit_report_encode(&r, &p->audit_buf);
        fw_audit_table_free(&part);
        /* Keyed by the audited category: its reports stay in one bucket, in order. */
        if (rc == 0)
            rc = fw_producer_send_internal(p, p->audit_category, cat->name, strlen(cat->name),
                                           p->audit_buf.data, p->audit_buf.len, 0, on_report_done,
                                           p);
        if (rc < 0)
            break;
        cat->audit_seq++;
        sent++;
        left -= n;
        for (uint32_t k = from; k < i; k++)
            if (cells[k].tag == tag)
                cells[k].records = 0;
    } while (left > 0);
    return sent > 0 ? sent : rc;
}

/*
 * Reports every category in cats (n of them), max_counts counts a report;
 * returns how many reports went out.
 */
static int report(fw_producer_t *p, fw_pcat_t **cats, size_t n, int final, uint32_t max_counts)
{
    int sent = 0, failed = 0;
    const char *failed_cat = NULL;
    pthread_mutex_lock(&p->audit_mu);
    for (size_t i = 0; i < n; i++) {
        int rc = report_category(p, cats[i], final, max_counts);
        if (rc > 0)
            sent += rc;
        else if (rc < 0 && rc != FW_ERETRY_LATER && failed == 0) {
            failed = rc;
            failed_cat = cats[i]->name;
        }
    }
    /* Without the cells reported (emptied); on -ENOMEM as it is, the next report tries again. */
    (void)fw_audit_table_compact(&p->audit_counts);
    pthread_mutex_unlock(&p->audit_mu);
    /* Said outside the lock: the log callback is the application's. */
    if (failed != 0)
        fw_plog(p, FW_PRODUCER_LOG_WARN, "%s: audit report not sent: %s", failed_cat,
                fw_strerror(failed));
    return sent;
}

/*
 * Every category of the producer (under mu); *n set, and *max_record the
 * audit category's record limit, at most the category default (reports
 * have no use for more). NULL with *n = 0 on -ENOMEM or none.
 */
static fw_pcat_t **categories(fw_producer_t *p, size_t *n, uint32_t *max_record)
{
    *max_record = FW_RECORD_MAX_DEFAULT;
    pthread_mutex_lock(&p->mu);
    fw_pcat_t **cats = calloc(p->ncats ? p->ncats : 1, sizeof(*cats));
    size_t k = 0;
    for (uint32_t i = 0; cats != NULL && i < p->table_cap; i++)
        for (fw_pcat_t *c = p->table[i]; c != NULL && k < p->ncats; c = c->hnext) {
            if (!c->audit_internal)
                cats[k++] = c;
            else if (c->max_record < *max_record)
                *max_record = c->max_record; /* [mu]; the hard cap until metadata came */
        }
    pthread_mutex_unlock(&p->mu);
    *n = k;
    return cats;
}

void fw_paudit_tick(fw_producer_t *p)
{
    if (p->audit_category == NULL || atomic_load(&p->audit_off))
        return;
    if (p->audit_next_ms == 0)
        p->audit_next_ms = p->now + p->o.audit_interval_ms;
    if (p->now < p->audit_next_ms)
        return;
    p->audit_next_ms = p->now + p->o.audit_interval_ms;
    size_t n;
    uint32_t max_record;
    fw_pcat_t **cats = categories(p, &n, &max_record);
    report(p, cats, n, 0, counts_per_report(p, max_record));
    free(cats);
}

int fw_paudit_final(fw_producer_t *p)
{
    if (p->audit_category == NULL || atomic_load(&p->audit_off))
        return 0;
    size_t n;
    uint32_t max_record;
    fw_pcat_t **cats = categories(p, &n, &max_record);
    int sent = report(p, cats, n, 1, counts_per_report(p, max_record));
    free(cats);
    return sent;
}
