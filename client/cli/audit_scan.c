/*
 * freeway audit: reading what is stored. A store's blocks are read by their
 * headers alone (fw_segr_skim: the header CRC vouches for the counts), so an
 * audit of a day of data reads 64 bytes a block, not the data. The audit
 * category's reports are read whole and decoded.
 */
#include "audit_model.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "block.h"
#include "error.h"
#include "names.h"
#include "segment.h"

static int push_block(fw_abucket_t *b, const fw_ablock_t *blk)
{
    if (fw_audit_room((void **)&b->blocks, b->n, &b->cap, sizeof(*b->blocks)) < 0)
        return -ENOMEM;
    b->blocks[b->n++] = *blk;
    return 0;
}

static void note_damage(fw_astore_t *s, const char *path, uint64_t offset, const char *why)
{
    /* A long path is cut: the message is for people. */
    if (s->damaged++ == 0 && snprintf(s->first_damage, sizeof(s->first_damage),
                                      "%s at offset %" PRIu64 ": %s", path, offset, why) < 0)
        s->first_damage[0] = '\0';
}

/* Reads one segment's block headers into bucket b. */
static int scan_segment(const fw_audit_t *a, fw_astore_t *s, fw_abucket_t *b, const char *path)
{
    fw_segr_t *r;
    int rc = fw_segr_open(path, &r);
    if (rc == -EAGAIN || rc == -ENOENT)
        return 0; /* being created, or removed by retention meanwhile */
    if (rc < 0) {
        note_damage(s, path, 0, fw_strerror(rc));
        return 0;
    }
    s->segments++;
    for (;;) {
        fw_block_header_t h;
        uint64_t off;
        rc = fw_segr_skim(r, &h, &off);
        if (rc == FW_SEGR_BLOCK) {
            s->blocks++;
            fw_ablock_t blk = {
                .segment_id = fw_segr_header(r)->segment_id,
                .offset = off,
                .producer_id = h.producer_id,
                .sequence = h.sequence,
                .minute = fw_audit_minute(h.base_ts),
                .records = h.record_count,
            };
            if (blk.minute >= a->since_min && blk.minute < a->until_min &&
                push_block(b, &blk) < 0) {
                fw_segr_close(r);
                return -ENOMEM;
            }
            continue;
        }
        if (rc == FW_ESEG_DAMAGED) {
            uint64_t at;
            int why;
            fw_segr_damage(r, &at, &why);
            note_damage(s, path, at, fw_strerror(why));
        } else if (rc < 0) {
            note_damage(s, path, fw_segr_position(r), fw_strerror(rc));
        }
        break; /* SEALED, AGAIN (the end of an open segment), or damage */
    }
    fw_segr_close(r);
    return 0;
}

/* The bucket directories under dir: their numbers; *n set. A missing dir has none (*found 0). */
static int list_buckets(const char *dir, uint32_t **out, size_t *n, int *found)
{
    *out = NULL;
    *n = 0;
    *found = 0;
    DIR *d = opendir(dir);
    if (d == NULL)
        return errno == ENOENT ? 0 : -errno;
    *found = 1;
    size_t cap = 0;
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d)) != NULL) {
        char *end;
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        unsigned long v = strtoul(e->d_name, &end, 10);
        if (*end != '\0' || v >= 65536)
            continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            uint32_t *m = realloc(*out, cap * sizeof(*m));
            if (m == NULL) {
                rc = -ENOMEM;
                break;
            }
            *out = m;
        }
        (*out)[(*n)++] = (uint32_t)v;
    }
    closedir(d);
    return rc;
}

typedef int (*segment_fn)(uint32_t bucket, const char *path, void *arg);

/*
 * Calls fn for each segment of ROOT/<category>/<bucket>/, bucket by bucket and
 * in id order within a bucket, until fn returns non-zero (returned). A missing
 * category directory has no segments (*found 0 when found is given); an
 * unreadable bucket directory is passed over. 0, fn's value or -errno.
 */
static int each_segment(const char *root, const char *category, int *found, segment_fn fn,
                        void *arg)
{
    char dir[1200];
    snprintf(dir, sizeof(dir), "%s/%s", root, category);
    uint32_t *ids;
    size_t nids;
    int dir_found;
    int rc = list_buckets(dir, &ids, &nids, &dir_found);
    if (found != NULL)
        *found = dir_found;
    if (rc < 0) {
        free(ids);
        return rc;
    }
    for (size_t i = 0; i < nids && rc == 0; i++) {
        char bdir[1300];
        snprintf(bdir, sizeof(bdir), "%s/%" PRIu32, dir, ids[i]);
        uint64_t *segs;
        size_t nsegs;
        if (fw_seg_list(bdir, &segs, &nsegs) < 0)
            continue;
        for (size_t k = 0; k < nsegs && rc == 0; k++) {
            char path[1400], name[FW_SEG_NAME_LEN + 1];
            fw_seg_name(name, segs[k]);
            snprintf(path, sizeof(path), "%s/%s", bdir, name);
            rc = fn(ids[i], path, arg);
        }
        free(segs);
    }
    free(ids);
    return rc;
}

typedef struct store_scan_s {
    const fw_audit_t *a;
    fw_astore_t *s;
} store_scan_t;

static int scan_store_segment(uint32_t bucket, const char *path, void *arg)
{
    store_scan_t *sc = arg;
    fw_astore_t *s = sc->s;
    if (bucket >= s->nbuckets) {
        fw_abucket_t *nb = realloc(s->buckets, (bucket + 1) * sizeof(*nb));
        if (nb == NULL)
            return -ENOMEM;
        memset(nb + s->nbuckets, 0, (bucket + 1 - s->nbuckets) * sizeof(*nb));
        s->buckets = nb;
        s->nbuckets = bucket + 1;
    }
    return scan_segment(sc->a, s, &s->buckets[bucket], path);
}

int fw_audit_scan_store(const fw_audit_t *a, fw_astore_t *s)
{
    /* A root that is not there is a mistyped path, not a fabric with nothing stored. */
    struct stat st;
    if (stat(s->path, &st) < 0)
        return -errno;
    if (!S_ISDIR(st.st_mode))
        return -ENOTDIR;
    store_scan_t sc = {a, s};
    return each_segment(s->path, a->category, &s->found, scan_store_segment, &sc);
}

/* ---- the audit category ----------------------------------------------------------------- */

/* Every `freeway send` is a producer life: a week of reports may name millions. */
static fw_aplife_t *producer_life(fw_audit_t *a, uint64_t life)
{
    uint64_t k = fw_audit_table_get(&a->life_index, life, FWPB__AUDIT_HOP__AUDIT_PRODUCED, 0);
    if (k > 0)
        return &a->plives[k - 1];
    if (fw_audit_room((void **)&a->plives, a->nplives, &a->plives_cap, sizeof(*a->plives)) < 0)
        return NULL;
    if (fw_audit_table_add(&a->life_index, life, FWPB__AUDIT_HOP__AUDIT_PRODUCED, 0,
                           a->nplives + 1) < 0)
        return NULL;
    a->plives[a->nplives] = (fw_aplife_t){.life = life};
    return &a->plives[a->nplives++];
}

static fw_alife_t *consumer_life(fw_audit_t *a, const char *name, uint64_t life)
{
    size_t ci = 0; /* the consumer's index */
    while (ci < a->nconsumers && strcmp(a->consumers[ci].name, name) != 0)
        ci++;
    fw_aconsumer_t *c = ci < a->nconsumers ? &a->consumers[ci] : NULL;
    if (c == NULL) {
        if (fw_audit_room((void **)&a->consumers, a->nconsumers, &a->consumers_cap,
                          sizeof(*a->consumers)) < 0)
            return NULL;
        c = &a->consumers[a->nconsumers++];
        memset(c, 0, sizeof(*c));
        snprintf(c->name, sizeof(c->name), "%s", name);
    }
    uint64_t k =
        fw_audit_table_get(&a->life_index, life, FWPB__AUDIT_HOP__AUDIT_CONSUMED, (int64_t)ci);
    if (k > 0)
        return &c->lives[k - 1];
    if (fw_audit_room((void **)&c->lives, c->nlives, &c->lives_cap, sizeof(*c->lives)) < 0)
        return NULL;
    if (fw_audit_table_add(&a->life_index, life, FWPB__AUDIT_HOP__AUDIT_CONSUMED, (int64_t)ci,
                           c->nlives + 1) < 0)
        return NULL;
    fw_alife_t *l = &c->lives[c->nlives++];
    memset(l, 0, sizeof(*l));
    l->life = life;
    return l;
}

static int add_range(fw_alife_t *l, const Fwpb__AuditRange *g)
{
    if (fw_audit_room((void **)&l->ranges, l->nranges, &l->ranges_cap, sizeof(*l->ranges)) < 0)
        return -ENOMEM;
    l->ranges[l->nranges++] = (fw_audit_range_t){
        .bucket = g->bucket,
        .first_segment = g->first->segment_id,
        .first_offset = g->first->offset,
        .first_index = g->first->record_index,
        .last_segment = g->last->segment_id,
        .last_offset = g->last->offset,
        .last_index = g->last->record_index,
    };
    return 0;
}

/* Takes one report in (once: a report stored twice counts once). 0 or -ENOMEM. */
static int take_report(fw_audit_t *a, const Fwpb__AuditReport *m)
{
    int rc = 0;
    if (fw_audit_table_get(&a->seen, m->life, m->hop, (int64_t)m->seq) != 0) {
        a->repeated_reports++;
        return 0;
    }
    if (fw_audit_table_add(&a->seen, m->life, m->hop, (int64_t)m->seq, 1) < 0)
        return -ENOMEM;
    a->reports++;
    if (m->hop == FWPB__AUDIT_HOP__AUDIT_PRODUCED) {
        fw_aplife_t *l = producer_life(a, m->life);
        if (l == NULL)
            return -ENOMEM;
        l->reports++;
        l->final |= m->has_final && m->final;
        if (m->seq > l->max_seq)
            l->max_seq = m->seq;
        for (size_t i = 0; i < m->n_counts && rc == 0; i++)
            if (m->counts[i]->minute >= a->since_min && m->counts[i]->minute < a->until_min)
                rc = fw_audit_table_add(&a->produced, 0, m->counts[i]->bucket, m->counts[i]->minute,
                                        m->counts[i]->records);
        return rc;
    }
    fw_alife_t *l = consumer_life(a, m->reporter, m->life);
    if (l == NULL)
        return -ENOMEM;
    l->reports++;
    l->final |= m->has_final && m->final;
    if (m->seq > l->max_seq)
        l->max_seq = m->seq;
    if (m->has_sent_ms && (l->first_sent_ms == 0 || m->sent_ms < l->first_sent_ms))
        l->first_sent_ms = m->sent_ms;
    for (size_t i = 0; i < m->n_counts && rc == 0; i++)
        if (m->counts[i]->minute >= a->since_min && m->counts[i]->minute < a->until_min)
            rc = fw_audit_table_add(&l->counts, 0, m->counts[i]->bucket, m->counts[i]->minute,
                                    m->counts[i]->records);
    for (size_t i = 0; i < m->n_ranges && rc == 0; i++)
        rc = add_range(l, m->ranges[i]);
    return rc;
}

typedef struct report_reader_s {
    fw_audit_t *a;
    fw_buf_t scratch;
    int rc;
} report_reader_t;

static void bad_report(fw_audit_t *a, const char *path, uint64_t offset, const char *why)
{
    if (a->bad_reports++ == 0 && snprintf(a->first_bad_report, sizeof(a->first_bad_report),
                                          "%s at offset %" PRIu64 ": %s", path, offset, why) < 0)
        a->first_bad_report[0] = '\0';
}

static void read_report_segment(report_reader_t *rr, const char *path)
{
    fw_segr_t *r;
    int rc = fw_segr_open(path, &r);
    if (rc == -EAGAIN || rc == -ENOENT)
        return; /* being created, or removed by retention meanwhile */
    if (rc < 0) {
        /* The reports in it are missing from "produced": say so, as for damage below. */
        bad_report(rr->a, path, 0, fw_strerror(rc));
        rr->a->reports_damaged++;
        return;
    }
    fw_seg_block_t b;
    while (rr->rc == 0 && (rc = fw_segr_next(r, &b)) == FW_SEGR_BLOCK) {
        fw_block_header_t h;
        fw_record_iter_t it;
        if (fw_block_decode(b.data, b.len, FW_RECORD_MAX_HARD, &rr->scratch, &h, &it) < 0) {
            bad_report(rr->a, path, b.offset, "a block that does not decode");
            continue;
        }
        fw_record_t rec;
        while (rr->rc == 0 && fw_record_next(&it, &rec)) {
            /* Keys name the audited category: skip other categories' reports undecoded. */
            size_t clen = strlen(rr->a->category);
            if (rec.has_key && (rec.key_len != clen || memcmp(rec.key, rr->a->category, clen) != 0))
                continue;
            Fwpb__AuditReport *m;
            char err[200];
            if (fw_audit_report_decode(rec.value, rec.value_len, &m, err, sizeof(err)) < 0) {
                bad_report(rr->a, path, b.offset, err);
                continue;
            }
            if (strcmp(m->category, rr->a->category) == 0)
                rr->rc = take_report(rr->a, m);
            fw_audit_report_free(m);
        }
    }
    if (rc == FW_ESEG_DAMAGED) {
        uint64_t at;
        int why;
        fw_segr_damage(r, &at, &why);
        char msg[200];
        snprintf(msg, sizeof(msg), "%s; the reports after it are not read", fw_strerror(why));
        bad_report(rr->a, path, at, msg);
        rr->a->reports_damaged++;
    } else if (rc < 0) {
        bad_report(rr->a, path, fw_segr_position(r), fw_strerror(rc));
        rr->a->reports_damaged++;
    }
    fw_segr_close(r);
}

static int read_report_file(uint32_t bucket, const char *path, void *arg)
{
    (void)bucket;
    report_reader_t *rr = arg;
    read_report_segment(rr, path);
    return rr->rc;
}

int fw_audit_read_reports(fw_audit_t *a, const char *root, const char *audit_category)
{
    report_reader_t rr = {.a = a, .scratch = FW_BUF_INIT};
    int rc = each_segment(root, audit_category, NULL, read_report_file, &rr);
    fw_buf_free(&rr.scratch);
    a->plives_unfinished = 0;
    for (size_t i = 0; i < a->nplives; i++)
        a->plives_unfinished += !a->plives[i].final;
    return rc;
}

int fw_audit_count_silent(fw_audit_t *a)
{
    fw_audit_table_t seen = {0};
    int rc = 0;
    a->plives_silent = 0;
    for (uint32_t b = 0; b < a->written.nbuckets && rc == 0; b++)
        for (size_t i = 0; i < a->written.buckets[b].n && rc == 0; i++) {
            const fw_ablock_t *k = &a->written.buckets[b].blocks[i];
            uint64_t life = fw_audit_table_get(&a->life_index, k->producer_id,
                                               FWPB__AUDIT_HOP__AUDIT_PRODUCED, 0);
            if (life > 0 && a->plives[life - 1].final)
                continue; /* its life reported to the end: every count of it is in */
            if (fw_audit_table_add(&a->unreported_max, 0, b, k->minute, k->records) < 0) {
                rc = -ENOMEM;
                break;
            }
            if (life > 0 || fw_audit_table_get(&seen, k->producer_id, 0, 0) > 0)
                continue;
            if (fw_audit_table_add(&seen, k->producer_id, 0, 0, 1) < 0) {
                rc = -ENOMEM;
                break;
            }
            a->plives_silent++;
        }
    fw_audit_table_free(&seen);
    return rc;
}

static void store_free(fw_astore_t *s)
{
    for (uint32_t i = 0; i < s->nbuckets; i++)
        free(s->buckets[i].blocks);
    free(s->buckets);
    free(s->progress_segment);
    free(s->progress_offset);
}

void fw_audit_free(fw_audit_t *a)
{
    store_free(&a->written);
    for (size_t i = 0; i < a->ncopies; i++)
        store_free(&a->copies[i]);
    free(a->copies);
    fw_audit_table_free(&a->produced);
    fw_audit_table_free(&a->life_index);
    fw_audit_table_free(&a->unreported_max);
    fw_audit_table_free(&a->seen);
    free(a->plives);
    for (size_t i = 0; i < a->nconsumers; i++) {
        for (size_t k = 0; k < a->consumers[i].nlives; k++) {
            fw_audit_table_free(&a->consumers[i].lives[k].counts);
            free(a->consumers[i].lives[k].ranges);
        }
        free(a->consumers[i].lives);
    }
    free(a->consumers);
}
