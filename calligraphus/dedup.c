/*
 * Per-bucket producer sequence table: open addressing (linear probing) on
 * producer id, with the entries linked from least to most recently seen
 * (see dedup.h).
 */
#include "dedup.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Slot indices are uint32_t; a table this large would take tens of GiB anyway. */
#define MAX_PRODUCERS ((size_t)1 << 30)

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
    if (d->max > MAX_PRODUCERS)
        d->max = MAX_PRODUCERS;
    d->oldest = d->newest = CAL_DEDUP_NONE;
}

void cal_dedup_free(cal_dedup_t *d)
{
    free(d->slots);
    memset(d, 0, sizeof(*d));
    d->oldest = d->newest = CAL_DEDUP_NONE;
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

/* ---- the order of sight: a list through the slots, oldest to newest ------------------ */

static void unlink_slot(cal_dedup_t *d, uint32_t i)
{
    cal_dedup_entry_t *e = &d->slots[i];
    if (e->older != CAL_DEDUP_NONE)
        d->slots[e->older].newer = e->newer;
    else
        d->oldest = e->newer;
    if (e->newer != CAL_DEDUP_NONE)
        d->slots[e->newer].older = e->older;
    else
        d->newest = e->older;
}

static void link_newest(cal_dedup_t *d, uint32_t i)
{
    cal_dedup_entry_t *e = &d->slots[i];
    e->older = d->newest;
    e->newer = CAL_DEDUP_NONE;
    if (d->newest != CAL_DEDUP_NONE)
        d->slots[d->newest].newer = i;
    else
        d->oldest = i;
    d->newest = i;
}

/* The producer in slot i was seen now: it becomes the newest. */
static void touch(cal_dedup_t *d, cal_dedup_entry_t *e, int64_t now_ms)
{
    uint32_t i = (uint32_t)(e - d->slots);
    if (d->newest != i) {
        unlink_slot(d, i);
        link_newest(d, i);
    }
    e->seen_ms = now_ms;
}

/* Moves the entry in slot from to the empty slot to, keeping its place in the list. */
static void move_slot(cal_dedup_t *d, uint32_t from, uint32_t to)
{
    cal_dedup_entry_t *e = &d->slots[to];
    *e = d->slots[from];
    d->slots[from].used = 0;
    if (e->older != CAL_DEDUP_NONE)
        d->slots[e->older].newer = to;
    else
        d->oldest = to;
    if (e->newer != CAL_DEDUP_NONE)
        d->slots[e->newer].older = to;
    else
        d->newest = to;
}

/*
 * Deletes the entry in slot i in place. Emptying a slot would cut the probe
 * chains that run through it, so the entries after it that may live closer
 * to their home slot move back (backward-shift deletion): each step looks at
 * one slot, and the run ends at the first empty one, which a table at most
 * 3/4 full reaches in a few steps.
 */
static void delete_slot(cal_dedup_t *d, uint32_t i)
{
    size_t mask = d->cap - 1;
    unlink_slot(d, i);
    d->slots[i].used = 0;
    d->used--;
    for (size_t j = ((size_t)i + 1) & mask; d->slots[j].used; j = (j + 1) & mask) {
        size_t home = hash(d->slots[j].producer_id) & mask;
        /* The entry at j stays if its home lies cyclically in (i, j]. */
        int stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
        if (!stays) {
            move_slot(d, (uint32_t)j, i);
            i = (uint32_t)j;
        }
    }
}

static uint32_t insert_slot(cal_dedup_t *d, const cal_dedup_entry_t *e)
{
    size_t i = hash(e->producer_id) & (d->cap - 1);
    while (d->slots[i].used)
        i = (i + 1) & (d->cap - 1);
    d->slots[i] = *e;
    d->slots[i].used = 1;
    link_newest(d, (uint32_t)i);
    d->used++;
    return (uint32_t)i;
}

/* Builds a table of cap slots with every entry, in the same order of sight. */
static int grow(cal_dedup_t *d, size_t cap)
{
    cal_dedup_entry_t *slots = calloc(cap, sizeof(*slots));
    if (slots == NULL)
        return -ENOMEM;
    cal_dedup_t old = *d;
    d->slots = slots;
    d->cap = cap;
    d->used = 0;
    d->oldest = d->newest = CAL_DEDUP_NONE;
    for (uint32_t i = old.oldest; i != CAL_DEDUP_NONE; i = old.slots[i].newer)
        insert_slot(d, &old.slots[i]);
    free(old.slots);
    d->rebuilds++;
    return 0;
}

/*
 * Finds or adds the producer's entry (a new one is the newest); at the cap,
 * forgets the producer seen least recently to make room.
 */
static cal_dedup_entry_t *upsert(cal_dedup_t *d, uint64_t id, int64_t now_ms)
{
    cal_dedup_entry_t *e = find(d, id);
    if (e != NULL)
        return e;
    if (d->used >= d->max) {
        delete_slot(d, d->oldest);
        d->forgotten++;
    } else if ((d->used + 1) * 4 > d->cap * 3) {
        if (grow(d, d->cap ? d->cap * 2 : 16) < 0)
            return NULL;
    }
    cal_dedup_entry_t fresh = {.producer_id = id, .seen_ms = now_ms};
    return &d->slots[insert_slot(d, &fresh)];
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
    if (e->accepted == 0 && e->stored == 0 && seq > 0) {
        e->stored = seq - 1; /* a new producer: nothing before seq is ours to wait for */
        e->stored_crc_known = 0;
    }
    e->accepted = seq;
    touch(d, e, now_ms);
    return 0;
}

void cal_dedup_stored(cal_dedup_t *d, uint64_t producer_id, uint64_t seq, uint32_t crc)
{
    cal_dedup_entry_t *e = find(d, producer_id);
    if (e != NULL && seq > e->stored) {
        e->stored = seq;
        e->stored_crc = crc;
        e->stored_crc_known = 1;
    }
}

uint32_t cal_dedup_stored_crc(const cal_dedup_t *d, uint64_t producer_id)
{
    const cal_dedup_entry_t *e = find(d, producer_id);
    return e != NULL && e->stored_crc_known ? e->stored_crc : 0;
}

int cal_dedup_conflicts(const cal_dedup_t *d, uint64_t producer_id, uint64_t seq, uint32_t crc)
{
    const cal_dedup_entry_t *e = find(d, producer_id);
    return e != NULL && seq == e->stored && e->stored_crc_known && crc != e->stored_crc;
}

void cal_dedup_abort(cal_dedup_t *d, uint64_t producer_id)
{
    cal_dedup_entry_t *e = find(d, producer_id);
    if (e != NULL)
        e->accepted = e->stored;
}

int cal_dedup_learn(cal_dedup_t *d, uint64_t producer_id, uint64_t seq, uint32_t crc,
                    int64_t now_ms)
{
    cal_dedup_entry_t *e = upsert(d, producer_id, now_ms);
    if (e == NULL)
        return -ENOMEM;
    if (seq >= e->stored) {
        /* The same sequence twice in the segments (stored before a table knew it): the later
         * one is what a retry would match. */
        e->stored = seq;
        e->stored_crc = crc;
        e->stored_crc_known = 1;
    }
    if (e->stored > e->accepted)
        e->accepted = e->stored;
    /* Segments are read oldest first: a producer's last block found is its latest sight. */
    touch(d, e, now_ms);
    return 0;
}
