/* The consumer's per-bucket positions (see consumer_pos.h). */
#include "consumer_pos.h"

#include "names.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void fw_cpos_init(fw_cpos_t *t, uint64_t first_offset)
{
    memset(t, 0, sizeof(*t));
    t->first_offset = first_offset;
}

void fw_cpos_free(fw_cpos_t *t)
{
    free(t->pos);
    free(t->known);
    memset(t, 0, sizeof(*t));
}

int fw_pos_cmp(const fw_position_t *a, const fw_position_t *b)
{
    if (a->segment_id != b->segment_id)
        return a->segment_id < b->segment_id ? -1 : 1;
    if (a->offset != b->offset)
        return a->offset < b->offset ? -1 : 1;
    if (a->record_index != b->record_index)
        return a->record_index < b->record_index ? -1 : 1;
    return 0;
}

const fw_position_t *fw_cpos_get(const fw_cpos_t *t, uint32_t bucket)
{
    return bucket < t->n && t->known[bucket] ? &t->pos[bucket] : NULL;
}

/* Makes room for bucket b (tables grow to the highest bucket seen). */
static int grow(fw_cpos_t *t, uint32_t b)
{
    if (b >= FW_BUCKETS_MAX)
        return -EINVAL;
    if (b < t->n)
        return 0;
    uint32_t n = t->n ? t->n : 16;
    while (n <= b)
        n *= 2;
    if (n > FW_BUCKETS_MAX)
        n = FW_BUCKETS_MAX;
    fw_position_t *pos = realloc(t->pos, n * sizeof(*pos));
    if (pos == NULL)
        return -ENOMEM;
    t->pos = pos;
    uint8_t *known = realloc(t->known, n);
    if (known == NULL)
        return -ENOMEM;
    t->known = known;
    memset(t->known + t->n, 0, n - t->n);
    for (uint32_t i = t->n; i < n; i++)
        t->pos[i] = (fw_position_t){.bucket = i};
    t->n = n;
    return 0;
}

static int set(fw_cpos_t *t, const fw_position_t *p)
{
    int rc = grow(t, p->bucket);
    if (rc < 0)
        return rc;
    if (!t->known[p->bucket]) {
        t->known[p->bucket] = 1;
        t->nknown++;
    }
    t->pos[p->bucket] = *p;
    return 0;
}

int fw_cpos_advance(fw_cpos_t *t, const fw_position_t *p)
{
    fw_position_t q = *p;
    if (q.segment_id != 0 && q.offset < t->first_offset) {
        q.offset = t->first_offset;
        q.record_index = 0;
    }
    const fw_position_t *cur = fw_cpos_get(t, q.bucket);
    if (cur != NULL && fw_pos_cmp(&q, cur) <= 0)
        return 0;
    int rc = set(t, &q);
    return rc < 0 ? rc : 1;
}

int fw_cpos_is_new(const fw_cpos_t *t, const fw_position_t *r)
{
    const fw_position_t *cur = fw_cpos_get(t, r->bucket);
    return cur == NULL || fw_pos_cmp(r, cur) >= 0;
}

int fw_cpos_is_contiguous(const fw_cpos_t *t, const fw_position_t *r)
{
    const fw_position_t *cur = fw_cpos_get(t, r->bucket);
    /* Segment ids need not be contiguous, and "nothing consumed" (segment 0)
     * says nothing about where the first record is. */
    if (cur == NULL || cur->segment_id == 0 || cur->segment_id != r->segment_id)
        return 1;
    return fw_pos_cmp(r, cur) <= 0;
}

int fw_cpos_delivered(fw_cpos_t *t, const fw_position_t *r, uint32_t block_records,
                      uint64_t block_len)
{
    fw_position_t next = *r;
    if (r->record_index + 1 < block_records) {
        next.record_index = r->record_index + 1;
    } else {
        next.offset = r->offset + block_len;
        next.record_index = 0;
    }
    return set(t, &next);
}

int fw_cpos_covers(const fw_cpos_t *t, const uint32_t *list, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        if (fw_cpos_get(t, list[i]) == NULL)
            return 0;
    return 1;
}

int fw_cpos_token(const fw_cpos_t *t, const char *category, const uint32_t *zero, uint32_t nzero,
                  fw_buf_t *out)
{
    if (!fw_category_valid(category))
        return -EINVAL;
    uint32_t extra = 0;
    for (uint32_t i = 0; i < nzero; i++)
        extra += fw_cpos_get(t, zero[i]) == NULL;
    uint32_t count = t->nknown + extra;
    if (count == 0)
        return -EAGAIN;
    fw_checkpoint_t cp;
    memset(&cp, 0, sizeof(cp));
    snprintf(cp.category, sizeof(cp.category), "%s", category);
    cp.positions = calloc(count, sizeof(*cp.positions));
    if (cp.positions == NULL)
        return -ENOMEM;
    /* Merge the known table (by bucket) with the zero list (sorted). */
    uint32_t b = 0, z = 0;
    while (b < t->n || z < nzero) {
        while (b < t->n && !t->known[b])
            b++;
        uint32_t nb = b < t->n ? b : UINT32_MAX;
        uint32_t nz = z < nzero ? zero[z] : UINT32_MAX;
        if (nb == UINT32_MAX && nz == UINT32_MAX)
            break;
        if (nb <= nz) {
            cp.positions[cp.count++] = t->pos[b++];
            if (nz == nb)
                z++;
        } else {
            cp.positions[cp.count++] = (fw_position_t){.bucket = nz};
            z++;
        }
    }
    int rc = fw_checkpoint_encode(&cp, out);
    free(cp.positions);
    return rc;
}
