/* Per-bucket producer sequence table: open addressing on producer id (see dedup.h). */
#include "dedup.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static size_t hash(uint64_t id)
{
    id ^= id >> 33;
    id *= 0xff51afd7ed558ccdULL;
    id ^= id >> 33;
    return (size_t)id;
}

void cal_dedup_init(cal_dedup_t *d, size_t max_producers)
{
    memset(d, 0, sizeof(*d));
    d->max = max_producers ? max_producers : 1;
}

void cal_dedup_free(cal_dedup_t *d)
{
    free(d->slots);
    memset(d, 0, sizeof(*d));
}

static cal_dedup_entry_t *find(const cal_dedup_t *d, uint64_t id)
{
    if (d->cap == 0)
        return NULL;
    for (size_t i = hash(id) & (d->cap - 1);; i = (i + 1) & (d->cap - 1)) {
        if (!d->slots[i].used)
            return NULL;
        if (d->slots[i].producer_id == id)
            return &d->slots[i];
    }
}

static void insert_slot(cal_dedup_entry_t *slots, size_t cap, const cal_dedup_entry_t *e)
{
    size_t i = hash(e->producer_id) & (cap - 1);
    while (slots[i].used)
        i = (i + 1) & (cap - 1);
    slots[i] = *e;
}

static int rehash(cal_dedup_t *d, size_t cap, const cal_dedup_entry_t *skip)
{
    cal_dedup_entry_t *slots = calloc(cap, sizeof(*slots));
    if (slots == NULL)
        return -ENOMEM;
    size_t used = 0;
    for (size_t i = 0; i < d->cap; i++) {
        if (d->slots[i].used && &d->slots[i] != skip) {
            insert_slot(slots, cap, &d->slots[i]);
            used++;
        }
    }
    free(d->slots);
    d->slots = slots;
    d->cap = cap;
    d->used = used;
    return 0;
}

/* Finds or adds the producer's entry; forgets the least recently seen one at the cap. */
static cal_dedup_entry_t *upsert(cal_dedup_t *d, uint64_t id, int64_t now_ms)
{
    cal_dedup_entry_t *e = find(d, id);
    if (e != NULL)
        return e;
    if (d->used >= d->max) {
        cal_dedup_entry_t *oldest = NULL;
        for (size_t i = 0; i < d->cap; i++)
            if (d->slots[i].used && (oldest == NULL || d->slots[i].seen_ms < oldest->seen_ms))
                oldest = &d->slots[i];
        /* Rebuild without it: deleting in place would break probe chains. */
        if (rehash(d, d->cap, oldest) < 0)
            return NULL;
    } else if ((d->used + 1) * 4 > d->cap * 3) {
        if (rehash(d, d->cap ? d->cap * 2 : 16, NULL) < 0)
            return NULL;
    }
    cal_dedup_entry_t fresh = {.producer_id = id, .seen_ms = now_ms, .used = 1};
    insert_slot(d->slots, d->cap, &fresh);
    d->used++;
    return find(d, id);
}

cal_seq_verdict_t cal_dedup_check(const cal_dedup_t *d, uint64_t producer_id, uint64_t seq,
                                  uint64_t *expected)
{
    const cal_dedup_entry_t *e = find(d, producer_id);
    if (e == NULL)
        return CAL_SEQ_ACCEPT;
    if (seq <= e->stored)
        return CAL_SEQ_DUPLICATE;
    if (seq <= e->accepted)
        return CAL_SEQ_IN_FLIGHT;
    if (seq == e->accepted + 1)
        return CAL_SEQ_ACCEPT;
    *expected = e->accepted + 1;
    return CAL_SEQ_GAP;
}

int cal_dedup_accept(cal_dedup_t *d, uint64_t producer_id, uint64_t seq, int64_t now_ms)
{
    cal_dedup_entry_t *e = upsert(d, producer_id, now_ms);
    if (e == NULL)
        return -ENOMEM;
    if (e->accepted == 0 && e->stored == 0 && seq > 0)
        e->stored = seq - 1; /* a new producer: nothing before seq is ours to wait for */
    e->accepted = seq;
    e->seen_ms = now_ms;
    return 0;
}

void cal_dedup_stored(cal_dedup_t *d, uint64_t producer_id, uint64_t seq)
{
    cal_dedup_entry_t *e = find(d, producer_id);
    if (e != NULL && seq > e->stored)
        e->stored = seq;
}

void cal_dedup_abort(cal_dedup_t *d, uint64_t producer_id)
{
    cal_dedup_entry_t *e = find(d, producer_id);
    if (e != NULL)
        e->accepted = e->stored;
}

int cal_dedup_learn(cal_dedup_t *d, uint64_t producer_id, uint64_t seq, int64_t now_ms)
{
    cal_dedup_entry_t *e = upsert(d, producer_id, now_ms);
    if (e == NULL)
        return -ENOMEM;
    if (seq > e->stored)
        e->stored = seq;
    if (e->stored > e->accepted)
        e->accepted = e->stored;
    return 0;
}
