/*
 * freeway audit: the arithmetic. Positions of one bucket are ordered by
 * (segment, offset, record index); a consumer's stretches are inclusive
 * intervals of positions, and what the stored segments hold in any interval
 * can be counted from the block headers.
 */
#include "audit_model.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

const fw_abucket_t *fw_audit_bucket(const fw_astore_t *s, uint32_t bucket)
{
    return bucket < s->nbuckets && s->buckets[bucket].n > 0 ? &s->buckets[bucket] : NULL;
}

static int block_before(const fw_ablock_t *b, uint64_t seg, uint64_t off)
{
    return b->segment_id < seg || (b->segment_id == seg && b->offset < off);
}

int fw_audit_count_range(const fw_abucket_t *b, uint32_t bucket, const fw_audit_range_t *r,
                         fw_audit_table_t *t)
{
    if (b == NULL)
        return 0;
    /* The first block that can hold the range's first record. */
    size_t lo = 0, hi = b->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (block_before(&b->blocks[mid], r->first_segment, r->first_offset))
            lo = mid + 1;
        else
            hi = mid;
    }
    for (size_t i = lo; i < b->n; i++) {
        const fw_ablock_t *k = &b->blocks[i];
        if (fw_audit_pos_cmp(k->segment_id, k->offset, 0, r->last_segment, r->last_offset,
                             r->last_index) > 0)
            break;
        uint32_t from = 0, to = k->records; /* record indexes [from, to) inside the range */
        if (k->segment_id == r->first_segment && k->offset == r->first_offset)
            from = r->first_index;
        if (k->segment_id == r->last_segment && k->offset == r->last_offset &&
            (uint64_t)r->last_index + 1 < to) /* no wrap for an index a report made up */
            to = r->last_index + 1;
        if (from < to && fw_audit_table_add(t, 0, bucket, k->minute, to - from) < 0)
            return -ENOMEM;
    }
    return 0;
}

int fw_audit_count_store(const fw_astore_t *s, fw_audit_table_t *t)
{
    for (uint32_t b = 0; b < s->nbuckets; b++)
        for (size_t i = 0; i < s->buckets[b].n; i++) {
            const fw_ablock_t *k = &s->buckets[b].blocks[i];
            if (fw_audit_table_add(t, 0, b, k->minute, k->records) < 0)
                return -ENOMEM;
        }
    return 0;
}

int fw_audit_copy_expected(const fw_astore_t *written, const fw_astore_t *copy, fw_audit_table_t *t)
{
    for (uint32_t b = 0; b < written->nbuckets; b++) {
        const fw_abucket_t *w = &written->buckets[b];
        /* Expected: the blocks at or before the copy's last one ... */
        int have_last = !copy->by_progress && b < copy->nbuckets && copy->buckets[b].n > 0;
        const fw_ablock_t *last =
            have_last ? &copy->buckets[b].blocks[copy->buckets[b].n - 1] : NULL;
        /* ... and those before the copier's progress (the end of the copied bytes). */
        int have_progress = b < copy->nprogress && copy->progress_segment[b] != 0;
        uint64_t pseg = have_progress ? copy->progress_segment[b] : 0;
        uint64_t poff = have_progress ? copy->progress_offset[b] : 0;
        if (!have_last && !have_progress)
            continue; /* nothing of this bucket copied yet: nothing expected */
        for (size_t i = 0; i < w->n; i++) {
            const fw_ablock_t *k = &w->blocks[i];
            int before = (last != NULL &&
                          (block_before(k, last->segment_id, last->offset) ||
                           (k->segment_id == last->segment_id && k->offset == last->offset))) ||
                         (have_progress && block_before(k, pseg, poff));
            if (!before)
                break;
            if (fw_audit_table_add(t, 0, b, k->minute, k->records) < 0)
                return -ENOMEM;
        }
    }
    return 0;
}

/* ---- consumers' stretches ------------------------------------------------------------------ */

static int range_cmp_first(const void *x, const void *y)
{
    const fw_audit_range_t *a = x, *b = y;
    if (a->bucket != b->bucket)
        return a->bucket < b->bucket ? -1 : 1;
    return fw_audit_pos_cmp(a->first_segment, a->first_offset, a->first_index, b->first_segment,
                            b->first_offset, b->first_index);
}

static int first_cmp(const fw_audit_range_t *a, const fw_audit_range_t *b)
{
    return fw_audit_pos_cmp(a->first_segment, a->first_offset, a->first_index, b->first_segment,
                            b->first_offset, b->first_index);
}

static int last_cmp(const fw_audit_range_t *a, const fw_audit_range_t *b)
{
    return fw_audit_pos_cmp(a->last_segment, a->last_offset, a->last_index, b->last_segment,
                            b->last_offset, b->last_index);
}

/* last(a) >= first(b): inclusive intervals that share a position. */
static int reaches(const fw_audit_range_t *a, const fw_audit_range_t *b)
{
    return fw_audit_pos_cmp(a->last_segment, a->last_offset, a->last_index, b->first_segment,
                            b->first_offset, b->first_index) >= 0;
}

/* Sorts and merges overlapping ranges in place; returns the new count. */
static size_t normalise(fw_audit_range_t *r, size_t n)
{
    if (n == 0)
        return 0;
    qsort(r, n, sizeof(*r), range_cmp_first);
    size_t k = 0;
    for (size_t i = 1; i < n; i++) {
        if (r[i].bucket == r[k].bucket && reaches(&r[k], &r[i])) {
            if (last_cmp(&r[i], &r[k]) > 0) {
                r[k].last_segment = r[i].last_segment;
                r[k].last_offset = r[i].last_offset;
                r[k].last_index = r[i].last_index;
            }
        } else {
            r[++k] = r[i];
        }
    }
    return k + 1;
}

/* Counts, into t, the stored records in every intersection of a and u (both normalised). */
static int count_overlap(const fw_astore_t *w, const fw_audit_range_t *a, size_t na,
                         const fw_audit_range_t *u, size_t nu, fw_audit_table_t *t)
{
    for (size_t i = 0; i < na; i++)
        for (size_t k = 0; k < nu; k++) {
            if (a[i].bucket != u[k].bucket || !reaches(&a[i], &u[k]) || !reaches(&u[k], &a[i]))
                continue;
            fw_audit_range_t x = a[i];
            if (first_cmp(&u[k], &x) > 0) {
                x.first_segment = u[k].first_segment;
                x.first_offset = u[k].first_offset;
                x.first_index = u[k].first_index;
            }
            if (last_cmp(&u[k], &x) < 0) {
                x.last_segment = u[k].last_segment;
                x.last_offset = u[k].last_offset;
                x.last_index = u[k].last_index;
            }
            if (fw_audit_count_range(fw_audit_bucket(w, x.bucket), x.bucket, &x, t) < 0)
                return -ENOMEM;
        }
    return 0;
}

static int life_order(const void *x, const void *y)
{
    const fw_alife_t *a = *(const fw_alife_t *const *)x, *b = *(const fw_alife_t *const *)y;
    return a->first_sent_ms < b->first_sent_ms ? -1 : a->first_sent_ms > b->first_sent_ms;
}

int fw_audit_consumer(const fw_astore_t *written, const fw_aconsumer_t *c,
                      fw_audit_table_t *consumed, fw_audit_table_t *again,
                      fw_audit_table_t *expected)
{
    int rc = -ENOMEM;
    fw_audit_range_t *u = NULL, *mine = NULL;
    size_t nu = 0, total = 0;
    const fw_alife_t **lives = calloc(c->nlives ? c->nlives : 1, sizeof(*lives));
    if (lives == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < c->nlives; i++) {
        lives[i] = &c->lives[i];
        total += c->lives[i].nranges;
    }
    qsort(lives, c->nlives, sizeof(*lives), life_order);
    if ((u = calloc(total ? total : 1, sizeof(*u))) == NULL ||
        (mine = calloc(total ? total : 1, sizeof(*mine))) == NULL)
        goto out;
    for (size_t i = 0; i < c->nlives; i++) {
        const fw_alife_t *l = lives[i];
        for (uint32_t k = 0; k < l->counts.cap; k++) {
            const fw_audit_cell_t *cell = &l->counts.cells[k];
            if (cell->records != 0 &&
                fw_audit_table_add(consumed, 0, cell->bucket, cell->minute, cell->records) < 0)
                goto out;
        }
        if (l->nranges > 0) /* a life may have reported no stretch at all */
            memcpy(mine, l->ranges, l->nranges * sizeof(*mine));
        size_t nm = normalise(mine, l->nranges);
        if (count_overlap(written, mine, nm, u, nu, again) < 0)
            goto out;
        if (nm > 0)
            memcpy(u + nu, mine, nm * sizeof(*u));
        nu = normalise(u, nu + nm);
    }
    for (size_t i = 0; i < nu; i++)
        if (fw_audit_count_range(fw_audit_bucket(written, u[i].bucket), u[i].bucket, &u[i],
                                 expected) < 0)
            goto out;
    rc = 0;
out:
    free(u);
    free(mine);
    free(lives);
    return rc;
}

/* ---- duplicates ------------------------------------------------------------------------------ */

static int by_identity(const void *x, const void *y)
{
    const fw_ablock_t *a = *(const fw_ablock_t *const *)x, *b = *(const fw_ablock_t *const *)y;
    if (a->producer_id != b->producer_id)
        return a->producer_id < b->producer_id ? -1 : 1;
    if (a->sequence != b->sequence)
        return a->sequence < b->sequence ? -1 : 1;
    return block_before(a, b->segment_id, b->offset) ? -1 : 1;
}

int fw_audit_duplicates(const fw_astore_t *s, fw_adup_t **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    size_t cap = 0;
    for (uint32_t b = 0; b < s->nbuckets; b++) {
        const fw_abucket_t *k = &s->buckets[b];
        if (k->n < 2)
            continue;
        const fw_ablock_t **v = malloc(k->n * sizeof(*v));
        if (v == NULL)
            return -ENOMEM;
        for (size_t i = 0; i < k->n; i++)
            v[i] = &k->blocks[i];
        qsort(v, k->n, sizeof(*v), by_identity);
        for (size_t i = 1; i < k->n; i++) {
            if (v[i]->producer_id != v[i - 1]->producer_id || v[i]->sequence != v[i - 1]->sequence)
                continue;
            if (fw_audit_room((void **)out, *n, &cap, sizeof(**out)) < 0) {
                free(v);
                return -ENOMEM;
            }
            (*out)[(*n)++] = (fw_adup_t){
                .bucket = b,
                .minute = v[i]->minute,
                .records = v[i]->records,
                .producer_id = v[i]->producer_id,
                .sequence = v[i]->sequence,
                .segment_id = v[i]->segment_id,
                .offset = v[i]->offset,
                .first_segment = v[i - 1]->segment_id,
                .first_offset = v[i - 1]->offset,
            };
        }
        free(v);
    }
    return 0;
}
