/*
 * libFuzzer target: the audit report decoder (client/audit.c), which
 * `freeway audit` runs on every record of the audit category, whoever wrote
 * it. On arbitrary bytes: the result is 0 or -EINVAL with a reason; a report
 * accepted holds every promise the decoder makes (a valid category, a
 * reporter, seq > 0, counts > 0 in years 1970..9999, ranges in order and
 * out of segment 0); and encoding it again with freeway's own encoder gives
 * a report that decodes to the same fields, the same ranges and the same
 * records per (bucket, minute).
 */
#include "audit.h"
#include "fuzz.h"
#include "names.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void check(int ok)
{
    if (!ok)
        abort();
}

static uint64_t total(const Fwpb__AuditReport *m, uint32_t bucket, int64_t minute)
{
    uint64_t n = 0;
    for (size_t i = 0; i < m->n_counts; i++)
        if (m->counts[i]->bucket == bucket && m->counts[i]->minute == minute)
            n += m->counts[i]->records;
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    Fwpb__AuditReport *m;
    char err[200] = "";
    int rc = fw_audit_report_decode(data, size, &m, err, sizeof(err));
    check(rc == 0 || rc == -EINVAL);
    if (rc < 0) {
        check(m == NULL && err[0] != '\0');
        return 0;
    }
    check(fw_category_valid(m->category) && m->reporter[0] != '\0' && m->seq > 0);
    fw_audit_table_t t = {0};
    for (size_t i = 0; i < m->n_counts; i++) {
        check(m->counts[i]->records > 0 && m->counts[i]->minute >= 0);
        /* Sums past 2^64 cannot be compared; such a report is kept as it is. */
        if (fw_audit_table_get(&t, 0, m->counts[i]->bucket, m->counts[i]->minute) >
            UINT64_MAX - m->counts[i]->records) {
            fw_audit_table_free(&t);
            fw_audit_report_free(m);
            return 0;
        }
        check(fw_audit_table_add(&t, 0, m->counts[i]->bucket, m->counts[i]->minute,
                                 m->counts[i]->records) == 0);
    }
    fw_audit_range_t *ranges = calloc(m->n_ranges ? m->n_ranges : 1, sizeof(*ranges));
    check(ranges != NULL);
    for (size_t i = 0; i < m->n_ranges; i++) {
        const Fwpb__AuditRange *g = m->ranges[i];
        check(g->first->segment_id > 0 && g->last->segment_id > 0);
        check(fw_audit_pos_cmp(g->first->segment_id, g->first->offset, g->first->record_index,
                               g->last->segment_id, g->last->offset, g->last->record_index) <= 0);
        ranges[i] = (fw_audit_range_t){
            g->bucket,           g->first->segment_id, g->first->offset,     g->first->record_index,
            g->last->segment_id, g->last->offset,      g->last->record_index};
    }
    fw_audit_report_t r = {
        .hop = m->hop,
        .category = m->category,
        .reporter = m->reporter,
        .life = m->life,
        .seq = m->seq,
        .final = m->has_final && m->final,
        .sent_ms = m->has_sent_ms ? m->sent_ms : 0,
        .table = &t,
        .ranges = ranges,
        .nranges = m->n_ranges,
    };
    fw_buf_t out = FW_BUF_INIT;
    check(fw_audit_report_encode(&r, &out) == 0);
    Fwpb__AuditReport *m2;
    check(fw_audit_report_decode(out.data, out.len, &m2, err, sizeof(err)) == 0);
    check(m2->hop == m->hop && strcmp(m2->category, m->category) == 0 &&
          strcmp(m2->reporter, m->reporter) == 0 && m2->life == m->life && m2->seq == m->seq &&
          m2->final == r.final && m2->n_ranges == m->n_ranges);
    for (size_t i = 0; i < m->n_counts; i++)
        check(total(m2, m->counts[i]->bucket, m->counts[i]->minute) ==
              total(m, m->counts[i]->bucket, m->counts[i]->minute));
    for (size_t i = 0; i < m2->n_counts; i++)
        check(total(m, m2->counts[i]->bucket, m2->counts[i]->minute) > 0);
    for (size_t i = 0; i < m->n_ranges; i++)
        check(m2->ranges[i]->bucket == m->ranges[i]->bucket &&
              m2->ranges[i]->first->offset == m->ranges[i]->first->offset &&
              m2->ranges[i]->last->record_index == m->ranges[i]->last->record_index);
    fw_audit_report_free(m2);
    fw_buf_free(&out);
    free(ranges);
    fw_audit_table_free(&t);
    fw_audit_report_free(m);
    return 0;
}
