/*
 * Audit counts and report records: see audit.h.
 */
#include "audit.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "names.h"

static uint32_t cell_hash(uint64_t tag, uint32_t bucket, int64_t minute)
{
    uint64_t x = tag * 0x9e3779b97f4a7c15ull ^ ((uint64_t)bucket << 32) ^ (uint64_t)minute;
    x ^= x >> 31;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 29;
    return (uint32_t)x;
}

static fw_audit_cell_t *cell_slot(fw_audit_cell_t *cells, uint32_t cap, uint64_t tag,
                                  uint32_t bucket, int64_t minute)
{
    uint32_t i = cell_hash(tag, bucket, minute) & (cap - 1);
    for (;; i = (i + 1) & (cap - 1)) {
        fw_audit_cell_t *c = &cells[i];
        if (c->records == 0 || (c->tag == tag && c->bucket == bucket && c->minute == minute))
            return c;
    }
}

static int table_grow(fw_audit_table_t *t)
{
    uint32_t cap = t->cap == 0 ? 16 : t->cap * 2;
    fw_audit_cell_t *cells = calloc(cap, sizeof(*cells));
    if (cells == NULL)
        return -ENOMEM;
    for (uint32_t i = 0; i < t->cap; i++)
        if (t->cells[i].records != 0)
            *cell_slot(cells, cap, t->cells[i].tag, t->cells[i].bucket, t->cells[i].minute) =
                t->cells[i];
    free(t->cells);
    t->cells = cells;
    t->cap = cap;
    return 0;
}

int fw_audit_table_add(fw_audit_table_t *t, uint64_t tag, uint32_t bucket, int64_t minute,
                       uint64_t records)
{
    if (records == 0)
        return 0;
    /* At most 3/4 full, so a probe always ends at an empty slot. */
    if ((t->used + 1) * 4 > t->cap * 3 && table_grow(t) < 0)
        return -ENOMEM;
    fw_audit_cell_t *c = cell_slot(t->cells, t->cap, tag, bucket, minute);
    if (c->records == 0) {
        *c = (fw_audit_cell_t){.tag = tag, .bucket = bucket, .minute = minute};
        t->used++;
    }
    c->records += records;
    return 0;
}

uint64_t fw_audit_table_get(const fw_audit_table_t *t, uint64_t tag, uint32_t bucket,
                            int64_t minute)
{
    if (t->cap == 0)
        return 0;
    return cell_slot((fw_audit_cell_t *)t->cells, t->cap, tag, bucket, minute)->records;
}

void fw_audit_table_clear(fw_audit_table_t *t)
{
    if (t->cells != NULL)
        memset(t->cells, 0, t->cap * sizeof(*t->cells));
    t->used = 0;
}

int fw_audit_table_compact(fw_audit_table_t *t)
{
    fw_audit_table_t keep = {0};
    for (uint32_t i = 0; i < t->cap; i++) {
        const fw_audit_cell_t *c = &t->cells[i];
        if (c->records != 0 &&
            fw_audit_table_add(&keep, c->tag, c->bucket, c->minute, c->records) < 0) {
            fw_audit_table_free(&keep);
            return -ENOMEM;
        }
    }
    fw_audit_table_free(t);
    *t = keep;
    return 0;
}

void fw_audit_table_free(fw_audit_table_t *t)
{
    free(t->cells);
    *t = (fw_audit_table_t){0};
}

int fw_audit_pos_cmp(uint64_t seg_a, uint64_t off_a, uint32_t idx_a, uint64_t seg_b, uint64_t off_b,
                     uint32_t idx_b)
{
    if (seg_a != seg_b)
        return seg_a < seg_b ? -1 : 1;
    if (off_a != off_b)
        return off_a < off_b ? -1 : 1;
    if (idx_a != idx_b)
        return idx_a < idx_b ? -1 : 1;
    return 0;
}

/* ---- encoding ------------------------------------------------------------------------------- */

int fw_audit_report_encode(const fw_audit_report_t *r, fw_buf_t *out)
{
    size_t ncounts = 0;
    for (uint32_t i = 0; r->table != NULL && i < r->table->cap; i++)
        if (r->table->cells[i].records != 0 && r->table->cells[i].tag == r->tag)
            ncounts++;
    Fwpb__AuditCount *counts = calloc(ncounts ? ncounts : 1, sizeof(*counts));
    Fwpb__AuditCount **count_ptrs = calloc(ncounts ? ncounts : 1, sizeof(*count_ptrs));
    Fwpb__AuditRange *ranges = calloc(r->nranges ? r->nranges : 1, sizeof(*ranges));
    Fwpb__AuditRange **range_ptrs = calloc(r->nranges ? r->nranges : 1, sizeof(*range_ptrs));
    Fwpb__AuditPosition *pos = calloc(r->nranges ? 2 * r->nranges : 1, sizeof(*pos));
    int rc = -ENOMEM;
    if (counts == NULL || count_ptrs == NULL || ranges == NULL || range_ptrs == NULL || pos == NULL)
        goto out;

    Fwpb__AuditReport m = FWPB__AUDIT_REPORT__INIT;
    m.hop = r->hop;
    m.category = (char *)r->category;
    m.reporter = (char *)r->reporter;
    m.life = r->life;
    m.seq = r->seq;
    m.has_final = r->final != 0;
    m.final = r->final != 0;
    m.has_sent_ms = 1;
    m.sent_ms = r->sent_ms;
    size_t n = 0;
    for (uint32_t i = 0; r->table != NULL && i < r->table->cap; i++) {
        const fw_audit_cell_t *c = &r->table->cells[i];
        if (c->records == 0 || c->tag != r->tag)
            continue;
        fwpb__audit_count__init(&counts[n]);
        counts[n].bucket = c->bucket;
        counts[n].minute = c->minute;
        counts[n].records = c->records;
        count_ptrs[n] = &counts[n];
        n++;
    }
    m.n_counts = n;
    m.counts = count_ptrs;
    for (size_t i = 0; i < r->nranges; i++) {
        const fw_audit_range_t *g = &r->ranges[i];
        Fwpb__AuditPosition *first = &pos[2 * i], *last = &pos[2 * i + 1];
        fwpb__audit_position__init(first);
        fwpb__audit_position__init(last);
        first->segment_id = g->first_segment;
        first->offset = g->first_offset;
        first->record_index = g->first_index;
        last->segment_id = g->last_segment;
        last->offset = g->last_offset;
        last->record_index = g->last_index;
        fwpb__audit_range__init(&ranges[i]);
        ranges[i].bucket = g->bucket;
        ranges[i].first = first;
        ranges[i].last = last;
        range_ptrs[i] = &ranges[i];
    }
    m.n_ranges = r->nranges;
    m.ranges = range_ptrs;

    fw_buf_reset(out);
    size_t len = fwpb__audit_report__get_packed_size(&m);
    if (fw_buf_reserve(out, len) < 0)
        goto out;
    out->len = fwpb__audit_report__pack(&m, out->data);
    rc = 0;
out:
    free(counts);
    free(count_ptrs);
    free(ranges);
    free(range_ptrs);
    free(pos);
    return rc;
}

/* ---- decoding ------------------------------------------------------------------------------- */

static int refuse(Fwpb__AuditReport *m, char *err, size_t errlen, const char *why)
{
    snprintf(err, errlen, "%s", why);
    fwpb__audit_report__free_unpacked(m, NULL);
    return -EINVAL;
}

int fw_audit_report_decode(const void *data, size_t len, Fwpb__AuditReport **out, char *err,
                           size_t errlen)
{
    *out = NULL;
    Fwpb__AuditReport *m = fwpb__audit_report__unpack(NULL, len, data);
    if (m == NULL) {
        snprintf(err, errlen, "not an audit report (protobuf AuditReport did not decode)");
        return -EINVAL;
    }
    if (m->hop != FWPB__AUDIT_HOP__AUDIT_PRODUCED && m->hop != FWPB__AUDIT_HOP__AUDIT_CONSUMED)
        return refuse(m, err, errlen, "unknown hop");
    if (!fw_category_valid(m->category))
        return refuse(m, err, errlen, "invalid category name");
    if (m->reporter[0] == '\0')
        return refuse(m, err, errlen, "no reporter");
    if (m->seq == 0)
        return refuse(m, err, errlen, "report sequence 0");
    for (size_t i = 0; i < m->n_counts; i++) {
        const Fwpb__AuditCount *c = m->counts[i];
        if (c->records == 0)
            return refuse(m, err, errlen, "a count of 0 records");
        if (!fw_audit_minute_ok(c->minute))
            return refuse(m, err, errlen, "a minute outside the years 1970..9999");
    }
    for (size_t i = 0; i < m->n_ranges; i++) {
        const Fwpb__AuditRange *g = m->ranges[i];
        if (g->first->segment_id == 0 || g->last->segment_id == 0)
            return refuse(m, err, errlen, "a range in segment 0");
        if (fw_audit_pos_cmp(g->first->segment_id, g->first->offset, g->first->record_index,
                             g->last->segment_id, g->last->offset, g->last->record_index) > 0)
            return refuse(m, err, errlen, "a range that ends before it begins");
    }
    *out = m;
    return 0;
}

void fw_audit_report_free(Fwpb__AuditReport *r)
{
    if (r != NULL)
        fwpb__audit_report__free_unpacked(r, NULL);
}
